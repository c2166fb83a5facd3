import { execFileSync, spawnSync } from 'node:child_process';
import { MultiUndirectedGraph } from 'graphology';
import { describe, expect, it } from 'vitest';
import { MACHINE_KEY, buildLabGraph, toDot, toGraphJson, toJson, toMermaid } from '../../topology/graph.js';
import type { Lab, LabHost, LabInterface, LabLink, LabNetwork, LabNode } from '../../topology/types.js';

// ---------------------------------------------------------------- hand-built Lab objects

function net(name: string, over: Partial<LabNetwork> = {}): LabNetwork {
  return {
    name,
    driver: 'bridge',
    subnet: null,
    gateway: null,
    nat: false,
    ipv6: false,
    mtu: 1500,
    vni: null,
    port: null,
    hosts: [],
    bridgeName: null,
    vxlanName: null,
    ...over,
  };
}

function netIf(name: string, network: string, ip: string | null, up = true): LabInterface {
  return {
    name,
    kind: 'network',
    network,
    link: null,
    peer: null,
    ipv4: ip ? { address: ip.split('/')[0], prefixLen: Number(ip.split('/')[1]) } : null,
    mac: null,
    mtu: 1500,
    hostSide: null,
    alias: `netlab:t:x:${name}`,
    up,
  };
}

function linkIf(name: string, link: number, peer: { node: string; iface: string }): LabInterface {
  return { ...netIf(name, '', null), kind: 'link', network: null, link, peer };
}

function node(name: string, over: Partial<LabNode> = {}): LabNode {
  return {
    name,
    image: 'alpine:3.20',
    host: null,
    networkMode: 'bridge',
    netns: `netlab.t.${name}`,
    interfaces: [],
    routes: [],
    command: null, entrypoint: null,
    environment: {},
    ports: [],
    volumes: [], files: [],
    workingDir: null,
    user: null,
    privileged: false,
    forwarding: false,
    resources: { cpuShares: null, cpus: null, memoryBytes: null, pids: null, cpuset: null },
    ...over,
  };
}

function host(name: string, address: string): LabHost {
  return { name, address, prefixLen: 24, netns: `netlab.t+${name}`, underlaySide: `nlu${name}`, underlayIface: 'eth0' };
}

function link(index: number, a: string, b: string, ipA: string | null, ipB: string | null, up = true): LabLink {
  const end = (s: string, ip: string | null) => {
    const [n, i] = s.split(':');
    return { node: n, iface: i, ipv4: ip ? { address: ip.split('/')[0], prefixLen: Number(ip.split('/')[1]) } : null };
  };
  return { index, a: end(a, ipA), b: end(b, ipB), mtu: 1500, up };
}

function lab(over: Partial<Lab>): Lab {
  return { name: 't', file: '', id: 'abc123', group: 7, underlay: null, hosts: [], networks: [], nodes: [], links: [], checks: [], ...over };
}

/** Every feature at once: bridge with gateway, two links between the same pair (one down,
 *  without addresses), a none node, a host-mode node, an overlay across two hosts. */
function bigLab(): Lab {
  return lab({
    name: 'demo',
    underlay: { subnet: '192.168.100.0/24', bridgeName: 'nlabc123u000000' },
    hosts: [host('h2', '192.168.100.3'), host('h1', '192.168.100.2')],
    networks: [
      net('lan', { subnet: '10.0.0.0/24', gateway: '10.0.0.1', nat: true }),
      net('ov', { driver: 'overlay', subnet: '10.20.0.0/24', vni: 42, port: 4789, mtu: 1450, hosts: ['h2', 'h1'] }),
    ],
    nodes: [
      node('web', { image: 'nginx:alpine', interfaces: [netIf('eth0', 'lan', '10.0.0.2/24')] }),
      node('client', {
        interfaces: [
          netIf('eth0', 'lan', '10.0.0.3/24'),
          linkIf('eth1', 0, { node: 'r1', iface: 'eth1' }),
          linkIf('eth2', 1, { node: 'r1', iface: 'eth2' }),
        ],
      }),
      node('r1', {
        interfaces: [linkIf('eth1', 0, { node: 'client', iface: 'eth1' }), linkIf('eth2', 1, { node: 'client', iface: 'eth2' })],
      }),
      node('lonely', { networkMode: 'none', netns: 'netlab.t.lonely' }),
      node('mon', { networkMode: 'host', netns: null }),
      node('a1', { host: 'h1', interfaces: [netIf('eth0', 'ov', '10.20.0.2/24')] }),
      node('a2', { host: 'h2', interfaces: [netIf('eth0', 'ov', '10.20.0.3/24', false)] }),
    ],
    links: [link(0, 'client:eth1', 'r1:eth1', '10.0.12.1/30', '10.0.12.2/30'), link(1, 'client:eth2', 'r1:eth2', null, null, false)],
  });
}

// ---------------------------------------------------------------- buildLabGraph

describe('buildLabGraph', () => {
  it('bridge network with two nodes and a gateway', () => {
    const g = buildLabGraph(
      lab({
        networks: [net('lan', { subnet: '10.0.0.0/24', gateway: '10.0.0.1', nat: true })],
        nodes: [
          node('b', { interfaces: [netIf('eth0', 'lan', '10.0.0.3/24')] }),
          node('a', { image: 'nginx', interfaces: [netIf('eth0', 'lan', '10.0.0.2/24')] }),
        ],
      }),
    );
    expect(g.nodes()).toEqual(['node:a', 'node:b', 'net:lan', 'machine']);
    expect(g.size).toBe(3);
    expect(g.getNodeAttributes('node:a')).toEqual({
      kind: 'container',
      label: 'a\nnginx',
      name: 'a',
      image: 'nginx',
      host: null,
      networkMode: 'bridge',
    });
    expect(g.getNodeAttributes('net:lan')).toMatchObject({ kind: 'network', driver: 'bridge', subnet: '10.0.0.0/24', gateway: '10.0.0.1' });
    expect(g.getEdgeAttributes('if:a/eth0')).toEqual({
      kind: 'attachment',
      label: 'eth0\n10.0.0.2/24',
      iface: 'eth0',
      ipv4: '10.0.0.2/24',
      mac: null,
      up: true,
    });
    expect(g.extremities('if:a/eth0')).toEqual(['node:a', 'net:lan']);
    expect(g.getEdgeAttributes('gw:lan')).toMatchObject({ kind: 'gateway', address: '10.0.0.1/24', nat: true });
    expect(g.extremities('gw:lan')).toEqual(['net:lan', MACHINE_KEY]);
  });

  it('no machine node for an internal-only lab', () => {
    const g = buildLabGraph(
      lab({ networks: [net('lan', { subnet: '10.0.0.0/24' })], nodes: [node('a', { interfaces: [netIf('eth0', 'lan', '10.0.0.2/24')] })] }),
    );
    expect(g.hasNode(MACHINE_KEY)).toBe(false);
    expect(g.order).toBe(2);
    expect(g.size).toBe(1);
  });

  it('every feature: counts, kinds and endpoints', () => {
    const g = buildLabGraph(bigLab());
    expect(g.getAttributes()).toEqual({ name: 'demo', id: 'abc123' });
    // 7 containers + 2 networks + 2 hosts + machine
    expect(g.order).toBe(12);
    expect(g.nodes()).toEqual([
      'node:a1', 'node:a2', 'node:client', 'node:lonely', 'node:mon', 'node:r1', 'node:web',
      'net:lan', 'net:ov', 'host:h1', 'host:h2', 'machine',
    ]);
    // 4 attachments + 2 links + 1 host-mode + 1 gateway + 2 overlay + 1 tunnel + 2 underlay
    expect(g.size).toBe(13);
    expect(g.edges()).toEqual([
      'if:a1/eth0', 'if:a2/eth0', 'if:client/eth0', 'if:web/eth0',
      'link:0', 'link:1', 'hostmode:mon', 'gw:lan', 'overlay:ov/h1', 'overlay:ov/h2', 'tunnel:ov/h1/h2', 'underlay:h1', 'underlay:h2',
    ]);
    const kinds = g.mapEdges((_k, a) => a.kind);
    expect(kinds.filter((k) => k === 'attachment')).toHaveLength(4);

    // Two links between the same pair both appear.
    expect(g.edges('node:client', 'node:r1').sort()).toEqual(['link:0', 'link:1']);
    expect(g.getEdgeAttributes('link:0')).toEqual({
      kind: 'link',
      label: 'eth1 10.0.12.1/30 -- eth1 10.0.12.2/30',
      link: 0,
      ifaceA: 'eth1',
      ipv4A: '10.0.12.1/30',
      ifaceB: 'eth1',
      ipv4B: '10.0.12.2/30',
      mtu: 1500,
      up: true,
    });
    expect(g.getEdgeAttributes('link:1')).toMatchObject({ ipv4A: null, ipv4B: null, up: false, label: 'eth2 -- eth2\ndown' });

    // The none node is isolated; the host-mode node hangs off the machine.
    expect(g.degree('node:lonely')).toBe(0);
    expect(g.getNodeAttributes('node:lonely')).toMatchObject({ networkMode: 'none', label: 'lonely\nalpine:3.20\nnetwork_mode none' });
    expect(g.extremities('hostmode:mon')).toEqual(['node:mon', 'machine']);

    // Overlay spans both hosts, hosts sit on the underlay.
    expect(g.getNodeAttributes('net:ov')).toMatchObject({ driver: 'overlay', vni: 42, label: 'ov\noverlay 10.20.0.0/24 vni 42' });
    expect(g.extremities('overlay:ov/h1')).toEqual(['net:ov', 'host:h1']);
    expect(g.getEdgeAttributes('overlay:ov/h2')).toEqual({ kind: 'overlay', label: 'vxlan 42', vni: 42 });
    expect(g.getNodeAttributes('host:h1')).toEqual({ kind: 'host', label: 'h1\n192.168.100.2/24', name: 'h1', address: '192.168.100.2', prefixLen: 24 });
    expect(g.getEdgeAttributes('underlay:h2')).toEqual({ kind: 'underlay', label: 'eth0\n192.168.100.3/24', iface: 'eth0', ipv4: '192.168.100.3/24' });
    // One VXLAN tunnel between the two hosts the overlay spans, with both endpoints.
    expect(g.extremities('tunnel:ov/h1/h2')).toEqual(['host:h1', 'host:h2']);
    expect(g.getEdgeAttributes('tunnel:ov/h1/h2')).toEqual({
      kind: 'tunnel', label: 'ov vxlan 42\n192.168.100.2 -- 192.168.100.3', network: 'ov', vni: 42, port: 4789, addressA: '192.168.100.2', addressB: '192.168.100.3',
    });
    expect(g.getNodeAttributes('node:a1')).toMatchObject({ host: 'h1', label: 'a1\nalpine:3.20\non h1' });
    expect(g.getEdgeAttributes('if:a2/eth0')).toMatchObject({ up: false, label: 'eth0\n10.20.0.3/24\ndown' });
  });

  it('machine shown for a host-mode node alone, and for an underlay alone', () => {
    expect(buildLabGraph(lab({ nodes: [node('m', { networkMode: 'host', netns: null })] })).hasNode('machine')).toBe(true);
    expect(buildLabGraph(lab({ underlay: { subnet: '192.168.0.0/24', bridgeName: 'x' } })).hasNode('machine')).toBe(true);
  });

  it('a host-mode node on a simulated host attaches to that host', () => {
    const g = buildLabGraph(lab({ hosts: [host('h1', '192.168.0.2')], nodes: [node('m', { host: 'h1', networkMode: 'host', netns: null })] }));
    expect(g.extremities('hostmode:m')).toEqual(['node:m', 'host:h1']);
  });

  it('throws on a reference to an unknown network', () => {
    expect(() => buildLabGraph(lab({ nodes: [node('a', { interfaces: [netIf('eth0', 'nope', null)] })] }))).toThrow(
      /interface a:eth0 refers to unknown net:nope/,
    );
  });
});

// ---------------------------------------------------------------- renderings

function shuffled(l: Lab): Lab {
  return { ...l, hosts: [...l.hosts].reverse(), networks: [...l.networks].reverse(), nodes: [...l.nodes].reverse(), links: [...l.links].reverse() };
}

describe('toDot', () => {
  const dot = toDot(bigLab());

  it('is an undirected graph with quoted ids, labels and shapes per kind', () => {
    expect(dot.startsWith('graph "demo" {\n')).toBe(true);
    expect(dot.endsWith('}\n')).toBe(true);
    expect(dot).toContain('"node:web" [label="web\\nnginx:alpine", shape=box, style=rounded];');
    expect(dot).toContain('"net:lan" [label="lan\\nbridge 10.0.0.0/24", shape=ellipse];');
    expect(dot).toContain('"host:h1" [label="h1\\n192.168.100.2/24", shape=box3d];');
    expect(dot).toContain('"machine" [label="machine", shape=house];');
    expect(dot).toContain('"node:web" -- "net:lan" [label="eth0\\n10.0.0.2/24"];');
    expect(dot).toContain('"node:client" -- "node:r1" [taillabel="eth1\\n10.0.12.1/30", headlabel="eth1\\n10.0.12.2/30"];');
    expect(dot).toContain('"node:client" -- "node:r1" [taillabel="eth2", headlabel="eth2", label="down", style=dashed];');
    expect(dot).toContain('"net:lan" -- "machine" [label="10.0.0.1/24\\nNAT"];');
    expect(dot).toContain('"net:ov" -- "host:h2" [label="vxlan 42", style=dotted];');
    expect(dot).toContain('"host:h1" -- "machine" [label="eth0\\n192.168.100.2/24"];');
    expect(dot).toContain('"node:mon" -- "machine" [label="network_mode host", style=dotted];');
    expect(dot).not.toContain('->');
  });

  it('every body line is a well-formed statement', () => {
    const body = dot.trimEnd().split('\n').slice(1, -1);
    const q = '"(?:[^"\\\\]|\\\\.)*"';
    const stmt = new RegExp(`^  (?:(?:graph|node|edge) \\[.*\\];|${q} \\[.*\\];|${q} -- ${q} \\[.*\\];)$`);
    for (const line of body) expect(line).toMatch(stmt);
    expect(body.filter((l) => l.includes(' -- '))).toHaveLength(13);
  });

  it('escapes quotes and backslashes', () => {
    const out = toDot(lab({ name: 'we"ird', nodes: [node('x', { image: 'reg\\img"1' })] }));
    expect(out).toContain('graph "we\\"ird" {');
    expect(out).toContain('"node:x" [label="x\\nreg\\\\img\\"1"');
  });

  it('is byte-identical for the same Lab, whatever the order of its arrays', () => {
    expect(toDot(bigLab())).toBe(dot);
    expect(toDot(shuffled(bigLab()))).toBe(dot);
  });

  const hasDot = spawnSync('dot', ['-V']).status === 0;
  it.skipIf(!hasDot)('is accepted by graphviz (when installed)', () => {
    const svg = execFileSync('dot', ['-Tsvg'], { input: dot }).toString();
    expect(svg).toContain('<svg');
  });
});

describe('toMermaid', () => {
  const mm = toMermaid(bigLab());

  it('is a graph LR flowchart with sanitized ids and shapes per kind', () => {
    const lines = mm.trimEnd().split('\n');
    expect(lines[0]).toBe('graph LR');
    expect(lines).toContain('  node_web["web<br/>nginx:alpine"]');
    expect(lines).toContain('  net_lan(["lan<br/>bridge 10.0.0.0/24"])');
    expect(lines).toContain('  host_h1[["h1<br/>192.168.100.2/24"]]');
    expect(lines).toContain('  machine{{"machine"}}');
    expect(lines).toContain('  node_web ---|"eth0<br/>10.0.0.2/24"| net_lan');
    expect(lines).toContain('  node_client ---|"eth1 10.0.12.1/30 -- eth1 10.0.12.2/30"| node_r1');
    expect(lines).toContain('  node_client -.-|"eth2 -- eth2<br/>down"| node_r1');
    expect(lines).toContain('  net_ov -.-|"vxlan 42"| host_h1');
    expect(lines).toHaveLength(1 + 12 + 13);
    for (const l of lines.slice(1)) expect(l).toMatch(/^  [A-Za-z0-9_]+(\S*"[^"]*"\S*|\s(---|-\.-)\|"[^"]*"\| [A-Za-z0-9_]+)$/);
  });

  it('keeps ids unique after sanitizing and escapes quotes', () => {
    const out = toMermaid(lab({ nodes: [node('a-b'), node('a_b', { image: 'x"y<z>' })] }));
    expect(out).toContain('  node_a_b["a-b<br/>alpine:3.20"]');
    expect(out).toContain('  node_a_b_2["a_b<br/>x#quot;y#lt;z#gt;"]');
  });

  it('is byte-identical for the same Lab', () => {
    expect(toMermaid(shuffled(bigLab()))).toBe(mm);
  });
});

describe('toJson', () => {
  it('is graphology export() text that round-trips', () => {
    const text = toJson(bigLab());
    expect(text.endsWith('\n')).toBe(true);
    const data = JSON.parse(text);
    expect(data).toEqual(toGraphJson(bigLab()));
    expect(data.attributes).toEqual({ name: 'demo', id: 'abc123' });
    expect(data.nodes).toHaveLength(12);
    expect(data.edges).toHaveLength(13);
    expect(data.options).toEqual({ type: 'undirected', multi: true, allowSelfLoops: true });
    expect(data.edges[0]).toMatchObject({ key: 'if:a1/eth0', source: 'node:a1', target: 'net:ov' });
    const g = MultiUndirectedGraph.from(data);
    expect(g.order).toBe(12);
    expect(g.edges('node:client', 'node:r1')).toHaveLength(2);
  });

  it('is byte-identical for the same Lab', () => {
    expect(toJson(shuffled(bigLab()))).toBe(toJson(bigLab()));
  });
});
