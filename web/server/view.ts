// The web view's graph of a lab: the model's graph (topology/graph.ts buildLabGraph: the same
// nodes, edges and keys as `netlab graph`) merged with what the kernel and the runtime report
// (controller/lab.ts status(): interfaces, addresses, routes, carrier, container processes).
// Pure: no kernel, no I/O, so it is tested without root.
import { buildLabGraph, type LabGraphEdgeAttributes, type LabGraphNodeAttributes } from '../../topology/graph.js';
import type { Lab, LabNode } from '../../topology/types.js';
import type { InterfaceStatus, LabStatusReport, NodeStatus } from '../../controller/lab.js';
import type { LinkState, ViewInterface, ViewLink, ViewNode, WebGraph } from './types.js';

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
        links.push({ id, kind: a.kind, source, target, a: end(source, a.iface, a.ipv4), b: end(target), ...s, endpoint: `${node}:${a.iface}` });
        break;
      }
      case 'link': {
        const na = name(source);
        const nb = name(target);
        const s = worst(endState(na, a.ifaceA, kernelIface(na, a.ifaceA), a.up, live), endState(nb, a.ifaceB, kernelIface(nb, a.ifaceB), a.up, live));
        links.push({ id, kind: a.kind, source, target, a: end(source, a.ifaceA, a.ipv4A), b: end(target, a.ifaceB, a.ipv4B), ...s, endpoint: `${na}:${a.ifaceA}` });
        break;
      }
      case 'gateway':
        links.push({ id, kind: a.kind, source, target, a: end(source), b: end(target, 'gateway', a.address), state: live ? 'up' : 'unknown', endpoint: null, why: `host gateway ${a.address}${a.nat ? ' (NAT)' : ''}` });
        break;
      case 'underlay':
        links.push({ id, kind: a.kind, source, target, a: end(source, a.iface, a.ipv4), b: end(target), state: live ? 'up' : 'unknown', endpoint: null, why: `underlay ${a.iface} ${a.ipv4}` });
        break;
      case 'overlay':
        links.push({ id, kind: a.kind, source, target, a: end(source), b: end(target), state: live ? 'up' : 'unknown', endpoint: null, why: a.label });
        break;
      case 'host-mode':
        links.push({ id, kind: a.kind, source, target, a: end(source), b: end(target), state: live ? 'up' : 'unknown', endpoint: null, why: 'network_mode host: shares the stack' });
        break;
      default: {
        // An edge kind this view does not know yet: drawn plainly, not toggleable.
        const other = a as { kind: string; label?: string };
        links.push({ id, kind: other.kind, source, target, a: end(source), b: end(target), state: live ? 'up' : 'unknown', endpoint: null, why: other.label ?? other.kind });
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
