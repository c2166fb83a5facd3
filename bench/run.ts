// netlab's benchmark (not part of `npm test`): star N for each size, netlab (in-process up/down
// through controller/lab.ts, with containers as `netlab up` does and with bare namespaces, and
// the CLI end to end once) side by side with the iproute2 `ip -batch` floor and Mininet, in the
// same run. Writes bench/results/<date>.json and
// regenerates docs/performance.md. Needs root.
//
//   npm run bench -- [--sizes 10,100,300] [--reps 5] [--mn-reps 3] [--profile-size 100]
//                    [--no-mininet] [--no-setup] [--out FILE] [--doc FILE]
//
// Everything it creates carries this run's id (lab `bench-<id>-n<N>`, namespaces
// `bfl<id>-...`, links `bf<id>...`) and is removed in `finally`, even on error; at the end a
// snapshot of the machine is compared with the one taken at the start and any object of ours
// still there fails the run.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { down } from '../controller/lab.js';
import { readState } from '../controller/state.js';
import { labId, nftTable, NETNS_PREFIX } from '../topology/names.js';
import type { PlanOp } from '../controller/plan.js';
import { starTopology } from './star.js';
import { FLOOR_BUILDS, floorBuild, floorCleanup, floorLinks, floorNetns, floorSettle, floorSpec, floorTeardown, floorVerify, writeFloorFiles, type FloorSpec } from './floor.js';
import { mininetAvailable, mininetCleanup, mininetLinks, runMininet } from './mininet.js';
import { compare, snapshot, type LeakReport } from './leaks.js';
import { summarizeProfile, type ProfileSummary } from './profile.js';
import type { WorkerResult } from './netlab-worker.js';
import { fmtMs, fmtStats, fsCost, loadavg, machine, type FsCost, round, stats, timeCmd, waitQuiet, type Machine, type Stats } from './util.js';
import { STATE_ROOT } from '../controller/state.js';
import { renderMarkdown, renderTerminal } from './report.js';

const HERE = path.dirname(fileURLToPath(import.meta.url)); // dist/bench
const ROOT = path.resolve(HERE, '..', '..');
const WORKER = path.join(HERE, 'netlab-worker.js');
const PROBE = pathToFileURL(path.join(HERE, 'rss-probe.js')).href;
const CLI = path.join(ROOT, 'bin', 'netlab.js');

// ---------------------------------------------------------------- result shapes

export interface FloorVariantResult { build: Stats; teardown: Stats; settle: Stats }

/** How `up` is called: `containers` is what `netlab up` does (a container per node, the
 *  default); `bare` is `up(lab, { containers: false })`, bare namespaces like the floor's. */
export type Mode = 'containers' | 'bare';
export const MODES: Mode[] = ['containers', 'bare'];

export interface NetlabResult {
    mode: Mode;
    steps: number;
    counts: Partial<Record<PlanOp, number>>;
    loadTopologyMs: number;
    buildPlanMs: number;
    up: Stats;
    down: Stats;
    upDown: Stats;
    settle: Stats;
    upUser: Stats;
    upSys: Stats;
    downUser: Stats;
    downSys: Stats;
    /** Wall ms per op type in up (over the reps). */
    opMs: Partial<Record<PlanOp, Stats>>;
    pre: Stats;
    post: Stats;
    rssBaselineKiB: number;
    rssPeakKiB: number;
    busyBeforeMax: number;
    downBreakdown: Record<string, number> | null;
    profile: ProfileSummary | null;
    raw: WorkerResult['reps'];
}

export interface SizeResult {
  n: number;
  lab: string;
  netlab: Record<Mode, NetlabResult>;
  cli: { upMs: number; downMs: number; upRssKiB: number | null; downRssKiB: number | null; upReported: string } | null;
  /** Why the CLI run failed (it does not stop the bench: the in-process numbers stand). */
  cliError: string | null;
  floor: {
    variants: Record<string, FloorVariantResult>;
    best: { build: string; teardown: string; buildStats: Stats; teardownStats: Stats; upDown: number };
  } | null;
  mininet: { runs: Stats | null; selfReported: Stats | null; error: string | null; skipped: string | null };
}

export interface RunResult {
  date: string;
  startedAt: string;
  finishedAt: string;
  runId: string;
  command: string;
  machine: Machine;
  /** What was measured: the commit and the files changed on top of it (outside bench/). */
  code: { commit: string; dirty: string[] };
  options: { sizes: number[]; reps: number; mnReps: number; profileSize: number | null; mininet: boolean };
  nodeStartup: { nodeEmptyMs: Stats; cliVersionMs: Stats };
  /** The runtime's per-node file pattern beside /run/netlab and on a tmpfs. */
  fsCost: FsCost | null;
  mininet: { available: boolean; why: string | null; version: string | null };
  sizes: SizeResult[];
  leaks: LeakReport;
  error: string | null;
}

// ---------------------------------------------------------------- arguments

interface Options { sizes: number[]; reps: number; mnReps: number; profileSize: number | null; mininet: boolean; setup: boolean; out: string | null; doc: string }

function parseArgs(argv: string[]): Options {
  const o: Options = { sizes: [10, 100, 300], reps: 5, mnReps: 3, profileSize: 100, mininet: true, setup: true, out: null, doc: path.join(ROOT, 'docs', 'performance.md') };
  let profileGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const int = (v: string, min: number) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < min) throw new Error(`${a}: expected an integer >= ${min}, got "${v}"`);
      return n;
    };
    switch (a) {
      case '--sizes': o.sizes = val().split(',').filter(Boolean).map((s) => int(s, 1)); break;
      case '--reps': o.reps = int(val(), 3); break;
      case '--mn-reps': o.mnReps = int(val(), 1); break;
      case '--profile-size': o.profileSize = int(val(), 1); profileGiven = true; break;
      case '--no-mininet': o.mininet = false; break;
      case '--no-setup': o.setup = false; break;
      case '--out': o.out = path.resolve(val()); break;
      case '--doc': o.doc = path.resolve(val()); break;
      case '-h': case '--help':
        console.log('usage: npm run bench -- [--sizes 10,100,300] [--reps 5] [--mn-reps 3] [--profile-size 100] [--no-mininet] [--no-setup] [--out FILE] [--doc FILE]');
        process.exit(0);
        break;
      default: throw new Error(`unknown argument ${a} (see --help)`);
    }
  }
  if (o.sizes.length === 0) throw new Error('--sizes: no size given');
  // The profile (and down's breakdown) run at N=100 when it is measured, else at the middle size.
  if (!profileGiven || !o.sizes.includes(o.profileSize!)) {
    if (profileGiven) log(`--profile-size ${o.profileSize} is not among --sizes; profiling N=${o.sizes[Math.floor(o.sizes.length / 2)]}`);
    o.profileSize = o.sizes.includes(100) ? 100 : [...o.sizes].sort((a, b) => a - b)[Math.floor(o.sizes.length / 2)];
  }
  return o;
}

function codeIdentity(): RunResult['code'] {
  const git = (args: string[]) => spawnSync('git', ['-C', ROOT, ...args], { encoding: 'utf8', maxBuffer: 1 << 28 }).stdout?.trim() ?? '';
  const dirty = spawnSync('git', ['-C', ROOT, 'status', '--porcelain'], { encoding: 'utf8', maxBuffer: 1 << 28 }).stdout.split('\n').filter(Boolean).map((l) => l.slice(3))
    .filter((f) => !f.startsWith('bench/') && f !== 'docs/performance.md');
  return { commit: git(['rev-parse', '--short', 'HEAD']) || 'unknown', dirty };
}

function log(s: string): void {
  process.stderr.write(`bench: ${s}\n`);
}

// ---------------------------------------------------------------- parts

async function nodeStartup(): Promise<RunResult['nodeStartup']> {
  const empty: number[] = [];
  const version: number[] = [];
  for (let i = 0; i < 3; i++) {
    await waitQuiet();
    empty.push((await timeCmd(process.execPath, ['-e', '0'])).ms);
    version.push((await timeCmd(process.execPath, [CLI, '--version'])).ms);
  }
  return { nodeEmptyMs: stats(empty), cliVersionMs: stats(version) };
}

async function runNetlab(n: number, lab: string, mode: Mode, o: Options, tmp: string): Promise<NetlabResult> {
  const out = path.join(tmp, `worker-${n}-${mode}.json`);
  const args = [WORKER, '--n', String(n), '--reps', String(o.reps), '--lab', lab, '--out', out];
  if (mode === 'bare') args.push('--bare');
  const profiling = n === o.profileSize;
  const prof = path.join(tmp, `up-${n}-${mode}.cpuprofile`);
  if (profiling) args.push('--cpuprofile', prof, '--down-breakdown');
  log(`N=${n}: netlab up/down (${mode === 'bare' ? 'bare namespaces' : 'with containers, as `netlab up`'}) x${o.reps} in one process (${lab})${profiling ? ', then a profiled up() and down()\'s breakdown' : ''}`);
  const r = spawnSync(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  if (!fs.existsSync(out)) throw new Error(`netlab worker for N=${n} wrote no result (exit ${r.status ?? r.signal})`);
  const w = JSON.parse(fs.readFileSync(out, 'utf8')) as WorkerResult;
  if (w.error) throw new Error(`netlab worker for N=${n} failed: ${w.error}`);
  const col = (f: (x: WorkerResult['reps'][number]) => number) => stats(w.reps.map(f));
  const ops = new Set(w.reps.flatMap((x) => Object.keys(x.opMs))) as Set<PlanOp>;
  const opMs: Partial<Record<PlanOp, Stats>> = {};
  for (const op of ops) opMs[op] = stats(w.reps.map((x) => x.opMs[op] ?? 0));
  return {
    mode, steps: w.steps, counts: w.counts, loadTopologyMs: w.loadTopologyMs, buildPlanMs: w.buildPlanMs,
    up: col((x) => x.upMs), down: col((x) => x.downMs), upDown: col((x) => x.upMs + x.downMs), settle: col((x) => x.settleMs),
    upUser: col((x) => x.upUserMs), upSys: col((x) => x.upSysMs), downUser: col((x) => x.downUserMs), downSys: col((x) => x.downSysMs),
    opMs, pre: col((x) => x.preMs), post: col((x) => x.postMs),
    rssBaselineKiB: w.rssBaselineKiB, rssPeakKiB: w.rssPeakKiB,
    busyBeforeMax: Math.max(...w.reps.map((x) => x.busyBefore)),
    downBreakdown: w.downBreakdown,
    profile: profiling && w.cpuprofile ? summarizeProfile(w.cpuprofile) : null,
    raw: w.reps,
  };
}

async function labGone(lab: string): Promise<void> {
  let ns: string[] = [];
  try { ns = fs.readdirSync('/run/netns').filter((x) => x.startsWith(`${NETNS_PREFIX}${lab}.`)); } catch { /* none */ }
  if (readState(lab) || ns.length > 0) throw new Error(`lab ${lab} is still there after down`);
}

async function runCli(n: number, lab: string, tmp: string): Promise<NonNullable<SizeResult['cli']>> {
  const file = path.join(tmp, `${lab}.yml`);
  fs.writeFileSync(file, starTopology(lab, n));
  log(`N=${n}: CLI end to end: node bin/netlab.js up ${path.basename(file)}; node bin/netlab.js down ${lab}`);
  const probeUp = path.join(tmp, `probe-up-${n}.json`);
  const probeDown = path.join(tmp, `probe-down-${n}.json`);
  await waitQuiet();
  const u = await timeCmd(process.execPath, ['--import', PROBE, CLI, 'up', file], { env: { ...process.env, NETLAB_BENCH_PROBE_OUT: probeUp }, cwd: ROOT });
  if (u.code !== 0) throw new Error(`netlab up (CLI) exited ${u.code}: ${u.stderr.trim()}`);
  const d = await timeCmd(process.execPath, ['--import', PROBE, CLI, 'down', lab], { env: { ...process.env, NETLAB_BENCH_PROBE_OUT: probeDown }, cwd: ROOT });
  if (d.code !== 0) throw new Error(`netlab down (CLI) exited ${d.code}: ${d.stderr.trim()}`);
  await labGone(lab);
  const rss = (f: string) => { try { return (JSON.parse(fs.readFileSync(f, 'utf8')) as { maxRSSKiB: number }).maxRSSKiB; } catch { return null; } };
  return { upMs: round(u.ms, 2), downMs: round(d.ms, 2), upRssKiB: rss(probeUp), downRssKiB: rss(probeDown), upReported: u.stdout.split('\n')[0] ?? '' };
}

async function runFloor(n: number, spec: FloorSpec, o: Options): Promise<NonNullable<SizeResult['floor']>> {
  const files = writeFloorFiles(spec);
  const variants: Record<string, FloorVariantResult> = {};
  const plan: [string, 'seq' | 'exec' | 'par2', 'group' | 'netns'][] = [
    ...FLOOR_BUILDS.map((b) => [`${b} + del group`, b, 'group'] as [string, typeof b, 'group']),
    ['exec + del bridge/netns', 'exec', 'netns'],
  ];
  log(`N=${n}: ip -batch floor: ${plan.map((p) => p[0]).join(', ')} (x${o.reps} each)`);
  for (const [name, b, t] of plan) {
    const build: number[] = [];
    const td: number[] = [];
    const st: number[] = [];
    for (let r = 0; r < o.reps; r++) {
      await waitQuiet();
      build.push(await floorBuild(files, b));
      floorVerify(spec);
      td.push(await floorTeardown(files, t));
      st.push(await floorSettle(spec));
    }
    variants[name] = { build: stats(build), teardown: stats(td), settle: stats(st) };
  }
  const entries = Object.entries(variants);
  const bestBuild = entries.reduce((a, b) => (b[1].build.median < a[1].build.median ? b : a));
  const bestTd = entries.reduce((a, b) => (b[1].teardown.median < a[1].teardown.median ? b : a));
  return {
    variants,
    best: {
      build: bestBuild[0], teardown: bestTd[0], buildStats: bestBuild[1].build, teardownStats: bestTd[1].teardown,
      upDown: round(bestBuild[1].build.median + bestTd[1].teardown.median),
    },
  };
}

async function runMn(n: number, o: Options, avail: { ok: boolean; why: string | null }, state: { ran: boolean }): Promise<SizeResult['mininet']> {
  if (!o.mininet) return { runs: null, selfReported: null, error: null, skipped: 'disabled by --no-mininet' };
  if (!avail.ok) return { runs: null, selfReported: null, error: null, skipped: avail.why };
  log(`N=${n}: mn --switch lxbr --controller none --topo single,${n} --test build (x${o.mnReps})`);
  const ms: number[] = [];
  const self: number[] = [];
  try {
    for (let r = 0; r < o.mnReps; r++) {
      await waitQuiet();
      state.ran = true;
      const m = await runMininet(n);
      ms.push(m.ms);
      if (m.selfReportedMs !== null) self.push(m.selfReportedMs);
    }
    return { runs: stats(ms), selfReported: self.length ? stats(self) : null, error: null, skipped: null };
  } catch (e) {
    const msg = (e as Error).message;
    log(`N=${n}: Mininet failed, its column is left out for this size: ${msg}`);
    await mininetCleanup();
    return { runs: ms.length ? stats(ms) : null, selfReported: null, error: msg, skipped: ms.length ? null : `failed: ${msg}` };
  }
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    log('needs root (it builds namespaces, links and nft tables); run it as root');
    return 1;
  }
  if (o.setup) {
    log('bench/setup.sh (installs Mininet and bridge-utils if missing)');
    spawnSync('bash', [path.join(ROOT, 'bench', 'setup.sh')], { stdio: ['ignore', 'inherit', 'inherit'] });
  }
  const runId = randomBytes(4).toString('hex');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `netlab-bench-${runId}-`));
  const startedAt = new Date();
  const mach = machine();
  const avail = o.mininet ? mininetAvailable() : { ok: false, why: 'disabled by --no-mininet', version: null };
  if (!avail.ok) log(`Mininet column skipped: ${avail.why}`);
  const mininetBefore = mininetLinks();
  const labs = o.sizes.map((n) => `bench-${runId}-n${n}`);
  const floors = o.sizes.map((n) => floorSpec(runId, n, path.join(tmp, `floor-${n}`)));
  const mnState = { ran: false };
  const before = snapshot();
  const sizes: SizeResult[] = [];
  let error: string | null = null;
  let startup: RunResult['nodeStartup'] = { nodeEmptyMs: stats([]), cliVersionMs: stats([]) };
  let fsc: RunResult['fsCost'] = null;
  // Everything of this run goes, whatever happens: called from `finally` and on SIGINT/SIGTERM.
  let cleaned: Promise<void> | null = null;
  const cleanupAll = () => cleaned ??= (async () => {
    for (const lab of labs) {
      try {
        let ns: string[] = [];
        try { ns = fs.readdirSync('/run/netns').filter((x) => x.startsWith(`${NETNS_PREFIX}${lab}.`)); } catch { /* none */ }
        if (readState(lab) || ns.length > 0) { log(`cleanup: down ${lab}`); await down(lab); }
      } catch (e) { log(`cleanup of ${lab} failed: ${(e as Error).message}`); }
    }
    for (const f of floors) {
      try {
        if (floorLinks(f).length || floorNetns(f).length) log(`cleanup: floor objects of N=${f.n}`);
        await floorCleanup(f);
      } catch (e) { log(`cleanup of the floor failed: ${(e as Error).message}`); }
    }
    if (mnState.ran && mininetBefore.length === 0 && mininetLinks().length > 0) {
      log('cleanup: Mininet bridge s1 and its ports');
      await mininetCleanup();
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  })();
  const onSignal = (sig: NodeJS.Signals) => {
    log(`${sig}: removing everything this run made, then exiting`);
    void cleanupAll().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  log(`run ${runId}: sizes ${o.sizes.join(', ')}; ${o.reps} reps (Mininet ${o.mnReps}); load average ${loadavg().join(' ')}`);

  try {
    startup = await nodeStartup();
    await waitQuiet();
    fsc = fsCost(STATE_ROOT, runId, tmp);
    for (const [i, n] of o.sizes.entries()) {
      const lab = labs[i];
      const netlab = {} as Record<Mode, NetlabResult>;
      for (const mode of MODES) netlab[mode] = await runNetlab(n, lab, mode, o, tmp);
      let cli: SizeResult['cli'] = null;
      let cliError: string | null = null;
      try {
        cli = await runCli(n, lab, tmp);
      } catch (e) {
        cliError = (e as Error).message.split('\n').slice(0, 3).join(' ');
        log(`N=${n}: the CLI run failed, its cells are left empty: ${cliError}`);
        if (readState(lab) || fs.existsSync(`/run/netns/${NETNS_PREFIX}${lab}.n1`)) await down(lab);
      }
      const floor = await runFloor(n, floors[i], o);
      const mininet = await runMn(n, o, avail, mnState);
      const s: SizeResult = { n, lab, netlab, cli, cliError, floor, mininet };
      sizes.push(s);
      log(`N=${n}: netlab up ${fmtStats(netlab.containers.up)}, down ${fmtStats(netlab.containers.down)} (bare namespaces: ${fmtStats(netlab.bare.up)}, ${fmtStats(netlab.bare.down)}); floor ${fmtMs(floor.best.buildStats.median)} / ${fmtMs(floor.best.teardownStats.median)}; Mininet ${mininet.runs ? fmtStats(mininet.runs) : mininet.skipped}`);
    }
  } catch (e) {
    error = (e as Error).stack ?? String(e);
    log(`FAILED: ${(e as Error).message}`);
  } finally {
    await cleanupAll();
  }

  // Nothing of ours may be left.
  await waitQuiet(0.2, 3000);
  const labIds = labs.map((l) => `nl${labId(l)}`);
  const ours = (kind: string, x: string): boolean => {
    switch (kind) {
      case 'netns': case 'mounts': return x.includes(`bench-${runId}`) || x.includes(`bfl${runId}`);
      case 'links': return labIds.some((p) => x.startsWith(p)) || x.startsWith(`bf${runId.slice(0, 6)}`) || (mnState.ran && (x === 's1' || /^s1-eth\d+$/.test(x) || /^h\d+-eth\d+$/.test(x)));
      case 'nftTables': return labs.some((l) => x.endsWith(` ${nftTable(l)}`));
      case 'stateDirs': return labs.includes(x);
      case 'processes': return x.includes(`bench-${runId}`) || (mnState.ran && /mininet:|mnexec/.test(x));
      case 'cgroups': return x.includes(`bench-${runId}`);
      default: return true;
    }
  };
  const leaks = compare(before, snapshot(), ours);
  const leaked = Object.entries(leaks.leaked).filter(([, v]) => v.length > 0);
  if (leaked.length > 0) {
    const msg = `leaked: ${leaked.map(([k, v]) => `${k}: ${v.join(', ')}`).join('; ')}`;
    log(msg);
    error = error ? `${error}\n${msg}` : msg;
  } else {
    log('leak check: nothing of this run is left (netns, links, nft tables, state, mounts, processes, cgroups, child processes)');
  }
  const foreign = Object.entries(leaks.foreign).filter(([, v]) => v.length > 0);
  if (foreign.length > 0) log(`appeared during the run but not ours (another user's): ${foreign.map(([k, v]) => `${k}: ${v.length}`).join(', ')}`);

  const finishedAt = new Date();
  const date = startedAt.toISOString().slice(0, 10);
  const result: RunResult = {
    date, startedAt: startedAt.toISOString(), finishedAt: finishedAt.toISOString(), runId,
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
    machine: mach,
    code: codeIdentity(),
    options: { sizes: o.sizes, reps: o.reps, mnReps: o.mnReps, profileSize: o.profileSize, mininet: o.mininet },
    nodeStartup: startup,
    fsCost: fsc,
    mininet: { available: avail.ok, why: avail.why, version: avail.version },
    sizes, leaks, error,
  };
  const out = o.out ?? path.join(ROOT, 'bench', 'results', `${date}.json`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  log(`wrote ${path.relative(process.cwd(), out) || out}`);
  if (!error) {
    fs.mkdirSync(path.dirname(o.doc), { recursive: true });
    fs.writeFileSync(o.doc, renderMarkdown(result, path.relative(ROOT, out)));
    log(`wrote ${path.relative(process.cwd(), o.doc) || o.doc}`);
  } else {
    log(`${path.relative(process.cwd(), o.doc)} not regenerated: the run failed`);
  }
  process.stdout.write(renderTerminal(result));
  return error ? 1 : 0;
}

main().then((code) => { process.exitCode = code; }, (e) => {
  process.stderr.write(`bench: ${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
