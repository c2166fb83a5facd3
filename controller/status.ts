// `netlab status`: each lab as the kernel has it (nodes' interfaces, addresses, routes, container
// state; simulated hosts and their tunnels), read one node at a time so that one broken node or
// lab never fails the whole report.
import type { Impairment, Lab, LabNode } from '../topology/types.js';
import { NO_IMPAIRMENT, impairmentText } from '../topology/impair.js';
import { NETLAB_QDISC_HANDLE } from './kernel/tc.js';
import { labOfNetns, NETNS_PREFIX } from '../topology/names.js';
import { nodesBuilt } from './plan.js';
import { containerImage, containerState, type ContainerImageInfo, type ContainerState } from '../runtime/container.js';
import { Kernel, KernelError, type LinkInfo, type QdiscInfo } from './kernel/index.js';
import { lockHolder, modelOf, readStateChecked } from './state.js';
import { knownLabs, LabError, requireRoot } from './labs.js';

export interface InterfaceStatus {
  name: string;
  up: boolean;
  operUp: boolean;
  mtu: number;
  mac: string | null;
  addresses: string[];
  /** Its impairment as the kernel has it (netlab's root qdisc read back: `rate 10mbit`,
   *  `delay 20ms loss 1%`), plus the nftables loss rule netlab wrote where the kernel has no
   *  netem; null when none. */
  impairment: string | null;
}

export interface NodeStatus {
  name: string;
  netns: string | null;
  present: boolean;
  interfaces: InterfaceStatus[];
  routes: { dst: string; via: string | null; dev: string | null }[];
  container: ContainerState;
  /** The image it was started from (reference, digest, exposed ports), null before start. */
  image: ContainerImageInfo | null;
  /** Why the node could not be read (e.g. its namespace file is no longer a mount, EINVAL);
   *  null when it was. */
  error: string | null;
}

/** One overlay network's VXLAN device on a host, read back from the kernel. */
export interface TunnelStatus {
  network: string;
  device: string;
  present: boolean;
  up: boolean;
  vni: number | null;
  /** Tunnel source address. */
  local: string | null;
  port: number | null;
  learning: boolean | null;
  /** Remote endpoints, from the device's forwarding entries (`bridge fdb`): each address with
   *  the host that has it in the model, and how many MACs are sent there. */
  remotes: { address: string; host: string | null; macs: number }[];
}

export interface HostStatus {
  name: string;
  address: string;
  /** simulated: a namespace on this machine; this machine: `up --as` this host; other
   *  machine: built elsewhere (nothing of it is here to read). */
  role: 'simulated' | 'this machine' | 'other machine';
  /** Namespace of a simulated host; null for a real machine. */
  netns: string | null;
  /** null for another machine. */
  present: boolean | null;
  /** Simulated hosts: the underlay interface is up with carrier (`netlab link LAB @HOST`). */
  underlayUp: boolean | null;
  tunnels: TunnelStatus[];
  /** Why the host's namespace could not be read; null when it was. */
  error: string | null;
}

export interface LabStatusReport {
  lab: string;
  /** From the state file: creating, up, failed, deleting; 'unknown (no state file)' when there
   *  are namespaces but no state. */
  status: string;
  file: string;
  createdAt: string | null;
  /** The host this machine runs (`up --as`), null when the whole lab is here. */
  as: string | null;
  /** The netlab process bringing the lab up or down right now (it holds the lab's lock). */
  runningPid: number | null;
  /** creating, failed or deleting with no netlab running on it: an `up` or `down` that was
   *  killed (or a rollback that did not finish); `netlab down LAB` finishes it. */
  interrupted: boolean;
  /** The lab as a whole could not be read (a damaged state file, the kernel refusing). */
  error: string | null;
  nodes: NodeStatus[];
  hosts: HostStatus[];
}

/** Hosts of a lab and the VXLAN tunnels between them, as the kernel has them. */
async function hostStatus(k: Kernel, model: Lab, as: string | null, existing: Set<string>): Promise<HostStatus[]> {
  const out: HostStatus[] = [];
  const hostByAddr = new Map(model.hosts.map((h) => [h.address, h.name]));
  for (const h of model.hosts) {
    const role: HostStatus['role'] = as === null ? 'simulated' : h.name === as ? 'this machine' : 'other machine';
    const base = { name: h.name, address: h.address, role, netns: role === 'simulated' ? h.netns : null };
    if (role === 'other machine') { out.push({ ...base, present: null, underlayUp: null, tunnels: [], error: null }); continue; }
    if (role === 'simulated' && !existing.has(h.netns)) { out.push({ ...base, present: false, underlayUp: null, tunnels: [], error: null }); continue; }
    let links: LinkInfo[];
    let fdb: Awaited<ReturnType<ReturnType<Kernel['ns']>['fdbList']>>;
    try {
      const ns = k.ns(base.netns);
      [links, fdb] = await Promise.all([ns.linkList(), ns.fdbList()]);
    } catch (e) {
      out.push({ ...base, present: false, underlayUp: null, tunnels: [], error: readError(e, base.netns) });
      continue;
    }
    const eth = role === 'simulated' ? links.find((l) => l.name === h.underlayIface) : undefined;
    const tunnels: TunnelStatus[] = [];
    for (const n of model.networks) {
      if (n.driver !== 'overlay' || !n.hosts.includes(h.name) || !n.vxlanName) continue;
      const dev = links.find((l) => l.name === n.vxlanName);
      const byDst = new Map<string, number>();
      for (const e of fdb) if (e.dev === n.vxlanName && e.dst) byDst.set(e.dst, (byDst.get(e.dst) ?? 0) + 1);
      tunnels.push({
        network: n.name, device: n.vxlanName, present: !!dev, up: dev?.up ?? false,
        vni: dev?.vxlan?.vni ?? null, local: dev?.vxlan?.local ?? null, port: dev?.vxlan?.port ?? null, learning: dev?.vxlan?.learning ?? null,
        remotes: [...byDst].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([address, macs]) => ({ address, host: hostByAddr.get(address) ?? null, macs })),
      });
    }
    out.push({ ...base, present: true, underlayUp: eth ? eth.up && eth.operUp : null, tunnels, error: null });
  }
  return out;
}

/** One line for a failed read of a namespace: a file in /run/netns that is no longer a mount
 *  (umounted behind netlab's back) cannot be opened as a namespace (EINVAL). */
function readError(e: unknown, netns: string | null): string {
  if (e instanceof KernelError && e.errno === 'EINVAL' && netns !== null) return `namespace ${netns} missing: /run/netns/${netns} is no longer a mount (setns: EINVAL)`;
  return (e as Error).message ?? String(e);
}

/** tc's words for a qdisc netlab made (its handle 1:), plus the loss the model puts in nftables. */
function impairmentOf(q: QdiscInfo | undefined, modelled: Impairment | undefined): string | null {
  const parts: string[] = [];
  const spec = q && q.handle === NETLAB_QDISC_HANDLE ? q.spec : null;
  if (spec?.kind === 'tbf') parts.push(impairmentText({ ...NO_IMPAIRMENT, rateBps: spec.rateBps }));
  if (spec?.kind === 'netem') {
    parts.push(impairmentText({
      ...NO_IMPAIRMENT, rateBps: spec.rateBps || null, delayUs: spec.delayUs || null, jitterUs: spec.jitterUs || null, lossPct: spec.lossPct || null,
      duplicatePct: spec.duplicatePct || null, corruptPct: spec.corruptPct || null, reorderPct: spec.reorderPct || null,
    }));
  }
  if (spec?.kind !== 'netem' && modelled?.lossPct) parts.push(`loss ${modelled.lossPct}% (nftables)`);
  return parts.filter(Boolean).join(' ') || null;
}

export async function nodeStatus(k: Kernel, lab: string, name: string, netns: string | null, existing: Set<string>, model?: LabNode): Promise<NodeStatus> {
  const container = containerState(lab, name); // files only, every read guarded: does not throw
  const base = { name, netns, interfaces: [], routes: [], image: containerImage(lab, name) };
  if (netns === null) return { ...base, present: true, container, error: null };
  if (!existing.has(netns)) return { ...base, present: false, container, error: null };
  try {
    const h = k.ns(netns);
    const [links, addrs, routes, qdiscs] = await Promise.all([h.linkList(), h.addrList(), h.routeList(), h.qdiscList()]);
    return {
      name, netns, present: true,
      interfaces: links.map((l) => ({
        name: l.name, up: l.up, operUp: l.operUp, mtu: l.mtu, mac: l.mac,
        addresses: addrs.filter((a) => a.index === l.index).map((a) => `${a.address}/${a.prefixLen}`),
        impairment: impairmentOf(qdiscs.find((q) => q.dev === l.name), model?.interfaces.find((f) => f.name === l.name)?.impair),
      })),
      routes: routes.map((r) => ({ dst: r.dst, via: r.via, dev: r.dev })),
      container,
      image: base.image,
      error: null,
    };
  } catch (e) {
    return { ...base, present: false, container, error: readError(e, netns) };
  }
}

/** One lab as it is: every node and host read on its own, so one that cannot be read becomes
 *  an error in its entry rather than a failure of the whole report. */
async function labStatus(kernel: Kernel, lab: string, existing: Set<string>): Promise<LabStatusReport | null> {
  const { state: st, error } = readStateChecked(lab);
  const as = st?.as ?? null;
  const running = st ? modelOf(st) : null;
  const names: { name: string; netns: string | null; model?: LabNode }[] = running ? nodesBuilt(running, as).map((n) => ({ name: n.name, netns: n.netns, model: n }))
    : [...existing].filter((n) => labOfNetns(n) === lab && n.startsWith(`${NETNS_PREFIX}${lab}.`)).map((n) => ({ name: n.slice(`${NETNS_PREFIX}${lab}.`.length), netns: n }));
  const holder = lockHolder(lab);
  if (!st && !error && names.length === 0 && !holder) return null;
  const nodes: NodeStatus[] = [];
  for (const n of names) nodes.push(await nodeStatus(kernel, lab, n.name, n.netns, existing, n.model));
  let hosts: HostStatus[] = [];
  let hostsError: string | null = null;
  try {
    hosts = st ? await hostStatus(kernel, st.model, as, existing) : [];
  } catch (e) {
    hostsError = `hosts: ${(e as Error).message}`;
  }
  const status = st?.status ?? (holder ? 'creating' : 'unknown (no state file)');
  return {
    lab, status, file: st?.file ?? '', createdAt: st?.createdAt ?? null, as,
    runningPid: holder?.pid ?? null,
    interrupted: !holder && (st === null || st.status !== 'up'),
    error: error ?? hostsError,
    nodes, hosts,
  };
}

/** Status of one lab or of all, read back from the kernel (the state file gives only the
 *  model). Never fails as a whole for one broken lab: its entry carries the error. */
export async function status(labName?: string): Promise<LabStatusReport[]> {
  requireRoot('status');
  const kernel = await Kernel.open();
  try {
    const labs = labName ? [labName] : await knownLabs(kernel);
    const existing = new Set(kernel.netnsList());
    const out: LabStatusReport[] = [];
    for (const lab of labs) {
      let r: LabStatusReport | null;
      try {
        r = await labStatus(kernel, lab, existing);
      } catch (e) {
        r = { lab, status: 'unknown', file: '', createdAt: null, as: null, runningPid: null, interrupted: false, error: (e as Error).message, nodes: [], hosts: [] };
      }
      if (r) out.push(r);
      else if (labName) throw new LabError(`lab ${lab} is not up`);
    }
    return out;
  } finally {
    kernel.close();
  }
}

