// `netlab stats` and `resources.cpuset` through the real CLI, as root, on the shape of
// labs/cgroups.yml: two busy loops pinned to CPU 0 by cpuset with cpu_shares 1024 and 512, and an
// idle node with a memory limit, on one internal network. What must hold:
//  - cpuset pins the loops to CPU 0 (their Cpus_allowed_list and cgroup say so);
//  - `stats LAB --json` has the documented shape; memory > 0, pids >= 1, the limit where set;
//  - the loops' CPU time grows 2:1 (1.6-2.5) over ~2.5 s, measured from `stats`' own cumulative
//    usage_seconds, and still does with a third busy loop outside the lab on CPU 0 (shares divide
//    whatever CPU 0 gives the lab's group, so load from elsewhere does not change the split);
//  - rx/tx bytes of the interfaces grow after a ping between two nodes;
//  - `stats --watch --json` prints a frame a second and exits 0 on Ctrl-C (SIGINT);
//  - `up` refuses a cpuset naming a CPU that is not online, at file:line:col, building nothing.
//
// Safety on a shared machine: the lab is named st<run>, its network is internal (gateway: false)
// in a 10.X.0.0/16 block nothing routes (freeOctets), only `down LAB` of this lab cleans up,
// and afterAll checks nothing is left. The busy loops run for about 10 s.
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labId } from '../../topology/names.js';
import type { LabStats, NodeStats } from '../../controller/stats.js';
import { addLeakProbe, cgroupProbe, containerProcessProbe, expectNoLeaks, snapshot, type Snapshot } from '../helpers/leaks.js';
import { addrOf, assertBuildFresh, downAndCheck, forceRemoveLab, freeOctets, labLeftovers, loadModel, netlab, netlabOk, netlabSpawn, prng, REPO, sleep, waitExit } from '../helpers/netlab.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('test/integration/stats.test.ts skipped: it needs root (it builds a lab in the real kernel and reads its cgroups)');

const RUN = randomBytes(3).toString('hex');
const rand = prng(Number(process.env.NETLAB_TEST_SEED ?? 0x73746174));

describe.skipIf(!isRoot)('netlab stats and resources.cpuset', () => {
  const lab = `st${RUN}`;
  let tmp = '';
  let file = '';
  let heavyAddr = '';
  let before: Snapshot;

  function parse<T>(stdout: string, stderr = ''): T {
    try { return JSON.parse(stdout) as T; } catch { throw new Error(`not JSON:\n${stdout}${stderr}`); }
  }
  const stats = (): LabStats => {
    const r = netlab(['stats', lab, '--json']);
    expect(r.status, r.stderr).toBe(0);
    return parse<LabStats>(r.stdout, r.stderr);
  };
  const byName = (s: LabStats, name: string): NodeStats => {
    const n = s.nodes.find((x) => x.name === name);
    expect(n, `node ${name} in ${JSON.stringify(s)}`).toBeDefined();
    return n!;
  };
  const pidOf = (node: string) => Number(fs.readFileSync(`/run/netlab/${lab}/containers/${node}/pid`, 'utf8'));

  /** heavy's and light's CPU seconds over `ms`, from two `stats` readings, and the wall time. */
  async function cpuSplit(ms: number): Promise<{ heavy: number; light: number; wall: number }> {
    const a = stats();
    const t0 = performance.now();
    await sleep(ms);
    const b = stats();
    const wall = (performance.now() - t0) / 1000;
    const d = (n: string) => byName(b, n).cpu.usage_seconds! - byName(a, n).cpu.usage_seconds!;
    return { heavy: d('heavy'), light: d('light'), wall };
  }

  beforeAll(() => {
    assertBuildFresh();
    addLeakProbe(cgroupProbe((d) => d.includes(`/netlab/${lab}/`)));
    addLeakProbe(containerProcessProbe((g) => g.includes(`/netlab/${lab}/`)));
    before = snapshot();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-st-'));
    const [o] = freeOctets(1, rand);
    file = path.join(tmp, `${lab}.yml`);
    // labs/cgroups.yml with this run's name and subnet.
    const shipped = fs.readFileSync(path.join(REPO, 'labs/cgroups.yml'), 'utf8');
    const text = shipped.replace(/^name: cgroups$/m, `name: ${lab}`).replace(/^( {4}gateway: false.*)$/m, `$1\n    subnet: 10.${o}.0.0/24`);
    expect(text).toContain(`name: ${lab}`);
    expect(text).toContain(`subnet: 10.${o}.0.0/24`);
    fs.writeFileSync(file, text, { mode: 0o644 });
    heavyAddr = addrOf(loadModel(file), 'heavy');
    expect(heavyAddr.startsWith(`10.${o}.0.`)).toBe(true);
    console.log(`stats.test.ts: lab ${lab}, topology ${file}`);
  });

  afterAll(async () => {
    let left = await downAndCheck(lab);
    if (labLeftovers(lab).length > 0) {
      console.warn(`removing what is left of ${lab} without netlab: ${(await forceRemoveLab(lab)).join('; ')}`);
      left = [...left, ...labLeftovers(lab)];
    }
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    expect(left, 'the lab left objects behind').toEqual([]);
    const id = labId(lab);
    await expectNoLeaks(before, {
      only: (probe, item) => probe === 'child processes' || item.includes(`netlab.${lab}.`) || item.includes(`/netlab/${lab}/`) || item.startsWith(`nl${id}`) || item === `ip netlab_${id}`,
    });
  });

  it('up refuses a cpuset naming a CPU that is not online, at its file:line:col, and builds nothing', () => {
    const online = fs.readFileSync('/sys/devices/system/cpu/online', 'utf8').trim();
    const last = Math.max(...online.split(',').map((p) => Number(p.split('-').pop())));
    const bad = path.join(tmp, `${lab}-bad.yml`);
    fs.writeFileSync(bad, `name: ${lab}\nnodes:\n  a: { network_mode: none, resources: { cpuset: "${last + 1}" } }\n`);
    expect(netlab(['validate', bad]).status, 'validate does not judge the machine').toBe(0);
    const r = netlab(['up', bad]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`${bad}:3:49: nodes.a.resources.cpuset: cpuset "${last + 1}" names CPU ${last + 1}, which is not online on this machine (online: ${online})\n`);
    expect(labLeftovers(lab)).toEqual([]);
  });

  it('up pins the loops to CPU 0 (cpuset) and `stats LAB --json` reports every node in the documented shape', () => {
    netlabOk(['up', file]);
    for (const n of ['heavy', 'light']) {
      const status = fs.readFileSync(`/proc/${pidOf(n)}/status`, 'utf8');
      expect(/^Cpus_allowed_list:\s*(\S+)$/m.exec(status)?.[1], n).toBe('0');
      const cg = fs.readFileSync(`/proc/${pidOf(n)}/cgroup`, 'utf8');
      // v1: a cpuset group of its own; v2: the one group, whose cpuset.cpus is 0.
      const v1 = /^\d+:cpuset:(.*)$/m.exec(cg);
      const dir = v1 ? `/sys/fs/cgroup/cpuset${v1[1]}` : `/sys/fs/cgroup${/^0::(.*)$/m.exec(cg)![1]}`;
      expect(dir.endsWith(`/netlab/${lab}/${n}`), dir).toBe(true);
      expect(fs.readFileSync(`${dir}/cpuset.cpus`, 'utf8').trim()).toBe('0');
    }
    // The idle node has no cpuset: on v1 it stays in its parent's cpuset group (no group made).
    expect(fs.readFileSync(`/proc/${pidOf('idle')}/cgroup`, 'utf8')).not.toMatch(new RegExp(`cpuset:.*/netlab/${lab}/idle`));

    const s = stats();
    expect(Object.keys(s)).toEqual(['lab', 'nodes']);
    expect(s.lab).toBe(lab);
    expect(s.nodes.map((n) => n.name)).toEqual(['heavy', 'light', 'idle']);
    for (const n of s.nodes) {
      expect(Object.keys(n)).toEqual(['name', 'cpu', 'memory', 'pids', 'net']);
      expect(Object.keys(n.cpu)).toEqual(['usage_seconds', 'percent']);
      expect(Object.keys(n.memory)).toEqual(['bytes', 'limit']);
      expect(n.memory.bytes!, n.name).toBeGreaterThan(0);
      expect(n.pids!, n.name).toBeGreaterThanOrEqual(1);
      expect(n.cpu.usage_seconds!, n.name).toBeGreaterThanOrEqual(0);
      expect(n.cpu.percent, n.name).not.toBeNull();
      expect(n.net.map((f) => f.iface)).toEqual(['eth0']); // lo left out
      expect(Object.keys(n.net[0])).toEqual(['iface', 'rx_bytes', 'tx_bytes']);
    }
    expect(byName(s, 'idle').memory.limit).toBe(64 * 1024 * 1024);
    expect(byName(s, 'heavy').memory.limit).toBeNull();
    // Both loops on one CPU: together at most one CPU's worth over the 500 ms, each spinning.
    const [h, l] = [byName(s, 'heavy').cpu.percent!, byName(s, 'light').cpu.percent!];
    expect(h + l).toBeLessThan(110);
    expect(h).toBeGreaterThan(l);
    expect(byName(s, 'idle').cpu.percent!).toBeLessThan(5);

    // Without LAB: every lab, this one among them, in { labs: [...] }.
    const all = parse<{ labs: LabStats[] }>(netlabOk(['stats', '--json']).stdout);
    expect(Object.keys(all)).toEqual(['labs']);
    expect(all.labs.find((x) => x.lab === lab)?.nodes.map((n) => n.name)).toEqual(['heavy', 'light', 'idle']);
    // The table: a row per node.
    const table = netlabOk(['stats', lab]).stdout.split('\n');
    expect(table[0]).toMatch(/^NAME\s+CPU %\s+CPU TIME\s+MEM USAGE \/ LIMIT\s+MEM %\s+PIDS\s+NET I\/O$/);
    expect(table.slice(1, 4).map((r) => r.split(/\s+/)[0])).toEqual(['heavy', 'light', 'idle']);
    expect(table[3]).toMatch(/ \/ 64\.0MiB /);
  });

  it('cpu_shares 1024:512 on one CPU: the loops\' CPU time grows 2:1 over 2.5 s, with or without other load on CPU 0', async () => {
    await sleep(300);
    const quiet = await cpuSplit(2500);
    const r1 = quiet.heavy / quiet.light;
    console.log(`stats.test.ts: heavy ${quiet.heavy.toFixed(3)} s, light ${quiet.light.toFixed(3)} s of CPU in ${quiet.wall.toFixed(2)} s: ratio ${r1.toFixed(3)} (ideal 2); load average ${os.loadavg()[0].toFixed(2)}`);
    expect(quiet.heavy + quiet.light, 'together they had one CPU at most').toBeLessThan(quiet.wall * 1.1);
    expect(quiet.light).toBeGreaterThan(0.05);
    expect(r1).toBeGreaterThan(1.6);
    expect(r1).toBeLessThan(2.5);

    // A busy loop outside the lab, pinned to CPU 0 too: the lab's group gets less of the CPU,
    // and the split inside it stays 2:1.
    const hog = spawn('taskset', ['-c', '0', 'sh', '-c', 'while :; do :; done'], { stdio: 'ignore' });
    try {
      await sleep(300);
      const loaded = await cpuSplit(2500);
      const r2 = loaded.heavy / loaded.light;
      console.log(`stats.test.ts: with a loop outside the lab on CPU 0: heavy ${loaded.heavy.toFixed(3)} s, light ${loaded.light.toFixed(3)} s in ${loaded.wall.toFixed(2)} s: ratio ${r2.toFixed(3)}`);
      expect(loaded.light).toBeGreaterThan(0.02);
      expect(r2).toBeGreaterThan(1.6);
      expect(r2).toBeLessThan(2.5);
    } finally {
      hog.kill('SIGKILL');
      await waitExit(hog);
    }
  });

  it('rx/tx bytes grow after a ping between two nodes', () => {
    const a = stats();
    netlabOk(['check', lab, '--ping', `idle:${heavyAddr}`, '--expect', 'reach']);
    const b = stats();
    const f = (s: LabStats, n: string) => byName(s, n).net.find((x) => x.iface === 'eth0')!;
    // At least one echo request (98 bytes on the wire) out of idle and into heavy, one reply back.
    expect(f(b, 'idle').tx_bytes - f(a, 'idle').tx_bytes).toBeGreaterThanOrEqual(98);
    expect(f(b, 'idle').rx_bytes - f(a, 'idle').rx_bytes).toBeGreaterThanOrEqual(98);
    expect(f(b, 'heavy').rx_bytes - f(a, 'heavy').rx_bytes).toBeGreaterThanOrEqual(98);
    expect(f(b, 'heavy').tx_bytes - f(a, 'heavy').tx_bytes).toBeGreaterThanOrEqual(98);
  });

  it('`stats LAB --watch --json` prints a frame a second, CPU percent over each, and exits 0 on Ctrl-C', async () => {
    const child = netlabSpawn(['stats', lab, '--watch', '--json']);
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    await sleep(2900);
    child.kill('SIGINT');
    const { code } = await waitExit(child);
    expect(code, `${out}${err}`).toBe(0);
    const frames = out.trim().split('\n').map((l) => parse<LabStats>(l, err));
    // Frames at ~0.5 s, ~1.5 s, ~2.5 s (plus the CLI's start-up).
    expect(frames.length).toBeGreaterThanOrEqual(2);
    expect(frames.length).toBeLessThanOrEqual(3);
    for (const f of frames) {
      expect(f.lab).toBe(lab);
      const h = byName(f, 'heavy').cpu;
      expect(h.percent).not.toBeNull();
      expect(h.percent!).toBeGreaterThan(0);
    }
    expect(byName(frames[frames.length - 1], 'heavy').cpu.usage_seconds!).toBeGreaterThan(byName(frames[0], 'heavy').cpu.usage_seconds!);
  });
});
