// dns checks through the real CLI, as root, on real labs: netlab resolves names itself, from the
// source container's own /etc/hosts, /etc/resolv.conf and nsswitch order, with DNS queries sent
// by the probe helper from the node's namespace. So a check passes from a node whose image has
// no ping, nslookup or wget (removed from the container first), and the DNS path is proven
// against a responder this file starts inside a lab node's namespace (`ip netns exec` of a small
// Node script written here): the search list, CNAMEs, NXDOMAIN, no A record, SERVFAIL, a
// malformed answer, a server that never answers (a timeout within the check's timeout), the next
// server after a silent one, and queries from a host-mode node's stack.
//
// Safety on a shared machine: labs are named hdns<run>-<what><n>; every DNS query goes only to
// responders this file runs on lab addresses (each container's resolv.conf, which netlab copies
// from the host, is replaced before any check could fall through to DNS); internal networks sit
// on 10.X blocks nothing routes (freeOctets), the host-mode test's gateway network on a free /24.
// Each test takes its labs down and stops its responders, and asserts nothing of either is left.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { labId } from '../../topology/names.js';
import type { CheckReport } from '../../checks/run.js';
import { addLeakProbe, cgroupProbe, containerProcessProbe, expectNoLeaks, snapshot, type Snapshot } from '../helpers/leaks.js';
import { addrOf, assertBuildFresh, downAndCheck, downEach, forceRemoveLab, freeOctets, freeSubnet, labLeftovers, loadModel, netlab, netlabOk, processesWithArg, prng, waitExit, type CliResult } from '../helpers/netlab.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('test/integration/dns.test.ts skipped: it needs root (it builds labs and runs a DNS responder in one)');

const RUN = randomBytes(3).toString('hex');
const rand = prng(Number(process.env.NETLAB_TEST_SEED ?? 0x646e7331));

// A minimal DNS responder: UDP, one question per message, answers from ZONE (name -> { a, cname,
// rcode, silent, loop }; "*" for every other name, else NXDOMAIN). It appends one JSON line per
// question it gets to LOG (a file, so a test blocked in spawnSync misses none), and prints
// "listening" once bound.
const RESPONDER = String.raw`
import dgram from 'node:dgram';
import { appendFileSync } from 'node:fs';
const [address, zoneJson, log] = process.argv.slice(2);
const zone = JSON.parse(zoneJson);
const enc = (name) => Buffer.concat([...name.split('.').filter(Boolean).map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);
const u16 = (n) => { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b; };
const ptr = (off) => Buffer.from([0xc0 | (off >> 8), off & 0xff]);
const rr = (owner, type, rdata) => Buffer.concat([owner, u16(type), u16(1), Buffer.from([0, 0, 0, 60]), u16(rdata.length), rdata]);
const ipv4 = (a) => Buffer.from(a.split('.').map(Number));
const sock = dgram.createSocket('udp4');
sock.on('message', (msg, from) => {
  let off = 12;
  const labels = [];
  while (off < msg.length && msg[off] > 0) { labels.push(msg.subarray(off + 1, off + 1 + msg[off]).toString()); off += msg[off] + 1; }
  const name = labels.join('.');
  const question = msg.subarray(12, off + 5);
  appendFileSync(log, JSON.stringify({ name, type: msg.readUInt16BE(off + 1), from: from.address }) + '\n');
  const rec = zone[name.toLowerCase()] ?? zone['*'];
  if (rec?.silent) return;
  const answers = [];
  if (rec?.cname) {
    // The CNAME, then A records whose owner is a pointer to the CNAME's target name.
    answers.push(rr(ptr(12), 5, enc(rec.cname)));
    for (const a of rec.a ?? []) answers.push(rr(ptr(12 + question.length + 12), 1, ipv4(a)));
  } else if (rec?.loop) {
    answers.push(rr(ptr(12 + question.length), 1, ipv4('10.0.0.1'))); // an owner that points at itself
  } else {
    for (const a of rec?.a ?? []) answers.push(rr(ptr(12), 1, ipv4(a)));
  }
  const rcode = rec ? (rec.rcode ?? 0) : 3;
  const head = Buffer.concat([msg.subarray(0, 2), Buffer.from([0x81, 0x80 | rcode]), u16(1), u16(answers.length), u16(0), u16(0)]);
  sock.send(Buffer.concat([head, question, ...answers]), from.port, from.address);
});
sock.bind(53, address, () => console.log('listening'));
`;

interface Query { name: string; type: number; from: string }
interface Responder {
  child: ChildProcess;
  /** The questions it got since the last forget(). */
  queries(): Query[];
  forget(): void;
}

describe.skipIf(!isRoot)('dns checks: netlab resolves as the container would, without tools of its image', () => {
  let tmp = '';
  let script = '';
  let before: Snapshot;
  const myLabs = new Set<string>();
  const testLabs = new Set<string>();
  const responders = new Set<Responder>();
  let counter = 0;

  function newLab(what: string): string {
    const name = `hdns${RUN}-${what}${counter++}`;
    if (!/^[a-z][a-z0-9-]{0,31}$/.test(name)) throw new Error(`test bug: bad lab name ${name}`);
    myLabs.add(name);
    testLabs.add(name);
    return name;
  }

  function up(lab: string, lines: string[]): string {
    const file = path.join(tmp, `${lab}.yml`);
    fs.writeFileSync(file, [`name: ${lab}`, ...lines, ''].join('\n'));
    netlabOk(['up', file]);
    return file;
  }

  /** Runs a shell command inside a node (busybox sh) and fails on a non-zero exit. */
  function sh(lab: string, node: string, cmd: string): void {
    netlabOk(['exec', lab, node, '--', 'sh', '-c', cmd]);
  }

  const setResolv = (lab: string, node: string, text: string) => sh(lab, node, `printf '${text.replace(/\n/g, '\\n')}' > /etc/resolv.conf`);

  /** Starts the responder on ADDRESS inside node NODE's namespace; resolves once it listens. */
  async function startResponder(lab: string, node: string, address: string, zone: Record<string, unknown>): Promise<Responder> {
    const log = path.join(tmp, `queries-${address}-${counter++}.jsonl`);
    fs.writeFileSync(log, '');
    const child = spawn('ip', ['netns', 'exec', `netlab.${lab}.${node}`, process.execPath, script, address, JSON.stringify(zone), log], { stdio: ['ignore', 'pipe', 'pipe'] });
    const r: Responder = {
      child,
      queries: () => fs.readFileSync(log, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Query),
      forget: () => fs.writeFileSync(log, ''),
    };
    responders.add(r);
    let err = '';
    child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    await new Promise<void>((resolve, reject) => {
      let buf = '';
      const timer = setTimeout(() => reject(new Error(`responder on ${address} did not start: ${err}`)), 10_000);
      child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`responder on ${address} exited with ${code}: ${err}`)); });
      child.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        if (buf.includes('listening\n')) { clearTimeout(timer); resolve(); }
      });
    });
    return r;
  }

  function report(r: CliResult): CheckReport {
    try {
      return JSON.parse(r.stdout) as CheckReport;
    } catch {
      throw new Error(`not JSON (exit ${r.status}):\n${r.stdout}${r.stderr}`);
    }
  }

  /** Ad hoc dns checks FROM:NAME..., their outcomes by name. */
  function dns(lab: string, specs: string[]): Map<string, { observed: string | null; detail: string }> {
    const rep = report(netlab(['check', lab, ...specs.flatMap((s) => ['--dns', s]), '--json']));
    return new Map(rep.outcomes.map((o) => [`${o.from}:${o.target}`, { observed: o.observed, detail: o.detail }]));
  }

  beforeAll(() => {
    assertBuildFresh();
    addLeakProbe(cgroupProbe((d) => d.includes(`/netlab/hdns${RUN}-`)));
    addLeakProbe(containerProcessProbe((g) => g.includes(`/netlab/hdns${RUN}-`)));
    before = snapshot();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-dns-'));
    script = path.join(tmp, `responder-${RUN}.mjs`);
    fs.writeFileSync(script, RESPONDER);
  });

  afterEach(async () => {
    for (const r of responders) {
      if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGTERM');
      await waitExit(r.child);
    }
    responders.clear();
    expect(processesWithArg(script), 'responders of this test still running').toEqual([]);
    expect(await downEach(testLabs), 'labs of this test left objects behind').toEqual([]);
  });

  afterAll(async () => {
    const left: string[] = [];
    for (const lab of myLabs) left.push(...(await downAndCheck(lab)).map((x) => `${lab}: ${x}`));
    for (const lab of myLabs) {
      if (labLeftovers(lab).length === 0) continue;
      console.warn(`removing what is left of ${lab} without netlab: ${(await forceRemoveLab(lab)).join('; ')}`);
    }
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    expect(left, 'labs of this file left objects behind').toEqual([]);
    const ids = [...myLabs].map((lab) => labId(lab));
    await expectNoLeaks(before, {
      only: (probe, item) => probe === 'child processes' || item.includes(`hdns${RUN}-`) || ids.some((id) => item.startsWith(`nl${id}`) || item === `ip netlab_${id}`),
    });
  });

  /** An internal network (nothing of it on the host) with a, b, the DNS server srv (.53), a
   *  server that never answers, mute (.54), and solo with loopback only. */
  function internalLab(what: string, checksFor: (o: number) => string[] = () => []): { lab: string; o: number; file: string } {
    const lab = newLab(what);
    const [o] = freeOctets(1, rand);
    const checks = checksFor(o);
    const file = up(lab, [
      'networks:',
      `  lan: { subnet: 10.${o}.1.0/24, gateway: false }`,
      'nodes:',
      '  a: { networks: [lan] }',
      '  b: { networks: [lan] }',
      `  srv: { networks: { lan: { ipv4: 10.${o}.1.53 } } }`,
      `  mute: { networks: { lan: { ipv4: 10.${o}.1.54 } } }`,
      '  solo: { network_mode: none }',
      ...(checks.length ? ['checks:', ...checks] : []),
    ]);
    return { lab, o, file };
  }

  it('a dns check passes from a node whose image has no ping, nslookup or wget; its own live /etc/hosts decides, and DNS is not asked for a name found there', async () => {
    const { lab, o, file } = internalLab('tools', () => ['  - dns: { from: a, name: b }']);
    const m = loadModel(file);
    setResolv(lab, 'a', `nameserver 10.${o}.1.54\n`);
    const mute = await startResponder(lab, 'mute', `10.${o}.1.54`, { '*': { silent: true } });
    sh(lab, 'a', 'rm -f /bin/ping /bin/nslookup /usr/bin/nslookup /bin/wget /usr/bin/wget && echo "10.' + o + '.1.99  extra Extra-Alias  # added by the test" >> /etc/hosts');
    for (const tool of ['ping', 'nslookup', 'wget']) {
      const r = netlab(['exec', lab, 'a', '--', tool, '-h']);
      expect(r.status, `${tool} is still in the container: ${r.stdout}${r.stderr}`).toBe(127);
    }
    const r = netlab(['check', lab, '--json']);
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
    const rep = report(r);
    expect(rep.outcomes).toHaveLength(1);
    expect(rep.outcomes[0]).toMatchObject({ kind: 'dns', observed: 'reach', pass: true, detail: `resolves to ${addrOf(m, 'b')}` });
    const out = dns(lab, ['a:extra', 'a:EXTRA-alias', 'a:localhost']);
    expect(out.get('a:extra')).toMatchObject({ observed: 'reach', detail: `resolves to 10.${o}.1.99` });
    expect(out.get('a:EXTRA-alias')).toMatchObject({ observed: 'reach', detail: `resolves to 10.${o}.1.99` });
    expect(out.get('a:localhost')).toMatchObject({ observed: 'reach', detail: 'resolves to 127.0.0.1' });
    expect(mute.queries(), 'names in /etc/hosts must not be asked of DNS').toEqual([]);
  });

  it('the DNS path: search list, CNAMEs, NXDOMAIN, no A record, SERVFAIL and a malformed answer, from the node\'s namespace to a server in the lab', async () => {
    const { lab, o } = internalLab('srv', (o) => [
      `  - dns: { from: a, name: svc, address: 10.${o}.1.77, expect: reach }`,
      `  - dns: { from: a, name: svc, address: 10.${o}.1.78, expect: fail }`,
      `  - dns: { from: a, name: nope, address: 10.${o}.1.79, expect: fail }`,
    ]);
    for (const n of ['a', 'solo']) setResolv(lab, n, `nameserver 10.${o}.1.53\nsearch lab.test\noptions timeout:1 attempts:2\n`);
    const srv = await startResponder(lab, 'srv', `10.${o}.1.53`, {
      'svc.lab.test': { a: [`10.${o}.1.77`, `10.${o}.1.76`] },
      'www.lab.test': { cname: 'svc.lab.test', a: [`10.${o}.1.77`] },
      'empty.lab.test': {},
      'bad.lab.test': { rcode: 2 },
      'loop.lab.test': { loop: true },
    });
    const r = netlab(['check', lab, '--json']);
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
    expect(report(r).outcomes.map((x) => x.detail)).toEqual([
      `resolves to 10.${o}.1.77`,
      `resolves to 10.${o}.1.77, expected 10.${o}.1.78`,
      `does not resolve (not in /etc/hosts; DNS nope: NXDOMAIN from 10.${o}.1.53 (asked nope.lab.test, nope))`,
    ]);
    srv.forget();
    const out = dns(lab, ['a:www', 'a:svc.lab.test.', 'a:empty', 'a:bad', 'a:loop', 'solo:svc']);
    expect(out.get('a:www')).toMatchObject({ observed: 'reach', detail: `resolves to 10.${o}.1.77` });
    expect(out.get('a:svc.lab.test.')).toMatchObject({ observed: 'reach', detail: `resolves to 10.${o}.1.77` });
    expect(out.get('a:empty')).toMatchObject({ observed: 'fail', detail: `does not resolve (not in /etc/hosts; DNS empty.lab.test: no A record from 10.${o}.1.53 (asked empty.lab.test, empty))` });
    expect(out.get('a:bad')).toMatchObject({ observed: 'fail', detail: `does not resolve (not in /etc/hosts; DNS bad.lab.test: SERVFAIL from 10.${o}.1.53 (asked bad.lab.test, bad))` });
    expect(out.get('a:loop')?.detail).toMatch(/^does not resolve \(not in \/etc\/hosts; DNS loop\.lab\.test: malformed answer/);
    expect(out.get('solo:svc')).toMatchObject({ observed: 'fail', detail: `does not resolve (not in /etc/hosts; DNS svc.lab.test: 10.${o}.1.53: connect: Network is unreachable)` });
    // What the server saw: every query from a's address; the absolute name alone; SERVFAIL
    // retried once (attempts:2, one server) before the search went on.
    const m = loadModel(path.join(tmp, `${lab}.yml`));
    const seen = srv.queries();
    expect(new Set(seen.map((q) => q.from))).toEqual(new Set([addrOf(m, 'a')]));
    expect(seen.every((q) => q.type === 1)).toBe(true);
    const names = seen.map((q) => q.name);
    expect(names.filter((n) => n.startsWith('www'))).toEqual(['www.lab.test']);
    expect(names.filter((n) => n.startsWith('svc'))).toEqual(['svc.lab.test']);
    expect(names.filter((n) => n.startsWith('empty'))).toEqual(['empty.lab.test', 'empty']);
    expect(names.filter((n) => n.startsWith('bad'))).toEqual(['bad.lab.test', 'bad.lab.test', 'bad']);
  });

  it('a server that never answers: the check fails as a timeout within its own timeout (not resolv.conf\'s 5 s x 2); with a second server, that one answers after the first one\'s try', async () => {
    const { lab, o } = internalLab('mute');
    const mute = await startResponder(lab, 'mute', `10.${o}.1.54`, { '*': { silent: true } });
    const srv = await startResponder(lab, 'srv', `10.${o}.1.53`, { 'svc.lab.test': { a: [`10.${o}.1.77`] } });
    setResolv(lab, 'a', `nameserver 10.${o}.1.54\noptions timeout:5 attempts:2\n`);
    const t0 = performance.now();
    const rep = report(netlab(['check', lab, '--dns', 'a:svc.lab.test.', '--json']));
    const wall = performance.now() - t0;
    expect(rep.outcomes[0]).toMatchObject({ observed: 'fail' });
    expect(rep.outcomes[0].detail).toMatch(new RegExp(`^does not resolve \\(not in /etc/hosts; DNS svc\\.lab\\.test: timed out after \\d+ ms \\(10\\.${o}\\.1\\.54\\)\\)$`));
    expect(rep.ms, 'the check waited for an answer').toBeGreaterThanOrEqual(1900);
    expect(rep.ms, 'the check\'s 2 s timeout bounds the wait').toBeLessThan(3000);
    expect(wall).toBeLessThan(8000);
    expect(mute.queries().map((q) => q.name)).toEqual(['svc.lab.test']);
    expect(srv.queries()).toEqual([]);

    mute.forget();
    setResolv(lab, 'a', `nameserver 10.${o}.1.54\nnameserver 10.${o}.1.53\noptions timeout:1 attempts:1\n`);
    const next = report(netlab(['check', lab, '--dns', 'a:svc.lab.test.', '--json']));
    expect(next.outcomes[0]).toMatchObject({ observed: 'reach', detail: `resolves to 10.${o}.1.77` });
    expect(next.ms).toBeGreaterThanOrEqual(900);
    expect(mute.queries().map((q) => q.name)).toEqual(['svc.lab.test']);
    expect(srv.queries().map((q) => q.name)).toEqual(['svc.lab.test']);
  });

  it('a host-mode node resolves from its own container\'s /etc/hosts (not the machine\'s) and queries DNS from the host\'s stack', async () => {
    const lab = newLab('host');
    const subnet = freeSubnet();
    const base = subnet.replace(/\.0\/24$/, '');
    const file = up(lab, [
      'networks:',
      `  lan: { subnet: ${subnet}, gateway: true }`,
      'nodes:',
      '  web: { networks: [lan] }',
      `  srv: { networks: { lan: { ipv4: ${base}.53 } } }`,
      '  h: { network_mode: host }',
    ]);
    const m = loadModel(file);
    setResolv(lab, 'h', `nameserver ${base}.53\n`);
    const srv = await startResponder(lab, 'srv', `${base}.53`, { 'svc.lab.test': { a: [`${base}.77`] } });
    expect(fs.readFileSync('/etc/hosts', 'utf8'), 'test precondition: the machine itself does not know web').not.toMatch(/\sweb(\s|$)/m);
    const out = dns(lab, ['h:web', 'h:svc.lab.test.']);
    expect(out.get('h:web')).toMatchObject({ observed: 'reach', detail: `resolves to ${addrOf(m, 'web')}` });
    expect(out.get('h:svc.lab.test.')).toMatchObject({ observed: 'reach', detail: `resolves to ${base}.77` });
    // From the host's stack: the source is the host's gateway address on the lab's bridge.
    expect(srv.queries()).toEqual([{ name: 'svc.lab.test', type: 1, from: `${base}.1` }]);
  });
});
