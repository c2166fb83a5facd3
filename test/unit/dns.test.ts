// netlab's own resolver for dns checks (checks/resolve.ts), without root and without a network:
// /etc/hosts matching, nsswitch.conf's hosts order and actions, resolv.conf as glibc reads it,
// the search list with ndots, the fallback and time budget between sources (DNS answered by a
// fake query function that records what it was asked), reading files through a container's
// root without leaving it, and the probe batcher that shares one helper process per round.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hostsLookup, parseNsswitch, parseResolvConf, queryNames, readInRoot, resolveName, type DnsQuery, type NodeFiles } from '../../checks/resolve.js';
import { probeBatcher, type Probe, type ProbeResult } from '../../checks/probe.js';

const none = { ms: null, error: null, info: null, httpStatus: null, httpBody: null, addresses: null };
const answer = (...addresses: string[]): ProbeResult => ({ ...none, ok: true, addresses });
const failure = (error: string, info: string | null = '10.9.0.53'): ProbeResult => ({ ...none, ok: false, error, info });

/** A DNS query function answering from a table (name -> result, default NXDOMAIN) and
 *  recording every question, with the time it was given. */
function fakeDns(table: Record<string, ProbeResult | ((timeoutMs: number) => Promise<ProbeResult>)> = {}) {
  const asked: { name: string; servers: string[]; tryMs: number; attempts: number; timeoutMs: number }[] = [];
  const query: DnsQuery = async (q) => {
    asked.push(q);
    const r = table[q.name];
    if (typeof r === 'function') return r(q.timeoutMs);
    return r ?? failure('nxdomain');
  };
  return { asked, query };
}

const files = (o: Partial<NodeFiles> = {}): NodeFiles => ({ hosts: '', resolv: 'nameserver 10.9.0.53\n', nsswitch: null, ...o });

describe('/etc/hosts matching', () => {
  const text = [
    '# comment line: 10.0.0.99 web',
    '127.0.0.1\tlocalhost',
    '::1 localhost ip6-localhost web6',
    '  10.0.0.10   web   www.example  Alias  # trailing comment names nope',
    '10.0.0.11\tweb\t# a second line for web: the first one wins',
    '10.0.0.12 webx',
    'not-an-address other',
    '10.0.0.13',
    '',
  ].join('\n');

  it('finds canonical names and aliases case-insensitively, the first matching line winning', () => {
    expect(hostsLookup(text, 'web')).toBe('10.0.0.10');
    expect(hostsLookup(text, 'WEB')).toBe('10.0.0.10');
    expect(hostsLookup(text, 'www.example')).toBe('10.0.0.10');
    expect(hostsLookup(text, 'alias')).toBe('10.0.0.10');
    expect(hostsLookup(text, 'webx')).toBe('10.0.0.12');
    expect(hostsLookup(text, 'localhost')).toBe('127.0.0.1');
  });

  it('ignores comments, IPv6 lines (no A record there), lines without a valid IPv4 address, and partial names', () => {
    expect(hostsLookup(text, 'nope')).toBeNull();
    expect(hostsLookup(text, 'names')).toBeNull();
    expect(hostsLookup(text, 'web6')).toBeNull();
    expect(hostsLookup(text, 'ip6-localhost')).toBeNull();
    expect(hostsLookup(text, 'other')).toBeNull();
    expect(hostsLookup(text, 'we')).toBeNull();
    expect(hostsLookup(text, 'www')).toBeNull();
    expect(hostsLookup('10.0.0.99 web\n', 'web.')).toBeNull(); // a trailing dot is a DNS matter
  });
});

describe('nsswitch.conf hosts', () => {
  it('defaults to files then dns without a file or without a hosts line', () => {
    const dflt = [{ name: 'files', actions: {} }, { name: 'dns', actions: {} }];
    expect(parseNsswitch(null)).toEqual(dflt);
    expect(parseNsswitch('passwd: files\ngroup: files\n#hosts: dns\n')).toEqual(dflt);
  });

  it('keeps files and dns in their order, with their actions; passes over sources a node cannot use', () => {
    expect(parseNsswitch('hosts:  dns files\n')).toEqual([{ name: 'dns', actions: {} }, { name: 'files', actions: {} }]);
    expect(parseNsswitch('hosts: files [NOTFOUND=return] dns # local only\n')).toEqual([{ name: 'files', actions: { notfound: 'return' } }, { name: 'dns', actions: {} }]);
    // Debian with systemd-resolved: resolve's action goes with it.
    expect(parseNsswitch('hosts: files mymachines resolve [!UNAVAIL=return] dns myhostname\n')).toEqual([{ name: 'files', actions: {} }, { name: 'dns', actions: {} }]);
    expect(parseNsswitch('hosts: DNS [!UNAVAIL=return] files\n')).toEqual([
      { name: 'dns', actions: { success: 'return', notfound: 'return', tryagain: 'return' } }, { name: 'files', actions: {} },
    ]);
    expect(parseNsswitch('hosts: files [NOTFOUND=return SUCCESS=continue bogus=x TRYAGAIN=sleep]\n')).toEqual([{ name: 'files', actions: { notfound: 'return', success: 'continue' } }]);
    expect(parseNsswitch('hosts: mdns4_minimal resolve\n')).toEqual([]);
  });
});

describe('resolv.conf', () => {
  it('takes glibc defaults, and 127.0.0.1 when no nameserver is listed', () => {
    expect(parseResolvConf(null)).toEqual({ nameservers: ['127.0.0.1'], search: [], ndots: 1, timeoutMs: 5000, attempts: 2 });
    expect(parseResolvConf('# generated by netlab\n')).toEqual({ nameservers: ['127.0.0.1'], search: [], ndots: 1, timeoutMs: 5000, attempts: 2 });
  });

  it('keeps three IPv4 nameservers, the last search or domain line, and capped options', () => {
    const c = parseResolvConf([
      'nameserver 10.0.0.1', 'nameserver fd00::1', '; comment', 'nameserver 10.0.0.2 # why', 'nameserver 10.0.0.3', 'nameserver 10.0.0.4',
      'search a.test b.test', 'domain c.test', 'options ndots:20 timeout:0 rotate', 'options attempts:9',
    ].join('\n'));
    expect(c).toEqual({ nameservers: ['10.0.0.1', '10.0.0.2', '10.0.0.3'], search: ['c.test'], ndots: 15, timeoutMs: 1000, attempts: 5 });
    expect(parseResolvConf('domain c.test\nsearch a.test b.test\noptions timeout:3 ndots:2\n')).toMatchObject({ search: ['a.test', 'b.test'], ndots: 2, timeoutMs: 3000 });
  });
});

describe('search list and ndots', () => {
  const c = { search: ['a.test', 'b.test.'], ndots: 1 };
  it('a name with fewer dots than ndots gets the search domains first and itself last', () => {
    expect(queryNames('svc', c)).toEqual(['svc.a.test', 'svc.b.test', 'svc']);
    expect(queryNames('svc.x', { ...c, ndots: 2 })).toEqual(['svc.x.a.test', 'svc.x.b.test', 'svc.x']);
  });
  it('a name with enough dots is tried as given first; a trailing dot means only that name', () => {
    expect(queryNames('svc.x', c)).toEqual(['svc.x', 'svc.x.a.test', 'svc.x.b.test']);
    expect(queryNames('svc.x.', c)).toEqual(['svc.x']);
    expect(queryNames('svc', { search: [], ndots: 1 })).toEqual(['svc']);
    expect(queryNames('svc', { search: [], ndots: 0 })).toEqual(['svc']);
  });
});

describe('resolveName', () => {
  it('answers from /etc/hosts without asking DNS', async () => {
    const d = fakeDns({ web: answer('10.9.0.99') });
    expect(await resolveName('web', files({ hosts: '10.0.0.10 web\n' }), d.query, 2000)).toEqual({ address: '10.0.0.10', detail: 'from /etc/hosts' });
    expect(d.asked).toEqual([]);
  });

  it('falls through to DNS with the search list, the servers, timeout and attempts of resolv.conf', async () => {
    const d = fakeDns({ 'svc.b.test': answer('10.9.0.77', '10.9.0.78') });
    const r = await resolveName('svc', files({ resolv: 'nameserver 10.9.0.53\nnameserver 10.9.0.54\nsearch a.test b.test\noptions timeout:1 attempts:3\n' }), d.query, 2000);
    expect(r).toEqual({ address: '10.9.0.77', detail: 'svc.b.test via DNS' });
    expect(d.asked.map((q) => q.name)).toEqual(['svc.a.test', 'svc.b.test']);
    expect(d.asked[0]).toMatchObject({ servers: ['10.9.0.53', '10.9.0.54'], tryMs: 1000, attempts: 3 });
    expect(d.asked[0].timeoutMs).toBeLessThanOrEqual(2000);
  });

  it('follows the nsswitch order: dns before files, and [NOTFOUND=return] after files', async () => {
    const d = fakeDns({ web: answer('10.9.0.99') });
    expect((await resolveName('web', files({ hosts: '10.0.0.10 web\n', nsswitch: 'hosts: dns files\n' }), d.query, 2000)).address).toBe('10.9.0.99');
    const stop = await resolveName('web', files({ nsswitch: 'hosts: files [NOTFOUND=return] dns\n' }), d.query, 2000);
    expect(stop).toEqual({ address: null, detail: 'not in /etc/hosts' });
    expect(d.asked).toHaveLength(1);
    const only = await resolveName('web', files({ nsswitch: 'hosts: myhostname\n' }), d.query, 2000);
    expect(only.address).toBeNull();
    expect(only.detail).toMatch(/neither files nor dns/);
  });

  it('a missing /etc/hosts is no obstacle to DNS; a dns-only order never reads hosts', async () => {
    const d = fakeDns({ web: answer('10.9.0.99') });
    expect(await resolveName('web', files({ hosts: null }), d.query, 2000)).toEqual({ address: '10.9.0.99', detail: 'web via DNS' });
    expect((await resolveName('nope', files({ hosts: null }), d.query, 2000)).detail).toBe('no /etc/hosts; DNS nope: NXDOMAIN from 10.9.0.53');
    expect((await resolveName('web', files({ hosts: '10.0.0.10 web\n', nsswitch: 'hosts: dns\n', resolv: '' }), fakeDns().query, 2000)).detail).toBe('DNS web: NXDOMAIN from 10.9.0.53');
  });

  it('goes on after NXDOMAIN, no A record and SERVFAIL; stops at a timeout; reports no A record over SERVFAIL over the last result', async () => {
    const resolv = 'nameserver 10.9.0.53\nsearch a.test b.test c.test\n';
    let d = fakeDns({ 'x.a.test': failure('servfail'), 'x.b.test': failure('nodata') });
    let r = await resolveName('x', files({ resolv }), d.query, 2000);
    expect(d.asked.map((q) => q.name)).toEqual(['x.a.test', 'x.b.test', 'x.c.test', 'x']);
    expect(r).toEqual({ address: null, detail: 'not in /etc/hosts; DNS x.b.test: no A record from 10.9.0.53 (asked x.a.test, x.b.test, x.c.test, x)' });
    d = fakeDns({ 'x.b.test': failure('servfail') });
    r = await resolveName('x', files({ resolv }), d.query, 2000);
    expect(r.detail).toBe('not in /etc/hosts; DNS x.b.test: SERVFAIL from 10.9.0.53 (asked x.a.test, x.b.test, x.c.test, x)');
    d = fakeDns({ 'x.b.test': failure('timeout', '') });
    r = await resolveName('x', files({ resolv }), d.query, 2000);
    expect(d.asked.map((q) => q.name)).toEqual(['x.a.test', 'x.b.test']);
    expect(r.detail).toMatch(/^not in \/etc\/hosts; DNS x\.b\.test: timed out after \d+ ms \(10\.9\.0\.53\) \(asked x\.a\.test, x\.b\.test\)$/);
    d = fakeDns({ x: failure('error', '10.9.0.53: connect: Network is unreachable') });
    r = await resolveName('x', files({ resolv: 'nameserver 10.9.0.53\n' }), d.query, 2000);
    expect(r.detail).toBe('not in /etc/hosts; DNS x: 10.9.0.53: connect: Network is unreachable');
  });

  it('keeps every query within the check\'s timeout: each gets what is left, none once it is spent', async () => {
    const slow = (ms: number) => (timeoutMs: number) => new Promise<ProbeResult>((res) => setTimeout(() => res(failure('nxdomain')), Math.min(ms, timeoutMs)));
    const d = fakeDns({ 'x.a.test': slow(150), 'x.b.test': slow(150), 'x.c.test': slow(150) });
    const t0 = performance.now();
    const r = await resolveName('x', files({ resolv: 'nameserver 10.9.0.53\nsearch a.test b.test c.test\noptions timeout:5\n' }), d.query, 250);
    expect(performance.now() - t0).toBeLessThan(400);
    expect(d.asked.map((q) => q.name)).toEqual(['x.a.test', 'x.b.test']);
    expect(d.asked[0].timeoutMs).toBeLessThanOrEqual(250);
    expect(d.asked[1].timeoutMs).toBeLessThanOrEqual(100);
    expect(r.address).toBeNull();
  });

  it('refuses names no resolver takes (and the probe line could not carry)', async () => {
    const d = fakeDns();
    for (const bad of ['a b', 'a\tb', '', 'x'.repeat(254)]) {
      const r = await resolveName(bad, files({ hosts: 'a b\n' }), d.query, 2000);
      expect(r.address, JSON.stringify(bad)).toBeNull();
      expect(r.detail).toMatch(/is not a host name$/);
    }
    expect(d.asked).toEqual([]);
  });
});

describe('readInRoot', () => {
  let tmp = '';
  afterEach(() => { if (tmp) fs.rmSync(tmp, { recursive: true, force: true }); tmp = ''; });

  it('follows links inside the root only, stops at the root for .., and reads only regular files', () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-dns-'));
    const root = path.join(tmp, 'root');
    const outside = path.join(tmp, 'outside.conf');
    fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
    fs.mkdirSync(path.join(root, 'run'), { recursive: true });
    fs.writeFileSync(outside, 'nameserver 10.66.66.66\n');
    fs.writeFileSync(path.join(root, 'run', 'resolv.conf'), 'nameserver 10.1.1.1\n');
    fs.writeFileSync(path.join(root, 'etc', 'hosts'), '10.0.0.10 web\n');
    // Absolute: the container's /run, not the machine's. And one aimed at the test's real file.
    fs.symlinkSync('/run/resolv.conf', path.join(root, 'etc', 'resolv.conf'));
    fs.symlinkSync(outside, path.join(root, 'etc', 'abs-out'));
    fs.symlinkSync(`../../../../../../..${outside}`, path.join(root, 'etc', 'rel-out'));
    fs.symlinkSync('loop2', path.join(root, 'etc', 'loop1'));
    fs.symlinkSync('loop1', path.join(root, 'etc', 'loop2'));
    fs.symlinkSync('../etc', path.join(root, 'run', 'etc'));
    execFileSync('mkfifo', [path.join(root, 'etc', 'fifo')]);

    expect(readInRoot(root, '/etc/hosts')).toBe('10.0.0.10 web\n');
    expect(readInRoot(root, '/etc/resolv.conf')).toBe('nameserver 10.1.1.1\n');
    expect(readInRoot(root, '/run/etc/hosts')).toBe('10.0.0.10 web\n');
    expect(readInRoot(root, '/../../etc/hosts')).toBe('10.0.0.10 web\n');
    expect(readInRoot(root, '/etc/abs-out')).toBeNull();
    expect(readInRoot(root, '/etc/rel-out')).toBeNull();
    expect(readInRoot(root, '/etc/loop1')).toBeNull();
    expect(readInRoot(root, '/etc/fifo')).toBeNull(); // a FIFO would block the read forever
    expect(readInRoot(root, '/etc')).toBeNull();
    expect(readInRoot(root, '/etc/nsswitch.conf')).toBeNull();
  });
});

describe('probeBatcher', () => {
  const probe = (name: string): Probe => ({ kind: 'dns', netns: null, address: '10.9.0.53', name, timeoutMs: 1000 });

  it('sends the probes asked for in one turn in one run, and each caller gets its own result', async () => {
    const runs: string[][] = [];
    const ask = probeBatcher(async (ps) => { runs.push(ps.map((p) => p.name!)); return ps.map((p) => answer(p.name === 'a' ? '10.0.0.1' : '10.0.0.2')); });
    const [a, b] = await Promise.all([ask(probe('a')), ask(probe('b'))]);
    expect(a.addresses).toEqual(['10.0.0.1']);
    expect(b.addresses).toEqual(['10.0.0.2']);
    await ask(probe('c'));
    expect(runs).toEqual([['a', 'b'], ['c']]);
  });

  it('fails every caller of a run that fails', async () => {
    const ask = probeBatcher(async () => { throw new Error('probe helper failed'); });
    const rs = await Promise.allSettled([ask(probe('a')), ask(probe('b'))]);
    expect(rs.map((r) => r.status)).toEqual(['rejected', 'rejected']);
  });
});
