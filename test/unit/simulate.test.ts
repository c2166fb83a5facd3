// The reachability simulator: each modelling rule on small hand-written labs, then the shipped
// labs (their checks and their full ping matrices).
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadTopologyFile, loadTopologyText } from '../../topology/load.js';
import {
  explain, predictCheck, predictMatrix, predictPair, predictPing, resolveName, targetAddress, type Prediction,
} from '../../topology/simulate.js';
import type { Lab, LabCheck } from '../../topology/types.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function shipped(file: string): Lab {
  const r = loadTopologyFile(path.join(ROOT, 'labs', file));
  if (!r.lab) throw new Error(`${file} is not valid: ${JSON.stringify(r.diagnostics)}`);
  return r.lab;
}

function lab(yaml: string): Lab {
  const r = loadTopologyText(yaml, '');
  if (!r.lab) throw new Error(`test lab is not valid: ${r.diagnostics.map((d) => `${d.line}:${d.col} ${d.message}`).join('; ')}`);
  return r.lab;
}

const node = (l: Lab, name: string) => l.nodes.find((n) => n.name === name)!;
const key = (p: Prediction) => `${p.from}>${p.to}`;
const failing = (ps: Prediction[]) => ps.filter((p) => !p.reach).map(key).sort();
const nodesOf = (p: Prediction, which: 'path' | 'reply' = 'path') => p[which].map((h) => h.node);

/** A check as resolve makes it, for predictCheck on hand-made cases. */
function check(over: Partial<LabCheck> & Pick<LabCheck, 'kind' | 'from' | 'target'>): LabCheck {
  return {
    index: 0, port: null, count: 1, timeoutMs: 2000, waitMs: null, expect: null, httpStatus: null, httpContains: null,
    dnsAddress: null, label: `${over.kind} ${over.from} -> ${over.target}`, ...over,
  };
}

const TWO_BRIDGES = `
name: two
networks:
  blue: { subnet: 10.21.0.0/24, gateway: true }
  red: { subnet: 10.22.0.0/24, gateway: true }
  inner: { subnet: 10.23.0.0/24, gateway: false }
nodes:
  b1: { networks: { blue: { ipv4: 10.21.0.10 } } }
  b2: { networks: { blue: { ipv4: 10.21.0.20 } } }
  r1: { networks: { red: { ipv4: 10.22.0.10 } } }
  i1: { networks: { inner: { ipv4: 10.23.0.10 } } }
  solo: { network_mode: none }
  hostnode: { network_mode: host }
`;

// ---------------------------------------------------------------- segments and the host

describe('one bridge, two bridges, the host machine', () => {
  const l = lab(TWO_BRIDGES);

  it('same bridge: reach, directly on the segment, both ways', () => {
    const p = predictPair(l, 'b1', 'b2');
    expect(p.reach).toBe(true);
    expect(p.address).toBe('10.21.0.20');
    expect(p.path).toEqual([
      { node: 'b1', iface: 'eth0', address: '10.21.0.10' },
      { node: 'b2', iface: 'eth0', address: '10.21.0.20' },
    ]);
    expect(nodesOf(p, 'reply')).toEqual(['b2', 'b1']);
    expect(p.reason).toBe('b1 eth0 -> b2 eth0 (same network blue)');
  });

  it('two bridges with gateways: the default route leads to the host, which does not route between them', () => {
    const p = predictPair(l, 'b1', 'r1');
    expect(p.reach).toBe(false);
    expect(p.reason).toContain('the host does not route between lab networks (isolation)');
    expect(p.reason).toContain('blue -> red');
    expect(nodesOf(p)).toEqual(['b1', 'host']);
    expect(predictPair(l, 'r1', 'b2').reason).toContain('(isolation): red -> blue');
  });

  it('the host answers on every gateway address, also one of another network (weak host)', () => {
    expect(predictPing(l, 'b1', '10.21.0.1').reach).toBe(true);
    const other = predictPing(l, 'b1', '10.22.0.1');
    expect(other.reach).toBe(true);
    expect(nodesOf(other)).toEqual(['b1', 'host']);
    expect(other.path[1].iface).toBe(l.networks.find((n) => n.name === 'blue')!.bridgeName);
  });

  it('a network without gateway has no default route: nothing beyond it', () => {
    const p = predictPair(l, 'i1', 'b1');
    expect(p.reach).toBe(false);
    expect(p.reason).toBe('i1 has no route to 10.21.0.10');
    // And the host is not on it: its gateway address belongs to nobody there.
    expect(predictPing(l, 'i1', '10.23.0.1').reason).toBe('no host 10.23.0.1 on segment inner');
  });

  it('an address nobody owns on the segment', () => {
    const p = predictPing(l, 'b1', '10.21.0.99');
    expect(p.reach).toBe(false);
    expect(p.reason).toBe('no host 10.21.0.99 on segment blue');
  });

  it('a none node reaches nothing and nothing reaches it, but its loopback works', () => {
    const out = predictPair(l, 'solo', 'b1');
    expect(out.reach).toBe(false);
    expect(out.reason).toContain('solo has no route to 10.21.0.10');
    const into = predictPair(l, 'b1', 'solo');
    expect(into.reach).toBe(false);
    expect(into.address).toBeNull();
    expect(into.reason).toContain('solo has no address');
    expect(targetAddress(l, 'b1', 'solo')).toBeNull();
    expect(predictPing(l, 'solo', '127.0.0.1').reach).toBe(true);
  });

  it('a host-mode node is the machine: it reaches a gateway-network node, and that node reaches it', () => {
    const out = predictPair(l, 'hostnode', 'b1');
    expect(out.reach).toBe(true);
    expect(out.path[0]).toMatchObject({ node: 'hostnode', address: '10.21.0.1' });
    expect(out.reason).toBe('hostnode [blue gateway] -> b1 eth0 (same network blue)');
    const back = predictPair(l, 'b1', 'hostnode');
    expect(back.address).toBe('10.21.0.1');
    expect(back.reach).toBe(true);
    expect(back.path[1]).toMatchObject({ node: 'hostnode', address: '10.21.0.1' });
    // The red node pings the host on red's gateway.
    expect(targetAddress(l, 'r1', 'hostnode')).toBe('10.22.0.1');
    expect(predictPair(l, 'r1', 'hostnode').reach).toBe(true);
  });

  it('the host has no way onto a network without gateway', () => {
    const p = predictPair(l, 'hostnode', 'i1');
    expect(p.reach).toBe(false);
    expect(p.reason).toContain('hostnode (the host) has no route to 10.23.0.10 within the lab');
    // i1 is on no gateway network: it is given the first gateway of the lab, and has no route there.
    expect(targetAddress(l, 'i1', 'hostnode')).toBe('10.21.0.1');
    expect(predictPair(l, 'i1', 'hostnode').reason).toBe('i1 has no route to 10.21.0.1');
  });

  it('a node of a gateway network cannot reach an internal network of its lab through the host (nor can the host): it would leave by the uplink, which netlab drops', () => {
    const p = predictPair(l, 'b1', 'i1');
    expect(p.reach).toBe(false);
    expect(p.address).toBe('10.23.0.10');
    expect(nodesOf(p)).toEqual(['b1', 'host']);
    expect(p.reason).toBe('the host has no route to 10.23.0.10 within the lab, and the lab\'s own subnets never leave the machine');
    // Any address of the internal subnet, not only a node's, and from the host's own stack.
    expect(predictPing(l, 'r1', '10.23.0.99').reach).toBe(false);
    expect(predictPair(l, 'hostnode', 'i1').reason).toContain('the lab\'s own subnets never leave the machine');
    // Beyond every lab subnet nothing is claimed.
    expect(predictPing(l, 'b1', '192.0.2.99').reason).toContain('is not predicted');
  });

  it('a link subnet is a lab subnet too: a node of a gateway network does not reach it through the host', () => {
    const m = lab(`
name: linkleak
networks:
  nat: { subnet: 10.31.0.0/24 }
nodes:
  a: { networks: [nat] }
  r1:
  r2:
links:
  - { endpoints: ["r1:eth0", "r2:eth0"], ipv4: [10.31.12.1/30, 10.31.12.2/30] }
`);
    const p = predictPing(m, 'a', '10.31.12.2');
    expect(p.reach).toBe(false);
    expect(p.reason).toContain('the lab\'s own subnets never leave the machine');
    const fromA = predictMatrix(m).filter((x) => x.from === 'a');
    expect(fromA).toHaveLength(2);
    expect(fromA.filter((x) => x.reach)).toEqual([]);
  });

  it('ping to the own address, or to loopback, is delivered locally', () => {
    const p = predictPing(l, 'b1', '10.21.0.10');
    expect(p.reach).toBe(true);
    expect(p.path).toEqual([{ node: 'b1', iface: 'eth0', address: '10.21.0.10' }]);
    expect(p.reason).toContain('own address');
    expect(predictPing(l, 'b1', '127.0.0.1').reach).toBe(true);
    expect(predictPing(l, 'hostnode', '10.22.0.1').reach).toBe(true);
  });

  it('an address that is not IPv4, or an unknown node, is a failed prediction, not an exception', () => {
    expect(predictPing(l, 'b1', 'web').reason).toContain('not an IPv4 address');
    expect(predictPair(l, 'b1', 'nobody').reason).toContain('no node nobody');
  });

  it('an interface set down cuts its node off its network', () => {
    const m = structuredClone(l);
    node(m, 'b2').interfaces[0].up = false;
    const p = predictPair(m, 'b1', 'b2');
    expect(p.reach).toBe(false);
    expect(p.reason).toContain('b2 eth0 (10.21.0.20) is down');
    const q = predictPair(m, 'b2', 'b1');
    expect(q.reach).toBe(false);
    expect(q.reason).toBe('b2 has no route to 10.21.0.10 (connected 10.21.0.0/24 dev eth0 is unusable: eth0 is down)');
  });
});

// ---------------------------------------------------------------- routing

describe('routed chain (labs/routed.yml)', () => {
  const l = shipped('routed.yml');

  it('h1 <-> h3 end to end through r1, r2, r3, the reply the same way back', () => {
    const p = predictPair(l, 'h1', 'h3');
    expect(p.reach).toBe(true);
    expect(nodesOf(p)).toEqual(['h1', 'r1', 'r2', 'r3', 'h3']);
    expect(nodesOf(p, 'reply')).toEqual(['h3', 'r3', 'r2', 'r1', 'h1']);
    expect(p.reason).toBe('h1 eth0 -> r1 eth0 -> r2 eth1 -> r3 eth1 -> h3 eth0 (routed by r1, r2, r3)');
    expect(predictPair(l, 'h3', 'h1').reach).toBe(true);
  });

  it('nogw has no default route: it fails past lan1, and replies to it fail too', () => {
    const p = predictPair(l, 'nogw', 'h3');
    expect(p.reach).toBe(false);
    expect(p.reason).toBe('nogw has no route to 10.3.0.10');
    expect(predictPair(l, 'nogw', 'h1').reach).toBe(true);
    const back = predictPair(l, 'h3', 'nogw');
    expect(back.reach).toBe(false);
    expect(nodesOf(back)).toEqual(['h3', 'r3', 'r2', 'r1', 'nogw']);
    expect(back.reason).toBe('reply from nogw to 10.3.0.10: nogw has no route to 10.3.0.10');
  });

  it('the matrix is what the routes imply: everything reaches except nogw beyond lan1, both ways', () => {
    const ps = predictMatrix(l);
    expect(ps).toHaveLength(6 * 5);
    expect(ps.slice(0, 5).map((p) => p.to)).toEqual(['nogw', 'r1', 'r2', 'r3', 'h3']);
    expect(failing(ps)).toEqual(['h3>nogw', 'nogw>h3', 'nogw>r2', 'nogw>r3', 'r2>nogw', 'r3>nogw']);
    for (const p of ps.filter((x) => !x.reach)) expect(p.reason).toMatch(/nogw has no route/);
  });

  it('weak host: a router answers on the address of another of its interfaces', () => {
    const p = predictPing(l, 'h1', '10.0.12.1');
    expect(p.reach).toBe(true);
    expect(p.path).toEqual([
      { node: 'h1', iface: 'eth0', address: '10.1.0.10' },
      { node: 'r1', iface: 'eth0', address: '10.1.0.1' },
    ]);
  });

  it('the source address is the one of the outgoing interface', () => {
    const p = predictPair(l, 'r1', 'h3');
    expect(p.path[0]).toEqual({ node: 'r1', iface: 'eth1', address: '10.0.12.1' });
    expect(p.reach).toBe(true);
  });

  it('a router without forwarding stops everything that must cross it', () => {
    const m = structuredClone(l);
    node(m, 'r2').forwarding = false;
    const p = predictPair(m, 'h1', 'h3');
    expect(p.reach).toBe(false);
    expect(p.reason).toBe('r2 does not forward (forwarding: false)');
    expect(nodesOf(p)).toEqual(['h1', 'r1', 'r2']);
    // r2 itself is still reached: the address is its own.
    expect(predictPair(m, 'h1', 'r2').reach).toBe(true);
    expect(failing(predictMatrix(m))).toEqual([
      'h1>h3', 'h1>r3', 'h3>h1', 'h3>nogw', 'h3>r1', 'nogw>h3', 'nogw>r2', 'nogw>r3', 'r1>h3', 'r1>r3', 'r2>nogw', 'r3>h1', 'r3>nogw', 'r3>r1',
    ]);
  });

  it('a missing route on one router: exactly the pairs that need it fail, and the reason names the router', () => {
    const m = structuredClone(l);
    node(m, 'r2').routes = node(m, 'r2').routes.filter((r) => r.dst !== '10.3.0.0/24');
    const before = new Set(failing(predictMatrix(l)));
    const after = predictMatrix(m);
    const broken = after.filter((p) => !p.reach && !before.has(key(p)));
    expect(broken.map(key).sort()).toEqual(['h1>h3', 'h3>h1', 'h3>r1', 'h3>r2', 'r1>h3', 'r2>h3']);
    for (const p of broken) expect(p.reason).toMatch(/r2 has no route to 10\.3\.0\.10$/);
    // Requests that die at r2, and replies that die there:
    expect(predictPair(m, 'h1', 'h3').reason).toBe('r2 has no route to 10.3.0.10');
    expect(predictPair(m, 'h3', 'h1').reason).toBe('reply from h1 to 10.3.0.10: r2 has no route to 10.3.0.10');
    expect(predictPair(m, 'h3', 'r2').reason).toBe('reply from r2 to 10.3.0.10: r2 has no route to 10.3.0.10');
  });

  it('an asymmetric route: the request arrives, the reply does not come back', () => {
    const m = structuredClone(l);
    node(m, 'r3').routes = node(m, 'r3').routes.filter((r) => r.dst !== '10.1.0.0/24');
    const p = predictPair(m, 'h1', 'h3');
    expect(p.reach).toBe(false);
    expect(nodesOf(p)).toEqual(['h1', 'r1', 'r2', 'r3', 'h3']);
    expect(nodesOf(p, 'reply')).toEqual(['h3', 'r3']);
    expect(p.reason).toBe('reply from h3 to 10.1.0.10: r3 has no route to 10.1.0.10');
    expect(explain(p)).toMatch(/reply 10\.3\.0\.10 -> 10\.1\.0\.10:\n.*h3: route default via 10\.3\.0\.1/);
  });

  it('a reply may take another way back than the request (and still reach)', () => {
    // h1 also sits on a second network with r3; h3's replies to h1 take it, h1's requests do not.
    const m = lab(`
name: asym
networks:
  lan1: { subnet: 10.1.0.0/24, gateway: false }
  back: { subnet: 10.9.0.0/24, gateway: false }
nodes:
  h1:
    networks: { lan1: { ipv4: 10.1.0.10 }, back: { ipv4: 10.9.0.10 } }
    routes: [{ dst: 10.3.0.0/24, via: 10.1.0.1 }]
  r1:
    forwarding: true
    networks: { lan1: { ipv4: 10.1.0.1 } }
    routes: [{ dst: 10.3.0.0/24, via: 10.0.13.2 }]
  r3:
    forwarding: true
    networks: { back: { ipv4: 10.9.0.3 } }
    routes: [{ dst: 10.1.0.0/24, via: 10.9.0.10 }]
  h3:
    routes: [{ dst: default, via: 10.3.0.1 }]
links:
  - { endpoints: ["r1:eth1", "r3:eth1"], ipv4: [10.0.13.1/30, 10.0.13.2/30] }
  - { endpoints: ["r3:eth2", "h3:eth0"], ipv4: [10.3.0.1/24, 10.3.0.10/24] }
`);
    const p = predictPing(m, 'h1', '10.3.0.10');
    expect(p.reach).toBe(true);
    expect(nodesOf(p)).toEqual(['h1', 'r1', 'r3', 'h3']);
    expect(nodesOf(p, 'reply')).toEqual(['h3', 'r3', 'h1']);
    expect(p.reason).toContain('; reply h3 eth0 -> r3 eth2 -> h1 eth1');
  });

  it('a link set down (netlab link) cuts the path, and the router says which route died', () => {
    const m = structuredClone(l);
    m.links[1].up = false;
    for (const e of [m.links[1].a, m.links[1].b]) node(m, e.node).interfaces.find((f) => f.name === e.iface)!.up = false;
    const p = predictPair(m, 'h1', 'h3');
    expect(p.reach).toBe(false);
    expect(p.reason).toBe('r2 has no route to 10.3.0.10 (route 10.3.0.0/24 via 10.0.23.2 is unusable: next hop 10.0.23.2 is behind eth2, which is down)');
    expect(nodesOf(p)).toEqual(['h1', 'r1', 'r2']);
    // The neighbours across the cut no longer reach each other; lan1 is unaffected.
    expect(predictPair(m, 'r2', 'r3').reach).toBe(false);
    expect(predictPair(m, 'h1', 'r2').reach).toBe(true);
    expect(predictPair(m, 'h1', 'r3').reason).toBe('r2 has no route to 10.0.23.2 (connected 10.0.23.0/30 dev eth2 is unusable: eth2 is down)');
    // Everything across the cut, both ways (and nogw as before); nothing else.
    const before = failing(predictMatrix(l));
    const across = ['h1>h3', 'h1>r3', 'h3>h1', 'h3>nogw', 'h3>r1', 'h3>r2', 'r1>h3', 'r1>r3', 'r2>h3', 'r2>r3', 'r3>h1', 'r3>nogw', 'r3>r1', 'r3>r2'];
    expect(failing(predictMatrix(m))).toEqual([...new Set([...before, ...across])].sort());
  });

  it('a link written with state: down is cut from the start', () => {
    const m = lab(`
name: cut
nodes:
  a: {}
  b: {}
links:
  - { endpoints: ["a:eth0", "b:eth0"], ipv4: [10.0.0.1/30, 10.0.0.2/30], state: down }
`);
    const p = predictPair(m, 'a', 'b');
    expect(p.reach).toBe(false);
    expect(p.reason).toBe('a has no route to 10.0.0.2 (connected 10.0.0.0/30 dev eth0 is unusable: eth0 is down)');
  });

  it('a veth whose peer end alone is down has no carrier', () => {
    const m = structuredClone(l);
    node(m, 'r3').interfaces.find((f) => f.name === 'eth2')!.up = false;
    const p = predictPair(m, 'h1', 'h3');
    expect(p.reach).toBe(false);
    expect(p.reason).toBe('r3 has no route to 10.3.0.10 (connected 10.3.0.0/24 dev eth2 is unusable: eth2 is down)');
    const q = predictPing(m, 'h3', '10.3.0.1');
    expect(q.reach).toBe(false);
    expect(q.reason).toBe('h3 eth0 has no carrier (its peer r3 eth2 is down)');
  });
});

describe('loops and dead ends', () => {
  const l = lab(`
name: loop
nodes:
  a: { forwarding: true, routes: [{ dst: default, via: 10.0.0.2 }] }
  b: { forwarding: true, routes: [{ dst: default, via: 10.0.0.1 }] }
  c: { forwarding: true }
links:
  - { endpoints: ["a:eth0", "b:eth0"], ipv4: [10.0.0.1/30, 10.0.0.2/30] }
  - { endpoints: ["b:eth1", "c:eth0"], ipv4: [10.0.1.1/30, 10.0.1.2/30] }
`);

  it('two routers pointing their default routes at each other: the walk ends with a loop reason', () => {
    const p = predictPing(l, 'a', '10.99.0.1');
    expect(p.reach).toBe(false);
    expect(p.reason).toBe('routing loop for 10.99.0.1: a -> b -> a (the TTL expires)');
    expect(nodesOf(p)).toEqual(['a', 'b', 'a']);
  });

  it('a next hop that no one owns', () => {
    const p = predictPing(l, 'c', '10.7.1.1');
    expect(p.reach).toBe(false);
    expect(p.reason).toBe('c has no route to 10.7.1.1');
    const m = structuredClone(l);
    node(m, 'c').routes = [{ dst: '10.7.0.0/16', via: '10.0.1.1', dev: null, origin: 'user' }];
    node(m, 'b').interfaces.find((f) => f.name === 'eth1')!.ipv4 = { address: '10.0.1.3', prefixLen: 30 };
    expect(predictPing(m, 'c', '10.7.1.1').reason).toBe('no host 10.0.1.1 on segment link b:eth1 <-> c:eth0 (next hop 10.0.1.1 of c\'s route 10.7.0.0/16 via 10.0.1.1 dev eth0)');
  });
});

// ---------------------------------------------------------------- the other shipped labs

describe('shipped labs', () => {
  it('isolated.yml: same-network pairs reach, cross pairs fail through isolation', () => {
    const l = shipped('isolated.yml');
    const ps = predictMatrix(l);
    expect(ps).toHaveLength(12);
    const netOf = (n: string) => node(l, n).interfaces[0].network;
    for (const p of ps) {
      const same = netOf(p.from) === netOf(p.to);
      expect(p.reach, key(p)).toBe(same);
      if (!same) expect(p.reason).toContain('the host does not route between lab networks (isolation)');
    }
  });

  it('overlay.yml: nodes of one overlay reach each other across machines, two overlays stay apart', () => {
    const l = shipped('overlay.yml');
    expect(node(l, 'a').host).not.toBe(node(l, 'b').host);
    const ab = predictPair(l, 'a', 'b');
    expect(ab.reach).toBe(true);
    expect(ab.reason).toBe('a eth0 -> b eth0 (same network ov1)');
    expect(failing(predictMatrix(l))).toEqual(['a>c', 'a>d', 'b>c', 'b>d', 'c>a', 'c>b', 'd>a', 'd>b']);
    // c shares h1 with a, and still does not reach it.
    expect(predictPair(l, 'c', 'a').reason).toBe('c has no route to 10.31.0.1');
  });

  it('none.yml: no pair reaches', () => {
    expect(predictMatrix(shipped('none.yml')).every((p) => !p.reach)).toBe(true);
  });

  it('bridge.yml: the lan reaches, solo does not', () => {
    expect(failing(predictMatrix(shipped('bridge.yml')))).toEqual([
      'client1>solo', 'client2>solo', 'solo>client1', 'solo>client2', 'solo>web', 'web>solo',
    ]);
  });

  it('host.yml: host-mode node and bridge node reach each other', () => {
    const l = shipped('host.yml');
    expect(failing(predictMatrix(l))).toEqual([]);
    expect(predictPair(l, 'probe', 'hostweb').address).toBe('10.11.0.1');
  });

  it('every check of every shipped lab with an explicit expectation is predicted as written (published ports included)', () => {
    for (const f of ['bridge.yml', 'host.yml', 'isolated.yml', 'none.yml', 'overlay.yml', 'routed.yml', 'ospf.yml', 'bgp.yml']) {
      const l = shipped(f);
      for (const c of l.checks) {
        const p = predictCheck(l, c);
        if (c.expect !== null) expect(p.reach, `${f}: ${c.label}: ${p.reason}`).toBe(c.expect === 'reach');
        else expect(p.reach, `${f}: ${c.label}: ${p.reason}`).toBe(true);
      }
    }
  });
});

describe('published ports', () => {
  it('the host\'s published port reaches the node while its path is up; published on 127.0.0.1 only, not on the gateway', () => {
    const l = shipped('host.yml');
    const byLabel = (x: string) => l.checks.find((c) => c.label === x)!;
    const gw = predictCheck(l, byLabel('tcp probe -> 10.11.0.1:18080'));
    expect(gw.reach).toBe(false);
    expect(gw.reason).toBe('port 18080 is published by probe on 127.0.0.1 only, not on 10.11.0.1');
    const lo = predictCheck(l, byLabel('http hostweb -> http://127.0.0.1:18080/'));
    expect(lo.reach).toBe(true);
    expect(lo.reason).toMatch(/port 18080 is published by probe \(forwarded to 10\.11\.0\.\d+:80\)/);
    // The node's cable down: the host's port leads nowhere.
    const cut = structuredClone(l);
    cut.nodes.find((n) => n.name === 'probe')!.interfaces[0].up = false;
    const dead = predictCheck(cut, byLabel('http hostweb -> http://127.0.0.1:18080/'));
    expect(dead.reach).toBe(false);
    expect(dead.reason).toMatch(/^port 18080 is forwarded to probe \(10\.11\.0\.\d+\), which the host does not reach/);
  });
});

// ---------------------------------------------------------------- targets and checks

describe('target addresses and checks', () => {
  const routed = shipped('routed.yml');

  it('targetAddress: the address on a shared network, else on a shared link, else the first one', () => {
    expect(targetAddress(routed, 'h1', 'r1')).toBe('10.1.0.1');
    expect(targetAddress(routed, 'r3', 'r2')).toBe('10.0.23.1'); // the link r2:eth2 <-> r3:eth1
    expect(targetAddress(routed, 'r1', 'r2')).toBe('10.0.12.2');
    expect(targetAddress(routed, 'h1', 'r3')).toBe('10.0.23.2'); // nothing shared: first address
  });

  it('ping and tcp checks: by node or address; tcp says a listener is assumed', () => {
    const p = predictCheck(routed, check({ kind: 'tcp', from: 'h1', target: 'h3', port: 80 }));
    expect(p.reach).toBe(true);
    expect(p.reason).toContain('a listener on port 80 is assumed');
    expect(predictCheck(routed, check({ kind: 'ping', from: 'r1', target: '10.0.23.2' })).reach).toBe(true);
    expect(predictCheck(routed, check({ kind: 'ping', from: 'nogw', target: 'h3' })).reason).toBe('nogw has no route to 10.3.0.10');
  });

  it('http: the URL host is a node name (any case, probed at its target address) or an address', () => {
    const l = shipped('bridge.yml');
    const p = predictCheck(l, check({ kind: 'http', from: 'client1', target: 'http://WEB:8080/x' }));
    expect(p.reach).toBe(true);
    expect(p.address).toBe('10.10.0.10');
    expect(p.reason).toContain('an HTTP server on port 8080 is assumed');
    expect(predictCheck(l, check({ kind: 'http', from: 'client1', target: 'http://10.10.0.10/' })).reach).toBe(true);
    // Like the probe: at the address, whether or not the name is in h1's /etc/hosts.
    const q = predictCheck(routed, check({ kind: 'http', from: 'h1', target: 'http://h3/' }));
    expect(q.reach).toBe(true);
    expect(q.address).toBe('10.3.0.10');
    expect(predictCheck(routed, check({ kind: 'http', from: 'nogw', target: 'http://h3/' })).reason).toBe('nogw has no route to 10.3.0.10');
    expect(predictCheck(routed, check({ kind: 'http', from: 'h1', target: 'http://nobody/' })).reason).toContain('neither a node');
  });

  it('dns: a name resolves when its node shares a network or link with from; the address is compared', () => {
    const l = lab(TWO_BRIDGES);
    const ok = predictCheck(l, check({ kind: 'dns', from: 'b1', target: 'b2', dnsAddress: '10.21.0.20' }));
    expect(ok.reach).toBe(true);
    expect(ok.address).toBe('10.21.0.20');
    expect(predictCheck(l, check({ kind: 'dns', from: 'b1', target: 'B2' })).reach).toBe(true);
    const wrong = predictCheck(l, check({ kind: 'dns', from: 'b1', target: 'b2', dnsAddress: '10.21.0.99' }));
    expect(wrong.reach).toBe(false);
    expect(wrong.reason).toBe('b2 resolves in b1 to 10.21.0.20, not 10.21.0.99');
    expect(predictCheck(l, check({ kind: 'dns', from: 'b1', target: 'r1' })).reason).toContain('share no network or link');
    expect(predictCheck(l, check({ kind: 'dns', from: 'b1', target: 'solo' })).reach).toBe(false);
    expect(predictCheck(l, check({ kind: 'dns', from: 'solo', target: 'b1' })).reach).toBe(false);
    // The own name: 127.0.1.1 comes first in /etc/hosts.
    const self = predictCheck(l, check({ kind: 'dns', from: 'b1', target: 'b1' }));
    expect(self.reach).toBe(true);
    expect(self.address).toBe('127.0.1.1');
    expect(predictCheck(l, check({ kind: 'dns', from: 'b1', target: 'b1', dnsAddress: '10.21.0.10' })).reach).toBe(false);
    // A host-mode node resolves the nodes of networks with a gateway only.
    expect(resolveName(l, 'hostnode', 'r1')).toBe('10.22.0.10');
    expect(predictCheck(l, check({ kind: 'dns', from: 'hostnode', target: 'i1' })).reach).toBe(false);
    // Link peers are listed: r3 resolves r2 to the address on their link.
    expect(predictCheck(routed, check({ kind: 'dns', from: 'r3', target: 'r2', dnsAddress: '10.0.23.1' })).reach).toBe(true);
  });

  it('explain: the verdict, each step of the request and the reply, and the result', () => {
    const text = explain(predictPair(routed, 'h1', 'h3'));
    expect(text.split('\n')[0]).toBe('h1 -> h3 (10.3.0.10): reach');
    expect(text).toContain('request 10.1.0.10 -> 10.3.0.10:');
    expect(text).toContain('r1 eth0: forwards by route 10.3.0.0/24 via 10.0.12.2 dev eth1');
    expect(text).toContain('h3 eth0: 10.3.0.10 is its own address: delivered');
    expect(text).toContain('reply 10.3.0.10 -> 10.1.0.10:');
    expect(text).toContain('result: h1 eth0 -> r1 eth0');
    const stop = explain(predictPair(routed, 'nogw', 'h3'));
    expect(stop).toContain('stops: nogw has no route to 10.3.0.10');
  });
});
