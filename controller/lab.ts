// Lab lifecycle: up (plan + apply with rollback on failure or signal), down, status read back
// from the kernel, cleanup of everything carrying netlab's markers, and link up/down. Kernel
// access goes through controller/kernel/ only; everything a lab made is found again from its name
// (netns prefix, IFLA_GROUP, nft table), so down works after a crash at any point.
import * as fs from 'node:fs';
import type { Lab, LabNode } from '../topology/types.js';
import { labGroup, labOfNetns, nftTable, nodeNetns, NAME_PREFIX, NETNS_PREFIX, ALIAS_PREFIX, NFT_TABLE_PREFIX } from '../topology/names.js';
import { buildPlan, nodesBuilt, type Plan } from './plan.js';
import { AbortedError, ApplyError, applyPlan, type KernelApi } from './apply.js';
import { checkRuntime, containerState, startContainers, stopContainers, type ContainerState } from '../runtime/container.js';
import { ensureTmpfs, hostSysctlGet, hostSysctlSet, releaseTmpfs, Kernel, KernelError, netnsMountsPrivate, nftApply, nftDeleteTable, nftListTables, type LinkInfo } from './kernel/index.js';
import { needsFirewall, NFT_FAMILY } from './firewall.js';
import { acceptLab, removeLabRules } from './hostfw.js';
import { claimLab } from './conflicts.js';
import { listStateLabs, lockHolder, lockLab, releaseStateRoot, readState, readStateChecked, removeState, writeState, STATE_ROOT, type LabState } from './state.js';
import { NetlabError } from '../topology/errors.js';

/** A failure to show the user as is (one line), with the exit code. */
export class LabError extends NetlabError {
  constructor(message: string, exitCode = 1) {
    super(message, { exitCode });
  }
}

export function requireRoot(command: string): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new LabError(`netlab ${command} needs root: it changes network namespaces, links and nftables (validate, plan and graph do not)`);
  }
}

function kernelApi(k: Kernel): KernelApi {
  return { netnsAdd: (n) => k.netnsAdd(n), ns: (n) => k.ns(n), nftApply, iptablesAccept: (lab) => { acceptLab(lab); } };
}

// ---------------------------------------------------------------- host sysctl we change

const IP_FORWARD = 'net.ipv4.ip_forward';
const IP_FORWARD_SAVED = `${STATE_ROOT}/ip_forward.before`;

/** Remembers the host's ip_forward before the first lab turns it on. */
function saveIpForward(plan: Plan): void {
  if (!plan.steps.some((s) => s.op === 'sysctl.set' && s.netns === null && s.key === IP_FORWARD)) return;
  if (fs.existsSync(IP_FORWARD_SAVED)) return;
  fs.mkdirSync(STATE_ROOT, { recursive: true });
  fs.writeFileSync(IP_FORWARD_SAVED, hostSysctlGet(IP_FORWARD));
}

/** Puts ip_forward back once no lab is left. */
function restoreIpForward(): void {
  if (!fs.existsSync(IP_FORWARD_SAVED) || listStateLabs().length > 0) return;
  try {
    hostSysctlSet(IP_FORWARD, fs.readFileSync(IP_FORWARD_SAVED, 'utf8').trim());
  } finally {
    fs.rmSync(IP_FORWARD_SAVED, { force: true });
  }
}

// ---------------------------------------------------------------- up

export interface UpOptions {
  progress?: (phase: string, done: number, total: number) => void;
  /** Start the nodes' containers (default true); false builds bare namespaces only. */
  containers?: boolean;
  /** Build only this host's part of the lab, on this machine (see PlanOptions.as). */
  as?: string;
  /** Aborted when `up` must stop for a reason other than a signal (the CLI: its stdout or
   *  stderr is a closed pipe); the reason (a string) names it. Rolls back like a signal. */
  signal?: AbortSignal;
  /** Runs once the lab is built, before `up` counts as done (the CLI prints its report here):
   *  an interruption until it has returned still rolls the lab back. */
  report?: (plan: Plan, ms: number) => void;
}

/** The signals that end `up` by rolling back (SIGKILL cannot be caught: `down` finishes it). */
export const UP_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];

/** Names of netns that belong to a lab (node and simulated host namespaces). */
function labNetns(k: Kernel, lab: string): string[] {
  return k.netnsList().filter((n) => labOfNetns(n) === lab);
}

/** With `as`, the checks that this machine really is that host: the host is in the lab and
 *  its address is one of this machine's. */
async function checkAs(k: Kernel, lab: Lab, as: string): Promise<void> {
  const h = lab.hosts.find((x) => x.name === as);
  if (!h) throw new LabError(`lab ${lab.name} has no host ${as}${lab.hosts.length ? ` (hosts: ${lab.hosts.map((x) => x.name).join(', ')})` : ': it has no hosts: section'}`);
  const addrs = (await k.ns(null).addrList()).filter((a) => a.family === 4);
  if (!addrs.some((a) => a.address === h.address)) {
    throw new LabError(`host ${as} has address ${h.address} in the lab, but this machine has no such address (it has ${addrs.map((a) => a.address).join(', ') || 'no IPv4 address'}); run \`up --as ${as}\` on the machine with that address, or correct hosts.${as}.address`);
  }
}

export async function up(lab: Lab, opts: UpOptions = {}): Promise<{ plan: Plan; ms: number }> {
  requireRoot('up');
  const t0 = performance.now();
  const as = opts.as ?? null;
  const privateMounts = netnsMountsPrivate();
  if (privateMounts) throw new LabError(privateMounts);
  // Subnets and ports of other labs and of the machine: refused before anything exists; held
  // (machine-wide) until this lab's state records what it takes.
  const releaseClaim = claimLab(lab, as);
  // Handlers before the lock: from the first thing made (netlab's tmpfs, the lock file) on, a
  // signal only sets the flag, checked between steps; the rollback then removes everything.
  let signal: string | null = null;
  const onSignal = (s: NodeJS.Signals) => { signal ??= s; };
  for (const s of UP_SIGNALS) process.on(s, onSignal);
  const stopped = () => signal ?? (opts.signal?.aborted ? String(opts.signal.reason) : null);
  let release: (() => void) | null = null;
  let kernel: Kernel | null = null;
  try {
    release = lockLab(lab.name, ensureTmpfs);
    const prior = readState(lab.name);
    const downCmd = `netlab down ${lab.name}${prior?.as ? ` --as ${prior.as}` : ''}`;
    if (prior?.status === 'up') {
      throw new LabError(`lab ${lab.name} is already up${prior.as ? ` as host ${prior.as}` : ''} (from ${prior.file || 'memory'} since ${prior.createdAt}); run \`${downCmd}\` first${as !== null && prior.as !== as ? ' (two parts of one lab on one machine need one NETLAB_STATE_DIR each)' : ''}`);
    }
    kernel = await Kernel.open();
    if (as !== null) await checkAs(kernel, lab, as);
    // With `as`, only this host's node namespaces count: another part of the lab may share
    // /run/netns (two network namespaces playing two machines).
    const own = as === null ? null : new Set(nodesBuilt(lab, as).map((n) => n.netns));
    const leftovers = labNetns(kernel, lab.name).filter((n) => own === null || own.has(n));
    if (prior || leftovers.length > 0) {
      throw new LabError(`lab ${lab.name} is half-built (${prior ? `state ${prior.status}` : `${leftovers.length} namespaces left`} from an earlier run that did not finish); run \`${prior ? downCmd : `netlab down ${lab.name}${as !== null ? ` --as ${as}` : ''}`}\` first`);
    }
    const containers = opts.containers ?? true;
    if (containers) checkRuntime(lab); // images and helper are there before any kernel object
    const plan = buildPlan(lab, { containers, ...(as !== null ? { as } : {}) });
    const now = new Date().toISOString();
    const state: LabState = {
      version: 1, lab: lab.name, file: lab.file, status: 'creating', pid: process.pid, createdAt: now, updatedAt: now,
      progress: { done: 0, total: plan.steps.length, phase: 'starting' }, error: null, model: lab,
      ...(as !== null ? { as } : {}),
    };
    // The intent: from here on, down/cleanup know this lab may have kernel objects.
    writeState(state);
    releaseClaim();
    try {
      saveIpForward(plan);
      await applyPlan(plan, kernelApi(kernel), {
        startContainers: async (steps) => { await startContainers(lab, steps.map((st) => st.node)); },
        aborted: stopped,
        progress: (done, total, step) => opts.progress?.(step.phase, done, total),
      });
      // A signal during the last step, or during the report, still means "not done".
      const afterApply = stopped();
      if (afterApply) throw new AbortedError(afterApply);
      opts.report?.(plan, performance.now() - t0);
      // A write to a closed pipe fails synchronously but is reported on the next tick.
      await new Promise((r) => setImmediate(r));
      const afterReport = stopped();
      if (afterReport) throw new AbortedError(afterReport);
    } catch (e) {
      state.status = 'failed';
      state.error = (e as Error).message;
      try { writeState(state); } catch { /* rollback below removes it anyway */ }
      await teardown(kernel, lab.name, { starting: true, as });
      throw e instanceof ApplyError || e instanceof AbortedError ? e.rolledBack() : e;
    }
    state.status = 'up';
    state.progress = { done: plan.steps.length, total: plan.steps.length, phase: 'done' };
    writeState(state);
    return { plan, ms: performance.now() - t0 };
  } finally {
    kernel?.close();
    releaseClaim();
    if (release) {
      release();
      releaseStateRoot(releaseTmpfs); // after a rollback the lab may have been the last one
    }
    for (const s of UP_SIGNALS) process.off(s, onSignal);
  }
}

// ---------------------------------------------------------------- down and cleanup

export interface TeardownReport {
  lab: string;
  /** The host whose part was removed (`down --as`), null for the whole lab. */
  as: string | null;
  netns: string[];
  rootLinks: boolean;
  nftTable: string | null;
  /** iptables accept rules removed (those netlab adds where Docker's filter would drop the lab). */
  iptablesRules: number;
  /** Exit status of each container, as the runtime recorded it. */
  exits: Record<string, string>;
  /** Cgroups that could not be removed (should be none). */
  cgroupsLeft: string[];
}

/** Namespaces of the nodes one host's part of a lab built here: the model's nodes on that
 *  host, and (found without state) the nodes named in the aliases of the lab's veths in this
 *  namespace (`netlab:<lab>:<node>:<iface>`, each one the bridge port of a node here). */
async function ownNetns(k: Kernel, lab: string, as: string, st: LabState | null): Promise<Set<string>> {
  const own = new Set<string>();
  if (st) for (const n of nodesBuilt(st.model, as)) if (n.netns) own.add(n.netns);
  const group = labGroup(lab);
  for (const l of await k.ns(null).linkList()) {
    if (l.group !== group || l.kind !== 'veth' || !l.alias?.startsWith(`${ALIAS_PREFIX}${lab}:`)) continue;
    const parts = l.alias.split(':');
    if (parts.length === 4 && !parts[2].startsWith('@')) own.add(nodeNetns(lab, parts[2]));
  }
  return own;
}

/** Removes every kernel object of a lab, found from its name alone: one group delete for the
 *  links in the host's namespace, an unmount per namespace (the kernel then removes the links
 *  inside), the nft table, and the state. Tolerant: objects already gone are fine. With `as`
 *  (or a state written by `up --as`), only that host's part: the namespaces of its own nodes,
 *  never those of another part of the lab that shares /run/netns. */
async function teardown(k: Kernel, lab: string, o: { starting?: boolean; as?: string | null } = {}): Promise<TeardownReport> {
  const st = readState(lab);
  const as = o.as ?? st?.as ?? null;
  // Whether containers may still be starting: a lab that was never up (its `up` died or is
  // rolling back). An earlier interrupted down recorded what the lab was before it.
  const before = st?.status === 'deleting' ? st.was ?? 'creating' : st?.status;
  const starting = o.starting ?? before !== 'up';
  // Intent first, as up does: until the state is removed at the end, `status` shows the lab as
  // being deleted (or, if this process dies, as an interrupted down that `down` finishes).
  if (st && st.status !== 'deleting') {
    st.was = st.status;
    st.status = 'deleting';
    st.pid = process.pid;
    writeState(st);
  }
  // Containers first: their processes pin the namespaces (and so the veths) they live in.
  const stopped = await stopContainers(lab, { starting });
  const own = as === null ? null : await ownNetns(k, lab, as, st);
  const rootLinks = await k.ns(null).linkDelGroup(labGroup(lab));
  const netns = labNetns(k, lab).filter((n) => own === null || own.has(n));
  for (const n of netns) k.netnsDel(n);
  const table = nftTable(lab);
  // With a state the model says whether there is a table (one nft run, or none); without one,
  // ask nft. nftDeleteTable is tolerant of a table that is already gone.
  const hadTable = st ? as === null && needsFirewall(st.model) : nftListTables().some((t) => t.family === NFT_FAMILY && t.name === table);
  if (hadTable) nftDeleteTable(NFT_FAMILY, table);
  const iptablesRules = removeLabRules(lab);
  removeState(lab);
  restoreIpForward();
  return { lab, as, netns, rootLinks, nftTable: hadTable ? table : null, iptablesRules, exits: stopped.exits, cgroupsLeft: stopped.cgroupsLeft };
}

export async function down(labName: string, o: { as?: string } = {}): Promise<TeardownReport & { ms: number }> {
  requireRoot('down');
  const t0 = performance.now();
  const release = lockLab(labName);
  let kernel: Kernel | null = null;
  try {
    const st = readState(labName);
    if (o.as && st && (st.as ?? null) !== o.as) {
      throw new LabError(st.as
        ? `lab ${labName} runs here as host ${st.as}, not ${o.as}; run \`netlab down ${labName} --as ${st.as}\``
        : `lab ${labName} runs here whole (every host simulated), not as host ${o.as}; run \`netlab down ${labName}\``);
    }
    kernel = await Kernel.open();
    const r = await teardown(kernel, labName, { as: o.as ?? null });
    return { ...r, ms: performance.now() - t0 };
  } finally {
    kernel?.close();
    release();
    releaseStateRoot(releaseTmpfs); // the last lab down takes netlab's tmpfs with it
  }
}

/** Labs that exist on this machine: with state, or with namespaces carrying the marker. */
export async function knownLabs(k?: Kernel): Promise<string[]> {
  const names = new Set(listStateLabs());
  const own = k ?? await Kernel.open();
  try {
    for (const n of own.netnsList()) {
      const l = labOfNetns(n);
      if (l) names.add(l);
    }
  } finally {
    if (!k) own.close();
  }
  return [...names].sort();
}

export interface CleanupReport {
  labs: TeardownReport[];
  strayLinks: string[];
  strayTables: string[];
}

/** Removes everything carrying netlab's markers, with or without state files. */
export async function cleanup(): Promise<CleanupReport> {
  requireRoot('cleanup');
  const kernel = await Kernel.open();
  try {
    const labs: TeardownReport[] = [];
    for (const lab of await knownLabs(kernel)) {
      const release = lockLab(lab);
      try { labs.push(await teardown(kernel, lab)); } finally { release(); }
    }
    // Links of labs whose namespaces are already gone: our name prefix and alias, any group.
    const root = kernel.ns(null);
    const strayLinks: string[] = [];
    for (const l of await root.linkList()) {
      if (isNetlabLink(l)) {
        try { await root.linkDel(l.name); strayLinks.push(l.name); } catch (e) {
          if (!(e instanceof KernelError && e.errno === 'ENODEV')) throw e; // a veth whose peer went first
        }
      }
    }
    const strayTables: string[] = [];
    for (const t of nftListTables()) {
      if (t.name.startsWith(NFT_TABLE_PREFIX)) { nftDeleteTable(t.family, t.name); strayTables.push(`${t.family} ${t.name}`); }
    }
    removeLabRules(null); // iptables rules of labs already gone
    restoreIpForward();
    return { labs, strayLinks, strayTables };
  } finally {
    kernel.close();
    releaseStateRoot(releaseTmpfs);
  }
}

export function isNetlabLink(l: LinkInfo): boolean {
  return l.name.startsWith(NAME_PREFIX) && (l.alias?.startsWith(ALIAS_PREFIX) ?? false);
}

// ---------------------------------------------------------------- status

export interface InterfaceStatus {
  name: string;
  up: boolean;
  operUp: boolean;
  mtu: number;
  mac: string | null;
  addresses: string[];
}

export interface NodeStatus {
  name: string;
  netns: string | null;
  present: boolean;
  interfaces: InterfaceStatus[];
  routes: { dst: string; via: string | null; dev: string | null }[];
  container: ContainerState;
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

async function nodeStatus(k: Kernel, lab: string, name: string, netns: string | null, existing: Set<string>): Promise<NodeStatus> {
  const container = containerState(lab, name); // files only, every read guarded: does not throw
  const base = { name, netns, interfaces: [], routes: [] };
  if (netns === null) return { ...base, present: true, container, error: null };
  if (!existing.has(netns)) return { ...base, present: false, container, error: null };
  try {
    const h = k.ns(netns);
    const [links, addrs, routes] = await Promise.all([h.linkList(), h.addrList(), h.routeList()]);
    return {
      name, netns, present: true,
      interfaces: links.map((l) => ({
        name: l.name, up: l.up, operUp: l.operUp, mtu: l.mtu, mac: l.mac,
        addresses: addrs.filter((a) => a.index === l.index).map((a) => `${a.address}/${a.prefixLen}`),
      })),
      routes: routes.map((r) => ({ dst: r.dst, via: r.via, dev: r.dev })),
      container,
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
  const names = st ? nodesBuilt(st.model, as).map((n) => ({ name: n.name, netns: n.netns }))
    : [...existing].filter((n) => labOfNetns(n) === lab && n.startsWith(`${NETNS_PREFIX}${lab}.`)).map((n) => ({ name: n.slice(`${NETNS_PREFIX}${lab}.`.length), netns: n }));
  const holder = lockHolder(lab);
  if (!st && !error && names.length === 0 && !holder) return null;
  const nodes: NodeStatus[] = [];
  for (const n of names) nodes.push(await nodeStatus(kernel, lab, n.name, n.netns, existing));
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

// ---------------------------------------------------------------- link up/down

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
      const pf = peer.interfaces.find((i) => i.name === f.peer!.iface);
      if (pf) pf.up = up;
      const l = st.model.links[f.link!];
      if (l) l.up = up;
    }
    // Setting an interface down makes the kernel drop every IPv4 route through it, and up
    // brings back only the connected route: put the static routes of both ends back.
    if (up) for (const n of touched) await restoreRoutes(kernel, n);
    f.up = up;
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
      await h.routeAdd({ dst: r.dst, via: r.via ?? undefined, dev: r.dev ?? undefined });
    } catch (e) {
      if (!(e instanceof KernelError && ['EEXIST', 'ENETUNREACH', 'ENETDOWN'].includes(e.errno))) throw e;
    }
  }
}
