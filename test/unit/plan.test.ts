// The plan (`netlab plan`) and the read-only CLI commands (validate, plan, graph): step order
// invariants that `up` relies on, kernel name limits, byte-identical output across runs, exit
// codes and output formats.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadTopologyFile, loadTopologyText } from '../../topology/load.js';
import { buildPlan, type Plan, type PlanStep } from '../../controller/plan.js';
import { main } from '../../cli/main.js';
import { cidrContains } from '../../topology/ipam.js';
import { IFNAMSIZ_MAX } from '../../topology/names.js';
import type { Lab } from '../../topology/types.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** Paths as a user types them from the repository root (vitest runs there). */
const rel = (p: string) => path.relative(process.cwd(), path.join(ROOT, p)) || '.';
const PLANNED = ['bridge.yml', 'routed.yml', 'overlay.yml'];
const ALL_LABS = fs.readdirSync(path.join(ROOT, 'labs')).filter((f) => f.endsWith('.yml')).sort();

function loadLab(file: string): Lab {
  const r = loadTopologyFile(path.join(ROOT, 'labs', file));
  if (!r.lab) throw new Error(`${file} is not valid: ${JSON.stringify(r.diagnostics)}`);
  return r.lab;
}

/** The plan with container processes, whatever the default is while the runtime is unfinished. */
function fullPlan(lab: Lab): Plan {
  return buildPlan(lab, { containers: true });
}

type Key = string;
const at = (ns: string | null, name: string): Key => `${ns ?? '(root)'}/${name}`;

/** Names of the kernel objects a step creates, as netns/name keys. */
function created(s: PlanStep): Key[] {
  switch (s.op) {
    case 'bridge.add': return [at(s.netns, s.name)];
    case 'veth.add': return [at(s.netns, s.name), at(s.peerNetns, s.peerName)];
    case 'vxlan.add': return [at(s.netns, s.name)];
    default: return [];
  }
}

/** Every interface name appearing in a step. */
function ifaceNames(s: PlanStep): string[] {
  switch (s.op) {
    case 'bridge.add': return [s.name];
    case 'veth.add': return [s.name, s.peerName, ...(s.master ? [s.master] : [])];
    case 'vxlan.add': return [s.name, s.dev, s.master];
    case 'addr.add': case 'link.up': case 'fdb.append': case 'neigh.add': return [s.dev];
    case 'route.add': return s.dev ? [s.dev] : [];
    default: return [];
  }
}

/** Checks the order invariants `up` relies on; returns the violations. */
function orderViolations(plan: Plan): string[] {
  const bad: string[] = [];
  const netns = new Set<string>();
  const devs = new Set<Key>();
  const addrs = new Map<string, string[]>(); // netns -> CIDRs added so far
  const routed = new Set<string>(); // netns that already got a route
  let firstContainer = -1;
  plan.steps.forEach((s, i) => {
    const where = `step ${i + 1} ${s.op}`;
    const needNs = (ns: string | null) => { if (ns !== null && !netns.has(ns)) bad.push(`${where}: netns ${ns} used before netns.add`); };
    const needDev = (ns: string | null, dev: string) => {
      if (dev === 'lo') return;
      if (!devs.has(at(ns, dev))) bad.push(`${where}: ${dev} in ${ns ?? 'root'} used before it is created`);
    };
    if (s.op === 'netns.add') {
      if (netns.has(s.netns)) bad.push(`${where}: netns ${s.netns} added twice`);
      netns.add(s.netns);
    } else if (s.op === 'nft.apply') {
      if (firstContainer >= 0) bad.push(`${where}: nft table after the first container`);
    } else if (s.op === 'container.start') {
      if (firstContainer < 0) firstContainer = i;
      needNs(s.netns);
    } else {
      needNs(s.netns);
    }
    if (s.op === 'veth.add') {
      needNs(s.peerNetns);
      if (s.master) needDev(s.netns, s.master); // bridge before its ports
    }
    if (s.op === 'vxlan.add') { needDev(s.netns, s.master); needDev(s.netns, s.dev); }
    if (s.op === 'addr.add' || s.op === 'link.up' || s.op === 'fdb.append' || s.op === 'neigh.add') needDev(s.netns, s.dev);
    if (s.op === 'addr.add') {
      const k = s.netns ?? '(root)';
      if (routed.has(k)) bad.push(`${where}: address ${s.address} added in ${k} after a route there`);
      addrs.set(k, [...(addrs.get(k) ?? []), s.address]);
    }
    if (s.op === 'route.add') {
      const k = s.netns ?? '(root)';
      routed.add(k);
      if (s.dev) needDev(s.netns, s.dev);
      if (s.via && !(addrs.get(k) ?? []).some((c) => cidrContains(c, s.via!))) bad.push(`${where}: next hop ${s.via} in ${k} is on no address added before`);
    }
    for (const k of created(s)) {
      if (devs.has(k)) bad.push(`${where}: ${k} created twice`);
      devs.add(k);
    }
  });
  return bad;
}

describe.each(PLANNED)('plan of labs/%s', (file) => {
  const lab = loadLab(file);
  const plan = fullPlan(lab);

  it('has steps, counted per op', () => {
    expect(plan.lab).toBe(lab.name);
    expect(plan.id).toBe(lab.id);
    expect(plan.group).toBe(lab.group);
    const counts: Record<string, number> = {};
    for (const s of plan.steps) counts[s.op] = (counts[s.op] ?? 0) + 1;
    expect(plan.counts).toEqual(counts);
  });

  it('orders netns before their contents, bridges before ports, addresses before routes', () => {
    expect(orderViolations(plan)).toEqual([]);
  });

  it('applies the nft table before the first container', () => {
    const ops = plan.steps.map((s) => s.op);
    const firstContainer = ops.indexOf('container.start');
    expect(firstContainer).toBeGreaterThan(0);
    expect(ops.filter((o) => o === 'container.start')).toHaveLength(lab.nodes.length);
    const nft = ops.indexOf('nft.apply');
    if (nft >= 0) expect(nft).toBeLessThan(firstContainer);
    // Containers come last: nothing is created under a running process.
    expect(ops.slice(firstContainer).every((o) => o === 'container.start')).toBe(true);
  });

  it('groups steps by phase, in the order up runs them', () => {
    const order = ['underlay', 'networks', 'namespaces', 'interfaces', 'routes', 'firewall', 'containers'];
    const phases = plan.steps.map((s) => order.indexOf((s as { phase?: string }).phase ?? ''));
    expect(phases.every((p) => p >= 0)).toBe(true);
    expect(phases).toEqual([...phases].sort((a, b) => a - b));
  });

  it('keeps every interface name within 15 bytes', () => {
    for (const s of plan.steps) for (const n of ifaceNames(s)) expect(Buffer.byteLength(n), `${s.op} ${n}`).toBeLessThanOrEqual(IFNAMSIZ_MAX);
  });

  it('tags every link it creates with the lab group and a netlab alias', () => {
    for (const s of plan.steps) {
      if (s.op === 'bridge.add' || s.op === 'veth.add' || s.op === 'vxlan.add') {
        expect(s.group).toBe(lab.group);
        expect(s.alias.startsWith(`netlab:${lab.name}:`)).toBe(true);
        if (s.netns === null) expect(s.name.startsWith('nl')).toBe(true);
      }
    }
  });

  it('configures every gateway the model advertises, and no other address in the host namespace', () => {
    // Read off the lab files by hand: bridge.yml's lan has `gateway: true` (10.10.0.1), routed.yml's
    // lan1 `gateway: false`, overlay networks have none. A lab without a gateway must put no
    // address on the host at all (the host neither answers nor routes there).
    const GATEWAYS: Record<string, string[]> = { 'bridge.yml': ['10.10.0.1/24'], 'routed.yml': [], 'overlay.yml': [] };
    const advertised = lab.networks.flatMap((n) => (n.gateway ? [`${n.gateway}/${n.subnet.split('/')[1]}`] : []));
    expect(advertised).toEqual(GATEWAYS[file]);
    const onHost = plan.steps.flatMap((s) => (s.op === 'addr.add' && s.netns === null ? [s.address] : []));
    expect(onHost.sort()).toEqual(GATEWAYS[file]);
  });

  it('is byte-identical across two loads', () => {
    expect(JSON.stringify(fullPlan(loadLab(file)))).toBe(JSON.stringify(fullPlan(loadLab(file))));
    expect(JSON.stringify(buildPlan(loadLab(file)))).toBe(JSON.stringify(buildPlan(loadLab(file))));
  });
});

describe('plans of every shipped lab', () => {
  it('satisfy the order invariants, with and without containers', () => {
    for (const f of ALL_LABS) {
      const lab = loadLab(f);
      expect(orderViolations(fullPlan(lab)), f).toEqual([]);
      expect(orderViolations(buildPlan(lab)), f).toEqual([]);
    }
  });

  it('routed.yml: point-to-point links carry their addresses and the routers forward', () => {
    const plan = fullPlan(loadLab('routed.yml'));
    const p2p = plan.steps.filter((s) => s.op === 'veth.add' && s.master === null);
    expect(p2p).toHaveLength(3);
    const fwd = plan.steps.flatMap((s) => (s.op === 'sysctl.set' && s.key === 'net.ipv4.ip_forward' && s.netns !== null ? [s.netns] : []));
    expect(fwd).toEqual(['netlab.routed.r1', 'netlab.routed.r2', 'netlab.routed.r3']);
    const addrs = plan.steps.flatMap((s) => (s.op === 'addr.add' ? [`${s.netns}:${s.dev}:${s.address}`] : []));
    expect(addrs).toContain('netlab.routed.r1:eth1:10.0.12.1/30');
    expect(addrs).toContain('netlab.routed.h3:eth0:10.3.0.10/24');
  });

  it('overlay.yml: one VXLAN per overlay per host, no learning, forwarding entries for remote nodes', () => {
    const lab = loadLab('overlay.yml');
    const plan = fullPlan(lab);
    const vx = plan.steps.filter((s): s is Extract<PlanStep, { op: 'vxlan.add' }> => s.op === 'vxlan.add');
    expect(vx.map((s) => `${s.netns}:${s.vni}`)).toEqual(['netlab.overlay+h1:4096', 'netlab.overlay+h2:4096', 'netlab.overlay+h1:4097', 'netlab.overlay+h2:4097']);
    const fdb = plan.steps.filter((s) => s.op === 'fdb.append');
    // Each node's MAC is known on the other host: 4 nodes, each seen from one remote host.
    expect(fdb).toHaveLength(4);
  });

  it('a bridge network on a simulated host advertises no gateway, so no node routes via one', () => {
    // Every node of `lan` is on h1: the bridge lives in h1's namespace. The model still gives the
    // network a gateway (with NAT) and the nodes a default route via it, so the plan must put
    // that address somewhere (or the model must not advertise one).
    const r = loadTopologyText('name: t\nhosts: { h1: {} }\nnetworks: { lan: {} }\nnodes:\n  a: { host: h1, networks: [lan] }\n  b: { host: h1, networks: [lan] }\n', 'inline.yml');
    const lab = r.lab!;
    const plan = fullPlan(lab);
    const added = plan.steps.flatMap((s) => (s.op === 'addr.add' ? [s.address.split('/')[0]] : []));
    const vias = lab.nodes.flatMap((n) => n.routes.map((x) => x.via)).filter((v): v is string => v !== null);
    for (const v of vias) expect(added, `next hop ${v}`).toContain(v);
    // Here the model advertises none (the bridge is in h1's namespace, not the machine's), so no
    // node gets a route via one, and the plan adds exactly the nodes' and h1's own addresses.
    const lan = lab.networks[0];
    expect(lan.gateway).toBeNull();
    expect(vias).toEqual([]);
    const own = [...lab.nodes.flatMap((n) => n.interfaces.flatMap((f) => (f.ipv4 ? [f.ipv4.address] : []))), ...plan.steps.flatMap((s) => (s.op === 'addr.add' && s.reason.startsWith('underlay') ? [s.address.split('/')[0]] : []))];
    expect(added.sort()).toEqual(own.sort());
    expect(added).toHaveLength(3);
  });
});

// ---------------------------------------------------------------- CLI

interface Run { code: number; out: string; err: string }

async function run(...args: string[]): Promise<Run> {
  let out = '';
  let err = '';
  const code = await main(['node', 'netlab', ...args], { out: (s) => { out += s; }, err: (s) => { err += s; } });
  return { code, out, err };
}

describe('netlab plan', () => {
  it('--json is byte-identical across two separate `netlab plan` processes', () => {
    // Two processes (not two calls in this one): nothing process-specific (a pid, a time, a
    // random id, the time zone or the locale) may reach the plan.
    if (!fs.existsSync(path.join(ROOT, 'dist/cli/main.js'))) throw new Error('dist/ is missing: run `npm run build` first (this test runs bin/netlab.js)');
    const cli = (env: Record<string, string>) => spawnSync(process.execPath, [path.join(ROOT, 'bin/netlab.js'), 'plan', '--json', rel('labs/bridge.yml')], {
      cwd: process.cwd(), encoding: 'utf8', timeout: 30_000, env: { ...process.env, NO_COLOR: '1', ...env },
    });
    const a = cli({ TZ: 'UTC', LANG: 'C' });
    const b = cli({ TZ: 'Pacific/Kiritimati', LANG: 'de_DE.UTF-8' });
    expect([a.status, a.stderr]).toEqual([0, '']);
    expect([b.status, b.stderr]).toEqual([0, '']);
    expect(a.stdout.length).toBeGreaterThan(0);
    expect(a.stdout).toBe(b.stdout);
    // And it is the plan of bridge.yml, checked against the file, not against buildPlan.
    const plan = JSON.parse(a.stdout) as Plan;
    expect(plan.lab).toBe('bridge');
    expect(plan.steps.filter((s) => s.op === 'netns.add').map((s) => s.netns).sort()).toEqual(['client1', 'client2', 'solo', 'web'].map((n) => `netlab.bridge.${n}`));
    expect(plan.steps).toContainEqual(expect.objectContaining({ op: 'addr.add', netns: null, address: '10.10.0.1/24' }));
    expect(plan.steps).toContainEqual(expect.objectContaining({ op: 'addr.add', netns: 'netlab.bridge.web', dev: 'eth0', address: '10.10.0.10/24' }));
  });

  it('prints one numbered line per step without --json', async () => {
    const r = await run('plan', rel('labs/routed.yml'));
    expect(r.code).toBe(0);
    const lines = r.out.trimEnd().split('\n');
    const plan = buildPlan(loadLab('routed.yml'));
    expect(lines[0]).toBe(`lab routed (id ${plan.id}, link group ${plan.group}): ${plan.steps.length} steps`);
    expect(lines).toHaveLength(plan.steps.length + 1);
    lines.slice(1).forEach((l, i) => expect(l).toMatch(new RegExp(`^ *${i + 1}\\. ${plan.steps[i].op.replace('.', '\\.')} +\\[`)));
  });

  it('on an invalid file prints the diagnostics and exits 1, with nothing on stdout', async () => {
    const f = rel('test/fixtures/many-problems.yml');
    const r = await run('plan', f);
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    const lines = r.err.trimEnd().split('\n');
    expect(lines).toHaveLength(6);
    for (const l of lines) expect(l.startsWith(`${f}:`)).toBe(true);
  });
});

describe('netlab validate', () => {
  it('exits 0 for valid files and says what it found', async () => {
    const r = await run('validate', ...ALL_LABS.map((f) => rel(`labs/${f}`)));
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    const lines = r.out.trimEnd().split('\n');
    expect(lines).toHaveLength(ALL_LABS.length);
    expect(lines).toContain(`${rel('labs/bridge.yml')}: ok (lab bridge: 4 nodes, 1 networks, 0 links, 6 checks)`);
  });

  it('exits 1 and prints file:line:col: path: message for each problem', async () => {
    const f = rel('test/fixtures/bad-driver.yml');
    const r = await run('validate', f);
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toBe(`${f}:5:13: networks.lan.driver: string "brige" is not allowed; expected one of bridge, host, none, overlay; did you mean "bridge"?\n`);
  });

  it('exits 1 when any of several files is invalid, still reporting the valid ones', async () => {
    const r = await run('validate', rel('labs/none.yml'), rel('test/fixtures/invalid-cidr.yml'));
    expect(r.code).toBe(1);
    expect(r.out).toContain('none.yml: ok');
    expect(r.err).toContain('invalid-cidr.yml:5:13: networks.lan.subnet: "10.0.0.0/33" is not a valid IPv4 CIDR');
  });

  it('--json gives a machine-readable verdict with the diagnostics', async () => {
    const good = await run('validate', '--json', rel('labs/bridge.yml'));
    expect(good.code).toBe(0);
    expect(JSON.parse(good.out)).toEqual({ valid: true, files: [{ file: rel('labs/bridge.yml'), valid: true, diagnostics: [] }] });
    const f = rel('test/fixtures/duplicate-vni.yml');
    const bad = await run('validate', '--json', rel('labs/bridge.yml'), f);
    expect(bad.code).toBe(1);
    expect(bad.err).toBe('');
    const j = JSON.parse(bad.out);
    expect(j.valid).toBe(false);
    expect(j.files.map((x: { valid: boolean }) => x.valid)).toEqual([true, false]);
    expect(j.files[1].diagnostics).toEqual([
      { file: f, line: 10, col: 10, path: 'networks.ov2.vni', message: 'VNI 5000 is already used by network ov1; each overlay needs its own' },
    ]);
  });

  it('a missing file is one clear line, exit 1', async () => {
    const missing = path.join(os.tmpdir(), 'netlab-does-not-exist', 'lab.yml');
    const r = await run('validate', missing);
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toBe(`${missing}:1:1: no such file\n`);
  });

  it('an unreadable file (a directory) is one clear line, for validate, plan and graph', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-test-'));
    try {
      for (const cmd of ['validate', 'plan', 'graph']) {
        const r = await run(cmd, dir);
        expect(r.code, cmd).toBe(1);
        expect(r.out, cmd).toBe('');
        const lines = r.err.trimEnd().split('\n');
        expect(lines, cmd).toHaveLength(1);
        expect(lines[0]).toMatch(new RegExp(`^${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:1:1: cannot read: `));
        expect(lines[0]).not.toContain('    at '); // no stack trace
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('usage errors exit 2', async () => {
    expect((await run('validate')).code).toBe(2);
    expect((await run('frobnicate')).code).toBe(2);
    expect((await run('graph', rel('labs/bridge.yml'), '--format', 'svg')).code).toBe(2);
  });
});

describe('netlab graph', () => {
  it('--format dot (the default) is a Graphviz graph of the lab', async () => {
    const r = await run('graph', rel('labs/bridge.yml'), '--format', 'dot');
    expect(r.code).toBe(0);
    expect(r.out.startsWith('graph "bridge" {')).toBe(true);
    expect(r.out.trimEnd().endsWith('}')).toBe(true);
    for (const n of ['node:web', 'node:client1', 'node:client2', 'node:solo', 'net:lan']) expect(r.out).toContain(`"${n}"`);
    expect((await run('graph', rel('labs/bridge.yml'))).out).toBe(r.out);
  });

  it('--format mermaid is a Mermaid flowchart', async () => {
    const r = await run('graph', rel('labs/routed.yml'), '--format', 'mermaid');
    expect(r.code).toBe(0);
    expect(r.out.split('\n')[0]).toMatch(/^(graph|flowchart) /);
    for (const n of ['r1', 'r2', 'r3', 'h1', 'h3']) expect(r.out).toContain(`node_${n}`);
    expect(r.out.endsWith('\n')).toBe(true);
  });

  it('--format json is graphology JSON with every node, network and host', async () => {
    const r = await run('graph', rel('labs/overlay.yml'), '--format', 'json');
    expect(r.code).toBe(0);
    const g = JSON.parse(r.out) as { attributes: { name: string }; nodes: { key: string }[]; edges: unknown[] };
    expect(g.attributes.name).toBe('overlay');
    const keys = g.nodes.map((n) => n.key);
    for (const k of ['node:a', 'node:b', 'node:c', 'node:d', 'net:ov1', 'net:ov2', 'host:h1', 'host:h2']) expect(keys).toContain(k);
    expect(g.edges.length).toBeGreaterThan(0);
  });

  it('is byte-identical across two separate `netlab graph` processes for every format', () => {
    if (!fs.existsSync(path.join(ROOT, 'dist/cli/main.js'))) throw new Error('dist/ is missing: run `npm run build` first (this test runs bin/netlab.js)');
    const cli = (fmt: string, env: Record<string, string>) => spawnSync(process.execPath, [path.join(ROOT, 'bin/netlab.js'), 'graph', rel('labs/overlay.yml'), '--format', fmt], {
      cwd: process.cwd(), encoding: 'utf8', timeout: 30_000, env: { ...process.env, NO_COLOR: '1', ...env },
    });
    for (const fmt of ['dot', 'mermaid', 'json']) {
      const a = cli(fmt, { TZ: 'UTC', LANG: 'C' });
      const b = cli(fmt, { TZ: 'Pacific/Kiritimati', LANG: 'de_DE.UTF-8' });
      expect([a.status, a.stderr, b.status, b.stderr], fmt).toEqual([0, '', 0, '']);
      expect(a.stdout.length, fmt).toBeGreaterThan(0);
      expect(a.stdout, fmt).toBe(b.stdout);
    }
  });

  it('on an invalid file prints the diagnostics and exits 1', async () => {
    const r = await run('graph', rel('test/fixtures/undefined-network.yml'));
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toContain('undefined-network.yml:7:21: nodes.a.networks[1]: network "lam" is not defined');
  });
});
