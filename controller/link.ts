// `netlab link`: a cable set down or up, both ends, as pulling or plugging it would; a simulated
// host's underlay cable.
import type { LabNode } from '../topology/types.js';
import { Kernel, KernelError } from './kernel/index.js';
import { lockLab, readState, writeState } from './state.js';
import { LabError, requireRoot } from './labs.js';
import { kernelRoute } from './routes.js';

/** `netlab link LAB NODE:IFACE up|down`: both ends of the cable (the node's side and its peer,
 *  or the bridge port), as pulling or plugging a cable would. Recorded in the state's model. */
export async function setLink(labName: string, node: string, iface: string, up: boolean): Promise<void> {
  requireRoot('link');
  const release = lockLab(labName);
  try {
    await setLinkLocked(labName, node, iface, up);
  } finally {
    release();
  }
}

/** `netlab link LAB @HOST up|down`: a simulated host's underlay cable, both ends (the port on
 *  the underlay bridge and the host's interface), so its tunnels to the other hosts stop or
 *  come back. Not recorded in the model: the underlay is not part of the reachability model,
 *  so checks across that host then fail where the prediction says reach. */
export async function setHostLink(labName: string, host: string, up: boolean): Promise<void> {
  requireRoot('link');
  const release = lockLab(labName);
  try {
    const st = readState(labName);
    if (!st || st.status !== 'up') throw new LabError(`lab ${labName} is not up`);
    const h = st.model.hosts.find((x) => x.name === host);
    if (!h) throw new LabError(`lab ${labName} has no host ${host} (hosts: ${st.model.hosts.map((x) => x.name).join(', ') || 'none'})`);
    if (st.as) throw new LabError(`lab ${labName} runs here as host ${st.as} on a real machine: its underlay is the machine's own network, which netlab does not touch`);
    const kernel = await Kernel.open();
    try {
      await kernel.ns(null).linkSet(h.underlaySide, { up });
      await kernel.ns(h.netns).linkSet(h.underlayIface, { up });
    } finally {
      kernel.close();
    }
  } finally {
    release();
  }
}

async function setLinkLocked(labName: string, node: string, iface: string, up: boolean): Promise<void> {
  const st = readState(labName);
  if (!st || st.status !== 'up') throw new LabError(`lab ${labName} is not up`);
  const nd = st.model.nodes.find((n) => n.name === node);
  if (!nd) throw new LabError(`lab ${labName} has no node ${node} (nodes: ${st.model.nodes.map((n) => n.name).join(', ')})`);
  const f = nd.interfaces.find((i) => i.name === iface);
  if (!f || !nd.netns) throw new LabError(`node ${node} has no interface ${iface} (interfaces: ${nd.interfaces.map((i) => i.name).join(', ') || 'none'})`);
  if (st.as && nd.host !== st.as) throw new LabError(`node ${node} is on host ${nd.host ?? 'none'}, not on this machine (host ${st.as}); run this on that host's machine`);
  const kernel = await Kernel.open();
  try {
    await kernel.ns(nd.netns).linkSet(iface, { up });
    const touched: LabNode[] = [nd];
    if (f.kind === 'network' && f.hostSide) {
      // With `up --as`, this machine is the node's host: its bridge port is in the root netns.
      const host = nd.host && nd.host !== st.as ? st.model.hosts.find((h) => h.name === nd.host)!.netns : null;
      await kernel.ns(host).linkSet(f.hostSide, { up });
    } else if (f.peer) {
      const peer = st.model.nodes.find((n) => n.name === f.peer!.node)!;
      await kernel.ns(peer.netns).linkSet(f.peer.iface, { up });
      touched.push(peer);
    }
    // Setting an interface down makes the kernel drop every IPv4 route through it, and up
    // brings back only the connected route: put the static routes of both ends back.
    if (up) for (const n of touched) await restoreRoutes(kernel, n);
    // Run-time state, not the model: both ends of a cable share its state.
    st.cables = { ...st.cables, [`${node}:${iface}`]: up, ...(f.peer ? { [`${f.peer.node}:${f.peer.iface}`]: up } : {}) };
    writeState(st);
  } finally {
    kernel.close();
  }
}

/** Re-adds a node's routes from the model (after `link up`). Routes still there are fine, and
 *  so are routes whose next hop is behind another interface that is down (they come back when
 *  that one is set up). */
async function restoreRoutes(k: Kernel, node: LabNode): Promise<void> {
  if (node.netns === null) return;
  const h = k.ns(node.netns);
  for (const r of node.routes) {
    try {
      await h.routeAdd(kernelRoute(r));
    } catch (e) {
      if (!(e instanceof KernelError && ['EEXIST', 'ENETUNREACH', 'ENETDOWN'].includes(e.errno))) throw e;
    }
  }
}
