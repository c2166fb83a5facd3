// Deterministic fuzzing of the topology front door. Every document fed to loadTopologyText
// must give either a Lab (then planning, graph rendering and JSON serialisation work on it) or
// a non-empty list of located diagnostics, and never throw. Inputs come from a seeded PRNG
// (no Math.random), so a failure is reproduced by running the test again; the report prints
// the generator, the index and the input.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { loadTopologyText, type LoadResult } from '../../topology/load.js';
import { buildPlan, formatPlan } from '../../controller/plan.js';
import { toDot, toJson, toMermaid } from '../../topology/graph.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const LAB_TEXTS = fs.readdirSync(path.join(ROOT, 'labs')).filter((f) => f.endsWith('.yml')).sort()
  .map((f) => fs.readFileSync(path.join(ROOT, 'labs', f), 'utf8'));

// ---------------------------------------------------------------- seeded PRNG

class Rng {
  private s: number;
  constructor(seed: number) { this.s = seed >>> 0; }
  /** mulberry32: uniform in [0, 1). */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(lo: number, hi: number): number { return lo + Math.floor(this.next() * (hi - lo + 1)); }
  bool(p = 0.5): boolean { return this.next() < p; }
  pick<T>(xs: readonly T[]): T { return xs[Math.floor(this.next() * xs.length)]; }
  some<T>(xs: readonly T[], max = xs.length): T[] { return xs.length ? Array.from({ length: this.int(0, max) }, () => this.pick(xs)) : []; }
}

// ---------------------------------------------------------------- vocabularies

const KEYS = [
  'name', 'ipam', 'pool', 'prefix', 'underlay', 'subnet', 'hosts', 'address', 'networks', 'nodes', 'links', 'checks',
  'driver', 'gateway', 'ipv6', 'mtu', 'vni', 'port', 'image', 'host', 'network_mode', 'command', 'environment', 'ports',
  'volumes', 'working_dir', 'user', 'privileged', 'forwarding', 'resources', 'cpu_shares', 'cpus', 'memory', 'pids',
  'routes', 'dst', 'via', 'dev', 'endpoints', 'ipv4', 'interface', 'mac', 'state', 'ping', 'tcp', 'http', 'dns', 'from',
  'to', 'url', 'count', 'timeout', 'expect', 'status', 'contains',
  '__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '<<', '?', '-', '""', "''", '0', '1e3',
];
const NAMES = ['a', 'b', 'c', 'web', 'r1', 'r2', 'h1', 'h2', 'lan', 'wan', 'ov', 'Web', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', '__proto__', 'x'.repeat(63), 'n-1', 'n_2', '0'];
const IFACES = ['eth0', 'eth1', 'eth2', 'lo', 'p0', 'x'.repeat(16), 'a b', 'é', '.', '..', 'eth0.10', ''];
const CIDRS = ['10.0.0.0/24', '10.0.0.0/30', '10.0.0.0/31', '10.0.0.0/32', '10.0.0.0/16', '10.0.1.0/24', '10.128.0.0/24', '10.0.0.5/24', '0.0.0.0/0', '10.0.0.0/33', '300.0.0.0/8', 'default', '10.0.0.0', '10.0.12.0/30'];
const ADDRS = ['10.0.0.1', '10.0.0.2', '10.0.0.10', '10.0.0.255', '10.0.0.0', '10.0.1.1', '10.128.0.1', '10.128.1.5', '127.0.0.1', '0.0.0.0', '255.255.255.255', '01.2.3.4', '10.0.0.300', 'host'];
const UNICODE = ['é', 'ß', '日本', '🙂', '\u200b', '\u202e', 'ﬁ', 'a\u0301', '\ufeff', '𝔘'];

/** A random YAML scalar or small collection, as source text (possibly broken on purpose). */
function scalarText(r: Rng, depth = 0): string {
  switch (r.int(0, 27)) {
    case 0: return String(r.int(-5, 70000));
    case 1: return r.pick(['1e308', '-1e308', '1e-320', '.inf', '-.inf', '.nan', '0x1F', '0o17', '1_000', '3.14', '-0', '00012']);
    case 2: return r.pick(['null', '~', '', 'Null', 'NULL']);
    case 3: return r.pick(['true', 'false', 'yes', 'no', 'on', 'off', 'True']);
    case 4: return 'x'.repeat(r.pick([1, 64, 1000, 20000]));
    case 5: return JSON.stringify(Array.from({ length: r.int(1, 8) }, () => r.pick(UNICODE)).join(''));
    case 6: return Array.from({ length: r.int(1, 6) }, () => r.pick(UNICODE)).join('');
    case 7: return JSON.stringify(String.fromCharCode(...Array.from({ length: r.int(1, 5) }, () => r.int(0, 31))));
    case 8: return String.fromCharCode(...Array.from({ length: r.int(1, 3) }, () => r.pick([1, 7, 8, 11, 12, 27, 127, 0x85, 0xa0])));
    case 9: return `*${r.pick(['a', 'x', 'anchor', 'missing'])}`;
    case 10: return `&${r.pick(['a', 'x', 'anchor'])} ${depth < 3 ? scalarText(r, depth + 1) : '1'}`;
    case 11: return '[' + Array.from({ length: r.int(0, 4) }, () => (depth < 3 ? scalarText(r, depth + 1) : '1')).join(', ') + ']';
    case 12: return '{' + Array.from({ length: r.int(0, 3) }, () => `${r.pick(KEYS)}: ${depth < 3 ? scalarText(r, depth + 1) : '1'}`).join(', ') + '}';
    case 13: return r.pick(CIDRS);
    case 14: return r.pick(ADDRS);
    case 15: return r.pick(NAMES);
    case 16: return `"${r.pick(NAMES)}:${r.pick(IFACES)}"`;
    case 17: return r.pick(['!!binary aGVsbG8=', '!!str 1', '!!int x', '!!map {}', '!custom 1', '!!set {a}', '!!omap [a: 1]', '!!timestamp 2001-12-14']);
    case 18: return r.pick(['"unterminated', "'also", '[1, 2', '{a: 1', ']', '}', '|', '>', '|-\n  block', '- - -', ': :', '? complex', '%', '@x', '`x`']);
    case 19: return r.pick(['"8080:80"', '"127.0.0.1:53:53/udp"', '"80"', '"1-2:3"', '"./www:/www:ro"', '"data:/d"', '"~/x:/y"', '64m', '"0"']);
    case 20: return r.pick(['http://web/', '"http://Web:99999/"', 'https://x/', '"http://[::1]/"', '"http://10.0.0.1:80/p?q#f"', 'ftp://a']);
    case 21: return r.pick(['bridge', 'host', 'none', 'overlay', 'brige', 'reach', 'fail', 'up', 'down', 'default']);
    case 22: return '\t' + scalarText(r, depth + 1);
    case 23: return '[' .repeat(r.int(1, 300)) + ']'.repeat(r.int(0, 300));
    case 24: return '{a: '.repeat(r.int(1, 200)) + '1' + '}'.repeat(r.int(0, 200));
    case 25: return `<<: *${r.pick(['a', 'x'])}`;
    case 26: return r.pick(['__proto__', 'constructor', '{__proto__: {polluted: 1}}', '{constructor: {prototype: {x: 1}}}']);
    default: return `"${'\\u'}${r.int(0, 0xffff).toString(16).padStart(4, '0')}"`;
  }
}

// ---------------------------------------------------------------- generators

/** Random lines that look like YAML: keys, list items, scalars, directives, anchors. Half of
 *  the documents keep a consistent indentation and well-formed scalars, so they get past the
 *  parser and into the schema and the resolver. */
function yamlish(r: Rng): string {
  const clean = r.bool(0.5);
  const scalar = () => (clean ? r.pick<() => string>([() => r.pick(NAMES), () => r.pick(CIDRS), () => r.pick(ADDRS), () => String(r.int(0, 70000)), () => r.pick(['true', 'null', '[]', '{}', 'bridge', 'overlay', 'none'])])() : scalarText(r));
  const lines: string[] = [];
  if (r.bool(0.8)) lines.push(`name: ${r.bool(0.8) ? r.pick(['t', 'lab', 'a-b']) : scalarText(r)}`);
  let depth = 0;
  const n = r.int(0, 40);
  for (let i = 0; i < n; i++) {
    const ind = clean ? ' '.repeat(2 * depth) : ' '.repeat(r.pick([0, 0, 2, 2, 4, 4, 6, 8, 1, 3]));
    const open = () => { if (clean) depth++; return ''; };
    switch (r.int(0, clean ? 4 : 9)) {
      case 0: case 1: lines.push(`${ind}${r.pick(KEYS)}:${r.bool(0.35) ? open() : ' ' + scalar()}`); break;
      case 2: lines.push(`${ind}${r.pick(NAMES)}:${r.bool(0.4) ? open() : ' ' + scalar()}`); break;
      case 3: lines.push(`${ind}- ${r.bool() ? scalar() : `${r.pick(KEYS)}: ${scalar()}`}`); break;
      case 4: if (clean) { depth = r.int(0, depth); i--; } else lines.push(r.pick(['---', '...', '%YAML 1.2', '%TAG ! tag:x,2000:', '# comment', '', '\t', '  # c'])); break;
      case 5: lines.push(`${ind}${r.pick(KEYS)}: &${r.pick(['a', 'x'])} ${scalarText(r)}`); break;
      case 6: lines.push(`${ind}<<: *${r.pick(['a', 'x'])}`); break;
      case 7: lines.push(`${ind}${scalarText(r)}`); break;
      case 8: lines.push(r.pick(['---', '...', '%YAML 1.2', '# comment', '', '\t'])); break;
      default: lines.push(`${ind}? ${r.pick(KEYS)}\n${ind}: ${scalarText(r)}`);
    }
  }
  return lines.join(r.bool(0.95) ? '\n' : '\r\n') + (r.bool(0.8) ? '\n' : '');
}

/** A value for a structured topology: mostly plausible, sometimes of the wrong type. */
function oddValue(r: Rng): unknown {
  return r.pick<() => unknown>([
    () => null, () => r.int(-3, 70000), () => 1e308, () => r.bool(), () => [], () => ({}), () => 'x'.repeat(5000),
    () => r.pick(UNICODE), () => ['a', 1, null], () => new Map<string, unknown>([['__proto__', 1], ['constructor', { prototype: 1 }]]),
  ])();
}

function maybe<T>(r: Rng, p: number, f: () => T): T | undefined {
  return r.bool(p) ? f() : undefined;
}

/** Puts defined entries into a Map (a Map keeps keys like __proto__ as plain keys for YAML). */
function map(entries: [string, unknown][]): Map<string, unknown> {
  const m = new Map<string, unknown>();
  for (const [k, v] of entries) if (v !== undefined) m.set(k, v);
  return m;
}

/** A schema-shaped topology with random references, so the resolver's semantic checks run. */
function structured(r: Rng): string {
  const odd = r.bool(0.15);
  const v = <T>(f: () => T): unknown => (odd && r.bool(0.1) ? oddValue(r) : f());
  const hostNames = r.bool(0.35) ? [...new Set(r.some(['h1', 'h2', 'h3', 'constructor'], 3))] : [];
  const netNames = [...new Set(r.some(['lan', 'wan', 'ov', 'none0', 'host0', 'toString', 'n-1'], 4))];
  const nodeNames = [...new Set(r.some(NAMES.slice(0, 16), 6))];
  const drivers = new Map(netNames.map((n) => [n, n === 'ov' ? 'overlay' : n === 'none0' ? 'none' : n === 'host0' ? 'host' : r.pick(['bridge', 'bridge', 'overlay', 'host'])]));
  const ifaceRef = () => `${r.bool(0.9) ? r.pick(nodeNames.length ? nodeNames : ['a']) : r.pick(NAMES)}:${r.pick(IFACES.slice(0, 5))}`;
  const doc = map([
    ['name', v(() => (r.bool(0.9) ? r.pick(['t', 'fuzz', 'a-1']) : r.pick(['', 'Bad', 'x'.repeat(33), '1a'])))],
    ['ipam', maybe(r, 0.2, () => map([['pool', maybe(r, 0.8, () => v(() => r.pick(CIDRS)))], ['prefix', maybe(r, 0.5, () => v(() => r.int(6, 32)))]]))],
    ['underlay', maybe(r, 0.1, () => map([['subnet', v(() => r.pick(CIDRS))]]))],
    ['hosts', hostNames.length ? map(hostNames.map((h) => [h, r.bool(0.6) ? null : map([['address', maybe(r, 0.7, () => v(() => r.pick(ADDRS)))]])])) : undefined],
    ['networks', netNames.length || r.bool(0.2) ? map(netNames.map((n) => [n, r.bool(0.3) ? null : map([
      ['driver', maybe(r, 0.8, () => v(() => drivers.get(n)))],
      ['subnet', maybe(r, 0.5, () => v(() => r.pick(CIDRS)))],
      ['gateway', maybe(r, 0.3, () => v(() => (r.bool() ? r.bool() : r.pick(ADDRS))))],
      ['ipv6', maybe(r, 0.1, () => v(() => r.bool()))],
      ['mtu', maybe(r, 0.1, () => v(() => r.int(60, 9000)))],
      ['vni', maybe(r, 0.15, () => v(() => r.pick([1, 4096, 4097, 5000, 16777215])))],
      ['port', maybe(r, 0.05, () => v(() => r.int(1, 65535)))],
    ])])) : undefined],
    ['nodes', nodeNames.length || r.bool(0.2) ? map(nodeNames.map((n) => [n, r.bool(0.15) ? null : map([
      ['image', maybe(r, 0.2, () => v(() => r.pick(['busybox', 'host', 'alpine:3', ''])))],
      ['host', maybe(r, hostNames.length ? 0.7 : 0.05, () => v(() => r.pick([...hostNames, 'h9'])))],
      ['networks', maybe(r, 0.8, () => (r.bool(0.6)
        ? v(() => r.some([...netNames, 'missing'], 3))
        : map([...new Set(r.some([...netNames, 'missing'], 3))].map((x) => [x, r.bool(0.4) ? null : map([
          ['ipv4', maybe(r, 0.5, () => v(() => r.pick(ADDRS)))],
          ['interface', maybe(r, 0.3, () => v(() => r.pick(IFACES)))],
          ['mac', maybe(r, 0.1, () => v(() => r.pick(['02:00:00:00:00:01', '02:00:00:00:00:02', 'zz'])))],
        ])]))))],
      ['network_mode', maybe(r, 0.1, () => v(() => r.pick(['none', 'host'])))],
      ['command', maybe(r, 0.2, () => v(() => (r.bool() ? r.pick(['httpd -f -p 80', 'sh -c "echo hi"', '"unbalanced', '']) : ['sh', '-c', 'x'])))],
      ['environment', maybe(r, 0.1, () => v(() => (r.bool() ? map([['A', 1], ['1B', 'x'], ['C', true]]) : ['A=1', 'B=2'])))],
      ['ports', maybe(r, 0.2, () => v(() => r.some(['8080:80', '8080:80', '127.0.0.1:8080:80', '53:53/udp', '80', 8080, '0:1'], 3)))],
      ['volumes', maybe(r, 0.15, () => v(() => r.some(['./www:/www:ro', 'data:/d', '/a:rel', '~/x:/y', './a:/b:zz'], 2)))],
      ['working_dir', maybe(r, 0.05, () => v(() => r.pick(['/w', 'w'])))],
      ['forwarding', maybe(r, 0.2, () => v(() => r.bool()))],
      ['resources', maybe(r, 0.05, () => map([['memory', v(() => r.pick(['64m', '0', 1024, '1.5g']))], ['cpus', v(() => r.pick([0.5, 2]))]]))],
      ['routes', maybe(r, 0.25, () => v(() => Array.from({ length: r.int(0, 3) }, () => map([
        ['dst', v(() => r.pick(CIDRS))], ['via', maybe(r, 0.7, () => v(() => r.pick(ADDRS)))], ['dev', maybe(r, 0.3, () => v(() => r.pick(IFACES)))],
      ]))))],
    ])])) : undefined],
    ['links', maybe(r, 0.35, () => v(() => Array.from({ length: r.int(0, 4) }, () => map([
      ['endpoints', v(() => [ifaceRef(), ifaceRef()])],
      ['ipv4', maybe(r, 0.5, () => v(() => r.pick([['10.0.12.1/30', '10.0.12.2/30'], ['10.0.12.1/30', '10.0.13.2/30'], ['10.0.0.1/31', '10.0.0.0/31'], ['10.0.0.1/24', '10.0.0.1/24'], ['10.0.12.0/30', '10.0.12.3/30']])))],
      ['mtu', maybe(r, 0.1, () => v(() => r.int(68, 9000)))],
      ['state', maybe(r, 0.2, () => v(() => r.pick(['up', 'down'])))],
    ]))))],
    ['checks', maybe(r, 0.4, () => v(() => Array.from({ length: r.int(0, 5) }, () => {
      const who = () => (nodeNames.length && r.bool(0.85) ? r.pick(nodeNames) : r.pick(NAMES));
      const kind = r.pick(['ping', 'tcp', 'http', 'dns']);
      const body = map([
        ['from', who()],
        ['to', kind === 'ping' || kind === 'tcp' ? (r.bool(0.8) ? who() : r.pick(ADDRS)) : undefined],
        ['port', kind === 'tcp' ? r.int(1, 65535) : undefined],
        ['url', kind === 'http' ? (r.bool(0.8) ? `http://${who()}${r.bool() ? ':8080' : ''}/` : r.pick(['https://x/', 'nope', 'http://10.0.0.1/'])) : undefined],
        ['name', kind === 'dns' ? who() : undefined],
        ['address', kind === 'dns' ? maybe(r, 0.3, () => r.pick(ADDRS)) : undefined],
        ['timeout', maybe(r, 0.1, () => r.pick([0.5, 1e300, 2]))],
        ['expect', maybe(r, 0.3, () => (kind === 'http' && r.bool() ? map([['status', 200], ['contains', 'hi']]) : r.pick(['reach', 'fail'])))],
      ]);
      return map([[kind, body]]);
    })))],
  ]);
  return stringify(doc, { aliasDuplicateObjects: false, lineWidth: 0 });
}

/** A mostly valid lab of random shape: distinct subnets, existing references, unique
 *  interface names, sometimes simulated hosts and overlays, so resolution succeeds often and
 *  planning and rendering run on many different Labs. */
function sane(r: Rng): string {
  const hosts = r.bool(0.3) ? ['h1', 'h2', 'h3'].slice(0, r.int(1, 3)) : [];
  const nets: [string, Map<string, unknown>][] = [];
  const netCount = r.int(0, 4);
  for (let i = 0; i < netCount; i++) {
    const overlay = hosts.length > 0 && r.bool(0.5);
    nets.push([`n${i}`, map([
      ['driver', overlay ? 'overlay' : r.pick([undefined, 'bridge'])],
      ['subnet', r.bool(0.5) ? `10.${i + 1}.0.0/${r.pick([24, 25, 28])}` : undefined],
      ['gateway', overlay ? undefined : r.pick([undefined, true, false])],
      ['ipv6', r.bool(0.1) ? true : undefined],
      ['mtu', r.bool(0.1) ? r.int(1280, 9000) : undefined],
    ])]);
  }
  const bridgeNets = nets.filter(([, n]) => n.get('driver') !== 'overlay').map(([k]) => k);
  const overlayNets = nets.filter(([, n]) => n.get('driver') === 'overlay').map(([k]) => k);
  const nodeCount = r.int(1, 8);
  const nodes: [string, Map<string, unknown> | null][] = [];
  const used = new Map<string, number>();
  const ports = new Set<number>();
  for (let i = 0; i < nodeCount; i++) {
    const name = r.pick(['a', 'web', 'r', 'Node', 'x'.repeat(40)]) + i;
    const onHost = hosts.length > 0 && overlayNets.length > 0 && r.bool(0.6);
    const mode = !onHost && r.bool(0.15) ? r.pick(['none', 'host']) : undefined;
    const myNets = mode ? [] : [...new Set(r.some(onHost ? overlayNets : bridgeNets, 3))];
    const p = !mode && !onHost && r.bool(0.2) ? 8000 + r.int(0, 50) : null;
    const pub = p !== null && !ports.has(p) && myNets.length > 0 ? (ports.add(p), [`${p}:80`]) : undefined;
    nodes.push([name, r.bool(0.1) && !onHost ? null : map([
      ['host', onHost ? r.pick(hosts) : undefined],
      ['network_mode', mode],
      ['networks', myNets.length ? (r.bool() ? myNets : map(myNets.map((n) => [n, r.bool() ? null : map([['interface', r.bool(0.3) ? `if${n}` : undefined]])]))) : undefined],
      ['command', r.bool(0.3) ? r.pick(['httpd -f -p 80', 'sleep 1000', ['sh', '-c', 'echo hi']]) : undefined],
      ['forwarding', mode ? undefined : r.bool(0.3) || undefined],
      ['ports', pub],
      ['environment', r.bool(0.1) ? map([['A', 1]]) : undefined],
    ])]);
    used.set(name, 0);
  }
  const local = nodes.filter(([, n]) => !n || (!n.get('host') && !n.get('network_mode'))).map(([k]) => k);
  const links: Map<string, unknown>[] = [];
  if (local.length >= 2) {
    for (let i = 0, c = r.int(0, 4); i < c; i++) {
      const a = r.pick(local);
      const b = r.pick(local.filter((x) => x !== a));
      const ia = used.get(a)!, ib = used.get(b)!;
      used.set(a, ia + 1); used.set(b, ib + 1);
      links.push(map([
        ['endpoints', [`${a}:p${ia}`, `${b}:p${ib}`]],
        ['ipv4', r.bool(0.6) ? [`172.16.${i}.1/30`, `172.16.${i}.2/30`] : undefined],
        ['state', r.bool(0.2) ? 'down' : undefined],
      ]));
    }
  }
  const names = nodes.map(([k]) => k);
  const checks = Array.from({ length: r.int(0, 4) }, () => {
    const kind = r.pick(['ping', 'tcp', 'http', 'dns']);
    const from = r.pick(names), to = r.pick(names);
    return map([[kind, map([
      ['from', from],
      ['to', kind === 'ping' || kind === 'tcp' ? to : undefined],
      ['port', kind === 'tcp' ? 80 : undefined],
      ['url', kind === 'http' ? `http://${to}/` : undefined],
      ['name', kind === 'dns' ? to : undefined],
      ['expect', r.bool(0.3) ? r.pick(['reach', 'fail']) : undefined],
    ])]]);
  });
  return stringify(map([
    ['name', r.pick(['s', 'sane-lab', 'z'.repeat(32)])],
    ['hosts', hosts.length ? map(hosts.map((h) => [h, null])) : undefined],
    ['networks', nets.length ? map(nets) : undefined],
    ['nodes', map(nodes)],
    ['links', links.length ? links : undefined],
    ['checks', checks.length ? checks : undefined],
  ]), { lineWidth: 0 });
}

/** A shipped lab with 1-4 line-level or character-level mutations. */
function mutated(r: Rng): string {
  let lines = r.pick(LAB_TEXTS).split('\n');
  const rounds = r.int(1, 4);
  for (let k = 0; k < rounds; k++) {
    const i = r.int(0, Math.max(0, lines.length - 1));
    switch (r.int(0, 13)) {
      case 0: lines.splice(i, 1); break; // delete
      case 1: lines.splice(i, 0, lines[i] ?? ''); break; // duplicate
      case 2: { const j = r.int(0, lines.length - 1); [lines[i], lines[j]] = [lines[j], lines[i]]; break; } // swap
      case 3: lines[i] = ' '.repeat(r.int(1, 4)) + (lines[i] ?? ''); break; // indent more
      case 4: lines[i] = (lines[i] ?? '').replace(/^ {1,4}/, ''); break; // indent less
      case 5: lines[i] = (lines[i] ?? '').replace(/^ +/, (s) => '\t'.repeat(Math.max(1, s.length >> 1))); break; // tabs
      case 6: { // replace a block value
        lines[i] = (lines[i] ?? '').replace(/: .*$/, `: ${scalarText(r)}`);
        break;
      }
      case 7: { // replace a value inside a flow collection
        const l = lines[i] ?? '';
        const spots = [...l.matchAll(/(?<=[:,[{] )[^,\]}{[]+/g)];
        if (spots.length) {
          const m = r.pick(spots);
          lines[i] = l.slice(0, m.index) + scalarText(r) + l.slice(m.index! + m[0].length);
        }
        break;
      }
      case 8: lines.splice(i, 0, `${' '.repeat(r.pick([0, 2, 4]))}${r.pick(['<<: *a', 'x: &a {driver: overlay}', '__proto__: {polluted: true}', 'constructor: {}', `${r.pick(KEYS)}: ${scalarText(r)}`])}`); break;
      case 9: { // rename a key
        lines[i] = (lines[i] ?? '').replace(/^(\s*)([A-Za-z_][\w-]*):/, (_, s: string) => `${s}${r.pick(KEYS.concat(NAMES))}:`);
        break;
      }
      case 10: { // insert a random character
        const l = lines[i] ?? '';
        const at = r.int(0, l.length);
        lines[i] = l.slice(0, at) + r.pick([':', '-', '[', ']', '{', '}', '"', "'", '#', '&', '*', '!', '|', '>', '%', '@', '`', '\t', '\0', '\u2028', '\r']) + l.slice(at);
        break;
      }
      case 11: lines = lines.slice(0, i); break; // truncate
      case 12: { // deep nesting under a key
        const d = r.int(5, 400);
        lines.splice(i, 0, `nodes: ${'{x: '.repeat(d)}1${'}'.repeat(d)}`);
        break;
      }
      default: { // a line's worth of the document copied elsewhere, with different indentation
        const j = r.int(0, lines.length - 1);
        lines.splice(j, 0, ' '.repeat(r.int(0, 6)) + (lines[i] ?? '').trimStart());
      }
    }
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------- the property

/** null when the property holds; `valid` counts the documents that resolved to a lab. */
function check(text: string, file: string, counts: { valid: number }): string | null {
  let r: LoadResult;
  try {
    r = loadTopologyText(text, file);
  } catch (e) {
    return `threw: ${(e as Error).stack?.split('\n').slice(0, 4).join(' | ') ?? String(e)}`;
  }
  if (!r || !Array.isArray(r.diagnostics)) return 'no diagnostics array';
  if (r.lab) {
    if (r.diagnostics.length > 0) return 'a lab together with diagnostics';
    try {
      const plan = buildPlan(r.lab);
      JSON.stringify(plan);
      JSON.stringify(r.lab);
      formatPlan(plan);
      toDot(r.lab); toMermaid(r.lab); toJson(r.lab);
    } catch (e) {
      return `valid lab, but planning/rendering threw: ${(e as Error).stack?.split('\n').slice(0, 4).join(' | ')}`;
    }
    counts.valid++;
    return null;
  }
  if (r.diagnostics.length === 0) return 'no lab and no diagnostics';
  for (const d of r.diagnostics) {
    if (!Number.isInteger(d.line) || d.line < 1 || !Number.isInteger(d.col) || d.col < 1) return `bad position ${d.line}:${d.col} (${d.message})`;
    if (typeof d.message !== 'string' || d.message.trim() === '') return 'empty message';
    if (d.file !== file) return `diagnostic for file ${d.file}`;
  }
  return null;
}

/** name, generator, documents, minimum that must resolve to a lab (well below what each seed gives). */
const GENERATORS: [string, (r: Rng) => string, number, number][] = [
  ['yamlish', yamlish, 1500, 10],
  ['structured', structured, 1800, 30],
  ['sane', sane, 800, 500],
  ['mutated', mutated, 2200, 150],
];

describe('fuzz: loadTopologyText never throws and always explains itself', () => {
  // Each generator's test stands alone (its own seed, its own counters): any one of them can run
  // by itself (-t) or in any order. No wall-clock bound: speed is the bench's business, and a
  // bound here would fail on a busy machine while proving nothing about the loader.
  GENERATORS.forEach(([name, gen, count, minValid], g) => {
    it(`${name}: ${count} documents, at least ${minValid} of them valid labs (planned and rendered too)`, () => {
      const r = new Rng(0x5eed + g * 7919);
      const failures: string[] = [];
      const counts = { valid: 0 };
      let fed = 0;
      for (let i = 0; i < count; i++) {
        const text = gen(r);
        const err = check(text, `${name}-${i}.yml`, counts);
        fed++;
        if (err) {
          if (failures.length < 5) failures.push(`${name} #${i}: ${err}\n----- input -----\n${text.length > 1500 ? text.slice(0, 1500) + '…' : text}\n-----`);
          else if (failures.length === 5) failures.push('(more failures not shown)');
        } else if (i % 10 === 0) {
          // Same input, same answer.
          const a = loadTopologyText(text, 'same.yml');
          const b = loadTopologyText(text, 'same.yml');
          if (JSON.stringify(a) !== JSON.stringify(b)) failures.push(`${name} #${i}: two loads differ\n${text}`);
        }
      }
      expect(failures.join('\n\n')).toBe('');
      expect(fed).toBe(count);
      // Enough of them resolve for planning and rendering to be exercised too.
      expect(counts.valid, `${name}: documents that resolved to a lab`).toBeGreaterThanOrEqual(minValid);
    });
  });

  it('the generators together feed at least 5,000 documents', () => {
    expect(GENERATORS.reduce((n, [, , count]) => n + count, 0)).toBeGreaterThanOrEqual(5000);
  });

  it('the Object prototype is untouched afterwards', () => {
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted')).toBe(false);
  });
});
