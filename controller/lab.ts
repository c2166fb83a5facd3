// Lab lifecycle: up (plan + apply with rollback on failure or signal), down, and cleanup of
// everything carrying netlab's markers (status.ts reads labs back, link.ts sets cables down/up). Kernel
// access goes through controller/kernel/ only; everything a lab made is found again from its name
// (netns prefix, IFLA_GROUP, nft table), so down works after a crash at any point.
import { hostsFile } from '../topology/hosts.js';
import * as fs from 'node:fs';
import type { Lab } from '../topology/types.js';
import { labGroup, nftTable, nodeNetns, ALIAS_PREFIX, NFT_TABLE_PREFIX } from '../topology/names.js';
import { buildPlan, neighbourEntries, nodesBuilt, type Plan } from './plan.js';
import { AbortedError, ApplyError, applyPlan, type KernelApi } from './apply.js';
import { checkRuntime, startContainers, stopContainers } from '../runtime/container.js';
import { ensureTmpfs, hostSysctlGet, hostSysctlSet, releaseTmpfs, Kernel, KernelError, netnsMountsPrivate, netemAvailable, nftApply, nftApplyIn, nftDeleteTable, nftListTables } from './kernel/index.js';
import { needsFirewall, NFT_FAMILY } from './firewall.js';
import { acceptLab, removeLabRules } from './hostfw.js';
import { claimLab } from './conflicts.js';
import { listStateLabs, lockLab, modelOf, releaseStateRoot, readState, removeState, writeState, STATE_ROOT, type LabState } from './state.js';
import { isNetlabLink, knownLabs, LabError, labNetns, requireRoot } from './labs.js';

export { isNetlabLink, knownLabs, LabError, requireRoot } from './labs.js';
export * from './status.js';
export { setHostLink, setLink } from './link.js';
export { setImpairment, type ImpairResult } from './impair.js';

/** `accepted` records the iptables chain the lab's accept rules went into (null: none needed). */
function kernelApi(k: Kernel, accepted: { chain?: string | null }): KernelApi {
  return { netnsAdd: (n) => k.netnsAdd(n), ns: (n) => k.ns(n), nftApply, nftApplyIn, iptablesAccept: (lab) => { accepted.chain = acceptLab(lab); } };
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

// The machine's neighbour (ARP) table is one for every namespace, and its thresholds live in
// the initial one: above gc_thresh2 entries are collected within 5 s, above gc_thresh3 new
// ones fail. A lab that needs more raises them (for every lab up, this one included), and the
// last `down` puts them back, as for ip_forward.
const NEIGH_KEYS = ['net.ipv4.neigh.default.gc_thresh1', 'net.ipv4.neigh.default.gc_thresh2', 'net.ipv4.neigh.default.gc_thresh3'];
const NEIGH_SAVED = `${STATE_ROOT}/gc_thresh.before`;

/** Raises gc_thresh1..3 when the labs up and `lab` need more neighbour entries than gc_thresh2
 *  allows; returns the new values, or null when they were enough. */
function raiseNeighbourThresholds(lab: Lab): number[] | null {
  let needed = neighbourEntries(lab);
  for (const other of listStateLabs()) {
    const st = other === lab.name ? null : readState(other);
    if (st) needed += neighbourEntries(st.model);
  }
  let cur: number[];
  try { cur = NEIGH_KEYS.map((k) => Number(hostSysctlGet(k))); } catch { return null; } // not the initial namespace
  if (needed <= cur[1]) return null;
  const third = 2 ** Math.ceil(Math.log2(needed * 2));
  const next = [Math.max(cur[0], third / 8), Math.max(cur[1], third / 2), Math.max(cur[2], third)];
  if (!fs.existsSync(NEIGH_SAVED)) {
    fs.mkdirSync(STATE_ROOT, { recursive: true });
    fs.writeFileSync(NEIGH_SAVED, cur.join(' '));
  }
  // thresh3 first: the kernel wants thresh1 <= thresh2 <= thresh3 at every step.
  for (const i of [2, 1, 0]) hostSysctlSet(NEIGH_KEYS[i], String(next[i]));
  return next;
}

/** Puts the neighbour thresholds back once no lab is left. */
function restoreNeighbourThresholds(): void {
  if (!fs.existsSync(NEIGH_SAVED) || listStateLabs().length > 0) return;
  try {
    const saved = fs.readFileSync(NEIGH_SAVED, 'utf8').trim().split(/\s+/);
    for (const i of [0, 1, 2]) if (saved[i]) hostSysctlSet(NEIGH_KEYS[i], saved[i]);
  } finally {
    fs.rmSync(NEIGH_SAVED, { force: true });
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
    const plan = buildPlan(lab, { containers, netem: netemAvailable(), ...(as !== null ? { as } : {}) });
    const now = new Date().toISOString();
    const state: LabState = {
      version: 1, lab: lab.name, file: lab.file, status: 'creating', pid: process.pid, createdAt: now, updatedAt: now,
      progress: { done: 0, total: plan.steps.length, phase: 'starting' }, error: null, model: lab,
      ...(as !== null ? { as } : {}),
    };
    // The intent: from here on, down/cleanup know this lab may have kernel objects.
    writeState(state);
    releaseClaim();
    const accepted: { chain?: string | null } = {};
    try {
      saveIpForward(plan);
      if (as === null) raiseNeighbourThresholds(lab);
      await applyPlan(plan, kernelApi(kernel, accepted), {
        startContainers: async (steps) => {
          const byName = new Map(lab.nodes.map((n) => [n.name, n]));
          await startContainers(lab.name, steps.map((st) => st.spec), (n) => hostsFile(lab, byName.get(n)!));
        },
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
    // Recorded only once up is complete: a state without it (a killed or rolled-back up) makes
    // down look for the rules itself.
    state.iptables = accepted.chain ?? null;
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
  // The bridge ports' loss table (plan.ts hostLossSteps: lossy network attachments on a kernel
  // without netem), when the lab as it ran had one.
  const lossy = st ? modelOf(st).nodes.some((n) => n.interfaces.some((f) => f.kind === 'network' && f.impair?.lossPct)) : nftListTables().some((t) => t.family === 'netdev' && t.name === table);
  if (lossy && as === null) nftDeleteTable('netdev', table);
  // A complete up recorded whether it added iptables rules (most machines: none, and then down
  // spends no iptables-save); otherwise look for them by their comment.
  const iptablesRules = st?.iptables === null && before === 'up' ? 0 : removeLabRules(lab);
  removeState(lab);
  restoreIpForward();
  restoreNeighbourThresholds();
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
  restoreNeighbourThresholds();
    return { labs, strayLinks, strayTables };
  } finally {
    kernel.close();
    releaseStateRoot(releaseTmpfs);
  }
}

