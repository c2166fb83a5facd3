// Shapes of the web view's JSON API, shared by the server (web/server) and the page
// (web/client imports these types only; esbuild drops them from the bundle). Pure data.

/** State of a cable as drawn: up (frames pass), down (admin down or no carrier at either end),
 *  unknown (the lab is not up: the model says nothing about carrier). */
export type LinkState = 'up' | 'down' | 'unknown';

/** A container's process, as the runtime records it; 'model' when the lab is not up. */
export type ProcessState = 'running' | 'exited' | 'not started' | 'model';

export type ViewNodeKind = 'container' | 'network' | 'host' | 'machine';

export interface ViewInterface {
  name: string;
  /** Network this interface is on, or null (loopback, point-to-point link, unknown). */
  network: string | null;
  /** For a point-to-point link: the other end, "node:iface". */
  peer: string | null;
  /** CIDRs: read from the kernel when live, else the model's. */
  addresses: string[];
  mac: string | null;
  mtu: number | null;
  /** Administratively up (IFF_UP); the model's `up` when not live. */
  up: boolean;
  /** Carrier (operstate UP); null when not live. */
  carrier: boolean | null;
  /** In the model but not in the kernel (live only). */
  missing: boolean;
}

export interface ViewRoute {
  dst: string;
  via: string | null;
  dev: string | null;
}

export interface ViewNode {
  /** Graph key (topology/graph.ts): node:<name>, net:<name>, host:<name>, machine. */
  id: string;
  kind: ViewNodeKind;
  name: string;
  /** Second line under the name: image, driver and subnet, underlay address. */
  detail: string;
  /** container: bridge | none | host; network: the driver; host/machine: ''. */
  variant: string;
  /** Simulated host a container runs on, or null. */
  host: string | null;
  /** Containers: the process; other kinds: null. */
  process: { state: ProcessState; pid: number | null; exit: string | null; oomKilled: boolean } | null;
  /** Containers: the ports the image declares (its ExposedPorts, e.g. 80/tcp), once it runs. */
  ports: string[];
  interfaces: ViewInterface[];
  routes: ViewRoute[];
}

export interface ViewLinkEnd {
  /** Graph key of the end. */
  id: string;
  /** Interface at this end ("" for a network, a host's underlay side...). */
  iface: string;
  /** CIDR of this end, or null. */
  address: string | null;
}

/** One direction of a cable's impairment. */
export interface ViewImpairment {
  /** The sending end ("web eth0", "r1 eth1") and the receiving one ("lan" for a network). */
  from: string;
  to: string;
  /** tc's words (topology/impair.ts impairmentText: `rate 10mbit delay 20ms loss 1%`) from the
   *  model: the running lab's (its `netlab impair` changes applied) or the topology file's;
   *  '' when none. */
  text: string;
  /** The sending interface's impairment as the kernel reports it (status: netlab's qdisc read
   *  back, and its nftables loss), '' when it has none; null when not read (not live, the
   *  interface missing, the bridge side of a network attachment). */
  kernel: string | null;
}

export interface ViewLink {
  /** Graph edge key: if:<node>/<iface>, link:<n>, gw:<net>, overlay:<net>/<host>, underlay:<host>, hostmode:<node>. */
  id: string;
  /** Edge kind of topology/graph.ts (other kinds it may grow are drawn plainly). */
  kind: 'attachment' | 'link' | 'gateway' | 'underlay' | 'overlay' | 'host-mode' | (string & {});
  source: string;
  target: string;
  a: ViewLinkEnd;
  b: ViewLinkEnd;
  state: LinkState;
  /** "node:iface" that `POST /api/labs/:lab/links` toggles for this cable, or null when it
   *  cannot be set down from the UI (gateway, overlay, underlay, host mode). */
  endpoint: string | null;
  /** Why the state is what it is (e.g. "web eth0 admin down"), for the tooltip. */
  why: string;
  /** Links and network attachments: both directions, a to b first ([] for other kinds). A
   *  network attachment's impairment holds both ways, so its two directions read the same. */
  impair: ViewImpairment[];
  /** The short label drawn on an impaired cable (`10mbit 20ms 1%`; per direction when they
   *  differ: `r1→ 10mbit · r2→ 1%`), '' when the cable has none. */
  impairLabel: string;
}

export interface WebGraph {
  lab: string;
  file: string;
  /** 'up', 'creating', 'failed'... from the state file; 'offline' for a topology file not up. */
  status: string;
  /** Read from the kernel (true) or drawn from the model alone (false). */
  live: boolean;
  /** Time the view was computed (ISO). */
  at: string;
  nodes: ViewNode[];
  links: ViewLink[];
  /** The lab's declared checks (labels), for the check view. */
  checks: { label: string; kind: string; from: string; target: string }[];
}

export interface LabSummary {
  name: string;
  status: string;
  live: boolean;
  file: string;
  nodes: number;
}

/** One check's outcome as the API returns it (checks/run.ts CheckOutcome). */
export interface ViewOutcome {
  label: string;
  kind: string;
  from: string;
  target: string;
  address: string | null;
  expected: 'reach' | 'fail';
  expectedFrom: 'explicit' | 'prediction';
  predicted: 'reach' | 'fail';
  reason: string;
  explanation: string;
  observed: 'reach' | 'fail' | null;
  detail: string;
  pass: boolean;
  disagree: boolean;
}

export interface ViewCheckReport {
  lab: string;
  mode: 'checks' | 'matrix';
  observed: boolean;
  outcomes: ViewOutcome[];
  passed: number;
  failed: number;
  disagreements: number;
  ms: number;
  /** When it ran (ISO). */
  at?: string;
}

/** Predicted reachability of every ordered pair (row-major over `nodes`: 1 reach, 0 not,
 *  -1 the diagonal), and of the declared checks. */
export interface Predictions {
  lab: string;
  nodes: string[];
  matrix: number[];
  checks: ViewCheckReport;
}

/** What a standalone page (`netlab graph FILE --format html`) carries inline. */
/** GET /api/labs/:lab/nodes/:node/stats: the node's entry of `netlab stats --json` (controller/
 *  stats.ts NodeStats). cpu.percent is of one CPU since the previous request for the node. */
export interface ViewNodeStats {
  name: string;
  cpu: { usage_seconds: number | null; percent: number | null };
  memory: { bytes: number | null; limit: number | null };
  pids: number | null;
  net: { iface: string; rx_bytes: number; tx_bytes: number }[];
}

export interface EmbeddedData {
  graph: WebGraph;
  predictions: Predictions | null;
}

/** Server-sent events on GET /api/events. */
export type ServerEvent =
  | { type: 'labs'; labs: LabSummary[] }
  | { type: 'graph'; graph: WebGraph }
  | { type: 'gone'; lab: string }
  | { type: 'checks'; report: ViewCheckReport };
