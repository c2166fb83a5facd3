// The reachability simulator: from the Lab model alone, predicts whether an ICMP echo from a
// node reaches an address and comes back, and explains why (the path, or where and why it
// stops). It models what Linux and netlab do, so predictions can be compared with real pings:
//  - L2 segments: one per bridge or overlay network (all its attached interfaces, plus the
//    host machine's bridge when the network has a gateway), one per point-to-point link;
//  - the host machine is a participant: it owns every network gateway address, answers pings
//    to them, and does not forward between two lab networks (the lab's nftables isolation),
//    nor send anything to a lab subnet out of the machine (the table's leak guard);
//    nodes with network_mode host ARE the machine;
//  - per node: longest-prefix match over connected subnets of up interfaces and static routes
//    (a route whose next hop is not on a connected subnet of an up interface does not exist),
//    weak host model (any local address is accepted on any interface, ARP answered likewise),
//    forwarding only with `forwarding: true`, TTL 64 with loop detection;
//  - the echo reply is simulated too, from the destination back to the source address Linux
//    picked (the address of the outgoing interface);
//  - route choice: longest prefix, then connected, then the static route of lowest metric (a
//    floating one takes over when the better one cannot exist), then the routes FRR installs
//    (protocols.ts: eBGP over OSPF), computed from the cables that are up; a route with several
//    next hops (ECMP: static nexthops, equal-cost OSPF paths) is walked along every one, and
//    reaches only when every path does (the kernel's hash picks one per flow).
// Pure: no kernel, no I/O.
import type { Lab, LabCheck, LabNode, LabRoute } from './types.js';
import { cidrContains, ipToInt, isIpv4, parseCidr, type Cidr } from './ipam.js';
import { hostsAddress } from './hosts.js';
import { protocolRoutes, type ProtocolRoute, type Router } from './protocols.js';

export { hostsAddress };

// ---------------------------------------------------------------- public types

/** One participant on a path: the node (or the host machine), the interface the packet left
 *  (first hop) or arrived on (later hops), and that interface's address. */
export interface Hop {
  node: string;
  iface: string | null;
  address: string | null;
}

export interface Prediction {
  from: string;
  /** Node name, address, URL host or DNS name, as asked. */
  to: string;
  /** The address pinged (or resolved, for dns); null when there is none. */
  address: string | null;
  reach: boolean;
  /** The echo request's path, as far as it went. */
  path: Hop[];
  /** The echo reply's path, as far as it went (empty when the request did not arrive). */
  reply: Hop[];
  /** One line, e.g. "client1 eth0 -> web eth0 (same network lan)" or "r2 has no route to 10.3.0.10". */
  reason: string;
  /** Step-by-step decisions (routes taken, where it stops), for `explain`. */
  trace: string[];
}

/** TTL Linux gives an ICMP echo (ping's default). */
export const PING_TTL = 64;

// ---------------------------------------------------------------- internal model

/** Internal id of the host machine (cannot clash: node names cannot contain '@'). */
const MACHINE = '@host';
const DEFAULT_MACHINE_LABEL = 'host';

interface Port {
  owner: Part;
  /** Interface name in the node, or the bridge's kernel name for the machine. */
  name: string;
  network: string | null;
  link: number | null;
  segment: string;
  address: string | null;
  prefixLen: number;
  /** Administratively up: its addresses are local and its connected route exists. */
  adminUp: boolean;
  /** Frames actually pass (up, and for a link the peer end up too). */
  carrier: boolean;
  /** Why there is no carrier, when there is none. */
  downWhy: string | null;
  /** `impair: { loss: 100% }`: every packet it sends is dropped (a network attachment's: also
   *  every packet the bridge sends it). */
  dropsOut: boolean;
  dropsIn: boolean;
}

interface Part {
  id: string;
  node: LabNode | null;
  machine: boolean;
  none: boolean;
  forwarding: boolean;
  ports: Port[];
  routes: LabRoute[];
  /** Routes FRR installs here (computed for the world's cables). */
  proto: ProtocolRoute[];
}

interface World {
  lab: Lab;
  parts: Map<string, Part>;
  machine: Part;
  segments: Map<string, Port[]>;
  segNames: Map<string, string>;
}

interface Entry {
  cidr: Cidr;
  via: string | null;
  port: Port;
  text: string;
  proto: 'connected' | 'static' | 'ospf' | 'bgp';
  /** Kernel priority (static routes; FRR installs its routes with 20). */
  metric: number;
  /** OSPF: path cost; BGP: AS path. For explanations. */
  note: string | null;
}

function cidrOf(address: string, prefixLen: number): Cidr {
  return parseCidr(`${address}/${prefixLen}`)!;
}

function fmt(c: Cidr): string {
  return c.prefixLen === 0 ? 'default' : `${c.network}/${c.prefixLen}`;
}

/** True when `addr` is in a subnet of the lab (a network, a link, the underlay). */
function inLabSubnet(lab: Lab, addr: string): boolean {
  const subnets = [
    ...lab.networks.map((n) => n.subnet),
    ...lab.links.flatMap((l) => [l.a, l.b].map((e) => (e.ipv4 ? `${e.ipv4.address}/${e.ipv4.prefixLen}` : null))),
    lab.underlay?.subnet ?? null,
  ];
  return subnets.some((s) => s !== null && cidrContains(s, addr));
}

function isLoopback(addr: string): boolean {
  return cidrContains('127.0.0.0/8', addr);
}

function buildWorld(lab: Lab): World {
  const parts = new Map<string, Part>();
  const segments = new Map<string, Port[]>();
  const segNames = new Map<string, string>();
  const addToSeg = (p: Port) => {
    if (!segments.has(p.segment)) segments.set(p.segment, []);
    segments.get(p.segment)!.push(p);
  };
  const machine: Part = { id: MACHINE, node: null, machine: true, none: false, forwarding: true, ports: [], routes: [], proto: [] };
  parts.set(MACHINE, machine);
  for (const n of lab.networks) {
    segNames.set(`net:${n.name}`, n.name);
    // A gateway exists only on a bridge in the root namespace (resolve clears it elsewhere).
    if (!n.gateway || !n.subnet || n.driver !== 'bridge' || n.hosts.length > 0) continue;
    const port: Port = {
      owner: machine, name: n.bridgeName ?? n.name, network: n.name, link: null, segment: `net:${n.name}`,
      address: n.gateway, prefixLen: parseCidr(n.subnet)!.prefixLen, adminUp: true, carrier: true, downWhy: null, dropsOut: false, dropsIn: false,
    };
    machine.ports.push(port);
    addToSeg(port);
  }
  for (const l of lab.links) segNames.set(`link:${l.index}`, `link ${l.a.node}:${l.a.iface} <-> ${l.b.node}:${l.b.iface}`);
  for (const node of lab.nodes) {
    if (node.networkMode === 'host') continue;
    const part: Part = {
      id: node.name, node, machine: false, none: node.networkMode === 'none',
      forwarding: node.forwarding, ports: [], routes: node.networkMode === 'none' ? [] : node.routes, proto: [],
    };
    parts.set(node.name, part);
    if (part.none) continue;
    for (const f of node.interfaces) {
      const linkDown = f.kind === 'link' && f.link !== null && lab.links[f.link]?.up === false;
      const adminUp = f.up && !linkDown && !node.exited;
      const segment = f.kind === 'network' ? `net:${f.network}` : `link:${f.link}`;
      const port: Port = {
        owner: part, name: f.name, network: f.network, link: f.link, segment,
        address: f.ipv4?.address ?? null, prefixLen: f.ipv4?.prefixLen ?? 32,
        adminUp, carrier: adminUp, downWhy: adminUp ? null : node.exited ? `${node.name} exited (its interfaces went down with its container)` : `${node.name} ${f.name} is down`,
        dropsOut: f.impair?.lossPct === 100, dropsIn: f.kind === 'network' && f.impair?.lossPct === 100,
      };
      part.ports.push(port);
      addToSeg(port);
    }
  }
  // A veth has carrier only while both ends are up.
  for (const part of parts.values()) {
    for (const p of part.ports) {
      if (p.link === null || !p.adminUp) continue;
      const f = part.node!.interfaces.find((i) => i.name === p.name)!;
      const peer = f.peer ? parts.get(f.peer.node)?.ports.find((x) => x.name === f.peer!.iface) : undefined;
      if (!peer || !peer.adminUp) {
        p.carrier = false;
        p.downWhy = !f.peer ? 'it has no peer' : peer?.owner.node?.exited ? `its peer ${f.peer.node} exited: its container stopped, and its interfaces with it` : `its peer ${f.peer.node} ${f.peer.iface} is down`;
      }
    }
  }
  // The routing protocols converge over the cables that are up. A link that drops every
  // packet one way (loss 100%) carries no adjacency either way: hellos must go both ways.
  const silenced = (p: Port): boolean => {
    if (p.dropsOut || p.dropsIn) return true;
    if (p.link === null) return false;
    return (segments.get(p.segment) ?? []).some((q) => q !== p && q.dropsOut);
  };
  const routers: Router[] = [];
  for (const part of parts.values()) {
    const r = part.node?.routing;
    if (!r || part.none) continue;
    routers.push({
      id: part.id, routerId: r.routerId,
      ifaces: part.ports.filter((p) => p.address).map((p) => ({
        name: p.name, address: p.address!, prefixLen: p.prefixLen, segment: p.segment, usable: p.adminUp && p.carrier && !silenced(p),
        ospfCost: r.ospf?.interfaces.find((i) => i.name === p.name)?.cost ?? null,
      })),
      ospf: r.ospf !== null,
      bgp: r.bgp ? { asn: r.bgp.asn, neighbors: r.bgp.neighbors.map((n) => n.address), networks: r.bgp.networks } : null,
    });
  }
  if (routers.length > 0) for (const [id, routes] of protocolRoutes(routers)) parts.get(id)!.proto = routes;
  return { lab, parts, machine, segments, segNames };
}

function isLocal(part: Part, addr: string): boolean {
  if (isLoopback(addr)) return true;
  return part.ports.some((p) => p.adminUp && p.address === addr);
}

/** The routing table Linux would hold: connected subnets of up interfaces, then the static
 *  routes that can exist (next hop on a connected subnet of an up interface). */
type Table = { entries: Entry[]; rejected: { dst: Cidr; text: string; why: string }[] };
const tables = new WeakMap<Part, Table>();

function routingTable(part: Part): Table {
  const cached = tables.get(part);
  if (cached) return cached;
  const entries: Entry[] = [];
  const rejected: { dst: Cidr; text: string; why: string }[] = [];
  for (const p of part.ports) {
    if (!p.address) continue;
    const c = cidrOf(p.address, p.prefixLen);
    const text = `connected ${fmt(c)} dev ${p.name}`;
    if (p.adminUp) entries.push({ cidr: c, via: null, port: p, text, proto: 'connected', metric: 0, note: null });
    else rejected.push({ dst: c, text, why: `${p.name} is down` });
  }
  for (const r of part.routes) {
    const dst = parseCidr(r.dst);
    if (!dst) continue;
    const metric = r.metric ?? 0;
    const m = metric ? ` metric ${metric}` : '';
    if (r.nexthops) {
      // ECMP: the next hops that can exist are used; none left and the route is gone.
      const text = `route ${fmt(dst)}${m}`;
      const why: string[] = [];
      const before = entries.length;
      for (const h of r.nexthops) {
        const got = nexthopPort(part, h.via, h.dev);
        if (typeof got === 'string') { why.push(got); continue; }
        entries.push({ cidr: dst, via: h.via, port: got, text: `${text} nexthop via ${h.via} dev ${got.name}`, proto: 'static', metric, note: null });
      }
      if (entries.length === before) rejected.push({ dst, text, why: why.join('; ') });
      continue;
    }
    const text = `route ${fmt(dst)}${r.via ? ` via ${r.via}` : ''}${r.dev ? ` dev ${r.dev}` : ''}${m}`;
    if (r.via === null) {
      const dev = r.dev === null ? null : part.ports.find((p) => p.name === r.dev) ?? null;
      if (r.dev !== null && !dev) { rejected.push({ dst, text, why: `there is no interface ${r.dev}` }); continue; }
      if (dev && !dev.adminUp) { rejected.push({ dst, text, why: `${dev.name} is down` }); continue; }
      if (!dev) continue;
      entries.push({ cidr: dst, via: null, port: dev, text, proto: 'static', metric, note: null });
      continue;
    }
    const got = nexthopPort(part, r.via, r.dev);
    if (typeof got === 'string') { rejected.push({ dst, text, why: got }); continue; }
    entries.push({ cidr: dst, via: r.via, port: got, text: r.dev ? text : `route ${fmt(dst)} via ${r.via} dev ${got.name}${m}`, proto: 'static', metric, note: null });
  }
  for (const r of part.proto) {
    const dst = parseCidr(r.dst)!;
    const note = r.proto === 'ospf' ? `OSPF cost ${r.cost}` : `BGP AS path ${r.asPath!.join(' ')}`;
    for (const h of r.nexthops) {
      const port = part.ports.find((p) => p.name === h.dev);
      if (!port) continue;
      entries.push({ cidr: dst, via: h.via, port, text: `${r.proto} ${fmt(dst)} via ${h.via} dev ${h.dev} (${note})`, proto: r.proto, metric: 20, note });
    }
  }
  const t = { entries, rejected };
  tables.set(part, t);
  return t;
}

/** The port a next hop `via` (optionally on `dev`) leaves by, or why it cannot exist. */
function nexthopPort(part: Part, via: string, devName: string | null): Port | string {
  const dev = devName === null ? null : part.ports.find((p) => p.name === devName) ?? null;
  if (devName !== null && !dev) return `there is no interface ${devName}`;
  if (dev && !dev.adminUp) return `${dev.name} is down`;
  const on = (p: Port) => p.address !== null && p.address !== via && cidrContains(cidrOf(p.address, p.prefixLen), via);
  const port = part.ports.find((p) => p.adminUp && on(p) && (!dev || p === dev));
  if (port) return port;
  const down = part.ports.find((p) => !p.adminUp && on(p));
  return down ? `next hop ${via} is behind ${down.name}, which is down` : `next hop ${via} is not on a connected subnet${dev ? ` of ${dev.name}` : ''}`;
}

const PROTO_ORDER = { connected: 0, static: 1, bgp: 2, ospf: 3 } as const;

/** Of the routes to one prefix, the ones the kernel forwards by (see lookup). */
function winners(all: Entry[]): Entry[] {
  if (all.length === 0) return [];
  const rank = Math.min(...all.map((e) => PROTO_ORDER[e.proto]));
  let chosen = all.filter((e) => PROTO_ORDER[e.proto] === rank);
  if (rank === 0) chosen = chosen.slice(0, 1);
  const metric = Math.min(...chosen.map((e) => e.metric));
  return chosen.filter((e) => e.metric === metric);
}

/** Longest-prefix match; among routes of that prefix a connected one, else the static route(s)
 *  of lowest metric, else eBGP's, else OSPF's. Several entries: one route's ECMP next hops. */
function lookup(part: Part, dst: string): { entries: Entry[]; rejected: { dst: Cidr; text: string; why: string }[] } {
  const t = routingTable(part);
  let bestLen = -1;
  for (const e of t.entries) if (cidrContains(e.cidr, dst) && e.cidr.prefixLen > bestLen) bestLen = e.cidr.prefixLen;
  const chosen = bestLen >= 0 ? winners(t.entries.filter((e) => e.cidr.prefixLen === bestLen && cidrContains(e.cidr, dst))) : [];
  const rejected = t.rejected.filter((r) => cidrContains(r.dst, dst) && r.dst.prefixLen > bestLen);
  return { entries: chosen, rejected };
}

// ---------------------------------------------------------------- walking a packet

interface WalkResult {
  ok: boolean;
  /** Where the packet ended (delivered, or where it stopped). */
  at: Part;
  hops: Hop[];
  /** The participants in order (for comparing request and reply paths). */
  parts: Part[];
  /** Segments crossed, in order. */
  segs: string[];
  /** Source address used (picked at the origin unless given). */
  source: string | null;
  msg: string;
  trace: string[];
  /** At each ECMP decision on the way, how many next hops there were (choices[i] picked one). */
  branches: number[];
  /** The route each participant used, in order. */
  used: Entry[];
}

class Walker {
  constructor(private w: World, private machineLabel: string) {}

  label(p: Part): string {
    return p.machine ? this.machineLabel : p.id;
  }

  /** Readable hop: "r1 eth0", or "host [lan gateway]" for the machine. */
  hopText(h: Hop, part: Part): string {
    if (!part.machine) return h.iface ? `${h.node} ${h.iface}` : h.node;
    const port = part.ports.find((p) => p.name === h.iface);
    return port?.network ? `${h.node} [${port.network} gateway]` : h.node;
  }

  private noRoute(part: Part, dst: string, rejected: { dst: Cidr; text: string; why: string }[]): string {
    const who = this.label(part);
    if (part.machine) {
      const host = who === DEFAULT_MACHINE_LABEL ? 'the host' : `${who} (the host)`;
      // netlab's table drops traffic to a lab subnet that would leave through the uplink.
      if (inLabSubnet(this.w.lab, dst)) return `${host} has no route to ${dst} within the lab, and the lab's own subnets never leave the machine`;
      return `${host} has no route to ${dst} within the lab (what lies beyond the lab, through the host's own uplink, is not predicted)`;
    }
    if (part.none) return `${who} has no route to ${dst} (network_mode none: loopback only)`;
    // The most specific route that would have been used, had it existed.
    const best = [...rejected].sort((x, y) => y.dst.prefixLen - x.dst.prefixLen)[0];
    const extra = best ? ` (${best.text} is unusable: ${best.why})` : '';
    return `${who} has no route to ${dst}${extra}`;
  }

  /** One path of a packet; `choices` picks the next hop at each ECMP route met (0 when absent). */
  walk(origin: Part, dst: string, fixedSource: string | null, choices: number[] = []): WalkResult {
    const hops: Hop[] = [];
    const parts: Part[] = [];
    const segs: string[] = [];
    const trace: string[] = [];
    const branches: number[] = [];
    const used: Entry[] = [];
    let source = fixedSource;
    const res = (ok: boolean, at: Part, msg: string): WalkResult => ({ ok, at, hops, parts, segs, source, msg, trace, branches, used });

    if (isLocal(origin, dst)) {
      const port = origin.ports.find((p) => p.adminUp && p.address === dst);
      hops.push({ node: this.label(origin), iface: port ? port.name : 'lo', address: dst });
      parts.push(origin);
      source = source ?? dst;
      trace.push(`${this.label(origin)}: ${dst} is its own address (${port ? port.name : 'loopback'}): delivered locally`);
      return res(true, origin, `${dst} is ${this.label(origin)}'s own address (local)`);
    }

    let cur = origin;
    let ingress: Port | null = null;
    const visited: Part[] = [];
    let forwards = 0;
    for (;;) {
      if (visited.includes(cur)) {
        const cycle = [...visited.slice(visited.indexOf(cur)), cur].map((p) => this.label(p)).join(' -> ');
        trace.push(`routing loop: ${cycle}`);
        return res(false, cur, `routing loop for ${dst}: ${cycle} (the TTL expires)`);
      }
      visited.push(cur);
      const who = this.label(cur);
      const here = cur === origin ? who : this.hopText(hops[hops.length - 1], cur);
      const { entries, rejected } = lookup(cur, dst);
      if (entries.length === 0) {
        const msg = this.noRoute(cur, dst, rejected);
        trace.push(`${here}: ${msg}`);
        return res(false, cur, msg);
      }
      let entry = entries[0];
      if (entries.length > 1) {
        const k = choices[branches.length] ?? 0;
        branches.push(entries.length);
        entry = entries[k];
        trace.push(`${here}: ECMP, ${entries.length} next hops (${entries.map((e) => e.via ?? e.port.name).join(', ')}); this path takes ${entry.via ?? entry.port.name}`);
      }
      used.push(entry);
      if (cur === origin) {
        if (source === null) {
          source = entry.port.address ?? cur.ports.find((p) => p.adminUp && p.address)?.address ?? null;
          if (source === null) {
            const msg = `${who} has no address to send from (${entry.port.name} has none)`;
            trace.push(`${here}: ${msg}`);
            return res(false, cur, msg);
          }
        }
        hops.push({ node: who, iface: entry.port.name, address: source });
        parts.push(cur);
        trace.push(`${here}: ${entry.text}, source ${source}`);
      } else {
        if (cur.machine) {
          if (ingress && ingress.segment !== entry.port.segment) {
            const msg = `the host does not route between lab networks (isolation): ${this.w.segNames.get(ingress.segment)} -> ${this.w.segNames.get(entry.port.segment)}`;
            trace.push(`${here}: ${msg}`);
            return res(false, cur, msg);
          }
        } else if (!cur.forwarding) {
          const msg = `${who} does not forward (forwarding: false)`;
          trace.push(`${here}: ${dst} is not its address, and ${msg}`);
          return res(false, cur, msg);
        }
        forwards++;
        if (forwards >= PING_TTL) {
          const msg = `TTL exceeded at ${who} after ${PING_TTL} hops`;
          trace.push(`${here}: ${msg}`);
          return res(false, cur, msg);
        }
        trace.push(`${here}: forwards by ${entry.text}`);
      }
      const out = entry.port;
      if (!out.carrier) {
        const msg = `${who} ${out.name} has no carrier (${out.downWhy})`;
        trace.push(`${here}: ${msg}`);
        return res(false, cur, msg);
      }
      if (out.dropsOut) {
        const msg = `${who} ${out.name} drops every packet it sends (impair loss 100%)`;
        trace.push(`${here}: ${msg}`);
        return res(false, cur, msg);
      }
      const nextHop = entry.via ?? dst;
      const seg = this.w.segments.get(out.segment) ?? [];
      const segName = this.w.segNames.get(out.segment) ?? out.segment;
      const exact = seg.find((p) => p !== out && p.address === nextHop);
      let recv: Port | undefined;
      if (exact && exact.carrier) recv = exact;
      else if (!exact) recv = seg.find((p) => p !== out && p.carrier && p.owner !== cur && isLocal(p.owner, nextHop));
      if (!recv) {
        const role = entry.via ? `next hop ${nextHop} of ${who}'s ${entry.text}` : null;
        const msg = exact
          ? `${this.label(exact.owner)} ${exact.name} (${nextHop}) is down: nothing is delivered to it on ${segName}`
          : `no host ${nextHop} on segment ${segName}${role ? ` (${role})` : ''}`;
        trace.push(`${here}: ${msg}`);
        return res(false, cur, msg);
      }
      if (recv.dropsIn) {
        const msg = `${this.label(recv.owner)} ${recv.name} drops every packet it receives (impair loss 100%)`;
        trace.push(`${here}: ${msg}`);
        return res(false, cur, msg);
      }
      segs.push(out.segment);
      const nxt = recv.owner;
      hops.push({ node: this.label(nxt), iface: recv.name, address: recv.address });
      parts.push(nxt);
      if (isLocal(nxt, dst)) {
        const own = nxt.ports.find((p) => p.adminUp && p.address === dst);
        trace.push(`${this.hopText(hops[hops.length - 1], nxt)}: ${dst} is its own address${own && own !== recv ? ` (on ${own.name})` : ''}: delivered`);
        return res(true, nxt, '');
      }
      cur = nxt;
      ingress = recv;
    }
  }
}

// ---------------------------------------------------------------- predictions

function partOf(w: World, node: LabNode): Part {
  return node.networkMode === 'host' ? w.machine : w.parts.get(node.name)!;
}

function findNode(lab: Lab, name: string): LabNode | undefined {
  return lab.nodes.find((n) => n.name === name);
}

function fail(from: string, to: string, address: string | null, reason: string, trace: string[] = []): Prediction {
  return { from, to, address, reach: false, path: [], reply: [], reason, trace: trace.length ? trace : [reason] };
}

/** At most this many ECMP path combinations are walked per prediction (request and reply). */
const MAX_PATHS = 64;

/** Every combination of ECMP choices `run` meets (depth first), up to MAX_PATHS runs: `run`
 *  walks with the choices given and returns how many options each decision on its way had. */
function forEachChoice(run: (choices: number[]) => number[]): void {
  let c: number[] = [];
  for (let n = 0; n < MAX_PATHS; n++) {
    const b = run(c);
    const next = c.slice(0, b.length);
    while (next.length < b.length) next.push(0);
    let i = next.length - 1;
    while (i >= 0 && next[i] + 1 >= b[i]) i--;
    if (i < 0) return;
    c = next.slice(0, i + 1);
    c[i]++;
  }
}

function predictIn(w: World, fromNode: LabNode, to: string, address: string, toNode: LabNode | null): Prediction {
  const paths: Prediction[] = [];
  forEachChoice((fc) => {
    let fb: number[] = [];
    forEachChoice((bc) => {
      const r = predictPath(w, fromNode, to, address, toNode, fc, bc);
      fb = r.fwdBranches;
      paths.push(r.p);
      return r.backBranches;
    });
    return fb;
  });
  if (paths.length === 1) return paths[0];
  const bad = paths.find((p) => !p.reach);
  if (!bad) return { ...paths[0], reason: `${paths[0].reason} (ECMP: all ${paths.length} paths reach)` };
  const good = paths.find((p) => p.reach);
  const note = good ? `not every ECMP path reaches (the kernel hashes each flow onto one of them; ${good.path.map((h) => h.node).join(' -> ')} reaches)` : 'no ECMP path reaches';
  return { ...bad, reason: `${note}: ${bad.reason}`, trace: [...bad.trace, `(${paths.length} ECMP path combinations walked)`] };
}

/** A protocol route's note ("OSPF cost 40 from r1"), the first one the request used. */
function protoNote(r: WalkResult, label: (p: Part) => string): string {
  const i = r.used.findIndex((e) => e.note !== null);
  return i < 0 ? '' : `, via ${r.used[i].note} from ${label(r.parts[i])}`;
}

function predictPath(
  w: World, fromNode: LabNode, to: string, address: string, toNode: LabNode | null, fc: number[], bc: number[],
): { p: Prediction; fwdBranches: number[]; backBranches: number[] } {
  const from = fromNode.name;
  if (!isIpv4(address)) return { p: fail(from, to, address, `"${address}" is not an IPv4 address`), fwdBranches: [], backBranches: [] };
  const machineLabel = fromNode.networkMode === 'host' ? from : toNode?.networkMode === 'host' ? toNode.name : DEFAULT_MACHINE_LABEL;
  const wk = new Walker(w, machineLabel);
  const origin = partOf(w, fromNode);
  const fwd = wk.walk(origin, address, null, fc);
  const done = (p: Prediction, back: number[] = []) => ({ p, fwdBranches: fwd.branches, backBranches: back });
  const trace = [`request ${fwd.source ?? from} -> ${address}:`, ...fwd.trace.map((t) => `  ${t}`)];
  const base = { from, to, address, path: fwd.hops, trace };
  if (!fwd.ok) return done({ ...base, reach: false, reply: [], reason: fwd.msg });
  const render = (r: WalkResult) => r.hops.map((h, i) => wk.hopText(h, r.parts[i])).join(' -> ');
  if (fwd.at === origin) {
    return done({ ...base, reach: true, reply: [], reason: `${render(fwd)}: ${fwd.msg}` });
  }
  const back = wk.walk(fwd.at, fwd.source!, address, bc);
  trace.push(`reply ${address} -> ${fwd.source}:`, ...back.trace.map((t) => `  ${t}`));
  if (!back.ok) {
    return done({ ...base, reach: false, reply: back.hops, reason: `reply from ${wk.label(fwd.at)} to ${fwd.source}: ${back.msg}` }, back.branches);
  }
  if (back.at !== origin) {
    return done({ ...base, reach: false, reply: back.hops, reason: `reply from ${wk.label(fwd.at)} to ${fwd.source} is delivered to ${wk.label(back.at)}, not ${wk.label(origin)}` }, back.branches);
  }
  let why: string;
  if (fwd.parts.length === 2) {
    const seg = fwd.segs[0];
    why = seg.startsWith('net:') ? `same network ${w.segNames.get(seg)}` : w.segNames.get(seg) ?? seg;
  } else {
    why = `routed by ${fwd.parts.slice(1, -1).map((p) => wk.label(p)).join(', ')}${protoNote(fwd, (p) => wk.label(p))}`;
  }
  const sameWay = back.parts.length === fwd.parts.length && back.parts.every((p, i) => p === fwd.parts[fwd.parts.length - 1 - i]);
  const replyNote = sameWay ? '' : `; reply ${render(back)}`;
  return done({ ...base, reach: true, reply: back.hops, reason: `${render(fwd)} (${why})${replyNote}` }, back.branches);
}

/** Ping from node `from` to `address`: does the echo get there and the reply come back? */
export function predictPing(lab: Lab, from: string, address: string): Prediction {
  const node = findNode(lab, from);
  if (!node) return fail(from, address, address, `no node ${from} in lab ${lab.name}`);
  return predictIn(buildWorld(lab), node, address, address, null);
}

/** The addresses of networks with a gateway, i.e. the host machine's addresses in the lab. */
function gatewayNetworks(lab: Lab): { name: string; gateway: string }[] {
  return lab.networks
    .filter((n) => n.gateway && n.subnet && n.driver === 'bridge' && n.hosts.length === 0)
    .map((n) => ({ name: n.name, gateway: n.gateway! }));
}


/** The address `netlab check --matrix` pings for node `to` from node `from`: `to`'s address on
 *  a network or link shared with `from` (as /etc/hosts has it), else its first address; for a
 *  host-mode `to`, the gateway of a network `from` is on, else any gateway of the lab. Null
 *  when `to` has no address (network_mode none, or host mode in a lab without gateways). */
export function targetAddress(lab: Lab, from: string, to: string): string | null {
  const a = findNode(lab, from);
  const b = findNode(lab, to);
  if (!b) return null;
  if (b.networkMode === 'host') {
    const gws = gatewayNetworks(lab);
    const mine = a?.networkMode === 'host' ? gws : gws.filter((g) => a?.interfaces.some((f) => f.network === g.name && f.ipv4));
    return (mine[0] ?? gws[0])?.gateway ?? null;
  }
  const shared = a ? hostsAddress(lab, a, b) : null;
  return shared ?? b.interfaces.find((f) => f.ipv4)?.ipv4?.address ?? null;
}

function noAddressReason(node: LabNode): string {
  if (node.networkMode === 'none') return `${node.name} has no address (network_mode none: loopback only)`;
  if (node.networkMode === 'host') return `${node.name} has no address in the lab (network_mode host, and no network has a gateway on the host)`;
  return `${node.name} has no address`;
}

function pairIn(w: World, from: LabNode, to: LabNode): Prediction {
  const address = targetAddress(w.lab, from.name, to.name);
  if (address === null) return fail(from.name, to.name, null, noAddressReason(to));
  return predictIn(w, from, to.name, address, to);
}

/** Ping from node `from` to node `to`, at `targetAddress(lab, from, to)`. */
export function predictPair(lab: Lab, from: string, to: string): Prediction {
  const a = findNode(lab, from);
  const b = findNode(lab, to);
  if (!a) return fail(from, to, null, `no node ${from} in lab ${lab.name}`);
  if (!b) return fail(from, to, null, `no node ${to} in lab ${lab.name}`);
  return pairIn(buildWorld(lab), a, b);
}

/** Every ordered pair of distinct nodes, in node order. */
export function predictMatrix(lab: Lab): Prediction[] {
  const w = buildWorld(lab);
  const out: Prediction[] = [];
  for (const a of lab.nodes) for (const b of lab.nodes) if (a !== b) out.push(pairIn(w, a, b));
  return out;
}

/** Name resolution inside `from` through its generated /etc/hosts (the only source netlab
 *  provides for lab names): the address `name` maps to, or null. */
export function resolveName(lab: Lab, from: string, name: string): string | null {
  const a = findNode(lab, from);
  const lower = name.toLowerCase();
  if (lower === 'localhost') return '127.0.0.1';
  if (!a) return null;
  if (lower === a.name.toLowerCase()) return '127.0.1.1';
  const b = lab.nodes.find((n) => n.name.toLowerCase() === lower);
  return b ? hostsAddress(lab, a, b) : null;
}

function withNote(p: Prediction, note: string): Prediction {
  return p.reach ? { ...p, reason: `${p.reason}; ${note}` } : p;
}

/** The expected result of a check of the lab. ping, tcp and http go to the address of the
 *  target (an IPv4 as given, or `targetAddress` of the node); tcp and http are predicted by L3
 *  reachability of that address (a listener is assumed). dns names resolve through the
 *  generated /etc/hosts only. */
export function predictCheck(lab: Lab, check: LabCheck): Prediction {
  return checkIn(buildWorld(lab), check);
}

/** Predicts many checks of one lab, building the model's routing world once (a 100-node
 *  matrix is 9,900 checks). The lab must not change while the predictor is in use. */
export function checkPredictor(lab: Lab): (check: LabCheck) => Prediction {
  const w = buildWorld(lab);
  return (check) => checkIn(w, check);
}

function checkIn(w: World, check: LabCheck): Prediction {
  const lab = w.lab;
  const fromNode = findNode(lab, check.from);
  if (!fromNode) return fail(check.from, check.target, null, `no node ${check.from} in lab ${lab.name}`);
  const toward = (target: string): Prediction => {
    if (isIpv4(target)) return predictIn(w, fromNode, target, target, null);
    const toNode = findNode(lab, target);
    if (!toNode) return fail(check.from, target, null, `"${target}" is neither a node of lab ${lab.name} nor an IPv4 address`);
    return pairIn(w, fromNode, toNode);
  };
  switch (check.kind) {
    case 'ping':
      return toward(check.target);
    case 'tcp': {
      const p = toward(check.target);
      return published(w, fromNode, p, check.port!) ?? withNote(p, `a listener on port ${check.port} is assumed`);
    }
    case 'http': {
      let url: URL;
      try { url = new URL(check.target); } catch { return fail(check.from, check.target, null, `"${check.target}" is not a URL`); }
      const host = url.hostname;
      const port = url.port || '80';
      // Probed at the address, like ping and tcp (the name is sent as the Host header only).
      let p: Prediction;
      if (isIpv4(host)) p = predictIn(w, fromNode, host, host, null);
      else if (host === 'localhost') p = predictIn(w, fromNode, host, '127.0.0.1', null);
      else {
        const toNode = lab.nodes.find((n) => n.name.toLowerCase() === host.toLowerCase());
        if (!toNode) return fail(check.from, host, null, `"${host}" is neither a node of lab ${lab.name} nor an IPv4 address`);
        p = pairIn(w, fromNode, toNode);
      }
      return published(w, fromNode, p, Number(port)) ?? withNote(p, `an HTTP server on port ${port} is assumed`);
    }
    case 'dns':
      return predictDns(lab, fromNode, check);
    case 'throughput':
      // Like tcp: netlab's own receiver listens, and a rate limit slows traffic without
      // stopping it, so only reachability is predicted, not the rate.
      return withNote(toward(check.target), `netlab's receiver listens on port ${check.port ?? 5201}; the rate is measured, not predicted`);
  }
}

/** A tcp/http check that ends at the machine (a gateway address, or loopback from a host-mode
 *  node) on a port a node publishes: it reaches when the port is published on that address
 *  (or on 0.0.0.0) and the machine reaches the node, whose address the port is forwarded to;
 *  published on another address only, nothing there is netlab's to predict but the port's
 *  absence: fail. Null: not a published port (the usual listener assumption holds). */
function published(w: World, from: LabNode, p: Prediction, port: number): Prediction | null {
  if (!p.reach || p.address === null) return null;
  const toMachine = from.networkMode === 'host' ? isLoopback(p.address) || w.machine.ports.some((x) => x.address === p.address) : w.machine.ports.some((x) => x.address === p.address);
  if (!toMachine) return null;
  for (const n of w.lab.nodes) {
    for (const m of n.ports) {
      if (m.hostPort !== port || m.protocol !== 'tcp') continue;
      const covers = m.hostIp === '0.0.0.0' || m.hostIp === p.address || (isLoopback(p.address) && m.hostIp.startsWith('127.'));
      if (!covers) return { ...p, reach: false, reason: `port ${port} is published by ${n.name} on ${m.hostIp} only, not on ${p.address}` };
      const addr = n.interfaces.find((f) => f.kind === 'network' && f.ipv4 && w.machine.ports.some((x) => x.network === f.network))?.ipv4?.address;
      if (!addr) return null;
      const back = new Walker(w, 'host').walk(w.machine, addr, null);
      if (!back.ok) return { ...p, reach: false, reason: `port ${port} is forwarded to ${n.name} (${addr}), which the host does not reach: ${back.msg}` };
      return { ...p, reason: `${p.reason}; port ${port} is published by ${n.name} (forwarded to ${addr}:${m.containerPort})` };
    }
  }
  return null;
}

function predictDns(lab: Lab, from: LabNode, check: LabCheck): Prediction {
  const name = check.target;
  const address = resolveName(lab, from.name, name);
  const base = { from: from.name, to: name, path: [] as Hop[], reply: [] as Hop[] };
  const self = name.toLowerCase() === from.name.toLowerCase();
  if (address === null) {
    const node = lab.nodes.find((n) => n.name.toLowerCase() === name.toLowerCase());
    let why: string;
    if (!node) why = `${name} is not a node of lab ${lab.name}: ${from.name}'s /etc/hosts does not list it (other resolvers are not predicted)`;
    else if (from.networkMode === 'none') why = `${from.name} has network_mode none: its /etc/hosts lists only itself`;
    else if (node.networkMode !== 'bridge' || !node.interfaces.some((f) => f.ipv4)) why = `${node.name} has no address, so ${from.name}'s /etc/hosts does not list it`;
    else why = `${node.name} is not in ${from.name}'s /etc/hosts: they share no network or link`;
    return { ...base, address: null, reach: false, reason: why, trace: [why] };
  }
  // A node's own name is 127.0.1.1: that line comes first in its /etc/hosts.
  if (check.dnsAddress !== null && address !== check.dnsAddress) {
    const why = `${name} resolves in ${from.name} to ${address}, not ${check.dnsAddress}`;
    return { ...base, address, reach: false, reason: why, trace: [why] };
  }
  const why = self
    ? `${name} is ${from.name}'s own name (${address} in its /etc/hosts)`
    : `${name} resolves in ${from.name} to ${address} (/etc/hosts: shared network or link)`;
  return { ...base, address, reach: true, reason: why, trace: [why] };
}

/** A multi-line human explanation: the verdict, each step of the request and of the reply,
 *  and where and why it stops. */
export function explain(p: Prediction): string {
  const target = p.address && p.address !== p.to ? `${p.to} (${p.address})` : p.to;
  const lines = [`${p.from} -> ${target}: ${p.reach ? 'reach' : 'fail'}`];
  for (const t of p.trace) lines.push(`  ${t}`);
  lines.push(`  ${p.reach ? 'result' : 'stops'}: ${p.reason}`);
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------- routing tables

/** One destination of a node's table as the kernel should forward to it: the route that wins
 *  (connected, the lowest-metric static route, else FRR's), with every next hop it has. */
export interface PredictedRoute {
  dst: string;
  proto: 'connected' | 'static' | 'ospf' | 'bgp';
  metric: number;
  nexthops: { via: string | null; dev: string }[];
  note: string | null;
}

/** The winning route to each destination in node `name`'s table, sorted by destination (empty
 *  for a node without its own network namespace). */
export function predictedTable(lab: Lab, name: string): PredictedRoute[] {
  return tableIn(buildWorld(lab), name);
}

/** Every node's predicted table, the routing world built once (a ring of 20 routers runs its
 *  SPF and path vector once, not once per node). */
export function predictedTables(lab: Lab): Map<string, PredictedRoute[]> {
  const w = buildWorld(lab);
  return new Map(lab.nodes.map((n) => [n.name, tableIn(w, n.name)]));
}

function tableIn(w: World, name: string): PredictedRoute[] {
  const part = w.parts.get(name);
  if (!part || part.machine || part.none) return [];
  const t = routingTable(part);
  const out: PredictedRoute[] = [];
  for (const dst of [...new Set(t.entries.map((e) => fmtCidr(e.cidr)))]) {
    const chosen = winners(t.entries.filter((e) => fmtCidr(e.cidr) === dst));
    out.push({
      dst, proto: chosen[0].proto, metric: chosen[0].metric, note: chosen[0].note,
      nexthops: chosen.map((e) => ({ via: e.via, dev: e.port.name })).sort((a, b) => `${a.via} ${a.dev}`.localeCompare(`${b.via} ${b.dev}`)),
    });
  }
  return out.sort((a, b) => (ipToInt(parseCidr(a.dst)!.network) - ipToInt(parseCidr(b.dst)!.network)) || parseCidr(a.dst)!.prefixLen - parseCidr(b.dst)!.prefixLen);
}

function fmtCidr(c: Cidr): string {
  return `${c.network}/${c.prefixLen}`;
}
