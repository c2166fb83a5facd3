// What `up` refuses before building (controller/conflicts.ts): the parsers of the machine's
// tables on fixed samples, the pure conflict rules over resolved labs (which overlaps and
// which ports conflict, and which do not), and the claim lock's stale-holder takeover, in a
// state directory of its own (NETLAB_STATE_DIR is read when the module loads).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTopologyText } from '../../topology/load.js';
import type { MachineNet } from '../../topology/addrspace.js';
import type { Lab } from '../../topology/types.js';

const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-conflicts-'));
process.env.NETLAB_STATE_DIR = path.join(stateDir, 'state');
const c = await import('../../controller/conflicts.js');

afterAll(() => fs.rmSync(stateDir, { recursive: true, force: true }));

function lab(text: string): Lab {
  const r = loadTopologyText(text, 'x.yml');
  if (!r.lab) throw new Error(JSON.stringify(r.diagnostics));
  return r.lab;
}

const NO_MACHINE: MachineNet = { routes: [], addresses: [] };
const other = (model: Lab, o: { status?: 'up' | 'creating'; as?: string } = {}) => ({ name: model.name, status: o.status ?? 'up', as: o.as ?? null, model });

const bridge = (name: string, subnet: string, extra = '') => lab(`name: ${name}\nnetworks:\n  lan: { subnet: ${subnet}${extra} }\nnodes:\n  a: { networks: [lan] }\n`);
const publisher = (name: string, subnet: string, ports: string[]) =>
  lab(`name: ${name}\nnetworks:\n  lan: { subnet: ${subnet} }\nnodes:\n  web: { networks: [lan], ports: [${ports.map((p) => JSON.stringify(p)).join(', ')}] }\n`);

describe('parsing the machine\'s tables', () => {
  it('/proc/net/route: up routes with their prefix, without the default route', () => {
    const text = [
      'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT',
      'eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0',
      'eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0',
      'docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0',
      'eth1\t0A0A0A0A\t00000000\t0005\t0\t0\t0\tFFFFFFFF\t0\t0\t0',
      'down0\t0000000A\t00000000\t0000\t0\t0\t0\t000000FF\t0\t0\t0',
    ].join('\n');
    expect(c.parseProcRoute(text)).toEqual([
      { dst: '192.0.2.0/24', dev: 'eth0' }, { dst: '172.17.0.0/16', dev: 'docker0' }, { dst: '10.10.10.10/32', dev: 'eth1' },
    ]);
  });

  it('/proc/net/tcp{,6}: LISTEN sockets only, IPv4-mapped and wildcard IPv6 told apart from other IPv6', () => {
    const tcp = [
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
      '   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 602 1 0 100 0 0 10 0',
      '   1: 0100007F:6A22 0307CF0A:AF88 06 00000000:00000000 03:000003AD 00000000     0        0 0 3 0',
      '   2: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0 100 0 0 10 0',
    ].join('\n');
    expect(c.parseProcNet(tcp, 'tcp', false)).toEqual([
      { protocol: 'tcp', address: '0.0.0.0', port: 2024, inode: 602 },
      { protocol: 'tcp', address: '127.0.0.1', port: 8080, inode: 777 },
    ]);
    const tcp6 = [
      '  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
      '   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 11 1 0',
      '   1: 0000000000000000FFFF00000100007F:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12 1 0',
      '   2: 00000000000000000000000001000000:0051 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 13 1 0',
    ].join('\n');
    expect(c.parseProcNet(tcp6, 'tcp', true)).toEqual([
      { protocol: 'tcp', address: '::', port: 22, inode: 11 },
      { protocol: 'tcp', address: '127.0.0.1', port: 80, inode: 12 },
      { protocol: 'tcp', address: 'v6', port: 81, inode: 13 },
    ]);
  });

  it('/proc/net/udp: bound unconnected sockets only (a connected client socket holds no service port)', () => {
    const udp = [
      '   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops',
      '  100: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 900 2 0 0',
      '  101: 0200000A:C350 0100000A:0035 01 00000000:00000000 00:00000000 00000000     0        0 901 2 0 0',
    ].join('\n');
    expect(c.parseProcNet(udp, 'udp', false)).toEqual([{ protocol: 'udp', address: '127.0.0.53', port: 53, inode: 900 }]);
  });

  it('interface addresses: IPv4 with prefix, loopback left out', () => {
    const got = c.interfaceAddresses({
      lo: [{ address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal: true, cidr: '127.0.0.1/8' }],
      eth0: [
        { address: '192.0.2.2', netmask: '255.255.255.0', family: 'IPv4', mac: '02:00:00:00:00:01', internal: false, cidr: '192.0.2.2/24' },
        { address: 'fd00::2', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '02:00:00:00:00:01', internal: false, cidr: 'fd00::2/64', scopeid: 0 },
      ],
    });
    expect(got).toEqual([{ address: '192.0.2.2', prefixLen: 24, dev: 'eth0' }]);
  });

  it('netlab\'s interface names carry the lab id; nothing else matches', () => {
    expect(c.netlabIfLabId('nlab12cdb0f0f0f0')).toBeNull(); // 16 bytes: not one of ours
    expect(c.netlabIfLabId('nlab12cdbf0f0f0')).toBe('ab12cd');
    for (const other of ['eth0', 'docker0', 'nlmon0', 'nlAB12CDbF0F0F0', 'nlab12cdzf0f0f0']) expect(c.netlabIfLabId(other), other).toBeNull();
  });
});

describe('footprint: what a lab takes on this machine', () => {
  it('host-present subnets are bridges with a gateway; internal networks, links and the underlay only count as subnets', () => {
    const l = lab(`
name: fp
hosts: { h1: {} }
networks:
  lan: { subnet: 10.1.0.0/24 }
  back: { subnet: 10.2.0.0/24, gateway: false }
  far: { subnet: 10.3.0.0/24 }
  ov: { driver: overlay, subnet: 10.4.0.0/24 }
nodes:
  a: { networks: [lan, back], ports: ["8080:80", "127.0.0.1:5353:53/udp"] }
  b: { networks: [back] }
  c: { host: h1, networks: [far, ov] }
links:
  - { endpoints: ["a:p0", "b:p0"], ipv4: [10.5.0.1/30, 10.5.0.2/30] }
underlay: { subnet: 10.6.0.0/24 }
`);
    const f = c.footprint(l, null);
    expect(f.hostSubnets).toEqual([{ subnet: '10.1.0.0/24', network: 'lan' }]);
    expect(f.subnets.sort()).toEqual(['10.1.0.0/24', '10.2.0.0/24', '10.3.0.0/24', '10.4.0.0/24', '10.5.0.0/30', '10.6.0.0/24']);
    expect(f.ports).toEqual([
      { node: 'a', hostIp: '0.0.0.0', hostPort: 8080, protocol: 'tcp' },
      { node: 'a', hostIp: '127.0.0.1', hostPort: 5353, protocol: 'udp' },
    ]);
    // One host's part (`up --as h1`): its nodes only, no host-present network, no simulated underlay.
    const part = c.footprint(l, 'h1');
    expect(part.hostSubnets).toEqual([]);
    expect(part.ports).toEqual([]);
    expect(part.subnets).not.toContain('10.6.0.0/24');
  });

  it('avoidFromLabs lists every subnet of the other labs with the lab\'s name', () => {
    const a = bridge('la', '10.7.0.0/24', ', gateway: false');
    expect(c.avoidFromLabs([other(a)])).toEqual([{ subnet: '10.7.0.0/24', lab: 'la', owner: 'lab la' }]);
  });
});

describe('findConflicts', () => {
  it('the same or an overlapping subnet on the host, in two labs: refused, naming the subnet, the network and the other lab', () => {
    const first = bridge('first', '10.20.0.0/24');
    const second = bridge('second', '10.20.0.128/25');
    expect(c.findConflicts(second, null, [other(first)], NO_MACHINE, [])).toEqual([
      'subnet 10.20.0.128/25 of network lan overlaps subnet 10.20.0.0/24 of network lan of lab first (up), which is on this machine too; give one of them another subnet (or leave it out to have one allocated)',
    ]);
    expect(c.findConflicts(second, null, [other(first, { status: 'creating' })], NO_MACHINE, [])[0]).toContain('of lab first (creating)');
  });

  it('internal networks do not conflict with other labs, either way round', () => {
    const hostSide = bridge('hs', '10.21.0.0/24');
    const internal = bridge('in', '10.21.0.0/24', ', gateway: false');
    expect(c.findConflicts(internal, null, [other(hostSide)], NO_MACHINE, [])).toEqual([]);
    expect(c.findConflicts(hostSide, null, [other(internal)], NO_MACHINE, [])).toEqual([]);
    expect(c.findConflicts(bridge('in2', '10.21.0.0/24', ', gateway: false'), null, [other(internal)], NO_MACHINE, [])).toEqual([]);
  });

  it('disjoint subnets and a lab\'s own state never conflict', () => {
    const a = bridge('a', '10.22.0.0/24');
    expect(c.findConflicts(bridge('b', '10.22.1.0/24'), null, [other(a)], NO_MACHINE, [])).toEqual([]);
    expect(c.findConflicts(a, null, [other(a)], NO_MACHINE, [])).toEqual([]);
  });

  it('a host-present subnet over the machine\'s route or address: refused', () => {
    const machine: MachineNet = { routes: [{ dst: '172.17.0.0/16', dev: 'docker0' }], addresses: [{ address: '192.0.2.2', prefixLen: 24, dev: 'eth0' }] };
    expect(c.findConflicts(bridge('d', '172.17.5.0/24'), null, [], machine, [])).toEqual([
      'subnet of network lan 172.17.5.0/24 overlaps this machine\'s route 172.17.0.0/16 on docker0; bringing it up would cut the machine off from that network: choose another subnet',
    ]);
    expect(c.findConflicts(bridge('e', '192.0.2.0/24'), null, [], machine, [])[0]).toContain('contains this machine\'s address 192.0.2.2/24 on eth0');
    expect(c.findConflicts(bridge('f', '172.17.5.0/24', ', gateway: false'), null, [], machine, [])).toEqual([]);
  });

  it('published ports: same port and protocol on the same address, or either on 0.0.0.0, conflict', () => {
    const first = publisher('p1', '10.23.0.0/24', ['8080:80', '127.0.0.1:9090:90', '5353:53/udp']);
    const cases: [string, boolean][] = [
      ['8080:80', true], ['127.0.0.1:8080:80', true], ['9090:90', true], ['127.0.0.1:9090:90', true],
      ['127.0.0.2:9090:90', false], ['8080:80/udp', false], ['5353:53', false], ['5353:53/udp', true], ['8081:80', false],
    ];
    for (const [spec, conflict] of cases) {
      const got = c.findConflicts(publisher('p2', '10.23.1.0/24', [spec]), null, [other(first)], NO_MACHINE, []);
      expect(got.length, spec).toBe(conflict ? 1 : 0);
      if (conflict) expect(got[0]).toMatch(/^host port \S+ of node web is already published by node web of lab p1 \(up\); choose another host port$/);
    }
  });

  it('a port held by a listener on the machine: refused, naming the process when known', () => {
    const ls = (address: string, port = 8080, protocol: 'tcp' | 'udp' = 'tcp') => [{ protocol, address, port, inode: 42 }];
    const owner = (inode: number) => (inode === 42 ? 'pid 7 (httpd)' : null);
    const all = publisher('q', '10.24.0.0/24', ['8080:80']);
    const lo = publisher('q', '10.24.0.0/24', ['127.0.0.1:8080:80']);
    expect(c.findConflicts(all, null, [], NO_MACHINE, ls('127.0.0.1'), owner)).toEqual([
      'host port 8080/tcp of node web is in use on this machine: pid 7 (httpd) listens on 127.0.0.1:8080/tcp; stop it or choose another host port',
    ]);
    expect(c.findConflicts(lo, null, [], NO_MACHINE, ls('0.0.0.0'))[0]).toContain('a process listens on 0.0.0.0:8080/tcp');
    expect(c.findConflicts(lo, null, [], NO_MACHINE, ls('::'))[0]).toContain('listens on [::]:8080/tcp');
    expect(c.findConflicts(lo, null, [], NO_MACHINE, ls('127.0.0.1'))).toHaveLength(1);
    // Another address, another port, another protocol, or an IPv6-only address: no conflict.
    expect(c.findConflicts(lo, null, [], NO_MACHINE, ls('192.0.2.2'))).toEqual([]);
    expect(c.findConflicts(all, null, [], NO_MACHINE, ls('0.0.0.0', 8081))).toEqual([]);
    expect(c.findConflicts(all, null, [], NO_MACHINE, ls('0.0.0.0', 8080, 'udp'))).toEqual([]);
    expect(c.findConflicts(all, null, [], NO_MACHINE, ls('v6'))).toEqual([]);
  });

  it('two labs with one kernel id or link group would remove each other\'s objects: refused', () => {
    const a = bridge('ida', '10.25.0.0/24');
    const b = bridge('idb', '10.25.1.0/24');
    const twin = { ...b, id: a.id };
    expect(c.findConflicts(twin, null, [other(a)], NO_MACHINE, [])[0]).toBe(`lab idb has the same kernel id ${a.id} as lab ida (up) (a hash collision of the names); rename one of them`);
    expect(c.findConflicts({ ...b, group: a.group }, null, [other(a)], NO_MACHINE, [])[0]).toContain(`link group ${a.group}`);
  });
});

describe('the claim lock', () => {
  const lockFile = `${process.env.NETLAB_STATE_DIR}.claims.lock`;
  beforeAll(() => fs.mkdirSync(path.dirname(lockFile), { recursive: true }));

  it('is taken and released by this process, re-entrantly', () => {
    c.holdClaims();
    expect(fs.readFileSync(lockFile, 'utf8')).toMatch(new RegExp(`^${process.pid} \\d+$`));
    c.holdClaims();
    c.releaseClaims();
    expect(fs.existsSync(lockFile)).toBe(false);
    c.releaseClaims();
  });

  it('a lock whose holder is gone (or whose pid was reused) is taken over', () => {
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    fs.writeFileSync(lockFile, `${dead.stdout} 123`);
    c.holdClaims();
    expect(fs.readFileSync(lockFile, 'utf8').startsWith(`${process.pid} `)).toBe(true);
    c.releaseClaims();
    // A live pid with another start time is a reused pid, not the holder.
    fs.writeFileSync(lockFile, `${process.pid} 1`);
    c.holdClaims();
    expect(fs.readFileSync(lockFile, 'utf8')).not.toBe(`${process.pid} 1`);
    c.releaseClaims();
    expect(fs.existsSync(lockFile)).toBe(false);
  });

  it('claimLab refuses the first conflict in one line and leaves the lock free', () => {
    const stateRoot = process.env.NETLAB_STATE_DIR!;
    const first = bridge('cl-first', '10.26.0.0/24');
    fs.mkdirSync(path.join(stateRoot, 'cl-first'), { recursive: true });
    const now = new Date().toISOString();
    fs.writeFileSync(path.join(stateRoot, 'cl-first', 'state.json'), JSON.stringify({
      version: 1, lab: 'cl-first', file: '', status: 'up', pid: 1, createdAt: now, updatedAt: now, progress: { done: 0, total: 0, phase: 'done' }, error: null, model: first,
    }));
    expect(() => c.claimLab(bridge('cl-second', '10.26.0.0/24'), null)).toThrow(/^subnet 10\.26\.0\.0\/24 of network lan overlaps subnet 10\.26\.0\.0\/24 of network lan of lab cl-first \(up\).*; nothing was built$/);
    expect(fs.existsSync(lockFile)).toBe(false);
    // A state whose model this version cannot read is skipped, not a crash of every later up.
    fs.mkdirSync(path.join(stateRoot, 'cl-odd'), { recursive: true });
    fs.writeFileSync(path.join(stateRoot, 'cl-odd', 'state.json'), JSON.stringify({ version: 1, lab: 'cl-odd', status: 'up', model: { name: 'cl-odd' } }));
    expect(c.readOtherLabs('x').map((o) => o.name)).toEqual(['cl-first']);
    const release = c.claimLab(bridge('cl-third', '10.26.1.0/24'), null);
    expect(fs.existsSync(lockFile)).toBe(true);
    release();
    expect(fs.existsSync(lockFile)).toBe(false);
  });
});
