// controller/kernel/ against the real kernel. Every effect is checked with iproute2's own JSON
// output (`ip -j`, `bridge -j`, `nft -j`), not with controller/kernel/'s readers, so a shared
// encoding bug cannot pass unnoticed. Names are unique per run; traffic only goes to addresses
// inside namespaces this file made; everything is removed and checked with the leak snapshot.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Kernel, KernelError, nftApply, nftDeleteTable, nftListTables } from '../../controller/kernel/index.js';
import { expectNoLeaks, snapshot, type Snapshot } from '../helpers/leaks.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('test/integration/kernel.test.ts skipped: it needs root (namespaces, links, nftables)');

const tag = randomBytes(3).toString('hex');
/** Interface names: 'nlt' + 6 hex + suffix (<= 6 chars) stays within IFNAMSIZ (15 bytes). */
const ifn = (s: string): string => {
  const n = `nlt${tag}${s}`;
  if (Buffer.byteLength(n) > 15) throw new Error(`test bug: ${n} is longer than 15 bytes`);
  return n;
};
const nsn = (s: string): string => `netlab.t${tag}.${s}`;
/** IFLA_GROUP for every link this file makes in the root netns: non-zero, unique per run. */
const GROUP = 0x10000000 | parseInt(tag, 16);

interface IpLink {
  ifindex: number; ifname: string; mtu: number; address?: string; ifalias?: string; group?: string;
  master?: string; flags: string[]; operstate: string;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
}
interface IpAddr { ifname: string; addr_info: { family: string; local: string; prefixlen: number }[] }
interface IpRoute { dst: string; gateway?: string; dev?: string; protocol?: string; scope?: string }

function ipj<T>(args: string[], ns?: string): T[] {
  const out = execFileSync('ip', [...(ns ? ['-n', ns] : []), '-j', ...args], { encoding: 'utf8', maxBuffer: 1 << 28 });
  return JSON.parse(out || '[]') as T[];
}
function ipLink(name: string, ns?: string, details = false): IpLink | null {
  const r = spawnSync('ip', [...(ns ? ['-n', ns] : []), '-j', ...(details ? ['-d'] : []), 'link', 'show', 'dev', name], { encoding: 'utf8', maxBuffer: 1 << 28 });
  return r.status === 0 ? (JSON.parse(r.stdout) as IpLink[])[0] ?? null : null;
}
function ipAddrs(ns: string, dev: string): string[] {
  return ipj<IpAddr>(['addr', 'show', 'dev', dev], ns)
    .flatMap((a) => a.addr_info.map((i) => `${i.local}/${i.prefixlen}`));
}
function netnsListed(): string[] {
  return ipj<{ name: string }>(['netns', 'list']).map((n) => n.name);
}
/** `ip netns exec NS ping`, bounded: a new bridge port forwards only after the link watch runs. */
function pingFrom(ns: string, addr: string): boolean {
  for (let i = 0; i < 5; i++) {
    const r = spawnSync('ip', ['netns', 'exec', ns, 'ping', '-c1', '-W1', addr], { encoding: 'utf8', maxBuffer: 1 << 28 });
    if (r.error) throw new Error(`cannot run ping: ${r.error.message} (apt-get install iputils-ping)`);
    if (r.status === 0) return true;
  }
  return false;
}
async function expectKernelError(p: Promise<unknown> | (() => unknown), errno: string): Promise<KernelError> {
  let err: unknown = null;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(KernelError);
  expect((err as KernelError).errno).toBe(errno);
  return err as KernelError;
}

describe.skipIf(!isRoot)('controller/kernel/ on the real kernel', () => {
  let before: Snapshot;
  let k: Kernel;
  let closed = false;
  const madeNetns = new Set<string>();
  const madeTables = new Set<string>();

  function netns(s: string) {
    const name = nsn(s);
    madeNetns.add(name);
    return k.netnsAdd(name);
  }

  async function cleanup(): Promise<void> {
    if (!k || closed) return;
    // Root-netns links all carry GROUP: one message removes them (and their veth peers).
    await k.ns(null).linkDelGroup(GROUP);
    for (const name of madeNetns) k.netnsDel(name);
    madeNetns.clear();
    for (const t of madeTables) nftDeleteTable('inet', t);
    madeTables.clear();
  }

  beforeAll(async () => {
    before = snapshot();
    k = await Kernel.open();
  });
  afterEach(cleanup);
  afterAll(async () => {
    await cleanup();
    k?.close();
  });

  it('adds, lists and deletes named namespaces that iproute2 sees', async () => {
    const a = nsn('a');
    netns('a');
    netns('b');
    expect(k.netnsList()).toEqual(expect.arrayContaining([a, nsn('b')]));
    expect(netnsListed()).toEqual(expect.arrayContaining([a, nsn('b')]));
    // A real, empty netns: only lo, and down (as `ip netns add` makes it).
    expect(ipj<IpLink>(['link', 'show'], a).map((l) => l.ifname)).toEqual(['lo']);
    const dup = await expectKernelError(() => k.netnsAdd(a), 'EEXIST');
    expect(dup.message).toContain(a);

    k.netnsDel(a);
    expect(netnsListed()).not.toContain(a);
    expect(fs.existsSync(`/run/netns/${a}`)).toBe(false);
    k.netnsDel(a); // already gone: tolerated
    expect(k.netnsList()).not.toContain(a);
    await expectKernelError(() => k.ns(nsn('nope')), 'ENOENT');
  });

  it('builds bridge + veths into two namespaces with addresses, and they ping each other', async () => {
    const host = k.ns(null);
    const br = ifn('br');
    await host.linkAddBridge(br, { up: true, group: GROUP, mtu: 1400 });
    for (const [s, ip] of [['a', '198.18.1.1/24'], ['b', '198.18.1.2/24']] as const) {
      const h = netns(s);
      await host.linkAddVeth(ifn(`v${s}`), 'eth0', nsn(s), { master: br, mtu: 1400, group: GROUP, up: true, peerUp: true });
      await h.linkSet('lo', { up: true });
      await h.addrAdd('eth0', ip);
    }
    const brLink = ipLink(br)!;
    expect(brLink.flags).toContain('UP');
    expect(brLink.mtu).toBe(1400);
    for (const s of ['a', 'b']) {
      const hostEnd = ipLink(ifn(`v${s}`))!;
      expect(hostEnd.master).toBe(br);
      expect(hostEnd.flags).toContain('UP');
      expect(hostEnd.group).toBe(String(GROUP));
      const nodeEnd = ipLink('eth0', nsn(s))!;
      expect(nodeEnd.flags).toContain('UP');
      expect(nodeEnd.mtu).toBe(1400);
    }
    expect(ipAddrs(nsn('a'), 'eth0')).toContain('198.18.1.1/24');
    expect(ipAddrs(nsn('b'), 'eth0')).toContain('198.18.1.2/24');
    // Our own readers agree with iproute2.
    expect((await k.ns(nsn('a')).addrList()).filter((x) => x.family === 4 && x.dev === 'eth0'))
      .toEqual([{ dev: 'eth0', index: expect.any(Number), family: 4, address: '198.18.1.1', prefixLen: 24 }]);

    expect(pingFrom(nsn('a'), '198.18.1.2')).toBe(true);
    expect(pingFrom(nsn('b'), '198.18.1.1')).toBe(true);
  });

  it('creates a veth directly between two namespaces', async () => {
    const a = netns('a');
    const b = netns('b');
    await a.linkAddVeth('p2p0', 'p2p1', nsn('b'), { up: true, peerUp: true, mtu: 9000, alias: 'a-side', peerAlias: 'b-side' });
    await Promise.all([a.addrAdd('p2p0', '198.18.2.1/30'), b.addrAdd('p2p1', '198.18.2.2/30')]);
    const ea = ipLink('p2p0', nsn('a'))!;
    const eb = ipLink('p2p1', nsn('b'))!;
    expect([ea.mtu, eb.mtu]).toEqual([9000, 9000]);
    expect([ea.ifalias, eb.ifalias]).toEqual(['a-side', 'b-side']);
    expect(eb.flags).toContain('UP');
    expect(ipLink('p2p1', nsn('a'))).toBeNull(); // the peer never existed outside its namespace
    expect(pingFrom(nsn('a'), '198.18.2.2')).toBe(true);
  });

  it('adds, lists and deletes routes', async () => {
    const a = netns('a');
    const b = netns('b');
    await a.linkAddVeth('eth0', 'eth0', nsn('b'), { up: true, peerUp: true });
    await a.addrAdd('eth0', '198.18.3.1/24');
    await a.routeAdd({ dst: '203.0.113.0/24', via: '198.18.3.254' });
    await a.routeAdd({ dst: '192.0.2.0/24', dev: 'eth0' });
    await a.routeAdd({ dst: '0.0.0.0/0', via: '198.18.3.254', dev: 'eth0' });

    const seen = ipj<IpRoute>(['route', 'show', 'table', 'main'], nsn('a'));
    expect(seen).toEqual(expect.arrayContaining([
      expect.objectContaining({ dst: '203.0.113.0/24', gateway: '198.18.3.254', dev: 'eth0' }),
      expect.objectContaining({ dst: '192.0.2.0/24', dev: 'eth0', scope: 'link' }),
      expect.objectContaining({ dst: 'default', gateway: '198.18.3.254', dev: 'eth0' }),
    ]));
    // iproute2 hides 'proto boot' (its default) unless asked for by filter.
    expect(ipj<IpRoute>(['route', 'show', 'table', 'main', 'proto', 'boot'], nsn('a')).map((r) => r.dst).sort())
      .toEqual(['192.0.2.0/24', '203.0.113.0/24', 'default']);
    const ours = await a.routeList();
    expect(ours).toEqual(expect.arrayContaining([
      { dst: '203.0.113.0/24', via: '198.18.3.254', dev: 'eth0', metric: 0, nexthops: null, table: 254, protocol: 'boot' },
      { dst: '192.0.2.0/24', via: null, dev: 'eth0', metric: 0, nexthops: null, table: 254, protocol: 'boot' },
      { dst: '0.0.0.0/0', via: '198.18.3.254', dev: 'eth0', metric: 0, nexthops: null, table: 254, protocol: 'boot' },
      { dst: '198.18.3.0/24', via: null, dev: 'eth0', metric: 0, nexthops: null, table: 254, protocol: 'kernel' },
    ]));
    expect(ours).toHaveLength(seen.length);
    await expectKernelError(a.routeAdd({ dst: '203.0.113.0/24', via: '198.18.3.254' }), 'EEXIST');

    await a.routeDel({ dst: '203.0.113.0/24' });
    await a.routeDel({ dst: 'default' });
    const after = ipj<IpRoute>(['route', 'show', 'table', 'main'], nsn('a')).map((r) => r.dst);
    expect(after).not.toContain('203.0.113.0/24');
    expect(after).not.toContain('default');
    expect(after).toContain('192.0.2.0/24');
    await expectKernelError(a.routeDel({ dst: '203.0.113.0/24' }), 'ESRCH');
  });

  it('adds metric and multipath routes that iproute2 reads back', async () => {
    const a = netns('a');
    netns('b');
    await a.linkAddVeth('e1', 'e1', nsn('b'), { up: true, peerUp: true });
    await a.linkAddVeth('e2', 'e2', nsn('b'), { up: true, peerUp: true });
    await a.addrAdd('e1', '198.18.4.1/24');
    await a.addrAdd('e2', '198.18.5.1/24');
    await a.routeAdd({ dst: '203.0.113.0/24', via: '198.18.4.2', metric: 10 });
    await a.routeAdd({ dst: '203.0.113.0/24', via: '198.18.5.2', metric: 20 });
    await a.routeAdd({ dst: '192.0.2.0/24', nexthops: [{ via: '198.18.4.2' }, { via: '198.18.5.2', dev: 'e2' }] });
    const seen = ipj<IpRoute & { metric?: number; nexthops?: { gateway: string; dev: string }[] }>(['route', 'show', 'table', 'main'], nsn('a'));
    expect(seen.filter((r) => r.dst === '203.0.113.0/24').map((r) => [r.gateway, r.metric])).toEqual([['198.18.4.2', 10], ['198.18.5.2', 20]]);
    expect(seen.find((r) => r.dst === '192.0.2.0/24')!.nexthops!.map((h) => [h.gateway, h.dev])).toEqual([['198.18.4.2', 'e1'], ['198.18.5.2', 'e2']]);
    const ours = await a.routeList();
    expect(ours.find((r) => r.dst === '192.0.2.0/24')).toMatchObject({ via: null, nexthops: [{ via: '198.18.4.2', dev: 'e1', dead: false }, { via: '198.18.5.2', dev: 'e2', dead: false }] });
    expect(ours.filter((r) => r.dst === '203.0.113.0/24').map((r) => r.metric)).toEqual([10, 20]);
    // e1 down: its single-path route goes, the multipath keeps e2's next hop alive.
    await a.linkSet('e1', { up: false });
    const after = await a.routeList();
    expect(after.filter((r) => r.dst === '203.0.113.0/24').map((r) => r.metric)).toEqual([20]);
    expect(after.find((r) => r.dst === '192.0.2.0/24')!.nexthops!.map((h) => [h.dev, h.dead])).toEqual([['e1', true], ['e2', false]]);
    await a.routeDel({ dst: '203.0.113.0/24', metric: 20 });
    expect((await a.routeList()).some((r) => r.dst === '203.0.113.0/24')).toBe(false);
  });

  it('sets tbf qdiscs that tc reads back, lists and deletes them', async () => {
    const a = netns('a');
    netns('b');
    await a.linkAddVeth('q0', 'q0', nsn('b'), { up: true, peerUp: true });
    await a.qdiscReplace('q0', { kind: 'tbf', rateBps: 20e6, burstBytes: 10000, limitBytes: 125000 });
    const tc = (dev: string) => JSON.parse(execFileSync('tc', ['-n', nsn('a'), '-j', 'qdisc', 'show', 'dev', dev], { encoding: 'utf8' })) as { kind: string; handle: string; options?: { rate: number; burst: number; lat: number } }[];
    expect(tc('q0')).toEqual([expect.objectContaining({ kind: 'tbf', handle: '1:', options: { rate: 2_500_000, burst: 10000, lat: 46000 } })]);
    // Replace in place: one root qdisc, the new rate.
    await a.qdiscReplace('q0', { kind: 'tbf', rateBps: 8e9, burstBytes: 4e6, limitBytes: 8e6 });
    expect(tc('q0')).toEqual([expect.objectContaining({ kind: 'tbf', handle: '1:', options: expect.objectContaining({ rate: 1e9 }) })]);
    expect((await a.qdiscList()).find((q) => q.dev === 'q0')).toEqual({ dev: 'q0', kind: 'tbf', handle: 0x10000, spec: { kind: 'tbf', rateBps: 8e9, burstBytes: 4e6, limitBytes: 8e6 } });
    await a.qdiscDelete('q0');
    await a.qdiscDelete('q0'); // nothing left to delete is fine
    expect(tc('q0').map((q) => q.kind)).toEqual(['noqueue']);
    // netem: this kernel has none, and says so in the error.
    if (!fs.existsSync('/sys/module/sch_netem')) {
      await expect(a.qdiscReplace('q0', { kind: 'netem', delayUs: 1000, jitterUs: 0, lossPct: 0, duplicatePct: 0, corruptPct: 0, reorderPct: 0, rateBps: 0, limit: 1000 })).rejects.toThrow(/ENOENT|EINVAL|EOPNOTSUPP/);
    }
  });

  it('sets MTU, alias, group and MAC, and reads them back', async () => {
    const a = netns('a');
    await a.linkAddBridge('br0', { group: 5, alias: 'netlab:t:br0' });
    await a.linkAddVeth('v0', 'v1', nsn('a'), { group: 5 });
    await a.linkSet('v0', { mtu: 1280, alias: 'netlab:t:n:eth0', mac: '02:00:5e:10:00:01', group: 9, master: 'br0', up: true });
    const l = ipLink('v0', nsn('a'))!;
    expect(l.mtu).toBe(1280);
    expect(l.ifalias).toBe('netlab:t:n:eth0');
    expect(l.address).toBe('02:00:5e:10:00:01');
    expect(l.group).toBe('9');
    expect(l.master).toBe('br0');
    expect(l.flags).toContain('UP');
    expect(ipLink('br0', nsn('a'))!.ifalias).toBe('netlab:t:br0');

    const mine = await a.linkGet('v0');
    expect(mine).toMatchObject({ name: 'v0', kind: 'veth', mtu: 1280, alias: 'netlab:t:n:eth0', mac: '02:00:5e:10:00:01', group: 9, up: true });
    const brInfo = (await a.linkList()).find((x) => x.name === 'br0')!;
    expect(brInfo).toMatchObject({ kind: 'bridge', group: 5, alias: 'netlab:t:br0' });
    expect(mine!.master).toBe(brInfo.index);
    expect(await a.linkGet('nosuch0')).toBeNull();

    await a.linkSet('v0', { master: null, up: false, alias: '' });
    const released = ipLink('v0', nsn('a'))!;
    expect(released.master).toBeUndefined();
    expect(released.flags).not.toContain('UP');
    expect(released.ifalias).toBeUndefined();
    await expectKernelError(a.linkSet('v0', { mac: 'not-a-mac' }), 'EINVAL');
  });

  it('deletes every link of a group with one call', async () => {
    const a = netns('a');
    await Promise.all([1, 2, 3].map((i) => a.linkAddBridge(`g${i}`, { group: 77 })));
    await a.linkAddVeth('g4', 'g4p', null, { group: 77, peerGroup: 77 });
    await a.linkAddBridge('keep0', { group: 78 });
    expect(await a.linkDelGroup(77)).toBe(true);
    expect(ipj<IpLink>(['link', 'show'], nsn('a')).map((l) => l.ifname).sort()).toEqual(['keep0', 'lo']);
    expect(await a.linkDelGroup(77)).toBe(false); // nothing left: not an error
    await expectKernelError(a.linkDelGroup(0), 'EINVAL'); // group 0 would be every link
  });

  it('creates a VXLAN device with its VNI, port and FDB entries, and permanent neighbours', async () => {
    const a = netns('a');
    const b = netns('b');
    await a.linkAddVeth('ul0', 'ul0', nsn('b'), { up: true, peerUp: true });
    await a.addrAdd('ul0', '198.18.4.1/24');
    await a.linkAddBridge('br0', { up: true });
    await a.linkAddVxlan('vx0', { vni: 4242, port: 4790, local: '198.18.4.1', dev: 'ul0', learning: false, master: 'br0', mtu: 1450, alias: 'netlab:t:vx' });
    const vx = ipLink('vx0', nsn('a'), true)!;
    expect(vx.linkinfo?.info_kind).toBe('vxlan');
    expect(vx.linkinfo?.info_data).toMatchObject({ id: 4242, port: 4790, local: '198.18.4.1', link: 'ul0', learning: false });
    expect(vx.master).toBe('br0');
    expect(vx.mtu).toBe(1450);
    expect(vx.ifalias).toBe('netlab:t:vx');

    await a.fdbAppend('vx0', '00:00:00:00:00:00', '198.18.4.2');
    await a.fdbAppend('vx0', '00:00:00:00:00:00', '198.18.4.3'); // append: both flood targets stay
    const fdb = JSON.parse(execFileSync('bridge', ['-n', nsn('a'), '-j', 'fdb', 'show', 'dev', 'vx0'], { encoding: 'utf8', maxBuffer: 1 << 28 })) as { mac: string; dst?: string; state?: string }[];
    const flood = fdb.filter((e) => e.mac === '00:00:00:00:00:00').map((e) => e.dst).sort();
    expect(flood).toEqual(['198.18.4.2', '198.18.4.3']);

    await a.neighAdd('br0', '198.18.5.9', '02:00:5e:00:00:09');
    const neigh = ipj<{ dst: string; lladdr: string; state: string[] }>(['neigh', 'show', 'dev', 'br0'], nsn('a'));
    expect(neigh).toEqual([expect.objectContaining({ dst: '198.18.5.9', lladdr: '02:00:5e:00:00:09', state: ['PERMANENT'] })]);
    await expectKernelError(a.neighAdd('br0', '198.18.5.9', '02:00:5e:00:00:09'), 'EEXIST');
  });

  it('writes sysctls inside the namespace only', async () => {
    const a = netns('a');
    const hostForward = fs.readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
    const want = hostForward === '1' ? '0' : '1';
    a.sysctlSet('net.ipv4.ip_forward', want);
    a.sysctlSet('net/ipv6/conf/lo/disable_ipv6', '1'); // '/' form: dots in the name stay literal
    const read = (key: string) => execFileSync('ip', ['netns', 'exec', nsn('a'), 'sysctl', '-n', key], { encoding: 'utf8', maxBuffer: 1 << 28 }).trim();
    expect(read('net.ipv4.ip_forward')).toBe(want);
    expect(read('net.ipv6.conf.lo.disable_ipv6')).toBe('1');
    expect(fs.readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim()).toBe(hostForward);
    const e = await expectKernelError(() => a.sysctlSet('net.ipv4.no_such_key', '1'), 'ENOENT');
    expect(e.netns).toBe(nsn('a'));
  });

  it('reports failures as KernelError naming op, object, namespace and errno', async () => {
    const a = netns('a');
    await a.linkAddBridge('br0');
    const e = await expectKernelError(a.linkAddBridge('br0'), 'EEXIST');
    expect(e.op).toBe('linkAdd');
    expect(e.object).toBe('br0');
    expect(e.netns).toBe(nsn('a'));
    expect(e.message).toBe(`linkAdd br0 in netns ${nsn('a')}: EEXIST (File exists)`);

    const host = k.ns(null);
    const br = ifn('dup');
    await host.linkAddBridge(br, { group: GROUP });
    const h = await expectKernelError(host.linkAddBridge(br, { group: GROUP }), 'EEXIST');
    expect(h.message).toBe(`linkAdd ${br} in netns host: EEXIST (File exists)`);

    const missing = await expectKernelError(a.addrAdd('nosuch0', '198.18.9.1/24'), 'ENODEV');
    expect(missing.message).toContain('nosuch0');
    await expectKernelError(a.linkAddVeth('x0', 'x1', nsn('absent')), 'ENOENT');
    await expectKernelError(a.linkDel('nosuch0'), 'ENODEV');
    await expectKernelError(a.addrAdd('br0', '198.18.9.1'), 'EINVAL');
  });

  it('keeps up with many concurrent requests and dumps on one namespace', async () => {
    const a = netns('a');
    const n = 300;
    // More than the in-flight bound, with dumps interleaved: replies must neither be lost
    // (ENOBUFS) nor mis-grouped with a dump's parts. Veth pairs, not bridges: the kernel takes
    // ~18 ms to delete each bridge even in a group delete, ~0.2 ms per veth.
    const creates = Array.from({ length: n / 2 }, (_, i) => a.linkAddVeth(`c${i}`, `d${i}`, nsn('a'), { group: 3, peerGroup: 3 }));
    const dumps = [a.linkList(), a.addrList(), a.linkList()];
    await Promise.all([...creates, ...dumps]);
    // (`ip -j link show group G` also prints an empty {} per non-matching link: filter those)
    expect(ipj<IpLink>(['link', 'show', 'group', '3'], nsn('a')).filter((l) => l.ifname)).toHaveLength(n);
    expect((await a.linkList()).filter((l) => l.group === 3)).toHaveLength(n);
    expect(await a.linkDelGroup(3)).toBe(true);
    expect(ipj<IpLink>(['link', 'show'], nsn('a')).map((l) => l.ifname)).toEqual(['lo']);
  });

  it('never leaves a thread of this process in a lab namespace', async () => {
    const a = netns('a');
    a.sysctlSet('net.ipv4.ip_forward', '1');
    await a.linkAddBridge('br0');
    await fs.promises.stat('/'); // a thread-pool job after the windows
    const home = fs.readlinkSync('/proc/self/ns/net');
    const tasks = fs.readdirSync('/proc/self/task');
    const elsewhere = tasks.filter((t) => {
      try {
        return fs.readlinkSync(`/proc/self/task/${t}/ns/net`) !== home;
      } catch {
        return false; // thread exited
      }
    });
    expect(elsewhere).toEqual([]);
  });

  it('applies, lists and deletes nftables tables', () => {
    const t = `netlab_t${tag}`;
    madeTables.add(t);
    nftApply(`table inet ${t} {\n  chain c {\n    counter\n  }\n}\n`);
    const listed = JSON.parse(execFileSync('nft', ['-j', 'list', 'tables'], { encoding: 'utf8', maxBuffer: 1 << 28 })) as { nftables: { table?: { family: string; name: string } }[] };
    expect(listed.nftables.some((x) => x.table?.family === 'inet' && x.table.name === t)).toBe(true);
    expect(nftListTables()).toContainEqual({ family: 'inet', name: t });

    let bad: unknown = null;
    try {
      nftApply(`table inet ${t} {\n  chain c {\n    this is not nft\n  }\n}\n`);
    } catch (e) {
      bad = e;
    }
    expect(bad).toBeInstanceOf(KernelError);
    expect((bad as KernelError).op).toBe('nftApply');
    expect((bad as KernelError).message).toMatch(/syntax error/i);

    nftDeleteTable('inet', t);
    expect(nftListTables()).not.toContainEqual({ family: 'inet', name: t });
    nftDeleteTable('inet', t); // absent: tolerated
    madeTables.delete(t);
  });

  it('says which package to install when nft is missing', () => {
    const saved = process.env.NETLAB_NFT;
    process.env.NETLAB_NFT = `/nonexistent/${tag}/nft`;
    try {
      let err: unknown = null;
      try {
        nftApply('table inet x {}\n');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(KernelError);
      expect((err as KernelError).errno).toBe('ENOPKG');
      expect((err as KernelError).message).toContain('nftables');
    } finally {
      if (saved === undefined) delete process.env.NETLAB_NFT;
      else process.env.NETLAB_NFT = saved;
    }
  });

  it('leaves nothing behind', async () => {
    await cleanup();
    k.close();
    k.close(); // idempotent
    closed = true;
    await expectNoLeaks(before);
    expect(netnsListed().filter((n) => n.includes(tag))).toEqual([]);
    expect(ipj<IpLink>(['link', 'show']).filter((l) => l.ifname.includes(tag))).toEqual([]);
  });
});
