// Overlay (VXLAN) networks on the real kernel, through the real CLI, as root: a copy of
// labs/overlay.yml with its simulated hosts (reach and isolation, VXLAN traffic really on the
// underlay, the MTU, an underlay cable pulled and plugged back), a node on an overlay and on its
// host's own bridge at once, and the same lab split over two "machines" (`up --as`): two
// network namespaces wired together play them, and each half is built from inside its own.
// What was built is read back with the system's own tools (ip, bridge, /proc).
//
// Safety on a shared machine: lab names are t<run>-..., subnets are 10.X blocks nothing in
// the root namespace uses, the two "machines" are namespaces named ovt<run>m1/m2 that this
// file makes and removes, and each half keeps its state in its own NETLAB_STATE_DIR
// (/run/netlab-t<run>-m1, -m2), as two machines would in their own /run. Nothing but `down`
// of this file's labs is used to clean up on the normal path.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { labGroup, labId } from '../../topology/names.js';
import type { Lab } from '../../topology/types.js';
import { buildPlan } from '../../controller/plan.js';
import { addLeakProbe, cgroupProbe, containerProcessProbe, expectNoLeaks, snapshot, type Snapshot } from '../helpers/leaks.js';
import { CLI, REPO, forceRemoveLab, freeOctets, isLabNetns, labLeftovers, link, links, netlab, netlabOk, netnsList, ping, planDiff, processesInCgroup, prng, settleLeftovers, type CliResult, type IpLink, assertBuildFresh, loadModel, addrOf, processesWithArg } from '../helpers/netlab.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('test/integration/overlay.test.ts skipped: it needs root (it builds labs in the real kernel)');

const RUN = randomBytes(3).toString('hex');
const SEED = Number(process.env.NETLAB_TEST_SEED ?? 0x6f766c79);
const rand = prng(SEED ^ parseInt(RUN, 16));
const timings: Record<string, string> = {};

interface Outcome { label: string; observed: 'reach' | 'fail' | null; pass: boolean; detail: string }
interface CheckJson { outcomes: Outcome[]; passed: number; failed: number }
interface TunnelJson { network: string; device: string; present: boolean; up: boolean; vni: number; local: string; port: number; learning: boolean; remotes: { address: string; host: string | null; macs: number }[] }
interface HostJson { name: string; address: string; role: string; netns: string | null; present: boolean | null; underlayUp: boolean | null; tunnels: TunnelJson[] }
interface StatusJson { lab: string; status: string; as: string | null; nodes: { name: string; container: { state: string } }[]; hosts: HostJson[] }
interface Stats { rx: { packets: number }; tx: { packets: number } }

/** Packet counters of a link (`ip -s -j link show`). */
function counters(ns: string | null, dev: string): { rx: number; tx: number } {
  const out = execFileSync('ip', [...(ns ? ['-n', ns] : []), '-s', '-j', 'link', 'show', 'dev', dev], { encoding: 'utf8', maxBuffer: 1 << 28 });
  const s = (JSON.parse(out) as { stats64: Stats }[])[0].stats64;
  return { rx: s.rx.packets, tx: s.tx.packets };
}

/** `bridge -j fdb show dev DEV`: MAC and remote address of each entry. */
function fdb(ns: string | null, dev: string): { mac: string; dst?: string; state?: string }[] {
  const out = execFileSync('bridge', [...(ns ? ['-n', ns] : []), '-j', 'fdb', 'show', 'dev', dev], { encoding: 'utf8', maxBuffer: 1 << 28 });
  return JSON.parse(out || '[]') as { mac: string; dst?: string; state?: string }[];
}

/** `ip -j neigh show dev DEV`. */
function neigh(ns: string | null, dev: string): { dst: string; lladdr: string; state: string[] }[] {
  const out = execFileSync('ip', [...(ns ? ['-n', ns] : []), '-j', 'neigh', 'show', 'dev', dev], { encoding: 'utf8', maxBuffer: 1 << 28 });
  return JSON.parse(out || '[]') as { dst: string; lladdr: string; state: string[] }[];
}

/** Host's iputils ping inside a node's netns, with DF set (busybox ping has no -M). */
function dfPing(ns: string, addr: string, size: number): { status: number | null; out: string } {
  const r = spawnSync('ip', ['netns', 'exec', ns, 'ping', '-n', '-M', 'do', '-s', String(size), '-c1', '-W1', addr], { encoding: 'utf8', maxBuffer: 1 << 28, timeout: 5000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** A burst of pings (iputils, 20 at 10 ms) from a node's netns; returns how many got replies. */
function burst(ns: string, addr: string, count = 20): number {
  const r = spawnSync('ip', ['netns', 'exec', ns, 'ping', '-n', '-q', '-c', String(count), '-i', '0.01', '-W', '1', addr], { encoding: 'utf8', maxBuffer: 1 << 28, timeout: 15_000 });
  const m = /(\d+) received/.exec(r.stdout);
  return m ? Number(m[1]) : 0;
}

function outcome(r: CheckJson, label: string): Outcome {
  const o = r.outcomes.find((x) => x.label === label);
  if (!o) throw new Error(`no check "${label}" in ${r.outcomes.map((x) => x.label).join(', ')}`);
  return o;
}

describe.skipIf(!isRoot)('overlay (VXLAN) networks on the real kernel: simulated hosts and real machines (--as)', () => {
  let tmp = '';
  let before: Snapshot;
  const myLabs = new Set<string>();
  const testLabs = new Set<string>();
  /** The namespaces playing machines (two-machine test), removed in afterEach. */
  const machines = new Map<string, string>(); // netns -> its NETLAB_STATE_DIR
  let counter = 0;

  function newLab(what: string): string {
    const name = `t${RUN}-${what}${counter++}`;
    myLabs.add(name);
    testLabs.add(name);
    return name;
  }

  function copyOverlay(lab: string, subs: [string, string][]): string {
    let text = fs.readFileSync(path.join(REPO, 'labs', 'overlay.yml'), 'utf8');
    if (!/^name: overlay\s*$/m.test(text)) throw new Error('labs/overlay.yml has no "name: overlay" line');
    text = text.replace(/^name: overlay\s*$/m, `name: ${lab}`);
    for (const [from, to] of subs) {
      if (!text.includes(from)) throw new Error(`labs/overlay.yml has no "${from}" to replace`);
      text = text.split(from).join(to);
    }
    const file = path.join(tmp, `${lab}.yml`);
    fs.writeFileSync(file, text, { mode: 0o644 });
    return file;
  }

  const addrOf = (m: Lab, node: string) => m.nodes.find((n) => n.name === node)!.interfaces[0].ipv4!.address;
  const nsOf = (lab: string, node: string) => `netlab.${lab}.${node}`;
  const hostNs = (lab: string, host: string) => `netlab.${lab}+${host}`;

  function checks(lab: string, extra: string[] = []): CheckJson {
    const r = netlab(['check', lab, '--json', ...extra]);
    if (r.status !== 0 && r.status !== 1) throw new Error(`netlab check ${lab} exited ${r.status}: ${r.stderr}`);
    return JSON.parse(r.stdout) as CheckJson;
  }

  /** netlab run from inside a namespace playing a machine, with that machine's state dir. */
  function onMachine(machine: string, args: string[], o: { ipNetnsExec?: boolean } = {}): CliResult {
    const stateDir = machines.get(machine)!;
    const [cmd, argv] = o.ipNetnsExec
      ? ['ip', ['netns', 'exec', machine, process.execPath, CLI, ...args]]
      : ['nsenter', [`--net=/run/netns/${machine}`, process.execPath, CLI, ...args]];
    const t0 = performance.now();
    const r = spawnSync(cmd, argv, { cwd: REPO, encoding: 'utf8', maxBuffer: 1 << 28, timeout: 60_000, env: { ...process.env, NO_COLOR: '1', NETLAB_STATE_DIR: stateDir } });
    if (r.error) throw r.error;
    return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, ms: performance.now() - t0 };
  }
  function onMachineOk(machine: string, args: string[]): CliResult {
    const r = onMachine(machine, args);
    if (r.status !== 0) throw new Error(`[${machine}] netlab ${args.join(' ')} exited with ${r.status ?? r.signal}:\n${r.stdout}${r.stderr}`);
    return r;
  }

  /** What a half of a lab left in its machine: links of the lab in the machine's namespace,
   *  its state dir, supervisors, container processes of its nodes, node namespaces. */
  function halfLeftovers(lab: string, machine: string, nodes: string[]): string[] {
    const out: string[] = [];
    const group = String(labGroup(lab));
    // A machine namespace that is gone holds no links; one that is there but cannot be read is
    // a failure, never "nothing left".
    let ls: IpLink[] = [];
    if (netnsList().includes(machine)) {
      try { ls = links(machine, false); } catch (e) { out.push(`cannot read the links in ${machine}: ${(e as Error).message.split('\n')[0]}`); }
    }
    for (const l of ls) if (l.ifname.startsWith(`nl${labId(lab)}`) || l.group === group) out.push(`link ${l.ifname} in ${machine}`);
    const dir = path.join(machines.get(machine)!, lab);
    if (fs.existsSync(dir)) out.push(`state dir ${dir}`);
    for (const p of processesWithArg(`${machines.get(machine)!}/`)) out.push(`process ${p.pid} ${p.cmd}`);
    for (const n of nodes) {
      if (netnsList().includes(nsOf(lab, n))) out.push(`netns ${nsOf(lab, n)}`);
      for (const p of processesInCgroup(`/netlab/${lab}/${n}`)) out.push(`process ${p.pid} (${p.comm}) of node ${n}`);
    }
    return out;
  }

  beforeAll(() => {
    assertBuildFresh();
    addLeakProbe(cgroupProbe((d) => d.includes(`/netlab/t${RUN}-`)));
    addLeakProbe(containerProcessProbe((g) => g.includes(`/netlab/t${RUN}-`)));
    before = snapshot();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-ovl-'));
    fs.chmodSync(tmp, 0o755);
    fs.mkdirSync(path.join(tmp, 'www'), { mode: 0o755 });
    fs.writeFileSync(path.join(tmp, 'www', 'index.html'), `hello from netlab overlay test ${RUN}\n`, { mode: 0o644 });
    console.log(`overlay.test.ts: run ${RUN}, topologies in ${tmp}`);
  });

  async function removeMachines(): Promise<string[]> {
    const problems: string[] = [];
    for (const [m, stateDir] of machines) {
      for (const lab of testLabs) {
        if (fs.existsSync(path.join(stateDir, lab))) {
          const r = onMachine(m, ['down', lab]);
          if (r.status !== 0) problems.push(`[${m}] netlab down ${lab}: ${r.stderr.trim()}`);
        }
      }
      spawnSync('ip', ['netns', 'del', m], { stdio: 'ignore' });
      fs.rmSync(stateDir, { recursive: true, force: true });
    }
    machines.clear();
    return problems;
  }

  afterEach(async () => {
    const problems = await removeMachines();
    for (const lab of testLabs) {
      if (labLeftovers(lab).length > 0) {
        const r = netlab(['down', lab]);
        if (r.status !== 0) problems.push(`netlab down ${lab}: ${r.stderr.trim()}`);
      }
      const left = await settleLeftovers(lab);
      if (left.length) problems.push(`${lab}: ${left.join(', ')}`);
    }
    testLabs.clear();
    expect(problems, 'labs of this test left objects behind').toEqual([]);
  });

  afterAll(async () => {
    await removeMachines();
    for (const lab of myLabs) {
      if (labLeftovers(lab).length === 0) continue;
      console.warn(`removing what is left of ${lab} without netlab: ${(await forceRemoveLab(lab)).join('; ')}`);
    }
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    console.log(`overlay.test.ts timings:\n${Object.entries(timings).map(([k, v]) => `  ${k}: ${v}`).join('\n')}`);
    const ids = [...myLabs].map((lab) => labId(lab));
    const ours = (probe: string, item: string) => probe === 'child processes'
      || item.includes(`netlab.t${RUN}-`) || item.includes(`/netlab/t${RUN}-`) || item.includes(`ovt${RUN}`)
      || ids.some((id) => item.startsWith(`nl${id}`) || item === `ip netlab_${id}`);
    await expectNoLeaks(before, { only: ours });
  });

  // ------------------------------------------------------------------ simulated hosts

  /** Brings up a copy of labs/overlay.yml on fresh subnets; returns names and the model. */
  function upOverlayCopy(what: string): { lab: string; m: Lab; file: string } {
    const lab = newLab(what);
    const [o1, o2] = freeOctets(2, rand);
    const file = copyOverlay(lab, [['10.31.0.', `10.${o1}.0.`], ['10.32.0.', `10.${o2}.0.`]]);
    const m = loadModel(file);
    const up = netlabOk(['up', file]);
    expect(up.stdout).toContain(`lab ${lab} is up: 4 nodes, 2 networks`);
    timings[`${what}: up (CLI process, wall)`] = `${Math.round(up.ms)} ms`;
    return { lab, m, file };
  }

  it('overlay.yml copy: the kernel holds the plan; ping, http and dns across simulated hosts; fdb and neigh entries come from the model (no flooding); status shows hosts and tunnels', () => {
    const { lab, m } = upOverlayCopy('ov');
    expect(planDiff(buildPlan(m))).toEqual([]);

    const r = checks(lab);
    expect(r.outcomes.filter((o) => !o.pass), JSON.stringify(r.outcomes, null, 1)).toEqual([]);
    for (const l of ['ping a -> b', 'ping b -> a', 'ping c -> d', 'ping d -> c', 'http a -> http://b/', 'dns a resolves b']) {
      expect(outcome(r, l).observed, l).toBe('reach');
    }
    expect(outcome(r, 'http a -> http://b/').detail).toContain('hello from netlab');

    // Forwarding entries, as the kernel has them: each remote node's MAC to the other host's
    // underlay address, its ARP answer permanent; no all-zero (flood) entry anywhere.
    const [h1, h2] = ['h1', 'h2'].map((h) => m.hosts.find((x) => x.name === h)!);
    for (const net of m.networks) {
      for (const [here, there] of [[h1, h2], [h2, h1]]) {
        const remote = m.nodes.find((n) => n.host === there.name && n.interfaces[0].network === net.name)!;
        const f = fdb(here.netns, net.vxlanName!);
        expect(f.filter((e) => e.dst).map((e) => `${e.mac} ${e.dst}`), `${net.name} on ${here.name}`).toEqual([`${remote.interfaces[0].mac} ${there.address}`]);
        expect(f.some((e) => e.mac === '00:00:00:00:00:00'), `${net.name} on ${here.name}: no flood entry`).toBe(false);
        const n = neigh(here.netns, net.vxlanName!);
        expect(n.map((e) => `${e.dst} ${e.lladdr} ${e.state.join(',')}`)).toEqual([`${remote.interfaces[0].ipv4!.address} ${remote.interfaces[0].mac} PERMANENT`]);
        const vx = link(here.netns, net.vxlanName!) as IpLink & { linkinfo: { info_data: { id: number; local: string; port: number; learning: boolean; proxy: boolean } } };
        expect(vx.linkinfo.info_data).toMatchObject({ id: net.vni, local: here.address, port: 4789, learning: false, proxy: true });
        expect(vx.mtu).toBe(1450);
      }
    }

    const st = (JSON.parse(netlabOk(['status', lab, '--json']).stdout) as StatusJson[])[0];
    expect(st.as).toBeNull();
    expect(st.hosts.map((h) => [h.name, h.address, h.role, h.netns, h.present, h.underlayUp])).toEqual([
      ['h1', h1.address, 'simulated', hostNs(lab, 'h1'), true, true],
      ['h2', h2.address, 'simulated', hostNs(lab, 'h2'), true, true],
    ]);
    const t = st.hosts[0].tunnels.find((x) => x.network === 'ov1')!;
    expect(t).toMatchObject({ present: true, up: true, vni: m.networks[0].vni, local: h1.address, port: 4789, learning: false });
    expect(t.remotes).toEqual([{ address: h2.address, host: 'h2', macs: 1 }]);
    const text = netlabOk(['status', lab]).stdout;
    expect(text).toMatch(new RegExp(`^ {2}@h1 +${h1.address.replace(/\./g, '\\.')} simulated \\(netns ${hostNs(lab, 'h1').replace(/[.+]/g, '\\$&')}\\), underlay up$`, 'm'));
    expect(text).toMatch(new RegExp(`^ {4}ov1: vxlan ${t.device} vni ${t.vni} local ${h1.address.replace(/\./g, '\\.')} port 4789 -> h2 ${h2.address.replace(/\./g, '\\.')} \\(1 MAC\\)$`, 'm'));
  });

  it('isolation: the two overlays do not reach each other, across hosts or on the same host, while each one works', () => {
    const { lab, m } = upOverlayCopy('iso');
    const r = checks(lab);
    expect(outcome(r, 'ping a -> d').observed).toBe('fail');
    expect(outcome(r, 'ping a -> c').observed).toBe('fail');
    expect(outcome(r, 'tcp c -> b:80').observed).toBe('fail');
    // Even with a route to the other overlay's subnet, nothing carries it: there is no router.
    const d = addrOf(m, 'd');
    execFileSync('ip', ['-n', nsOf(lab, 'a'), 'route', 'add', `${d}/32`, 'dev', 'eth0']);
    expect(ping(nsOf(lab, 'a'), d, false), 'a -> d with an on-link route').toBe(false);
    expect(ping(nsOf(lab, 'a'), addrOf(m, 'b'), true), 'a -> b').toBe(true);
    expect(ping(nsOf(lab, 'c'), d, true), 'c -> d').toBe(true);
  });

  it('traffic crosses the underlay as VXLAN: the VXLAN devices\' and the underlay cables\' counters grow by at least the ping burst', () => {
    const { lab, m } = upOverlayCopy('wire');
    const [h1, h2] = ['h1', 'h2'].map((h) => m.hosts.find((x) => x.name === h)!);
    const ov1 = m.networks.find((n) => n.name === 'ov1')!;
    const ov2 = m.networks.find((n) => n.name === 'ov2')!;
    expect(ping(nsOf(lab, 'a'), addrOf(m, 'b'), true)).toBe(true); // warm
    const before = {
      vx1: counters(h1.netns, ov1.vxlanName!), vx2: counters(h2.netns, ov1.vxlanName!),
      u1: counters(null, h1.underlaySide), u2: counters(null, h2.underlaySide), other: counters(h1.netns, ov2.vxlanName!),
    };
    const n = 20;
    expect(burst(nsOf(lab, 'a'), addrOf(m, 'b'), n)).toBe(n);
    const after = {
      vx1: counters(h1.netns, ov1.vxlanName!), vx2: counters(h2.netns, ov1.vxlanName!),
      u1: counters(null, h1.underlaySide), u2: counters(null, h2.underlaySide), other: counters(h1.netns, ov2.vxlanName!),
    };
    // a -> b leaves h1 by its VXLAN (tx) and arrives on h2's (rx); replies the other way.
    expect(after.vx1.tx - before.vx1.tx).toBeGreaterThanOrEqual(n);
    expect(after.vx1.rx - before.vx1.rx).toBeGreaterThanOrEqual(n);
    expect(after.vx2.rx - before.vx2.rx).toBeGreaterThanOrEqual(n);
    expect(after.vx2.tx - before.vx2.tx).toBeGreaterThanOrEqual(n);
    // The underlay cables (host-side ends on the underlay bridge) carried the encapsulated frames.
    expect(after.u1.rx - before.u1.rx, 'h1 underlay: frames from h1').toBeGreaterThanOrEqual(n);
    expect(after.u2.tx - before.u2.tx, 'h2 underlay: frames to h2').toBeGreaterThanOrEqual(n);
    // The other overlay's tunnel was not used.
    expect(after.other.tx - before.other.tx).toBeLessThan(3);
    // (Counters need no capture tool; the tunnel's UDP port is the device's setting.)
    expect((link(h1.netns, ov1.vxlanName!) as IpLink & { linkinfo: { info_data: { port: number } } }).linkinfo.info_data.port).toBe(4789);
  });

  it('MTU 1450: from a node, `ping -M do -s 1422` crosses to the other host, `-s 1423` fails cleanly (message too long)', () => {
    const { lab, m } = upOverlayCopy('mtu');
    const b = addrOf(m, 'b');
    expect(link(nsOf(lab, 'a'), 'eth0')!.mtu).toBe(1450);
    let ok = dfPing(nsOf(lab, 'a'), b, 1422);
    for (let i = 0; i < 4 && ok.status !== 0; i++) ok = dfPing(nsOf(lab, 'a'), b, 1422);
    expect(ok.status, ok.out).toBe(0);
    expect(ok.out).toMatch(/1 received/);
    const big = dfPing(nsOf(lab, 'a'), b, 1423);
    expect(big.status, big.out).not.toBe(0);
    expect(big.out).toMatch(/message too long|mtu=1450|0 received/i);
  });

  it('an underlay cable pulled (`netlab link LAB @h1 down`): cross-host checks fail and status shows it; plugged back, they pass again', () => {
    const { lab, m } = upOverlayCopy('cut');
    const h1 = m.hosts.find((x) => x.name === 'h1')!;
    expect(netlabOk(['link', lab, '@h1', 'down']).stdout).toBe(`${lab} @h1 down\n`);
    expect(link(null, h1.underlaySide)!.flags, 'host-side underlay veth').not.toContain('UP');
    expect(link(h1.netns, 'eth0')!.flags, 'underlay interface in h1').not.toContain('UP');
    const down = checks(lab, ['--ping', 'a:b', '--ping', 'd:c', '--http', 'a:http://b/']);
    for (const o of down.outcomes) expect(o.observed, o.label).toBe('fail');
    const st = (JSON.parse(netlabOk(['status', lab, '--json']).stdout) as StatusJson[])[0];
    expect(st.hosts.map((h) => h.underlayUp)).toEqual([false, true]);

    expect(netlabOk(['link', lab, '@h1', 'up']).stdout).toBe(`${lab} @h1 up\n`);
    expect(link(null, h1.underlaySide)!.flags).toContain('UP');
    const up = checks(lab);
    expect(up.outcomes.filter((o) => !o.pass), JSON.stringify(up.outcomes, null, 1)).toEqual([]);
    const bad = netlab(['link', lab, '@h9', 'down']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toBe(`netlab: lab ${lab} has no host h9 (hosts: h1, h2)\n`);
  });

  it('a node on an overlay and on its host\'s bridge network at once: the bridge lives in the host\'s namespace; reach on both, nothing between them', () => {
    const lab = newLab('mix');
    const [o1, o2] = freeOctets(2, rand);
    const file = path.join(tmp, `${lab}.yml`);
    fs.writeFileSync(file, [
      `name: ${lab}`,
      'hosts: { h1: {}, h2: {} }',
      'networks:',
      `  ov: { driver: overlay, subnet: 10.${o1}.0.0/24 }`,
      `  lan: { subnet: 10.${o2}.0.0/24 }`,
      'nodes:',
      '  a: { host: h1, networks: [ov, lan] }',
      '  e: { host: h1, networks: [lan] }',
      '  b: { host: h2, networks: [ov] }',
      'checks:',
      '  - ping: { from: a, to: b }',
      '  - ping: { from: a, to: e }',
      '  - ping: { from: e, to: a }',
      '  - ping: { from: e, to: b, expect: fail }',
      '',
    ].join('\n'));
    const m = loadModel(file);
    netlabOk(['up', file]);
    const lan = m.networks.find((n) => n.name === 'lan')!;
    expect(link(hostNs(lab, 'h1'), lan.bridgeName!)?.linkinfo?.info_kind).toBe('bridge');
    expect(link(null, lan.bridgeName!), 'not in the root namespace').toBeNull();
    expect(link(hostNs(lab, 'h2'), lan.bridgeName!), 'not on h2').toBeNull();
    expect(planDiff(buildPlan(m))).toEqual([]);
    const r = checks(lab);
    expect(r.outcomes.filter((o) => !o.pass), JSON.stringify(r.outcomes, null, 1)).toEqual([]);
    expect(outcome(r, 'ping e -> b').observed).toBe('fail');
  });

  // ------------------------------------------------------------------ two machines (--as)

  it('two machines: two namespaces on one wire play h1 and h2; `up --as` in each builds its half; ping and http cross; `down --as h1` leaves h2 alone; nothing is left', () => {
    const lab = newLab('two');
    const [ow, o1, o2] = freeOctets(3, rand);
    const [m1, m2] = [`ovt${RUN}m1`, `ovt${RUN}m2`];
    machines.set(m1, `/run/netlab-t${RUN}-m1`);
    machines.set(m2, `/run/netlab-t${RUN}-m2`);
    const [a1, a2] = [`10.${ow}.0.10`, `10.${ow}.0.11`];
    // The two machines and their wire (nothing in the root namespace).
    for (const mm of [m1, m2]) execFileSync('ip', ['netns', 'add', mm]);
    execFileSync('ip', ['link', 'add', `ovt${RUN}a`, 'netns', m1, 'type', 'veth', 'peer', 'name', `ovt${RUN}b`, 'netns', m2]);
    for (const [mm, dev, addr] of [[m1, `ovt${RUN}a`, a1], [m2, `ovt${RUN}b`, a2]]) {
      execFileSync('ip', ['-n', mm, 'addr', 'add', `${addr}/24`, 'dev', dev]);
      execFileSync('ip', ['-n', mm, 'link', 'set', dev, 'up']);
      execFileSync('ip', ['-n', mm, 'link', 'set', 'lo', 'up']);
    }
    const file = copyOverlay(lab, [
      ['10.31.0.', `10.${o1}.0.`], ['10.32.0.', `10.${o2}.0.`],
      ['  h1: {}', `  h1: { address: ${a1} }`], ['  h2: {}', `  h2: { address: ${a2} }`],
    ]);
    const m = loadModel(file);

    // Under `ip netns exec` the namespaces netlab makes would be lost: it refuses, making nothing.
    const refused = onMachine(m1, ['up', file, '--as', 'h1'], { ipNetnsExec: true });
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/^netlab: netlab runs in a private mount namespace .*ip netns exec.*nsenter --net=/);
    expect(netnsList().filter((n) => isLabNetns(lab, n))).toEqual([]);
    // The wrong machine for a host: its address is not there.
    const wrong = onMachine(m2, ['up', file, '--as', 'h1']);
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toContain(`host h1 has address ${a1} in the lab, but this machine has no such address`);

    const up1 = onMachineOk(m1, ['up', file, '--as', 'h1']);
    expect(up1.stdout).toContain(`lab ${lab} is up as host h1: 2 of 4 nodes`);
    const up2 = onMachineOk(m2, ['up', file, '--as', 'h2']);
    expect(up2.stdout).toContain(`lab ${lab} is up as host h2: 2 of 4 nodes`);
    timings['two machines: up --as h1 (CLI, wall)'] = `${Math.round(up1.ms)} ms`;

    // Each machine's root namespace holds its half: no underlay bridge, no host namespace; the
    // overlay bridges, VXLAN devices (source = the machine's address) and its nodes' ports.
    expect(netnsList().filter((n) => isLabNetns(lab, n)).sort()).toEqual(['a', 'b', 'c', 'd'].map((n) => nsOf(lab, n)));
    for (const [mm, addr, other] of [[m1, a1, a2], [m2, a2, a1]]) {
      const mine = links(mm).filter((l) => l.group === String(labGroup(lab)));
      expect(mine.map((l) => l.linkinfo?.info_kind).sort(), mm).toEqual(['bridge', 'bridge', 'veth', 'veth', 'vxlan', 'vxlan']);
      for (const net of m.networks) {
        const vx = link(mm, net.vxlanName!) as IpLink & { linkinfo: { info_data: { id: number; local: string; learning: boolean } } };
        expect(vx.linkinfo.info_data).toMatchObject({ id: net.vni, local: addr, learning: false });
        expect(fdb(mm, net.vxlanName!).filter((e) => e.dst).map((e) => e.dst)).toEqual([other]);
      }
      expect(links(null, false).some((l) => l.group === String(labGroup(lab))), 'nothing in the real root namespace').toBe(false);
    }

    // Traffic across the wire, both ways, and the overlays stay apart.
    const wire = () => counters(m1, `ovt${RUN}a`);
    const w0 = wire();
    expect(burst(nsOf(lab, 'a'), addrOf(m, 'b'), 20)).toBe(20);
    const w1 = wire();
    expect(w1.tx - w0.tx, 'h1 -> h2 frames on the wire').toBeGreaterThanOrEqual(20);
    expect(w1.rx - w0.rx, 'h2 -> h1 frames on the wire').toBeGreaterThanOrEqual(20);
    const r1 = JSON.parse(onMachine(m1, ['check', lab, '--json']).stdout) as CheckJson;
    expect(r1.outcomes.filter((o) => !o.pass), JSON.stringify(r1.outcomes, null, 1)).toEqual([]);
    expect(outcome(r1, 'ping a -> b').observed).toBe('reach');
    expect(outcome(r1, 'http a -> http://b/').observed).toBe('reach');
    expect(outcome(r1, 'ping a -> d').observed).toBe('fail');
    expect(r1.outcomes.some((o) => o.label.startsWith('ping b ')), 'checks from h2\'s nodes are not run on h1').toBe(false);
    const r2 = JSON.parse(onMachine(m2, ['check', lab, '--json', '--ping', 'b:a', '--ping', 'd:c', '--http', 'd:http://b/']).stdout) as CheckJson;
    expect(r2.outcomes.map((o) => `${o.label}: ${o.observed}`)).toEqual(['ping b -> a: reach', 'ping d -> c: reach', 'http d -> http://b/: fail']);
    expect(r2.failed).toBe(0);

    // status on h1: its nodes, itself as "this machine" with tunnels to h2, h2 elsewhere.
    const st = (JSON.parse(onMachineOk(m1, ['status', lab, '--json']).stdout) as StatusJson[])[0];
    expect(st).toMatchObject({ lab, status: 'up', as: 'h1' });
    expect(st.nodes.map((n) => `${n.name} ${n.container.state}`)).toEqual(['a running', 'c running']);
    expect(st.hosts.map((h) => `${h.name} ${h.role}`)).toEqual(['h1 this machine', 'h2 other machine']);
    expect(st.hosts[0].tunnels.map((t) => `${t.network} ${t.vni} ${t.local} -> ${t.remotes.map((x) => `${x.host} ${x.address}`).join(',')}`))
      .toEqual(m.networks.map((n) => `${n.name} ${n.vni} ${a1} -> h2 ${a2}`));

    // down --as h1: only h1's part goes, although /run/netns is shared with h2's.
    const d1 = onMachineOk(m1, ['down', lab, '--as', 'h1']);
    expect(d1.stdout).toMatch(new RegExp(`^lab ${lab} \\(host h1\\) is down: removed 2 namespaces, its links`));
    expect(halfLeftovers(lab, m1, ['a', 'c'])).toEqual([]);
    expect(netnsList().filter((n) => isLabNetns(lab, n)).sort()).toEqual([nsOf(lab, 'b'), nsOf(lab, 'd')]);
    expect(processesInCgroup(`/netlab/${lab}/b`).length, 'b still runs').toBeGreaterThan(0);
    expect(ping(nsOf(lab, 'b'), addrOf(m, 'a'), false), 'b -> a once h1 is gone').toBe(false);
    // h2's own down: `down LAB` takes the --as from its state; a wrong --as is refused first.
    const wrongDown = onMachine(m2, ['down', lab, '--as', 'h1']);
    expect(wrongDown.status).toBe(1);
    expect(wrongDown.stderr).toContain(`lab ${lab} runs here as host h2, not h1`);
    expect(onMachineOk(m2, ['down', lab]).stdout).toMatch(new RegExp(`^lab ${lab} \\(host h2\\) is down: removed 2 namespaces`));
    expect(halfLeftovers(lab, m2, ['b', 'd'])).toEqual([]);
    // Only the wire is left in each machine.
    expect(links(m1, false).map((l) => l.ifname).sort()).toEqual(['lo', `ovt${RUN}a`]);
    expect(links(m2, false).map((l) => l.ifname).sort()).toEqual(['lo', `ovt${RUN}b`]);
  });
});
