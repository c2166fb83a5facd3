// One netlab measurement process per size (so its peak RSS is that size's alone): builds star N
// with controller/lab.ts's up() and removes it with down(), `reps` times, and reports wall time,
// CPU time (user = JavaScript incl. ours, sys = the kernel working inside our syscalls), the time
// of each plan step by op type (from up's progress callback, which fires after every step), a
// re-enactment of down's teardown calls one by one, optionally a V8 CPU profile of one up(), and
// the process's peak RSS. Everything it makes is removed in `finally`, even on error.
//
//   node dist/bench/netlab-worker.js --n 100 --reps 3 --lab bench-0123abcd-n100 --out FILE
//        [--bare] [--cpuprofile FILE] [--down-breakdown]
// --bare: up(lab, { containers: false }), bare namespaces; default: containers started, as the
// CLI's `netlab up` does.
import * as fs from 'node:fs';
import { Session } from 'node:inspector/promises';
import { loadTopologyText } from '../topology/load.js';
import { labId, labGroup, nftTable, NETNS_PREFIX } from '../topology/names.js';
import { buildPlan, type PlanOp } from '../controller/plan.js';
import { down, up } from '../controller/lab.js';
import { Kernel, nftDeleteTable, nftListTables } from '../controller/kernel.js';
import { NFT_FAMILY } from '../controller/firewall.js';
import { readState, removeState } from '../controller/state.js';
import { stopContainers } from '../runtime/container.js';
import { starTopology } from './star.js';
import { loadavg, peakRssKiB, round, sleep, waitQuiet } from './util.js';

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
  /** From the call of up() to the end of step 1 (lock, state, Kernel.open, buildPlan, the first
   *  bridge.add), and from the last step to up()'s return (final state write, close, unlock). */
  preMs: number;
  postMs: number;
}

export interface WorkerResult {
  n: number;
  containers: boolean;
  lab: string;
  steps: number;
  counts: Partial<Record<PlanOp, number>>;
  loadTopologyMs: number;
  buildPlanMs: number;
  reps: RepResult[];
  /** Peak RSS (VmHWM) in KiB: after load + imports, and at the end (the run's peak). */
  rssBaselineKiB: number;
  rssPeakKiB: number;
  downBreakdown: Record<string, number> | null;
  cpuprofile: string | null;
  error: string | null;
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function cpuMs(a: NodeJS.CpuUsage): { user: number; sys: number } {
  return { user: a.user / 1000, sys: a.system / 1000 };
}

/** Until no netns or root-namespace link of the lab is left (or 10 s). */
async function settle(lab: string): Promise<number> {
  const t0 = performance.now();
  const prefix = `nl${labId(lab)}`;
  const k = await Kernel.open();
  try {
    for (;;) {
      const ns = k.netnsList().filter((n) => n.startsWith(`${NETNS_PREFIX}${lab}.`));
      const links = (await k.ns(null).linkList()).filter((l) => l.name.startsWith(prefix));
      if (ns.length === 0 && links.length === 0) break;
      if (performance.now() - t0 > 10_000) throw new Error(`lab ${lab} did not go away: ${ns.length} netns, ${links.length} links left`);
      await sleep(5);
    }
  } finally {
    k.close();
  }
  return performance.now() - t0;
}

async function main(): Promise<void> {
  const n = Number(arg('n'));
  const reps = Number(arg('reps') ?? 3);
  const labName = arg('lab')!;
  const out = arg('out')!;
  const profFile = arg('cpuprofile');
  const doDownBreakdown = process.argv.includes('--down-breakdown');
  const containers = !process.argv.includes('--bare');
  if (!Number.isInteger(n) || n < 1 || !labName || !out) throw new Error('usage: --n N --reps R --lab NAME --out FILE');

  const result: WorkerResult = {
    n, containers, lab: labName, steps: 0, counts: {}, loadTopologyMs: 0, buildPlanMs: 0, reps: [],
    rssBaselineKiB: 0, rssPeakKiB: 0, downBreakdown: null, cpuprofile: null, error: null,
  };
  try {
    const text = starTopology(labName, n);
    const file = `/tmp/${labName}.yml`;
    let t = performance.now();
    const { lab, diagnostics } = loadTopologyText(text, file);
    result.loadTopologyMs = round(performance.now() - t, 2);
    if (!lab) throw new Error(`generated topology is invalid: ${diagnostics.map((d) => `${d.line}:${d.col} ${d.message}`).join('; ')}`);
    t = performance.now();
    const plan = buildPlan(lab, { containers });
    result.buildPlanMs = round(performance.now() - t, 2);
    result.steps = plan.steps.length;
    result.counts = plan.counts;
    result.rssBaselineKiB = peakRssKiB();

    const total = plan.steps.length;
    for (let r = 0; r < reps; r++) {
      const busyBefore = await waitQuiet();
      const la = loadavg();
      const marks = new Float64Array(total + 1);
      let c0 = process.cpuUsage();
      const t0 = performance.now();
      const res = await up(lab, { containers, progress: (_phase, done) => { marks[done] = performance.now(); } });
      const t1 = performance.now();
      const upCpu = cpuMs(process.cpuUsage(c0));
      if (res.plan.steps.length !== total) throw new Error('up() ran a different plan than buildPlan() gave');
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
      result.reps.push({
        upMs: round(t1 - t0, 2), downMs: round(t3 - t2, 2), settleMs: round(settleMs, 2),
        upUserMs: round(upCpu.user, 2), upSysMs: round(upCpu.sys, 2), downUserMs: round(downCpu.user, 2), downSysMs: round(downCpu.sys, 2),
        busyBefore, loadavg: la, opMs, preMs: round(marks[1] - t0, 2), postMs: round(t1 - marks[total], 2),
      });
    }

    if (profFile) {
      // One more up(), under the V8 sampling profiler (not counted in the timings above).
      await waitQuiet();
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
        await waitQuiet();
        await up(lab, { containers });
        const b: Record<string, number> = {};
        const time = async (key: string, f: () => unknown) => { const s = performance.now(); await f(); b[key] = (b[key] ?? 0) + performance.now() - s; };
        let k!: Kernel;
        await time('Kernel.open', async () => { k = await Kernel.open(); });
        try {
          if (containers) await time('stopContainers (signal, wait for exit, remove cgroups)', () => stopContainers(labName, { starting: false }));
          await time('linkDelGroup (host side of every veth + bridge)', () => k.ns(null).linkDelGroup(labGroup(labName)));
          const netns = k.netnsList().filter((x) => x.startsWith(`${NETNS_PREFIX}${labName}.`));
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
    try {
      if (readState(labName) || (await Kernel.open().then((k) => { try { return k.netnsList().some((x) => x.startsWith(`${NETNS_PREFIX}${labName}.`)); } finally { k.close(); } }))) {
        await down(labName);
      }
    } catch (e) {
      result.error = `${result.error ?? ''}\ncleanup: ${(e as Error).message}`.trim();
    }
    result.rssPeakKiB = peakRssKiB();
    fs.writeFileSync(out, JSON.stringify(result, null, 2));
  }
}

await main();
