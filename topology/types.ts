// Data types of netlab's topology layer: the raw topology as written in YAML (after schema
// validation), the diagnostics reported about it, and the resolved Lab model that every
// other layer (plan, controller, runtime, web) consumes. Pure data: no behaviour here.

/** One problem found in a topology file, located at a line and column (1-based). */
export interface Diagnostic {
  file: string;
  line: number;
  col: number;
  message: string;
  /** Dotted path of the offending key, e.g. `nodes.web.networks.lan.ipv4`. */
  path: string;
}

export type Driver = 'bridge' | 'host' | 'none' | 'overlay';
export type Expect = 'reach' | 'fail';

import type { SeccompSetting } from './security.js';

// ---------------------------------------------------------------- raw topology (as written)

export interface RawNetwork {
  driver?: Driver;
  subnet?: string;
  /** true: first usable address on the host side (plus NAT); false: internal; or an explicit address. */
  gateway?: boolean | string;
  ipv6?: boolean;
  mtu?: number;
  vni?: number;
  port?: number;
}

export interface RawOspfInterface {
  cost?: number;
}

/** Impairment values as written (`impair:`): tc's units, or numbers. */
export interface RawImpair {
  rate?: string | number;
  delay?: string | number;
  jitter?: string | number;
  loss?: string | number;
  duplicate?: string | number;
  corrupt?: string | number;
  reorder?: string | number;
  limit?: number;
}

export interface RawNetworkAttachment {
  ipv4?: string;
  interface?: string;
  mac?: string;
  ospf?: RawOspfInterface;
  impair?: RawImpair;
}

export interface RawRoute {
  dst: string; // CIDR or "default"
  via?: string;
  dev?: string;
  metric?: number;
  nexthops?: (string | { via: string; dev?: string })[];
}

/** `nodes.<name>.routing`: FRR configuration netlab renders. */
export interface RawRouting {
  router_id?: string;
  ospf?: { area?: number | string; interfaces?: string[] };
  bgp?: { asn: number; neighbors?: string[] };
}

export interface RawResources {
  cpu_shares?: number;
  cpus?: number;
  memory?: string | number;
  pids?: number;
  cpuset?: string | number;
}

export interface RawNode {
  image?: string;
  host?: string;
  networks?: string[] | Record<string, RawNetworkAttachment | null>;
  network_mode?: 'none' | 'host';
  command?: string | string[];
  entrypoint?: string | string[];
  files?: Record<string, string>;
  environment?: Record<string, string | number | boolean> | string[];
  ports?: string[];
  volumes?: string[];
  working_dir?: string;
  user?: string;
  privileged?: boolean;
  cap_add?: string[];
  cap_drop?: string[];
  security_opt?: string[];
  sysctls?: Record<string, string | number> | string[];
  forwarding?: boolean;
  resources?: RawResources;
  routes?: RawRoute[];
  routing?: RawRouting;
}

export interface RawLink {
  endpoints: [string, string];
  ipv4?: [string, string];
  mtu?: number;
  state?: 'up' | 'down';
  ospf?: RawOspfInterface;
  impair?: RawImpair & { a?: RawImpair; b?: RawImpair };
}

/** An image built from Debian packages (`images.<name>`). */
export interface RawImage {
  debian: string;
  packages: string[];
}

export interface RawHost {
  address?: string;
}

// `wait`: seconds (0 < wait <= 600) the check is retried for until it passes.
export interface RawPingCheck { from: string; to: string; count?: number; timeout?: number; wait?: number; expect?: Expect | { max_loss: string } }
export interface RawTcpCheck { from: string; to: string; port: number; timeout?: number; wait?: number; expect?: Expect }
export interface RawHttpCheck {
  from: string;
  url: string;
  timeout?: number;
  wait?: number;
  expect?: Expect | { status?: number; contains?: string };
}
export interface RawDnsCheck { from: string; name: string; address?: string; wait?: number; expect?: Expect }
/** `to`: a node, or an IPv4 address of one (the receiver runs in its namespace). `seconds`: how
 *  long the sender sends (default 3). `min`: a tc rate (8mbit, 1gbit, 100kbps...). */
export interface RawThroughputCheck {
  from: string;
  to: string;
  seconds?: number;
  port?: number;
  timeout?: number;
  wait?: number;
  expect?: Expect | { min: string | number };
}
export type RawCheck =
  | { ping: RawPingCheck }
  | { tcp: RawTcpCheck }
  | { http: RawHttpCheck }
  | { dns: RawDnsCheck }
  | { throughput: RawThroughputCheck };

export interface RawTopology {
  name: string;
  ipam?: { pool?: string; prefix?: number };
  underlay?: { subnet?: string };
  images?: Record<string, RawImage>;
  hosts?: Record<string, RawHost | null>;
  networks?: Record<string, RawNetwork | null>;
  nodes?: Record<string, RawNode | null>;
  links?: RawLink[];
  checks?: RawCheck[];
}

// ---------------------------------------------------------------- resolved model

export interface Ipv4Address {
  address: string; // dotted quad
  prefixLen: number;
}

export interface LabNetwork {
  name: string;
  driver: Driver;
  /** CIDR, e.g. 10.10.0.0/24; null for host/none. */
  subnet: string | null;
  /** Host-side gateway address (bridge) or null when internal / not applicable. */
  gateway: string | null;
  /** Masquerade outbound traffic (gateway: true on a bridge network). */
  nat: boolean;
  ipv6: boolean;
  mtu: number;
  /** Overlay only. */
  vni: number | null;
  port: number | null;
  /** Overlay only: the simulated hosts with nodes on this network, sorted. */
  hosts: string[];
  /** Kernel name of the bridge (in the root netns, or in each host's netns for overlays). */
  bridgeName: string | null;
  /** Kernel name of the VXLAN device (overlay only). */
  vxlanName: string | null;
}

interface LabInterfaceBase {
  /** Name inside the node's namespace, e.g. eth0. */
  name: string;
  ipv4: Ipv4Address | null;
  mac: string | null;
  mtu: number;
  /** Readable alias written to IFLA_IFALIAS: netlab:<lab>:<node>:<iface>. */
  alias: string;
  up: boolean;
  /** OSPF cost written for this interface (`ospf: { cost }`); absent: the default, 10. */
  ospfCost?: number;
  /** Impairment of the traffic this interface sends (a link end: that direction; a network
   *  attachment: both directions, the bridge side's egress too). Absent: none. */
  impair?: Impairment;
}

/** One direction's impairment, in the kernel's units. Null: not set. */
export interface Impairment {
  /** Bits per second. */
  rateBps: number | null;
  delayUs: number | null;
  jitterUs: number | null;
  /** Percent, 0-100 (fractions allowed). */
  lossPct: number | null;
  duplicatePct: number | null;
  corruptPct: number | null;
  reorderPct: number | null;
  /** Queue length in packets. */
  limit: number | null;
}

/** An interface on a network: a veth whose other end is a port of the network's bridge. */
export interface NetworkInterface extends LabInterfaceBase {
  kind: 'network';
  network: string;
  link: null;
  peer: null;
  /** Kernel name of the host-side veth end (the bridge port). */
  hostSide: string;
}

/** One end of a point-to-point link: a veth whose peer is in the other node. */
export interface LinkInterface extends LabInterfaceBase {
  kind: 'link';
  network: null;
  /** Index into Lab.links. */
  link: number;
  peer: { node: string; iface: string };
  hostSide: null;
}

export type LabInterface = NetworkInterface | LinkInterface;

export interface RouteNexthop {
  via: string;
  dev: string | null;
}

export interface LabRoute {
  dst: string; // CIDR; 0.0.0.0/0 for default
  /** Single-path route: next hop and/or interface (both null for an ECMP route). */
  via: string | null;
  dev: string | null;
  /** Kernel priority; absent: 0. Of routes to one destination the lowest wins. */
  metric?: number;
  /** ECMP: two or more next hops of one route (via and dev are then null). */
  nexthops?: RouteNexthop[];
  /** 'user': written in the topology; 'gateway': the default route via the first network's
   *  gateway that netlab adds, as Docker does, when the user gave no default route. */
  origin: 'user' | 'gateway';
}

export interface PortMapping {
  hostIp: string; // 0.0.0.0 when not given
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp';
}

export interface VolumeMount {
  source: string; // absolute path on the host
  target: string; // absolute path in the container
  readOnly: boolean;
}

/** A file copied into the container's writable layer at start (containerlab's startup-config). */
export interface NodeFile {
  /** Absolute path in the container. */
  target: string;
  /** Absolute path on the host (relative paths are resolved against the topology file). */
  source: string;
}

export interface Resources {
  cpuShares: number | null;
  cpus: number | null;
  memoryBytes: number | null;
  pids: number | null;
  /** CPUs the node may use, canonical list form ("0", "0-1", "0,2"); null: every CPU. */
  cpuset: string | null;
}

/** OSPF default interface cost netlab renders (FRR's own default depends on bandwidth). */
export const OSPF_DEFAULT_COST = 10;

/** Dynamic routing of a node, rendered into FRR's configuration (runtime/frr.ts). */
export interface LabRouting {
  /** IPv4-form router ID. */
  routerId: string;
  /** OSPFv2 in one area over these interfaces (names), each with its cost. */
  ospf: { area: string; interfaces: { name: string; cost: number }[] } | null;
  /** eBGP: the node's AS, its sessions (one per neighbour address) and the networks it advertises. */
  bgp: { asn: number; neighbors: { node: string; address: string; asn: number }[]; networks: string[] } | null;
}

export interface LabNode {
  name: string;
  image: string;
  /** Simulated host the node lives on, or null for the local machine. */
  host: string | null;
  networkMode: 'bridge' | 'none' | 'host';
  /** Named netns of the node (null for network_mode: host). */
  netns: string | null;
  interfaces: LabInterface[];
  routes: LabRoute[];
  command: string[] | null;
  /** Replaces the image's Entrypoint (and drops its Cmd), as `docker run --entrypoint`. */
  entrypoint: string[] | null;
  environment: Record<string, string>;
  ports: PortMapping[];
  volumes: VolumeMount[];
  /** Files copied into the container's writable layer before its command starts. */
  files: NodeFile[];
  workingDir: string | null;
  user: string | null;
  privileged: boolean;
  /** Canonical capability names (no CAP_ prefix; 'ALL' allowed), as written. */
  capAdd: string[];
  capDrop: string[];
  /** Which seccomp profile the node runs under (ignored when privileged). */
  seccomp: SeccompSetting;
  /** Namespaced sysctls set at start (key -> value). */
  sysctls: Record<string, string>;
  forwarding: boolean;
  resources: Resources;
  /** FRR routing (absent or null: none). */
  routing?: LabRouting | null;
  /** Run time only: its container has exited (its interfaces went down with it). */
  exited?: boolean;
}

export interface LabLinkEnd {
  node: string;
  iface: string;
  ipv4: Ipv4Address | null;
}

export interface LabLink {
  index: number;
  a: LabLinkEnd;
  b: LabLinkEnd;
  mtu: number;
  up: boolean;
}

export interface LabHost {
  name: string;
  /** Underlay address of the simulated machine (or the real machine's address). */
  address: string;
  prefixLen: number;
  /** Named netns of the simulated machine. */
  netns: string;
  /** Kernel name of the host-side underlay veth (on the underlay bridge). */
  underlaySide: string;
  /** Name of the underlay interface inside the host's netns. */
  underlayIface: string;
}

export interface LabCheck {
  index: number;
  kind: 'ping' | 'tcp' | 'http' | 'dns' | 'throughput';
  from: string;
  /** ping/tcp/throughput: node name or address; http: URL; dns: name to resolve. */
  target: string;
  /** tcp; throughput (default 5201). */
  port: number | null;
  count: number;
  /** ping/tcp/http: the whole try; ping: how long replies are waited for after the last
   *  request; throughput: how long connecting may take. */
  timeoutMs: number;
  /** How long the check is retried until it passes (`wait`, in ms); null: tried once. */
  waitMs: number | null;
  /** null: take the simulator's prediction. */
  expect: Expect | null;
  httpStatus: number | null;
  httpContains: string | null;
  dnsAddress: string | null;
  /** ping `expect: { max_loss }`: the most loss (percent) it passes with; absent or null: any
   *  reply will do. */
  maxLossPercent?: number | null;
  /** throughput: how long the sender sends (ms). */
  durationMs?: number | null;
  /** throughput `expect: { min }`: the least rate (bits per second) it passes with; absent or
   *  null: any data received will do. */
  minBitsPerSecond?: number | null;
  /** Human label, e.g. "ping client -> web". */
  label: string;
}

/** An image the lab declares (`images:`), built by netlab from Debian packages with mmdebstrap
 *  into the image store under `ref`; nodes that name it have `image` = `ref`. */
export interface LabImage {
  /** The key under `images:`. */
  name: string;
  /** Debian suite (codename or alias), as written. */
  debian: string;
  /** Package names, sorted, each once. */
  packages: string[];
  /** The store reference: netlab.invalid/<name>:<suite>-<hash of the recipe>. */
  ref: string;
}

export interface Lab {
  name: string;
  /** Absolute path of the topology file ('' when built in memory). */
  file: string;
  /** Short stable hash of the lab name: the ownership marker in kernel names. */
  id: string;
  /** IFLA_GROUP shared by every link the lab creates in the root netns. */
  group: number;
  underlay: { subnet: string; bridgeName: string } | null;
  hosts: LabHost[];
  networks: LabNetwork[];
  nodes: LabNode[];
  links: LabLink[];
  checks: LabCheck[];
  /** The images the file declares under `images:` (absent: none). */
  images?: LabImage[];
}
