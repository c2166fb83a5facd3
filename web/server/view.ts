// The web view's graph of a lab: the model's graph (topology/graph.ts buildLabGraph: the same
// nodes, edges and keys as `netlab graph`) merged with what the kernel and the runtime report
// (controller/lab.ts status(): interfaces, addresses, routes, carrier, container processes).
// Pure: no kernel, no I/O, so it is tested without root.
import { buildLabGraph, type LabGraphEdgeAttributes, type LabGraphNodeAttributes } from '../../topology/graph.js';
import type { Impairment, Lab, LabNode } from '../../topology/types.js';
import { impairmentText } from '../../topology/impair.js';
import type { InterfaceStatus, LabStatusReport, NodeStatus } from '../../controller/lab.js';
import type { LinkState, ViewImpairment, ViewInterface, ViewLink, ViewNode, WebGraph } from './types.js';

const cidr = (ip: { address: string; prefixLen: number } | null): string | null => (ip ? `${ip.address}/${ip.prefixLen}` : null);

function detailOf(a: LabGraphNodeAttributes): string {
  switch (a.kind) {
    case 'container':
      return [a.image, a.networkMode !== 'bridge' ? `network_mode ${a.networkMode}` : null, a.host ? `on ${a.host}` : null].filter(Boolean).join(', ');
    case 'network':
      return [a.driver, a.subnet, a.vni !== null ? `vni ${a.vni}` : null].filter(Boolean).join(' ');
    case 'host':
      return `${a.address}/${a.prefixLen}`;
    case 'machine':
      return 'this machine';
  }
}

function variantOf(a: LabGraphNodeAttributes): string {
  if (a.kind === 'container') return a.networkMode;
  if (a.kind === 'network') return a.driver;
  return '';
}

function modelInterfaces(n: LabNode): ViewInterface[] {
  return n.interfaces.map((f) => ({
    name: f.name,
    network: f.network,
    peer: f.peer ? `${f.peer.node}:${f.peer.iface}` : null,
    addresses: f.ipv4 ? [cidr(f.ipv4)!] : [],
    mac: f.mac,
    mtu: f.mtu,
    up: f.up,
    carrier: null,
    missing: false,
  }));
}

/** Kernel interfaces of a node (loopback first, as the kernel lists them), annotated with the
 *  model's network/peer, plus the model's interfaces the kernel does not have. */
function liveInterfaces(n: LabNode, st: NodeStatus): ViewInterface[] {
  const byName = new Map(n.interfaces.map((f) => [f.name, f]));
  const out: ViewInterface[] = st.interfaces.map((k) => {
    const m = byName.get(k.name);
    return {
      name: k.name,
      network: m?.network ?? null,
      peer: m?.peer ? `${m.peer.node}:${m.peer.iface}` : null,
      addresses: k.addresses,
      mac: k.mac,
      mtu: k.mtu,
      up: k.up,
      carrier: k.operUp,
      missing: false,
    };
  });
  const seen = new Set(st.interfaces.map((k) => k.name));
  for (const f of modelInterfaces(n)) if (!seen.has(f.name)) out.push({ ...f, up: false, carrier: false, missing: true });
  return out;
}

/** State of one end seen from the kernel (or the model), and why when it is not up. */
function endState(node: string, iface: string, k: InterfaceStatus | undefined, modelUp: boolean, live: boolean): { state: LinkState; why: string } {
  if (!live) return { state: modelUp ? 'unknown' : 'down', why: modelUp ? 'not live: the model has it up' : `${node} ${iface} down in the model` };
  if (!k) return { state: 'down', why: `${node} ${iface} is missing in the kernel` };
  if (!k.up) return { state: 'down', why: `${node} ${iface} admin down` };
  if (!k.operUp) return { state: 'down', why: `${node} ${iface} has no carrier` };
  return { state: 'up', why: `${node} ${iface} up` };
}

function worst(...s: { state: LinkState; why: string }[]): { state: LinkState; why: string } {
  return s.find((x) => x.state === 'down') ?? s.find((x) => x.state === 'unknown') ?? { state: 'up', why: s.map((x) => x.why).join(', ') };
}

/** The values of an impairment without tc's words, for the label on a cable: `10mbit 20ms±5ms
 *  1%` (rate, delay with its jitter, loss), then the rarer ones named (`dup 1%`, `corrupt 1%`,
 *  `reorder 25%`, `limit 100`); '' for none. */
export function impairmentLabel(i: Impairment | undefined | null): string {
  const words = impairmentText(i).split(' ');
  const v = new Map<string, string>();
  for (let k = 0; k + 1 < words.length; k += 2) v.set(words[k], words[k + 1]);
  const parts: string[] = [];
  if (v.has('rate')) parts.push(v.get('rate')!);
  if (v.has('delay')) parts.push(`${v.get('delay')}${v.has('jitter') ? `±${v.get('jitter')}` : ''}`);
  if (v.has('loss')) parts.push(v.get('loss')!);
  if (v.has('duplicate')) parts.push(`dup ${v.get('duplicate')}`);
  for (const k of ['corrupt', 'reorder', 'limit']) if (v.has(k)) parts.push(`${k} ${v.get(k)}`);
  return parts.join(' ');
}

/** The cable's label from its two directions (sending node names when they differ). */
function cableLabel(ab: { node: string; imp: Impairment | undefined }, ba: { node: string; imp: Impairment | undefined }): string {
  const la = impairmentLabel(ab.imp), lb = impairmentLabel(ba.imp);
  if (impairmentText(ab.imp) === impairmentText(ba.imp)) return la;
  return [la && `${ab.node}→ ${la}`, lb && `${ba.node}→ ${lb}`].filter(Boolean).join(' · ');
}

/**
 * The view of a lab. `status` is the lab's live report (null: draw the model alone, as for a
 * topology file that is not up). `labStatus` is the state file's status ('offline' when none).
 */
export function labView(lab: Lab, status: LabStatusReport | null, labStatus: string, at = new Date()): WebGraph {
  const g = buildLabGraph(lab);
  const live = status !== null;
  const nodeStatus = new Map((status?.nodes ?? []).map((n) => [n.name, n]));
  const modelNodes = new Map(lab.nodes.map((n) => [n.name, n]));
  const kernelIface = (node: string, iface: string): InterfaceStatus | undefined => nodeStatus.get(node)?.interfaces.find((f) => f.name === iface);
  const modelImpair = (node: string, iface: string): Impairment | undefined => modelNodes.get(node)?.interfaces.find((f) => f.name === iface)?.impair;
  const kernelImpair = (node: string, iface: string): string | null => {
    const k = live ? kernelIface(node, iface) : undefined;
    return k ? k.impairment ?? '' : null;
  };
  const direction = (from: string, to: string, imp: Impairment | undefined, kernel: string | null): ViewImpairment => ({ from, to, text: impairmentText(imp), kernel });
  const none = () => ({ impair: [] as ViewImpairment[], impairLabel: '' });

  const nodes: ViewNode[] = [];
  g.forEachNode((id, a) => {
    const base = { id, kind: a.kind, name: a.name, detail: detailOf(a), variant: variantOf(a), host: a.kind === 'container' ? a.host : null };
    if (a.kind !== 'container') {
      nodes.push({ ...base, process: null, ports: [], interfaces: [], routes: [] });
      return;
    }
    const m = modelNodes.get(a.name)!;
    const st = nodeStatus.get(a.name);
    if (!live || !st) {
      nodes.push({
        ...base,
        process: { state: live ? 'not started' : 'model', pid: null, exit: null, oomKilled: false },
        ports: [],
        interfaces: modelInterfaces(m),
        routes: m.routes.map((r) => ({ dst: r.dst, via: r.via, dev: r.dev })),
      });
      return;
    }
    nodes.push({
      ...base,
      process: { state: st.container.state, pid: st.container.pid, exit: st.container.exit, oomKilled: st.container.oomKilled },
      ports: st.image?.exposedPorts ?? [],
      interfaces: st.netns === null ? modelInterfaces(m) : liveInterfaces(m, st),
      routes: st.routes.map((r) => ({ dst: r.dst, via: r.via, dev: r.dev })),
    });
  });

  const links: ViewLink[] = [];
  g.forEachEdge((id, a: LabGraphEdgeAttributes, source, target) => {
    const name = (key: string) => g.getNodeAttribute(key, 'name');
    const end = (key: string, iface = '', address: string | null = null) => ({ id: key, iface, address });
    switch (a.kind) {
      case 'attachment': {
        const node = name(source);
        const s = endState(node, a.iface, kernelIface(node, a.iface), a.up, live);
        // The interface's impairment holds both ways (its bridge side's egress carries it in).
        const imp = modelImpair(node, a.iface);
        const impair = [direction(`${node} ${a.iface}`, name(target), imp, kernelImpair(node, a.iface)), direction(name(target), `${node} ${a.iface}`, imp, null)];
        links.push({ id, kind: a.kind, source, target, a: end(source, a.iface, a.ipv4), b: end(target), ...s, endpoint: `${node}:${a.iface}`, impair, impairLabel: impairmentLabel(imp) });
        break;
      }
      case 'link': {
        const na = name(source);
        const nb = name(target);
        const s = worst(endState(na, a.ifaceA, kernelIface(na, a.ifaceA), a.up, live), endState(nb, a.ifaceB, kernelIface(nb, a.ifaceB), a.up, live));
        // Each end's egress is one direction.
        const ia = modelImpair(na, a.ifaceA), ib = modelImpair(nb, a.ifaceB);
        const impair = [direction(`${na} ${a.ifaceA}`, `${nb} ${a.ifaceB}`, ia, kernelImpair(na, a.ifaceA)), direction(`${nb} ${a.ifaceB}`, `${na} ${a.ifaceA}`, ib, kernelImpair(nb, a.ifaceB))];
        links.push({ id, kind: a.kind, source, target, a: end(source, a.ifaceA, a.ipv4A), b: end(target, a.ifaceB, a.ipv4B), ...s, endpoint: `${na}:${a.ifaceA}`, impair, impairLabel: cableLabel({ node: na, imp: ia }, { node: nb, imp: ib }) });
        break;
      }
      case 'gateway':
        links.push({ id, kind: a.kind, source, target, a: end(source), b: end(target, 'gateway', a.address), state: live ? 'up' : 'unknown', endpoint: null, why: `host gateway ${a.address}${a.nat ? ' (NAT)' : ''}`, ...none() });
        break;
      case 'underlay':
        links.push({ id, kind: a.kind, source, target, a: end(source, a.iface, a.ipv4), b: end(target), state: live ? 'up' : 'unknown', endpoint: null, why: `underlay ${a.iface} ${a.ipv4}`, ...none() });
        break;
      case 'overlay':
        links.push({ id, kind: a.kind, source, target, a: end(source), b: end(target), state: live ? 'up' : 'unknown', endpoint: null, why: a.label, ...none() });
        break;
      case 'host-mode':
        links.push({ id, kind: a.kind, source, target, a: end(source), b: end(target), state: live ? 'up' : 'unknown', endpoint: null, why: 'network_mode host: shares the stack', ...none() });
        break;
      default: {
        // An edge kind this view does not know yet: drawn plainly, not toggleable.
        const other = a as { kind: string; label?: string };
        links.push({ id, kind: other.kind, source, target, a: end(source), b: end(target), state: live ? 'up' : 'unknown', endpoint: null, why: other.label ?? other.kind, ...none() });
      }
    }
  });

  return {
    lab: lab.name,
    file: lab.file,
    status: labStatus,
    live,
    at: at.toISOString(),
    nodes,
    links,
    checks: lab.checks.map((c) => ({ label: c.label, kind: c.kind, from: c.from, target: c.target })),
  };
}
