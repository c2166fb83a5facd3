// One netlab measurement process per scenario, size and mode (so its peak RSS is that lab's
// alone): loads a topology file, then `reps` times: up() (controller/lab.ts), the memory the lab
// added (its processes from /proc, the kernel's side from /proc/meminfo), the scenario's checks
// (checks/run.ts runChecks, as `netlab check` does), down(). Reports wall time, CPU time
// (user = JavaScript incl. ours, sys = the kernel working inside our syscalls), the time of each
// plan step by op type (from up's progress callback, which fires after every step), optionally a
// re-enactment of down's teardown calls one by one, a V8 CPU profile of one up(), and the
// process's peak RSS. Everything it makes is removed in `finally`, even on error.
//
//   node dist/bench/netlab-worker.js --topology FILE --reps 3 --out FILE [--bare]
//        [--check ping:FROM:TO]... [--matrix] [--cpuprofile FILE] [--down-breakdown]
//        [--mount-probe BIN] [--quiet-cap MS]
// --bare: up(lab, { containers: false }), bare namespaces; default: containers started, as the
// CLI's `netlab up` does. --matrix: the all-pairs ping matrix after each up, twice (the first
// with the neighbour caches empty, as right after `netlab up`, then warm).
import * as fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { Session } from 'node:inspector/promises';
import { loadTopologyText } from '../topology/load.js';
import type { Lab } from '../topology/types.js';
import { labId, labGroup, nftTable, NETNS_PREFIX, labOfNetns } from '../topology/names.js';
import { buildPlan, type PlanOp } from '../controller/plan.js';
import { down, up } from '../controller/lab.js';
import { Kernel, nftDeleteTable, nftListTables } from '../controller/kernel/index.js';
import { NFT_FAMILY } from '../controller/firewall.js';
import { readState, removeState } from '../controller/state.js';
import { adHocCheck, matrixChecks, runChecks, type CheckReport } from '../checks/run.js';
import { stopContainers } from '../runtime/container.js';
import { labMemory, meminfo, meminfoDelta, memQuiet, openFds, type LabMemory, type MeminfoDelta } from './memory.js';
import { arpTableFulls } from './matrix.js';
import { loadavg, peakRssKiB, round, sleep, waitQuiet } from './util.js';

export interface CheckRun {
  ms: number;
  checks: number;
  failed: number;
  /** Up to 3 failures, for diagnosis. */
  failures: string[];
  /** /proc/net/stat/arp_cache table_fulls during the run (the neighbour table is machine-wide). */
  arpTableFulls: number;
}

export interface RepMemory {
  /** The lab's processes (supervisor + containers), read 200 ms after up() returned. */
  lab: LabMemory;
  /** /proc/meminfo before up() and 200 ms after it returned (KiB; MemAvailable/MemFree: used). */
  kernel: MeminfoDelta;
  /** Open file descriptors of this process and mounts of the host's mount table, with the lab up. */
  fds: number;
  mounts: number;
}

export interface RepResult {
  upMs: number;
  downMs: number;
  /** After down() returned: until no link or netns of the lab is visible any more. */
  settleMs: number;
  upUserMs: number;
  upSysMs: number;
  downUserMs: number;
  downSysMs: number;
  /** Busy fraction of the CPUs just before the rep (0..1) and the load average. */
  busyBefore: number;
  loadavg: number[];
  /** Wall ms spent per plan op type in this up() (step i = progress(i) - progress(i-1)). */
  opMs: Partial<Record<PlanOp, number>>;
  /** The same split by where the step runs: `OP @host` (the host's namespace) or `OP @node`. */
  opMsWhere: Record<string, number>;
  /** Most open file descriptors of this process seen during up() (sampled every 250 steps and
   *  after the last one, in the first run only; null in the others). */
  fdsDuringUp: number | null;
  /** From the call of up() to the end of step 1 (lock, state, Kernel.open, buildPlan, the first
   *  step), and from the last step to up()'s return (final state write, close, unlock). */
  preMs: number;
  postMs: number;
  memory: RepMemory;
  /** The scenario's checks right after up (cold caches), and for the matrix a second run. */
  check: CheckRun | null;
  checkWarm: CheckRun | null;
}

export interface ProbeSample {
  /** Mounts in the host's table and ms per clone(NEWNS|NEWPID|...) + make-private. */
  mounts: number;
  cloneMs: number;
  /** ms per read of /proc/sys/net/ipv4/tcp_fin_timeout from the host (a key no lab touches). */
  netSysctlReadMs: number;
}

/** Costs that depend on what else is on the machine, before the first up and with the lab up. */
export interface MountProbe {
  before: ProbeSample | null;
  up: ProbeSample | null;
}

export interface WorkerResult {
  lab: string;
  nodes: number;
  containers: boolean;
  steps: number;
  counts: Partial<Record<PlanOp, number>>;
  /** Steps per `OP @host` / `OP @node`. */
  countsWhere: Record<string, number>;
  loadTopologyMs: number;
  buildPlanMs: number;
  reps: RepResult[];
  /** Peak RSS (VmHWM) in KiB: after load + imports, and at the end (the run's peak). */
  rssBaselineKiB: number;
  rssPeakKiB: number;
  /** RLIMIT_NOFILE soft limit of this process. */
  nofile: number | null;
  mountProbe: MountProbe | null;
  downBreakdown: Record<string, number> | null;
  cpuprofile: string | null;
  error: string | null;
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function args(name: string): string[] {
  const out: string[] = [];
  process.argv.forEach((a, i) => { if (a === `--${name}` && process.argv[i + 1] !== undefined) out.push(process.argv[i + 1]); });
  return out;
}

function cpuMs(a: NodeJS.CpuUsage): { user: number; sys: number } {
  return { user: a.user / 1000, sys: a.system / 1000 };
}

function nofile(): number | null {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : null;
  } catch { return null; }
}

function mountCount(): number {
  try { return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).length; } catch { return -1; }
}

function probeMounts(bin: string): ProbeSample | null {
  const r = spawnSync(bin, ['30'], { encoding: 'utf8' });
  const m = /^(\d+) ([\d.]+)/.exec(r.stdout ?? '');
  if (!m) return null;
  const reads = 300;
  const t0 = performance.now();
  for (let i = 0; i < reads; i++) fs.readFileSync('/proc/sys/net/ipv4/tcp_fin_timeout');
  return { mounts: Number(m[1]), cloneMs: Number(m[2]), netSysctlReadMs: round((performance.now() - t0) / reads, 4) };
}

/** Namespaces of the lab (nodes `netlab.<lab>.<node>`, simulated hosts `netlab.<lab>+<host>`). */
function labNetns(k: Kernel, lab: string): string[] {
  return k.netnsList().filter((n) => n.startsWith(NETNS_PREFIX) && labOfNetns(n) === lab);
}

/** Until no netns or root-namespace link of the lab is left (or 20 s). */
async function settle(lab: string): Promise<number> {
  const t0 = performance.now();
  const prefix = `nl${labId(lab)}`;
  const k = await Kernel.open();
  try {
    for (;;) {
      const ns = labNetns(k, lab);
      const links = (await k.ns(null).linkList()).filter((l) => l.name.startsWith(prefix));
      if (ns.length === 0 && links.length === 0) break;
      if (performance.now() - t0 > 20_000) throw new Error(`lab ${lab} did not go away: ${ns.length} netns, ${links.length} links left`);
      await sleep(5);
    }
  } finally {
    k.close();
  }
  return performance.now() - t0;
}

function checkRun(r: CheckReport, fulls: number): CheckRun {
  const bad = r.outcomes.filter((x) => !x.pass);
  return {
    ms: round(r.ms, 2), checks: r.outcomes.length, failed: r.failed,
    failures: bad.slice(0, 3).map((x) => `${x.label}: ${x.observed} (${x.detail})`), arpTableFulls: fulls,
  };
}

async function timedChecks(lab: Lab, specs: string[], matrix: boolean): Promise<CheckRun | null> {
  if (!matrix && specs.length === 0) return null;
  const checks = matrix ? matrixChecks(lab) : specs.map((s, i) => {
    const c = s.indexOf(':');
    return adHocCheck(lab, s.slice(0, c) as 'ping', s.slice(c + 1), i, 'reach');
  });
  const f0 = arpTableFulls();
  const r = await runChecks(lab, checks, matrix ? 'matrix' : 'checks');
  return checkRun(r, arpTableFulls() - f0);
}

async function main(): Promise<void> {
  const topo = arg('topology');
  const reps = Number(arg('reps') ?? 3);
  const out = arg('out');
  const profFile = arg('cpuprofile');
  const doDownBreakdown = process.argv.includes('--down-breakdown');
  const containers = !process.argv.includes('--bare');
  const matrix = process.argv.includes('--matrix');
  const checkSpecs = args('check');
  const probeBin = arg('mount-probe');
  const quietCap = Number(arg('quiet-cap') ?? 3000);
  if (!topo || !out || !Number.isInteger(reps) || reps < 1) throw new Error('usage: --topology FILE --reps R --out FILE [--bare] [--check ping:FROM:TO]... [--matrix]');

  const result: WorkerResult = {
    lab: '', nodes: 0, containers, steps: 0, counts: {}, countsWhere: {}, loadTopologyMs: 0, buildPlanMs: 0, reps: [],
    rssBaselineKiB: 0, rssPeakKiB: 0, nofile: nofile(), mountProbe: null, downBreakdown: null, cpuprofile: null, error: null,
  };
  let labName = '';
  try {
    const text = fs.readFileSync(topo, 'utf8');
    let t = performance.now();
    const { lab, diagnostics } = loadTopologyText(text, topo);
    result.loadTopologyMs = round(performance.now() - t, 2);
    if (!lab) throw new Error(`generated topology is invalid: ${diagnostics.map((d) => `${d.line}:${d.col} ${d.message}`).join('; ')}`);
    labName = lab.name;
    result.lab = lab.name;
    result.nodes = lab.nodes.length;
    t = performance.now();
    const plan = buildPlan(lab, { containers });
    result.buildPlanMs = round(performance.now() - t, 2);
    result.steps = plan.steps.length;
    result.counts = plan.counts;
    const where = plan.steps.map((st) => `${st.op} @${'netns' in st && st.netns !== null ? 'node' : 'host'}`);
    for (const w of where) result.countsWhere[w] = (result.countsWhere[w] ?? 0) + 1;
    result.rssBaselineKiB = peakRssKiB();
    if (probeBin) result.mountProbe = { before: probeMounts(probeBin), up: null };

    const total = plan.steps.length;
    for (let r = 0; r < reps; r++) {
      const busyBefore = await waitQuiet(0.1, quietCap);
      await memQuiet(quietCap);
      const la = loadavg();
      const marks = new Float64Array(total + 1);
      const mem0 = meminfo();
      let c0 = process.cpuUsage();
      const t0 = performance.now();
      let fds: number | null = null;
      const res = await up(lab, {
        containers,
        progress: (_phase, done) => {
          marks[done] = performance.now();
          if (r === 0 && (done % 250 === 0 || done === total)) fds = Math.max(fds ?? 0, openFds());
        },
      });
      const t1 = performance.now();
      const upCpu = cpuMs(process.cpuUsage(c0));
      if (res.plan.steps.length !== total) throw new Error('up() ran a different plan than buildPlan() gave');
      // Idle lab: what it holds once up() has returned.
      await sleep(200);
      const memory: RepMemory = { kernel: meminfoDelta(mem0, meminfo()), lab: labMemory(labName), fds: openFds(), mounts: mountCount() };
      if (r === 0 && probeBin && result.mountProbe) result.mountProbe.up = probeMounts(probeBin);
      const check = await timedChecks(lab, checkSpecs, matrix);
      const checkWarm = matrix ? await timedChecks(lab, checkSpecs, matrix) : null;
      c0 = process.cpuUsage();
      const t2 = performance.now();
      await down(labName);
      const t3 = performance.now();
      const downCpu = cpuMs(process.cpuUsage(c0));
      const settleMs = await settle(labName);
      const opMs: Partial<Record<PlanOp, number>> = {};
      for (let i = 1; i < total; i++) {
        const op = plan.steps[i].op;
        opMs[op] = (opMs[op] ?? 0) + (marks[i + 1] - marks[i]);
      }
      for (const k of Object.keys(opMs) as PlanOp[]) opMs[k] = round(opMs[k]!, 2);
      const opMsWhere: Record<string, number> = {};
      for (let i = 1; i < total; i++) opMsWhere[where[i]] = (opMsWhere[where[i]] ?? 0) + (marks[i + 1] - marks[i]);
      for (const k of Object.keys(opMsWhere)) opMsWhere[k] = round(opMsWhere[k], 2);
      result.reps.push({
        upMs: round(t1 - t0, 2), downMs: round(t3 - t2, 2), settleMs: round(settleMs, 2),
        upUserMs: round(upCpu.user, 2), upSysMs: round(upCpu.sys, 2), downUserMs: round(downCpu.user, 2), downSysMs: round(downCpu.sys, 2),
        busyBefore, loadavg: la, opMs, opMsWhere, fdsDuringUp: fds, preMs: round(marks[1] - t0, 2), postMs: round(t1 - marks[total], 2),
        memory, check, checkWarm,
      });
      process.stderr.write(`  ${labName}${containers ? '' : ' (bare)'} run ${r + 1}/${reps}: up ${Math.round(t1 - t0)} ms, down ${Math.round(t3 - t2)} ms${check ? `, check ${Math.round(check.ms)} ms (${check.checks - check.failed}/${check.checks} pass)` : ''}${checkWarm ? `, again ${Math.round(checkWarm.ms)} ms` : ''}\n`);
      if (check && check.failed > 0) throw new Error(`checks failed after up: ${check.failures.join('; ')}`);
    }

    if (profFile) {
      // One more up(), under the V8 sampling profiler (not counted in the timings above).
      await waitQuiet(0.1, quietCap);
      const session = new Session();
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.setSamplingInterval', { interval: 100 });
      await session.post('Profiler.start');
      await up(lab, { containers });
      const { profile } = await session.post('Profiler.stop');
      session.disconnect();
      fs.writeFileSync(profFile, JSON.stringify(profile));
      result.cpuprofile = profFile;
      await down(labName);
      await settle(labName);
    }

    if (doDownBreakdown) {
      // down()'s teardown, re-enacted call by call with the same functions, to see which part
      // costs what; 3 times, median per call. down() at the end finds nothing left (it still
      // takes the lock, lists tables and restores ip_forward).
      const runs: Record<string, number>[] = [];
      for (let r = 0; r < 3; r++) {
        await waitQuiet(0.1, quietCap);
        await up(lab, { containers });
        const b: Record<string, number> = {};
        const time = async (key: string, f: () => unknown) => { const s = performance.now(); await f(); b[key] = (b[key] ?? 0) + performance.now() - s; };
        let k!: Kernel;
        await time('Kernel.open', async () => { k = await Kernel.open(); });
        try {
          if (containers) await time('stopContainers (signal, wait for exit, remove cgroups)', () => stopContainers(labName, { starting: false }));
          await time('linkDelGroup (host side of every veth + bridge)', () => k.ns(null).linkDelGroup(labGroup(labName)));
          const netns = labNetns(k, labName);
          await time(`netnsDel x${netns.length} (umount + unlink)`, () => { for (const x of netns) k.netnsDel(x); });
          let has = false;
          await time('nftListTables (spawns nft)', () => { has = nftListTables().some((x) => x.family === NFT_FAMILY && x.name === nftTable(labName)); });
          if (has) await time('nftDeleteTable (spawns nft)', () => nftDeleteTable(NFT_FAMILY, nftTable(labName)));
        } finally {
          k.close();
        }
        await time('removeState (rm -r of the lab\'s state directory)', () => removeState(labName));
        await time('down() afterwards (lock, nothing left to remove, ip_forward restore)', () => down(labName));
        runs.push(b);
        await settle(labName);
      }
      result.downBreakdown = Object.fromEntries(Object.keys(runs[0]).map((key) => {
        const v = runs.map((x) => x[key] ?? 0).sort((a, b) => a - b);
        return [key, round(v[Math.floor(v.length / 2)], 2)];
      }));
    }
  } catch (e) {
    result.error = (e as Error).stack ?? String(e);
  } finally {
    // Whatever happened, nothing of this lab stays.
    if (labName) {
      try {
        if (readState(labName) || (await Kernel.open().then((k) => { try { return labNetns(k, labName).length > 0; } finally { k.close(); } }))) {
          await down(labName);
        }
      } catch (e) {
        result.error = `${result.error ?? ''}\ncleanup: ${(e as Error).message}`.trim();
      }
    }
    result.rssPeakKiB = peakRssKiB();
    fs.writeFileSync(out, JSON.stringify(result, null, 2));
  }
}

await main();
