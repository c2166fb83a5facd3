// The container runtime (runtime/container.ts, runtime/cgroups.ts, runtime/images/ and the
// native runtime/shim.c) through the real CLI, as root: every node is a real container (its own
// pid/mount/uts/ipc/cgroup namespaces, overlay root, cgroups, fewer capabilities). What the
// containers do is checked from inside (`netlab exec`) and from the host with the kernel's own
// views (/proc/PID/{stat,status,cgroup,mountinfo}, /sys/fs/cgroup), never with netlab's readers.
//
// Safety on a shared machine: lab names are r<run>-<what><n>, subnets are random 10.X.Y.0/24
// blocks nothing on the host routes, only `down LAB` of this file's labs is ever run (never
// `netlab cleanup`), and the leak checks only judge objects that carry this run's lab names.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { labId, nftTable } from '../../topology/names.js';
import {
  addLeakProbe, cgroupProbe, containerProcessProbe, expectNoLeaks, netlabCgroupProcesses, netlabCgroups, snapshot,
  type LeakFilter, type Snapshot,
} from '../helpers/leaks.js';
import { REPO, STATE_ROOT, labLeftovers, netlab, netlabOk, netlabSpawn, sleep, waitExit, type CliResult, assertBuildFresh, freeSubnet } from '../helpers/netlab.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('test/integration/runtime.test.ts skipped: it needs root (it starts containers: namespaces, overlay mounts, cgroups)');

const RUN = randomBytes(3).toString('hex');
/** Every lab of this run starts with this; the leak filters key on it. */
const PREFIX = `r${RUN}-`;
/** runtime/container.ts STOP_GRACE_MS: how long down waits after SIGTERM before SIGKILL. */
const STOP_GRACE_MS = 3000;
const CAP_SYS_ADMIN = 21;

// ---------------------------------------------------------------- host-side views

interface ProcInfo { state: string; ppid: number; start: string; cgroup: string; pidns: string }

/** /proc/PID as the host sees it; null when there is no such process. */
function proc(pid: number): ProcInfo | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    let cgroup = '';
    let pidns = '';
    try { cgroup = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8'); } catch { /* zombie or gone */ }
    try { pidns = fs.readlinkSync(`/proc/${pid}/ns/pid`); } catch { /* zombie or gone */ }
    return { state: f[0], ppid: Number(f[1]), start: f[19], cgroup, pidns };
  } catch {
    return null;
  }
}

const alive = (p: ProcInfo | null): p is ProcInfo => p !== null && p.state !== 'Z' && p.state !== 'X';

/** A field of /proc/PID/status-like text ("CapBnd", "NoNewPrivs", ...). */
function statusField(text: string, key: string): string {
  const m = new RegExp(`^${key}:\\s*(.*)$`, 'm').exec(text);
  if (!m) throw new Error(`no ${key} in status text:\n${text}`);
  return m[1].trim();
}

/** Every mount in any process's mount namespace whose line names `needle`, as "pid: line". */
function mountsMentioning(needle: string): string[] {
  const out: string[] = [];
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    let text = '';
    try { text = fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8'); } catch { continue; }
    for (const line of text.split('\n')) if (line.includes(needle)) out.push(`${pid}: ${line}`);
  }
  return out;
}

function sha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

// ---------------------------------------------------------------- the CLI's views

interface ContainerJson { node: string; state: string; pid: number | null; exit: string | null; exitCode: number | null; oomKilled: boolean }
interface LabJson { lab: string; status: string; nodes: { name: string; container: ContainerJson }[] }

describe.skipIf(!isRoot)('netlab container runtime (CLI: up, exec, logs, status, down) as root', () => {
  let tmp = '';
  let before: Snapshot;
  const myLabs = new Set<string>();
  const testLabs = new Set<string>();
  /** Container pids seen per lab (with their start time, so a reused pid is not mistaken). */
  const seenPids = new Map<string, Map<number, string>>();
  let counter = 0;

  function newLab(what: string): string {
    const name = `${PREFIX}${what}${counter++}`;
    if (!/^[a-z][a-z0-9-]{0,31}$/.test(name)) throw new Error(`test bug: bad lab name ${name}`);
    myLabs.add(name);
    testLabs.add(name);
    return name;
  }

  function writeTopology(lab: string, text: string): string {
    const file = path.join(tmp, `${lab}.yml`);
    fs.writeFileSync(file, text, { mode: 0o644 });
    return file;
  }

  function statusJson(lab: string): LabJson {
    const labs = JSON.parse(netlabOk(['status', lab, '--json']).stdout) as LabJson[];
    expect(labs.map((l) => l.lab)).toEqual([lab]);
    const seen = seenPids.get(lab) ?? new Map<number, string>();
    seenPids.set(lab, seen);
    for (const n of labs[0].nodes) {
      const pid = n.container.pid;
      if (pid !== null && !seen.has(pid)) {
        const p = proc(pid);
        if (alive(p) && p.cgroup.includes(`/netlab/${lab}/${n.name}\n`)) seen.set(pid, p.start);
      }
    }
    return labs[0];
  }

  function container(lab: string, node: string): ContainerJson {
    const n = statusJson(lab).nodes.find((x) => x.name === node);
    if (!n) throw new Error(`status of ${lab} has no node ${node}`);
    return n.container;
  }

  /** Polls status until `node` is no longer running (bounded). */
  async function waitExited(lab: string, node: string, ms = 10_000): Promise<ContainerJson> {
    const end = Date.now() + ms;
    for (;;) {
      const c = container(lab, node);
      if (c.state === 'exited' || Date.now() > end) return c;
      await sleep(100);
    }
  }

  const exec = (lab: string, node: string, argv: string[]): CliResult => netlab(['exec', lab, node, '--', ...argv]);
  function execOk(lab: string, node: string, argv: string[]): string {
    const r = exec(lab, node, argv);
    if (r.status !== 0) throw new Error(`netlab exec ${lab} ${node} -- ${argv.join(' ')} exited with ${r.status}:\n${r.stdout}${r.stderr}`);
    return r.stdout;
  }

  /** The container's cgroup directories, as netlab recorded them for down. */
  function groups(lab: string, node: string): { cgroupVersion: 1 | 2; cgroups: Record<string, string> } {
    return JSON.parse(fs.readFileSync(path.join(STATE_ROOT, lab, 'containers', node, 'cgroups.json'), 'utf8')) as { cgroupVersion: 1 | 2; cgroups: Record<string, string> };
  }

  function cpuUsageNs(lab: string, node: string): number {
    const g = groups(lab, node);
    if (g.cgroupVersion === 2) return Number(/usage_usec (\d+)/.exec(fs.readFileSync(path.join(g.cgroups[''], 'cpu.stat'), 'utf8'))![1]) * 1000;
    return Number(fs.readFileSync(path.join(g.cgroups.cpuacct ?? g.cgroups.cpu, 'cpuacct.usage'), 'utf8').trim());
  }

  /** What the runtime of `lab` left on the machine: live processes in its groups or with its
   *  containers' pids, mounts naming its directory or namespaces in any mount namespace,
   *  /run/netns entries, the state/overlay directory, cgroup directories; plus the controller's
   *  objects (helpers/netlab.ts labLeftovers: netns, links, nft table). */
  function runtimeLeftovers(lab: string): string[] {
    const out: string[] = [];
    const mine = new RegExp(`/netlab/${lab}(/|$)`);
    for (const p of netlabCgroupProcesses((g) => mine.test(g))) out.push(`process in the lab's cgroups: ${p}`);
    for (const [pid, start] of seenPids.get(lab) ?? []) {
      const p = proc(pid);
      if (alive(p) && p.start === start) out.push(`container process ${pid} still alive (state ${p.state})`);
    }
    for (const m of [...mountsMentioning(`/run/netlab/${lab}/`), ...mountsMentioning(`netlab.${lab}.`), ...mountsMentioning(`netlab.${lab}+`)]) out.push(`mount ${m}`);
    let netns: string[] = [];
    try { netns = fs.readdirSync('/run/netns'); } catch { /* none */ }
    for (const n of netns) if (n.startsWith(`netlab.${lab}.`) || n.startsWith(`netlab.${lab}+`)) out.push(`/run/netns/${n}`);
    if (fs.existsSync(path.join(STATE_ROOT, lab))) out.push(`directory ${path.join(STATE_ROOT, lab)}`);
    for (const d of netlabCgroups((dir) => mine.test(dir))) out.push(`cgroup ${d}`);
    for (const x of labLeftovers(lab)) out.push(`(controller) ${x}`);
    return out;
  }

  async function settleRuntime(lab: string, ms = 3000): Promise<string[]> {
    const end = Date.now() + ms;
    let left = runtimeLeftovers(lab);
    while (left.length && Date.now() < end) {
      await sleep(100);
      left = runtimeLeftovers(lab);
    }
    return left;
  }

  /** `netlab down LAB` (when anything of it exists), then what is still left. */
  async function downAndCheck(lab: string): Promise<string[]> {
    if (runtimeLeftovers(lab).length > 0) {
      const r = netlab(['down', lab]);
      if (r.status !== 0) return [`netlab down ${lab} failed (${r.status}): ${r.stderr.trim()}`];
    }
    return settleRuntime(lab);
  }

  beforeAll(() => {
    assertBuildFresh();
    // Only this run's labs are judged: other labs on the machine come and go.
    addLeakProbe(cgroupProbe((d) => d.includes(`/netlab/${PREFIX}`)));
    addLeakProbe(containerProcessProbe((g) => g.includes(`/netlab/${PREFIX}`)));
    before = snapshot();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-rt-'));
    fs.chmodSync(tmp, 0o755);
    fs.mkdirSync(path.join(tmp, 'www'), { mode: 0o755 });
    fs.writeFileSync(path.join(tmp, 'www', 'index.html'), `hello from netlab runtime test ${RUN}\n`, { mode: 0o644 });
    console.log(`runtime.test.ts: run ${RUN}, labs ${PREFIX}*, topologies in ${tmp}`);
  });

  afterEach(async () => {
    const problems: string[] = [];
    for (const lab of testLabs) {
      const left = await downAndCheck(lab);
      if (left.length) problems.push(`${lab}:\n    ${left.join('\n    ')}`);
    }
    testLabs.clear();
    expect(problems, 'labs of this test left objects behind').toEqual([]);
  });

  afterAll(async () => {
    const left: string[] = [];
    for (const lab of myLabs) left.push(...(await downAndCheck(lab)).map((x) => `${lab}: ${x}`));
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    expect(left, 'labs of this file left objects behind').toEqual([]);
    const ours: LeakFilter = (probe, item) => {
      if (probe === 'child processes') return true;
      if (probe === 'links (root netns)') return [...myLabs].some((l) => item.startsWith(`nl${labId(l)}`));
      if (probe === 'nftables tables') return [...myLabs].some((l) => item === `ip ${nftTable(l)}`);
      return item.includes(PREFIX);
    };
    await expectNoLeaks(before, { only: ours });
  });

  // ------------------------------------------------------------------ 1 + 2. labs/bridge.yml

  describe('labs/bridge.yml, renamed, started by a `netlab up` process that has exited', () => {
    let lab = '';
    let subnet = '';
    let webAddr = '';
    let upExit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
    let upPid = 0;

    beforeAll(async () => {
      lab = newLab('br');
      testLabs.delete(lab); // lives across this block's tests; its last test takes it down
      subnet = freeSubnet();
      const prefix = subnet.replace(/0\/24$/, '');
      let text = fs.readFileSync(path.join(REPO, 'labs/bridge.yml'), 'utf8');
      for (const [from, to] of [[/^name: bridge\s*$/m, `name: ${lab}`], ['10.10.0.', prefix], ['./www:/www:ro', `${tmp}/www:/www:ro`]] as const) {
        if (typeof from === 'string' ? !text.includes(from) : !from.test(text)) throw new Error(`labs/bridge.yml has no ${from}`);
        text = typeof from === 'string' ? text.split(from).join(to) : text.replace(from, to);
      }
      webAddr = `${prefix}10`;
      const file = writeTopology(lab, text);
      const child = netlabSpawn(['up', file]);
      let out = '';
      child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
      child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
      upPid = child.pid!;
      upExit = await waitExit(child);
      if (upExit.code !== 0) throw new Error(`netlab up ${file} exited with ${upExit.code ?? upExit.signal}:\n${out}`);
    });

    afterAll(async () => {
      const left = await downAndCheck(lab);
      expect(left, `${lab} left objects behind`).toEqual([]);
    });

    it('every container is still running after `netlab up` exited: PID 1 of its own pid namespace, in its cgroups, a child of the lab supervisor', () => {
      expect(upExit).toEqual({ code: 0, signal: null });
      expect(alive(proc(upPid)), 'the `netlab up` process is gone').toBe(false);
      const st = statusJson(lab);
      expect(st.status).toBe('up');
      expect(st.nodes.map((n) => n.name).sort()).toEqual(['client1', 'client2', 'solo', 'web']);
      const supervisor = Number(fs.readFileSync(path.join(STATE_ROOT, lab, 'containers', 'supervisor.pid'), 'utf8'));
      expect(alive(proc(supervisor)), 'the lab supervisor runs').toBe(true);
      const ownPidns = fs.readlinkSync('/proc/self/ns/pid');
      const ownMntns = fs.readlinkSync('/proc/self/ns/mnt');
      for (const n of st.nodes) {
        expect(n.container.state, n.name).toBe('running');
        const p = proc(n.container.pid!);
        expect(alive(p), `${n.name} pid ${n.container.pid} alive`).toBe(true);
        expect(p!.cgroup, `${n.name} cgroups`).toMatch(new RegExp(`/netlab/${lab}/${n.name}\n`));
        expect(p!.pidns, `${n.name} has its own pid namespace`).not.toBe(ownPidns);
        expect(fs.readlinkSync(`/proc/${n.container.pid}/ns/mnt`), `${n.name} has its own mount namespace`).not.toBe(ownMntns);
        expect(p!.ppid, `${n.name}'s parent is the supervisor`).toBe(supervisor);
        // NSpid: the host's pid, then 1 inside.
        expect(statusField(fs.readFileSync(`/proc/${n.container.pid}/status`, 'utf8'), 'NSpid').split(/\s+/)).toEqual([String(n.container.pid), '1']);
      }
    });

    it('client1 fetches the page busybox httpd serves from the volume in web: `netlab exec LAB client1 -- wget -qO- http://web/`', async () => {
      let r: CliResult | null = null;
      for (let i = 0; i < 5; i++) {
        // Bounded from outside: this busybox's `wget -T` segfaults (1.35.0, Debian 12), and
        // busybox `timeout` leaves its watcher behind as a zombie of PID 1 (which never reaps).
        r = netlab(['exec', lab, 'client1', '--', 'wget', '-qO-', 'http://web/'], { timeoutMs: 15_000 });
        if (r.status === 0) break;
        await sleep(200); // a new bridge port forwards once the link watch has run
      }
      expect(r!.stderr).toBe('');
      expect(r!.status).toBe(0);
      expect(r!.stdout).toBe(`hello from netlab runtime test ${RUN}\n`);
    });

    it('hostname is the node name; ps shows the command as PID 1 and nothing of the host', () => {
      for (const n of ['web', 'client1', 'solo']) {
        expect(execOk(lab, n, ['hostname'])).toBe(`${n}\n`);
        expect(execOk(lab, n, ['cat', '/etc/hostname'])).toBe(`${n}\n`);
      }
      const rows = (node: string) => execOk(lab, node, ['ps']).trim().split('\n').slice(1)
        .map((l) => /^\s*(\d+)\s+\S+\s+(.*)$/.exec(l)!).map((m) => ({ pid: Number(m[1]), cmd: m[2].trim() }));
      const web = rows('web');
      expect(web.find((r) => r.pid === 1)?.cmd).toBe('httpd -f -p 80 -h /www');
      expect(web.filter((r) => r.pid !== 1).map((r) => r.cmd)).toEqual(['ps']);
      const client = rows('client1');
      expect(client.find((r) => r.pid === 1)?.cmd).toBe('/sbin/netlab-pause');
      expect(client.filter((r) => r.pid !== 1).map((r) => r.cmd)).toEqual(['ps']);
      // /proc inside lists the container's processes only (PID 1 and the ls itself).
      const procs = execOk(lab, 'client1', ['ls', '/proc']).split(/\s+/).filter((x) => /^\d+$/.test(x));
      expect(procs.length, `processes visible in client1: ${procs.join(' ')}`).toBe(2);
      expect(procs).toContain('1');
    });

    it('peers resolve by name: /etc/hosts lists them, `ping -c1 -W1 web` works from client1; solo (network_mode none) reaches nothing', async () => {
      const hosts = execOk(lab, 'client1', ['cat', '/etc/hosts']);
      expect(hosts).toMatch(new RegExp(`^${webAddr.replace(/\./g, '\\.')}\\s+web$`, 'm'));
      expect(hosts).toMatch(/^\S+\s+client2$/m);
      expect(hosts).toMatch(/^127\.0\.0\.1\s+localhost$/m);
      expect(hosts).not.toMatch(/\ssolo$/m);
      let r: CliResult | null = null;
      for (let i = 0; i < 5; i++) {
        r = exec(lab, 'client1', ['ping', '-c1', '-W1', 'web']);
        if (r.status === 0) break;
        await sleep(200);
      }
      expect(r!.status, r!.stdout + r!.stderr).toBe(0);
      expect(r!.stdout).toContain(`PING web (${webAddr})`);
      expect(exec(lab, 'solo', ['ping', '-c1', '-W1', webAddr]).status).not.toBe(0);
    });

    it('down stops every container and leaves no process, mount, /run/netns entry, overlay directory or cgroup', async () => {
      const pids = statusJson(lab).nodes.map((n) => n.container.pid!);
      expect(seenPids.get(lab)?.size).toBe(4);
      // The leftover check sees every kind of object while the lab is up (so its silence after
      // down means something): processes, overlay mounts, netns, the directory, cgroups.
      const up = runtimeLeftovers(lab);
      for (const kind of ['process in the lab\'s cgroups', 'container process', 'mount ', '/run/netns/', 'directory ', 'cgroup ']) {
        expect(up.some((x) => x.startsWith(kind)), `leftover check sees "${kind}" while up:\n${up.join('\n')}`).toBe(true);
      }
      expect(mountsMentioning(`/run/netlab/${lab}/`).some((l) => / - overlay overlay /.test(l)), 'the overlay roots are visible while up').toBe(true);
      expect(netlabCgroups((d) => d.endsWith(`/netlab/${lab}/web`)).length, 'cgroup dirs of web (cpu, cpuacct, memory, pids or v2)').toBeGreaterThanOrEqual(1);
      const r = netlabOk(['down', lab]);
      expect(r.stdout).toContain(`lab ${lab} is down`);
      expect(r.stderr).not.toContain('could not remove cgroups');
      for (const n of ['web', 'client1', 'client2', 'solo']) expect(r.stdout).toMatch(new RegExp(`^  ${n}\\s+exited`, 'm'));
      expect(await settleRuntime(lab)).toEqual([]);
      for (const pid of pids) expect(alive(proc(pid)), `pid ${pid}`).toBe(false);
    });
  });

  // ------------------------------------------------------------------ 3. cgroups

  it('cpu_shares 1024 vs 512 on one CPU: the busy loops get CPU time 2:1 (cgroup accounting, 3 s); cpus 0.25 caps a loop at a quarter of a CPU', async () => {
    const lab = newLab('cpu');
    const loop = '["taskset", "-c", "0", "sh", "-c", "while :; do :; done"]';
    netlabOk(['up', writeTopology(lab, `name: ${lab}
nodes:
  heavy:
    network_mode: none
    command: ${loop}
    resources: { cpu_shares: 1024 }
  light:
    network_mode: none
    command: ${loop}
    resources: { cpu_shares: 512 }
  capped:
    network_mode: none
    command: ["taskset", "-c", "1", "sh", "-c", "while :; do :; done"]
    resources: { cpus: 0.25 }
`)]);
    for (const [node, shares] of [['heavy', 1024], ['light', 512]] as const) {
      const c = container(lab, node);
      expect(c.state).toBe('running');
      expect(statusField(fs.readFileSync(`/proc/${c.pid}/status`, 'utf8'), 'Cpus_allowed_list')).toBe('0');
      const g = groups(lab, node);
      if (g.cgroupVersion === 1) expect(fs.readFileSync(path.join(g.cgroups.cpu, 'cpu.shares'), 'utf8').trim()).toBe(String(shares));
      else expect(Number(fs.readFileSync(path.join(g.cgroups[''], 'cpu.weight'), 'utf8'))).toBeGreaterThan(0);
    }
    await sleep(300);
    const h0 = cpuUsageNs(lab, 'heavy');
    const l0 = cpuUsageNs(lab, 'light');
    const c0 = cpuUsageNs(lab, 'capped');
    const t0 = performance.now();
    await sleep(3000);
    const dh = cpuUsageNs(lab, 'heavy') - h0;
    const dl = cpuUsageNs(lab, 'light') - l0;
    const dc = cpuUsageNs(lab, 'capped') - c0;
    const wall = (performance.now() - t0) * 1e6;
    const ratio = dh / dl;
    console.log(`runtime.test.ts: cpu_shares 1024:512 on CPU 0 -> ${(dh / 1e9).toFixed(3)} s : ${(dl / 1e9).toFixed(3)} s of CPU in ${(wall / 1e9).toFixed(2)} s, ratio ${ratio.toFixed(3)} (ideal 2); cpus 0.25 -> ${(dc / wall).toFixed(3)} of a CPU`);
    expect(dh + dl, 'together they had (nearly) one CPU, and only one').toBeLessThan(wall * 1.1);
    expect(dh + dl).toBeGreaterThan(wall * 0.5);
    expect(ratio).toBeGreaterThan(2 * 0.75);
    expect(ratio).toBeLessThan(2 * 1.25);
    // cpus: 0.25 is a CFS quota: a quarter of a CPU at most, however idle CPU 1 is.
    expect(dc / wall).toBeLessThan(0.25 * 1.15);
    expect(dc / wall).toBeGreaterThan(0.25 * 0.4); // it ran (CPU 1 may be busy with other work)
  });

  it('a container allocating past its memory limit is OOM-killed; status says so; the memory cgroup counted the kill', async () => {
    const lab = newLab('mem');
    netlabOk(['up', writeTopology(lab, `name: ${lab}
nodes:
  hog:
    network_mode: none
    command: ["dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1"]
    resources: { memory: 32m }
  calm:
    network_mode: none
    resources: { memory: 32m }
`)]);
    const hog = await waitExited(lab, 'hog');
    expect(hog).toMatchObject({ state: 'exited', exit: 'killed 9', exitCode: 137, oomKilled: true });
    const calm = container(lab, 'calm');
    expect(calm).toMatchObject({ state: 'running', oomKilled: false });
    const text = netlabOk(['status', lab]).stdout;
    expect(text).toMatch(/^ {2}hog\s+exited, code 137 \(SIGKILL\), OOM-killed: memory limit reached/m);
    expect(text).toMatch(/^ {2}calm\s+running \(pid \d+\)/m);
    // The kernel's own record, in the group netlab made for the node.
    const g = groups(lab, 'hog');
    if (g.cgroupVersion === 1) {
      expect(fs.readFileSync(path.join(g.cgroups.memory, 'memory.limit_in_bytes'), 'utf8').trim()).toBe(String(32 * 1024 * 1024));
      expect(Number(/oom_kill (\d+)/.exec(fs.readFileSync(path.join(g.cgroups.memory, 'memory.oom_control'), 'utf8'))![1])).toBeGreaterThanOrEqual(1);
      expect(Number(fs.readFileSync(path.join(g.cgroups.memory, 'memory.max_usage_in_bytes'), 'utf8'))).toBeLessThanOrEqual(32 * 1024 * 1024);
      expect(Number(/oom_kill (\d+)/.exec(fs.readFileSync(path.join(groups(lab, 'calm').cgroups.memory, 'memory.oom_control'), 'utf8'))![1])).toBe(0);
    } else {
      expect(fs.readFileSync(path.join(g.cgroups[''], 'memory.max'), 'utf8').trim()).toBe(String(32 * 1024 * 1024));
      expect(Number(/oom_kill (\d+)/.exec(fs.readFileSync(path.join(g.cgroups[''], 'memory.events'), 'utf8'))![1])).toBeGreaterThanOrEqual(1);
    }
    const down = netlabOk(['down', lab]);
    expect(down.stdout).toMatch(/^ {2}hog\s+exited, code 137 \(SIGKILL\), OOM-killed/m);
  });

  // ------------------------------------------------------------------ 4. image: host

  it('image host: /etc/passwd cannot be written and the host\'s stays unchanged; /tmp and /etc are private and writable; :ro volumes are read-only, rw volumes write through', () => {
    const lab = newLab('host');
    const rw = path.join(tmp, 'rw');
    const ro = path.join(tmp, 'ro');
    fs.mkdirSync(rw, { mode: 0o755 });
    fs.mkdirSync(ro, { mode: 0o755 });
    fs.writeFileSync(path.join(ro, 'keep.txt'), 'read-only\n');
    // Volume targets under /tmp: the host image's root is read-only, so a mount point must
    // exist already (or be on a private writable mount such as /tmp).
    netlabOk(['up', writeTopology(lab, `name: ${lab}
nodes:
  h:
    image: host
    network_mode: none
    volumes: ["${rw}:/tmp/rw", "${ro}:/tmp/ro:ro"]
`)]);
    const accounts = ['/etc/passwd', '/etc/group', '/etc/shadow'].filter((f) => fs.existsSync(f));
    const sums = Object.fromEntries(accounts.map((f) => [f, sha256(f)]));
    for (const f of accounts) {
      const r = exec(lab, 'h', ['sh', '-c', `echo 'x:x:4242:4242::/:/bin/sh' >> ${f}`]);
      expect(r.status, `${f}: ${r.stderr}`).not.toBe(0);
      expect(r.stderr).toMatch(/Read-only file system/);
      expect(sha256(f), `host ${f}`).toBe(sums[f]);
    }
    expect(execOk(lab, 'h', ['sh', '-c', 'id -un; grep -c "^root:" /etc/passwd'])).toBe('root\n1\n');
    // The rest of the host's tree is read-only too.
    expect(exec(lab, 'h', ['sh', '-c', `echo x > /usr/netlab-${RUN}`]).status).not.toBe(0);
    expect(fs.existsSync(`/usr/netlab-${RUN}`)).toBe(false);
    // /tmp and the rest of /etc are the container's own: writable, invisible on the host.
    expect(execOk(lab, 'h', ['sh', '-c', `echo inside > /tmp/netlab-${RUN} && cat /tmp/netlab-${RUN}`])).toBe('inside\n');
    expect(fs.existsSync(`/tmp/netlab-${RUN}`)).toBe(false);
    expect(execOk(lab, 'h', ['sh', '-c', `echo inside > /etc/netlab-${RUN} && cat /etc/netlab-${RUN}`])).toBe('inside\n');
    expect(fs.existsSync(`/etc/netlab-${RUN}`)).toBe(false);
    expect(execOk(lab, 'h', ['hostname'])).toBe('h\n');
    // Volumes.
    const roWrite = exec(lab, 'h', ['sh', '-c', 'echo x > /tmp/ro/new.txt']);
    expect(roWrite.status).not.toBe(0);
    expect(roWrite.stderr).toMatch(/Read-only file system/);
    expect(exec(lab, 'h', ['rm', '/tmp/ro/keep.txt']).status).not.toBe(0);
    expect(execOk(lab, 'h', ['cat', '/tmp/ro/keep.txt'])).toBe('read-only\n');
    expect(fs.readdirSync(ro)).toEqual(['keep.txt']);
    execOk(lab, 'h', ['sh', '-c', `echo written in ${RUN} > /tmp/rw/out.txt`]);
    expect(fs.readFileSync(path.join(rw, 'out.txt'), 'utf8')).toBe(`written in ${RUN}\n`);
  });

  // ------------------------------------------------------------------ 5. exec and logs

  it('an exited container takes its interfaces down: its address stops answering, the prediction says so, and a check passing because of it is degraded (exit 3)', async () => {
    const lab = newLab('gone');
    netlabOk(['up', writeTopology(lab, `name: ${lab}
nodes:
  a:
  b: { command: [sh, -c, "sleep 0.5; exit 4"] }
links:
  - { endpoints: ["a:eth1", "b:eth1"], ipv4: [198.51.100.1/30, 198.51.100.2/30] }
`)]);
    await waitExited(lab, 'b');
    // The supervisor took b's interface down; a's end lost carrier.
    const bl = JSON.parse(execFileSync('ip', ['-n', `netlab.${lab}.b`, '-j', 'link', 'show', 'eth1'], { encoding: 'utf8' })) as { flags: string[] }[];
    expect(bl[0].flags).not.toContain('UP');
    const r = netlab(['check', lab, '--ping', 'a:b', '--json']);
    expect(r.status).toBe(3);
    const rep = JSON.parse(r.stdout) as { degraded: number; outcomes: { predicted: string; observed: string; reason: string; degraded: string }[] };
    expect(rep.outcomes[0]).toMatchObject({ predicted: 'fail', observed: 'fail' });
    expect(rep.outcomes[0].reason).toMatch(/its peer b exited/);
    expect(rep.degraded).toBe(1);
    netlabOk(['down', lab]);
  });

  it('a file volume into a directory the image lacks: its parents are made, as Docker does', () => {
    const lab = newLab('fvol');
    const src = path.join(tmp, 'fvol-src.txt');
    fs.writeFileSync(src, 'from the host\n');
    netlabOk(['up', writeTopology(lab, `name: ${lab}
nodes:
  a:
    network_mode: none
    volumes: ["${src}:/opt/not/in/busybox/file.txt:ro"]
`)]);
    expect(execOk(lab, 'a', ['cat', '/opt/not/in/busybox/file.txt'])).toBe('from the host\n');
    netlabOk(['down', lab]);
  });

  it('exec returns the command\'s exit code (7, 127 for an unknown command); logs prints stdout and stderr; logs -f follows', async () => {
    const lab = newLab('io');
    netlabOk(['up', writeTopology(lab, `name: ${lab}
nodes:
  talker:
    network_mode: none
    command: ["sh", "-c", "i=0; while :; do i=$((i+1)); echo \\"out $i\\"; echo \\"err $i\\" >&2; sleep 0.1; done"]
`)]);
    const e7 = exec(lab, 'talker', ['sh', '-c', 'echo before exit; exit 7']);
    expect(e7.status).toBe(7);
    expect(e7.stdout).toBe('before exit\n');
    const e127 = exec(lab, 'talker', [`no-such-command-${RUN}`]);
    expect(e127.status).toBe(127);
    expect(e127.stderr).toContain(`no-such-command-${RUN}`);
    expect(exec(lab, 'talker', ['sh', '-c', 'echo to stderr >&2; exit 0'])).toMatchObject({ status: 0, stdout: '', stderr: 'to stderr\n' });
    expect(exec(lab, 'talker', ['true']).status).toBe(0);
    expect(exec(lab, 'talker', ['false']).status).toBe(1);
    expect(exec(lab, 'talker', ['sh', '-c', 'kill -9 $$']).status).toBe(137);

    await sleep(300);
    const logs = netlabOk(['logs', lab, 'talker']).stdout;
    expect(logs).toMatch(/^out 1\n/);
    expect(logs).toContain('\nerr 1\n');
    expect(logs).toContain('\nout 2\n');

    const follower = netlabSpawn(['logs', '-f', lab, 'talker']);
    let followed = '';
    follower.stdout!.on('data', (d: Buffer) => { followed += d.toString(); });
    const ended = waitExit(follower);
    try {
      await sleep(400);
      const first = followed.split('\n').length;
      await sleep(800);
      const second = followed.split('\n').length;
      expect(second - first, `followed output grew from ${first} to ${second} lines`).toBeGreaterThanOrEqual(8); // ~16 in 0.8 s
      const outs = [...followed.matchAll(/^out (\d+)$/gm)].map((m) => Number(m[1]));
      expect(outs.slice(0, 3)).toEqual([1, 2, 3]); // from the start of the log, in order
      expect(outs.every((n, i) => n === i + 1)).toBe(true);
      follower.kill('SIGINT');
      const stop = await Promise.race([ended, sleep(3000).then(() => null)]);
      expect(stop, 'logs -f stops on SIGINT').toEqual({ code: 0, signal: null });
    } finally {
      follower.kill('SIGKILL');
      await ended;
    }
  });

  // ------------------------------------------------------------------ 6. environment, user, capabilities

  it('environment, working_dir and user apply to the command and to exec; unprivileged nodes lose CAP_SYS_ADMIN and get no_new_privs; privileged ones keep every capability', () => {
    const lab = newLab('cfg');
    netlabOk(['up', writeTopology(lab, `name: ${lab}
nodes:
  u:
    network_mode: none
    user: nobody
    working_dir: /tmp
    environment: { GREETING: "hello there", N: 3, FLAG: true }
    command: ["sh", "-c", "echo \\"uid=$(id -u) gid=$(id -g) cwd=$(pwd) GREETING=$GREETING N=$N FLAG=$FLAG HOSTNAME=$HOSTNAME\\"; exec sleep inf"]
  plain:
    network_mode: none
  priv:
    network_mode: none
    privileged: true
`)]);
    const c = container(lab, 'u');
    expect(c.state).toBe('running');
    const hostStatus = fs.readFileSync(`/proc/${c.pid}/status`, 'utf8');
    expect(statusField(hostStatus, 'Uid').split(/\s+/)[0]).toBe('65534');
    expect(netlabOk(['logs', lab, 'u']).stdout).toBe('uid=65534 gid=65534 cwd=/tmp GREETING=hello there N=3 FLAG=true HOSTNAME=u\n');
    // exec runs as the node's user, in its working_dir, with its environment.
    expect(execOk(lab, 'u', ['id', '-u'])).toBe('65534\n');
    expect(execOk(lab, 'u', ['pwd'])).toBe('/tmp\n');
    expect(execOk(lab, 'u', ['sh', '-c', 'echo "$GREETING/$N"'])).toBe('hello there/3\n');
    expect(exec(lab, 'u', ['touch', '/root-owned']).status).not.toBe(0);

    const hostBnd = BigInt(`0x${statusField(fs.readFileSync('/proc/self/status', 'utf8'), 'CapBnd')}`);
    const sysAdmin = 1n << BigInt(CAP_SYS_ADMIN);
    expect(hostBnd & sysAdmin).toBe(sysAdmin); // the test itself runs with it
    for (const node of ['plain', 'u']) {
      for (const who of ['/proc/1/status', '/proc/self/status']) { // PID 1, and what exec runs
        const s = execOk(lab, node, ['cat', who]);
        expect(BigInt(`0x${statusField(s, 'CapBnd')}`) & sysAdmin, `${node} ${who} CapBnd`).toBe(0n);
        expect(statusField(s, 'NoNewPrivs'), `${node} ${who}`).toBe('1');
      }
    }
    expect(exec(lab, 'plain', ['mount', '-t', 'tmpfs', 'none', '/tmp']).status).not.toBe(0);
    // The command starts with default signal dispositions (the supervisor's ignored SIGPIPE,
    // SIGHUP and SIGINT must not leak into it) and nothing blocked.
    const plainStatus = fs.readFileSync(`/proc/${container(lab, 'plain').pid}/status`, 'utf8');
    expect(statusField(plainStatus, 'SigIgn')).toBe('0000000000000000');
    expect(statusField(plainStatus, 'SigBlk')).toBe('0000000000000000');
    for (const who of ['/proc/1/status', '/proc/self/status']) {
      const s = execOk(lab, 'priv', ['cat', who]);
      expect(BigInt(`0x${statusField(s, 'CapBnd')}`), `priv ${who} CapBnd`).toBe(hostBnd);
      expect(BigInt(`0x${statusField(s, 'CapEff')}`), `priv ${who} CapEff`).toBe(hostBnd);
      expect(statusField(s, 'NoNewPrivs')).toBe('0');
    }
    expect(exec(lab, 'priv', ['mount', '-t', 'tmpfs', 'none', '/tmp']).status).toBe(0);
  });

  // ------------------------------------------------------------------ 7. a command that exits

  it('a node whose command exits shows as exited with its code while the lab and the other nodes stay up', async () => {
    const lab = newLab('exit');
    netlabOk(['up', writeTopology(lab, `name: ${lab}
nodes:
  quitter:
    network_mode: none
    command: ["sh", "-c", "echo bye; exit 3"]
  stayer:
    network_mode: none
`)]);
    const q = await waitExited(lab, 'quitter');
    expect(q).toMatchObject({ state: 'exited', exit: 'exited 3', exitCode: 3, oomKilled: false });
    const st = statusJson(lab);
    expect(st.status).toBe('up');
    expect(st.nodes.find((n) => n.name === 'stayer')!.container.state).toBe('running');
    expect(netlabOk(['status', lab]).stdout).toMatch(/^ {2}quitter\s+exited, code 3;/m);
    expect(netlabOk(['logs', lab, 'quitter']).stdout).toBe('bye\n');
    const follow = netlab(['logs', '-f', lab, 'quitter'], { timeoutMs: 5000 });
    expect(follow, 'logs -f of an exited container prints its log and returns').toMatchObject({ status: 0, stdout: 'bye\n' });
    const r = exec(lab, 'quitter', ['true']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/not running/);
    expect(execOk(lab, 'stayer', ['echo', 'still here'])).toBe('still here\n');
    const down = netlabOk(['down', lab]);
    expect(down.stdout).toMatch(/^ {2}quitter\s+exited, code 3$/m);
  });

  it('a command that cannot be run fails `up` naming the node, and the rollback stops the containers already started and leaves nothing', async () => {
    const lab = newLab('bad');
    const r = netlab(['up', writeTopology(lab, `name: ${lab}
nodes:
  fine:
    network_mode: none
  broken:
    network_mode: none
    command: ["no-such-binary-${RUN}"]
`)]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`node broken: exec no-such-binary-${RUN}: No such file or directory`));
    expect(r.stderr).toContain('everything it made was removed');
    expect(await settleRuntime(lab)).toEqual([]);
  });

  // ------------------------------------------------------------------ 8. how down stops containers

  it('down sends SIGTERM to a PID 1 that handles it (it exits 0) and SIGKILL at once to one that does not', () => {
    const lab = newLab('term');
    netlabOk(['up', writeTopology(lab, `name: ${lab}
nodes:
  polite:
    network_mode: none
    command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"]
  deaf:
    network_mode: none
    command: ["sleep", "inf"]
`)]);
    expect(container(lab, 'polite').state).toBe('running');
    expect(container(lab, 'deaf').state).toBe('running');
    const r = netlabOk(['down', lab]);
    expect(r.stdout).toMatch(/^ {2}polite\s+exited, code 0 \(stopped by SIGTERM\)$/m);
    expect(r.stdout).toMatch(/^ {2}deaf\s+exited, code 137 \(SIGKILL: its PID 1 ignores SIGTERM\)$/m);
    expect(r.ms, 'no grace period was waited for').toBeLessThan(STOP_GRACE_MS - 500);
  });

  it('down SIGKILLs a PID 1 that catches SIGTERM but stays, after the grace period and no later', () => {
    const lab = newLab('stub');
    netlabOk(['up', writeTopology(lab, `name: ${lab}
nodes:
  stubborn:
    network_mode: none
    command: ["sh", "-c", "trap 'echo ignoring TERM' TERM; while :; do sleep 0.1; done"]
`)]);
    expect(container(lab, 'stubborn').state).toBe('running');
    const r = netlabOk(['down', lab]);
    expect(r.stdout).toMatch(/^ {2}stubborn\s+exited, code 137 \(SIGKILL after 3 s: SIGTERM did not stop it\)$/m);
    expect(r.ms).toBeGreaterThan(STOP_GRACE_MS - 100);
    expect(r.ms).toBeLessThan(STOP_GRACE_MS + 4000);
  });
});
