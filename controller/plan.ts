// The plan: the ordered list of kernel objects and processes `netlab up` creates for a Lab,
// with the exact names they will have and one reason per step. Pure and deterministic (the
// same Lab gives byte-identical JSON), so `netlab plan` needs no root and apply logic is
// testable against a recording fake. The controller executes these steps in order.
import { containerSpec, type ContainerSpec } from '../runtime/container.js';
import type { Lab, LabNode, RouteNexthop } from '../topology/types.js';
import { nftTable } from '../topology/names.js';
import { iptComment, labIfPrefix, labRuleset, needsFirewall, NFT_FAMILY } from './firewall.js';
import { NetlabError } from '../topology/errors.js';
import { routeText } from './routes.js';
import * as os from 'node:os';
import { fmtRate, fmtTime, impairmentText, isEmptyImpairment, netemFeatures } from '../topology/impair.js';
import { tbfFor, type QdiscSpec } from './kernel/tc.js';

/** null netns = the host's own (root) namespace. */
export type Ns = string | null;

export type Phase = 'underlay' | 'networks' | 'namespaces' | 'interfaces' | 'routes' | 'firewall' | 'containers';

export type PlanStepBody =
  | { op: 'netns.add'; netns: string; reason: string }
  | { op: 'sysctl.set'; netns: Ns; key: string; value: string; reason: string }
  | { op: 'bridge.add'; netns: Ns; name: string; mtu: number; alias: string; group: number; reason: string }
  | {
      op: 'veth.add'; netns: Ns; name: string; mac: string | null; peerNetns: Ns; peerName: string; peerMac: string | null;
      mtu: number; master: string | null; alias: string; peerAlias: string; group: number; reason: string;
    }
  | {
      op: 'vxlan.add'; netns: Ns; name: string; vni: number; port: number; local: string; dev: string | null;
      master: string; mtu: number; alias: string; group: number; reason: string;
    }
  | { op: 'addr.add'; netns: Ns; dev: string; address: string; reason: string }
  | { op: 'link.up'; netns: Ns; dev: string; reason: string }
  | { op: 'route.add'; netns: Ns; dst: string; via: string | null; dev: string | null; metric?: number; nexthops?: RouteNexthop[]; reason: string }
  | { op: 'fdb.append'; netns: Ns; dev: string; mac: string; dst: string; reason: string }
  | { op: 'neigh.add'; netns: Ns; dev: string; ip: string; mac: string; reason: string }
  | { op: 'nft.apply'; family: string; table: string; ruleset: string; reason: string }
  /** The root qdisc netlab gives an interface for its impairment (tbf, or netem). */
  | { op: 'qdisc.set'; netns: Ns; dev: string; qdisc: QdiscSpec; reason: string }
  /** Back to the kernel's default qdisc (`netlab impair --clear`; never in an `up` plan). */
  | { op: 'qdisc.clear'; netns: Ns; dev: string; reason: string }
  /** A node's random-loss rules in its own namespace (kernels without netem). */
  | { op: 'nft.netns'; netns: string; table: string; ruleset: string; reason: string }
  /** Accept rules for `-i/-o <interfaces>` in DOCKER-USER, or in FORWARD when its policy is
   *  DROP; nothing when neither is there (decided when applied: it is the host's state). */
  | { op: 'iptables.accept'; netns: null; lab: string; interfaces: string; comment: string; reason: string }
  | {
      op: 'container.start'; node: string; netns: Ns; image: string; command: string[] | null;
      hostname: string; reason: string;
      /** The whole container as the runtime starts it (apply's only input for it). */
      spec: ContainerSpec;
    };

/** A step, tagged with the phase of `up` it belongs to (for progress output). */
export type PlanStep = PlanStepBody & { phase: Phase };

export type PlanOp = PlanStep['op'];


export interface Plan {
  lab: string;
  id: string;
  group: number;
  /** Set when the plan is one machine's part of the lab (`--as HOST`). */
  as?: string;
  steps: PlanStep[];
  counts: Partial<Record<PlanOp, number>>;
}

/** Namespace holding the bridge of a network for a node: its simulated host's, or the root
 *  (the local machine's, or with `as` that host's, which is the machine netlab runs on). */
function bridgeNs(lab: Lab, host: string | null, as: string | null = null): Ns {
  return host === null || host === as ? null : lab.hosts.find((h) => h.name === host)!.netns;
}

/** A plan for a host that is not in the lab: a usage error (exit 2), like any unknown `--as`. */
export class PlanError extends NetlabError {
  constructor(message: string) {
    super(message, { exitCode: 2 });
  }
}

export interface PlanOptions {
  /** Include the container processes (the runtime); without them nodes are bare namespaces.
   *  Default: true. */
  containers?: boolean;
  /** Build only this host's part of the lab, on that machine itself (`up --as HOST`): its root
   *  namespace is the host, so there is no underlay bridge, veth or host namespace; overlay
   *  bridges and VXLAN devices live in the root namespace with the host's address as the
   *  tunnel source; only the nodes placed on this host (`host: HOST`) are built, and the
   *  forwarding entries point at the other hosts' addresses. Running it on every host forms
   *  the lab. */
  as?: string;
  /** The kernel can make netem qdiscs (controller/kernel's netemAvailable()): delay, jitter,
   *  duplicate, corrupt and reorder need it; loss then goes in netem too, else in nftables.
   *  Default: false. */
  netem?: boolean;
}

/** The nft table holding a node's loss rules, in its own namespace. */
export const IMPAIR_TABLE = 'netlab_impair';

/** The steps that give NODE's interfaces their impairments: a qdisc per impaired device (a
 *  network attachment's bridge side too: both directions), and on a kernel without netem one
 *  nft table of loss rules in the node's namespace. `clearing`: also the steps that take away
 *  what interfaces without one have (`netlab impair` on a running lab). Throws, before anything
 *  is built, when an impairment needs netem and the kernel has none. */
export function impairSteps(lab: Lab, node: LabNode, netem: boolean, as: string | null, clearing: boolean): PlanStepBody[] {
  const out: PlanStepBody[] = [];
  if (node.netns === null) return out;
  // Without netem, loss is an nftables drop where the packets arrive: a drop on the sender's own
  // way out would fail its sendto() with EPERM, which a lossy cable never does. So this node's
  // table drops what arrives here: over a link whose other end has loss, and over its own
  // lossy network attachments; what such an attachment sends is dropped by the bridge side's
  // ingress (hostLossSteps).
  const rules: { dev: string; pct: number }[] = [];
  for (const f of node.interfaces) {
    const i = f.impair;
    const sides: { netns: Ns; dev: string }[] = [{ netns: node.netns, dev: f.name }];
    if (f.kind === 'network' && f.hostSide) sides.push({ netns: bridgeNs(lab, node.host, as), dev: f.hostSide });
    const what = `${node.name}:${f.name}`;
    if (!i || isEmptyImpairment(i)) {
      if (clearing) for (const sd of sides) out.push({ op: 'qdisc.clear', netns: sd.netns, dev: sd.dev, reason: `no impairment on ${what}` });
      continue;
    }
    const needs = netemFeatures(i);
    if (needs.length > 0 && !netem) {
      throw new NetlabError(`${what}: ${needs.join(', ')} needs the sch_netem kernel module, which this kernel (${os.release()}) does not have (rate and loss work without it); nothing was built or changed`);
    }
    let q: QdiscSpec | null = null;
    if (netem && (needs.length > 0 || i.lossPct)) {
      q = {
        kind: 'netem', delayUs: i.delayUs ?? 0, jitterUs: i.jitterUs ?? 0, lossPct: i.lossPct ?? 0, duplicatePct: i.duplicatePct ?? 0,
        corruptPct: i.corruptPct ?? 0, reorderPct: i.reorderPct ?? 0, rateBps: i.rateBps ?? 0, limit: i.limit ?? 1000,
      };
    } else if (i.rateBps !== null) {
      q = tbfFor(i.rateBps, i.limit);
    }
    const text = impairmentText(i);
    const directions = f.kind === 'network' ? 'both directions' : `traffic leaving ${node.name}`;
    for (const [k, sd] of sides.entries()) {
      if (q) out.push({ op: 'qdisc.set', netns: sd.netns, dev: sd.dev, qdisc: q, reason: `${what} ${text} (${k === 0 ? directions : `into ${node.name}`})` });
      else if (clearing) out.push({ op: 'qdisc.clear', netns: sd.netns, dev: sd.dev, reason: `${what}: no qdisc needed` });
    }
    if (!netem && i.lossPct && f.kind === 'network') rules.push({ dev: f.name, pct: i.lossPct });
  }
  if (!netem) {
    for (const f of node.interfaces) {
      if (f.kind !== 'link' || !f.peer) continue;
      const peer = lab.nodes.find((n) => n.name === f.peer!.node)?.interfaces.find((x) => x.name === f.peer!.iface);
      if (peer?.impair?.lossPct) rules.push({ dev: f.name, pct: peer.impair.lossPct });
    }
  }
  if (rules.length > 0 || (clearing && !netem)) {
    out.push({ op: 'nft.netns', netns: node.netns, table: IMPAIR_TABLE, ruleset: lossRuleset(rules), reason: rules.length ? `random loss on ${node.name} (nftables numgen: the kernel has no netem)` : `no loss rules on ${node.name}` });
  }
  return out;
}

/** The node's loss table, replacing any earlier one in one transaction (an empty list: gone). */
/** One in a million resolution (0.0001%); 100% drops everything. */
const lossMatch = (pct: number) => (pct >= 100 ? '' : `numgen random mod 1000000 < ${Math.round(pct * 10000)} `);

/** A node's loss table (what arrives on DEV is dropped at random), replacing any earlier one in
 *  one transaction; an empty list: gone. */
export function lossRuleset(rules: { dev: string; pct: number }[]): string {
  const lines = [`table inet ${IMPAIR_TABLE}`, `delete table inet ${IMPAIR_TABLE}`];
  if (rules.length === 0) return lines.join('\n') + '\n';
  lines.push(`table inet ${IMPAIR_TABLE} {`, '  chain ingress {', '    type filter hook prerouting priority 0; policy accept;');
  for (const r of rules) lines.push(`    iifname "${r.dev}" ${lossMatch(r.pct)}drop comment "loss ${r.pct}%"`);
  lines.push('  }', '}');
  return lines.join('\n') + '\n';
}

/** Without netem: what lossy network attachments send is dropped as it enters the bridge, at the
 *  bridge side's ingress (IPv4 only, like the nodes' inet tables: a lost ARP reply would stall
 *  the neighbour for a second and lose far more than the loss asked for) (a netdev table per namespace holding bridges: the machine's, or a
 *  simulated host's), named like the lab's own table. `clearing`: also where none is left. */
export function hostLossSteps(lab: Lab, nodes: LabNode[], netem: boolean, as: string | null, clearing: boolean): PlanStepBody[] {
  if (netem) return [];
  const byNs = new Map<Ns, { dev: string; pct: number; what: string }[]>();
  for (const n of nodes) {
    for (const f of n.interfaces) {
      if (f.kind !== 'network' || !f.hostSide || !f.impair?.lossPct) continue;
      const ns = bridgeNs(lab, n.host, as);
      if (!byNs.has(ns)) byNs.set(ns, []);
      byNs.get(ns)!.push({ dev: f.hostSide, pct: f.impair.lossPct, what: `${n.name}:${f.name}` });
    }
  }
  if (clearing) for (const n of nodes) if (!byNs.has(bridgeNs(lab, n.host, as))) byNs.set(bridgeNs(lab, n.host, as), []);
  const table = nftTable(lab.name);
  const out: PlanStepBody[] = [];
  for (const [ns, rules] of byNs) {
    const lines = [`table netdev ${table}`, `delete table netdev ${table}`];
    if (rules.length > 0) {
      lines.push(`table netdev ${table} {`);
      rules.forEach((r, i) => lines.push(`  chain loss${i} {`, `    type filter hook ingress device "${r.dev}" priority 0; policy accept;`, `    meta protocol ip ${lossMatch(r.pct)}drop comment "loss ${r.pct}% from ${r.what}"`, '  }'));
      lines.push('}');
    }
    const ruleset = lines.join('\n') + '\n';
    const reason = rules.length ? `random loss of what ${rules.map((r) => r.what).join(', ')} send${rules.length === 1 ? 's' : ''} (nftables numgen: the kernel has no netem)` : 'no loss rules on bridge ports';
    out.push(ns === null ? { op: 'nft.apply', family: 'netdev', table, ruleset, reason } : { op: 'nft.netns', netns: ns, table, ruleset, reason });
  }
  return out;
}

/** The nodes a plan builds: all of them, or with `as` only those placed on that host. */
export function nodesBuilt(lab: Lab, as: string | null | undefined): LabNode[] {
  return as ? lab.nodes.filter((n) => n.host === as) : lab.nodes;
}

/** Throws PlanError unless the lab has the host `as` names. */
export function requireHost(lab: Lab, as: string): void {
  if (!lab.hosts.some((h) => h.name === as)) {
    throw new PlanError(`lab ${lab.name} has no host ${as}${lab.hosts.length ? ` (hosts: ${lab.hosts.map((h) => h.name).join(', ')})` : ': it has no hosts: section'}`);
  }
}

export function buildPlan(lab: Lab, opts: PlanOptions = {}): Plan {
  const steps: PlanStep[] = [];
  let phase: Phase = 'underlay';
  const add = (s: PlanStepBody) => steps.push({ phase, ...s });
  const G = lab.group;
  const as = opts.as ?? null;
  if (as !== null) requireHost(lab, as);
  const nodes = nodesBuilt(lab, as);

  // 1. Simulated machines on the underlay (with `as`, the machines are real: nothing to make).
  if (lab.underlay && lab.hosts.length > 0 && as === null) {
    const u = lab.underlay;
    add({ op: 'bridge.add', netns: null, name: u.bridgeName, mtu: 1500, alias: `netlab:${lab.name}:@underlay`, group: G, reason: `underlay segment ${u.subnet} shared by the simulated hosts` });
    add({ op: 'sysctl.set', netns: null, key: `net.ipv6.conf.${u.bridgeName}.disable_ipv6`, value: '1', reason: 'no IPv6 on the underlay' });
    add({ op: 'link.up', netns: null, dev: u.bridgeName, reason: 'underlay bridge up' });
    for (const h of lab.hosts) {
      add({ op: 'netns.add', netns: h.netns, reason: `simulated host ${h.name}` });
      add({ op: 'sysctl.set', netns: h.netns, key: 'net.ipv6.conf.all.disable_ipv6', value: '1', reason: 'IPv6 off on the underlay (opt-in only)' });
      add({ op: 'sysctl.set', netns: h.netns, key: 'net.ipv6.conf.default.disable_ipv6', value: '1', reason: 'IPv6 off for links made later in this host' });
      add({ op: 'link.up', netns: h.netns, dev: 'lo', reason: `loopback of host ${h.name}` });
      add({
        op: 'veth.add', netns: null, name: h.underlaySide, mac: null, peerNetns: h.netns, peerName: h.underlayIface, peerMac: null,
        mtu: 1500, master: u.bridgeName, alias: `netlab:${lab.name}:@${h.name}:underlay`, peerAlias: `netlab:${lab.name}:@${h.name}:${h.underlayIface}`, group: G,
        reason: `underlay cable of host ${h.name}`,
      });
      add({ op: 'sysctl.set', netns: null, key: `net.ipv6.conf.${h.underlaySide}.disable_ipv6`, value: '1', reason: 'no IPv6 on the underlay' });
      add({ op: 'link.up', netns: null, dev: h.underlaySide, reason: `underlay port of ${h.name} up` });
      add({ op: 'addr.add', netns: h.netns, dev: h.underlayIface, address: `${h.address}/${h.prefixLen}`, reason: `underlay address of ${h.name}` });
      add({ op: 'link.up', netns: h.netns, dev: h.underlayIface, reason: `underlay interface of ${h.name} up` });
    }
  }

  // 2. Networks: a bridge where its nodes are (root netns, or each spanned host), gateway, VXLAN.
  phase = 'networks';
  for (const n of lab.networks) {
    if (n.driver !== 'bridge' && n.driver !== 'overlay') continue;
    // The hosts whose part of the network is built here (null: the local machine).
    const spanned = n.driver === 'overlay' ? n.hosts : [n.hosts[0] ?? null];
    const built = as === null ? spanned : spanned.filter((h) => h === as);
    const places: Ns[] = built.map((h) => bridgeNs(lab, h, as));
    // Only a network of the local machine's own nodes has a host-side gateway.
    const localNet = n.driver === 'bridge' && (n.hosts[0] ?? null) === null;
    for (const ns of places) {
      add({ op: 'bridge.add', netns: ns, name: n.bridgeName!, mtu: n.mtu, alias: `netlab:${lab.name}:${n.name}`, group: G, reason: `${n.driver} network ${n.name}${n.subnet ? ` (${n.subnet})` : ''}` });
      if (n.gateway && ns === null && localNet) {
        add({ op: 'addr.add', netns: ns, dev: n.bridgeName!, address: `${n.gateway}/${n.subnet!.split('/')[1]}`, reason: `gateway of ${n.name}${n.nat ? ' (NAT out)' : ''}` });
      }
      if (ns === null && !n.ipv6) {
        add({ op: 'sysctl.set', netns: null, key: `net.ipv6.conf.${n.bridgeName}.disable_ipv6`, value: '1', reason: `no IPv6 on ${n.name} (opt-in; it floods every port at scale)` });
      }
      if (ns === null && n.gateway && lab.nodes.some((nd) => nd.ports.length > 0 && nd.interfaces.some((f) => f.network === n.name))) {
        add({ op: 'sysctl.set', netns: null, key: `net.ipv4.conf.${n.bridgeName}.route_localnet`, value: '1', reason: `ports published on 127.0.0.1 are forwarded into ${n.name}` });
      }
      add({ op: 'link.up', netns: ns, dev: n.bridgeName!, reason: `bridge of ${n.name} up` });
    }
    if (n.driver === 'overlay') {
      for (const hn of built as string[]) {
        const h = lab.hosts.find((x) => x.name === hn)!;
        const ns = bridgeNs(lab, hn, as);
        add({
          // On a real machine the kernel picks the underlay interface from the route to each
          // remote address; `local` is the tunnel's source address (it must be this machine's).
          op: 'vxlan.add', netns: ns, name: n.vxlanName!, vni: n.vni!, port: n.port!, local: h.address, dev: as === null ? h.underlayIface : null,
          master: n.bridgeName!, mtu: n.mtu, alias: `netlab:${lab.name}:${n.name}:vxlan`, group: G,
          reason: `VXLAN ${n.vni} of ${n.name} on ${hn}, no learning: forwarding entries come from the model`,
        });
        if (ns === null && !n.ipv6) {
          add({ op: 'sysctl.set', netns: null, key: `net.ipv6.conf.${n.vxlanName}.disable_ipv6`, value: '1', reason: `no IPv6 on the VXLAN of ${n.name} (opt-in)` });
        }
        // Remote containers: where their MAC lives (fdb) and their ARP answer (neigh), no flooding.
        for (const node of lab.nodes) {
          if (node.host === null || node.host === hn) continue;
          const remote = lab.hosts.find((x) => x.name === node.host)!;
          for (const f of node.interfaces) {
            if (f.network !== n.name || !f.mac) continue;
            add({ op: 'fdb.append', netns: ns, dev: n.vxlanName!, mac: f.mac, dst: remote.address, reason: `${node.name}:${f.name} is behind ${remote.name}` });
            if (f.ipv4) add({ op: 'neigh.add', netns: ns, dev: n.vxlanName!, ip: f.ipv4.address, mac: f.mac, reason: `ARP for ${node.name}:${f.name} answered locally` });
          }
        }
        add({ op: 'link.up', netns: ns, dev: n.vxlanName!, reason: `VXLAN of ${n.name} on ${hn} up` });
      }
    }
  }

  // 3. Node namespaces.
  phase = 'namespaces';
  for (const node of nodes) {
    const ns = node.netns;
    if (ns === null) continue;
    add({ op: 'netns.add', netns: ns, reason: `node ${node.name} (${node.networkMode === 'none' ? 'loopback only' : `${node.interfaces.length} interface${node.interfaces.length === 1 ? '' : 's'}`})` });
    const v6 = node.interfaces.some((f) => f.network && lab.networks.find((n) => n.name === f.network)!.ipv6);
    if (!v6) {
      add({ op: 'sysctl.set', netns: ns, key: 'net.ipv6.conf.all.disable_ipv6', value: '1', reason: 'IPv6 off unless a network asks for it' });
      add({ op: 'sysctl.set', netns: ns, key: 'net.ipv6.conf.default.disable_ipv6', value: '1', reason: 'IPv6 off for interfaces added later' });
    }
    // The host's IPv4 settings are inherited: a strict rp_filter there would drop the
    // asymmetric paths that labs route on purpose (and that the simulator predicts).
    add({ op: 'sysctl.set', netns: ns, key: 'net.ipv4.conf.all.rp_filter', value: '0', reason: 'no reverse-path filter (asymmetric lab routes)' });
    add({ op: 'sysctl.set', netns: ns, key: 'net.ipv4.conf.default.rp_filter', value: '0', reason: 'no reverse-path filter on interfaces added later' });
    if (node.forwarding) add({ op: 'sysctl.set', netns: ns, key: 'net.ipv4.ip_forward', value: '1', reason: `${node.name} routes between its interfaces` });
    add({ op: 'link.up', netns: ns, dev: 'lo', reason: `loopback of ${node.name}` });
  }

  // 4. Interfaces: veths to bridges, then point-to-point links.
  phase = 'interfaces';
  for (const node of nodes) {
    const ns = node.netns;
    if (ns === null) continue;
    for (const f of node.interfaces) {
      if (f.kind !== 'network') continue;
      const net = lab.networks.find((n) => n.name === f.network)!;
      const bns = bridgeNs(lab, node.host, as);
      add({
        op: 'veth.add', netns: bns, name: f.hostSide!, mac: null, peerNetns: ns, peerName: f.name, peerMac: f.mac,
        mtu: f.mtu, master: net.bridgeName, alias: f.alias, peerAlias: f.alias, group: G,
        reason: `${node.name}:${f.name} on network ${net.name}`,
      });
      if (bns === null && !net.ipv6) add({ op: 'sysctl.set', netns: null, key: `net.ipv6.conf.${f.hostSide}.disable_ipv6`, value: '1', reason: 'no IPv6 on the host side (opt-in)' });
      add({ op: 'link.up', netns: bns, dev: f.hostSide!, reason: `bridge port of ${node.name}:${f.name} up` });
      if (f.ipv4) add({ op: 'addr.add', netns: ns, dev: f.name, address: `${f.ipv4.address}/${f.ipv4.prefixLen}`, reason: `address of ${node.name}:${f.name}` });
      if (f.up) add({ op: 'link.up', netns: ns, dev: f.name, reason: `${node.name}:${f.name} up` });
    }
  }
  for (const l of lab.links) {
    const a = lab.nodes.find((n) => n.name === l.a.node)!;
    const b = lab.nodes.find((n) => n.name === l.b.node)!;
    if (!nodes.includes(a)) continue; // both ends are on one machine (validated)
    const fa = a.interfaces.find((f) => f.name === l.a.iface)!;
    const fb = b.interfaces.find((f) => f.name === l.b.iface)!;
    add({
      op: 'veth.add', netns: a.netns, name: fa.name, mac: fa.mac, peerNetns: b.netns, peerName: fb.name, peerMac: fb.mac,
      mtu: l.mtu, master: null, alias: fa.alias, peerAlias: fb.alias, group: G,
      reason: `link ${a.name}:${fa.name} <-> ${b.name}:${fb.name}`,
    });
    for (const [n, f] of [[a, fa], [b, fb]] as const) {
      if (f.ipv4) add({ op: 'addr.add', netns: n.netns, dev: f.name, address: `${f.ipv4.address}/${f.ipv4.prefixLen}`, reason: `address of ${n.name}:${f.name}` });
      if (l.up) add({ op: 'link.up', netns: n.netns, dev: f.name, reason: `${n.name}:${f.name} up` });
    }
  }

  // Impairments, on every interface up (qdiscs are per device; nft loss rules per node).
  for (const node of nodes) for (const s of impairSteps(lab, node, opts.netem ?? false, as, false)) add(s);
  for (const s of hostLossSteps(lab, nodes, opts.netem ?? false, as, false)) add(s);

  // 5. Routes (after every address exists, so next hops are reachable).
  phase = 'routes';
  for (const node of nodes) {
    if (node.netns === null) continue;
    for (const r of node.routes) {
      add({
        op: 'route.add', netns: node.netns, dst: r.dst, via: r.via, dev: r.dev,
        ...(r.metric !== undefined ? { metric: r.metric } : {}), ...(r.nexthops ? { nexthops: r.nexthops } : {}),
        reason: r.origin === 'gateway' ? `default route of ${node.name} via its network's gateway` : `static route of ${node.name}`,
      });
    }
  }

  // 6. Firewall: one table per lab, applied atomically.
  phase = 'firewall';
  // (Only networks of the local machine's own nodes need it: none is built with `as`.)
  if (needsFirewall(lab) && as === null) {
    // Like Docker: NAT out and published ports reached from other machines need the host to route.
    if (lab.networks.some((n) => n.nat) || lab.nodes.some((n) => n.ports.length > 0)) {
      add({ op: 'sysctl.set', netns: null, key: 'net.ipv4.ip_forward', value: '1', reason: 'the host routes for NAT and published ports (restored when the last lab is down)' });
    }
    add({ op: 'nft.apply', family: NFT_FAMILY, table: nftTable(lab.name), ruleset: labRuleset(lab), reason: 'isolation, NAT, published ports and no leaks of the lab, in one table' });
  }
  // Docker's FORWARD policy DROP would drop every packet of the lab's interfaces in the host's
  // namespace (bridged ones too, under br_netfilter), whatever the table above allows.
  if (steps.some((s) => (s.op === 'bridge.add' || s.op === 'veth.add' || s.op === 'vxlan.add') && s.netns === null)) {
    add({ op: 'iptables.accept', netns: null, lab: lab.name, interfaces: `${labIfPrefix(lab.name)}+`, comment: iptComment(lab.name), reason: 'where Docker (or a DROP FORWARD policy) would drop the lab\'s traffic: accept its interfaces' });
  }

  // 7. Containers.
  phase = 'containers';
  if (opts.containers ?? true) {
    for (const node of nodes) {
      add({ op: 'container.start', node: node.name, netns: node.netns, image: node.image, command: node.command, hostname: node.name, spec: containerSpec(node), reason: `container ${node.name}` });
    }
  }

  const counts: Partial<Record<PlanOp, number>> = {};
  for (const s of steps) counts[s.op] = (counts[s.op] ?? 0) + 1;
  return { lab: lab.name, id: lab.id, group: lab.group, ...(as !== null ? { as } : {}), steps, counts };
}

/** One line per step, for `netlab plan` without --json. */
export function formatPlan(plan: Plan): string {
  const out: string[] = [`lab ${plan.lab}${plan.as ? ` as host ${plan.as}` : ''} (id ${plan.id}, link group ${plan.group}): ${plan.steps.length} steps`];
  plan.steps.forEach((s, i) => {
    const ns = 'netns' in s ? (s.netns ?? 'host') : 'host';
    let what: string;
    switch (s.op) {
      case 'netns.add': what = s.netns; break;
      case 'sysctl.set': what = `${s.key}=${s.value}`; break;
      case 'bridge.add': what = `${s.name} mtu ${s.mtu}`; break;
      case 'veth.add': what = `${s.name} <-> ${s.peerName}@${s.peerNetns ?? 'host'}${s.master ? ` master ${s.master}` : ''}`; break;
      case 'vxlan.add': what = `${s.name} id ${s.vni} local ${s.local} dstport ${s.port}${s.dev ? ` dev ${s.dev}` : ''} master ${s.master}`; break;
      case 'addr.add': what = `${s.address} dev ${s.dev}`; break;
      case 'link.up': what = s.dev; break;
      case 'route.add': what = routeText(s); break;
      case 'fdb.append': what = `${s.mac} dev ${s.dev} dst ${s.dst}`; break;
      case 'neigh.add': what = `${s.ip} lladdr ${s.mac} dev ${s.dev}`; break;
      case 'nft.apply': what = `table ${s.family} ${s.table}`; break;
      case 'qdisc.set': what = `${s.dev} root ${qdiscText(s.qdisc)}`; break;
      case 'qdisc.clear': what = `${s.dev} root (the default)`; break;
      case 'nft.netns': what = `table inet ${s.table}`; break;
      case 'iptables.accept': what = `-i/-o ${s.interfaces} in DOCKER-USER or a DROP FORWARD, if present`; break;
      case 'container.start': what = `${s.node} (${s.image}${s.command ? `: ${s.command.join(' ')}` : ''})`; break;
    }
    out.push(`${String(i + 1).padStart(4)}. ${s.op.padEnd(15)} [${ns}] ${what}  # ${s.reason}`);
  });
  return out.join('\n');
}


/** `tbf rate 20mbit burst 10000b limit 125000b` / `netem delay 20ms ...`, as tc writes them. */
export function qdiscText(q: QdiscSpec): string {
  if (q.kind === 'tbf') return `tbf rate ${fmtRate(q.rateBps)} burst ${q.burstBytes}b limit ${q.limitBytes}b`;
  const parts = ['netem'];
  if (q.delayUs) parts.push(`delay ${fmtTime(q.delayUs)}${q.jitterUs ? ` ${fmtTime(q.jitterUs)}` : ''}`);
  if (q.lossPct) parts.push(`loss ${q.lossPct}%`);
  if (q.duplicatePct) parts.push(`duplicate ${q.duplicatePct}%`);
  if (q.corruptPct) parts.push(`corrupt ${q.corruptPct}%`);
  if (q.reorderPct) parts.push(`reorder ${q.reorderPct}%`);
  if (q.rateBps) parts.push(`rate ${fmtRate(q.rateBps)}`);
  parts.push(`limit ${q.limit}`);
  return parts.join(' ');
}

/** How many neighbour (ARP) entries the lab can need at once: every address on a network may
 *  learn every other one there (the gateway's too), every link end its peer. */
export function neighbourEntries(lab: Lab): number {
  let n = 0;
  for (const net of lab.networks) {
    const k = lab.nodes.reduce((c, nd) => c + nd.interfaces.filter((f) => f.kind === 'network' && f.network === net.name && f.ipv4).length, 0);
    n += k * (k + 1);
  }
  return n + 2 * lab.links.length;
}
