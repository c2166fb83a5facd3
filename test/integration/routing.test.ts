// Routing labs end to end, as root, against the real peers: FRR (Debian's package, in an image
// netlab builds with mmdebstrap from the machine's mirror, kept in the machine's image store so
// a second run reuses it) and the kernel's FIB. The shipped labs/ospf.yml (six routers in a ring,
// one expensive cable) and labs/bgp.yml (three ASes) under names and subnets of this run: they
// come up with their checks passing, every node's kernel routes equal the simulator's predicted
// ones (`netlab routes --wait`), and after a cable on the best path is cut the routers
// re-converge to the predicted detour and the checks still pass; plugged back, the first path
// returns. A busybox lab proves static metrics (a floating route taking over) and ECMP next hops
// (RTA_MULTIPATH, read back from the kernel) with no daemon at all.
//
// Safety on a shared machine: labs are named rt<run>-..., their subnets are 10.X blocks nothing
// routes (freeOctets), every probe stays inside the labs' namespaces (gateway: false everywhere),
// only `down` of these labs cleans up, and afterAll checks nothing is left.
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labId } from '../../topology/names.js';
import type { CheckReport } from '../../checks/run.js';
import type { RouteRow } from '../../checks/routes.js';
import { addLeakProbe, cgroupProbe, containerProcessProbe, expectNoLeaks, snapshot, type Snapshot } from '../helpers/leaks.js';
import { REPO, assertBuildFresh, downAndCheck, forceRemoveLab, freeOctets, labLeftovers, netlab, prng } from '../helpers/netlab.js';

const isRoot = process.getuid?.() === 0;
const haveMmdebstrap = fs.existsSync('/usr/bin/mmdebstrap');
if (!isRoot || !haveMmdebstrap) console.warn('test/integration/routing.test.ts skipped: it needs root and mmdebstrap (./setup.sh installs it)');

const RUN = randomBytes(3).toString('hex');
const rand = prng(Number(process.env.NETLAB_TEST_SEED ?? 0x726f7574));

describe.skipIf(!isRoot || !haveMmdebstrap)('routing labs: FRR OSPF and eBGP, static metrics and ECMP, predicted == kernel', () => {
  let tmp = '';
  let before: Snapshot;
  const labs: string[] = [];
  const files = new Map<string, string>();
  let octets: number[] = [];

  /** A shipped lab under this run's name, its 10.61/10.73 subnets moved to 10.X. */
  function shipped(file: string, from: string, octet: number, name: string): string {
    const text = fs.readFileSync(path.join(REPO, 'labs', file), 'utf8')
      .replace(/^name: .*$/m, `name: ${name}`)
      .replaceAll(`10.${from}.`, `10.${octet}.`);
    const out = path.join(tmp, `${name}.yml`);
    fs.writeFileSync(out, text, { mode: 0o644 });
    files.set(name, out);
    return out;
  }
  const routes = (lab: string, wait = 30): { status: number | null; rows: RouteRow[]; text: string } => {
    const r = netlab(['routes', lab, '--wait', String(wait), '--json'], { timeoutMs: (wait + 30) * 1000 });
    let parsed: { routes: RouteRow[] };
    try { parsed = JSON.parse(r.stdout) as { routes: RouteRow[] }; } catch { throw new Error(`netlab routes ${lab}: not JSON (exit ${r.status}):\n${r.stdout}${r.stderr}`); }
    return { status: r.status, rows: parsed.routes, text: r.stdout };
  };
  const route = (rows: RouteRow[], node: string, dst: string) => rows.find((x) => x.node === node && x.dst === dst);
  const check = (lab: string, extra: string[] = []): CheckReport => {
    const r = netlab(['check', lab, '--json', '--explain', ...extra], { timeoutMs: 120_000 });
    try { return JSON.parse(r.stdout) as CheckReport; } catch { throw new Error(`netlab check ${lab}: not JSON (exit ${r.status}):\n${r.stdout}${r.stderr}`); }
  };

  beforeAll(() => {
    assertBuildFresh();
    addLeakProbe(cgroupProbe((d) => d.includes(`/netlab/rt${RUN}-`)));
    addLeakProbe(containerProcessProbe((g) => g.includes(`/netlab/rt${RUN}-`)));
    before = snapshot();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-routing-'));
    octets = freeOctets(3, rand);
  });

  afterAll(async () => {
    const left: string[] = [];
    for (const lab of labs) {
      left.push(...(await downAndCheck(lab)));
      if (labLeftovers(lab).length > 0) console.warn(`removing what is left of ${lab}: ${(await forceRemoveLab(lab)).join('; ')}`);
    }
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    expect(left).toEqual([]);
    await expectNoLeaks(before, {
      only: (probe, item) => probe === 'child processes' || labs.some((l) => item.includes(`netlab.${l}.`) || item.includes(`/netlab/${l}/`) || item.startsWith(`nl${labId(l)}`) || item === `ip netlab_${labId(l)}`),
    });
  });

  it('builds the FRR image from Debian packages once (a second build is a cache hit)', () => {
    const file = shipped('ospf.yml', '61', octets[0], `rt${RUN}-ospf`);
    const first = netlab(['image', 'build', file], { timeoutMs: 600_000 });
    expect(first.status, first.stderr).toBe(0);
    const again = netlab(['image', 'build', file]);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stderr + again.stdout).toMatch(/already in the store as netlab\.invalid\/frr:bookworm-[0-9a-f]{16}/);
    expect(again.ms).toBeLessThan(3000);
  }, 660_000);

  it('OSPF ring: checks pass, routes are the predicted ones; a cut cable re-converges to the predicted detour and back', () => {
    const lab = `rt${RUN}-ospf`;
    const o = octets[0];
    labs.push(lab);
    const up = netlab(['up', files.get(lab)!, '--check'], { timeoutMs: 180_000 });
    expect(up.status, `${up.stdout}${up.stderr}`).toBe(0);
    expect(up.stdout).toMatch(/4 passed, 0 failed; 0 disagreements/);
    const r0 = routes(lab);
    expect(r0.status, r0.text).toBe(0);
    // The short way round: r1 -> r6 (cost 10 each) to h4's LAN, never the cost-100 cable.
    expect(route(r0.rows, 'r1', `10.${o}.4.0/24`)).toMatchObject({ same: true, observed: { proto: 'ospf', nexthops: [{ via: `10.${o}.16.2`, dev: 'eth2' }] } });
    // Cut r6-r1 (r6's end): r1 must go r2 -> r3 -> r4, as predicted.
    expect(netlab(['link', lab, 'r6:eth2', 'down']).status).toBe(0);
    const r1 = routes(lab);
    expect(r1.status, r1.text).toBe(0);
    expect(route(r1.rows, 'r1', `10.${o}.4.0/24`)).toMatchObject({ same: true, predicted: { note: 'OSPF cost 130' }, observed: { nexthops: [{ via: `10.${o}.12.2`, dev: 'eth1' }] } });
    const c = check(lab, ['--wait', '20']);
    expect(c.failed, JSON.stringify(c.outcomes.filter((x) => !x.pass), null, 2)).toBe(0);
    const h1h4 = c.outcomes.find((x) => x.label === 'ping h1 -> h4')!;
    expect(h1h4.reason).toMatch(/routed by r1, r2, r3, r4, via OSPF cost 130 from r1/);
    expect(c.disagreements).toBe(0);
    // Plugged back: the short way again.
    expect(netlab(['link', lab, 'r6:eth2', 'up']).status).toBe(0);
    const r2 = routes(lab);
    expect(r2.status, r2.text).toBe(0);
    expect(route(r2.rows, 'r1', `10.${o}.4.0/24`)).toMatchObject({ same: true, observed: { nexthops: [{ via: `10.${o}.16.2`, dev: 'eth2' }] } });
  }, 300_000);

  it('eBGP triangle: shortest AS path; a cut cable moves traffic through the third AS, and a disagreement names the router', () => {
    const lab = `rt${RUN}-bgp`;
    const o = octets[1];
    labs.push(lab);
    const up = netlab(['up', shipped('bgp.yml', '73', o, lab), '--check'], { timeoutMs: 180_000 });
    expect(up.status, `${up.stdout}${up.stderr}`).toBe(0);
    const r0 = routes(lab);
    expect(r0.status, r0.text).toBe(0);
    expect(route(r0.rows, 'r1', `10.${o}.3.0/24`)).toMatchObject({ same: true, predicted: { proto: 'bgp', note: 'BGP AS path 65003' } });
    expect(netlab(['link', lab, 'r1:eth2', 'down']).status).toBe(0);
    const r1 = routes(lab);
    expect(r1.status, r1.text).toBe(0);
    expect(route(r1.rows, 'r1', `10.${o}.3.0/24`)).toMatchObject({ same: true, predicted: { note: 'BGP AS path 65002 65003' }, observed: { nexthops: [{ via: `10.${o}.12.2`, dev: 'eth1' }] } });
    const c = check(lab, ['--wait', '20']);
    expect(c.failed).toBe(0);
    expect(c.outcomes.find((x) => x.label === 'ping h1 -> h3')!.reason).toMatch(/routed by r1, r2, r3, via BGP AS path 65002 65003 from r1/);
    // Behind netlab's back, r3 drops its session with r2: the model still predicts reach; the
    // check fails and netlab names the routers whose routes are not the predicted ones.
    const vt = netlab(['exec', lab, 'r3', '--', 'vtysh', '-c', 'configure terminal', '-c', 'router bgp 65003', '-c', `neighbor 10.${o}.23.1 shutdown`]);
    expect(vt.status, vt.stderr).toBe(0);
    const bad = netlab(['check', lab, '--ping', 'h1:h3', '--wait', '3'], { timeoutMs: 60_000 });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(new RegExp(`netlab: route differs from the prediction: r1: 10\\.${o}\\.3\\.0/24 predicted via 10\\.${o}\\.12\\.2 dev eth1 \\(bgp\\), kernel no route`));
  }, 300_000);

  it('static routes without a daemon: a floating route takes over when the better cable is cut; ECMP next hops in one RTA_MULTIPATH route', () => {
    const lab = `rt${RUN}-static`;
    const o = octets[2];
    labs.push(lab);
    const file = path.join(tmp, `${lab}.yml`);
    fs.writeFileSync(file, [
      `name: ${lab}`,
      'nodes:',
      '  a:',
      '    routes:',
      `      - { dst: 10.${o}.3.0/30, via: 10.${o}.1.2, metric: 10 }`,
      `      - { dst: 10.${o}.3.0/30, via: 10.${o}.2.2, metric: 20 }`,
      `      - { dst: 10.${o}.4.0/30, nexthops: [10.${o}.1.2, 10.${o}.2.2] }`,
      `  b: { forwarding: true, routes: [{ dst: 10.${o}.4.0/30, via: 10.${o}.3.1 }, { dst: 10.${o}.2.0/30, via: 10.${o}.3.1 }] }`,
      `  c: { forwarding: true, routes: [{ dst: 10.${o}.3.0/30, via: 10.${o}.4.1 }, { dst: 10.${o}.1.0/30, via: 10.${o}.4.1 }] }`,
      `  d: { forwarding: true, routes: [{ dst: 10.${o}.1.0/30, via: 10.${o}.3.2 }, { dst: 10.${o}.2.0/30, via: 10.${o}.4.2 }] }`,
      'links:',
      `  - { endpoints: ["a:eb", "b:ea"], ipv4: [10.${o}.1.1/30, 10.${o}.1.2/30] }`,
      `  - { endpoints: ["a:ec", "c:ea"], ipv4: [10.${o}.2.1/30, 10.${o}.2.2/30] }`,
      `  - { endpoints: ["b:ed", "d:eb"], ipv4: [10.${o}.3.2/30, 10.${o}.3.1/30] }`,
      `  - { endpoints: ["c:ed", "d:ec"], ipv4: [10.${o}.4.2/30, 10.${o}.4.1/30] }`,
      'checks:',
      `  - ping: { from: a, to: 10.${o}.3.1 }`,
      `  - ping: { from: a, to: 10.${o}.4.1 }`,
      '',
    ].join('\n'), { mode: 0o644 });
    const up = netlab(['up', file, '--check'], { timeoutMs: 60_000 });
    expect(up.status, `${up.stdout}${up.stderr}`).toBe(0);
    const r0 = routes(lab, 1);
    expect(r0.status, r0.text).toBe(0);
    expect(route(r0.rows, 'a', `10.${o}.3.0/30`)).toMatchObject({ same: true, observed: { proto: 'static', metric: 10, nexthops: [{ via: `10.${o}.1.2`, dev: 'eb' }] } });
    expect(route(r0.rows, 'a', `10.${o}.4.0/30`)).toMatchObject({ same: true, observed: { nexthops: [{ via: `10.${o}.1.2`, dev: 'eb' }, { via: `10.${o}.2.2`, dev: 'ec' }] } });
    // iproute2 reads the RTA_MULTIPATH netlab wrote as one route with two next hops.
    const ip = { stdout: execFileSync('ip', ['-n', `netlab.${lab}.a`, 'route', 'show', `10.${o}.4.0/30`], { encoding: 'utf8' }) };
    expect(ip.stdout).toMatch(new RegExp(`nexthop via 10\\.${o}\\.1\\.2 dev eb weight 1\\s+nexthop via 10\\.${o}\\.2\\.2 dev ec weight 1`));
    // Cut a-b: the metric-20 route through c carries 10.X.3.0/30; ECMP keeps only c's next hop.
    expect(netlab(['link', lab, 'a:eb', 'down']).status).toBe(0);
    const r1 = routes(lab, 1);
    expect(r1.status, r1.text).toBe(0);
    expect(route(r1.rows, 'a', `10.${o}.3.0/30`)).toMatchObject({ same: true, observed: { metric: 20, nexthops: [{ via: `10.${o}.2.2`, dev: 'ec' }] } });
    expect(route(r1.rows, 'a', `10.${o}.4.0/30`)).toMatchObject({ same: true, observed: { nexthops: [{ via: `10.${o}.2.2`, dev: 'ec' }] } });
    const c = check(lab);
    expect(c.failed, JSON.stringify(c.outcomes, null, 2)).toBe(0);
    expect(c.outcomes[0].reason).toMatch(/a eb|a ec/);
    // Plugged back: netlab puts the metric-10 route back; ECMP has both next hops again.
    expect(netlab(['link', lab, 'a:eb', 'up']).status).toBe(0);
    const r2 = routes(lab, 3);
    expect(r2.status, r2.text).toBe(0);
    expect(route(r2.rows, 'a', `10.${o}.3.0/30`)).toMatchObject({ same: true, observed: { metric: 10 } });
  }, 120_000);
});
