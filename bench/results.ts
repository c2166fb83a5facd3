// The shapes of a bench run's results (written to bench/results/*.json, read back by the report),
// shared by the runner (run.ts) and the renderer (report.ts) without either importing the other.
import type { PlanOp } from '../controller/plan.js';
import type { ScenarioKind } from './scenarios.js';
import type { MountProbe, WorkerResult } from './netlab-worker.js';
import type { ProfileSummary } from './profile.js';
import type { ProcMem } from './memory.js';
import type { LeakReport } from './leaks.js';
import type { Machine, Stats } from './util.js';

// ---------------------------------------------------------------- result shapes

export interface FloorVariantResult { build: Stats; teardown: Stats; settle: Stats }

/** How `up` is called: `containers` is what `netlab up` does (a container per node, the
 *  default); `bare` is `up(lab, { containers: false })`, bare namespaces like the floor's. */
export type Mode = 'containers' | 'bare';
export const MODES: Mode[] = ['containers', 'bare'];

/** Memory a lab adds, per container (KiB), medians over the runs (min–max in the Stats). */
export interface MemorySummary {
  /** Every process netlab adds (supervisor + containers' processes): sum of RSS / N, of PSS / N,
   *  of USS / N. RSS counts pages shared between processes (the busybox binary) in each one. */
  rssPerNode: Stats;
  pssPerNode: Stats;
  ussPerNode: Stats;
  /** The supervisor alone (`netlab-shim supervise`), per container, and in total. */
  supervisorRssPerNode: Stats;
  supervisorPssPerNode: Stats;
  supervisorRssKiB: Stats;
  /** The containers' processes alone: RSS / N. */
  containersRssPerNode: Stats;
  processes: number;
  /** Kernel side: MemAvailable before up - 200 ms after it, / N; and in the first run alone
   *  (the later runs reuse memory the kernel has not given back from the previous teardown). */
  kernelPerNode: Stats;
  kernelFirstRunPerNode: number;
  /** Kernel side, its own objects: the change of slab + page tables + kernel stacks + shmem +
   *  per-CPU, / N (steadier than MemAvailable). */
  kernelObjectsPerNode: Stats;
  /** Median change (KiB, whole lab) of the meminfo fields that explain it. */
  kernelFields: Record<string, number>;
}

export interface NetlabResult {
  mode: Mode;
  nodes: number;
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
  /** Wall ms per op type in up (over the runs). */
  opMs: Partial<Record<PlanOp, Stats>>;
  /** The same by where the step runs (`OP @host`, `OP @node`), with the step counts. */
  opMsWhere: Record<string, Stats>;
  countsWhere: Record<string, number>;
  /** Most open fds of the netlab process seen during up (first run). */
  fdsDuringUp: number | null;
  pre: Stats;
  post: Stats;
  rssBaselineKiB: number;
  rssPeakKiB: number;
  busyBeforeMax: number;
  memory: MemorySummary;
  /** The scenario's checks after each up (cold), and the matrix's second run (warm). */
  check: Stats | null;
  checkWarm: Stats | null;
  checks: number;
  checkFailed: number;
  arpTableFulls: number;
  fdsMax: number;
  mountsUp: number;
  nofile: number | null;
  mountProbe: MountProbe | null;
  downBreakdown: Record<string, number> | null;
  profile: ProfileSummary | null;
  raw: WorkerResult['reps'];
}

/** The CLI end to end, as a user runs it: `node bin/netlab.js up FILE`, then `node bin/netlab.js
 *  down LAB`, separate processes, wall time of each. upMs/downMs are the medians of `runs` (results
 *  from before --cli-runs hold one run and no Stats); RSS is the last run's. */
export interface CliResult {
  upMs: number; downMs: number; upRssKiB: number | null; downRssKiB: number | null; upReported: string;
  runs?: number; up?: Stats; down?: Stats; upDown?: Stats;
}

export interface ScenarioResult {
  kind: ScenarioKind;
  n: number;
  lab: string;
  what: string;
  runs: number;
  netlab: Partial<Record<Mode, NetlabResult>>;
  cli: CliResult | null;
  /** Why the CLI run failed (it does not stop the bench: the in-process numbers stand). */
  cliError: string | null;
  /** Why this scenario (or part of it) could not be measured. */
  error: string | null;
  elapsedMs: number;
}

export interface MininetStar { runs: Stats | null; selfReported: Stats | null; error: string | null; skipped: string | null }

export interface SizeResult extends ScenarioResult {
  floor: {
    variants: Record<string, FloorVariantResult>;
    best: { build: string; teardown: string; buildStats: Stats; teardownStats: Stats; upDown: number };
  } | null;
  mininet: MininetStar;
}

export interface MatrixResult extends ScenarioResult {
  mininet: {
    /** Whole `mn ... --test pingall` (Python start-up, build, pingall, teardown). */
    pingall: Stats | null;
    /** `mn ... --test build` at the same N (from the star runs when N is among the sizes). */
    build: Stats | null;
    buildFrom: 'star' | 'own' | null;
    /** pingall - build medians: about what the pingall itself takes. */
    pingallOnlyMs: number | null;
    selfReported: Stats | null;
    received: number | null;
    sent: number | null;
    error: string | null;
    skipped: string | null;
  };
}

export interface WebResult {
  ran: boolean;
  why: string | null;
  runs: number | null;
  containers: number | null;
  coldDrawnMs: number | null;
  coldSettledMs: number | null;
  warmDrawnMs: number | null;
  warmSettledMs: number | null;
  limitMs: number | null;
  coldDrawn: Stats | null;
}

export interface RunResult {
  date: string;
  startedAt: string;
  finishedAt: string;
  runId: string;
  command: string;
  partial: boolean;
  machine: Machine;
  /** Kernel and process limits that large labs run into, as they were during the run. */
  limits: Record<string, string | number | null>;
  /** What was measured: the commit and the files changed on top of it (outside bench/). */
  code: { commit: string; dirty: string[] };
  options: Omit<Options, 'out' | 'doc' | 'setup' | 'docGiven' | 'only'> & { only: string[] };
  /** commandLoadMs: a process that only imports the module of `up` and `down`
   *  (dist/cli/commands/lifecycle.js) and exits, Node's own start-up included (absent before). */
  nodeStartup: { nodeEmptyMs: Stats; cliVersionMs: Stats; commandLoadMs?: Stats };
  /** One idle process on the host: busybox `sleep` (the default container command) and a
   *  static no-libc pause, for what the containers' RSS is made of. */
  idleProcess: { busyboxSleep: ProcMem | null; staticPause: ProcMem | null; pauseWhy: string | null };
  mininet: { available: boolean; why: string | null; version: string | null };
  star: SizeResult[];
  chain: ScenarioResult | null;
  overlay: ScenarioResult | null;
  matrix: MatrixResult[];
  web: WebResult | null;
  /** Wall time of each part of the run. */
  elapsedMs: Record<string, number>;
  leaks: LeakReport;
  error: string | null;
}

// ---------------------------------------------------------------- arguments

export const PARTS = ['star', 'chain', 'overlay', 'matrix', 'web'] as const;
export type Part = (typeof PARTS)[number];

export interface Options {
  only: Set<Part>;
  sizes: number[];
  runs: number;
  bigRuns: number;
  bigFrom: number;
  mnRuns: number;
  mnBigRuns: number;
  /** Runs of the CLI end to end per scenario (1 from bigFrom). */
  cliRuns: number;
  chainN: number;
  matrixSizes: number[];
  webRuns: number;
  profileSize: number | null;
  quietCap: number;
  /** First part of every lab name the run creates (PREFIX-RUNID-...), so runs beside other users' labs stay apart. */
  labPrefix: string;
  mininet: boolean;
  setup: boolean;
  out: string | null;
  doc: string;
  docGiven: boolean;
}

// ---------------------------------------------------------------- routing (bench/routing.ts)

/** How long until something held, in ms from the moment timing started (`up` returning, or the
 *  cable pulled); null when it did not within its bound. */
export interface Held {
  /** The end of the read that agreed, or of the ping try that got its reply. */
  ms: number | null;
  /** The start of that read or try (a ping try starts the probe helper, then sends). */
  startMs: number | null;
  /** The end of the last read that still differed, or of the last ping try that failed: it held
   *  between this and `ms`. null when the first read or try held. */
  beforeMs: number | null;
  /** Reads of every node's table, or rounds of ping tries. */
  attempts: number;
  /** Routes: rows that still differed at the bound (first 5, as `netlab routes` prints them);
   *  pings: what the last try of each direction saw. */
  detail: string[];
}

/** One router's memory, read after convergence. KiB. */
export interface RouterMemory {
  node: string;
  /** The cgroup's charge: memory.usage_in_bytes (v1) or memory.current (v2). */
  cgroupKiB: number;
  /** Of that, anonymous memory (v1 memory.stat rss, v2 anon) and page cache (v1 cache, v2 file). */
  anonKiB: number;
  fileKiB: number;
  /** Sum of VmRSS, and of Pss (smaps_rollup), over the FRR daemons in the cgroup, and VmRSS over
   *  every process in it (FRR + the container's PID 1). */
  frrRssKiB: number;
  frrPssKiB: number;
  allRssKiB: number;
  processes: { comm: string; rssKiB: number; pssKiB: number }[];
}

export interface RoutingRun {
  run: number;
  /** CPU busy fraction of the window before the run (waitQuiet). */
  busyBefore: number;
  /** The image phase of `up` (the recipes' lookup in the store, as `netlab up` does it first). */
  imagePhaseMs: number;
  upMs: number;
  /** Predicted routes compared on each read (every node's table, hosts included). */
  routesCompared: number;
  /** Predicting every node's table once (simulator), and one read of every table compared with
   *  it (median over the reads of the convergence). */
  predictMs: number;
  readMs: number;
  converge: { routes: Held; pingAB: Held; pingBA: Held; pingBoth: number | null };
  /** The cable pulled (NODE:IFACE, on the predicted path from host A to host B) and how long
   *  setLink took; times below are from its return. */
  pulled: string;
  linkDownMs: number;
  reconverge: { routes: Held; pingAB: Held; pingBA: Held; pingBoth: number | null };
  /** Routes still agree after the pings of the first convergence (nothing was still moving). */
  stableAfterConverge: boolean;
  memory: RouterMemory[];
  downMs: number;
}

export interface RoutingRing {
  n: number;
  lab: string;
  hosts: [string, string];
  /** Median (min–max) over the runs. */
  up: Stats;
  imagePhase: Stats;
  convergeRoutes: Stats;
  convergePing: Stats;
  reconvergeRoutes: Stats;
  reconvergePing: Stats;
  /** Over every router of every run. */
  memCgroupKiB: Stats;
  memAnonKiB: Stats;
  memFileKiB: Stats;
  frrRssKiB: Stats;
  frrPssKiB: Stats;
  /** Median VmRSS by daemon (comm), over every router of every run. */
  daemonRssKiB: Record<string, Stats>;
  failures: number;
  runs: RoutingRun[];
}

export interface RoutingImageBuild {
  recipe: { debian: string; packages: string[] };
  ref: string;
  /** `netlab image build FILE` with a fresh NETLAB_IMAGE_STORE: wall time of the command, and
   *  the time netlab itself reports for the build. */
  cold: { ms: number; reportedMs: number | null; storeMiB: number } | null;
  /** The same command again in that store (present: nothing built). */
  cachedFresh: Stats | null;
  /** The same command with the shared store (/var/lib/netlab/images or NETLAB_IMAGE_STORE). */
  cachedShared: Stats | null;
  /** In-process: the image phase of `up` (needsBuild of the recipes) and buildImage finding the
   *  image present, against the shared store. */
  upPhaseShared: Stats;
  buildPresentInProcess: Stats;
  /** For scale: `node bin/netlab.js --version` (Node start-up and the CLI's own loading). */
  cliVersion: Stats;
  /** One more cached CLI build under `node --cpu-prof`: self time by category (bench/profile.ts). */
  cachedProfile: { totalMs: number; categories: Record<string, number>; top: { fn: string; where: string; ms: number }[] } | null;
  error: string | null;
}

export interface RoutingResult {
  bench: 'routing';
  what: string;
  date: string;
  runId: string;
  machine: Machine;
  code: { commit: string; dirty: string[] };
  options: { sizes: number[]; runs: number; pollMs: number; pingTimeoutMs: number; routesBoundMs: number; pingBoundMs: number; links: string; lans: string };
  cgroupVersion: number;
  frrVersion: string | null;
  rings: RoutingRing[];
  image: RoutingImageBuild | null;
  leaks: LeakReport;
  /** `ip netns list` lines still naming one of the run's labs after the end (must be none). */
  netnsLeft: string[];
  /** Load average (1, 5, 15 min) at the start and at the end. */
  load: { start: number[]; end: number[] };
  /** Namespaces, root links and processes that appeared during the run and are not ours
   *  (other users' labs and tests). */
  foreignObjects: number;
  error: string | null;
}
