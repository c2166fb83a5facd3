// Routing with FRR (issue 14): how long OSPF takes to converge in netlab's labs, what a router
// costs in memory, and how long the FRR image takes to build.
//  1. OSPF rings of N routers (6 and 20 by default), generated here: r1..rN of `image: frr` with
//     `routing: { ospf: { area: 0 } }`, cable k from rk:eth2 to r(k+1):eth1 (rN:eth2 to r1:eth1)
//     with a /30 each, every router on a host LAN of its own (gateway: false), and a busybox host
//     on the LANs of r1 and of the opposite router r(N/2+1), with a default route via its router.
//     Every cable costs 10 except r1-r2 (100), so the shortest path between the hosts is unique
//     (r1 -> rN -> ... -> r(N/2+1)), as in labs/ospf.yml. From `up()` returning (in-process, what
//     `netlab up` does once the images are there): (a) every node's kernel routes agree with the
//     simulator's prediction (checks/routes.ts's comparison over controller/routes.ts readRoutes,
//     what `netlab routes LAB --wait` does, the prediction made once instead of on every read,
//     one read every 50 ms, at most 60 s), and (b) the two
//     hosts ping each other both ways (checks/run.ts runChecks with a 30 s wait, what `netlab
//     check LAB --ping A:B --wait 30` does, its retry pauses cut to 50 ms and its probe timeout
//     to 200 ms so the time is resolved finer than the CLI's 200 ms-1 s rounds). Then the cable
//     rN:eth2 (rN-r1, the first hop of the path from host A) is pulled (controller setLink, as
//     `netlab link LAB rN:eth2 down`) and the same two times are taken from its return. Each ring
//     size is brought up --runs times (5), medians reported.
//  2. Memory per router after convergence: the container's cgroup charge (v1
//     memory.usage_in_bytes, v2 memory.current; anonymous and page cache from memory.stat) and, as
//     a cross-check, the sum of VmRSS (and of Pss) of the FRR daemons in its cgroup.
//  3. The FRR image (labs/ospf.yml's recipe: bookworm, frr, iproute2, iputils-ping): `netlab image
//     build FILE` with a fresh NETLAB_IMAGE_STORE (cold), the same again (cached), the same with
//     the shared store, and the image phase of `up` in-process (needsBuild of the recipes).
// Results: bench/results/routing.json and the "Routing" section of docs/performance.md (kept by
// bench/run.ts when it rewrites that file). Every lab is brought down in finally (by name: never
// `netlab cleanup`, which would take other people's labs too), then the machine is checked for
// anything of this run left (namespaces, links, nft tables, state, mounts, processes, cgroups).
//
//   npm run build && node dist/bench/routing.js [--sizes 6,20] [--runs 5] [--prefix bro]
//     [--links 10.241] [--lans 10.242] [--no-image] [--out bench/results/routing.json]
//     [--doc docs/performance.md]
//   node dist/bench/routing.js --render bench/results/routing.json [--doc FILE]   (no measuring)
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { down, setLink, up } from '../controller/lab.js';
import { modelOf, readState } from '../controller/state.js';
import { readRoutes } from '../controller/routes.js';
import { envForUp } from '../controller/conflicts.js';
import { compareTables, differenceText, observedTable } from '../checks/routes.js';
import { adHocCheck, runChecks } from '../checks/run.js';
import { loadTopologyFile } from '../topology/load.js';
import { predictedTable } from '../topology/simulate.js';
import { labId, nftTable } from '../topology/names.js';
import type { Lab, LabImage } from '../topology/types.js';
import type { PredictedRoute } from '../topology/simulate.js';
import type { Probe } from '../checks/probe.js';
import { runProbes } from '../checks/probe.js';
import { containersDir, containerState } from '../runtime/container.js';
import { currentLayout } from '../runtime/cgroups.js';
import { buildImage, ensureBuilt, needsBuild } from '../runtime/images/build.js';
import { compare, snapshot, type LeakReport } from './leaks.js';
import { CAT, summarizeProfile } from './profile.js';
import { fmtMs, loadavg, machine, round, sleep, spliceSection, stats, timeCmd, waitQuiet, type Stats } from './util.js';
import type { Held, RouterMemory, RoutingImageBuild, RoutingResult, RoutingRing, RoutingRun } from './results.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(ROOT, 'bin', 'netlab.js');
/** labs/ospf.yml's recipe: the shared store already holds its image. */
const RECIPE = { debian: 'bookworm', packages: ['frr', 'iproute2', 'iputils-ping'] };
/** FRR's daemons (the processes of a router that are FRR's; the container's PID 1 is not). */
const FRR_DAEMONS = new Set(['watchfrr', 'zebra', 'staticd', 'mgmtd', 'ospfd', 'ospf6d', 'bgpd', 'ripd', 'ripngd', 'isisd', 'pimd', 'ldpd', 'nhrpd', 'eigrpd', 'babeld', 'sharpd', 'pbrd', 'bfdd', 'fabricd', 'vrrpd', 'pathd']);

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}
const flag = (name: string) => process.argv.includes(`--${name}`);

function log(s: string): void { console.error(`routing: ${s}`); }

let stopping: string | null = null;
function checkStop(): void {
  if (stopping) throw new Error(`interrupted (${stopping})`);
}

// ---------------------------------------------------------------------------------------------
// The ring

export interface Ring {
  yaml: string;
  routers: string[];
  hosts: [string, string];
  /** The cable pulled: rN:eth2, to r1 (the first hop of the shortest path from host A). */
  pull: { node: string; iface: string };
}

/** N routers in a ring, a LAN each, hosts behind r1 and r(N/2+1). `links` and `lans` are the
 *  first two octets of the /16s the cables' /30s and the LANs' /24s come from. */
export function ringTopology(lab: string, n: number, links: string, lans: string): Ring {
  if (n < 4 || n > 250) throw new Error(`ring ${n}: 4 to 250 routers`);
  const b = Math.floor(n / 2) + 1;
  const routers = Array.from({ length: n }, (_, i) => `r${i + 1}`);
  const L = [
    `# generated by bench/routing.ts: OSPF ring of ${n} routers, hosts behind r1 and r${b}`,
    `name: ${lab}`,
    'images:',
    `  frr: { debian: ${RECIPE.debian}, packages: [${RECIPE.packages.join(', ')}] }`,
    'networks:',
    ...routers.map((_, i) => `  lan${i + 1}: { subnet: ${lans}.${i + 1}.0/24, gateway: false }`),
    'nodes:',
    ...routers.map((r, i) => `  ${r}: { image: frr, routing: { ospf: { area: 0 } }, networks: { lan${i + 1}: { ipv4: ${lans}.${i + 1}.1 } } }`),
    ...[1, b].map((k) => `  h${k}: { networks: { lan${k}: { ipv4: ${lans}.${k}.10 } }, routes: [{ dst: default, via: ${lans}.${k}.1 }] }`),
    'links:',
    ...routers.map((r, i) => `  - { endpoints: ["${r}:eth2", "r${((i + 1) % n) + 1}:eth1"], ipv4: [${links}.${i + 1}.1/30, ${links}.${i + 1}.2/30]${i === 0 ? ', ospf: { cost: 100 }' : ''} }`),
  ];
  return { yaml: L.join('\n') + '\n', routers, hosts: ['h1', `h${b}`], pull: { node: `r${n}`, iface: 'eth2' } };
}

// ---------------------------------------------------------------------------------------------
// Waiting for convergence

/** Every node's predicted table for `model` (the simulator), made before the clock starts:
 *  predicting takes longer than reading every table (~350 ms against ~50 ms for the ring of 20
 *  here), and it is synchronous, so made during the wait it would delay the reads and the pings. */
interface Prediction { model: Lab; tables: Map<string, PredictedRoute[]>; ms: number }

function predict(model: Lab): Prediction {
  const t = performance.now();
  const tables = new Map(model.nodes.filter((n) => n.netns).map((n) => [n.name, predictedTable(model, n.name)]));
  return { model, tables, ms: round(performance.now() - t) };
}

/** Reads every node's table every `pollMs` until all agree with the prediction (the comparison
 *  of checks/routes.ts compareLab, the prediction made once), at most `boundMs` from t0. */
async function untilRoutesAgree(p: Prediction, t0: number, boundMs: number, pollMs: number): Promise<Held & { compared: number; readMs: number }> {
  const reads: number[] = [];
  let attempts = 0;
  let beforeMs: number | null = null;
  for (;;) {
    checkStop();
    attempts++;
    const tr = performance.now();
    const kernel = await readRoutes(p.model);
    const rows = [...kernel].flatMap(([node, routes]) => compareTables(node, p.tables.get(node) ?? [], observedTable(routes)));
    const at = performance.now() - t0;
    reads.push(performance.now() - tr);
    const differ = rows.filter((r) => !r.same);
    const done = (ms: number | null, detail: string[]) => ({ ms, startMs: ms === null ? null : round(tr - t0), beforeMs, attempts, detail, compared: rows.length, readMs: stats(reads).median });
    if (differ.length === 0) return done(round(at), []);
    if (at + pollMs > boundMs) return done(null, differ.slice(0, 5).map(differenceText));
    beforeMs = round(at);
    await sleep(pollMs);
  }
}

interface PingWatch {
  /** Resolves once runChecks has made its predictions and waits to send its first probes. */
  ready: Promise<unknown>;
  /** Lets the probes go; times are from tRef. */
  go(tRef: number): void;
  result: Promise<{ ab: Held; ba: Held; both: number | null }>;
}

/** Host A pings host B and B pings A, with runChecks and a wait of `boundMs` (the checks' own
 *  retries, their pauses capped at `pollMs`): set up (predicted, planned) at once, probing only
 *  from go(). A try's time is when its round's probes were sent. */
function watchPings(model: Lab, hosts: [string, string], boundMs: number, pollMs: number, pingTimeoutMs: number): PingWatch {
  const [a, b] = hosts;
  const checks = [adHocCheck(model, 'ping', `${a}:${b}`, 0, null), adHocCheck(model, 'ping', `${b}:${a}`, 1, null)]
    .map((c) => ({ ...c, timeoutMs: pingTimeoutMs, waitMs: boundMs }));
  const clock = { now: () => performance.now(), sleep: (ms: number) => sleep(Math.min(ms, pollMs)) };
  let release!: () => void;
  const released = new Promise<void>((r) => { release = r; });
  let isReady!: () => void;
  const readyP = new Promise<void>((r) => { isReady = r; });
  let tRef = 0;
  const sent: number[] = [];
  const back: number[] = [];
  const probes = async (ps: Probe[]) => {
    isReady();
    await released;
    checkStop();
    sent.push(performance.now());
    const rs = await runProbes(ps);
    back.push(performance.now());
    return rs;
  };
  const result = runChecks(model, checks, 'checks', { clock, runProbes: probes }).then((r) => {
    const held = (i: number): Held => {
      const o = r.outcomes[i];
      const at = (xs: number[], k: number) => (xs[k - 1] !== undefined ? round(xs[k - 1] - tRef) : null);
      const ok = o.pass && o.heldAfterMs !== null;
      return {
        ms: ok ? at(back, o.attempts) : null, startMs: ok ? at(sent, o.attempts) : null, beforeMs: ok && o.attempts > 1 ? at(back, o.attempts - 1) : null,
        attempts: o.attempts, detail: [`${o.label}: ${o.observed ?? '-'} (${o.detail})`],
      };
    };
    const ab = held(0), ba = held(1);
    return { ab, ba, both: ab.ms !== null && ba.ms !== null ? Math.max(ab.ms, ba.ms) : null };
  });
  result.catch(() => undefined); // awaited by the caller; not an unhandled rejection when it is not (a run that failed first)
  return { ready: Promise.race([readyP, result]), go: (t) => { tRef = t; release(); }, result };
}

// ---------------------------------------------------------------------------------------------
// Memory

const kib = (bytes: number) => round(bytes / 1024, 0);

function statusKiB(pid: number, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/${field === 'Pss' ? 'smaps_rollup' : 'status'}`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch { return 0; }
}

function memStat(dir: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const l of fs.readFileSync(path.join(dir, 'memory.stat'), 'utf8').split('\n')) {
    const [k, v] = l.split(' ');
    if (k && v) out[k] = Number(v);
  }
  return out;
}

/** A router's memory: its cgroup (the path netlab recorded for it in cgroups.json) and the
 *  processes in it. */
function routerMemory(lab: string, node: string): RouterMemory {
  const meta = JSON.parse(fs.readFileSync(path.join(containersDir(lab), node, 'cgroups.json'), 'utf8')) as { cgroupVersion: 1 | 2; cgroups: Record<string, string> };
  const v2 = meta.cgroupVersion === 2;
  const dir = v2 ? meta.cgroups[''] : meta.cgroups.memory;
  if (!dir) throw new Error(`${lab}/${node}: no memory cgroup recorded`);
  const usage = Number(fs.readFileSync(path.join(dir, v2 ? 'memory.current' : 'memory.usage_in_bytes'), 'utf8').trim());
  const ms = memStat(dir);
  const pids = fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  const processes = pids.map((pid) => {
    let comm = '?';
    try { comm = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim(); } catch { /* gone */ }
    return { comm, rssKiB: statusKiB(pid, 'VmRSS'), pssKiB: statusKiB(pid, 'Pss') };
  }).sort((x, y) => x.comm.localeCompare(y.comm));
  const frr = processes.filter((p) => FRR_DAEMONS.has(p.comm));
  return {
    node, cgroupKiB: kib(usage),
    anonKiB: kib(v2 ? ms.anon ?? 0 : ms.rss ?? 0), fileKiB: kib(v2 ? ms.file ?? 0 : ms.cache ?? 0),
    frrRssKiB: frr.reduce((a, p) => a + p.rssKiB, 0), frrPssKiB: frr.reduce((a, p) => a + p.pssKiB, 0),
    allRssKiB: processes.reduce((a, p) => a + p.rssKiB, 0), processes,
  };
}

/** FRR's version, from the dpkg database in a running router's root. */
function frrVersion(lab: string, node: string): string | null {
  const s = containerState(lab, node);
  if (s.pid === null) return null;
  try {
    const db = fs.readFileSync(`/proc/${s.pid}/root/var/lib/dpkg/status`, 'utf8');
    return /^Package: frr\n(?:[^\n]+\n)*?Version: (\S+)/m.exec(db)?.[1] ?? null;
  } catch { return null; }
}

// ---------------------------------------------------------------------------------------------
// One run of one ring

function loadLab(file: string): Lab {
  const r = loadTopologyFile(file, envForUp());
  if (!r.lab) throw new Error(`${file}: ${r.diagnostics.map((d) => JSON.stringify(d)).join('\n')}`);
  return r.lab;
}

const recipesOf = (lab: Lab): LabImage[] => (lab.images ?? []).filter((i) => lab.nodes.some((n) => n.image === i.ref));

async function ringRun(k: number, file: string, ring: Ring, o: { pollMs: number; pingTimeoutMs: number; routesBoundMs: number; pingBoundMs: number }, labsUp: Set<string>, facts: { frr: string | null }): Promise<RoutingRun> {
  const busyBefore = await waitQuiet(0.3, 5000);
  // `netlab up`: the file read, then the image phase (recipes looked up in the store), then up.
  const lab = loadLab(file);
  const recipes = recipesOf(lab);
  const ti = performance.now();
  const build = needsBuild(recipes);
  const imagePhaseMs = round(performance.now() - ti, 2);
  if (build) {
    log(`the FRR image is not in the store: building it first (not timed here; see the image part)`);
    await ensureBuilt(recipes);
  }
  // The same cable pulled, as the lab will run then (setLink records both ends).
  const peer = lab.nodes.find((n) => n.name === ring.pull.node)!.interfaces.find((f) => f.name === ring.pull.iface)!.peer!;
  const cables = { [`${ring.pull.node}:${ring.pull.iface}`]: false, [`${peer.node}:${peer.iface}`]: false };
  // The cable must be on the predicted path from host A's router to host B's LAN.
  const bLan = lab.nodes.find((n) => n.name === ring.hosts[1])!.interfaces[0].ipv4!;
  const bNet = `${bLan.address.split('.').slice(0, 3).join('.')}.0/${bLan.prefixLen}`;
  const r1 = predictedTable(lab, 'r1').find((r) => r.dst === bNet);
  if (peer.node !== 'r1' || !r1 || r1.nexthops.length !== 1 || r1.nexthops[0].dev !== peer.iface) {
    throw new Error(`the cable ${ring.pull.node}:${ring.pull.iface} is not on r1's predicted path to ${bNet} (${JSON.stringify(r1?.nexthops)})`);
  }
  // Predictions and the pings' plans before the clocks start.
  const before = predict(lab);
  const pings = watchPings(lab, ring.hosts, o.pingBoundMs, o.pollMs, o.pingTimeoutMs);
  await pings.ready;
  checkStop();
  labsUp.add(lab.name);
  const u = await up(lab).catch((e: unknown) => { pings.go(0); throw e; });
  const tUp = performance.now();
  pings.go(tUp);
  const [routes, ping] = await Promise.all([untilRoutesAgree(before, tUp, o.routesBoundMs, o.pollMs), pings.result]);
  // Nothing still moving: the tables agree again after the pings.
  const again = await untilRoutesAgree(before, performance.now(), 0, o.pollMs);
  const stableAfterConverge = routes.ms !== null && again.ms !== null;
  const memory = ring.routers.map((r) => routerMemory(lab.name, r));
  facts.frr ??= frrVersion(lab.name, ring.routers[0]);
  const st = readState(lab.name);
  if (!st) throw new Error(`lab ${lab.name} has no state`);
  const pulledModel = modelOf({ ...st, cables: { ...st.cables, ...cables } });
  const after = predict(pulledModel);
  const rePings = watchPings(pulledModel, ring.hosts, o.pingBoundMs, o.pollMs, o.pingTimeoutMs);
  await rePings.ready;
  checkStop();
  const tl = performance.now();
  await setLink(lab.name, ring.pull.node, ring.pull.iface, false).catch((e: unknown) => { rePings.go(0); throw e; });
  const tDown = performance.now();
  rePings.go(tDown);
  const recorded = readState(lab.name)?.cables ?? {};
  if (Object.entries(cables).some(([k, v]) => recorded[k] !== v)) throw new Error(`setLink recorded ${JSON.stringify(recorded)}, expected ${JSON.stringify(cables)}`);
  const [reRoutes, rePing] = await Promise.all([untilRoutesAgree(after, tDown, o.routesBoundMs, o.pollMs), rePings.result]);
  const d = await down(lab.name);
  labsUp.delete(lab.name);
  const run: RoutingRun = {
    run: k, busyBefore, imagePhaseMs, upMs: round(u.ms), routesCompared: routes.compared, predictMs: before.ms, readMs: routes.readMs,
    converge: { routes: strip(routes), pingAB: ping.ab, pingBA: ping.ba, pingBoth: ping.both },
    pulled: `${ring.pull.node}:${ring.pull.iface}`, linkDownMs: round(tDown - tl),
    reconverge: { routes: strip(reRoutes), pingAB: rePing.ab, pingBA: rePing.ba, pingBoth: rePing.both },
    stableAfterConverge, memory, downMs: round(d.ms),
  };
  const mem = stats(memory.map((m) => m.cgroupKiB)).median;
  log(`ring ${ring.routers.length} run ${k}: up ${fmtMs(run.upMs)}; routes agree ${fmtMs(routes.ms)} (${routes.attempts} reads), pings ${fmtMs(ping.both)}; `
    + `after pulling ${run.pulled}: routes ${fmtMs(reRoutes.ms)} (${reRoutes.attempts} reads), pings ${fmtMs(rePing.both)}; router memory ${Math.round(mem / 1024)} MiB (median cgroup)`);
  for (const h of [routes, reRoutes]) if (h.ms === null) log(`  routes did not agree: ${h.detail.join('; ')}`);
  for (const h of [ping.ab, ping.ba, rePing.ab, rePing.ba]) if (h.ms === null) log(`  ping did not hold: ${h.detail.join('; ')}`);
  return run;
}

function strip(h: Held & { compared?: number }): Held {
  return { ms: h.ms, startMs: h.startMs, beforeMs: h.beforeMs, attempts: h.attempts, detail: h.detail };
}

const okStats = (xs: (number | null)[]) => stats(xs.filter((x): x is number => x !== null));

function summarize(n: number, lab: string, ring: Ring, runs: RoutingRun[]): RoutingRing {
  const mem = runs.flatMap((r) => r.memory);
  const daemons = [...new Set(mem.flatMap((m) => m.processes.map((p) => p.comm)))].sort();
  return {
    n, lab, hosts: ring.hosts,
    up: stats(runs.map((r) => r.upMs)),
    imagePhase: stats(runs.map((r) => r.imagePhaseMs)),
    convergeRoutes: okStats(runs.map((r) => r.converge.routes.ms)),
    convergePing: okStats(runs.map((r) => r.converge.pingBoth)),
    reconvergeRoutes: okStats(runs.map((r) => r.reconverge.routes.ms)),
    reconvergePing: okStats(runs.map((r) => r.reconverge.pingBoth)),
    memCgroupKiB: stats(mem.map((m) => m.cgroupKiB)),
    memAnonKiB: stats(mem.map((m) => m.anonKiB)),
    memFileKiB: stats(mem.map((m) => m.fileKiB)),
    frrRssKiB: stats(mem.map((m) => m.frrRssKiB)),
    frrPssKiB: stats(mem.map((m) => m.frrPssKiB)),
    daemonRssKiB: Object.fromEntries(daemons.map((c) => [c, stats(mem.flatMap((m) => m.processes.filter((p) => p.comm === c).map((p) => p.rssKiB)))])),
    failures: runs.filter((r) => [r.converge.routes.ms, r.converge.pingBoth, r.reconverge.routes.ms, r.reconverge.pingBoth].includes(null) || !r.stableAfterConverge).length,
    runs,
  };
}

// ---------------------------------------------------------------------------------------------
// The image

function du(p: string): number {
  const r = spawnSync('du', ['-s', '--block-size=1', p], { encoding: 'utf8' });
  return r.status === 0 ? Number(r.stdout.split('\t')[0]) : 0;
}

async function imageBuilds(file: string, tmp: string, runs: number): Promise<RoutingImageBuild> {
  const lab = loadLab(file);
  const img = recipesOf(lab)[0];
  const out: RoutingImageBuild = {
    recipe: RECIPE, ref: img.ref, cold: null, cachedFresh: null, cachedShared: null,
    upPhaseShared: stats([]), buildPresentInProcess: stats([]), cliVersion: stats([]), cachedProfile: null, error: null,
  };
  const cli = (store: string | null) => timeCmd(process.execPath, [CLI, 'image', 'build', file], {
    env: { ...process.env, NO_COLOR: '1', ...(store ? { NETLAB_IMAGE_STORE: store } : {}) }, timeoutMs: 1_800_000,
  });
  try {
    // In-process first (shared store): the image phase of every `up`, and buildImage's "present".
    const phase: number[] = [], present: number[] = [];
    for (let i = 0; i < 20; i++) {
      let t = performance.now();
      if (needsBuild([img])) throw new Error(`the shared store has no image for ${img.ref}`);
      phase.push(performance.now() - t);
      t = performance.now();
      await buildImage(img);
      present.push(performance.now() - t);
    }
    out.upPhaseShared = stats(phase.map((x) => round(x, 2)));
    out.buildPresentInProcess = stats(present.map((x) => round(x, 2)));
    const ver: number[] = [];
    for (let i = 0; i < runs; i++) ver.push((await timeCmd(process.execPath, [CLI, '--version'])).ms);
    out.cliVersion = stats(ver);
    const shared: number[] = [];
    for (let i = 0; i < runs; i++) {
      await waitQuiet(0.3, 3000);
      const r = await cli(null);
      if (r.code !== 0 || !/already in the store/.test(r.stderr)) throw new Error(`netlab image build (shared store) exited with ${r.code}:\n${r.stdout}${r.stderr}`);
      shared.push(r.ms);
    }
    out.cachedShared = stats(shared);
    // Where the CLI's time goes: one more cached build under `node --cpu-prof` (not measured).
    const profDir = path.join(tmp, 'prof');
    const pr = await timeCmd(process.execPath, ['--cpu-prof', '--cpu-prof-dir', profDir, CLI, 'image', 'build', file], { env: { ...process.env, NO_COLOR: '1' } });
    const pf = pr.code === 0 && fs.existsSync(profDir) ? fs.readdirSync(profDir).find((f) => f.endsWith('.cpuprofile')) : undefined;
    if (pf) {
      const p = summarizeProfile(path.join(profDir, pf));
      out.cachedProfile = { totalMs: round(p.totalMs), categories: Object.fromEntries(Object.entries(p.categories).map(([k, v]) => [k, round(v)])), top: p.top.slice(0, 8).map((t) => ({ ...t, ms: round(t.ms) })) };
    }
    log(`image: cached build with the shared store ${fmtMs(out.cachedShared.median)} (CLI), up's image phase ${out.upPhaseShared.median} ms (in-process)`);
    // Cold: a fresh store.
    const store = path.join(tmp, 'store');
    await waitQuiet(0.3, 5000);
    log(`image: cold build into a fresh store ${store} (mmdebstrap from the machine's Debian mirror; a minute or more)`);
    const c = await cli(store);
    if (c.code !== 0) throw new Error(`netlab image build (fresh store) exited with ${c.code}:\n${c.stdout}${c.stderr.slice(-3000)}`);
    const m = /built .* in ([\d.]+) s/.exec(c.stderr);
    out.cold = { ms: round(c.ms), reportedMs: m ? round(Number(m[1]) * 1000) : null, storeMiB: round(du(store) / 1048576, 1) };
    log(`image: cold build ${fmtMs(c.ms)} (netlab says ${m?.[1] ?? '?'} s), store ${out.cold.storeMiB} MiB`);
    const fresh: number[] = [];
    for (let i = 0; i < runs; i++) {
      await waitQuiet(0.3, 3000);
      const r = await cli(store);
      if (r.code !== 0 || !/already in the store/.test(r.stderr)) throw new Error(`netlab image build (again) exited with ${r.code}:\n${r.stdout}${r.stderr}`);
      fresh.push(r.ms);
    }
    out.cachedFresh = stats(fresh);
    log(`image: second build in that store ${fmtMs(out.cachedFresh.median)}`);
  } catch (e) {
    out.error = (e as Error).message;
    log(`image part failed: ${out.error}`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

function codeIdentity(): RoutingResult['code'] {
  const git = (args: string[]) => spawnSync('git', ['-C', ROOT, ...args], { encoding: 'utf8' }).stdout?.trim() ?? '';
  const dirty = git(['status', '--porcelain']).split('\n').filter(Boolean).map((l) => l.slice(3)).filter((f) => !f.startsWith('bench/') && f !== 'docs/performance.md');
  return { commit: git(['rev-parse', '--short', 'HEAD']) || 'unknown', dirty };
}

function writeDoc(doc: string, r: RoutingResult, out: string): void {
  const text = fs.existsSync(doc) ? fs.readFileSync(doc, 'utf8') : '# Performance\n';
  fs.writeFileSync(doc, spliceSection(text, 'routing', renderRouting(r, out), '## Running it'));
}

async function main(): Promise<void> {
  const render = arg('render', '');
  if (render) {
    const doc = arg('doc', 'docs/performance.md');
    writeDoc(doc, JSON.parse(fs.readFileSync(render, 'utf8')) as RoutingResult, path.relative(process.cwd(), render));
    log(`rendered ${render} into the Routing section of ${doc}`);
    return;
  }
  if (process.getuid?.() !== 0) throw new Error('the routing bench needs root (labs)');
  const sizes = arg('sizes', '6,20').split(',').map(Number);
  const runs = Number(arg('runs', '5'));
  const prefix = arg('prefix', 'bro');
  const links = arg('links', '10.241');
  const lans = arg('lans', '10.242');
  const out = arg('out', 'bench/results/routing.json');
  const doc = arg('doc', 'docs/performance.md');
  const o = { pollMs: 50, pingTimeoutMs: 200, routesBoundMs: 60_000, pingBoundMs: 30_000 };
  const runId = randomBytes(3).toString('hex');
  const labName = (n: number) => `${prefix}${n}-${runId}`;
  const labs = sizes.map(labName);
  // Nothing else may use the blocks (another lab's or the machine's routes).
  const routes = spawnSync('ip', ['-4', 'route', 'show', 'table', 'all'], { encoding: 'utf8' }).stdout;
  for (const b of [links, lans]) if (routes.split('\n').some((l) => l.startsWith(`${b}.`))) throw new Error(`${b}.0.0/16 is in use here (ip route): pick other blocks with --links/--lans`);

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-${runId}-`));
  fs.chmodSync(tmp, 0o755);
  const before = snapshot();
  const labsUp = new Set<string>();
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, () => { stopping ??= s; log(`${s}: stopping after the current step (labs are brought down)`); });
  const facts = { frr: null as string | null };
  const result: RoutingResult = {
    bench: 'routing', what: `OSPF convergence of rings of ${sizes.join(' and ')} FRR routers, memory per router, the FRR image build`,
    date: new Date().toISOString(), runId, machine: machine(), code: codeIdentity(),
    options: { sizes, runs, ...o, links: `${links}.0.0/16`, lans: `${lans}.0.0/16` },
    cgroupVersion: currentLayout().version, frrVersion: null, rings: [], image: null,
    leaks: { leaked: {}, foreign: {} }, netnsLeft: [], load: { start: loadavg(), end: [] }, foreignObjects: 0, error: null,
  };
  const errors: string[] = [];
  let file6 = '';
  try {
    for (const n of sizes) {
      const lab = labName(n);
      const ring = ringTopology(lab, n, links, lans);
      const file = path.join(tmp, `ring${n}.yml`);
      fs.writeFileSync(file, ring.yaml);
      if (!file6) file6 = file;
      const rs: RoutingRun[] = [];
      for (let k = 1; k <= runs; k++) {
        checkStop();
        rs.push(await ringRun(k, file, ring, o, labsUp, facts));
      }
      const s = summarize(n, lab, ring, rs);
      result.rings.push(s);
      log(`ring ${n}: routes agree ${fmtMs(s.convergeRoutes.median)}, pings ${fmtMs(s.convergePing.median)}; re-converge ${fmtMs(s.reconvergeRoutes.median)} / ${fmtMs(s.reconvergePing.median)}; cgroup per router ${Math.round(s.memCgroupKiB.median)} KiB, FRR RSS ${Math.round(s.frrRssKiB.median)} KiB`);
    }
    result.frrVersion = facts.frr;
    if (!flag('no-image')) {
      checkStop();
      result.image = await imageBuilds(file6, tmp, 7);
      if (result.image.error) errors.push(`image: ${result.image.error}`);
    }
  } catch (e) {
    errors.push((e as Error).stack ?? String(e));
    log(`FAILED: ${(e as Error).message}`);
  } finally {
    for (const l of labs) {
      const nsLeft = fs.existsSync('/run/netns') && fs.readdirSync('/run/netns').some((x) => x.includes(`.${l}.`));
      if (!labsUp.has(l) && !readState(l) && !nsLeft) continue;
      try { await down(l); } catch (e) { errors.push(`down ${l}: ${(e as Error).message}`); }
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  // Nothing of this run may be left.
  await waitQuiet(0.2, 3000);
  const ids = labs.map((l) => `nl${labId(l)}`);
  const ours = (kind: string, x: string): boolean => {
    switch (kind) {
      case 'netns': case 'mounts': case 'processes': case 'cgroups': return labs.some((l) => x.includes(l)) || x.includes(tmp);
      case 'links': return ids.some((p) => x.startsWith(p));
      case 'nftTables': return labs.some((l) => x.endsWith(` ${nftTable(l)}`));
      case 'stateDirs': return labs.includes(x);
      default: return true;
    }
  };
  const leaks: LeakReport = compare(before, snapshot(), ours);
  result.leaks = leaks;
  result.load.end = loadavg();
  result.foreignObjects = Object.entries(leaks.foreign).filter(([k]) => ['netns', 'links', 'processes'].includes(k)).reduce((a, [, v]) => a + v.length, 0);
  result.netnsLeft = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => labs.some((x) => l.includes(x)));
  if (fs.existsSync(tmp)) errors.push(`left: ${tmp}`);
  const leaked = Object.entries(leaks.leaked).filter(([, v]) => v.length > 0);
  if (leaked.length > 0 || result.netnsLeft.length > 0) errors.push(`leaked: ${leaked.map(([k, v]) => `${k}: ${v.join(', ')}`).join('; ')} ${result.netnsLeft.join(', ')}`);
  else log('leak check: nothing of this run is left (ip netns list, links, nft tables, state, mounts, processes, cgroups)');
  result.error = errors.length ? errors.join('\n') : null;
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  if (result.rings.length > 0) writeDoc(doc, result, out);
  log(`wrote ${out}${result.rings.length > 0 ? ` and the Routing section of ${doc}` : ''}`);
  if (result.error) { log(`errors:\n${result.error}`); process.exitCode = 1; }
}

// ---------------------------------------------------------------------------------------------
// The "Routing" section

function renderRouting(r: RoutingResult, out: string): string {
  const ms = (s: Stats | null | undefined) => (!s || s.n === 0 ? '-' : s.n === 1 ? fmtMs(s.median) : `${fmtMs(s.median)} (${fmtMs(s.min)}–${fmtMs(s.max)})`);
  const mib = (k: number) => `${(k / 1024).toFixed(1)} MiB`;
  const km = (s: Stats) => (s.n === 0 ? '-' : `${mib(s.median)} (${mib(s.min)}–${mib(s.max)})`);
  const rings = r.rings;
  const col = (f: (g: RoutingRing) => string) => rings.map(f);
  const row = (label: string, f: (g: RoutingRing) => string) => `| ${label} | ${col(f).join(' | ')} |`;
  type Phase = 'converge' | 'reconverge';
  const routesOf = (x: RoutingRun, w: Phase) => x[w].routes;
  const pingsOf = (x: RoutingRun, w: Phase) => [x[w].pingAB, x[w].pingBA];
  const fails = (g: RoutingRing, f: (x: RoutingRun) => number | null) => {
    const k = g.runs.filter((x) => f(x) === null).length;
    return k ? `; **${k} of ${g.runs.length} did not hold**` : '';
  };
  /** How the time was resolved: in how many runs the first read (or try) already held; for the
   *  others, the medians of the last one that failed (the bracket's lower end) and of the reads. */
  const routesNote = (g: RoutingRing, w: Phase) => {
    const later = g.runs.filter((x) => routesOf(x, w).attempts > 1);
    const first = g.runs.length - later.length;
    const rest = `${stats(later.map((x) => routesOf(x, w).attempts)).median} reads; the last that differed ended at ${fmtMs(stats(later.map((x) => routesOf(x, w).beforeMs ?? 0)).median)}`;
    return first === g.runs.length ? 'the first read agreed in every run' : first ? `the first read agreed in ${first} of ${g.runs.length} runs; in the others ${rest}` : rest;
  };
  const pingNote = (g: RoutingRing, w: Phase) => {
    const later = g.runs.filter((x) => pingsOf(x, w).some((h) => h.attempts > 1));
    const firstRuns = g.runs.filter((x) => !later.includes(x));
    const startOf = (x: RoutingRun) => Math.max(...pingsOf(x, w).map((h) => h.startMs ?? 0));
    const firstNote = `the first try got through in ${firstRuns.length === g.runs.length ? 'every run' : `${firstRuns.length} of ${g.runs.length} runs`} (sent at ${fmtMs(stats(firstRuns.map(startOf)).median)})`;
    const rest = `the last try that failed ended at ${fmtMs(stats(later.map((x) => Math.max(...pingsOf(x, w).map((h) => h.beforeMs ?? 0)))).median)}, the one that held was sent at ${fmtMs(stats(later.map(startOf)).median)}`;
    return later.length === 0 ? firstNote : firstRuns.length ? `${firstNote}; in the others ${rest}` : rest;
  };
  const daemonNames = [...new Set(rings.flatMap((g) => Object.keys(g.daemonRssKiB)))].filter((c) => FRR_DAEMONS.has(c));
  const busy = rings.flatMap((g) => g.runs.map((x) => x.busyBefore));
  const lines = [
    '## Routing',
    '',
    `Generated by \`bench/routing.ts\` (\`npm run bench:routing\`), run of ${r.date.slice(0, 16).replace('T', ' ')} UTC (run id \`${r.runId}\`, commit \`${r.code.commit}\`); raw numbers in [\`${out}\`](../${out}). Medians (min–max) of ${r.options.runs} runs per ring.`,
    '',
    `The labs: rings of N routers (FRR ${r.frrVersion ?? '?'}, image \`frr\` built from Debian ${RECIPE.debian} with ${RECIPE.packages.join(', ')}; \`routing: { ospf: { area: 0 } }\`), a /30 on each cable (${r.options.links}), a host LAN on each router (${r.options.lans}, gateway: false), and a busybox host behind r1 and one behind the opposite router, with a default route via it. Every cable costs 10 except r1-r2 (100), so the hosts' shortest path is one (r1 -> rN -> ... -> r(N/2+1)). `
      + `Times are from \`up()\` returning (in-process: what \`netlab up\` does once the image is in the store) to (a) every node's kernel routes agreeing with the simulator's prediction: readRoutes and the comparison of checks/routes.ts, as \`netlab routes LAB --wait\` does them, one read of every table every ${r.options.pollMs} ms against the prediction made once, before the clock starts; the time is the end of the first read that agreed; and (b) the two hosts pinging each other both ways: runChecks with a wait, as \`netlab check LAB --ping A:B --wait 30\`, its retries every ${r.options.pollMs} ms with a ${r.options.pingTimeoutMs} ms probe timeout (the CLI's rounds are 200 ms-1 s apart, with 2 s); the time is the end of the try that got its reply, the later direction of the two. `
      + `Then the cable rN:eth2 (rN to r1, the first hop of the path from h1) is pulled (\`setLink\`, as \`netlab link LAB rN:eth2 down\`: both ends set down) and both are timed again from its return, against the prediction for the ring without that cable. Each time is bracketed by the last read or try that still failed.`,
    '',
    `|  | ${col((g) => `ring of ${g.n}`).join(' | ')} |`,
    `|---|${col(() => '---').join('|')}|`,
    row('routers; hosts; routes compared per read', (g) => `${g.n}; ${g.hosts.join(', ')}; ${g.runs[0]?.routesCompared ?? '-'}`),
    row('one read of every table, compared (median); predicting every table (simulator, once per wait)', (g) => `${fmtMs(stats(g.runs.map((x) => x.readMs)).median)}; ${fmtMs(stats(g.runs.map((x) => x.predictMs)).median)}`),
    row('`up()` (in-process, image in the store)', (g) => ms(g.up)),
    row('**converge: every route agrees with the prediction**', (g) => `**${ms(g.convergeRoutes)}**${fails(g, (x) => x.converge.routes.ms)}`),
    row('  reads', (g) => routesNote(g, 'converge')),
    row('**converge: the hosts ping each other (both ways)**', (g) => `**${ms(g.convergePing)}**${fails(g, (x) => x.converge.pingBoth)}`),
    row('  tries', (g) => pingNote(g, 'converge')),
    row('**re-converge after pulling rN:eth2: every route agrees**', (g) => `**${ms(g.reconvergeRoutes)}**${fails(g, (x) => x.reconverge.routes.ms)}`),
    row('  reads', (g) => routesNote(g, 'reconverge')),
    row('**re-converge: the hosts ping each other (both ways)**', (g) => `**${ms(g.reconvergePing)}**${fails(g, (x) => x.reconverge.pingBoth)}`),
    row('  tries', (g) => pingNote(g, 'reconverge')),
    row('`setLink` (both ends of the cable down, state written)', (g) => ms(stats(g.runs.map((x) => x.linkDownMs)))),
    row(`**memory per router: cgroup charge** (${r.cgroupVersion === 2 ? 'memory.current' : 'memory.usage_in_bytes'}), every router of every run`, (g) => `**${km(g.memCgroupKiB)}**`),
    row('  of it anonymous / page cache (memory.stat)', (g) => `${mib(g.memAnonKiB.median)} / ${mib(g.memFileKiB.median)} (page cache up to ${mib(g.memFileKiB.max)})`),
    row('FRR daemons per router: sum of VmRSS', (g) => km(g.frrRssKiB)),
    row('  same, sum of Pss (shared pages split)', (g) => km(g.frrPssKiB)),
    row(`  VmRSS by daemon: ${daemonNames.join(', ')}`, (g) => daemonNames.map((c) => (g.daemonRssKiB[c] ? mib(g.daemonRssKiB[c].median) : '-')).join(', ')),
    '',
  ];
  const im = r.image;
  if (im) {
    const cached = [im.cachedFresh?.median, im.cachedShared?.median].filter((x): x is number => x !== undefined);
    const pf = (s: Stats | null) => (s ? (s.median < 1000 ? '**PASS**' : '**MISS**') : '-');
    lines.push(
      `The FRR image (\`${im.ref}\`, the recipe of labs/ospf.yml):`,
      '',
      '| build | time | goal | result |',
      '|---|---|---|---|',
      `| cold: \`netlab image build FILE\` with a fresh NETLAB_IMAGE_STORE (mmdebstrap from the machine's Debian mirror, 1 run) | ${im.cold ? `${fmtMs(im.cold.ms)} (netlab reports ${fmtMs(im.cold.reportedMs)}; store ${im.cold.storeMiB} MiB)` : '-'} | | |`,
      `| cached: the same command again in that store (CLI, end to end, ${im.cachedFresh?.n ?? 0} runs) | ${ms(im.cachedFresh)} | well under 1 s | ${pf(im.cachedFresh)} |`,
      `| cached: the same command with the shared store (CLI, end to end, ${im.cachedShared?.n ?? 0} runs) | ${ms(im.cachedShared)} | well under 1 s | ${pf(im.cachedShared)} |`,
      `| the image phase of a second \`up\` (needsBuild of the recipes, in-process, shared store, ${im.upPhaseShared.n} times) | ${im.upPhaseShared.median} ms (${im.upPhaseShared.min}–${im.upPhaseShared.max} ms) | well under 1 s | ${im.upPhaseShared.n ? (im.upPhaseShared.max < 1000 ? '**PASS**' : '**MISS**') : '-'} |`,
      `| buildImage finding the image present (in-process, ${im.buildPresentInProcess.n} times) | ${im.buildPresentInProcess.median} ms (${im.buildPresentInProcess.min}–${im.buildPresentInProcess.max} ms) | | |`,
      `| for scale: \`node bin/netlab.js --version\` | ${ms(im.cliVersion)} | | |`,
      '',
    );
    if (im.cachedProfile && cached.length) {
      const c = im.cachedProfile.categories;
      const cat = (k: string) => fmtMs(c[k] ?? 0);
      lines.push(`Where a cached build's time goes: looking the recipe up in the store takes ${im.upPhaseShared.median} ms; the rest is Node starting and loading the CLI. \`node --cpu-prof bin/netlab.js image build FILE\` of one more cached build (${fmtMs(im.cachedProfile.totalMs)} profiled): Node.js internals (mostly compiling and loading modules) ${cat(CAT.node)}, garbage collection ${cat(CAT.gc)}, system calls ${cat(CAT.native)}, packages and the program (yaml, commander, ...) ${cat(CAT.other)}, netlab's own JavaScript ${cat(CAT.ours)} (reading and resolving the topology included).`, '');
    }
    if (im.error) lines.push(`The image part did not finish: ${im.error.split('\n')[0]}`, '');
  }
  const g6 = rings[0], gl = rings[rings.length - 1];
  if (g6) {
    const both = (f: (g: RoutingRing) => string) => (gl !== g6 ? `${f(g6)} (ring of ${g6.n}) and ${f(gl)} (ring of ${gl.n})` : f(g6));
    const cg = g6.memCgroupKiB.median, pss = g6.frrPssKiB.median;
    lines.push(
      `What it means: once \`up\` has returned, the routers' tables agree with netlab's prediction after ${both((g) => fmtMs(g.convergeRoutes.median))}, and the hosts ping each other after ${both((g) => fmtMs(g.convergePing.median))}. `
        + `That is FRR's time, not netlab's (\`up()\` itself takes ${both((g) => fmtMs(g.up.median))}): the daemons start in every container, then OSPF forms each adjacency (hellos every 1 s, the database exchange) and runs SPF without delay (in the larger ring, more daemons start on the same cores, and more LSAs are flooded and routes installed). `
        + `A pulled cable needs no dead interval: both of its ends are set down, so their routers see it at once and flood new router LSAs, and the tables agree again after ${both((g) => fmtMs(g.reconvergeRoutes.median))}, within a few reads (a read of every table takes ${both((g) => fmtMs(stats(g.runs.map((x) => x.readMs)).median))}, then the ${r.options.pollMs} ms pause: that bounds how finely the time is resolved); the hosts ping each other again after ${both((g) => fmtMs(g.reconvergePing.median))}, the try's own time (starting the probe helper) included: a try sent before the path is repaired waits out its ${r.options.pingTimeoutMs} ms timeout, so each of these times is either the first try's or about ${r.options.pingTimeoutMs + r.options.pollMs} ms later, and their median falls on one side or the other. `
        + `\`netlab routes LAB --wait\` predicts every table again on each of its rounds, which for the ring of ${gl.n} takes ${fmtMs(stats(gl.runs.map((x) => x.predictMs)).median)} per round on top of the read. `
        + `A router's cgroup is charged ${mib(cg)} (${mib(g6.memAnonKiB.median)} of it anonymous, the daemons' own memory; ${mib(g6.memFileKiB.median)} page cache: FRR's binaries and libraries are charged to the cgroup that read them first, not to every router). `
        + `The daemons' VmRSS adds up to more, ${mib(g6.frrRssKiB.median)}, because each of them counts the shared libraries (libfrr, libc) again; their Pss, which splits shared pages, adds up to ${mib(pss)}${Math.abs(pss - cg) / cg < 0.15 ? ', close to the cgroup\'s charge' : ''}.`,
      '',
      `Machine: a loaded ${r.machine.nproc}-core VM (${r.machine.cpuModel}, ${Math.round(r.machine.memoryMiB / 1024)} GiB) shared with other sessions, whose integration tests may run beside the bench (load average ${r.load.start.join(' ')} at the start, ${r.load.end.join(' ')} at the end; other users' namespaces, links or processes there at the end and not at the start: ${r.foreignObjects}; busy CPU in the 200 ms before each run up to ${Math.round(Math.max(...busy) * 100)}%). The times are what FRR and netlab took on that machine, with the spread (min–max) showing the noise.`,
      '',
    );
  }
  lines.push(`Run it: \`npm run bench:routing\` (root; options \`--sizes\` (${r.options.sizes.join(',')}), \`--runs\` (${r.options.runs}), \`--links\`/\`--lans\` (the /16s used), \`--no-image\`, \`--out\`, \`--doc\`; \`--render FILE\` writes this section again from a results file).`, '');
  return lines.join('\n');
}

main().catch((e) => { console.error(e); process.exit(1); });
