// netlab's benchmark (not part of `npm test`), every scenario in one run, side by side with its
// peers, with the issue's targets printed PASS/MISS:
//  - star N (10, 100, 300, 1000): netlab in-process up/down (controller/lab.ts) with containers
//    as `netlab up` does and with bare namespaces, the CLI end to end once, the iproute2
//    `ip -batch` floor, Mininet `mn --switch lxbr --controller none --topo single,N --test build`;
//  - chain of 50 routers over /30 veth links, an end-to-end ping after each up;
//  - overlay, 4 simulated hosts x 25 containers (bench/overlay.ts's lab), cross-host pings;
//  - all-pairs ping matrix, N = 50 and 100 (bench/matrix.ts's lab), with Mininet's
//    `--test pingall` at the same N;
//  - the web view's render time for 300 nodes (bench/web-render.ts, when it is there).
// For every netlab lab: up/down wall and CPU time, the time of each plan op, check time, the
// measuring process's peak RSS, and the memory the lab adds (its processes' RSS/PSS/USS from
// /proc, the kernel's side as the MemAvailable delta). Writes bench/results/<date>.json and
// regenerates docs/performance.md (tables, targets, and "where the time goes" from a profile of
// `up` at N=100). Needs root.
//
//   npm run bench -- [--only star,chain,overlay,matrix,web] [--sizes 10,100,300,1000]
//                    [--runs 5] [--big-runs 3] [--cli-runs 3] [--mn-runs 3] [--mn-big-runs 1]
//                    [--matrix-sizes 50,100] [--chain 50] [--web-runs 5] [--profile-size 100]
//                    [--quiet-cap 3000] [--no-mininet] [--no-setup] [--lab-prefix bench] [--out FILE] [--doc FILE]
//   npm run bench -- --render bench/results/<date>.json [--doc FILE]   (render again, no measuring)
//
// A partial run (--only, --sizes, --matrix-sizes or --chain changed) writes
// bench/results/<date>-partial-<id>.json and leaves docs/performance.md alone unless --doc is
// given. Everything it creates carries this run's id (labs `bench-<id>-...`, floor namespaces
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
import { chain, matrix as matrixScenario, overlay, star, type Scenario, type ScenarioKind } from './scenarios.js';
import { FLOOR_BUILDS, floorBuild, floorCleanup, floorLinks, floorNetns, floorSettle, floorSpec, floorTeardown, floorVerify, writeFloorFiles, type FloorSpec } from './floor.js';
import { mininetAvailable, mininetCleanup, mininetLinks, runMininet } from './mininet.js';
import { benchMininet, freeOctet } from './matrix.js';
import { compare, snapshot, type LeakReport } from './leaks.js';
import { summarizeProfile, type ProfileSummary } from './profile.js';
import type { CheckRun, MountProbe, WorkerResult } from './netlab-worker.js';
import { idleProcessMemory, kernelObjects, MEMINFO_FIELDS, type ProcMem } from './memory.js';
import { carrySections, fmtMs, fmtStats, loadavg, machine, round, stats, timeCmd, waitQuiet, type Machine, type Stats } from './util.js';
import { renderMarkdown, renderTerminal } from './report.js';
import { MODES, PARTS, type FloorVariantResult, type Mode, type MemorySummary, type NetlabResult, type CliResult, type ScenarioResult, type MininetStar, type SizeResult, type MatrixResult, type WebResult, type RunResult, type Part, type Options } from './results.js';

const HERE = path.dirname(fileURLToPath(import.meta.url)); // dist/bench
const ROOT = path.resolve(HERE, '..', '..');
const WORKER = path.join(HERE, 'netlab-worker.js');
const PROBE = pathToFileURL(path.join(HERE, 'rss-probe.js')).href;
const CLI = path.join(ROOT, 'bin', 'netlab.js');

const USAGE = 'usage: npm run bench -- --render RESULTS.json [--doc FILE]   (no measuring), or: npm run bench -- [--only star,chain,overlay,matrix,web] [--sizes 10,100,300,1000] [--runs 5] [--big-runs 3] [--cli-runs 3] [--big-from 1000] [--mn-runs 3] [--mn-big-runs 1] [--matrix-sizes 50,100] [--chain 50] [--web-runs 5] [--profile-size 100] [--quiet-cap 3000] [--no-mininet] [--no-setup] [--lab-prefix bench] [--out FILE] [--doc FILE]';

function parseArgs(argv: string[]): Options & { partial: boolean } {
  const o: Options = {
    only: new Set(PARTS), sizes: [10, 100, 300, 1000], runs: 5, bigRuns: 3, bigFrom: 1000, mnRuns: 3, mnBigRuns: 1, cliRuns: 3,
    chainN: 50, matrixSizes: [50, 100], webRuns: 5, profileSize: 100, quietCap: 3000, mininet: true, setup: true, labPrefix: 'bench',
    out: null, doc: path.join(ROOT, 'docs', 'performance.md'), docGiven: false,
  };
  let partial = false;
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
    const list = (min: number) => {
      const xs = val().split(',').filter(Boolean).map((s) => int(s, min));
      if (xs.length === 0) throw new Error(`${a}: no value given`);
      return xs;
    };
    switch (a) {
      case '--only': {
        const parts = val().split(',').filter(Boolean);
        for (const p of parts) if (!(PARTS as readonly string[]).includes(p)) throw new Error(`--only: unknown part "${p}" (parts: ${PARTS.join(', ')})`);
        o.only = new Set(parts as Part[]);
        partial = true;
        break;
      }
      case '--sizes': o.sizes = list(1); partial = true; break;
      case '--runs': case '--reps': o.runs = int(val(), 1); break;
      case '--big-runs': o.bigRuns = int(val(), 1); break;
      case '--cli-runs': o.cliRuns = int(val(), 1); break;
      case '--big-from': o.bigFrom = int(val(), 1); break;
      case '--mn-runs': case '--mn-reps': o.mnRuns = int(val(), 1); break;
      case '--mn-big-runs': o.mnBigRuns = int(val(), 1); break;
      case '--chain': o.chainN = int(val(), 2); partial = true; break;
      case '--matrix-sizes': o.matrixSizes = list(2); partial = true; break;
      case '--web-runs': o.webRuns = int(val(), 1); break;
      case '--profile-size': o.profileSize = int(val(), 1); break;
      case '--quiet-cap': o.quietCap = int(val(), 200); break;
      case '--no-mininet': o.mininet = false; break;
      case '--no-setup': o.setup = false; break;
      case '--lab-prefix':
        o.labPrefix = val();
        if (!/^[a-z][a-z0-9]{0,9}$/.test(o.labPrefix)) throw new Error(`--lab-prefix ${o.labPrefix}: expected 1-10 of [a-z0-9], starting with a letter (lab names are PREFIX-RUNID-...)`);
        break;
      case '--out': o.out = path.resolve(val()); break;
      case '--doc': o.doc = path.resolve(val()); o.docGiven = true; break;
      case '-h': case '--help':
        console.log(USAGE);
        process.exit(0);
        break;
      default: throw new Error(`unknown argument ${a} (see --help)`);
    }
  }
  if (o.runs < 3) log(`--runs ${o.runs}: fewer than 3 runs, the medians are weak`);
  if (!o.sizes.includes(o.profileSize!)) {
    const p = o.sizes.includes(100) ? 100 : [...o.sizes].sort((x, y) => x - y)[Math.floor(o.sizes.length / 2)];
    log(`--profile-size ${o.profileSize} is not among --sizes; profiling N=${p}`);
    o.profileSize = p;
  }
  return { ...o, partial };
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

function readSysctl(key: string): string | null {
  try { return fs.readFileSync(`/proc/sys/${key.replace(/\./g, '/')}`, 'utf8').trim().replace(/\s+/g, ' '); } catch { return null; }
}

function limits(): RunResult['limits'] {
  const out: RunResult['limits'] = {};
  for (const k of [
    'net.ipv4.neigh.default.gc_thresh1', 'net.ipv4.neigh.default.gc_thresh2', 'net.ipv4.neigh.default.gc_thresh3',
    'kernel.pid_max', 'kernel.threads-max', 'fs.inotify.max_user_instances', 'fs.inotify.max_user_watches',
    'user.max_net_namespaces', 'user.max_mnt_namespaces', 'user.max_pid_namespaces', 'fs.mount-max', 'net.core.somaxconn', 'net.core.devconf_inherit_init_net',
  ]) out[k] = readSysctl(k);
  const m = /^Max open files\s+(\d+)\s+(\S+)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
  out['RLIMIT_NOFILE (soft, of the bench)'] = m ? Number(m[1]) : null;
  let cgv = 'v1';
  try { if (fs.existsSync('/sys/fs/cgroup/cgroup.controllers')) cgv = 'v2'; } catch { /* v1 */ }
  out.cgroup = cgv;
  out['host mounts at start'] = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).length;
  return out;
}

// ---------------------------------------------------------------- parts

async function nodeStartup(cap: number): Promise<RunResult['nodeStartup']> {
  const empty: number[] = [];
  const version: number[] = [];
  const command: number[] = [];
  // What `up` and `down` load before any work: the command module and everything it imports.
  const load = `await import(${JSON.stringify(pathToFileURL(path.join(ROOT, 'dist', 'cli', 'commands', 'lifecycle.js')).href)})`;
  for (let i = 0; i < 5; i++) {
    await waitQuiet(0.1, cap);
    empty.push((await timeCmd(process.execPath, ['-e', '0'])).ms);
    version.push((await timeCmd(process.execPath, [CLI, '--version'])).ms);
    command.push((await timeCmd(process.execPath, ['--input-type=module', '-e', load])).ms);
  }
  return { nodeEmptyMs: stats(empty), cliVersionMs: stats(version), commandLoadMs: stats(command) };
}

function median(xs: number[]): number {
  return stats(xs).median;
}

function summarizeMemory(w: WorkerResult): MemorySummary {
  const n = Math.max(1, w.nodes);
  const col = (f: (m: WorkerResult['reps'][number]['memory']) => number) => stats(w.reps.map((x) => f(x.memory)));
  const kernelFields: Record<string, number> = {};
  for (const k of MEMINFO_FIELDS) kernelFields[k] = median(w.reps.map((x) => x.memory.kernel[k]));
  return {
    rssPerNode: col((m) => m.lab.total.rss / n),
    pssPerNode: col((m) => m.lab.total.pss / n),
    ussPerNode: col((m) => m.lab.total.uss / n),
    supervisorRssPerNode: col((m) => (m.lab.supervisor?.rss ?? 0) / n),
    supervisorPssPerNode: col((m) => (m.lab.supervisor?.pss ?? 0) / n),
    supervisorRssKiB: col((m) => m.lab.supervisor?.rss ?? 0),
    containersRssPerNode: col((m) => m.lab.containers.rss / n),
    processes: Math.max(...w.reps.map((x) => x.memory.lab.containers.processes + (x.memory.lab.supervisor ? 1 : 0))),
    kernelPerNode: col((m) => m.kernel.MemAvailable / n),
    kernelFirstRunPerNode: round((w.reps[0]?.memory.kernel.MemAvailable ?? NaN) / n),
    kernelObjectsPerNode: col((m) => kernelObjects(m.kernel) / n),
    kernelFields,
  };
}

function checkStats(runs: (CheckRun | null)[]): Stats | null {
  const xs = runs.filter((x): x is CheckRun => x !== null);
  return xs.length ? stats(xs.map((x) => x.ms)) : null;
}

interface WorkerOpts { mode: Mode; runs: number; profile?: string; downBreakdown?: boolean; mountProbe?: string | null }

async function runWorker(sc: Scenario, o: Options, tmp: string, w: WorkerOpts): Promise<NetlabResult> {
  const topo = path.join(tmp, `${sc.lab}.yml`);
  fs.writeFileSync(topo, sc.text);
  const out = path.join(tmp, `worker-${sc.lab}-${w.mode}.json`);
  const args = [WORKER, '--topology', topo, '--reps', String(w.runs), '--out', out, '--quiet-cap', String(Math.max(o.quietCap, sc.n * 5))];
  if (w.mode === 'bare') args.push('--bare');
  if (w.mode === 'containers') {
    for (const [kind, spec] of sc.checks) args.push('--check', `${kind}:${spec}`);
    if (sc.matrix) args.push('--matrix');
  }
  if (w.profile) args.push('--cpuprofile', w.profile);
  if (w.downBreakdown) args.push('--down-breakdown');
  if (w.mountProbe) args.push('--mount-probe', w.mountProbe);
  log(`${sc.kind} ${sc.n}: netlab up/down (${w.mode === 'bare' ? 'bare namespaces' : 'with containers, as `netlab up`'}) x${w.runs} in one process (${sc.lab})${w.profile ? ', then a profiled up() and down()\'s breakdown' : ''}`);
  fs.rmSync(out, { force: true });
  const r = spawnSync(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  if (!fs.existsSync(out)) throw new Error(`netlab worker for ${sc.lab} wrote no result (exit ${r.status ?? r.signal})`);
  const res = JSON.parse(fs.readFileSync(out, 'utf8')) as WorkerResult;
  if (res.error) throw new Error(`netlab worker for ${sc.lab} (${w.mode}) failed after ${res.reps.length} run(s): ${res.error.split('\n')[0]}`);
  const col = (f: (x: WorkerResult['reps'][number]) => number) => stats(res.reps.map(f));
  const ops = new Set(res.reps.flatMap((x) => Object.keys(x.opMs))) as Set<PlanOp>;
  const opMs: Partial<Record<PlanOp, Stats>> = {};
  for (const op of ops) opMs[op] = stats(res.reps.map((x) => x.opMs[op] ?? 0));
  const opMsWhere: Record<string, Stats> = {};
  for (const k of new Set(res.reps.flatMap((x) => Object.keys(x.opMsWhere)))) opMsWhere[k] = stats(res.reps.map((x) => x.opMsWhere[k] ?? 0));
  const checksRun = res.reps.map((x) => x.check).filter((x): x is CheckRun => x !== null);
  return {
    mode: w.mode, nodes: res.nodes, steps: res.steps, counts: res.counts, loadTopologyMs: res.loadTopologyMs, buildPlanMs: res.buildPlanMs,
    up: col((x) => x.upMs), down: col((x) => x.downMs), upDown: col((x) => x.upMs + x.downMs), settle: col((x) => x.settleMs),
    upUser: col((x) => x.upUserMs), upSys: col((x) => x.upSysMs), downUser: col((x) => x.downUserMs), downSys: col((x) => x.downSysMs),
    opMs, opMsWhere, countsWhere: res.countsWhere, fdsDuringUp: res.reps[0]?.fdsDuringUp ?? null,
    pre: col((x) => x.preMs), post: col((x) => x.postMs),
    rssBaselineKiB: res.rssBaselineKiB, rssPeakKiB: res.rssPeakKiB,
    busyBeforeMax: Math.max(...res.reps.map((x) => x.busyBefore)),
    memory: summarizeMemory(res),
    check: checkStats(res.reps.map((x) => x.check)), checkWarm: checkStats(res.reps.map((x) => x.checkWarm)),
    checks: checksRun[0]?.checks ?? 0, checkFailed: checksRun.reduce((a, x) => a + x.failed, 0),
    arpTableFulls: res.reps.reduce((a, x) => a + (x.check?.arpTableFulls ?? 0) + (x.checkWarm?.arpTableFulls ?? 0), 0),
    fdsMax: Math.max(...res.reps.map((x) => x.memory.fds)), mountsUp: Math.max(...res.reps.map((x) => x.memory.mounts)),
    nofile: res.nofile, mountProbe: res.mountProbe,
    downBreakdown: res.downBreakdown,
    profile: w.profile && res.cpuprofile ? summarizeProfile(res.cpuprofile) : null,
    raw: res.reps,
  };
}

async function labGone(lab: string): Promise<void> {
  let ns: string[] = [];
  try { ns = fs.readdirSync('/run/netns').filter((x) => x.startsWith(`${NETNS_PREFIX}${lab}.`) || x.startsWith(`${NETNS_PREFIX}${lab}+`)); } catch { /* none */ }
  if (readState(lab) || ns.length > 0) throw new Error(`lab ${lab} is still there after down`);
}

async function runCli(sc: Scenario, tmp: string, cap: number, runs: number): Promise<CliResult> {
  const file = path.join(tmp, `${sc.lab}.yml`);
  fs.writeFileSync(file, sc.text);
  log(`${sc.kind} ${sc.n}: CLI end to end: node bin/netlab.js up ${path.basename(file)}; node bin/netlab.js down ${sc.lab}`);
  const probeUp = path.join(tmp, `probe-up-${sc.lab}.json`);
  const probeDown = path.join(tmp, `probe-down-${sc.lab}.json`);
  const ups: number[] = [];
  const downs: number[] = [];
  let lastLine = '';
  for (let i = 0; i < runs; i++) {
    await waitQuiet(0.1, Math.max(cap, sc.n * 5));
    const u = await timeCmd(process.execPath, ['--import', PROBE, CLI, 'up', file], { env: { ...process.env, NETLAB_BENCH_PROBE_OUT: probeUp }, cwd: ROOT, timeoutMs: 300_000 });
    if (u.code !== 0) throw new Error(`netlab up (CLI) exited ${u.code ?? u.signal}: ${u.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    const d = await timeCmd(process.execPath, ['--import', PROBE, CLI, 'down', sc.lab], { env: { ...process.env, NETLAB_BENCH_PROBE_OUT: probeDown }, cwd: ROOT, timeoutMs: 300_000 });
    if (d.code !== 0) throw new Error(`netlab down (CLI) exited ${d.code ?? d.signal}: ${d.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    await labGone(sc.lab);
    ups.push(round(u.ms, 2));
    downs.push(round(d.ms, 2));
    lastLine = u.stdout.trim().split('\n').filter(Boolean).pop() ?? '';
  }
  const rss = (f: string) => { try { return (JSON.parse(fs.readFileSync(f, 'utf8')) as { maxRSSKiB: number }).maxRSSKiB; } catch { return null; } };
  const up = stats(ups), dn = stats(downs);
  return {
    upMs: up.median, downMs: dn.median, upRssKiB: rss(probeUp), downRssKiB: rss(probeDown), upReported: lastLine.slice(0, 200),
    runs, up, down: dn, upDown: stats(ups.map((x, i) => x + downs[i])),
  };
}

async function cliOf(sc: Scenario, tmp: string, cap: number, runs: number): Promise<{ cli: CliResult | null; cliError: string | null }> {
  try {
    return { cli: await runCli(sc, tmp, cap, runs), cliError: null };
  } catch (e) {
    const cliError = (e as Error).message.split('\n').slice(0, 3).join(' ');
    log(`${sc.kind} ${sc.n}: the CLI run failed, its cells are left empty: ${cliError}`);
    if (readState(sc.lab) || fs.readdirSync('/run/netns').some((x) => x.startsWith(`${NETNS_PREFIX}${sc.lab}.`) || x.startsWith(`${NETNS_PREFIX}${sc.lab}+`))) await down(sc.lab);
    return { cli: null, cliError };
  }
}

async function runFloor(n: number, spec: FloorSpec, runs: number, big: boolean, cap: number): Promise<NonNullable<SizeResult['floor']>> {
  const files = writeFloorFiles(spec);
  const variants: Record<string, FloorVariantResult> = {};
  // At the large sizes, only the fastest build (two parallel lanes) and the fastest teardown.
  const plan: [string, 'seq' | 'exec' | 'par2', 'group' | 'netns'][] = big
    ? [['par2 + del group', 'par2', 'group'], ['exec + del bridge/netns', 'exec', 'netns']]
    : [...FLOOR_BUILDS.map((b) => [`${b} + del group`, b, 'group'] as [string, typeof b, 'group']), ['exec + del bridge/netns', 'exec', 'netns']];
  log(`star ${n}: ip -batch floor: ${plan.map((p) => p[0]).join(', ')} (x${runs} each)`);
  for (const [name, b, t] of plan) {
    const build: number[] = [];
    const td: number[] = [];
    const st: number[] = [];
    for (let r = 0; r < runs; r++) {
      await waitQuiet(0.1, Math.max(cap, n * 5));
      build.push(await floorBuild(files, b));
      floorVerify(spec);
      td.push(await floorTeardown(files, t));
      st.push(await floorSettle(spec, Math.max(15_000, n * 30)));
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

async function runMnBuild(n: number, runs: number, o: Options, avail: { ok: boolean; why: string | null }, state: { ran: boolean }): Promise<MininetStar> {
  if (!o.mininet) return { runs: null, selfReported: null, error: null, skipped: 'disabled by --no-mininet' };
  if (!avail.ok) return { runs: null, selfReported: null, error: null, skipped: avail.why };
  log(`star ${n}: mn --switch lxbr --controller none --topo single,${n} --test build (x${runs})`);
  const ms: number[] = [];
  const self: number[] = [];
  try {
    for (let r = 0; r < runs; r++) {
      await waitQuiet(0.1, Math.max(o.quietCap, n * 5));
      state.ran = true;
      const m = await runMininet(n);
      ms.push(m.ms);
      if (m.selfReportedMs !== null) self.push(m.selfReportedMs);
      log(`  mn single,${n} build run ${r + 1}/${runs}: ${fmtMs(m.ms)}`);
    }
    return { runs: stats(ms), selfReported: self.length ? stats(self) : null, error: null, skipped: null };
  } catch (e) {
    const msg = (e as Error).message;
    log(`star ${n}: Mininet failed, its column is left out for this size: ${msg}`);
    await mininetCleanup();
    return { runs: ms.length ? stats(ms) : null, selfReported: null, error: msg, skipped: ms.length ? null : `failed: ${msg}` };
  }
}

async function runMnPingall(n: number, o: Options, avail: { ok: boolean; why: string | null }, state: { ran: boolean }, star: SizeResult | undefined): Promise<MatrixResult['mininet']> {
  const res: MatrixResult['mininet'] = { pingall: null, build: null, buildFrom: null, pingallOnlyMs: null, selfReported: null, received: null, sent: null, error: null, skipped: null };
  if (!o.mininet) { res.skipped = 'disabled by --no-mininet'; return res; }
  if (!avail.ok) { res.skipped = avail.why; return res; }
  const runs = n >= o.bigFrom ? o.mnBigRuns : o.mnRuns;
  log(`matrix ${n}: mn --switch lxbr --controller none --topo single,${n} --test pingall (x${runs})`);
  const ms: number[] = [];
  const self: number[] = [];
  for (let r = 0; r < runs; r++) {
    await waitQuiet(0.1, Math.max(o.quietCap, n * 5));
    state.ran = true;
    const m = await benchMininet(n, { buildRun: false });
    if (!m.ran || m.ms === null || m.why) { res.error = m.why ?? 'did not run'; break; }
    ms.push(m.ms);
    if (m.selfReportedMs !== null) self.push(m.selfReportedMs);
    res.received = m.received;
    res.sent = m.sent;
    log(`  mn single,${n} pingall run ${r + 1}/${runs}: ${fmtMs(m.ms)}, ${m.received}/${m.sent} received`);
  }
  if (ms.length) {
    res.pingall = stats(ms);
    res.selfReported = self.length ? stats(self) : null;
  } else {
    res.skipped = `failed: ${res.error}`;
    return res;
  }
  if (star?.mininet.runs) {
    res.build = star.mininet.runs;
    res.buildFrom = 'star';
  } else {
    const b = await runMnBuild(n, runs, o, avail, state);
    res.build = b.runs;
    res.buildFrom = b.runs ? 'own' : null;
  }
  if (res.build) res.pingallOnlyMs = round(res.pingall.median - res.build.median);
  return res;
}

async function runWeb(o: Options, tmp: string): Promise<WebResult> {
  const none = (why: string): WebResult => ({ ran: false, why, runs: null, containers: null, coldDrawnMs: null, coldSettledMs: null, warmDrawnMs: null, warmSettledMs: null, limitMs: null, coldDrawn: null });
  const src = path.join(ROOT, 'bench', 'web-render.ts');
  const js = path.join(HERE, 'web-render.js');
  if (!fs.existsSync(src)) return none('not measured yet: bench/web-render.ts does not exist');
  if (!fs.existsSync(js) || fs.statSync(js).mtimeMs < fs.statSync(src).mtimeMs) return none('not measured yet: bench/web-render.ts is not built (dist/bench/web-render.js missing or older than its source)');
  const resultFile = path.join(ROOT, 'bench', 'results', 'web-render.json');
  log(`web: node dist/bench/web-render.js (NETLAB_BENCH_RUNS=${o.webRuns}; 300-node lab in headless Chromium)`);
  await waitQuiet(0.1, o.quietCap);
  const t0 = Date.now();
  const r = await timeCmd(process.execPath, [js], { cwd: ROOT, env: { ...process.env, NETLAB_BENCH_RUNS: String(o.webRuns) }, timeoutMs: 600_000 });
  void tmp;
  let j: Record<string, unknown> | null = null;
  try {
    if (fs.statSync(resultFile).mtimeMs >= t0) j = JSON.parse(fs.readFileSync(resultFile, 'utf8')) as Record<string, unknown>;
  } catch { /* below */ }
  if (!j) return none(`not measured: web-render exited ${r.code ?? r.signal} without writing its result: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ').slice(0, 300)}`);
  const num = (k: string) => (typeof j![k] === 'number' ? (j![k] as number) : null);
  const samples = ((j.samples as { cold?: { drawnMs: number }[] } | undefined)?.cold ?? []).map((s) => s.drawnMs);
  const lab = j.lab as { containers?: number } | undefined;
  return {
    ran: true, why: r.code === 0 ? null : `web-render exited ${r.code} (its own limit: ${num('limitMs')} ms)`,
    runs: num('runs'), containers: lab?.containers ?? null,
    coldDrawnMs: num('coldDrawnMs'), coldSettledMs: num('coldSettledMs'), warmDrawnMs: num('warmDrawnMs'), warmSettledMs: num('warmSettledMs'),
    limitMs: num('limitMs'), coldDrawn: samples.length ? stats(samples) : null,
  };
}

/** Compiles a bench probe (C) into the scratch directory; null (with the reason logged) if cc fails. */
function compileProbe(name: string, tmp: string, extra: string[]): { bin: string | null; why: string | null } {
  const src = path.join(ROOT, 'bench', `${name}.c`);
  const bin = path.join(tmp, name);
  const r = spawnSync('cc', ['-O2', ...extra, '-o', bin, src], { encoding: 'utf8' });
  if (r.status !== 0) {
    const why = `cc ${name}.c failed: ${(r.stderr || r.error?.message || '').trim().split('\n')[0]}`;
    log(why);
    return { bin: null, why };
  }
  return { bin, why: null };
}

// ---------------------------------------------------------------- main

/** The new text of `doc` with the sections other scripts generate in it (bench/images.ts's
 *  "Images") carried over from the file as it is. */
function withKeptSections(doc: string, text: string): string {
  return fs.existsSync(doc) ? carrySections(fs.readFileSync(doc, 'utf8'), text, '## Running it') : text;
}

/** `--render FILE`: renders a results file again (docs/performance.md, or --doc) without measuring. */
function renderOnly(argv: string[]): number | null {
  const i = argv.indexOf('--render');
  if (i < 0) return null;
  const file = path.resolve(argv[i + 1] ?? '');
  const d = argv.indexOf('--doc');
  const doc = d >= 0 && argv[d + 1] ? path.resolve(argv[d + 1]) : path.join(ROOT, 'docs', 'performance.md');
  const r = JSON.parse(fs.readFileSync(file, 'utf8')) as RunResult;
  fs.writeFileSync(doc, withKeptSections(doc, renderMarkdown(r, path.relative(ROOT, file))));
  log(`rendered ${path.relative(process.cwd(), file)} into ${path.relative(process.cwd(), doc) || doc}`);
  process.stdout.write(renderTerminal(r));
  return 0;
}

async function main(): Promise<number> {
  const rendered = renderOnly(process.argv.slice(2));
  if (rendered !== null) return rendered;
  let o: ReturnType<typeof parseArgs>;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (e) {
    log(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    log('needs root (it builds namespaces, links and nft tables); run it as root');
    return 1;
  }
  if (o.setup && o.mininet) {
    log('bench/setup.sh (installs Mininet and bridge-utils if missing)');
    spawnSync('bash', [path.join(ROOT, 'bench', 'setup.sh')], { stdio: ['ignore', 'inherit', 'inherit'] });
  }
  const runId = randomBytes(4).toString('hex');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `netlab-${o.labPrefix}-${runId}-`));
  const startedAt = new Date();
  const mach = machine();
  const lim = limits();
  const avail = o.mininet ? mininetAvailable() : { ok: false, why: 'disabled by --no-mininet', version: null };
  if (!avail.ok) log(`Mininet column skipped: ${avail.why}`);
  const mininetBefore = mininetLinks();
  const has = (p: Part) => o.only.has(p);
  // Labs of this run: every name carries the run id.
  const starScs = has('star') ? o.sizes.map((n) => star(`${o.labPrefix}-${runId}-n${n}`, n)) : [];
  const chainSc = has('chain') ? chain(`${o.labPrefix}-${runId}-chain${o.chainN}`, o.chainN) : null;
  const overlaySc = has('overlay') ? overlay(`${o.labPrefix}-${runId}-ovl`) : null;
  const matrixScs = has('matrix') ? o.matrixSizes.map((n) => matrixScenario(`${o.labPrefix}-${runId}-mx${n}`, n, freeOctet())) : [];
  const all = [...starScs, ...(chainSc ? [chainSc] : []), ...(overlaySc ? [overlaySc] : []), ...matrixScs];
  const labs = all.map((s) => s.lab);
  const floors = starScs.map((s) => floorSpec(runId, s.n, path.join(tmp, `floor-${s.n}`)));
  const mnState = { ran: false };
  const before = snapshot();
  const errors: string[] = [];
  const elapsed: Record<string, number> = {};
  const result: RunResult = {
    date: startedAt.toISOString().slice(0, 10), startedAt: startedAt.toISOString(), finishedAt: '', runId,
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(), partial: o.partial,
    machine: mach, limits: lim, code: codeIdentity(),
    options: {
      only: [...o.only], sizes: o.sizes, runs: o.runs, bigRuns: o.bigRuns, bigFrom: o.bigFrom, mnRuns: o.mnRuns, mnBigRuns: o.mnBigRuns, cliRuns: o.cliRuns,
      chainN: o.chainN, matrixSizes: o.matrixSizes, webRuns: o.webRuns, profileSize: o.profileSize, quietCap: o.quietCap, mininet: o.mininet,
    } as RunResult['options'],
    nodeStartup: { nodeEmptyMs: stats([]), cliVersionMs: stats([]), commandLoadMs: stats([]) },
    idleProcess: { busyboxSleep: null, staticPause: null, pauseWhy: null },
    mininet: { available: avail.ok, why: avail.why, version: avail.version },
    star: [], chain: null, overlay: null, matrix: [], web: null, elapsedMs: elapsed,
    leaks: { leaked: {}, foreign: {} }, error: null,
  };

  // Everything of this run goes, whatever happens: called from `finally` and on SIGINT/SIGTERM.
  let cleaned: Promise<void> | null = null;
  const cleanupAll = () => cleaned ??= (async () => {
    for (const lab of labs) {
      try {
        let ns: string[] = [];
        try { ns = fs.readdirSync('/run/netns').filter((x) => x.startsWith(`${NETNS_PREFIX}${lab}.`) || x.startsWith(`${NETNS_PREFIX}${lab}+`)); } catch { /* none */ }
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
  log(`run ${runId}: ${[...o.only].join(', ')}; star sizes ${o.sizes.join(', ')} (${o.runs} runs, ${o.bigRuns} from N=${o.bigFrom}; Mininet ${o.mnRuns}, ${o.mnBigRuns} from N=${o.bigFrom}); load average ${loadavg().join(' ')}`);

  const timed = async <T>(key: string, f: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try { return await f(); } finally { elapsed[key] = round(performance.now() - t0, 0); }
  };

  try {
    result.nodeStartup = await nodeStartup(o.quietCap);
    const mountProbe = compileProbe('mountcost', tmp, []);
    // netlab's own default idle command (runtime/pause.c, built by npm run build).
    const pauseBin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../netlab-pause');
    const pause = fs.existsSync(pauseBin) ? { bin: pauseBin, why: null } : { bin: null, why: `${pauseBin} is not built` };
    result.idleProcess = {
      busyboxSleep: fs.existsSync('/bin/busybox') ? await idleProcessMemory(['/bin/busybox', 'sleep', '1000']) : null,
      staticPause: pause.bin ? await idleProcessMemory([pause.bin]) : null,
      pauseWhy: pause.why,
    };

    // ---- star N
    for (const [i, sc] of starScs.entries()) {
      const t0 = performance.now();
      const big = sc.n >= o.bigFrom;
      const runs = big ? o.bigRuns : o.runs;
      const s: SizeResult = {
        kind: 'star', n: sc.n, lab: sc.lab, what: sc.what, runs, netlab: {}, cli: null, cliError: null, error: null, elapsedMs: 0,
        floor: null, mininet: { runs: null, selfReported: null, error: null, skipped: 'not reached' },
      };
      result.star.push(s);
      const fail = (what: string, e: unknown) => {
        const msg = `${what}: ${(e as Error).message.split('\n')[0]}`;
        s.error = s.error ? `${s.error}; ${msg}` : msg;
        errors.push(`star ${sc.n}: ${msg}`);
        log(`star ${sc.n}: ${msg}`);
      };
      for (const mode of MODES) {
        try {
          const profiling = sc.n === o.profileSize;
          s.netlab[mode] = await runWorker(sc, o, tmp, {
            mode, runs,
            ...(profiling ? { profile: path.join(tmp, `up-${sc.n}-${mode}.cpuprofile`), downBreakdown: true } : {}),
            mountProbe: mode === 'containers' ? mountProbe.bin : null,
          });
        } catch (e) { fail(`netlab ${mode}`, e); }
      }
      if (s.netlab.containers) Object.assign(s, await cliOf(sc, tmp, o.quietCap, big ? 1 : o.cliRuns));
      try { s.floor = await runFloor(sc.n, floors[i], runs, big, o.quietCap); } catch (e) { fail('ip -batch floor', e); await floorCleanup(floors[i]); }
      s.mininet = await runMnBuild(sc.n, big ? o.mnBigRuns : o.mnRuns, o, avail, mnState);
      s.elapsedMs = round(performance.now() - t0, 0);
      elapsed[`star ${sc.n}`] = s.elapsedMs;
      const c = s.netlab.containers;
      const b = s.netlab.bare;
      log(`star ${sc.n}: netlab up ${fmtStats(c?.up)}, down ${fmtStats(c?.down)} (bare: ${fmtStats(b?.up)}, ${fmtStats(b?.down)}); floor ${fmtMs(s.floor?.best.buildStats.median)} / ${fmtMs(s.floor?.best.teardownStats.median)}; Mininet ${s.mininet.runs ? fmtStats(s.mininet.runs) : s.mininet.skipped}`);
    }

    // ---- chain and overlay: containers, the scenario's checks after each up, the CLI once
    for (const sc of [chainSc, overlaySc]) {
      if (!sc) continue;
      const t0 = performance.now();
      const r: ScenarioResult = { kind: sc.kind, n: sc.n, lab: sc.lab, what: sc.what, runs: o.runs, netlab: {}, cli: null, cliError: null, error: null, elapsedMs: 0 };
      try {
        r.netlab.containers = await runWorker(sc, o, tmp, { mode: 'containers', runs: o.runs });
        Object.assign(r, await cliOf(sc, tmp, o.quietCap, 1));
      } catch (e) {
        r.error = (e as Error).message.split('\n')[0];
        errors.push(`${sc.kind}: ${r.error}`);
        log(`${sc.kind}: ${r.error}`);
      }
      r.elapsedMs = round(performance.now() - t0, 0);
      elapsed[sc.kind] = r.elapsedMs;
      if (sc.kind === 'chain') result.chain = r;
      else result.overlay = r;
      log(`${sc.kind}: up ${fmtStats(r.netlab.containers?.up)}, down ${fmtStats(r.netlab.containers?.down)}, check ${fmtStats(r.netlab.containers?.check)}`);
    }

    // ---- all-pairs matrix, with Mininet's pingall
    for (const sc of matrixScs) {
      const t0 = performance.now();
      const runs = sc.n >= o.bigFrom ? o.bigRuns : Math.max(3, Math.min(o.runs, 3));
      const r: MatrixResult = {
        kind: 'matrix', n: sc.n, lab: sc.lab, what: sc.what, runs, netlab: {}, cli: null, cliError: null, error: null, elapsedMs: 0,
        mininet: { pingall: null, build: null, buildFrom: null, pingallOnlyMs: null, selfReported: null, received: null, sent: null, error: null, skipped: 'not reached' },
      };
      result.matrix.push(r);
      try {
        r.netlab.containers = await runWorker(sc, o, tmp, { mode: 'containers', runs });
      } catch (e) {
        r.error = (e as Error).message.split('\n')[0];
        errors.push(`matrix ${sc.n}: ${r.error}`);
        log(`matrix ${sc.n}: ${r.error}`);
      }
      r.mininet = await runMnPingall(sc.n, o, avail, mnState, result.star.find((x) => x.n === sc.n));
      r.elapsedMs = round(performance.now() - t0, 0);
      elapsed[`matrix ${sc.n}`] = r.elapsedMs;
      log(`matrix ${sc.n}: netlab ${fmtStats(r.netlab.containers?.check)} (warm ${fmtStats(r.netlab.containers?.checkWarm)}); Mininet pingall ${r.mininet.pingall ? fmtStats(r.mininet.pingall) : r.mininet.skipped}${r.mininet.pingallOnlyMs !== null ? ` (pingall part ~${fmtMs(r.mininet.pingallOnlyMs)})` : ''}`);
    }

    // ---- web view
    if (has('web')) {
      result.web = await timed('web', () => runWeb(o, tmp));
      log(`web: ${result.web.ran ? `300 nodes drawn in ${fmtMs(result.web.coldDrawnMs)} cold, ${fmtMs(result.web.warmDrawnMs)} warm` : result.web.why}`);
    }
  } catch (e) {
    errors.push((e as Error).stack ?? String(e));
    log(`FAILED: ${(e as Error).message}`);
  } finally {
    await cleanupAll();
  }

  // Nothing of ours may be left.
  await waitQuiet(0.2, 3000);
  const labIds = labs.map((l) => `nl${labId(l)}`);
  const ours = (kind: string, x: string): boolean => {
    switch (kind) {
      case 'netns': case 'mounts': return x.includes(`${o.labPrefix}-${runId}`) || x.includes(`bfl${runId}`);
      case 'links': return labIds.some((p) => x.startsWith(p)) || x.startsWith(`bf${runId.slice(0, 6)}`) || (mnState.ran && (x === 's1' || /^s1-eth\d+$/.test(x) || /^h\d+-eth\d+$/.test(x)));
      case 'nftTables': return labs.some((l) => x.endsWith(` ${nftTable(l)}`));
      case 'stateDirs': return labs.includes(x);
      case 'processes': return x.includes(`${o.labPrefix}-${runId}`) || (mnState.ran && /mininet:|mnexec/.test(x));
      case 'cgroups': return x.includes(`${o.labPrefix}-${runId}`);
      default: return true;
    }
  };
  const leaks = compare(before, snapshot(), ours);
  result.leaks = leaks;
  const leaked = Object.entries(leaks.leaked).filter(([, v]) => v.length > 0);
  if (leaked.length > 0) {
    const msg = `leaked: ${leaked.map(([k, v]) => `${k}: ${v.join(', ')}`).join('; ')}`;
    log(msg);
    errors.push(msg);
  } else {
    log('leak check: nothing of this run is left (netns, links, nft tables, state, mounts, processes, cgroups, child processes)');
  }
  const foreign = Object.entries(leaks.foreign).filter(([, v]) => v.length > 0);
  if (foreign.length > 0) log(`appeared during the run but not ours (another user's): ${foreign.map(([k, v]) => `${k}: ${v.length}`).join(', ')}`);

  result.finishedAt = new Date().toISOString();
  result.error = errors.length ? errors.join('\n') : null;
  const out = o.out ?? path.join(ROOT, 'bench', 'results', o.partial ? `${result.date}-partial-${runId}.json` : `${result.date}.json`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  log(`wrote ${path.relative(process.cwd(), out) || out}`);
  if (!o.partial || o.docGiven) {
    fs.mkdirSync(path.dirname(o.doc), { recursive: true });
    fs.writeFileSync(o.doc, withKeptSections(o.doc, renderMarkdown(result, path.relative(ROOT, out))));
    log(`wrote ${path.relative(process.cwd(), o.doc) || o.doc}${result.error ? ' (with the errors of this run marked in it)' : ''}`);
  } else {
    log(`partial run: ${path.relative(process.cwd(), o.doc)} left alone (give --doc FILE to render this run)`);
  }
  process.stdout.write(renderTerminal(result));
  return result.error ? 1 : 0;
}

main().then((code) => { process.exitCode = code; }, (e) => {
  process.stderr.write(`bench: ${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
