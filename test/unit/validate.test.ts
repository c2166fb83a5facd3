// Validation and resolution of topologies.
//  - Every test/fixtures/*.yml is a broken topology whose first lines say what must be reported:
//      # expect: <line>:<col>: <substring of the message>
//    one line per diagnostic. The diagnostics of the file must match those lines exactly in
//    count and in line:col (in order: they are sorted by position), and contain the substring.
//    `# machine: route CIDR DEV` and `# machine: address ADDR/LEN DEV` lines give the machine's
//    own routes and addresses the file is judged against (none: the file alone).
//  - Every labs/*.yml must be valid.
//  - Focused tests of what resolution fills in: defaults, interface naming, IPAM, kernel names,
//    and the parsing helpers exported by topology/resolve.ts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadTopologyFile, loadTopologyText } from '../../topology/load.js';
import { formatDiagnostic } from '../../topology/source.js';
import {
  BRIDGE_MAX_PORTS, DEFAULT_MTU, DEFAULT_POOL, FIRST_AUTO_VNI, MIN_MEMORY_BYTES, derivedMac, macProblem, parsePort, parseSize, parseVolume, splitCommand, userProblem,
} from '../../topology/resolve.js';
import { IFNAMSIZ_MAX, ifName } from '../../topology/names.js';
import type { Diagnostic, Lab } from '../../topology/types.js';
import type { MachineNet, ResolveEnv } from '../../topology/addrspace.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const FIXTURES = path.join(ROOT, 'test/fixtures');
const LABS = path.join(ROOT, 'labs');

const ymlFiles = (dir: string) => fs.readdirSync(dir).filter((f) => f.endsWith('.yml')).sort().map((f) => path.join(dir, f));

interface Expectation { line: number; col: number; substring: string }

function expectations(file: string): Expectation[] {
  const out: Expectation[] = [];
  for (const l of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!l.startsWith('#')) break;
    const m = /^# expect: (\d+):(\d+): (.+)$/.exec(l);
    if (m) out.push({ line: Number(m[1]), col: Number(m[2]), substring: m[3] });
  }
  return out;
}

/** The machine a fixture is judged on, from its `# machine:` lines. */
function fixtureEnv(file: string): ResolveEnv {
  const machine: MachineNet = { routes: [], addresses: [] };
  for (const l of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!l.startsWith('#')) break;
    const m = /^# machine: (route|address) (\S+) (\S+)$/.exec(l);
    if (m?.[1] === 'route') machine.routes.push({ dst: m[2], dev: m[3] });
    else if (m) machine.addresses.push({ address: m[2].split('/')[0], prefixLen: Number(m[2].split('/')[1]), dev: m[3] });
  }
  return { machine };
}

const loadFixture = (file: string) => loadTopologyFile(file, fixtureEnv(file));

/** `line:col: path: message`: the formatted diagnostic without its file name. */
function located(d: Diagnostic): string {
  const s = formatDiagnostic(d);
  const prefix = `${d.file}:`;
  return s.startsWith(prefix) ? s.slice(prefix.length) : s;
}

/** A valid lab from inline YAML, or a test failure listing the diagnostics. */
function lab(text: string, file = 'inline.yml'): Lab {
  const r = loadTopologyText(text, file);
  if (!r.lab) throw new Error(`expected a valid lab, got:\n${r.diagnostics.map(formatDiagnostic).join('\n')}`);
  return r.lab;
}

function diags(text: string): string[] {
  const r = loadTopologyText(text, 'inline.yml');
  expect(r.lab).toBeNull();
  return r.diagnostics.map(located);
}

const node = (l: Lab, name: string) => l.nodes.find((n) => n.name === name)!;
const iface = (l: Lab, n: string, i: string) => node(l, n).interfaces.find((f) => f.name === i)!;
const net = (l: Lab, name: string) => l.networks.find((n) => n.name === name)!;

/** Every kernel name the lab creates outside node namespaces, plus node interface names. */
function kernelNames(l: Lab): string[] {
  const names: string[] = [];
  for (const n of l.networks) for (const x of [n.bridgeName, n.vxlanName]) if (x) names.push(x);
  for (const nd of l.nodes) for (const f of nd.interfaces) if (f.hostSide) names.push(f.hostSide);
  for (const h of l.hosts) names.push(h.underlaySide);
  if (l.underlay) names.push(l.underlay.bridgeName);
  return names;
}

// ---------------------------------------------------------------- fixtures

describe('broken fixtures report exactly the expected diagnostics', () => {
  const files = ymlFiles(FIXTURES);

  it('there are at least 25 fixtures, each with an expectation', () => {
    expect(files.length).toBeGreaterThanOrEqual(25);
    for (const f of files) expect(expectations(f).length, path.basename(f)).toBeGreaterThan(0);
  });

  for (const file of files) {
    it(path.basename(file), () => {
      const exp = expectations(file);
      const r = loadFixture(file);
      expect(r.lab).toBeNull();
      const got = r.diagnostics.map(located);
      // Where a diagnostic matches its expectation, show it verbatim so the diff shows only misses.
      const want = exp.map((e, i) => {
        const g = got[i];
        const ok = g !== undefined && g.startsWith(`${e.line}:${e.col}: `) && g.includes(e.substring);
        return ok ? g : `${e.line}:${e.col}: …${e.substring}…`;
      });
      expect(got).toEqual(want);
      for (const d of r.diagnostics) expect(d.file).toBe(file);
    });
  }

  it('diagnostics come sorted by position, without duplicates', () => {
    for (const file of files) {
      const ds = loadFixture(file).diagnostics;
      const keys = ds.map((d) => d.line * 1e6 + d.col);
      expect(keys, path.basename(file)).toEqual([...keys].sort((a, b) => a - b));
      expect(new Set(ds.map(formatDiagnostic)).size, path.basename(file)).toBe(ds.length);
    }
  });

  it('no message ends with an empty list or dangling punctuation', () => {
    const bad: string[] = [];
    for (const file of files) {
      for (const d of loadFixture(file).diagnostics) {
        if (/(:|,|;)\s*$/.test(d.message) || /: \)|\(\)/.test(d.message)) bad.push(`${path.basename(file)}: ${located(d)}`);
      }
    }
    expect(bad).toEqual([]);
  });
});

// ---------------------------------------------------------------- shipped labs

describe('labs/*.yml', () => {
  const files = ymlFiles(LABS);
  it('there are shipped labs', () => expect(files.length).toBeGreaterThanOrEqual(6));
  for (const file of files) {
    it(`${path.basename(file)} is valid`, () => {
      const r = loadTopologyFile(file);
      expect(r.diagnostics.map(formatDiagnostic)).toEqual([]);
      expect(r.lab).not.toBeNull();
      expect(r.lab!.file).toBe(path.resolve(file));
    });
  }
});

// ---------------------------------------------------------------- defaults

describe('defaults', () => {
  const l = lab(`
name: defaults
networks:
  lan: {}
  internal: { gateway: false }
nodes:
  a:
    networks: [lan]
  b:
    networks: [internal, lan]
  c:
`);

  it('driver bridge, image busybox, networkMode bridge, no command, empty maps', () => {
    expect(net(l, 'lan').driver).toBe('bridge');
    expect(node(l, 'a').image).toBe('busybox');
    expect(node(l, 'a').networkMode).toBe('bridge');
    expect(node(l, 'a').command).toBeNull();
    expect(node(l, 'a').privileged).toBe(false);
    expect(node(l, 'a').forwarding).toBe(false);
    expect(node(l, 'a').netns).toBe('netlab.defaults.a');
    // A node written without a value gets every default: its own netns, loopback only.
    expect(node(l, 'c').interfaces).toEqual([]);
    expect(node(l, 'c').routes).toEqual([]);
  });

  it('subnets come from the default pool, in network order', () => {
    expect(DEFAULT_POOL).toBe('10.128.0.0/16');
    expect(net(l, 'lan').subnet).toBe('10.128.0.0/24');
    expect(net(l, 'internal').subnet).toBe('10.128.1.0/24');
  });

  it('a bridge network gets the first usable address as gateway, with NAT; gateway: false has none', () => {
    expect(net(l, 'lan').gateway).toBe('10.128.0.1');
    expect(net(l, 'lan').nat).toBe(true);
    expect(net(l, 'internal').gateway).toBeNull();
    expect(net(l, 'internal').nat).toBe(false);
  });

  it('addresses are allocated in node order, skipping the gateway', () => {
    expect(iface(l, 'a', 'eth0').ipv4).toEqual({ address: '10.128.0.2', prefixLen: 24 });
    expect(iface(l, 'b', 'eth1').ipv4).toEqual({ address: '10.128.0.3', prefixLen: 24 });
    expect(iface(l, 'b', 'eth0').ipv4).toEqual({ address: '10.128.1.1', prefixLen: 24 });
  });

  it('interfaces are eth0, eth1, ... in listing order', () => {
    expect(node(l, 'b').interfaces.map((f) => [f.name, f.network])).toEqual([['eth0', 'internal'], ['eth1', 'lan']]);
  });

  it('the default route goes via the gateway of the first network that has one', () => {
    expect(node(l, 'a').routes).toEqual([{ dst: '0.0.0.0/0', via: '10.128.0.1', dev: 'eth0', origin: 'gateway' }]);
    expect(node(l, 'b').routes).toEqual([{ dst: '0.0.0.0/0', via: '10.128.0.1', dev: 'eth1', origin: 'gateway' }]);
  });

  it('a written default route replaces the gateway one', () => {
    const m = lab('name: t\nnetworks: { lan: { subnet: 10.0.0.0/24 } }\nnodes:\n  a:\n    networks: [lan]\n    routes: [{ dst: default, via: 10.0.0.254 }]\n');
    expect(node(m, 'a').routes).toEqual([{ dst: '0.0.0.0/0', via: '10.0.0.254', dev: null, origin: 'user' }]);
  });

  it('MTU 1500 on bridges and links, 1450 on overlays', () => {
    expect(DEFAULT_MTU).toBe(1500);
    expect(net(l, 'lan').mtu).toBe(1500);
    expect(iface(l, 'a', 'eth0').mtu).toBe(1500);
    const o = lab('name: t\nhosts: { h1: {}, h2: {} }\nnetworks: { ov: { driver: overlay } }\nnodes:\n  a: { host: h1, networks: [ov] }\n  b: { host: h2, networks: [ov] }\n  r: {}\n  s: {}\nlinks:\n  - endpoints: ["r:p0", "s:p0"]\n');
    expect(net(o, 'ov').mtu).toBe(1450);
    expect(iface(o, 'a', 'eth0').mtu).toBe(1450);
    expect(o.links[0].mtu).toBe(1500);
    expect(net(o, 'ov').port).toBe(4789);
    expect(net(o, 'ov').gateway).toBeNull();
  });

  it('explicit interface names are kept and ethN skips them, links included', () => {
    const m = lab(`
name: t
networks: { n1: {}, n2: {}, n3: {} }
nodes:
  a:
    networks:
      n1:
      n2: { interface: eth0 }
      n3:
  b: {}
links:
  - endpoints: ["a:eth1", "b:eth0"]
`);
    expect(node(m, 'a').interfaces.map((f) => `${f.name}=${f.network ?? 'link'}`)).toEqual(['eth2=n1', 'eth0=n2', 'eth3=n3', 'eth1=link']);
    expect(node(m, 'b').interfaces.map((f) => f.name)).toEqual(['eth0']);
  });

  it('VNIs are allocated from 4096 upward, skipping explicit ones', () => {
    expect(FIRST_AUTO_VNI).toBe(4096);
    const o = lab(`
name: t
hosts: { h1: {}, h2: {} }
networks:
  o1: { driver: overlay }
  o2: { driver: overlay, vni: 4097 }
  o3: { driver: overlay }
  o4: { driver: overlay }
nodes:
  a: { host: h1, networks: [o1, o2, o3, o4] }
  b: { host: h2, networks: [o1, o2, o3, o4] }
`);
    expect(o.networks.map((n) => n.vni)).toEqual([4096, 4097, 4098, 4099]);
    expect(net(o, 'o1').hosts).toEqual(['h1', 'h2']);
  });

  it('MACs are derived deterministically: locally administered unicast, lab-specific; explicit ones are lowercased', () => {
    const mac = derivedMac('lab', 'node', 'eth0');
    expect(mac).toMatch(/^02(:[0-9a-f]{2}){5}$/);
    expect(derivedMac('lab', 'node', 'eth0')).toBe(mac);
    expect(derivedMac('lab2', 'node', 'eth0')).not.toBe(mac);
    expect(derivedMac('lab', 'node', 'eth1')).not.toBe(mac);
    expect(iface(l, 'a', 'eth0').mac).toBe(derivedMac('defaults', 'a', 'eth0'));
    const m = lab('name: t\nnetworks: { lan: {} }\nnodes:\n  a: { networks: { lan: { mac: "02:AB:CD:00:00:01" } } }\n');
    expect(iface(m, 'a', 'eth0').mac).toBe('02:ab:cd:00:00:01');
  });

  it('environment values become strings', () => {
    const m = lab('name: t\nnodes:\n  a: { environment: { N: 1, B: true, S: x } }\n  b: { environment: ["A=1", "B=x=y"] }\n');
    expect(node(m, 'a').environment).toEqual({ N: '1', B: 'true', S: 'x' });
    expect(node(m, 'b').environment).toEqual({ A: '1', B: 'x=y' });
  });

  it('http check URLs name nodes the way they are written (hostnames are not case-folded away)', () => {
    // Node names may contain capitals; `new URL` lower-cases the host part.
    const m = lab('name: t\nnetworks: { lan: {} }\nnodes:\n  Web: { networks: [lan] }\n  c: { networks: [lan] }\nchecks:\n  - http: { from: c, url: "http://Web/" }\n');
    expect(m.checks[0].target).toBe('http://Web/');
  });
});

// ---------------------------------------------------------------- IPAM

describe('IPAM', () => {
  it('allocates from ipam.pool, avoiding explicit subnets wherever they are written', () => {
    const l = lab(`
name: t
ipam: { pool: 10.200.0.0/16 }
networks:
  auto1: {}
  fixed: { subnet: 10.200.0.0/24 }
  auto2: {}
  fixed2: { subnet: 10.200.2.0/23 }
  auto3: {}
`);
    expect(l.networks.map((n) => `${n.name}=${n.subnet}`)).toEqual([
      'auto1=10.200.1.0/24', 'fixed=10.200.0.0/24', 'auto2=10.200.4.0/24', 'fixed2=10.200.2.0/23', 'auto3=10.200.5.0/24',
    ]);
  });

  it('honours ipam.prefix', () => {
    const l = lab('name: t\nipam: { pool: 10.9.0.0/24, prefix: 26 }\nnetworks: { a: {}, b: {} }\n');
    expect(l.networks.map((n) => n.subnet)).toEqual(['10.9.0.0/26', '10.9.0.64/26']);
  });

  it('skips fixed addresses and the gateway when allocating', () => {
    const l = lab(`
name: t
networks:
  lan: { subnet: 10.0.0.0/29, gateway: 10.0.0.2 }
nodes:
  a: { networks: [lan] }
  b: { networks: { lan: { ipv4: 10.0.0.3 } } }
  c: { networks: [lan] }
`);
    expect(['a', 'b', 'c'].map((n) => iface(l, n, 'eth0').ipv4!.address)).toEqual(['10.0.0.1', '10.0.0.3', '10.0.0.4']);
    expect(net(l, 'lan').gateway).toBe('10.0.0.2');
  });

  it('puts the underlay in the pool after the networks, and numbers the hosts', () => {
    const l = lab('name: t\nhosts: { h1: {}, h2: {} }\nnetworks: { ov: { driver: overlay } }\nnodes:\n  a: { host: h1, networks: [ov] }\n  b: { host: h2, networks: [ov] }\n');
    expect(net(l, 'ov').subnet).toBe('10.128.0.0/24');
    expect(l.underlay!.subnet).toBe('10.128.1.0/24');
    expect(l.hosts.map((h) => `${h.name}=${h.address}/${h.prefixLen}`)).toEqual(['h1=10.128.1.1/24', 'h2=10.128.1.2/24']);
  });

  it('the same file gives the same addresses, byte for byte', () => {
    for (const file of ymlFiles(LABS)) {
      const a = loadTopologyFile(file).lab;
      const b = loadTopologyFile(file).lab;
      expect(JSON.stringify(a)).toBe(JSON.stringify(b));
    }
    const text = 'name: t\nnetworks: { a: {}, b: {} }\nnodes:\n' + Array.from({ length: 30 }, (_, i) => `  n${i}: { networks: [${i % 2 ? 'a, b' : 'b'}] }\n`).join('');
    expect(JSON.stringify(lab(text))).toBe(JSON.stringify(lab(text)));
  });

  it('reports a full subnet with what it holds and what is needed', () => {
    const got = diags('name: t\nnetworks:\n  p2p: { subnet: 10.0.0.0/30 }\nnodes:\n  a: { networks: [p2p] }\n  b: { networks: [p2p] }\n');
    expect(got).toEqual(['3:18: networks.p2p.subnet: network p2p: subnet 10.0.0.0/30 has 2 usable addresses, 3 needed (2 nodes + gateway); use a larger subnet']);
  });

  it('reports an exhausted pool at the network that did not get a subnet', () => {
    const got = diags('name: t\nipam: { pool: 10.0.0.0/24 }\nnetworks: { a: {}, b: {} }\n');
    expect(got).toHaveLength(1);
    expect(got[0]).toMatch(/^3:20: networks\.b: pool 10\.0\.0\.0\/24 has no free \/24 left/);
    // The pool holds exactly one /24: the message must not claim billions of them.
    expect(got[0]).not.toMatch(/all \d{3,} overlap/);
  });
});

describe('IPAM around the machine and the running labs', () => {
  const machine: MachineNet = {
    routes: [{ dst: '10.128.0.0/24', dev: 'docker0' }, { dst: '10.128.2.0/23', dev: 'eth1' }],
    addresses: [{ address: '10.128.4.9', prefixLen: 32, dev: 'eth2' }],
  };
  const text = 'name: me\nnetworks: { a: {}, b: {}, c: {} }\nnodes:\n  n: { networks: [a, b, c] }\n';

  it('automatic subnets skip the machine\'s routes and addresses', () => {
    const l = loadTopologyText(text, 'x.yml', { machine }).lab!;
    expect(l.networks.map((n) => n.subnet)).toEqual(['10.128.1.0/24', '10.128.5.0/24', '10.128.6.0/24']);
  });

  it('automatic subnets skip other labs\' subnets, never the lab\'s own (re-resolved while up)', () => {
    const avoid = [
      { subnet: '10.128.0.0/24', lab: 'other', owner: 'lab other' },
      { subnet: '10.128.1.0/24', lab: 'me', owner: 'lab me' },
      { subnet: '10.128.2.0/24', lab: 'third', owner: 'lab third' },
    ];
    const l = loadTopologyText(text, 'x.yml', { avoid }).lab!;
    expect(l.networks.map((n) => n.subnet)).toEqual(['10.128.1.0/24', '10.128.3.0/24', '10.128.4.0/24']);
  });

  it('a default route is not in the way (every subnet overlaps it)', () => {
    const l = loadTopologyText(text, 'x.yml', { machine: { routes: [{ dst: '0.0.0.0/0', dev: 'eth0' }], addresses: [] }, avoid: [{ subnet: '0.0.0.0/0', lab: 'x', owner: 'lab x' }] }).lab!;
    expect(l.networks[0].subnet).toBe('10.128.0.0/24');
  });

  it('an exhausted pool names what uses it', () => {
    const avoid = [{ subnet: '10.9.0.0/25', lab: 'left', owner: 'lab left' }, { subnet: '10.9.0.128/25', lab: 'right', owner: 'lab right' }];
    const r = loadTopologyText('name: me\nipam: { pool: 10.9.0.0/24 }\nnetworks: { a: {} }\n', 'x.yml', { avoid });
    expect(r.diagnostics.map(located)).toEqual([
      '3:13: networks.a: pool 10.9.0.0/24 has no free /24 left (all 1 overlap reserved or already allocated subnets) (in use here: lab left, lab right); give the network a subnet, or use a larger ipam.pool or a longer ipam.prefix',
    ]);
  });

  it('explicit subnets are judged against the machine only when on it: internal networks and links may overlap its routes', () => {
    const r = loadTopologyText(`
name: t
networks:
  inside: { subnet: 10.128.0.0/24, gateway: false }
nodes:
  a: { networks: [inside] }
  b:
links:
  - { endpoints: ["a:p0", "b:p0"], ipv4: [10.128.2.1/30, 10.128.2.2/30] }
`, 'x.yml', { machine });
    expect(r.diagnostics.map(located)).toEqual([]);
  });

  it('a bridge on a simulated host has no gateway, so the machine\'s routes do not matter to it', () => {
    const r = loadTopologyText('name: t\nhosts: { h1: {} }\nnetworks:\n  lan: { subnet: 10.128.0.0/24 }\nnodes:\n  a: { host: h1, networks: [lan] }\n', 'x.yml', { machine });
    expect(r.diagnostics.map(located)).toEqual([]);
  });
});

describe('odd values', () => {
  it('userProblem: NAME, UID, NAME:GID, UID:GID with ids 0..4294967294', () => {
    for (const ok of ['root', 'nobody', 'www-data', '_apt', 'user.name', 'machine$', '0', '1000', '4294967294', '1000:1000', 'nobody:65534', '0:4294967294']) expect(userProblem(ok), ok).toBeNull();
    for (const bad of ['', ':', '1000:', ':1000', 'a:b:c', '4294967295', '99999999999', '1:4294967295', 'bob:staff', 'no body', '-x', 'x'.repeat(33)]) expect(userProblem(bad), bad).not.toBeNull();
  });

  it('macProblem: unicast and not zero', () => {
    for (const ok of ['02:00:00:00:00:01', '00:11:22:33:44:55', 'fe:ff:ff:ff:ff:ff']) expect(macProblem(ok), ok).toBeNull();
    for (const bad of ['00:00:00:00:00:00', 'ff:ff:ff:ff:ff:ff', '01:00:5e:00:00:01', '33:33:00:00:00:01', '03:00:00:00:00:00']) expect(macProblem(bad), bad).not.toBeNull();
  });

  it('memory: 6m is the smallest limit', () => {
    expect(MIN_MEMORY_BYTES).toBe(6 * 1024 * 1024);
    expect(node(lab('name: t\nnodes:\n  a: { resources: { memory: 6m } }\n'), 'a').resources.memoryBytes).toBe(MIN_MEMORY_BYTES);
    expect(diags(`name: t\nnodes:\n  a: { resources: { memory: ${MIN_MEMORY_BYTES - 1} } }\n`)).toEqual([
      `3:29: nodes.a.resources.memory: memory limit ${MIN_MEMORY_BYTES - 1} (${MIN_MEMORY_BYTES - 1} bytes) is below the minimum of 6m (${MIN_MEMORY_BYTES} bytes): the node would be killed for lack of memory at once`,
    ]);
  });

  const manyOn = (count: number, o: { overlay?: boolean } = {}) => {
    const hosts = o.overlay ? 'hosts: { h1: {} }\n' : '';
    const net = o.overlay ? '  lan: { driver: overlay, subnet: 10.0.0.0/20 }\n' : '  lan: { subnet: 10.0.0.0/20 }\n';
    const nodes = Array.from({ length: count }, (_, i) => `  n${i}: { ${o.overlay ? 'host: h1, ' : ''}networks: [lan] }\n`).join('');
    return `name: t\n${hosts}networks:\n${net}nodes:\n${nodes}`;
  };

  it(`a bridge takes ${BRIDGE_MAX_PORTS} node interfaces, not one more, and the network is named`, () => {
    expect(loadTopologyText(manyOn(BRIDGE_MAX_PORTS), 'x.yml').diagnostics).toEqual([]);
    expect(diags(manyOn(BRIDGE_MAX_PORTS + 1))).toEqual([
      `3:3: networks.lan: network lan needs ${BRIDGE_MAX_PORTS + 1} ports on one bridge (${BRIDGE_MAX_PORTS + 1} node interfaces); a Linux bridge takes at most ${BRIDGE_MAX_PORTS} (the kernel's BR_MAX_PORTS, less port 0): split the nodes over several networks joined by a router node (forwarding: true)`,
    ]);
  });

  it('an overlay\'s VXLAN device is a port of each host\'s bridge too', () => {
    expect(loadTopologyText(manyOn(BRIDGE_MAX_PORTS - 1, { overlay: true }), 'x.yml').diagnostics).toEqual([]);
    const got = diags(manyOn(BRIDGE_MAX_PORTS, { overlay: true }));
    expect(got).toHaveLength(1);
    expect(got[0]).toContain(`network lan needs ${BRIDGE_MAX_PORTS + 1} ports on one bridge on host h1 (${BRIDGE_MAX_PORTS} node interfaces + its VXLAN device)`);
  });
});

// ---------------------------------------------------------------- kernel names

describe('kernel names at scale', () => {
  it('10,010 nodes get distinct host-side names although their 24-bit hashes collide', () => {
    const nets = 10, per = 1001;
    let text = 'name: big\nipam: { prefix: 21 }\nnetworks:\n';
    for (let i = 0; i < nets; i++) text += `  n${i}:\n`;
    text += 'nodes:\n';
    for (let i = 0; i < nets * per; i++) text += `  x${i}: { networks: [n${i % nets}] }\n`;
    const r = loadTopologyText(text, 'big.yml');
    expect(r.diagnostics.map(located)).toEqual([]);
    const names = kernelNames(r.lab!);
    expect(names).toHaveLength(nets * per + nets);
    expect(new Set(names).size).toBe(names.length);
    // The test means something only if plain hashes do collide here (salt 0 for every object).
    const plain = r.lab!.nodes.flatMap((n) => n.interfaces.map((f) => ifName('big', 'v', `${n.name}/${f.name}`)));
    expect(new Set(plain).size).toBeLessThan(plain.length);
    // Only the later object of a collision is renamed: everything else keeps its salt-0 name.
    const renamed = r.lab!.nodes.flatMap((n) => n.interfaces).filter((f, i) => f.hostSide !== plain[i]);
    expect(renamed.length).toBe(plain.length - new Set(plain).size);
    for (const nm of names) expect(Buffer.byteLength(nm)).toBe(IFNAMSIZ_MAX);
  });
});

describe('kernel names', () => {
  it('every interface name of every shipped lab fits in 15 bytes', () => {
    for (const file of ymlFiles(LABS)) {
      const l = loadTopologyFile(file).lab!;
      for (const nm of kernelNames(l)) expect(Buffer.byteLength(nm), `${path.basename(file)}: ${nm}`).toBeLessThanOrEqual(IFNAMSIZ_MAX);
      for (const nd of l.nodes) for (const f of nd.interfaces) expect(Buffer.byteLength(f.name)).toBeLessThanOrEqual(IFNAMSIZ_MAX);
      for (const nm of kernelNames(l)) expect(nm.startsWith('nl')).toBe(true);
      expect(new Set(kernelNames(l)).size).toBe(kernelNames(l).length);
    }
  });

  it('two labs with the same node names get disjoint kernel names, netns and link groups', () => {
    const body = fs.readFileSync(path.join(LABS, 'overlay.yml'), 'utf8').replace(/^name: .*$/m, '');
    const a = lab(`name: alpha\n${body}`);
    const b = lab(`name: beta\n${body}`);
    expect(a.nodes.map((n) => n.name)).toEqual(b.nodes.map((n) => n.name));
    const na = new Set(kernelNames(a));
    for (const nm of kernelNames(b)) expect(na.has(nm), nm).toBe(false);
    const nsA = new Set([...a.nodes.map((n) => n.netns), ...a.hosts.map((h) => h.netns)]);
    for (const ns of [...b.nodes.map((n) => n.netns), ...b.hosts.map((h) => h.netns)]) expect(nsA.has(ns)).toBe(false);
    expect(a.id).not.toBe(b.id);
    expect(a.group).not.toBe(b.group);
    expect(a.group).toBeGreaterThan(0);
    for (const l of [a, b]) for (const nm of kernelNames(l)) expect(Buffer.byteLength(nm)).toBeLessThanOrEqual(IFNAMSIZ_MAX);
  });

  it('long node and lab names still give 15-byte names and readable aliases', () => {
    const long = 'n'.repeat(63);
    const l = lab(`name: ${'a'.repeat(32)}\nnetworks: { ${'w'.repeat(63)}: {} }\nnodes:\n  ${long}: { networks: [${'w'.repeat(63)}] }\n`);
    for (const nm of kernelNames(l)) expect(Buffer.byteLength(nm)).toBe(15);
    expect(node(l, long).interfaces[0].alias).toBe(`netlab:${'a'.repeat(32)}:${long}:eth0`);
  });
});

// ---------------------------------------------------------------- parsing helpers

describe('parsePort', () => {
  it('parses the Docker forms', () => {
    expect(parsePort('8080:80')).toEqual({ hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80, protocol: 'tcp' });
    expect(parsePort('127.0.0.1:5353:53/udp')).toEqual({ hostIp: '127.0.0.1', hostPort: 5353, containerPort: 53, protocol: 'udp' });
    expect(parsePort('1:65535/tcp')).toEqual({ hostIp: '0.0.0.0', hostPort: 1, containerPort: 65535, protocol: 'tcp' });
  });
  it('explains what is wrong', () => {
    expect(parsePort('80')).toContain('publishes no host port; write HOST_PORT:CONTAINER_PORT, e.g. "8080:80"');
    expect(parsePort('53/udp')).toContain('e.g. "8080:53"');
    expect(parsePort('8000-8010:80')).toContain('port ranges are not supported');
    expect(parsePort('0:80')).toBe('port 0 in "0:80" is out of range; expected 1-65535');
    expect(parsePort('80:65536')).toContain('out of range');
    expect(parsePort('999.0.0.1:80:80')).toBe('"999.0.0.1" is not an IPv4 address in "999.0.0.1:80:80"');
    for (const bad of ['', ':', 'a:b', '80:80/sctp', '80:80:80:80', ' 80:80']) expect(typeof parsePort(bad), bad).toBe('string');
  });
});

describe('parseVolume', () => {
  it('resolves relative host paths from the topology folder', () => {
    expect(parseVolume('./www:/www:ro', '/labs')).toEqual({ source: '/labs/www', target: '/www', readOnly: true });
    expect(parseVolume('../data:/data', '/labs/x')).toEqual({ source: '/labs/data', target: '/data', readOnly: false });
    expect(parseVolume('/srv:/srv:rw', '/labs')).toEqual({ source: '/srv', target: '/srv', readOnly: false });
    expect(parseVolume('./a/../b:/x/./y', '/labs')).toEqual({ source: '/labs/b', target: '/x/y', readOnly: false });
    expect(parseVolume('.:/work', '/labs')).toEqual({ source: '/labs', target: '/work', readOnly: false });
  });
  it('expands ~/ from HOME', () => {
    const r = parseVolume('~/x:/y', '/labs');
    expect(typeof r === 'object' && r.source).toBe(path.join(process.env.HOME ?? '/root', 'x'));
  });
  it('explains what is wrong', () => {
    expect(parseVolume('data:/data', '/labs')).toContain('named volumes are not supported ("data"); use a path: "./data"');
    expect(parseVolume('./a:rel', '/labs')).toContain('container path "rel" in "./a:rel" must be absolute');
    expect(parseVolume('./a:/b:rx', '/labs')).toBe('mode "rx" in "./a:/b:rx" is not allowed; expected ro or rw');
    for (const bad of ['', 'x', ':/a', './a:', './a:/b:ro:rw']) expect(typeof parseVolume(bad, '/labs'), bad).toBe('string');
  });
});

describe('parseSize', () => {
  it('reads bytes and k/m/g (powers of 1024)', () => {
    expect(parseSize('512')).toBe(512);
    expect(parseSize(1024)).toBe(1024);
    expect(parseSize('64k')).toBe(64 * 1024);
    expect(parseSize('64m')).toBe(64 * 1024 ** 2);
    expect(parseSize('1G')).toBe(1024 ** 3);
    expect(parseSize('1.5k')).toBe(1536);
    expect(parseSize('10b')).toBe(10);
  });
  it('rejects zero, negatives, fractions of a byte and junk', () => {
    for (const bad of ['0', '0k', '', 'k', '1t', '1 m', '-1', 'abc', '1.5.2m']) expect(parseSize(bad), bad).toBeNull();
    for (const bad of [0, -1, 1.5, Number.NaN]) expect(parseSize(bad), String(bad)).toBeNull();
  });
});

describe('splitCommand', () => {
  it('splits on whitespace, respecting quotes and backslashes', () => {
    expect(splitCommand('httpd -f -p 80 -h /www')).toEqual(['httpd', '-f', '-p', '80', '-h', '/www']);
    expect(splitCommand('  sh   -c "echo hi  there" ')).toEqual(['sh', '-c', 'echo hi  there']);
    expect(splitCommand(`echo 'a b' "c'd" e\\ f`)).toEqual(['echo', 'a b', "c'd", 'e f']);
    expect(splitCommand('echo "a\\"b" \'x\\y\'')).toEqual(['echo', 'a"b', 'x\\y']);
    expect(splitCommand('echo "" x')).toEqual(['echo', '', 'x']);
    expect(splitCommand('a\tb\nc')).toEqual(['a', 'b', 'c']);
    expect(splitCommand('')).toEqual([]);
    expect(splitCommand('   ')).toEqual([]);
  });
  it('returns null on unbalanced quotes', () => {
    expect(splitCommand('echo "abc')).toBeNull();
    expect(splitCommand("echo 'abc")).toBeNull();
  });
  it('is used for string commands; lists are kept as written', () => {
    const l = lab('name: t\nnodes:\n  a: { command: "sh -c \'echo hi\'" }\n  b: { command: [sh, -c, "echo hi"] }\n');
    expect(node(l, 'a').command).toEqual(['sh', '-c', 'echo hi']);
    expect(node(l, 'b').command).toEqual(['sh', '-c', 'echo hi']);
    expect(diags('name: t\nnodes:\n  a: { command: "echo \\"x" }\n')).toEqual(['3:17: nodes.a.command: unbalanced quotes in command']);
  });
});

describe('files (copied into the writable layer at start)', () => {
  it('targets are absolute paths in the container; sources resolve against the topology file', () => {
    const l = lab('name: t\nnodes:\n  a:\n    files:\n      /etc/app.conf: ./app.conf\n      /opt/./y: /abs/y\n', '/labs/dir/t.yml');
    expect(node(l, 'a').files).toEqual([
      { target: '/etc/app.conf', source: '/labs/dir/app.conf' },
      { target: '/opt/y', source: '/abs/y' },
    ]);
    expect(node(lab('name: t\nnodes:\n  a: {}\n'), 'a').files).toEqual([]);
  });
  it('a relative target, a target that climbs, the root itself: errors at the key', () => {
    expect(diags('name: t\nnodes:\n  a:\n    files:\n      etc/x: ./x\n      /../x: ./x\n      /: ./x\n')).toEqual([
      '5:7: nodes.a.files.etc/x: file target "etc/x" must be an absolute path in the container',
      '6:7: nodes.a.files./../x: file target "/../x" must name a file below /',
      '7:7: nodes.a.files./: file target "/" must name a file below /',
    ]);
  });
});
