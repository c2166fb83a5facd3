// The web view's impairments against a real lab, as root: `netlab web` (a child process) serving
// a lab this file brings up (two containers on a bridge network, one of them linked to a third
// by a point-to-point veth). POST /api/labs/LAB/impair is judged by what tc and nft report in
// the lab's namespaces and on the machine (the bridge side of an attachment), and by the graph
// the page's event stream delivers; its refusals (a value tc would not take, no token, a foreign
// Origin, delay on this kernel without sch_netem) must leave the kernel as it was. A change made
// by `netlab impair` in a shell reaches the page too (the state file is watched).
//
// Safety on a shared machine: the lab is named wi<run>, its subnets come from a 10.X.0.0/16
// block nothing routes (freeOctets), its network has no gateway on the machine, and only
// `down LAB` of this file's lab is used for cleanup.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labId } from '../../topology/names.js';
import { addLeakProbe, cgroupProbe, containerProcessProbe, expectNoLeaks, snapshot, type Snapshot } from '../helpers/leaks.js';
import { REPO, forceRemoveLab, freeOctets, labLeftovers, loadModel, netlab, netlabOk, prng, settleLeftovers } from '../helpers/netlab.js';
import { api, events, startWeb, type EventStream, type WebChild } from '../helpers/web.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('test/integration/web-impair.test.ts skipped: it needs root (it builds a lab in the real kernel)');
const hasNetem = fs.existsSync('/sys/module/sch_netem');

const RUN = randomBytes(3).toString('hex');
const rand = prng(Number(process.env.NETLAB_TEST_SEED ?? 0x77696d70));

interface Qdisc { kind: string; handle: string; root?: boolean; options?: { rate?: number } }

/** The root qdisc of DEV, as `tc -j` reports it (in namespace NS, or the machine's). */
function rootQdisc(ns: string | null, dev: string): Qdisc {
  const r = spawnSync('tc', [...(ns ? ['-n', ns] : []), '-j', 'qdisc', 'show', 'dev', dev], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tc qdisc show dev ${dev}${ns ? ` in ${ns}` : ''}: ${r.stderr}`);
  const q = (JSON.parse(r.stdout) as Qdisc[]).find((x) => x.root);
  if (!q) throw new Error(`no root qdisc on ${dev}: ${r.stdout}`);
  return q;
}

/** The node's loss table (nftables; this kernel's way without netem), or '' when it has none. */
function lossTable(ns: string): string {
  const r = spawnSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'table', 'inet', 'netlab_impair'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout : '';
}

describe.skipIf(!isRoot)('netlab web: impairments set from the API, seen in the kernel and on the page', () => {
  const lab = `wi${RUN}`;
  let tmp = '';
  let file = '';
  let hostSide = '';
  let before: Snapshot;
  let web: WebChild | null = null;
  let page: EventStream | null = null;
  const ns = (node: string) => `netlab.${lab}.${node}`;
  const cable = (g: any, id: string) => g.links.find((l: any) => l.id === id);
  const impair = (endpoint: string, value: unknown, o: { own?: boolean; headers?: Record<string, string> } = { own: true }) =>
    api(web!, 'POST', `/api/labs/${lab}/impair`, { ...o, body: { endpoint, impair: value } });

  beforeAll(async () => {
    for (const f of ['dist/cli/main.js', 'dist/web/server/serve.js', 'dist/web/app.js']) {
      if (!fs.existsSync(path.join(REPO, f))) throw new Error(`${f} is missing: run \`npm run build\` first`);
    }
    addLeakProbe(cgroupProbe((d) => d.includes(`/netlab/${lab}`)));
    addLeakProbe(containerProcessProbe((g) => g.includes(`/netlab/${lab}`)));
    before = snapshot();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-web-impair-'));
    const [o] = freeOctets(1, rand);
    file = path.join(tmp, `${lab}.yml`);
    fs.writeFileSync(file, `name: ${lab}
networks:
  lan: { driver: bridge, subnet: 10.${o}.0.0/24, gateway: false }
nodes:
  a: { networks: { lan: { ipv4: 10.${o}.0.10 } } }
  b: { networks: [lan] }
  c:
links:
  - endpoints: ["a:eth1", "c:eth1"]
    ipv4: [10.${o}.1.1/30, 10.${o}.1.2/30]
`);
    const eth0 = loadModel(file).nodes.find((n) => n.name === 'a')!.interfaces.find((f) => f.name === 'eth0')!;
    hostSide = eth0.kind === 'network' ? eth0.hostSide ?? '' : '';
    expect(hostSide).not.toBe('');
    netlabOk(['up', file]);
    web = await startWeb([lab]);
    page = await events(web, `?lab=${lab}`);
    const g = await page.next('graph');
    expect(cable(g.graph, 'if:a/eth0')).toMatchObject({ impairLabel: '' });
  });

  afterAll(async () => {
    page?.close();
    const code = await web?.stop();
    if (labLeftovers(lab).length) netlab(['down', lab]);
    let left = await settleLeftovers(lab);
    if (left.length) { console.warn(`removing what is left of ${lab} without netlab: ${(await forceRemoveLab(lab)).join('; ')}`); left = labLeftovers(lab); }
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    expect(code, `netlab web exit code (stderr: ${web?.stderr()})`).toBe(0);
    expect(left).toEqual([]);
    const id = labId(lab);
    await expectNoLeaks(before, { only: (probe, item) => probe === 'child processes' || item.includes(lab) || item.startsWith(`nl${id}`) || item === `ip netlab_${id}` });
  });

  it('rate 5mbit + loss 10% on a:eth0: tbf at 625000 bytes/s both ways, the loss in nftables, and the page gets the cable\'s new label', async () => {
    expect(rootQdisc(ns('a'), 'eth0').kind).toBe('noqueue');
    const t0 = performance.now();
    const r = await impair('a:eth0', { rate: '5mbit', loss: '10%' });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body).toEqual({ ok: true, lab, endpoint: 'a:eth0', interfaces: ['a:eth0'], impair: 'rate 5mbit loss 10%' });
    // The node's side (traffic leaving a) and the bridge side on the machine (traffic into a).
    for (const [where, q] of [['a eth0', rootQdisc(ns('a'), 'eth0')], [`machine ${hostSide}`, rootQdisc(null, hostSide)]] as const) {
      expect(q.kind, where).toBe('tbf');
      expect(q.options?.rate, where).toBe(625_000);
    }
    // Dropped where the packets arrive: into a at a's own prerouting, out of a at the bridge
    // port's ingress on the machine (netdev table named like the lab's).
    expect(lossTable(ns('a'))).toMatch(/iifname "eth0" numgen random mod 1000000 < 100000 drop/);
    expect(execFileSync('nft', ['list', 'table', 'netdev', `netlab_${labId(lab)}`], { encoding: 'utf8' })).toMatch(new RegExp(`ingress device "${hostSide}"[\\s\\S]*meta protocol ip numgen random mod 1000000 < 100000 drop`));
    const e = await page!.next('graph', (x) => cable(x.graph, 'if:a/eth0').impairLabel !== '', 3000);
    console.log(`web-impair.test.ts: POST impair -> graph event in ${Math.round(performance.now() - t0)} ms`);
    const c = cable(e.graph, 'if:a/eth0');
    expect(c.impairLabel).toBe('5mbit 10%');
    expect(c.impair).toEqual([
      // The kernel's reading of a's qdisc and loss rules (status), next to the model's.
      { from: 'a eth0', to: 'lan', text: 'rate 5mbit loss 10%', kernel: hasNetem ? expect.any(String) : 'rate 5mbit loss 10% (nftables)' },
      { from: 'lan', to: 'a eth0', text: 'rate 5mbit loss 10%', kernel: null },
    ]);
    expect(cable(e.graph, 'if:b/eth0').impairLabel).toBe('');
    // A page opened now reads the same.
    const g = (await api(web!, 'GET', `/api/labs/${lab}`)).body;
    expect(cable(g, 'if:a/eth0').impairLabel).toBe('5mbit 10%');
  });

  it('rate 2mbit on the link end a:eth1: both ends shaped, one label', async () => {
    const r = await impair('a:eth1', { rate: '2mbit' });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.interfaces).toEqual(['a:eth1', 'c:eth1']);
    expect(rootQdisc(ns('a'), 'eth1')).toMatchObject({ kind: 'tbf', options: { rate: 250_000 } });
    expect(rootQdisc(ns('c'), 'eth1')).toMatchObject({ kind: 'tbf', options: { rate: 250_000 } });
    const e = await page!.next('graph', (x) => cable(x.graph, 'link:0').impairLabel === '2mbit', 3000);
    expect(cable(e.graph, 'link:0').impair.map((d: any) => [d.from, d.to, d.text, d.kernel])).toEqual([
      ['a eth1', 'c eth1', 'rate 2mbit', 'rate 2mbit'],
      ['c eth1', 'a eth1', 'rate 2mbit', 'rate 2mbit'],
    ]);
  });

  it.skipIf(hasNetem)('delay 10ms is refused with the one line naming sch_netem (this kernel has none), and nothing changes', async () => {
    const r = await impair('a:eth0', { delay: '10ms' });
    expect(r.status).toBe(409);
    expect(r.body.error).toMatch(/^a:eth0: delay needs the sch_netem kernel module, which this kernel \(.+\) does not have .*nothing was built or changed$/);
    expect(r.body.error).not.toContain('\n');
    expect(rootQdisc(ns('a'), 'eth0')).toMatchObject({ kind: 'tbf', options: { rate: 625_000 } });
    expect((await api(web!, 'GET', `/api/labs/${lab}`)).body.links.find((l: any) => l.id === 'if:a/eth0').impairLabel).toBe('5mbit 10%');
  });

  it('refusals leave the kernel as it was: a value tc would not take (400), no token or a wrong one (401), a foreign Origin (403)', async () => {
    const bad = await impair('a:eth0', { rate: 'fast' });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatch(/^rate "fast" is not a rate/);
    const none = await impair('a:eth0', { rate: '1mbit' }, { headers: { Origin: web!.base } });
    expect(none.status).toBe(401);
    expect(none.body.error).toMatch(/token required/);
    expect((await impair('a:eth0', { rate: '1mbit' }, { headers: { Origin: web!.base, 'X-Netlab-Token': 'nope' } })).status).toBe(401);
    const foreign = await impair('a:eth0', null, { headers: { Origin: 'http://evil.example', 'X-Netlab-Token': web!.token } });
    expect(foreign.status).toBe(403);
    expect((await impair('a:eth9', null)).status).toBe(404);
    expect(rootQdisc(ns('a'), 'eth0')).toMatchObject({ kind: 'tbf', options: { rate: 625_000 } });
    expect(lossTable(ns('a'))).toMatch(/< 100000 drop/);
  });

  it('`netlab impair` in a shell reaches the page too (the state file is watched)', async () => {
    netlabOk(['impair', lab, 'b:eth0', '--rate', '1mbit']);
    const e = await page!.next('graph', (x) => cable(x.graph, 'if:b/eth0').impairLabel === '1mbit', 3000);
    expect(cable(e.graph, 'if:b/eth0').impair[0]).toMatchObject({ text: 'rate 1mbit', kernel: 'rate 1mbit' });
    netlabOk(['impair', lab, 'b:eth0', '--clear']);
    await page!.next('graph', (x) => cable(x.graph, 'if:b/eth0').impairLabel === '', 3000);
  });

  it('impair null clears: noqueue again on both sides, no loss rules, the label gone', async () => {
    const r = await impair('a:eth0', null);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body).toMatchObject({ interfaces: ['a:eth0'], impair: '' });
    expect(rootQdisc(ns('a'), 'eth0').kind).toBe('noqueue');
    expect(rootQdisc(null, hostSide).kind).toBe('noqueue');
    expect(lossTable(ns('a'))).not.toMatch(/drop/);
    const e = await page!.next('graph', (x) => cable(x.graph, 'if:a/eth0').impairLabel === '', 3000);
    expect(cable(e.graph, 'if:a/eth0').impair.map((d: any) => d.text)).toEqual(['', '']);
    expect(cable(e.graph, 'if:a/eth0').impair[0].kernel).toBe('');
    expect(cable(e.graph, 'link:0').impairLabel).toBe('2mbit');
    const c = await impair('a:eth1', null);
    expect(c.body.interfaces).toEqual(['a:eth1', 'c:eth1']);
    expect(rootQdisc(ns('c'), 'eth1').kind).toBe('noqueue');
    await page!.next('graph', (x) => cable(x.graph, 'link:0').impairLabel === '', 3000);
  });
});
