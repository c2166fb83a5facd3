// Routing without root: the `routing:` key and static route metrics/ECMP as the resolver reads
// them (defaults, costs, neighbours, every refusal at its line), FRR's rendered configuration,
// the protocol simulation (OSPF shortest paths with ECMP, eBGP path vector) and the simulator's
// use of it (floating static routes, ECMP paths walked, re-convergence after a cable is cut),
// the predicted-vs-kernel route comparison, and RTA_MULTIPATH's encoding.
import { describe, expect, it } from 'vitest';
import { loadTopologyText } from '../../topology/load.js';
import { predictPair, predictedTable, explain } from '../../topology/simulate.js';
import { protocolRoutes, type Router } from '../../topology/protocols.js';
import { frrFiles } from '../../runtime/frr.js';
import { compareTables, observedTable } from '../../checks/routes.js';
import { decodeMultipath, encodeMultipath, parseIp } from '../../controller/kernel/codec.js';
import type { Diagnostic, Lab } from '../../topology/types.js';

function lab(yaml: string): Lab {
  const r = loadTopologyText(yaml, '');
  if (!r.lab) throw new Error(`test lab is not valid: ${r.diagnostics.map((d) => `${d.line}:${d.col} ${d.message}`).join('; ')}`);
  return r.lab;
}

function problems(yaml: string): Diagnostic[] {
  const r = loadTopologyText(yaml, '');
  expect(r.lab).toBeNull();
  return r.diagnostics;
}

const down = (l: Lab, node: string, iface: string): Lab => {
  const m = structuredClone(l);
  const f = m.nodes.find((n) => n.name === node)!.interfaces.find((i) => i.name === iface)!;
  if (f.kind === 'link') m.links[f.link].up = false;
  else f.up = false;
  for (const n of m.nodes) for (const i of n.interfaces) if (i.kind === 'link' && i.link === (f.kind === 'link' ? f.link : -1)) i.up = false;
  return m;
};

const IMG = 'images:\n  frr: { debian: bookworm, packages: [frr] }\n';

/** A square of routers r1-r2-r3-r4-r1 (OSPF, cost 10 each unless said), h1 behind r1, h3 behind r3. */
function square(extra = '', costs: Record<string, number> = {}): string {
  const link = (a: string, b: string, n: number) => {
    const c = costs[`${a}${b}`];
    return `  - { endpoints: ["${a}:e${b}", "${b}:e${a}"], ipv4: [10.9.${n}.1/30, 10.9.${n}.2/30]${c ? `, ospf: { cost: ${c} }` : ''} }\n`;
  };
  return `name: sq\n${IMG}networks:\n  lan1: { subnet: 10.8.1.0/24, gateway: false }\n  lan3: { subnet: 10.8.3.0/24, gateway: false }\nnodes:\n`
    + '  r1: { image: frr, routing: { ospf: {} }, networks: { lan1: { ipv4: 10.8.1.1 } } }\n'
    + '  r2: { image: frr, routing: { ospf: {} } }\n'
    + '  r3: { image: frr, routing: { ospf: {} }, networks: { lan3: { ipv4: 10.8.3.1 } } }\n'
    + '  r4: { image: frr, routing: { ospf: {} } }\n'
    + '  h1: { networks: { lan1: { ipv4: 10.8.1.10 } }, routes: [{ dst: default, via: 10.8.1.1 }] }\n'
    + '  h3: { networks: { lan3: { ipv4: 10.8.3.10 } }, routes: [{ dst: default, via: 10.8.3.1 }] }\n'
    + extra
    + `links:\n${link('r1', 'r2', 12)}${link('r2', 'r3', 23)}${link('r3', 'r4', 34)}${link('r4', 'r1', 14)}`;
}

describe('routing: in the topology', () => {
  it('gives a routing node FRR as its command, the capabilities zebra needs, forwarding, costs and a router ID', () => {
    const l = lab(square('', { r1r2: 100 }));
    const r1 = l.nodes.find((n) => n.name === 'r1')!;
    expect(r1.command).toEqual(['/bin/sh', '-c', '/usr/lib/frr/frrinit.sh start >/dev/null || exit 1; [ -x /usr/local/sbin/netlab-pause ] && exec /usr/local/sbin/netlab-pause; exec sleep infinity']);
    expect(r1.capAdd).toEqual(expect.arrayContaining(['NET_ADMIN', 'SYS_ADMIN']));
    expect(r1.forwarding).toBe(true);
    expect(r1.routing!.routerId).toBe('10.8.1.1');
    expect(r1.routing!.ospf).toEqual({ area: '0.0.0.0', interfaces: [{ name: 'eth0', cost: 10 }, { name: 'er2', cost: 100 }, { name: 'er4', cost: 10 }] });
    expect(l.nodes.find((n) => n.name === 'r2')!.routing!.ospf!.interfaces).toContainEqual({ name: 'er1', cost: 100 });
    expect(l.nodes.find((n) => n.name === 'h1')!.routing ?? null).toBeNull();
  });

  it('refuses routing without FRR, two areas, a cost without OSPF, bad neighbours and iBGP, each at its line', () => {
    const busy = problems('name: x\nnodes:\n  r: { routing: { ospf: {} } }\n');
    expect(busy[0].line).toBe(3);
    expect(busy[0].message).toMatch(/image busybox has no FRR/);
    const nofrr = problems('name: x\nimages:\n  deb: { debian: bookworm, packages: [iproute2] }\nnodes:\n  r:\n    image: deb\n    routing: { bgp: { asn: 1 } }\n');
    expect(nofrr.map((d) => [d.line, d.message])).toEqual([[6, expect.stringMatching(/does not install it: add frr to images\.deb\.packages/)]]);
    const areas = problems(square().replace("r2: { image: frr, routing: { ospf: {} } }", "r2: { image: frr, routing: { ospf: { area: 1 } } }"));
    expect(areas.some((d) => /one OSPF area per lab/.test(d.message))).toBe(true);
    const cost = problems(`${square()}`.replace("h1: { networks: { lan1: { ipv4: 10.8.1.10 } }", "h1: { networks: { lan1: { ipv4: 10.8.1.10, ospf: { cost: 5 } } }"));
    expect(cost.some((d) => /has no routing\.ospf/.test(d.message))).toBe(true);
    const bgp = (r1: string, r2: string) => `name: b\n${IMG}nodes:\n  r1: { image: frr, routing: ${r1} }\n  r2: { image: frr, routing: ${r2} }\n  r3: { image: frr, routing: { bgp: { asn: 3 } } }\nlinks:\n  - { endpoints: ["r1:eth0", "r2:eth0"], ipv4: [10.7.0.1/30, 10.7.0.2/30] }\n`;
    expect(problems(bgp('{ bgp: { asn: 1 } }', '{ bgp: { asn: 1 } }')).some((d) => /both in AS 1: netlab configures eBGP only/.test(d.message))).toBe(true);
    const far = problems(bgp('{ bgp: { asn: 1, neighbors: [r3] } }', '{ bgp: { asn: 2 } }'));
    expect(far.map((d) => d.line)).toContain(5);
    expect(far.some((d) => /shares no network or link with r1/.test(d.message))).toBe(true);
    expect(problems(bgp('{ bgp: { asn: 1, neighbors: [nope] } }', '{ bgp: { asn: 2 } }')).some((d) => /no node "nope"/.test(d.message))).toBe(true);
    const noId = problems(`name: n\n${IMG}nodes:\n  r: { image: frr, routing: { ospf: {} } }\n`);
    expect(noId.some((d) => /no interface address to take a router ID from/.test(d.message))).toBe(true);
  });

  it('eBGP neighbours default to the directly connected BGP routers; FRR gets their addresses and ASNs', () => {
    const l = lab(`name: b\n${IMG}nodes:\n  r1: { image: frr, routing: { bgp: { asn: 65001 } } }\n  r2: { image: frr, routing: { bgp: { asn: 65002 } } }\n  r3: { image: frr, routing: { bgp: { asn: 65003 } } }\n`
      + 'links:\n  - { endpoints: ["r1:eth0", "r2:eth0"], ipv4: [10.7.0.1/30, 10.7.0.2/30] }\n  - { endpoints: ["r2:eth1", "r3:eth0"], ipv4: [10.7.1.1/30, 10.7.1.2/30] }\n');
    const r2 = l.nodes.find((n) => n.name === 'r2')!;
    expect(r2.routing!.bgp).toEqual({ asn: 65002, neighbors: [{ node: 'r1', address: '10.7.0.1', asn: 65001 }, { node: 'r3', address: '10.7.1.2', asn: 65003 }], networks: ['10.7.0.0/30', '10.7.1.0/30'] });
    const conf = frrFiles(r2).find((f) => f.path === '/etc/frr/frr.conf')!.content;
    expect(conf).toContain('router bgp 65002\n bgp router-id 10.7.0.2\n no bgp ebgp-requires-policy\n bgp bestpath compare-routerid\n');
    expect(conf).toContain(' neighbor 10.7.0.1 remote-as 65001\n');
    expect(conf).toContain(' neighbor 10.7.1.2 remote-as 65003\n');
    expect(conf).toContain('  network 10.7.1.0/30\n');
    expect(frrFiles(r2).find((f) => f.path === '/etc/frr/daemons')!.content).toMatch(/^bgpd=yes$/m);
    expect(frrFiles(r2).find((f) => f.path === '/etc/frr/daemons')!.content).toMatch(/^ospfd=no$/m);
  });

  it('renders OSPF per interface: area, cost, fast timers, point-to-point on links only', () => {
    const l = lab(square('', { r1r2: 100 }));
    const conf = frrFiles(l.nodes.find((n) => n.name === 'r1')!).find((f) => f.path === '/etc/frr/frr.conf')!.content;
    expect(conf).toContain('interface er2\n ip ospf area 0.0.0.0\n ip ospf cost 100\n ip ospf hello-interval 1\n ip ospf dead-interval 4\n ip ospf network point-to-point\nexit\n');
    expect(conf).toContain('interface eth0\n ip ospf area 0.0.0.0\n ip ospf cost 10\n ip ospf hello-interval 1\n ip ospf dead-interval 4\nexit\n');
    expect(conf).toContain('router ospf\n ospf router-id 10.8.1.1\n');
    expect(frrFiles(l.nodes.find((n) => n.name === 'h1')!)).toEqual([]);
  });
});

describe('protocol simulation', () => {
  const iface = (name: string, address: string, segment: string, ospfCost: number | null = 10, usable = true) => ({ name, address, prefixLen: 30, segment, usable, ospfCost });

  it('OSPF: shortest paths by cost, every equal-cost next hop, re-converged without a dead link', () => {
    // r1 - r2 - r3 and r1 - r4 - r3, all cost 10: two ways to r3's stub.
    const mk = (cut = false): Router[] => [
      { id: 'r1', routerId: '1.1.1.1', ospf: true, bgp: null, ifaces: [iface('a', '10.0.12.1', 's12', 10, !cut), iface('b', '10.0.14.1', 's14')] },
      { id: 'r2', routerId: '2.2.2.2', ospf: true, bgp: null, ifaces: [iface('a', '10.0.12.2', 's12', 10, !cut), iface('b', '10.0.23.1', 's23')] },
      { id: 'r3', routerId: '3.3.3.3', ospf: true, bgp: null, ifaces: [iface('a', '10.0.23.2', 's23'), iface('b', '10.0.34.2', 's34'), { ...iface('lan', '10.3.0.1', 'lan3'), prefixLen: 24 }] },
      { id: 'r4', routerId: '4.4.4.4', ospf: true, bgp: null, ifaces: [iface('a', '10.0.14.2', 's14'), iface('b', '10.0.34.1', 's34')] },
    ];
    const lan = (m: Map<string, ReturnType<typeof protocolRoutes> extends Map<string, infer R> ? R : never>) => m.get('r1')!.find((r) => r.dst === '10.3.0.0/24')!;
    const both = lan(protocolRoutes(mk()));
    expect(both).toEqual({ dst: '10.3.0.0/24', proto: 'ospf', cost: 30, nexthops: [{ via: '10.0.12.2', dev: 'a' }, { via: '10.0.14.2', dev: 'b' }] });
    const one = lan(protocolRoutes(mk(true)));
    expect(one.nexthops).toEqual([{ via: '10.0.14.2', dev: 'b' }]);
    // A connected subnet is never replaced by OSPF's route to it.
    expect(protocolRoutes(mk()).get('r1')!.some((r) => r.dst === '10.0.12.0/30')).toBe(false);
  });

  it('eBGP: shortest AS path, lowest router ID on a tie, no path through the own AS, only sessions that are up', () => {
    const r = (id: string, asn: number, ifaces: ReturnType<typeof iface>[], neighbors: string[], networks: string[]): Router => ({ id, routerId: ifaces[0].address, ospf: false, bgp: { asn, neighbors, networks }, ifaces });
    const mk = (cut = false): Router[] => [
      r('r1', 1, [iface('a', '10.0.12.1', 's12', null), iface('b', '10.0.13.1', 's13', null, !cut)], ['10.0.12.2', '10.0.13.2'], ['10.0.12.0/30', '10.0.13.0/30']),
      r('r2', 2, [iface('a', '10.0.12.2', 's12', null), iface('b', '10.0.23.1', 's23', null)], ['10.0.12.1', '10.0.23.2'], ['10.0.12.0/30', '10.0.23.0/30']),
      r('r3', 3, [iface('a', '10.0.13.2', 's13', null, !cut), iface('b', '10.0.23.2', 's23', null), { ...iface('lan', '10.3.0.1', 'lan3', null), prefixLen: 24 }], ['10.0.13.1', '10.0.23.1'], ['10.0.13.0/30', '10.0.23.0/30', '10.3.0.0/24']),
    ];
    const to = (m: ReturnType<typeof protocolRoutes>, who: string, dst: string) => m.get(who)!.find((x) => x.dst === dst);
    const m = protocolRoutes(mk());
    expect(to(m, 'r1', '10.3.0.0/24')).toEqual({ dst: '10.3.0.0/24', proto: 'bgp', cost: 1, asPath: [3], nexthops: [{ via: '10.0.13.2', dev: 'b' }] });
    // 10.0.23.0/30 comes from r2 and r3 with one AS each: the lower router ID (r2's 10.0.12.2) wins.
    expect(to(m, 'r1', '10.0.23.0/30')!.nexthops).toEqual([{ via: '10.0.12.2', dev: 'a' }]);
    const c = protocolRoutes(mk(true));
    expect(to(c, 'r1', '10.3.0.0/24')).toEqual({ dst: '10.3.0.0/24', proto: 'bgp', cost: 2, asPath: [2, 3], nexthops: [{ via: '10.0.12.2', dev: 'a' }] });
    // r3's own network, advertised back by r2 with r3's AS in the path, is not taken.
    expect(to(c, 'r3', '10.3.0.0/24')).toBeUndefined();
  });

  it('the simulator walks OSPF routes, every ECMP path, and re-converges when a cable is cut', () => {
    const l = lab(square());
    const p = predictPair(l, 'h1', 'h3');
    expect(p.reach).toBe(true);
    expect(p.reason).toMatch(/via OSPF cost 30 from r1\) \(ECMP: all \d+ paths reach\)/);
    const cut = down(l, 'r1', 'er2');
    const q = predictPair(cut, 'h1', 'h3');
    expect(q.reach).toBe(true);
    expect(q.path.map((h) => h.node)).toEqual(['h1', 'r1', 'r4', 'r3', 'h3']);
    expect(explain(q)).toMatch(/r1 eth0: forwards by ospf 10\.8\.3\.0\/24 via 10\.9\.14\.1 dev er4 \(OSPF cost 30\)/);
    // Both ways round cut: h3's LAN is gone from r1's table.
    const none = predictPair(down(cut, 'r3', 'er4'), 'h1', 'h3');
    expect(none.reach).toBe(false);
    expect(none.reason).toMatch(/r1 has no route to 10\.8\.3\.10/);
    expect(predictedTable(cut, 'r1').find((r) => r.dst === '10.8.3.0/24')).toEqual({ dst: '10.8.3.0/24', proto: 'ospf', metric: 20, note: 'OSPF cost 30', nexthops: [{ via: '10.9.14.1', dev: 'er4' }] });
  });
});

describe('static routes: metric (floating) and nexthops (ECMP)', () => {
  const TRI = (routes: string) => `name: st\nnodes:\n  a:\n    routes: ${routes}\n  b: { forwarding: true }\n  c: { forwarding: true }\n  d: { forwarding: true, routes: [{ dst: 10.6.1.0/30, via: 10.6.3.2 }, { dst: 10.6.2.0/30, via: 10.6.4.2 }] }\n`
    + 'links:\n  - { endpoints: ["a:eb", "b:ea"], ipv4: [10.6.1.1/30, 10.6.1.2/30] }\n  - { endpoints: ["a:ec", "c:ea"], ipv4: [10.6.2.1/30, 10.6.2.2/30] }\n'
    + '  - { endpoints: ["b:ed", "d:eb"], ipv4: [10.6.3.2/30, 10.6.3.1/30] }\n  - { endpoints: ["c:ed", "d:ec"], ipv4: [10.6.4.2/30, 10.6.4.1/30] }\n'
    + 'checks: []\n';
  const withBack = (y: string) => y.replace('  b: { forwarding: true }', '  b: { forwarding: true, routes: [{ dst: 10.6.0.0/16, via: 10.6.3.1 }] }').replace('  c: { forwarding: true }', '  c: { forwarding: true, routes: [{ dst: 10.6.0.0/16, via: 10.6.4.1 }] }');

  it('the lowest metric wins; the next takes over when its cable is down', () => {
    const l = lab(withBack(TRI('[{ dst: 10.6.3.0/30, via: 10.6.1.2, metric: 10 }, { dst: 10.6.3.0/30, via: 10.6.2.2, metric: 20 }]')));
    expect(l.nodes[0].routes.filter((r) => r.origin === 'user')).toEqual([
      { dst: '10.6.3.0/30', via: '10.6.1.2', dev: null, metric: 10, origin: 'user' },
      { dst: '10.6.3.0/30', via: '10.6.2.2', dev: null, metric: 20, origin: 'user' },
    ]);
    expect(predictPair(l, 'a', 'd').path.map((h) => h.node)).toEqual(['a', 'b', 'd']);
    const cut = predictPair(down(l, 'a', 'eb'), 'a', 'd');
    expect(cut.reach).toBe(true);
    expect(cut.path.map((h) => h.node)).toEqual(['a', 'c', 'd']);
    expect(explain(cut)).toMatch(/route 10\.6\.3\.0\/30 via 10\.6\.2\.2 dev ec metric 20/);
  });

  it('nexthops: every path is walked; one that fails makes the prediction fail, naming it', () => {
    const good = lab(withBack(TRI('[{ dst: 10.6.3.0/30, nexthops: [10.6.1.2, 10.6.2.2] }]')));
    expect(good.nodes[0].routes[0]).toEqual({ dst: '10.6.3.0/30', via: null, dev: null, nexthops: [{ via: '10.6.1.2', dev: null }, { via: '10.6.2.2', dev: null }], origin: 'user' });
    const p = predictPair(good, 'a', 'd');
    expect(p.reach).toBe(true);
    expect(p.reason).toMatch(/ECMP: all 2 paths reach/);
    // c has no way back: the path through c fails, so the prediction does.
    const half = lab(withBack(TRI('[{ dst: 10.6.3.0/30, nexthops: [10.6.1.2, 10.6.2.2] }]')).replace('  c: { forwarding: true, routes: [{ dst: 10.6.0.0/16, via: 10.6.4.1 }] }', '  c: { forwarding: false }'));
    const q = predictPair(half, 'a', 'd');
    expect(q.reach).toBe(false);
    expect(q.reason).toMatch(/^not every ECMP path reaches \(the kernel hashes each flow onto one of them; a -> b -> d reaches\): c has no route to 10\.6\.3\.1/);
    // The dead next hop is dropped when its cable is down: the other carries everything.
    expect(predictPair(down(half, 'a', 'ec'), 'a', 'd').reach).toBe(true);
  });

  it('refuses two routes of one metric, nexthops with via, and next hops off the subnets', () => {
    const same = problems(TRI('[{ dst: 10.6.3.0/30, via: 10.6.1.2 }, { dst: 10.6.3.0/30, via: 10.6.2.2 }]'));
    expect(same.map((d) => d.message)).toEqual([expect.stringMatching(/two routes to 10\.6\.3\.0\/30 with metric 0: give each its own metric/)]);
    expect(problems(TRI('[{ dst: 10.6.3.0/30, via: 10.6.1.2, nexthops: [10.6.1.2, 10.6.2.2] }]'))[0].message).toMatch(/either "nexthops" \(ECMP\) or "via"\/"dev"/);
    const off = problems(TRI('[{ dst: 10.6.3.0/30, nexthops: [10.6.1.2, 10.6.9.9] }]'));
    expect(off.map((d) => [d.path, d.message])).toEqual([['nodes.a.routes[0].nexthops[1]', expect.stringMatching(/next hop 10\.6\.9\.9 is not on a subnet of node a/)]]);
    expect(problems(TRI('[{ dst: 10.6.3.0/30, nexthops: [10.6.1.2] }]')).length).toBe(1);
  });
});

describe('predicted against kernel routes', () => {
  it('the kernel route of lowest metric, its live next hops, compared per destination', () => {
    const observed = observedTable([
      { dst: '10.1.0.0/24', via: '10.0.0.2', dev: 'eth1', metric: 20, nexthops: null, protocol: '188' },
      { dst: '10.1.0.0/24', via: '10.0.0.6', dev: 'eth2', metric: 50, nexthops: null, protocol: 'boot' },
      { dst: '10.2.0.0/24', via: null, dev: null, metric: 20, protocol: 'ospf', nexthops: [{ via: '10.0.0.6', dev: 'eth2', dead: false }, { via: '10.0.0.2', dev: 'eth1', dead: true }] },
    ]);
    expect(observed).toEqual([
      { dst: '10.1.0.0/24', proto: 'ospf', metric: 20, nexthops: [{ via: '10.0.0.2', dev: 'eth1' }] },
      { dst: '10.2.0.0/24', proto: 'ospf', metric: 20, nexthops: [{ via: '10.0.0.6', dev: 'eth2' }] },
    ]);
    const rows = compareTables('r1', [
      { dst: '10.1.0.0/24', proto: 'ospf', metric: 20, note: null, nexthops: [{ via: '10.0.0.2', dev: 'eth1' }] },
      { dst: '10.2.0.0/24', proto: 'ospf', metric: 20, note: null, nexthops: [{ via: '10.0.0.2', dev: 'eth1' }, { via: '10.0.0.6', dev: 'eth2' }] },
    ], observed);
    expect(rows.map((r) => [r.dst, r.same])).toEqual([['10.1.0.0/24', true], ['10.2.0.0/24', false]]);
  });

  it('RTA_MULTIPATH: what is encoded decodes to the same next hops', () => {
    const hops = [{ gateway: parseIp('10.0.0.2')!.bytes, ifindex: 7 }, { gateway: parseIp('10.0.0.6')!.bytes, ifindex: 0, weight: 3 }];
    const b = encodeMultipath(hops);
    expect(b.length).toBe(32);
    expect(decodeMultipath(b)).toEqual([
      { gateway: Buffer.from([10, 0, 0, 2]), ifindex: 7, weight: 1, dead: false },
      { gateway: Buffer.from([10, 0, 0, 6]), ifindex: 0, weight: 3, dead: false },
    ]);
  });
});
