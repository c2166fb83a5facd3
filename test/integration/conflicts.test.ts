// Conflicts between labs, and with the machine, through the real CLI as root: `up` of a lab
// whose host-side subnet or published port another lab already has, or whose port a host
// process listens on, is refused in one line naming the subnet or port and the other lab (or
// process), with nothing of it built; an internal network may reuse another lab's subnet; and
// two labs that name no subnets, brought up at the same moment, get different subnets and both
// work.
//
// Safety on a shared machine: every lab is named k<run>-<what><n>, explicit subnets are 10.X
// blocks nothing in the root namespace uses (freeOctets), ports are free ones (freePort), the
// listeners the test starts are its own on loopback, pings go only between namespaces this
// file made, and only `down LAB` of this file's labs is used for cleanup (never `netlab cleanup`).
import * as dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { labId } from '../../topology/names.js';
import { cidrsOverlap } from '../../topology/ipam.js';
import { addLeakProbe, cgroupProbe, containerProcessProbe, expectNoLeaks, snapshot, type Snapshot } from '../helpers/leaks.js';
import {
  forceRemoveLab, freeOctets, freePort, ipj, labLeftovers, netlab, netlabOk, netlabSpawn, ping, prng, waitExit,
  assertBuildFresh, downAndCheck, type CliResult, type IpAddr, type IpRoute, downEach,
} from '../helpers/netlab.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('test/integration/conflicts.test.ts skipped: it needs root (it builds labs in the real kernel)');

const RUN = randomBytes(3).toString('hex');
const SEED = Number(process.env.NETLAB_TEST_SEED ?? 0x6b6f6e66);
const rand = prng(SEED);

describe.skipIf(!isRoot)('conflicts between labs and with the machine', () => {
  let tmp = '';
  let before: Snapshot;
  const myLabs = new Set<string>();
  const testLabs = new Set<string>();
  let counter = 0;

  function newLab(what: string): string {
    const name = `k${RUN}-${what}${counter++}`;
    myLabs.add(name);
    testLabs.add(name);
    return name;
  }

  function write(lab: string, body: string): string {
    const file = path.join(tmp, `${lab}.yml`);
    fs.writeFileSync(file, `name: ${lab}\n${body}`);
    return file;
  }

  /** Two nodes on one bridge network with a host-side gateway; `extra` is added to the network. */
  const twoNodes = (subnet: string | null, o: { extra?: string; ports?: string[] } = {}) => [
    'networks:',
    `  lan: {${subnet ? ` subnet: ${subnet}` : ''}${o.extra ?? ''} }`,
    'nodes:',
    `  a: { networks: [lan]${o.ports ? `, ports: [${o.ports.map((p) => JSON.stringify(p)).join(', ')}]` : ''} }`,
    '  b: { networks: [lan] }',
    '',
  ].join('\n');

  /** The only netlab line of stderr (progress lines are not errors), failing when there are more. */
  function errorLine(r: CliResult): string {
    const lines = r.stderr.trimEnd().split('\n').filter(Boolean);
    expect(lines, r.stderr).toHaveLength(1);
    return lines[0];
  }

  /** The IPv4 address of eth0 in a node's namespace, read with ip(8). */
  function eth0(lab: string, node: string): { address: string; prefixLen: number } {
    const a = ipj<IpAddr>(['-4', 'addr', 'show', 'dev', 'eth0'], `netlab.${lab}.${node}`)[0]?.addr_info[0];
    if (!a) throw new Error(`${lab}/${node} has no IPv4 address on eth0`);
    return { address: a.local, prefixLen: a.prefixlen };
  }

  function expectNothingBuilt(lab: string): void {
    expect(labLeftovers(lab), `${lab} left something although up was refused`).toEqual([]);
  }

  async function listen(kind: 'tcp' | 'udp', host: string, port: number): Promise<() => Promise<void>> {
    if (kind === 'tcp') {
      const s = net.createServer();
      await new Promise<void>((resolve, reject) => { s.once('error', reject); s.listen(port, host, resolve); });
      return () => new Promise<void>((resolve) => s.close(() => resolve()));
    }
    const s = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => { s.once('error', reject); s.bind(port, host, resolve); });
    return () => new Promise<void>((resolve) => s.close(() => resolve()));
  }

  beforeAll(() => {
    assertBuildFresh();
    addLeakProbe(cgroupProbe((d) => d.includes(`/netlab/k${RUN}-`)));
    addLeakProbe(containerProcessProbe((g) => g.includes(`/netlab/k${RUN}-`)));
    before = snapshot();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-conflicts-'));
    console.log(`conflicts.test.ts: run ${RUN}, seed ${SEED} (set NETLAB_TEST_SEED to replay), topologies in ${tmp}`);
  });

  afterEach(async () => {
    expect(await downEach(testLabs), 'labs of this test left objects behind').toEqual([]);
  });

  afterAll(async () => {
    const left: string[] = [];
    for (const lab of myLabs) left.push(...(await downAndCheck(lab)).map((x) => `${lab}: ${x}`));
    for (const lab of myLabs) {
      if (labLeftovers(lab).length > 0) console.warn(`removing what is left of ${lab} without netlab: ${(await forceRemoveLab(lab)).join('; ')}`);
    }
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    expect(left, 'labs of this file left objects behind').toEqual([]);
    const ids = [...myLabs].map((lab) => labId(lab));
    const ours = (probe: string, item: string) => probe === 'child processes'
      || item.includes(`netlab.k${RUN}-`) || item.includes(`/netlab/k${RUN}-`)
      || ids.some((id) => item.startsWith(`nl${id}`) || item === `ip netlab_${id}`);
    await expectNoLeaks(before, { only: ours });
  });

  it('the same explicit subnet on the host in a second lab: refused in one line naming the subnet and the first lab, nothing of it built; the first keeps working', () => {
    const [o] = freeOctets(1, rand);
    const first = newLab('first');
    const second = newLab('second');
    const subnet = `10.${o}.0.0/24`;
    netlabOk(['up', write(first, twoNodes(subnet))]);
    const r = netlab(['up', write(second, twoNodes(subnet))]);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(errorLine(r)).toBe(`netlab: subnet ${subnet} of network lan overlaps subnet ${subnet} of network lan of lab ${first} (up), which is on this machine too; give one of them another subnet (or leave it out to have one allocated); nothing was built`);
    expectNothingBuilt(second);
    // An overlapping (not equal) subnet is the same conflict.
    const third = newLab('third');
    const r3 = netlab(['up', write(third, twoNodes(`10.${o}.0.128/25`))]);
    expect(r3.status).toBe(1);
    expect(errorLine(r3)).toContain(`subnet 10.${o}.0.128/25 of network lan overlaps subnet ${subnet} of network lan of lab ${first} (up)`);
    expectNothingBuilt(third);
    expect(ping(`netlab.${first}.a`, eth0(first, 'b').address, true)).toBe(true);
  });

  it('an internal network may reuse another lab\'s subnet: both labs come up and reach their own nodes', () => {
    const [o] = freeOctets(1, rand);
    const subnet = `10.${o}.0.0/24`;
    const hostSide = newLab('hostside');
    const internal = newLab('internal');
    netlabOk(['up', write(hostSide, twoNodes(subnet))]);
    netlabOk(['up', write(internal, twoNodes(subnet, { extra: ', gateway: false' }))]);
    for (const lab of [hostSide, internal]) {
      expect(ping(`netlab.${lab}.a`, eth0(lab, 'b').address, true), `${lab}: a -> b`).toBe(true);
      expect(ping(`netlab.${lab}.b`, eth0(lab, 'a').address, true), `${lab}: b -> a`).toBe(true);
    }
  });

  it('the same published host port in a second lab: refused in one line naming the port and the first lab, nothing of it built', async () => {
    const [o1, o2] = freeOctets(2, rand);
    const port = await freePort(rand);
    const first = newLab('pub');
    const second = newLab('pubtoo');
    netlabOk(['up', write(first, twoNodes(`10.${o1}.0.0/24`, { ports: [`${port}:80`] }))]);
    const r = netlab(['up', write(second, twoNodes(`10.${o2}.0.0/24`, { ports: [`127.0.0.1:${port}:8080`] }))]);
    expect(r.status).toBe(1);
    expect(errorLine(r)).toBe(`netlab: host port 127.0.0.1:${port}/tcp of node a is already published by node a of lab ${first} (up); choose another host port; nothing was built`);
    expectNothingBuilt(second);
  });

  it('a port a host process listens on (TCP on 127.0.0.1 and on 0.0.0.0, UDP): refused in one line naming the port and the process', async () => {
    const [o] = freeOctets(1, rand);
    const cases: { kind: 'tcp' | 'udp'; listenOn: string; publish: (p: number) => string; shown: (p: number) => string }[] = [
      { kind: 'tcp', listenOn: '127.0.0.1', publish: (p) => `${p}:80`, shown: (p) => `host port ${p}/tcp of node a is in use on this machine: pid ${process.pid} (`},
      { kind: 'tcp', listenOn: '0.0.0.0', publish: (p) => `127.0.0.1:${p}:80`, shown: (p) => `host port 127.0.0.1:${p}/tcp of node a is in use on this machine: pid ${process.pid} (` },
      { kind: 'udp', listenOn: '127.0.0.1', publish: (p) => `${p}:53/udp`, shown: (p) => `host port ${p}/udp of node a is in use on this machine: pid ${process.pid} (` },
    ];
    for (const c of cases) {
      const port = await freePort(rand);
      const close = await listen(c.kind, c.listenOn, port);
      try {
        const lab = newLab('held');
        const r = netlab(['up', write(lab, twoNodes(`10.${o}.0.0/24`, { ports: [c.publish(port)] }))]);
        expect(r.status, r.stderr).toBe(1);
        const line = errorLine(r);
        expect(line).toContain(c.shown(port));
        expect(line).toContain(`listens on ${c.listenOn}:${port}/${c.kind}; stop it or choose another host port; nothing was built`);
        expectNothingBuilt(lab);
      } finally {
        await close();
      }
    }
  });

  it('two labs without subnets, brought up at the same moment, get different subnets and both reach their own nodes', async () => {
    const routedBefore = ipj<IpRoute>(['-4', 'route', 'show']).map((r) => r.dst).filter((d) => d !== 'default');
    const labs = [newLab('autoa'), newLab('autob')];
    const files = labs.map((lab) => write(lab, twoNodes(null)));
    const children = files.map((f) => netlabSpawn(['up', f]));
    const output = children.map((c) => { let s = ''; c.stderr!.on('data', (d: Buffer) => { s += d.toString(); }); return () => s; });
    const exits = await Promise.all(children.map((c) => waitExit(c)));
    exits.forEach((e, i) => expect(e.code, `up ${labs[i]}: ${output[i]()}`).toBe(0));
    const subnetOf = (lab: string) => {
      const a = eth0(lab, 'a');
      const [x, y, z] = a.address.split('.');
      expect(a.prefixLen).toBe(24);
      return `${x}.${y}.${z}.0/24`;
    };
    const [sa, sb] = labs.map(subnetOf);
    expect(sa).not.toBe(sb);
    // From the default pool, and clear of everything the machine routed before (other labs'
    // bridges, the uplink...).
    for (const s of [sa, sb]) {
      expect(s).toMatch(/^10\.128\.\d+\.0\/24$/);
      for (const d of routedBefore) expect(cidrsOverlap(s, d.includes('/') ? d : `${d}/32`), `${s} vs route ${d}`).toBe(false);
    }
    for (const lab of labs) {
      expect(ping(`netlab.${lab}.a`, eth0(lab, 'b').address, true), `${lab}: a -> b`).toBe(true);
      expect(ping(`netlab.${lab}.b`, eth0(lab, 'a').address, true), `${lab}: b -> a`).toBe(true);
    }
    // A third one, sequentially, also avoids both.
    const third = newLab('autoc');
    netlabOk(['up', write(third, twoNodes(null))]);
    expect([sa, sb]).not.toContain(subnetOf(third));
    expect(ping(`netlab.${third}.a`, eth0(third, 'b').address, true)).toBe(true);
  });
});
