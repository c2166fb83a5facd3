// The controller (up, down, status, cleanup, link) through the real CLI, as root, against the
// real kernel. What was built is checked with the system's own tools (`ip -j`, `nft -j`, /proc,
// /run/netns), compared step by step with buildPlan(lab), and proven to work with real
// traffic (ping, HTTP) between namespaces this file made.
//
// Safety on a shared machine: every lab has a unique name (t<run>-<what><n>), its subnets are
// 10.X.0.0/16 blocks that nothing in the root namespace uses, its published ports are free
// ones; `down LAB` is the only cleanup used on the normal path, and `netlab cleanup` (which
// removes every netlab object on the machine) runs only when no other lab exists. Each test
// asserts its labs left nothing (netns, root links, nft table, mounts, state dir, container
// processes and cgroups).
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { labGroup, labId } from '../../topology/names.js';
import type { Lab } from '../../topology/types.js';
import { buildPlan, type Plan, type PlanStep } from '../../controller/plan.js';
import { addLeakProbe, cgroupProbe, containerProcessProbe, expectNoLeaks, snapshot, type Snapshot } from '../helpers/leaks.js';
import { Children, REPO, forceRemoveLab, processesInCgroup, STATE_ROOT, foreignNetlabObjects, freeOctets, freePort, httpGet, isLabNetns, labLeftovers, link, links, netlab, netlabOk, netlabSpawn, netnsList, nftTableNames, ping, planDiff, prng, settleLeftovers, sleep, waitExit, assertBuildFresh, loadModel, addrOf, downAndCheck, machineSnapshot, type MachineSnapshot } from '../helpers/netlab.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('test/integration/controller.test.ts skipped: it needs root (it builds labs in the real kernel: namespaces, links, nftables)');

const RUN = randomBytes(3).toString('hex');
const SEED = Number(process.env.NETLAB_TEST_SEED ?? 0x6e6c6162);
const rand = prng(SEED);

/** Timings for the report printed at the end. */
const timings: Record<string, string> = {};

describe.skipIf(!isRoot)('netlab controller on the real kernel (CLI: up, down, status, link, cleanup)', () => {
  let tmp = '';
  let before: Snapshot;
  /** Every lab name this file used; afterAll makes sure none left anything. */
  const myLabs = new Set<string>();
  /** Labs of the running test; afterEach takes them down and checks they left nothing. */
  const testLabs = new Set<string>();
  /** The whole machine as it was before each lab of the running test was named: what `down`
   *  leaves is judged against it too, not only by the lab's own markers. */
  const machineBefore = new Map<string, MachineSnapshot>();
  /** Root-namespace links this file made by hand (the conflict test); removed in afterEach. */
  const myLinks = new Set<string>();
  const children = new Children();
  let counter = 0;

  function newLab(what: string): string {
    const name = `t${RUN}-${what}${counter++}`;
    if (!/^[a-z][a-z0-9-]{0,31}$/.test(name)) throw new Error(`test bug: bad lab name ${name}`);
    myLabs.add(name);
    testLabs.add(name);
    machineBefore.set(name, machineSnapshot());
    return name;
  }

  /** Copies labs/<example>.yml under a new lab name, with text substitutions (subnets, ports). */
  function copyExample(example: string, lab: string, subs: [string, string][] = []): string {
    let text = fs.readFileSync(path.join(REPO, 'labs', `${example}.yml`), 'utf8');
    const nameLine = new RegExp(`^name: ${example}\\s*$`, 'm');
    if (!nameLine.test(text)) throw new Error(`labs/${example}.yml has no "name: ${example}" line`);
    text = text.replace(nameLine, `name: ${lab}`);
    for (const [from, to] of subs) {
      if (!text.includes(from)) throw new Error(`labs/${example}.yml has no "${from}" to replace`);
      text = text.split(from).join(to);
    }
    return writeTopology(lab, text);
  }

  function writeTopology(lab: string, text: string): string {
    const file = path.join(tmp, `${lab}.yml`);
    fs.writeFileSync(file, text, { mode: 0o644 });
    return file;
  }

  const nsOf = (lab: string, node: string) => `netlab.${lab}.${node}`;

  beforeAll(() => {
    assertBuildFresh();
    // Every lab of this run is named t<RUN>-...: the shared probes watch only those.
    addLeakProbe(cgroupProbe((d) => d.includes(`/netlab/t${RUN}-`)));
    addLeakProbe(containerProcessProbe((g) => g.includes(`/netlab/t${RUN}-`)));
    before = snapshot();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-ctl-'));
    fs.chmodSync(tmp, 0o755); // uid 65534 reads topology files here (the not-root test)
    fs.mkdirSync(path.join(tmp, 'www'), { mode: 0o755 });
    fs.writeFileSync(path.join(tmp, 'www', 'index.html'), `hello from netlab test ${RUN}\n`, { mode: 0o644 });
    console.log(`controller.test.ts: run ${RUN}, seed ${SEED} (set NETLAB_TEST_SEED to replay), topologies in ${tmp}`);
  });

  afterEach(async () => {
    await children.killAll();
    for (const l of myLinks) {
      spawnSync('ip', ['link', 'del', 'dev', l], { stdio: 'ignore' });
      myLinks.delete(l);
    }
    const problems: string[] = [];
    for (const lab of testLabs) {
      const left = await downAndCheck(lab, { since: machineBefore.get(lab) });
      if (left.length) problems.push(`${lab}: ${left.join(', ')}`);
    }
    testLabs.clear();
    machineBefore.clear();
    expect(problems, 'labs of this test left objects behind').toEqual([]);
  });

  afterAll(async () => {
    await children.killAll();
    let left: string[] = [];
    for (const lab of myLabs) left.push(...(await downAndCheck(lab)).map((x) => `${lab}: ${x}`));
    if (left.length > 0) {
      // Last resort, and only when every netlab object on the machine is this file's.
      const foreign = foreignNetlabObjects(myLabs);
      if (foreign.length === 0) {
        netlab(['cleanup']);
        left = [];
        for (const lab of myLabs) left.push(...(await settleLeftovers(lab)).map((x) => `${lab}: ${x}`));
      } else {
        console.warn(`not running netlab cleanup: other netlab objects exist (${foreign.join(', ')})`);
      }
    }
    // If netlab itself could not remove them (a broken build, say), remove them without it, so
    // the machine is clean, and still fail.
    for (const lab of myLabs) {
      if (labLeftovers(lab).length === 0) continue;
      console.warn(`removing what is left of ${lab} without netlab: ${(await forceRemoveLab(lab)).join('; ')}`);
    }
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    console.log(`controller.test.ts timings:\n${Object.entries(timings).map(([k, v]) => `  ${k}: ${v}`).join('\n')}`);
    expect(left, 'labs of this file left objects behind').toEqual([]);
    // The shared leak probes (helpers/leaks.ts), restricted to what this run could have made:
    // a developer's lab or another test run on the machine is not ours to judge.
    const ids = [...myLabs].map((lab) => labId(lab));
    const ours = (probe: string, item: string) => probe === 'child processes'
      || item.includes(`netlab.t${RUN}-`) || item.includes(`/netlab/t${RUN}-`)
      || ids.some((id) => item.startsWith(`nl${id}`) || item === `ip netlab_${id}`);
    await expectNoLeaks(before, { only: ours });
  });

  function planOf(lab: Lab): Plan {
    return buildPlan(lab);
  }

  // ------------------------------------------------------------------ 1. bridge.yml

  it('bridge.yml copy: the kernel holds exactly the plan (netns, veths, bridge, addresses, routes, sysctls, nft), host-side links carry mtu/master/alias/group, nodes ping each other; down leaves nothing', () => {
    const lab = newLab('br');
    const [o] = freeOctets(1, rand);
    const file = copyExample('bridge', lab, [['10.10.', `10.${o}.`]]);
    const m = loadModel(file);
    const plan = planOf(m);

    const up = netlabOk(['up', file]);
    expect(up.stdout).toContain(`lab ${lab} is up: 4 nodes`);
    timings['bridge lab up (CLI process, wall)'] = `${Math.round(up.ms)} ms (netlab's own figure: ${/\(\d+ steps in ([^)]+)\)/.exec(up.stdout)?.[1]})`;

    expect(planDiff(plan)).toEqual([]);

    // The host side, spelled out (planDiff checks the same from the plan's steps).
    const lan = m.networks.find((n) => n.name === 'lan')!;
    const br = link(null, lan.bridgeName!)!;
    expect(br.linkinfo?.info_kind).toBe('bridge');
    expect(br.ifalias).toBe(`netlab:${lab}:lan`);
    expect(br.group).toBe(String(labGroup(lab)));
    expect(br.flags).toContain('UP');
    for (const node of m.nodes) {
      for (const f of node.interfaces) {
        const hs = link(null, f.hostSide!)!;
        expect(hs, `host side of ${node.name}:${f.name}`).not.toBeNull();
        expect({ kind: hs.linkinfo?.info_kind, mtu: hs.mtu, master: hs.master, alias: hs.ifalias, group: hs.group, up: hs.flags.includes('UP') })
          .toEqual({ kind: 'veth', mtu: 1500, master: lan.bridgeName, alias: `netlab:${lab}:${node.name}:${f.name}`, group: String(labGroup(lab)), up: true });
        const inner = link(nsOf(lab, node.name), f.name)!;
        expect({ mtu: inner.mtu, mac: inner.address, up: inner.flags.includes('UP') }).toEqual({ mtu: 1500, mac: f.mac, up: true });
      }
    }
    const gw = `10.${o}.0.1/24`;
    const rootAddrs = execFileSync('ip', ['-j', 'addr', 'show', 'dev', lan.bridgeName!], { encoding: 'utf8', maxBuffer: 1 << 28 });
    expect(JSON.parse(rootAddrs)[0].addr_info.map((a: { local: string; prefixlen: number }) => `${a.local}/${a.prefixlen}`)).toEqual([gw]);
    expect(netnsList().filter((n) => isLabNetns(lab, n)).sort()).toEqual(['client1', 'client2', 'solo', 'web'].map((n) => nsOf(lab, n)).sort());

    // Traffic: every pair of nodes on lan, both ways; solo (network_mode none) reaches nothing.
    const onLan = ['web', 'client1', 'client2'];
    for (const a of onLan) for (const b of onLan) if (a !== b) expect(ping(nsOf(lab, a), addrOf(m, b), true), `${a} -> ${b}`).toBe(true);
    expect(ping(nsOf(lab, 'solo'), addrOf(m, 'web'), false), 'solo -> web').toBe(false);

    const down = netlabOk(['down', lab]);
    expect(down.stdout).toMatch(new RegExp(`lab ${lab} is down: removed 4 namespaces, its links, nft table netlab_${plan.id}`));
    timings['bridge lab down (CLI process, wall)'] = `${Math.round(down.ms)} ms (netlab's own figure: ${/is down: .*\((\d+ ms|[\d.]+ s)\)/.exec(down.stdout)?.[1]})`;
    expect(labLeftovers(lab).filter((x) => !x.startsWith('netns'))).toEqual([]);
  });

  // ------------------------------------------------------------------ 2. routed, isolated, none, host

  it('routed.yml copy: h1 <-> h3 across the router chain, nogw -> h3 fails; a point-to-point link set down cuts the path on both ends', () => {
    const lab = newLab('rt');
    const file = copyExample('routed', lab);
    const m = loadModel(file);
    netlabOk(['up', file]);
    expect(planDiff(planOf(m))).toEqual([]);

    const h1 = nsOf(lab, 'h1'), h3 = nsOf(lab, 'h3'), nogw = nsOf(lab, 'nogw');
    expect(ping(h1, addrOf(m, 'h3'), true), 'h1 -> h3').toBe(true);
    expect(ping(h3, addrOf(m, 'h1'), true), 'h3 -> h1').toBe(true);
    expect(ping(nsOf(lab, 'r1'), '10.0.23.2', true), 'r1 -> r3 through r2').toBe(true);
    expect(ping(nogw, addrOf(m, 'h1'), true), 'nogw -> h1 (same lan)').toBe(true);
    expect(ping(nogw, addrOf(m, 'h3'), false), 'nogw -> h3 (no route)').toBe(false);

    // A cable between two routers: both ends go down, the path breaks, and comes back.
    netlabOk(['link', lab, 'r2:eth2', 'down']);
    expect(link(nsOf(lab, 'r2'), 'eth2')!.flags).not.toContain('UP');
    expect(link(nsOf(lab, 'r3'), 'eth1')!.flags).not.toContain('UP');
    expect(ping(h1, addrOf(m, 'h3'), false), 'h1 -> h3 with r2:eth2 down').toBe(false);
    netlabOk(['link', lab, 'r2:eth2', 'up']);
    expect(link(nsOf(lab, 'r3'), 'eth1')!.flags).toContain('UP');
    expect(ping(h1, addrOf(m, 'h3'), true), 'h1 -> h3 with r2:eth2 up again').toBe(true);
    // Down and up again is the planned lab again: static routes the kernel dropped are back.
    expect(planDiff(planOf(m))).toEqual([]);
  });

  it('isolated.yml copy: same-bridge pairs reach, cross-bridge pairs do not, although the host forwards (ip_forward=1)', () => {
    const lab = newLab('iso');
    const [a, b] = freeOctets(2, rand);
    const file = copyExample('isolated', lab, [['10.21.', `10.${a}.`], ['10.22.', `10.${b}.`]]);
    const m = loadModel(file);
    netlabOk(['up', file]);
    expect(planDiff(planOf(m))).toEqual([]);
    expect(fs.readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim()).toBe('1');

    const ns = (n: string) => nsOf(lab, n);
    expect(ping(ns('blue1'), addrOf(m, 'blue2'), true), 'blue1 -> blue2').toBe(true);
    expect(ping(ns('red2'), addrOf(m, 'red1'), true), 'red2 -> red1').toBe(true);
    expect(ping(ns('blue1'), addrOf(m, 'red1'), false), 'blue1 -> red1').toBe(false);
    expect(ping(ns('red2'), addrOf(m, 'blue2'), false), 'red2 -> blue2').toBe(false);
    expect(ping(ns('red1'), addrOf(m, 'blue1'), false), 'red1 -> blue1').toBe(false);
  });

  it('none.yml copy: each node has its own netns with only lo, up', () => {
    const lab = newLab('none');
    const file = copyExample('none', lab);
    const m = loadModel(file);
    netlabOk(['up', file]);
    expect(planDiff(planOf(m))).toEqual([]);
    expect(netnsList().filter((n) => isLabNetns(lab, n)).sort()).toEqual([nsOf(lab, 'n1'), nsOf(lab, 'n2')]);
    for (const n of ['n1', 'n2']) {
      const ls = links(nsOf(lab, n));
      expect(ls.map((l) => l.ifname), n).toEqual(['lo']);
      expect(ls[0].flags).toContain('UP');
    }
  });

  it('host.yml copy: the network_mode host node has no netns of its own, the bridge node has one', async () => {
    const lab = newLab('host');
    const [o] = freeOctets(1, rand);
    const port = await freePort(rand);
    const port2 = await freePort(rand, [port]);
    const file = copyExample('host', lab, [['10.11.', `10.${o}.`], ['18080', String(port)], ['18081', String(port2)]]);
    const m = loadModel(file);
    netlabOk(['up', file]);
    expect(planDiff(planOf(m))).toEqual([]);
    expect(netnsList().filter((n) => isLabNetns(lab, n))).toEqual([nsOf(lab, 'probe')]);
    expect(fs.existsSync(`/run/netns/${nsOf(lab, 'hostweb')}`)).toBe(false);
    const st = JSON.parse(netlabOk(['status', lab, '--json']).stdout) as { nodes: { name: string; netns: string | null }[] }[];
    expect(st[0].nodes.find((n) => n.name === 'hostweb')?.netns).toBeNull();
    // Its process shares the host's network namespace (planDiff checked the same for each node).
    const procs = processesInCgroup((p) => p.endsWith(`/netlab/${lab}/hostweb`));
    expect(procs.length).toBeGreaterThan(0);
    for (const p of procs) expect(fs.readlinkSync(`/proc/${p.pid}/ns/net`)).toBe(fs.readlinkSync('/proc/self/ns/net'));
  });

  // ------------------------------------------------------------------ 3. published ports

  it('published ports: 127.0.0.1:P1:80 and P2:80 reach a server inside the node from the host at 127.0.0.1', async () => {
    const lab = newLab('port');
    const [o] = freeOctets(1, rand);
    const p1 = await freePort(rand);
    const p2 = await freePort(rand, [p1]);
    const file = writeTopology(lab, [
      `name: ${lab}`,
      'networks:',
      `  lan: { driver: bridge, subnet: 10.${o}.0.0/24, gateway: true }`,
      'nodes:',
      '  web:',
      '    networks: [lan]',
      `    ports: ["127.0.0.1:${p1}:80", "${p2}:80"]`,
      '',
    ].join('\n'));
    const m = loadModel(file);
    netlabOk(['up', file]);
    expect(planDiff(planOf(m))).toEqual([]);

    children.start(nsOf(lab, 'web'), ['busybox', 'httpd', '-f', '-p', '80', '-h', path.join(tmp, 'www')]);
    const marker = `hello from netlab test ${RUN}`;
    let body: string | null = null;
    for (const deadline = Date.now() + 5000; Date.now() < deadline && !body?.includes(marker); await sleep(100)) {
      body = await httpGet(`http://127.0.0.1:${p1}/`);
    }
    expect(body, `GET http://127.0.0.1:${p1}/`).toContain(marker);
    expect(await httpGet(`http://127.0.0.1:${p2}/`), `GET http://127.0.0.1:${p2}/ (published on 0.0.0.0)`).toContain(marker);
    // Published on 127.0.0.1 only: the gateway address (on this lab's bridge) does not forward P1.
    expect(await httpGet(`http://10.${o}.0.1:${p1}/`), `GET http://10.${o}.0.1:${p1}/`).toBeNull();
  });

  // ------------------------------------------------------------------ 4. two labs, same node names

  it('two labs with the same node names run side by side; down of one leaves the other intact and working', () => {
    const [oa, ob] = freeOctets(2, rand);
    const la = newLab('twa');
    const lb = newLab('twb');
    const fa = copyExample('bridge', la, [['10.10.', `10.${oa}.`]]);
    const fb = copyExample('bridge', lb, [['10.10.', `10.${ob}.`]]);
    const ma = loadModel(fa), mb = loadModel(fb);
    const pa = planOf(ma), pb = planOf(mb);
    netlabOk(['up', fa]);
    netlabOk(['up', fb]);
    expect(planDiff(pa)).toEqual([]);
    expect(planDiff(pb)).toEqual([]);
    for (const [lab, m] of [[la, ma], [lb, mb]] as const) {
      expect(ping(nsOf(lab, 'client1'), addrOf(m, 'web'), true), `${lab}: client1 -> web`).toBe(true);
      expect(ping(nsOf(lab, 'web'), addrOf(m, 'client2'), true), `${lab}: web -> client2`).toBe(true);
    }
    netlabOk(['down', la]);
    expect(labLeftovers(la).filter((x) => !x.startsWith('netns'))).toEqual([]);
    expect(planDiff(pb)).toEqual([]);
    expect(ping(nsOf(lb, 'client1'), addrOf(mb, 'web'), true), `${lb}: client1 -> web after ${la} is down`).toBe(true);
    expect(JSON.parse(netlabOk(['status', lb, '--json']).stdout)[0].status).toBe('up');
  });

  // ------------------------------------------------------------------ 6. crash safety

  /** A lab of 17 nodes: two networks, a router on both, a point-to-point link, a `none` node. */
  function crashTopology(lab: string, o: number): string {
    const lines = [
      `name: ${lab}`,
      'networks:',
      `  lan: { subnet: 10.${o}.0.0/24, gateway: true }`,
      `  back: { subnet: 10.${o}.1.0/24, gateway: false }`,
      'nodes:',
    ];
    for (let i = 1; i <= 14; i++) lines.push(`  n${i}: { networks: [lan] }`);
    lines.push(
      `  r1: { forwarding: true, networks: { lan: {}, back: { ipv4: 10.${o}.1.1 } } }`,
      `  r2: { networks: [back], routes: [{ dst: 10.${o}.0.0/24, via: 10.${o}.1.1 }] }`,
      '  s1: { network_mode: none }',
      'links:',
      `  - { endpoints: ["r1:eth2", "r2:eth1"], ipv4: [10.${o}.2.1/30, 10.${o}.2.2/30] }`,
      '',
    );
    return writeTopology(lab, lines.join('\n'));
  }

  it('crash safety: SIGKILL of `up` at random moments (seeded), then `down` (or `cleanup`) leaves nothing, every time', async () => {
    const [o] = freeOctets(1, rand);
    // Calibrate: the full `up` (process start to exit) and when its kernel work starts (state written).
    const cal = newLab('cal');
    const calFile = crashTopology(cal, o);
    const calPlan = planOf(loadModel(calFile));
    const t0 = performance.now();
    const child = netlabSpawn(['up', calFile]);
    let tState = -1;
    const poll = setInterval(() => { if (tState < 0 && fs.existsSync(path.join(STATE_ROOT, cal, 'state.json'))) tState = performance.now() - t0; }, 1);
    const ex = await waitExit(child);
    clearInterval(poll);
    const tFull = performance.now() - t0;
    expect(ex.code, 'calibration up').toBe(0);
    expect(planDiff(calPlan)).toEqual([]);
    netlabOk(['down', cal]);
    expect(await settleLeftovers(cal)).toEqual([]);
    if (tState < 0) tState = tFull * 0.6;

    const TRIALS = 24;
    const outcomes: Record<string, number> = {};
    const trialLog: string[] = [];
    let cleanups = 0;
    const tTrials = performance.now();
    for (let i = 0; i < TRIALS; i++) {
      const lab = newLab('k');
      const file = crashTopology(lab, o);
      // Half spread over the whole run (0 to 115% of it), half over the kernel-work window.
      const delay = i % 2 === 0 ? rand() * tFull * 1.15 : tState + rand() * (tFull * 1.15 - tState);
      const c = netlabSpawn(['up', file]);
      const exit = waitExit(c);
      await sleep(delay);
      c.kill('SIGKILL');
      const r = await exit;
      const found = labLeftovers(lab).length;
      const outcome = r.signal === 'SIGKILL' ? (found > 0 ? 'killed with objects made' : 'killed before any object') : r.code === 0 ? 'finished before the kill' : `exit ${r.code}`;
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      expect(['SIGKILL', 0], `trial ${i}: up ended with ${r.signal ?? r.code}`).toContain(r.signal ?? r.code);
      // cleanup removes every netlab object on the machine: only when all of them are ours.
      const foreign = i % 4 === 3 ? foreignNetlabObjects(myLabs) : [];
      const useCleanup = i % 4 === 3 && foreign.length === 0;
      if (useCleanup) cleanups++;
      if (foreign.length > 0) trialLog.push(`${i}: cleanup skipped (other netlab objects on this machine: ${foreign.slice(0, 3).join(', ')}${foreign.length > 3 ? ', ...' : ''}); down instead`);
      const d = netlab(useCleanup ? ['cleanup'] : ['down', lab]);
      expect(d.status, `trial ${i}: netlab ${useCleanup ? 'cleanup' : 'down'}: ${d.stderr}`).toBe(0);
      const left = await settleLeftovers(lab);
      trialLog.push(`${i}: kill at ${Math.round(delay)} ms, ${outcome} (${found} found), ${useCleanup ? 'cleanup' : 'down'} -> ${left.length} left`);
      expect(left, `trial ${i} (seed ${SEED}): killed at ${Math.round(delay)} ms, then ${useCleanup ? 'cleanup' : 'down'}`).toEqual([]);
      testLabs.delete(lab);
    }
    timings['crash lab (17 nodes) full up, CLI process wall'] = `${Math.round(tFull)} ms (state written at ${Math.round(tState)} ms, ${calPlan.steps.length} steps)`;
    timings[`crash trials (${TRIALS}, ${cleanups} with cleanup)`] = `${Math.round(performance.now() - tTrials)} ms total; ${Object.entries(outcomes).map(([k, v]) => `${v} ${k}`).join(', ')}`;
    console.log(`crash trials (seed ${SEED}):\n  ${trialLog.join('\n  ')}`);
    expect(outcomes['killed with objects made'] ?? 0, 'some kills must land in the middle of the kernel work').toBeGreaterThan(0);
  });

  it('SIGINT during `up` rolls back by itself: exit code non-zero, nothing left', async () => {
    const [o] = freeOctets(1, rand);
    let done = false;
    for (let attempt = 0; attempt < 3 && !done; attempt++) {
      const lab = newLab('int');
      const file = crashTopology(lab, o);
      const c = netlabSpawn(['up', file]);
      const exit = waitExit(c);
      let stderr = '';
      let sent = false;
      c.stdout!.resume();
      c.stderr!.setEncoding('utf8');
      c.stderr!.on('data', (d: string) => {
        stderr += d;
        // The first finished phase: the kernel work is under way, the signal handler installed.
        if (!sent && /^networks: /m.test(stderr)) { sent = true; c.kill('SIGINT'); }
      });
      const guard = setTimeout(() => c.kill('SIGKILL'), 20_000);
      const r = await exit;
      clearTimeout(guard);
      await new Promise((res) => setImmediate(res));
      if (r.code === 0) {
        // `up` finished before the signal was handled: take it down and try again.
        netlabOk(['down', lab]);
        expect(await settleLeftovers(lab)).toEqual([]);
        continue;
      }
      done = true;
      expect(sent, `stderr: ${stderr}`).toBe(true);
      expect(r.code, stderr).not.toBe(0);
      expect(r.code).toBe(130);
      expect(stderr).toMatch(/interrupted by SIGINT; everything it made was removed/);
      // No `down` here: the rollback itself must have removed everything.
      expect(await settleLeftovers(lab)).toEqual([]);
    }
    expect(done, 'SIGINT never landed during `up` in 3 attempts').toBe(true);
  });

  // ------------------------------------------------------------------ 7. link up/down

  it('`netlab link LAB web:eth0 down` takes both ends down and stops ping; status --json shows it; `up` restores ping', () => {
    const lab = newLab('lnk');
    const [o] = freeOctets(1, rand);
    const file = copyExample('bridge', lab, [['10.10.', `10.${o}.`]]);
    const m = loadModel(file);
    netlabOk(['up', file]);
    const web = nsOf(lab, 'web'), client1 = nsOf(lab, 'client1');
    const hostSide = m.nodes.find((n) => n.name === 'web')!.interfaces[0].hostSide!;
    const webEth0 = () => (JSON.parse(netlabOk(['status', lab, '--json']).stdout) as { nodes: { name: string; interfaces: { name: string; up: boolean }[] }[] }[])[0]
      .nodes.find((n) => n.name === 'web')!.interfaces.find((f) => f.name === 'eth0')!;
    expect(ping(client1, addrOf(m, 'web'), true)).toBe(true);

    expect(netlabOk(['link', lab, 'web:eth0', 'down']).stdout).toContain(`${lab} web:eth0 down`);
    expect(link(web, 'eth0')!.flags, 'web eth0 (node side)').not.toContain('UP');
    expect(link(null, hostSide)!.flags, `${hostSide} (host side)`).not.toContain('UP');
    expect(ping(client1, addrOf(m, 'web'), false), 'client1 -> web with web:eth0 down').toBe(false);
    expect(webEth0().up).toBe(false);

    netlabOk(['link', lab, 'web:eth0', 'up']);
    expect(link(web, 'eth0')!.flags).toContain('UP');
    expect(link(null, hostSide)!.flags).toContain('UP');
    expect(webEth0().up).toBe(true);
    expect(ping(client1, addrOf(m, 'web'), true), 'client1 -> web with web:eth0 up again').toBe(true);
    // Back to the planned lab, web's default route (dropped by the kernel with the link) included.
    expect(planDiff(planOf(m))).toEqual([]);
  });

  // ------------------------------------------------------------------ 8. errors

  it('`up` of a lab that is already up exits non-zero, says so, and changes nothing', () => {
    const lab = newLab('twice');
    const [o] = freeOctets(1, rand);
    const file = copyExample('bridge', lab, [['10.10.', `10.${o}.`]]);
    const plan = planOf(loadModel(file));
    netlabOk(['up', file]);
    const fingerprint = () => ({
      netns: netnsList().filter((n) => isLabNetns(lab, n)).sort(),
      root: links(null, false).filter((l) => l.group === String(plan.group)).map((l) => `${l.ifindex} ${l.ifname} ${l.flags.join(',')}`).sort(),
      nodes: netnsList().filter((n) => isLabNetns(lab, n)).sort().map((n) => links(n, false).map((l) => `${l.ifindex} ${l.ifname} ${l.flags.join(',')}`)),
      nft: execFileSync('nft', ['-j', 'list', 'table', 'ip', `netlab_${plan.id}`], { encoding: 'utf8', maxBuffer: 1 << 28 }),
      state: fs.readFileSync(path.join(STATE_ROOT, lab, 'state.json'), 'utf8'),
      containers: processesInCgroup(`/netlab/${lab}/`).map((p) => `${p.pid} ${p.comm}`).sort(),
    });
    const a = fingerprint();
    const r = netlab(['up', file]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(new RegExp(`lab ${lab} is already up`));
    expect(fingerprint()).toEqual(a);
    expect(planDiff(plan)).toEqual([]);
  });

  it('a failure midway (a foreign link with a name the plan uses) rolls back what was made, names the object and EEXIST, and leaves the foreign link alone', () => {
    const lab = newLab('clash');
    const [o] = freeOctets(1, rand);
    const file = copyExample('bridge', lab, [['10.10.', `10.${o}.`]]);
    const plan = planOf(loadModel(file));
    // The host side of the last veth: by then the bridge, the namespaces and two veths exist.
    const steps = plan.steps.filter((s): s is Extract<PlanStep, { op: 'veth.add' }> => s.op === 'veth.add');
    const victim = steps[steps.length - 1];
    const index = plan.steps.indexOf(victim);
    const foreignGroup = (labGroup(lab) + 1) & 0x7fffffff || 1;
    myLinks.add(victim.name);
    execFileSync('ip', ['link', 'add', victim.name, 'group', String(foreignGroup), 'type', 'bridge']);

    const r = netlab(['up', file]);
    expect(r.status).toBe(1);
    // stderr: progress lines of the phases that finished, then one error line.
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('netlab:'));
    expect(errors, r.stderr).toHaveLength(1);
    expect(errors[0]).toContain(`step ${index + 1} (veth.add`);
    expect(errors[0]).toContain(victim.name);
    expect(errors[0]).toContain('EEXIST');
    expect(errors[0]).toContain('everything it made was removed');
    // Rolled back by `up` itself (no down here), and the foreign bridge untouched.
    expect(labLeftovers(lab, { ignoreLinks: [victim.name] })).toEqual([]);
    const foreign = link(null, victim.name);
    expect(foreign?.linkinfo?.info_kind).toBe('bridge');
    expect(foreign?.group).toBe(String(foreignGroup));
    execFileSync('ip', ['link', 'del', 'dev', victim.name]);
    myLinks.delete(victim.name);
    expect(labLeftovers(lab)).toEqual([]);
  });

  it('not root (uid 65534): `up` prints one line naming root and exits 1, creating nothing; `validate` and `plan` work', () => {
    const lab = newLab('user');
    const [o] = freeOctets(1, rand);
    const file = copyExample('bridge', lab, [['10.10.', `10.${o}.`]]);
    const plan = planOf(loadModel(file));
    const r = netlab(['up', file], { asUser: 65534 });
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trim().split('\n');
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/\broot\b/);
    expect(labLeftovers(lab)).toEqual([]);

    const v = netlab(['validate', file], { asUser: 65534 });
    expect(v.status, v.stderr).toBe(0);
    expect(v.stdout).toContain(`lab ${lab}`);
    const p = netlab(['plan', file], { asUser: 65534 });
    expect(p.status, p.stderr).toBe(0);
    expect(p.stdout).toContain(`lab ${lab} (id ${plan.id}`);
    const bridge = plan.steps.find((s): s is Extract<PlanStep, { op: 'bridge.add' }> => s.op === 'bridge.add')!;
    expect(p.stdout).toContain(`bridge.add      [host] ${bridge.name}`);
    expect(nftTableNames()).not.toContain(`ip netlab_${plan.id}`);
  });
});
