// The lab as a graph (graphology), and its renderings: Graphviz DOT, Mermaid and JSON. Owns
// the mapping from a resolved Lab to graph nodes (containers, networks, simulated hosts, the
// machine) and edges (one per interface / cable), and the stable ordering that makes every
// rendering byte-identical for the same Lab. Pure: no kernel, no I/O.
import { MultiUndirectedGraph } from 'graphology';
import type { SerializedGraph } from 'graphology-types';
import { parseCidr } from './ipam.js';
import type { Lab, LabNode } from './types.js';

// ---------------------------------------------------------------- graph model

/** Key of the graph node standing for the machine netlab runs on. */
export const MACHINE_KEY = 'machine';
export const containerKey = (name: string): string => `node:${name}`;
export const networkKey = (name: string): string => `net:${name}`;
export const hostKey = (name: string): string => `host:${name}`;

/** Attributes of a graph node. `label` is display text; lines are separated by '\n'. */
export type LabGraphNodeAttributes =
  | {
      kind: 'container';
      label: string;
      name: string;
      image: string;
      host: string | null;
      networkMode: LabNode['networkMode'];
    }
  | {
      kind: 'network';
      label: string;
      name: string;
      driver: Lab['networks'][number]['driver'];
      subnet: string | null;
      gateway: string | null;
      nat: boolean;
      vni: number | null;
    }
  | { kind: 'host'; label: string; name: string; address: string; prefixLen: number }
  | { kind: 'machine'; label: string; name: string };

/** Attributes of a graph edge. Addresses are `a.b.c.d/len`. */
export type LabGraphEdgeAttributes =
  /** container -> network: one per network interface of the container. */
  | { kind: 'attachment'; label: string; iface: string; ipv4: string | null; mac: string | null; up: boolean }
  /** container -> container: one per point-to-point link (Lab.links[link]); A is the source. */
  | {
      kind: 'link';
      label: string;
      link: number;
      ifaceA: string;
      ipv4A: string | null;
      ifaceB: string;
      ipv4B: string | null;
      mtu: number;
      up: boolean;
    }
  /** network -> machine: the host-side gateway address of the network. */
  | { kind: 'gateway'; label: string; address: string; nat: boolean }
  /** simulated host -> machine: the host's underlay interface. */
  | { kind: 'underlay'; label: string; iface: string; ipv4: string }
  /** overlay network -> simulated host it spans. */
  | { kind: 'overlay'; label: string; vni: number | null }
  /** host -> host: the VXLAN tunnel of one overlay network between two hosts it spans (each
   *  end has forwarding entries for the other's containers, sent to the other's address). */
  | { kind: 'tunnel'; label: string; network: string; vni: number | null; port: number | null; addressA: string; addressB: string }
  /** container with network_mode host -> the machine (or simulated host) whose stack it shares. */
  | { kind: 'host-mode'; label: string };

export type LabGraphAttributes = { name: string; id: string };

export type LabGraph = MultiUndirectedGraph<LabGraphNodeAttributes, LabGraphEdgeAttributes, LabGraphAttributes>;

/** What toJson serialises: graphology's `export()` format. */
export type LabGraphJson = SerializedGraph<LabGraphNodeAttributes, LabGraphEdgeAttributes, LabGraphAttributes>;

function byName<T extends { name: string }>(items: readonly T[]): T[] {
  return [...items].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function cidrText(ip: { address: string; prefixLen: number } | null): string | null {
  return ip ? `${ip.address}/${ip.prefixLen}` : null;
}

function lines(...parts: (string | null | false)[]): string {
  return parts.filter((p): p is string => typeof p === 'string' && p !== '').join('\n');
}

/**
 * Builds the lab graph. Nodes are added in a fixed order (containers, networks, hosts, each
 * sorted by name, then the machine) and edges likewise (attachments per container in interface
 * order, links by index, host-mode, gateways, overlays, tunnels, underlay), so every rendering
 * is stable. Edge keys: `if:<node>/<iface>`, `link:<index>`, `hostmode:<node>`, `gw:<net>`,
 * `overlay:<net>/<host>`, `tunnel:<net>/<hostA>/<hostB>` (A < B), `underlay:<host>`. Throws if
 * the Lab refers to unknown objects.
 */
export function buildLabGraph(lab: Lab): LabGraph {
  const g: LabGraph = new MultiUndirectedGraph<LabGraphNodeAttributes, LabGraphEdgeAttributes, LabGraphAttributes>({
    allowSelfLoops: true,
  });
  g.replaceAttributes({ name: lab.name, id: lab.id });

  const nodes = byName(lab.nodes);
  const networks = byName(lab.networks);
  const hosts = byName(lab.hosts);

  for (const n of nodes) {
    g.addNode(containerKey(n.name), {
      kind: 'container',
      label: lines(n.name, n.image, n.host !== null && `on ${n.host}`, n.networkMode !== 'bridge' && `network_mode ${n.networkMode}`),
      name: n.name,
      image: n.image,
      host: n.host,
      networkMode: n.networkMode,
    });
  }
  for (const net of networks) {
    g.addNode(networkKey(net.name), {
      kind: 'network',
      label: lines(net.name, [net.driver, net.subnet, net.vni !== null ? `vni ${net.vni}` : null].filter(Boolean).join(' ')),
      name: net.name,
      driver: net.driver,
      subnet: net.subnet,
      gateway: net.gateway,
      nat: net.nat,
      vni: net.vni,
    });
  }
  for (const h of hosts) {
    g.addNode(hostKey(h.name), {
      kind: 'host',
      label: lines(h.name, `${h.address}/${h.prefixLen}`),
      name: h.name,
      address: h.address,
      prefixLen: h.prefixLen,
    });
  }
  const showMachine =
    lab.networks.some((n) => n.gateway !== null) ||
    lab.nodes.some((n) => n.networkMode === 'host') ||
    lab.hosts.length > 0 ||
    lab.underlay !== null;
  if (showMachine) g.addNode(MACHINE_KEY, { kind: 'machine', label: 'machine', name: 'machine' });

  const need = (key: string, what: string): string => {
    if (!g.hasNode(key)) throw new Error(`lab graph: ${what} refers to unknown ${key}`);
    return key;
  };

  for (const n of nodes) {
    for (const i of n.interfaces) {
      if (i.kind !== 'network') continue;
      const ipv4 = cidrText(i.ipv4);
      g.addEdgeWithKey(
        `if:${n.name}/${i.name}`,
        containerKey(n.name),
        need(networkKey(i.network ?? ''), `interface ${n.name}:${i.name}`),
        { kind: 'attachment', label: lines(i.name, ipv4, !i.up && 'down'), iface: i.name, ipv4, mac: i.mac, up: i.up },
      );
    }
  }
  for (const l of [...lab.links].sort((x, y) => x.index - y.index)) {
    const ipv4A = cidrText(l.a.ipv4);
    const ipv4B = cidrText(l.b.ipv4);
    const end = (iface: string, ip: string | null) => [iface, ip].filter(Boolean).join(' ');
    g.addEdgeWithKey(
      `link:${l.index}`,
      need(containerKey(l.a.node), `link ${l.index}`),
      need(containerKey(l.b.node), `link ${l.index}`),
      {
        kind: 'link',
        label: lines(`${end(l.a.iface, ipv4A)} -- ${end(l.b.iface, ipv4B)}`, !l.up && 'down'),
        link: l.index,
        ifaceA: l.a.iface,
        ipv4A,
        ifaceB: l.b.iface,
        ipv4B,
        mtu: l.mtu,
        up: l.up,
      },
    );
  }
  for (const n of nodes) {
    if (n.networkMode !== 'host') continue;
    const target = n.host === null ? MACHINE_KEY : need(hostKey(n.host), `node ${n.name}`);
    g.addEdgeWithKey(`hostmode:${n.name}`, containerKey(n.name), target, { kind: 'host-mode', label: 'network_mode host' });
  }
  for (const net of networks) {
    if (net.gateway === null) continue;
    const len = net.subnet !== null ? parseCidr(net.subnet)?.prefixLen : undefined;
    const address = len !== undefined ? `${net.gateway}/${len}` : net.gateway;
    g.addEdgeWithKey(`gw:${net.name}`, networkKey(net.name), MACHINE_KEY, {
      kind: 'gateway',
      label: lines(address, net.nat && 'NAT'),
      address,
      nat: net.nat,
    });
  }
  for (const net of networks) {
    if (net.driver !== 'overlay') continue;
    for (const h of [...net.hosts].sort()) {
      g.addEdgeWithKey(`overlay:${net.name}/${h}`, networkKey(net.name), need(hostKey(h), `overlay network ${net.name}`), {
        kind: 'overlay',
        label: net.vni !== null ? `vxlan ${net.vni}` : 'vxlan',
        vni: net.vni,
      });
    }
  }
  const hostByName = new Map(hosts.map((h) => [h.name, h]));
  for (const net of networks) {
    if (net.driver !== 'overlay') continue;
    const spanned = [...net.hosts].sort();
    for (let i = 0; i < spanned.length; i++) {
      for (let j = i + 1; j < spanned.length; j++) {
        const a = hostByName.get(spanned[i]), b = hostByName.get(spanned[j]);
        if (!a || !b) throw new Error(`lab graph: overlay network ${net.name} refers to unknown host:${!a ? spanned[i] : spanned[j]}`);
        g.addEdgeWithKey(`tunnel:${net.name}/${a.name}/${b.name}`, hostKey(a.name), hostKey(b.name), {
          kind: 'tunnel',
          label: lines(`${net.name} vxlan${net.vni !== null ? ` ${net.vni}` : ''}`, `${a.address} -- ${b.address}`),
          network: net.name,
          vni: net.vni,
          port: net.port,
          addressA: a.address,
          addressB: b.address,
        });
      }
    }
  }
  for (const h of hosts) {
    const ipv4 = `${h.address}/${h.prefixLen}`;
    g.addEdgeWithKey(`underlay:${h.name}`, hostKey(h.name), MACHINE_KEY, {
      kind: 'underlay',
      label: lines(h.underlayIface, ipv4),
      iface: h.underlayIface,
      ipv4,
    });
  }
  return g;
}

// ---------------------------------------------------------------- renderings

/** A DOT double-quoted string; '\n' in `s` becomes a DOT line break. */
function dq(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\r?\n/g, '\\n')}"`;
}

const DOT_SHAPE: Record<LabGraphNodeAttributes['kind'], string> = {
  container: 'shape=box, style=rounded',
  network: 'shape=ellipse',
  host: 'shape=box3d',
  machine: 'shape=house',
};

/** Graphviz `graph` (undirected) source of the lab; render with `dot -Tsvg`. */
export function toDot(lab: Lab): string {
  const g = buildLabGraph(lab);
  const out: string[] = [
    `graph ${dq(lab.name)} {`,
    '  graph [rankdir=LR, fontname="Helvetica"];',
    '  node [fontname="Helvetica", fontsize=10];',
    '  edge [fontname="Helvetica", fontsize=9];',
  ];
  g.forEachNode((key, a) => {
    out.push(`  ${dq(key)} [label=${dq(a.label)}, ${DOT_SHAPE[a.kind]}];`);
  });
  g.forEachEdge((_key, a, source, target) => {
    const attrs: string[] = [];
    if (a.kind === 'link') {
      attrs.push(`taillabel=${dq(lines(a.ifaceA, a.ipv4A))}`, `headlabel=${dq(lines(a.ifaceB, a.ipv4B))}`);
      if (!a.up) attrs.push('label="down"');
    } else {
      attrs.push(`label=${dq(a.label)}`);
    }
    if ((a.kind === 'attachment' || a.kind === 'link') && !a.up) attrs.push('style=dashed');
    if (a.kind === 'overlay' || a.kind === 'host-mode') attrs.push('style=dotted');
    if (a.kind === 'tunnel') attrs.push('style=dashed');
    out.push(`  ${dq(source)} -- ${dq(target)} [${attrs.join(', ')}];`);
  });
  out.push('}');
  return out.join('\n') + '\n';
}

/** Mermaid label text (quoted form): '\n' becomes <br/>, quotes and angle brackets entities. */
function mq(s: string): string {
  return `"${s.replace(/"/g, '#quot;').replace(/</g, '#lt;').replace(/>/g, '#gt;').replace(/\r?\n/g, '<br/>')}"`;
}

const MERMAID_SHAPE: Record<LabGraphNodeAttributes['kind'], [string, string]> = {
  container: ['[', ']'],
  network: ['([', '])'],
  host: ['[[', ']]'],
  machine: ['{{', '}}'],
};

/** Mermaid `graph LR` flowchart of the lab. Ids are the graph keys with every character
 *  outside [A-Za-z0-9_] replaced by '_' (and a numeric suffix on the rare collision). */
export function toMermaid(lab: Lab): string {
  const g = buildLabGraph(lab);
  const ids = new Map<string, string>();
  const usedIds = new Set<string>();
  g.forEachNode((key) => {
    const base = key.replace(/[^A-Za-z0-9_]/g, '_');
    let id = base;
    for (let i = 2; usedIds.has(id); i++) id = `${base}_${i}`;
    usedIds.add(id);
    ids.set(key, id);
  });
  const out: string[] = ['graph LR'];
  g.forEachNode((key, a) => {
    const [open, close] = MERMAID_SHAPE[a.kind];
    out.push(`  ${ids.get(key)}${open}${mq(a.label)}${close}`);
  });
  g.forEachEdge((_key, a, source, target) => {
    const dashed = ((a.kind === 'attachment' || a.kind === 'link') && !a.up) || a.kind === 'overlay' || a.kind === 'host-mode' || a.kind === 'tunnel';
    out.push(`  ${ids.get(source)} ${dashed ? '-.-' : '---'}|${mq(a.label)}| ${ids.get(target)}`);
  });
  return out.join('\n') + '\n';
}

/** graphology `export()` of the lab graph ({ options, attributes, nodes, edges }). */
export function toGraphJson(lab: Lab): LabGraphJson {
  return buildLabGraph(lab).export();
}

/** toGraphJson as pretty-printed JSON text, newline-terminated. */
export function toJson(lab: Lab): string {
  return JSON.stringify(toGraphJson(lab), null, 2) + '\n';
}
