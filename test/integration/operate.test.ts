// `netlab inspect`, `netlab cp` and `netlab capture` through the real CLI as root, on one lab of
// two busybox nodes: inspect shows what the topology set (command, env, resources) and the
// addresses the kernel has; cp copies a file (mode 0750 kept) and a directory tree in and out,
// and a symlink in the container pointing to /etc/shadow (or to /etc) is resolved inside the
// container, never on the host (the host's /etc/shadow is unchanged, and what comes out is the
// container's); capture records a ping between the nodes as pcap that this file parses itself
// (global header, link type 1, records): the ICMP echo request and reply with the right
// addresses, -c stopping, `--filter icmp` keeping only ICMP; no capture process is left.
//
// Safety on a shared machine: the lab is op<random hex> on a 10.X block nothing routes
// (freeOctets), with an internal network (no gateway: nothing leaves the lab), and only `down`
// of this file's lab is used.
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labId } from '../../topology/names.js';
import { addLeakProbe, cgroupProbe, containerProcessProbe, expectNoLeaks, snapshot, type Snapshot } from '../helpers/leaks.js';
import { CLI, REPO, assertBuildFresh, downAndCheck, forceRemoveLab, freeOctets, labLeftovers, netlab, netlabOk, processesWithArg, prng, sleep } from '../helpers/netlab.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('test/integration/operate.test.ts skipped: it needs root (it starts containers)');

const RUN = randomBytes(3).toString('hex');
const rand = prng(Number(process.env.NETLAB_TEST_SEED ?? 0x6f70));

// ---------------------------------------------------------------- pcap, read here

interface Frame { sec: number; usec: number; data: Buffer; origLen: number }

function parsePcap(buf: Buffer): { linkType: number; frames: Frame[] } {
  expect(buf.length).toBeGreaterThanOrEqual(24);
  expect(buf.readUInt32LE(0)).toBe(0xa1b2c3d4);
  expect(buf.readUInt16LE(4)).toBe(2);
  expect(buf.readUInt16LE(6)).toBe(4);
  const linkType = buf.readUInt32LE(20);
  const frames: Frame[] = [];
  let o = 24;
  while (o < buf.length) {
    expect(buf.length - o).toBeGreaterThanOrEqual(16);
    const incl = buf.readUInt32LE(o + 8);
    expect(buf.length - o - 16).toBeGreaterThanOrEqual(incl);
    frames.push({ sec: buf.readUInt32LE(o), usec: buf.readUInt32LE(o + 4), origLen: buf.readUInt32LE(o + 12), data: buf.subarray(o + 16, o + 16 + incl) });
    o += 16 + incl;
  }
  return { linkType, frames };
}

const ipStr = (b: Buffer, at: number) => [...b.subarray(at, at + 4)].join('.');

/** An IPv4 ICMP frame's type, source and destination, or null. */
function icmpOf(f: Frame): { type: number; src: string; dst: string } | null {
  const d = f.data;
  if (d.length < 34 || d.readUInt16BE(12) !== 0x0800 || d[23] !== 1) return null;
  const ihl = (d[14] & 15) * 4;
  return { type: d[14 + ihl], src: ipStr(d, 26), dst: ipStr(d, 30) };
}

describe.skipIf(!isRoot)('netlab inspect, cp and capture', () => {
  const lab = `op${RUN}`;
  let tmp = '';
  let before: Snapshot;
  let subnet = '';
  const addr = (n: number) => subnet.replace(/0$/, String(n));

  const exec = (node: string, argv: string[]) => netlab(['exec', lab, node, '--', ...argv]);

  /** `netlab capture` running in the background; resolves when it said it is listening. */
  async function startCapture(args: string[]): Promise<{ done: Promise<{ code: number | null; out: Buffer; err: string }>; pid: number }> {
    const child = spawn(process.execPath, [CLI, 'capture', lab, ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => chunks.push(d));
    const listening = new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (d: Buffer) => { err += d.toString(); if (err.includes('listening on')) resolve(); });
      child.on('exit', () => reject(new Error(`capture exited before listening: ${err}`)));
    });
    const done = new Promise<{ code: number | null; out: Buffer; err: string }>((resolve) => child.on('close', (code) => resolve({ code, out: Buffer.concat(chunks), err })));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    void done.then(() => clearTimeout(timer));
    await listening;
    return { done, pid: child.pid! };
  }

  beforeAll(() => {
    assertBuildFresh();
    addLeakProbe(cgroupProbe((d) => d.includes(`/netlab/op${RUN}`)));
    addLeakProbe(containerProcessProbe((g) => g.includes(`/netlab/op${RUN}`)));
    addLeakProbe({ name: 'capture processes', list: () => processesWithArg(`netlab.${lab}.`).map((p) => `${p.pid} ${p.cmd}`) });
    before = snapshot();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-op-'));
    const [o] = freeOctets(1, rand);
    subnet = `10.${o}.7.0`;
    const file = path.join(tmp, `${lab}.yml`);
    fs.writeFileSync(file, [
      `name: ${lab}`,
      'networks:',
      `  lan: { subnet: ${subnet}/24, gateway: false }`,
      'nodes:',
      `  a: { networks: { lan: { ipv4: ${addr(10)} } }, command: [sh, -c, "echo started; exec sleep 100000"], environment: { GREETING: "hello ${RUN}" }, resources: { memory: 48m, pids: 64 }, working_dir: /tmp }`,
      `  b: { networks: { lan: { ipv4: ${addr(11)} } } }`,
      '',
    ].join('\n'));
    netlabOk(['up', file]);
  });

  afterAll(async () => {
    const left = await downAndCheck(lab);
    if (labLeftovers(lab).length > 0) console.warn(`removing what is left of ${lab} without netlab: ${(await forceRemoveLab(lab)).join('; ')}`);
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    expect(left).toEqual([]);
    const id = labId(lab);
    await expectNoLeaks(before, { only: (probe, item) => probe === 'child processes' || probe === 'capture processes' || item.includes(lab) || item.startsWith(`nl${id}`) || item === `ip netlab_${id}` });
  });

  it('inspect shows the command, env, resources, working dir and the kernel\'s addresses', () => {
    const j = JSON.parse(netlabOk(['inspect', lab, 'a', '--json']).stdout) as {
      argv: string[]; env: Record<string, string>; resources: { memoryBytes: number; pids: number }; workingDir: string;
      state: { state: string; pid: number }; image: { reference: string }; interfaces: { name: string; addresses: string[] }[]; routes: { dst: string; dev: string }[];
    };
    expect(j.argv).toEqual(['sh', '-c', 'echo started; exec sleep 100000']);
    expect(j.env.GREETING).toBe(`hello ${RUN}`);
    expect(j.resources).toMatchObject({ memoryBytes: 48 * 1024 * 1024, pids: 64 });
    expect(j.workingDir).toBe('/tmp');
    expect(j.image.reference).toBe('busybox');
    expect(j.state.state).toBe('running');
    expect(Number(fs.readFileSync(`/run/netlab/${lab}/containers/a/pid`, 'utf8'))).toBe(j.state.pid);
    expect(j.interfaces.find((f) => f.name === 'eth0')?.addresses).toEqual([`${addr(10)}/24`]);
    expect(j.routes.some((r) => r.dst === `${subnet}/24` && r.dev === 'eth0')).toBe(true);
    const text = netlabOk(['inspect', lab, 'a']).stdout;
    expect(text).toContain(`lab ${lab} node a: running (pid ${j.state.pid})`);
    expect(text).toContain(`GREETING=hello ${RUN}`);
    expect(text).toContain('memory 48 MiB, pids 64');
    expect(text).toContain(`${addr(10)}/24`);
    expect(text).toContain('command      sh -c "echo started; exec sleep 100000"');
  });

  it('inspect of an unknown node or lab is one line with a did-you-mean, exit 1', () => {
    const n = netlab(['inspect', lab, 'aa']);
    expect(n.status).toBe(1);
    expect(n.stderr).toBe(`netlab: lab ${lab} has no node aa; did you mean "a"? (nodes: a, b)\n`);
    const l = netlab(['inspect', `${lab}x`, 'a']);
    expect(l.status).toBe(1);
    expect(l.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    expect(l.stderr).toMatch(new RegExp(`^netlab: lab ${lab}x is not up; did you mean "${lab}"\\?`));
  });

  it('cp in and out keeps a file\'s mode 0750, and copies a directory tree', () => {
    const f = path.join(tmp, 'tool.sh');
    fs.writeFileSync(f, `#!/bin/sh\necho tool ${RUN}\n`);
    fs.chmodSync(f, 0o750);
    fs.chownSync(f, 1234, 2345);
    netlabOk(['cp', f, `${lab}:a:/tmp/`]);
    expect(exec('a', ['stat', '-c', '%a %u %g %s', '/tmp/tool.sh']).stdout.trim()).toBe(`750 1234 2345 ${fs.statSync(f).size}`);
    expect(exec('a', ['/tmp/tool.sh']).stdout).toBe(`tool ${RUN}\n`);
    const back = path.join(tmp, 'tool-back.sh');
    netlabOk(['cp', `${lab}:a:/tmp/tool.sh`, back]);
    expect(fs.statSync(back).mode & 0o7777).toBe(0o750);
    expect(fs.readFileSync(back, 'utf8')).toBe(`#!/bin/sh\necho tool ${RUN}\n`);

    // A tree: nested directories, a file with every byte value, an empty directory, a relative link.
    const tree = path.join(tmp, 'tree');
    fs.mkdirSync(path.join(tree, 'd1/d2'), { recursive: true });
    fs.mkdirSync(path.join(tree, 'empty'));
    const blob = Buffer.concat([randomBytes(100_000), Buffer.from(Array.from({ length: 256 }, (_, i) => i))]);
    fs.writeFileSync(path.join(tree, 'd1/d2/blob'), blob);
    fs.writeFileSync(path.join(tree, 'top.txt'), 'top\n');
    fs.chmodSync(path.join(tree, 'd1'), 0o711);
    fs.symlinkSync('d1/d2/blob', path.join(tree, 'rel'));
    const longName = 'n'.repeat(120);
    fs.writeFileSync(path.join(tree, 'd1', longName), 'long\n');
    netlabOk(['cp', tree, `${lab}:a:/srv-tree`]); // does not exist: the tree becomes /srv-tree
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    expect(exec('a', ['sha256sum', '/srv-tree/d1/d2/blob']).stdout.split(' ')[0]).toBe(sha(blob));
    expect(exec('a', ['readlink', '/srv-tree/rel']).stdout.trim()).toBe('d1/d2/blob');
    expect(exec('a', ['stat', '-c', '%a', '/srv-tree/d1']).stdout.trim()).toBe('711');
    expect(exec('a', ['cat', `/srv-tree/d1/${longName}`]).stdout).toBe('long\n');
    expect(exec('a', ['test', '-d', '/srv-tree/empty']).status).toBe(0);
    const out = path.join(tmp, 'out');
    fs.mkdirSync(out);
    netlabOk(['cp', `${lab}:a:/srv-tree`, out]); // an existing directory: into it, as srv-tree
    expect(sha(fs.readFileSync(path.join(out, 'srv-tree/d1/d2/blob')))).toBe(sha(blob));
    expect(fs.readlinkSync(path.join(out, 'srv-tree/rel'))).toBe('d1/d2/blob');
    expect(fs.statSync(path.join(out, 'srv-tree/d1')).mode & 0o7777).toBe(0o711);
    expect(fs.readFileSync(path.join(out, 'srv-tree/d1', longName), 'utf8')).toBe('long\n');
    expect(fs.statSync(path.join(out, 'srv-tree/empty')).isDirectory()).toBe(true);
    expect(fs.readFileSync(path.join(out, 'srv-tree/top.txt'), 'utf8')).toBe('top\n');
  });

  it('a symlink in the container to /etc/shadow or /etc resolves in the container, never on the host', () => {
    const hostShadow = fs.readFileSync('/etc/shadow');
    const marker = path.join(tmp, 'marker');
    fs.writeFileSync(marker, `written by cp ${RUN}\n`);
    expect(exec('a', ['ln', '-s', '/etc/shadow', '/tmp/evil']).status).toBe(0);
    expect(exec('a', ['ln', '-s', '/etc', '/tmp/evildir']).status).toBe(0);
    // Into the container through the links: the host's file is never touched.
    netlabOk(['cp', marker, `${lab}:a:/tmp/evildir/shadow`]);
    expect(fs.readFileSync('/etc/shadow').equals(hostShadow)).toBe(true);
    expect(exec('a', ['cat', '/etc/shadow']).stdout).toBe(`written by cp ${RUN}\n`);
    netlabOk(['cp', marker, `${lab}:a:/tmp/evil`]);
    expect(fs.readFileSync('/etc/shadow').equals(hostShadow)).toBe(true);
    // The link itself was replaced by the file (never written through), in the container.
    expect(exec('a', ['sh', '-c', 'test -L /tmp/evil || cat /tmp/evil']).stdout).toBe(`written by cp ${RUN}\n`);
    // Out of the container through a link: the container's /etc/shadow, not the host's.
    expect(exec('a', ['ln', '-s', '/etc/shadow', '/tmp/leak']).status).toBe(0);
    const got = path.join(tmp, 'leaked');
    netlabOk(['cp', `${lab}:a:/tmp/leak`, got]);
    expect(fs.readFileSync(got, 'utf8')).toBe(`written by cp ${RUN}\n`);
    expect(fs.readFileSync(got).equals(hostShadow)).toBe(false);
    // A directory reached through /tmp/evildir: the container's /etc (its hostname file).
    const etc = path.join(tmp, 'etc-out');
    netlabOk(['cp', `${lab}:a:/tmp/evildir/hostname`, etc]);
    expect(fs.readFileSync(etc, 'utf8')).toBe('a\n');
    // A missing path is one line, exit 1.
    const miss = netlab(['cp', `${lab}:a:/no/such/file`, path.join(tmp, 'x')]);
    expect(miss.status).toBe(1);
    expect(miss.stderr).toBe('netlab: cp: /no/such/file: No such file or directory\n');
    const nodir = netlab(['cp', marker, `${lab}:a:/no/such/dir/x`]);
    expect(nodir.status).toBe(1);
    expect(nodir.stderr).toBe('netlab: cp: /no/such/dir: No such file or directory\n');
  });

  it('capture records a ping between the nodes as pcap: echo request and reply with the right addresses; -c stops it', async () => {
    const cap = await startCapture(['a:eth0', '-c', '6']);
    const ping = exec('a', ['ping', '-c', '3', '-i', '0.2', addr(11)]);
    expect(ping.status, ping.stderr).toBe(0);
    // Six frames: three requests and three replies, at least (ARP may come first; -c counts all).
    let r = await Promise.race([cap.done, sleep(5000).then(() => null)]);
    if (r === null) {
      // ARP took some of the six: one more ping fills them up.
      exec('a', ['ping', '-c', '3', '-i', '0.2', addr(11)]);
      r = await cap.done;
    }
    expect(r.code, r.err).toBe(0);
    expect(r.err).toContain('6 packets captured');
    const p = parsePcap(r.out);
    expect(p.linkType).toBe(1);
    expect(p.frames).toHaveLength(6);
    const icmp = p.frames.map(icmpOf).filter((x) => x !== null);
    expect(icmp.some((x) => x.type === 8 && x.src === addr(10) && x.dst === addr(11))).toBe(true);
    expect(icmp.some((x) => x.type === 0 && x.src === addr(11) && x.dst === addr(10))).toBe(true);
    const now = Date.now() / 1000;
    for (const f of p.frames) {
      expect(Math.abs(f.sec - now)).toBeLessThan(60);
      expect(f.usec).toBeLessThan(1_000_000);
      expect(f.origLen).toBe(f.data.length);
    }
  });

  it('--filter icmp keeps only ICMP (the ARP and TCP traffic around it are left out), -w writes a file', async () => {
    const file = path.join(tmp, 'icmp.pcap');
    const cap = await startCapture(['b:eth0', '--filter', 'icmp', '-c', '2', '-w', file]);
    // The same interface unfiltered, to show the traffic that is not ICMP was there.
    const all = await startCapture(['b:eth0']);
    // Traffic that is not ICMP first: ARP (fresh neighbour entries) and TCP to a closed port
    // (SYN, RST: no ICMP comes back).
    exec('b', ['ip', 'neigh', 'flush', 'all']);
    exec('b', ['sh', '-c', `for i in 1 2 3; do nc -w 1 ${addr(10)} 9999 </dev/null; done; true`]);
    exec('b', ['ip', 'neigh', 'flush', 'all']);
    const ping = exec('b', ['ping', '-c', '1', addr(10)]);
    expect(ping.status, ping.stderr).toBe(0);
    const r = await cap.done;
    expect(r.code, r.err).toBe(0);
    expect(r.out.length).toBe(0); // -w: nothing on stdout
    const p = parsePcap(fs.readFileSync(file));
    expect(p.linkType).toBe(1);
    expect(p.frames).toHaveLength(2);
    const icmp = p.frames.map(icmpOf);
    expect(icmp.every((x) => x !== null)).toBe(true);
    expect(icmp.map((x) => x!.type).sort()).toEqual([0, 8]);
    expect(icmp.find((x) => x!.type === 8)).toMatchObject({ src: addr(11), dst: addr(10) });
    process.kill(all.pid, 'SIGINT');
    const u = parsePcap((await all.done).out);
    const types = new Set(u.frames.map((f) => (f.data.readUInt16BE(12) === 0x0806 ? 'arp' : f.data.readUInt16BE(12) === 0x0800 ? `ip${f.data[23]}` : 'other')));
    expect(types.has('arp')).toBe(true);
    expect(types.has('ip6')).toBe(true); // TCP
    expect(types.has('ip1')).toBe(true);
  });

  it('capture ends on SIGTERM and when its reader goes away, leaving no process', async () => {
    const cap = await startCapture(['a:eth0']);
    process.kill(cap.pid, 'SIGTERM');
    const r = await cap.done;
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/\d+ packets? captured/);
    expect(parsePcap(r.out).linkType).toBe(1);
    // The reader closes after the pcap header, with no traffic at all: the capture notices.
    const t0 = Date.now();
    const piped = spawnSync('sh', ['-c', `${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} capture ${lab} b:lo | head -c 24 | od -A n -t x1 | head -1`], { cwd: REPO, encoding: 'utf8', timeout: 20_000 });
    expect(piped.status, piped.stderr).toBe(0);
    expect(piped.stdout.trim().startsWith('d4 c3 b2 a1')).toBe(true);
    expect(Date.now() - t0).toBeLessThan(15_000);
    for (const deadline = Date.now() + 3000; processesWithArg(`netlab.${lab}.`).length > 0 && Date.now() < deadline;) await sleep(50);
    expect(processesWithArg(`netlab.${lab}.`)).toEqual([]);
    // An unknown interface: one line with a did-you-mean, exit 1.
    const bad = netlab(['capture', lab, 'a:eth1', '-w', path.join(tmp, 'x.pcap')]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toBe(`netlab: node a of lab ${lab} has no interface eth1; did you mean "eth0"? (interfaces: lo, eth0)\n`);
  });
});
