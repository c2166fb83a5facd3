// Overlay networks across machines, without root: the plan of one host's part of a lab
// (`buildPlan(lab, { as })`, `netlab plan --as`), which running on every host must add up to
// the same VNIs and forwarding entries as the simulated lab; and the tunnels in the graph.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadTopologyText } from '../../topology/load.js';
import { buildPlan, formatPlan, nodesBuilt, PlanError, type PlanStep } from '../../controller/plan.js';
import { buildLabGraph } from '../../topology/graph.js';
import { main } from '../../cli/main.js';
import type { Lab } from '../../topology/types.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const OVERLAY = fs.readFileSync(path.join(ROOT, 'labs/overlay.yml'), 'utf8');

/** labs/overlay.yml with real machine addresses (and optional extra text appended to sections). */
function realLab(text = OVERLAY.replace('  h1: {}', '  h1: { address: 192.0.2.10 }').replace('  h2: {}', '  h2: { address: 192.0.2.11 }')): Lab {
  const r = loadTopologyText(text, path.join(ROOT, 'labs/overlay-real.yml'));
  if (!r.lab) throw new Error(JSON.stringify(r.diagnostics));
  return r.lab;
}

type Step<O extends PlanStep['op']> = Extract<PlanStep, { op: O }>;
const ofOp = <O extends PlanStep['op']>(steps: PlanStep[], op: O): Step<O>[] => steps.filter((s): s is Step<O> => s.op === op);

describe('buildPlan(lab, { as }): one machine\'s part of an overlay lab', () => {
  const lab = realLab();
  const h1 = buildPlan(lab, { as: 'h1' });
  const h2 = buildPlan(lab, { as: 'h2' });
  const full = buildPlan(lab);

  it('has no underlay: no underlay bridge, no host namespace, no veth to a host', () => {
    expect(h1.as).toBe('h1');
    expect(full.as).toBeUndefined();
    for (const p of [h1, h2]) {
      expect(p.steps.some((s) => s.phase === 'underlay')).toBe(false);
      expect(ofOp(p.steps, 'netns.add').map((s) => s.netns).filter((n) => n.includes('+'))).toEqual([]);
      expect(ofOp(p.steps, 'addr.add').map((s) => s.address)).not.toContain('192.0.2.10/24');
      for (const s of p.steps) if ('netns' in s && s.netns !== null) expect(s.netns).toMatch(/^netlab\.overlay\.[a-d]$/);
      for (const s of ofOp(p.steps, 'veth.add')) expect(s.peerNetns).toMatch(/^netlab\.overlay\.[a-d]$/);
      expect(p.steps.some((s) => s.op === 'nft.apply')).toBe(false);
    }
  });

  it('overlay bridges and VXLAN devices are in the root namespace, with the host\'s address as source, no dev, the same VNIs and ports', () => {
    const vx = ofOp(h1.steps, 'vxlan.add');
    expect(vx.map((s) => [s.netns, s.vni, s.port, s.local, s.dev, s.mtu])).toEqual([
      [null, 4096, 4789, '192.0.2.10', null, 1450],
      [null, 4097, 4789, '192.0.2.10', null, 1450],
    ]);
    const fullVx = ofOp(full.steps, 'vxlan.add');
    expect(new Set(vx.map((s) => `${s.name}/${s.vni}`))).toEqual(new Set(fullVx.map((s) => `${s.name}/${s.vni}`)));
    expect(ofOp(h2.steps, 'vxlan.add').map((s) => s.local)).toEqual(['192.0.2.11', '192.0.2.11']);
    for (const s of ofOp(h1.steps, 'bridge.add')) expect(s.netns).toBeNull();
    // The VXLAN device gets no IPv6 in the machine's namespace (it would chatter over the tunnel).
    expect(ofOp(h1.steps, 'sysctl.set').map((s) => s.key)).toContain(`net.ipv6.conf.${vx[0].name}.disable_ipv6`);
  });

  it('builds only the nodes placed on the host, attached to bridges in the root namespace', () => {
    expect(ofOp(h1.steps, 'netns.add').map((s) => s.netns)).toEqual(['netlab.overlay.a', 'netlab.overlay.c']);
    expect(ofOp(h2.steps, 'netns.add').map((s) => s.netns)).toEqual(['netlab.overlay.b', 'netlab.overlay.d']);
    expect(ofOp(h1.steps, 'container.start').map((s) => s.node)).toEqual(['a', 'c']);
    expect(ofOp(h2.steps, 'container.start').map((s) => s.node)).toEqual(['b', 'd']);
    for (const s of ofOp(h1.steps, 'veth.add')) expect(s.netns).toBeNull();
    expect(nodesBuilt(lab, 'h1').map((n) => n.name)).toEqual(['a', 'c']);
    expect(nodesBuilt(lab, null).map((n) => n.name)).toEqual(['a', 'b', 'c', 'd']);
  });

  it('forwarding (fdb) and ARP (neigh) entries point at the other host\'s address; both parts together have exactly the simulated lab\'s', () => {
    const fdb = ofOp(h1.steps, 'fdb.append');
    expect(fdb.map((s) => s.dst)).toEqual(['192.0.2.11', '192.0.2.11']);
    const b = lab.nodes.find((n) => n.name === 'b')!.interfaces[0];
    expect(fdb[0]).toMatchObject({ netns: null, mac: b.mac });
    expect(ofOp(h1.steps, 'neigh.add')[0]).toMatchObject({ netns: null, ip: b.ipv4!.address, mac: b.mac });
    const key = (s: Step<'fdb.append'> | Step<'neigh.add'>) => s.op === 'fdb.append' ? `fdb ${s.dev} ${s.mac} ${s.dst}` : `neigh ${s.dev} ${s.ip} ${s.mac}`;
    const parts = [...h1.steps, ...h2.steps].filter((s): s is Step<'fdb.append'> | Step<'neigh.add'> => s.op === 'fdb.append' || s.op === 'neigh.add').map(key).sort();
    const whole = full.steps.filter((s): s is Step<'fdb.append'> | Step<'neigh.add'> => s.op === 'fdb.append' || s.op === 'neigh.add').map(key).sort();
    expect(parts).toEqual(whole);
    // No flooding entry (00:00:00:00:00:00) anywhere: every destination comes from the model.
    expect(parts.some((k) => k.includes('00:00:00:00:00:00'))).toBe(false);
  });

  it('a bridge network whose nodes are on the host is built in the root namespace there, and nowhere else', () => {
    const text = OVERLAY
      .replace('  h1: {}', '  h1: { address: 192.0.2.10 }').replace('  h2: {}', '  h2: { address: 192.0.2.11 }')
      .replace('networks:\n  ov1:', 'networks:\n  lan:\n    subnet: 10.33.0.0/24\n  ov1:')
      .replace('  a:\n    host: h1\n    networks: [ov1]', '  a:\n    host: h1\n    networks: [ov1, lan]\n  e:\n    host: h1\n    networks: [lan]');
    const l = realLab(text);
    const lan = l.networks.find((n) => n.name === 'lan')!;
    const br = (p: ReturnType<typeof buildPlan>) => ofOp(p.steps, 'bridge.add').filter((s) => s.name === lan.bridgeName).map((s) => s.netns);
    expect(br(buildPlan(l, { as: 'h1' }))).toEqual([null]);
    expect(br(buildPlan(l, { as: 'h2' }))).toEqual([]);
    expect(br(buildPlan(l))).toEqual(['netlab.overlay+h1']);
    // No gateway address on a host's bridge (the machine is not on it).
    expect(ofOp(buildPlan(l, { as: 'h1' }).steps, 'addr.add').filter((s) => s.dev === lan.bridgeName)).toEqual([]);
  });

  it('is pure and deterministic; an unknown host is a PlanError naming the hosts', () => {
    expect(JSON.stringify(buildPlan(lab, { as: 'h1' }))).toBe(JSON.stringify(h1));
    expect(() => buildPlan(lab, { as: 'h9' })).toThrow(PlanError);
    expect(() => buildPlan(lab, { as: 'h9' })).toThrow('lab overlay has no host h9 (hosts: h1, h2)');
    // Containers are in the plan by default, as for the whole lab.
    expect(buildPlan(lab, { as: 'h1', containers: false }).steps.some((s) => s.op === 'container.start')).toBe(false);
  });

  it('formatPlan says which host, and prints no underlay dev for the VXLAN', () => {
    const text = formatPlan(h1);
    expect(text.split('\n')[0]).toMatch(/^lab overlay as host h1 \(id [0-9a-f]{6}, link group \d+\): \d+ steps$/);
    expect(text).toMatch(/vxlan\.add +\[host\] \S+ id 4096 local 192\.0\.2\.10 dstport 4789 master \S+ /);
    expect(text).not.toMatch(/vxlan\.add.* dev /);
  });
});

describe('netlab plan --as (CLI)', () => {
  const file = path.join(ROOT, 'labs/overlay.yml');
  async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = '', err = '';
    const code = await main(['node', 'netlab', ...args], { out: (s) => { out += s; }, err: (s) => { err += s; } });
    return { code, out, err };
  }

  it('prints one host\'s part; JSON carries "as"; an unknown host exits 2 with the list of hosts', async () => {
    const r = await run('plan', file, '--as', 'h2');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^lab overlay as host h2 /);
    const j = await run('plan', file, '--as', 'h2', '--json');
    expect(JSON.parse(j.out)).toMatchObject({ lab: 'overlay', as: 'h2' });
    const bad = await run('plan', file, '--as', 'nope');
    expect(bad.code).toBe(2);
    expect(bad.err).toBe('netlab: lab overlay has no host nope (hosts: h1, h2)\n');
  });
});

describe('tunnels in the graph', () => {
  it('labs/overlay.yml: one tunnel edge per overlay between h1 and h2, with both underlay addresses', () => {
    const lab = realLab();
    const g = buildLabGraph(lab);
    const tunnels = g.filterEdges((_k, a) => a.kind === 'tunnel');
    expect(tunnels).toEqual(['tunnel:ov1/h1/h2', 'tunnel:ov2/h1/h2']);
    expect(g.extremities('tunnel:ov1/h1/h2')).toEqual(['host:h1', 'host:h2']);
    expect(g.getEdgeAttributes('tunnel:ov2/h1/h2')).toMatchObject({ vni: 4097, port: 4789, addressA: '192.0.2.10', addressB: '192.0.2.11' });
  });

  it('an overlay over three hosts has a tunnel per pair', () => {
    const r = loadTopologyText('name: t\nhosts: { h1: {}, h2: {}, h3: {} }\nnetworks: { ov: { driver: overlay } }\nnodes:\n  a: { host: h1, networks: [ov] }\n  b: { host: h2, networks: [ov] }\n  c: { host: h3, networks: [ov] }\n', 'inline.yml');
    const g = buildLabGraph(r.lab!);
    expect(g.filterEdges((_k, a) => a.kind === 'tunnel')).toEqual(['tunnel:ov/h1/h2', 'tunnel:ov/h1/h3', 'tunnel:ov/h2/h3']);
  });
});
