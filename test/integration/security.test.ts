// Confinement of a node, attacked from inside it as root in a default (unprivileged) busybox
// container: every way out that issue 11 found is tried again and must fail, and each test
// also shows the attempt is real (it works from the host, or with the protection turned off),
// so a test cannot pass because the attempt itself was broken. A static helper (test/tools/
// sysprobe.c, built here, bind-mounted read-only) makes the raw system calls busybox has no
// applet for (keyctl, AF_VSOCK sockets, clone3, mknod + open).
//
// Safety: lab names s<run>-..., random 10.X.Y.0/24 subnets no host route uses, only this file's
// labs are ever taken down, nothing of the host is changed (the host's sysctls are compared
// before and after), and every lab is checked to have left nothing.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectNoLeaks, snapshot, type Snapshot } from '../helpers/leaks.js';
import { CLI, REPO, STATE_ROOT, assertBuildFresh, downAndCheck, freeSubnet, netlab, netlabOk } from '../helpers/netlab.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('test/integration/security.test.ts skipped: it needs root (it starts containers)');

const RUN = randomBytes(3).toString('hex');
const PREFIX = `s${RUN}-`;

function readHost(file: string): string {
  return fs.readFileSync(file, 'utf8');
}

/** A field of /proc/PID/status. */
function status(pid: number, key: string): string {
  const m = new RegExp(`^${key}:\\s*(.*)$`, 'm').exec(readHost(`/proc/${pid}/status`));
  if (!m) throw new Error(`no ${key} in /proc/${pid}/status`);
  return m[1].trim();
}

const CAP = { NET_ADMIN: 12, NET_RAW: 13, SYS_ADMIN: 21, MKNOD: 27 };
const hasCap = (hex: string, bit: number) => (BigInt(`0x${hex}`) & (1n << BigInt(bit))) !== 0n;

describe.skipIf(!isRoot)('security: a node cannot take over the host', () => {
  let tmp = '';
  let probe = '';
  let before: Snapshot;
  const labs: string[] = [];
  let hostSysctls: Record<string, string> = {};
  // (Not ip_forward: netlab itself turns it on for NAT while a lab with a gateway is up.)
  const WATCHED_SYSCTLS = ['kernel/core_pattern', 'kernel/hostname', 'net/ipv4/conf/all/accept_local', 'kernel/shmmax', 'vm/overcommit_memory'];

  function newLab(what: string, body: string): { name: string; file: string } {
    const name = `${PREFIX}${what}`;
    labs.push(name);
    const file = path.join(tmp, `${name}.yml`);
    const probeVol = `"${probe}:/sysprobe:ro"`;
    fs.writeFileSync(file, `name: ${name}\n${body.replaceAll('PROBE', probeVol).replaceAll('SUBNET', freeSubnet())}`);
    return { name, file };
  }

  /** `netlab exec` as a user would run it; stdout, with the exit code. */
  function exec(lab: string, node: string, argv: string[]): { code: number; out: string; err: string } {
    const r = netlab(['exec', lab, node, '--', ...argv]);
    return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
  }
  const sh = (lab: string, node: string, script: string) => exec(lab, node, ['sh', '-c', script]);
  const sysprobe = (lab: string, node: string, ...args: string[]) => exec(lab, node, ['/sysprobe', ...args]).out.trim();

  function pidOf(lab: string, node: string): number {
    return Number(readHost(path.join(STATE_ROOT, lab, 'containers', node, 'pid')).trim());
  }

  beforeAll(() => {
    assertBuildFresh();
    before = snapshot();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-sec-'));
    fs.chmodSync(tmp, 0o755);
    probe = path.join(tmp, 'sysprobe');
    execFileSync('cc', ['-static', '-O2', '-o', probe, path.join(REPO, 'test/tools/sysprobe.c')]);
    for (const s of WATCHED_SYSCTLS) hostSysctls[s] = readHost(`/proc/sys/${s}`);
  });

  afterAll(async () => {
    const left: string[] = [];
    for (const l of labs) left.push(...(await downAndCheck(l)));
    for (const s of WATCHED_SYSCTLS) expect(readHost(`/proc/sys/${s}`), `host sysctl ${s}`).toBe(hostSysctls[s]);
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    expect(left).toEqual([]);
    await expectNoLeaks(before, { only: (_probe, item) => item.includes(PREFIX) || item.includes(RUN) });
  });

  it('/proc/sys is read-only except the node\'s own network sysctls; sysctls: sets namespaced ones at start', () => {
    const { name, file } = newLab('sysctl', `networks: { lan: { subnet: SUBNET, gateway: true } }
nodes:
  a: { networks: [lan], sysctls: { net.ipv4.conf.all.accept_local: 1, kernel.shmmax: 12345678 } }
`);
    netlabOk(['up', file]);
    // The escape: core_pattern names a program the kernel runs as root on the host.
    const core = sh(name, 'a', 'echo "|/tmp/pwn" > /proc/sys/kernel/core_pattern');
    expect(core.code).not.toBe(0);
    expect(core.err).toMatch(/Read-only file system/);
    for (const f of ['kernel/hostname', 'vm/overcommit_memory']) expect(sh(name, 'a', `echo 1 > /proc/sys/${f}`).code, f).not.toBe(0);
    // Its own network stack stays its own to tune.
    expect(sh(name, 'a', 'echo 1 > /proc/sys/net/ipv4/ip_forward && cat /proc/sys/net/ipv4/ip_forward').out.trim()).toBe('1');
    expect(exec(name, 'a', ['cat', '/proc/sys/net/ipv4/conf/all/accept_local']).out.trim()).toBe('1');
    expect(exec(name, 'a', ['cat', '/proc/sys/kernel/shmmax']).out.trim()).toBe('12345678');
    for (const s of WATCHED_SYSCTLS) expect(readHost(`/proc/sys/${s}`), s).toBe(hostSysctls[s]);
    // Other read-only and masked parts, as Docker: empty where the host's are not.
    const hostTimers = readHost('/proc/timer_list').length;
    expect(hostTimers).toBeGreaterThan(0);
    expect(exec(name, 'a', ['cat', '/proc/timer_list']).out).toBe('');
    expect(exec(name, 'a', ['cat', '/proc/keys']).out).toBe('');
    expect(exec(name, 'a', ['ls', '-A', '/sys/firmware']).out).toBe('');
    expect(sh(name, 'a', 'echo 1 > /proc/irq/default_smp_affinity').code).not.toBe(0);
    const mounts = exec(name, 'a', ['cat', '/proc/self/mountinfo']).out;
    for (const p of ['/proc/sys', '/proc/irq', '/proc/bus', '/proc/fs']) {
      if (!fs.existsSync(p)) continue;
      expect(mounts, p).toMatch(new RegExp(` ${p.replaceAll('/', '\\/')} ro[, ]`));
    }
    expect(mounts).toMatch(/ \/proc\/sys\/net rw[, ]/);
  });

  it('no inherited file descriptor reaches a container or its supervisor (a directory fd was a way to the host\'s files)', async () => {
    const { name, file } = newLab('fds', `networks: { lan: { subnet: SUBNET, gateway: true } }
nodes:
  a: { networks: [lan], volumes: [PROBE] }
`);
    // `netlab up` run from a shell holding a directory open on fd 20, not close-on-exec.
    const dir = fs.openSync('/etc', 'r');
    try {
      const stdio: ('ignore' | 'pipe' | number)[] = ['ignore', 'pipe', 'pipe'];
      while (stdio.length < 20) stdio.push('ignore');
      stdio.push(dir);
      const child = spawn(process.execPath, [CLI, 'up', file], { stdio });
      let err = '';
      child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
      const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
      expect(code, err).toBe(0);
    } finally {
      fs.closeSync(dir);
    }
    const pid = pidOf(name, 'a');
    expect(fs.readdirSync(`/proc/${pid}/fd`).sort()).toEqual(['0', '1', '2']);
    const supervisor = Number(readHost(path.join(STATE_ROOT, name, 'containers', 'supervisor.pid')).trim());
    // The supervisor's own descriptors (/dev/null, the device program) are close-on-exec; none is the caller's.
    const supervisorFds = fs.readdirSync(`/proc/${supervisor}/fd`).map((fd) => `${fd} ${fs.readlinkSync(`/proc/${supervisor}/fd/${fd}`)}`);
    expect(supervisorFds.filter((l) => l.endsWith(' /etc') || l.startsWith('20 '))).toEqual([]);
    expect(sysprobe(name, 'a', 'fds')).toBe('end');
    const escape = sh(name, 'a', 'cat /proc/1/fd/20/shadow');
    expect(escape.code).not.toBe(0);
    expect(escape.out).toBe('');
  });

  it('device nodes: a node can make any (CAP_MKNOD) but open only Docker\'s allowed ones (the eBPF program on the unified tree, or cgroup v1 rules without one)', () => {
    const { name, file } = newLab('dev', `networks: { lan: { subnet: SUBNET, gateway: true } }
nodes:
  a: { networks: [lan], volumes: [PROBE] }
  p: { networks: [lan], volumes: [PROBE], privileged: true }
`);
    netlabOk(['up', file]);
    expect(hasCap(status(pidOf(name, 'a'), 'CapEff'), CAP.MKNOD)).toBe(true);
    expect(sysprobe(name, 'a', 'mknod-open', '/tmp/loop', 'b', '7', '0')).toBe('open errno EPERM');
    expect(sysprobe(name, 'a', 'mknod-open', '/tmp/console', 'c', '5', '1')).toBe('open errno EPERM');
    expect(sysprobe(name, 'a', 'mknod-open', '/tmp/kmsg', 'c', '1', '11')).toBe('open errno EPERM');
    expect(sysprobe(name, 'a', 'mknod-open', '/tmp/null', 'c', '1', '3')).toBe('open ok');
    expect(sysprobe(name, 'a', 'open', '/dev/urandom')).toBe('ok');
    // The same attempt works where nothing restricts it: the test's attempt is a real one.
    expect(sysprobe(name, 'p', 'mknod-open', '/tmp/kmsg', 'c', '1', '11')).toBe('open ok');
    // The eBPF program alone: a host process moved into the container's group on the unified
    // tree (and no other) can no longer open /dev/kmsg, but still /dev/null.
    const groups = JSON.parse(readHost(path.join(STATE_ROOT, name, 'containers', 'a', 'cgroups.json'))) as { cgroupVersion: number; cgroups: Record<string, string> };
    const unified = groups.cgroupVersion === 2 ? groups.cgroups[''] : groups.cgroups.unified;
    expect(unified, 'a group on the unified hierarchy').toBeTruthy();
    const script = `echo $$ > ${unified}/cgroup.procs || exit 9; ${probe} open /dev/kmsg; ${probe} open /dev/null`;
    const r = spawnSync('sh', ['-c', script], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual(['errno EPERM', 'ok']);
    expect(spawnSync(probe, ['open', '/dev/kmsg'], { encoding: 'utf8' }).stdout.trim()).toBe('ok');
  });

  it('seccomp: Docker\'s default profile in the node and in `netlab exec`; seccomp=unconfined, cap_add and a user profile change it as Docker\'s would', () => {
    const deny = path.join(tmp, 'deny-mkdir.json');
    fs.writeFileSync(deny, JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 }] }));
    const { name, file } = newLab('sec', `networks: { lan: { subnet: SUBNET, gateway: true } }
nodes:
  a: { networks: [lan], volumes: [PROBE] }
  u: { networks: [lan], volumes: [PROBE], security_opt: [seccomp=unconfined] }
  s: { networks: [lan], volumes: [PROBE], cap_add: [SYS_ADMIN] }
  f: { networks: [lan], volumes: [PROBE], security_opt: ["seccomp=${deny}"] }
`);
    netlabOk(['up', file]);
    expect(status(pidOf(name, 'a'), 'Seccomp')).toBe('2');
    expect(status(pidOf(name, 'u'), 'Seccomp')).toBe('0');
    const attacks: [string[], string, string][] = [
      // [probe arguments, default node, unconfined node]
      [['keyctl'], 'errno EPERM', 'ok'],
      [['vsock'], 'errno EPERM', 'ok'],
      [['vsock-high'], 'errno EPERM', 'ok'],
      [['unshare-user'], 'errno EPERM', 'ok'],
      [['bpf'], 'errno EPERM', 'errno EINVAL'],
    ];
    for (const [args, confined, unconfined] of attacks) {
      expect(sysprobe(name, 'a', ...args), `default: ${args.join(' ')}`).toBe(confined);
      expect(sysprobe(name, 'u', ...args), `unconfined: ${args.join(' ')}`).toBe(unconfined);
    }
    expect(sysprobe(name, 'a', 'clone3')).toBe('errno ENOSYS');
    expect(sysprobe(name, 'a', 'inet')).toBe('ok');
    expect(sh(name, 'a', 'unshare -U -r true').code).not.toBe(0);
    // With CAP_SYS_ADMIN the profile allows namespaces (as Docker's does), still no keyrings.
    expect(sysprobe(name, 's', 'clone-newnet')).toBe('ok');
    expect(sysprobe(name, 's', 'keyctl')).toBe('errno EPERM');
    // A user's Docker-format profile replaces the default.
    expect(sh(name, 'f', 'mkdir /tmp/x').err).toMatch(/Permission denied/);
    expect(sysprobe(name, 'f', 'keyctl')).toBe('ok');
    expect(sh(name, 'a', 'mkdir /tmp/x && echo made').out.trim()).toBe('made');
  });

  it('network_mode host: no NET_ADMIN or NET_RAW in the host\'s namespace unless cap_add asks; privileged keeps everything', () => {
    const { name, file } = newLab('host', `networks: { lan: { subnet: SUBNET, gateway: true } }
nodes:
  h: { network_mode: host }
  ha: { network_mode: host, cap_add: [NET_ADMIN] }
  b: { networks: [lan] }
  p: { networks: [lan], privileged: true }
`);
    netlabOk(['up', file]);
    const eff = (n: string) => status(pidOf(name, n), 'CapEff');
    expect(hasCap(eff('h'), CAP.NET_ADMIN)).toBe(false);
    expect(hasCap(eff('h'), CAP.NET_RAW)).toBe(false);
    expect(hasCap(eff('ha'), CAP.NET_ADMIN)).toBe(true);
    expect(hasCap(eff('b'), CAP.NET_ADMIN)).toBe(true);
    expect(hasCap(eff('b'), CAP.SYS_ADMIN)).toBe(false);
    expect(hasCap(eff('p'), CAP.SYS_ADMIN)).toBe(true);
    expect(status(pidOf(name, 'p'), 'Seccomp')).toBe('0');
    // The escape: a veth pair made in the host's namespace.
    const veth = `nlsec${RUN}`;
    const r = sh(name, 'h', `ip link add ${veth} type veth peer name ${veth}p`);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/Operation not permitted/);
    expect(spawnSync('ip', ['link', 'show', veth]).status).not.toBe(0);
    // A node with its own namespace configures its own interfaces as before.
    expect(sh(name, 'b', 'ip link add dummyx type veth peer name dummyy && ip link del dummyx && echo ok').out.trim()).toBe('ok');
  });

  it('bad security settings are refused before anything is built', () => {
    const { name, file } = newLab('bad', `nodes:
  a: { security_opt: ["seccomp=./missing.json"] }
`);
    const r = netlab(['up', file]);
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/cannot read seccomp profile .*missing\.json/);
    expect(fs.existsSync(path.join(STATE_ROOT, name))).toBe(false);
  });
});
