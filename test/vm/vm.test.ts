// test/vm/vm.ts, the harness that runs commands under Debian's own kernel in QEMU (this machine's
// kernel has no sch_netem). It boots real VMs: netem on the guest's loopback must add its delay
// to ping's round trip, node and cgroup2 must be there, a script from the host's /tmp must get
// in, a hung guest must be killed at its timeout, and netlab itself must bring a lab up inside,
// with netem on one of its links (that part runs as a vitest file inside the guest: the file
// itself, with VITEST_IN_VM=1).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, REPO, netlab, netlabOk, netnsList } from '../helpers/netlab.js';
import {
  BUSYBOX, VmTimeoutError, cpioNewc, findGuestKernel, guestSeesHostPath, isStaticElf, moduleLoadOrder,
  readModuleTree, runInVm, runNodeInVm, runVitestInVm, vmUnavailableReason,
} from './vm.js';

const inGuest = process.env.VITEST_IN_VM === '1';
const why = inGuest ? null : vmUnavailableReason();
if (!inGuest && why) console.warn(`test/vm/vm.test.ts: the VM tests are skipped: ${why}`);

/** Every `time=N ms` of ping's output (iputils and busybox print it alike). */
const pingTimes = (out: string): number[] => [...out.matchAll(/time=([\d.]+) ?ms/g)].map((m) => Number(m[1]));
const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]!; };
/** The lines between `== NAME` and the next `== ` line of a guest script's output. */
const section = (out: string, name: string): string => {
  const m = new RegExp(`^== ${name}\\n([\\s\\S]*?)(?=^== |(?![\\s\\S]))`, 'm').exec(out);
  if (!m) throw new Error(`no section ${name} in the guest's output:\n${out}`);
  return m[1]!;
};

describe.skipIf(inGuest)('vm.ts without a VM: module order, cpio, paths', () => {
  it('orders modules dependencies first, soft dependencies through aliases (generic first), built-ins left out, an unknown one named', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-vmtree-'));
    try {
      fs.writeFileSync(path.join(dir, 'modules.dep'), [
        'kernel/net/netfilter/nft_nat.ko.xz: kernel/net/netfilter/nf_tables.ko.xz kernel/net/netfilter/nfnetlink.ko kernel/net/netfilter/nf_nat.ko kernel/lib/libcrc32c.ko',
        'kernel/net/netfilter/nf_tables.ko.xz: kernel/net/netfilter/nfnetlink.ko kernel/lib/libcrc32c.ko',
        'kernel/net/netfilter/nf_nat.ko: kernel/lib/libcrc32c.ko',
        'kernel/net/netfilter/nfnetlink.ko:',
        'kernel/lib/libcrc32c.ko:',
        'kernel/crypto/crc32c_generic.ko:',
        'kernel/arch/x86/crypto/crc32c-intel.ko:',
        'kernel/net/sched/sch_netem.ko.zst:',
        '',
      ].join('\n'));
      fs.writeFileSync(path.join(dir, 'modules.softdep'), '# comment\nsoftdep libcrc32c pre: crc32c\n');
      fs.writeFileSync(path.join(dir, 'modules.alias'), 'alias crc32c crc32c_intel\nalias crc32c crc32c_generic\nalias pci:v*d* crc32c_intel\n');
      fs.writeFileSync(path.join(dir, 'modules.builtin'), 'kernel/net/ipv4/udp_tunnel.ko\n');
      const tree = readModuleTree(dir);
      const order = moduleLoadOrder(tree, ['nft-nat', 'sch_netem', 'udp_tunnel', 'nf_tables']);
      expect(order).toEqual(['nfnetlink', 'crc32c_generic', 'libcrc32c', 'nf_tables', 'nf_nat', 'nft_nat', 'sch_netem']);
      // The property insmod needs: every module after its dependencies and soft dependencies.
      for (const [m, { deps }] of tree.deps) {
        if (!order.includes(m)) continue;
        for (const d of [...deps, ...(m === 'libcrc32c' ? ['crc32c_generic'] : [])]) expect(order.indexOf(d), `${d} before ${m}`).toBeLessThan(order.indexOf(m));
      }
      expect(() => moduleLoadOrder(tree, ['nf_nat', 'sch_nosuch'])).toThrow(/kernel module sch_nosuch is neither in modules.dep nor built in/);
      fs.appendFileSync(path.join(dir, 'modules.dep'), 'kernel/net/sched/act_x.ko: kernel/net/sched/cls_missing.ko\n');
      expect(() => moduleLoadOrder(readModuleTree(dir), ['act_x'])).toThrow(/cls_missing .*needed by act_x/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(!isStaticElf(BUSYBOX) || process.getuid?.() !== 0)('writes newc archives that cpio unpacks: directories, files with their modes and contents, a device node', () => {
    const archive = cpioNewc([
      { name: 'bin', mode: 0o040755 },
      { name: 'bin/hello', mode: 0o100755, data: Buffer.from('#!/bin/sh\necho hi\n') },
      { name: 'dev', mode: 0o040755 },
      { name: 'dev/console', mode: 0o020600, rdev: [5, 1] },
      { name: 'odd-size', mode: 0o100644, data: Buffer.from('abcde') },
    ]);
    expect(archive.length % 4).toBe(0);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-vmcpio-'));
    try {
      const r = spawnSync(BUSYBOX, ['cpio', '-i', '-d'], { input: archive, cwd: dir, encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      expect(fs.readdirSync(dir).sort()).toEqual(['bin', 'dev', 'odd-size']);
      expect(fs.readFileSync(path.join(dir, 'bin/hello'), 'utf8')).toBe('#!/bin/sh\necho hi\n');
      expect(fs.statSync(path.join(dir, 'bin/hello')).mode & 0o7777).toBe(0o755);
      expect(fs.readFileSync(path.join(dir, 'odd-size'), 'utf8')).toBe('abcde');
      const con = fs.statSync(path.join(dir, 'dev/console'));
      expect(con.isCharacterDevice()).toBe(true);
      expect([Math.floor(con.rdev / 256), con.rdev % 256]).toEqual([5, 1]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('knows which host paths the guest sees (it has its own /tmp and /run)', () => {
    expect(guestSeesHostPath(REPO)).toBe(true);
    expect(guestSeesHostPath('/var/tmp/x.js')).toBe(true);
    expect(guestSeesHostPath('/tmp/x.js')).toBe(false);
    expect(guestSeesHostPath('/run/netlab/x')).toBe(false);
    expect(guestSeesHostPath('/tmpfoo/x')).toBe(true);
  });
});

describe.skipIf(inGuest || why !== null)("a second kernel in QEMU (Debian's, with sch_netem)", () => {
  it('netem on the guest loopback adds 2 x 50 ms to ping; node and cgroup2 are there; the exit code comes back', async () => {
    const kernel = findGuestKernel()!;
    const script = [
      'set -e',
      'echo "== base"', 'ping -n -c 5 -i 0.2 127.0.0.1',
      'tc qdisc add dev lo root netem delay 50ms',
      'echo "== netem"', 'ping -n -c 5 -i 0.2 127.0.0.1',
      'echo "== qdisc"', 'tc qdisc show dev lo',
      'echo "== node"', `node -e 'console.log(JSON.stringify({ version: process.version, release: require("os").release(), cwd: process.cwd() }))'`,
      'echo "== cgroup"', 'grep " /sys/fs/cgroup " /proc/mounts', 'cat /sys/fs/cgroup/cgroup.controllers',
      'echo "== end"', 'exit 3',
    ].join('\n');
    const r = await runInVm(['sh', '-c', script], { timeoutMs: 240_000, modules: ['sch_netem'], cwd: REPO });
    console.log(`VM (${kernel.version}): boot ${(r.bootMs / 1000).toFixed(1)} s, boot + command + power-off ${(r.totalMs / 1000).toFixed(1)} s`);
    expect(r.code, r.output).toBe(3);
    const base = pingTimes(section(r.output, 'base'));
    const netem = pingTimes(section(r.output, 'netem'));
    console.log(`ping 127.0.0.1 in the guest, ms: without netem ${base.join(' ')}; with delay 50ms ${netem.join(' ')}`);
    expect(base).toHaveLength(5);
    expect(netem).toHaveLength(5);
    // The request and the reply both leave through lo's qdisc: netem delays each by 50 ms, so no
    // round trip can be shorter than 100 ms; emulation adds its own time to both runs alike.
    expect(Math.min(...netem)).toBeGreaterThanOrEqual(100);
    const added = median(netem) - median(base);
    expect(added).toBeGreaterThan(90);
    expect(added).toBeLessThan(180);
    expect(section(r.output, 'qdisc')).toMatch(/qdisc netem \S+ root .*delay 50ms/);
    const nodeInfo = JSON.parse(section(r.output, 'node')) as { version: string; release: string; cwd: string };
    expect(nodeInfo).toEqual({ version: process.version, release: kernel.version, cwd: REPO });
    expect(kernel.version).not.toBe(os.release());
    const cg = section(r.output, 'cgroup');
    expect(cg).toMatch(/^cgroup2 \/sys\/fs\/cgroup cgroup2 /m);
    expect(cg).toMatch(/\bmemory\b.*\bpids\b|\bpids\b.*\bmemory\b/);
  }, 300_000);

  it('runNodeInVm takes a script from the host /tmp in with the job, passes its arguments, and netlab --help runs inside', async () => {
    expect(fs.existsSync(path.join(REPO, 'dist/cli/main.js')), 'dist/ is not built: npm run build').toBe(true);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-vmscript-'));
    try {
      const script = path.join(dir, 'probe.mjs');
      fs.writeFileSync(script, [
        "import { execFileSync } from 'node:child_process';",
        "import * as os from 'node:os';",
        `const help = execFileSync(process.execPath, [${JSON.stringify(CLI)}, '--help'], { encoding: 'utf8' });`,
        "console.log(JSON.stringify({ args: process.argv.slice(2), release: os.release(), usage: help.split('\\n')[0] }));",
      ].join('\n'));
      const r = await runNodeInVm(script, ['one', 'two words', "it's"], { timeoutMs: 240_000, cwd: REPO });
      console.log(`runNodeInVm: boot ${(r.bootMs / 1000).toFixed(1)} s, total ${(r.totalMs / 1000).toFixed(1)} s`);
      expect(r.code, r.output).toBe(0);
      expect(JSON.parse(r.output.trim().split('\n').pop()!)).toEqual({
        args: ['one', 'two words', "it's"], release: findGuestKernel()!.version, usage: 'Usage: netlab [options] [command]',
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);

  it('kills a guest that runs past its timeout and leaves no temporary files', async () => {
    const tmpBefore = new Set(fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith('netlab-vm-')));
    const t0 = performance.now();
    const err = await runInVm(['sleep', '600'], { timeoutMs: 5_000, modules: [] }).then(() => null, (e: unknown) => e);
    const ms = performance.now() - t0;
    expect(err).toBeInstanceOf(VmTimeoutError);
    expect(String((err as Error).message)).toMatch(/VM killed after 5000 ms/);
    expect(ms).toBeLessThan(15_000);
    const left = fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith('netlab-vm-') && !tmpBefore.has(f));
    expect(left).toEqual([]);
  }, 60_000);

  it('netlab up of a two-node lab inside the guest, netem on one of its links, check, down (this file, run by vitest in the VM)', async () => {
    expect(fs.existsSync(path.join(REPO, 'dist/cli/main.js')), 'dist/ is not built: npm run build').toBe(true);
    const r = await runVitestInVm(REPO, 'test/vm/vm.test.ts', { timeoutMs: 540_000 });
    console.log(`vitest in the VM: boot ${(r.bootMs / 1000).toFixed(1)} s, total ${(r.totalMs / 1000).toFixed(1)} s`);
    expect(r.code, r.output).toBe(0);
    const line = /^NETLAB_VM_LAB (.*)$/m.exec(r.output);
    expect(line, `the guest-side test did not run:\n${r.output}`).not.toBeNull();
    const lab = JSON.parse(line![1]!) as { before: number[]; after: number[] };
    console.log(`ping a -> b in the guest's lab, ms: ${lab.before.join(' ')}; with netem delay 50ms on a's eth0: ${lab.after.join(' ')}`);
    expect(Math.min(...lab.after)).toBeGreaterThanOrEqual(50);
    expect(median(lab.after) - median(lab.before)).toBeGreaterThan(40);
  }, 600_000);
});

// The guest side of the test above: runs only inside the VM (VITEST_IN_VM=1), where the kernel
// has netem and the whole of /run, /tmp and the cgroup2 tree belong to this test.
describe.skipIf(!inGuest)('inside the VM: netlab on the second kernel', () => {
  it('brings a two-node lab up, pings across it with and without netem, checks it, takes it down', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmlab-'));
    const file = path.join(dir, 'vmtiny.yml');
    fs.writeFileSync(file, [
      'name: vmtiny',
      'networks:',
      '  lan: { driver: bridge, subnet: 10.77.0.0/24 }',
      'nodes:',
      '  a: { networks: [lan] }',
      '  b: { networks: [lan] }',
      'checks:',
      '  - ping: { from: a, to: b }',
      '',
    ].join('\n'));
    netlabOk(['up', file]);
    try {
      expect(netnsList()).toEqual(expect.arrayContaining(['netlab.vmtiny.a', 'netlab.vmtiny.b']));
      const ping = () => {
        const r = netlab(['exec', 'vmtiny', 'a', '--', 'ping', '-c', '5', '-i', '0.2', 'b']);
        expect(r.status, r.stdout + r.stderr).toBe(0);
        return pingTimes(r.stdout);
      };
      const before = ping();
      const tc = spawnSync('ip', ['netns', 'exec', 'netlab.vmtiny.a', 'tc', 'qdisc', 'add', 'dev', 'eth0', 'root', 'netem', 'delay', '50ms'], { encoding: 'utf8' });
      expect(tc.status, tc.stderr).toBe(0);
      const after = ping();
      expect(before).toHaveLength(5);
      expect(after).toHaveLength(5);
      netlabOk(['check', 'vmtiny']);
      console.log(`NETLAB_VM_LAB ${JSON.stringify({ before, after })}`);
    } finally {
      netlabOk(['down', 'vmtiny']);
    }
    expect(netnsList().filter((n) => n.startsWith('netlab.vmtiny.'))).toEqual([]);
  }, 300_000);
});
