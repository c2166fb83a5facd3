// The web view's server without root: the express app (web/server/app.ts) over an injected
// fake data source, through supertest. Every endpoint, the security rules (token, Origin, Host,
// loopback vs other addresses), server-sent events, the page files; the view model that merges
// the model with the kernel's status (web/server/view.ts), cables' impairments per direction
// and POST impair's validation; and the standalone page.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import request from 'supertest';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadTopologyFile, loadTopologyText } from '../../topology/load.js';
import type { Impairment, Lab } from '../../topology/types.js';
import { NO_IMPAIRMENT } from '../../topology/impair.js';
import { modelOf, type LabState } from '../../controller/state.js';
import type { LabStatusReport, NodeStatus } from '../../controller/lab.js';
import type { NodeReading } from '../../controller/stats.js';
import { runChecks, type CheckReport } from '../../checks/run.js';
import { createWebApp, type WebApp } from '../../web/server/app.js';
import { SourceError, type LabSource, type SourceEvent } from '../../web/server/source.js';
import { impairmentLabel, labView } from '../../web/server/view.js';
import { predictedMatrixReport } from '../../web/server/predict.js';
import { standaloneHtml } from '../../web/server/html.js';
import type { EmbeddedData, LabSummary, ServerEvent, ViewNodeStats, WebGraph } from '../../web/server/types.js';

const TOKEN = 'test-token-0123456789';
const load = (f: string): Lab => {
  const r = loadTopologyFile(f);
  if (!r.lab) throw new Error(`${f}: ${JSON.stringify(r.diagnostics)}`);
  return r.lab;
};

/** What `status()` would report for a lab whose kernel objects all match the model. */
function healthyStatus(lab: Lab): LabStatusReport {
  const nodes: NodeStatus[] = lab.nodes.map((n, i) => ({
    name: n.name,
    netns: n.netns,
    present: true,
    interfaces: n.netns === null ? [] : [
      { name: 'lo', up: true, operUp: true, mtu: 65536, mac: null, addresses: ['127.0.0.1/8'] },
      ...n.interfaces.map((f) => ({ name: f.name, up: true, operUp: true, mtu: f.mtu, mac: f.mac, addresses: f.ipv4 ? [`${f.ipv4.address}/${f.ipv4.prefixLen}`] : [] })),
    ],
    routes: n.routes.map((r) => ({ dst: r.dst, via: r.via, dev: r.dev })),
    container: { node: n.name, state: 'running', pid: 1000 + i, exit: null, exitCode: null, oomKilled: false },
  }));
  // Fields of the report this view does not read are filled loosely: the type grows.
  return { lab: lab.name, status: 'up', file: lab.file, createdAt: null, as: null, hosts: [], nodes } as unknown as LabStatusReport;
}

/** An in-memory LabSource: labs with a model and (when up) a kernel status it can change. */
class FakeSource implements LabSource {
  labsList = new Map<string, { lab: Lab; status: LabStatusReport | null }>();
  setLinkCalls: [string, string, string, boolean][] = [];
  setImpairCalls: [string, string, string, Impairment | null][] = [];
  interest: string[][] = [];
  listeners = new Set<(e: SourceEvent) => void>();
  checkDelayMs = 0;
  /** The last report this source handed the server: what the API must pass on unchanged. */
  lastReport: CheckReport | null = null;

  add(lab: Lab, live: boolean): void {
    this.labsList.set(lab.name, { lab, status: live ? healthyStatus(lab) : null });
  }
  async labs(): Promise<LabSummary[]> {
    return [...this.labsList.values()].map(({ lab, status }) => ({ name: lab.name, status: status ? 'up' : 'offline', live: !!status, file: lab.file, nodes: lab.nodes.length }));
  }
  async graph(name: string): Promise<WebGraph | null> {
    const l = this.labsList.get(name);
    return l ? labView(l.lab, l.status, l.status ? 'up' : 'offline') : null;
  }
  async model(name: string) {
    const l = this.labsList.get(name);
    return l ? { lab: l.lab, live: !!l.status } : null;
  }
  async runChecks(name: string, matrix: boolean): Promise<CheckReport> {
    this.lastReport = await this.computeChecks(name, matrix);
    return this.lastReport;
  }
  private async computeChecks(name: string, matrix: boolean): Promise<CheckReport> {
    const l = this.labsList.get(name);
    if (!l) throw new SourceError(`no lab ${name}`, 404);
    if (this.checkDelayMs) await new Promise((r) => setTimeout(r, this.checkDelayMs));
    if (matrix) return predictedMatrixReport(l.lab);
    const r = await runChecks(l.lab, l.lab.checks, 'checks', { predictOnly: true });
    if (!l.status) return r;
    // "Observed": what the model predicts, except that web is unreachable when its eth0 is down.
    const webDown = l.status.nodes.find((n) => n.name === 'web')?.interfaces.find((f) => f.name === 'eth0')?.up === false;
    const outcomes = r.outcomes.map((o) => {
      const observed = webDown && (o.target === 'web' || o.target.includes('//web')) ? 'fail' as const : o.predicted;
      return { ...o, observed, pass: observed === o.expected, disagree: observed !== o.predicted };
    });
    return { ...r, observed: true, outcomes, passed: outcomes.filter((o) => o.pass).length, failed: outcomes.filter((o) => !o.pass).length, disagreements: outcomes.filter((o) => o.disagree).length };
  }
  /** readStats: each reading 100 ms after the last, with 50 ms more CPU time (50 %). */
  statsCalls: [string, string][] = [];
  private clockMs = 0;
  private cpuNs = 2e9;
  async readStats(lab: string, node: string): Promise<NodeReading | null> {
    this.statsCalls.push([lab, node]);
    if (node === 'solo') return null; // as a node another host builds
    this.clockMs += 100;
    this.cpuNs += 50e6;
    return {
      name: node,
      atMs: this.clockMs,
      cgroup: { cpuNs: this.cpuNs, memoryBytes: 3 * 1024 * 1024, memoryLimit: 64 * 1024 * 1024, pids: 2 },
      net: [{ iface: 'eth0', rxBytes: 1500 + this.statsCalls.length, txBytes: 700 }],
    };
  }
  async setLink(lab: string, node: string, iface: string, up: boolean): Promise<void> {
    this.setLinkCalls.push([lab, node, iface, up]);
    const f = this.labsList.get(lab)?.status?.nodes.find((n) => n.name === node)?.interfaces.find((x) => x.name === iface);
    if (f) { f.up = up; f.operUp = up; }
    this.emit({ type: 'lab', lab });
  }
  /** As the controller: both ends of a link, the model changed. It reports no change event, so
   *  a page sees the new view only if the server pushes it by itself. */
  async setImpairment(lab: string, node: string, iface: string, impair: Impairment | null): Promise<string[]> {
    this.setImpairCalls.push([lab, node, iface, impair]);
    const l = this.labsList.get(lab)!.lab;
    const f = l.nodes.find((n) => n.name === node)!.interfaces.find((x) => x.name === iface)!;
    const ends = [{ node, f }];
    if (f.peer) ends.push({ node: f.peer.node, f: l.nodes.find((n) => n.name === f.peer!.node)!.interfaces.find((x) => x.name === f.peer!.iface)! });
    for (const e of ends) {
      if (impair) e.f.impair = impair;
      else delete e.f.impair;
    }
    return ends.map((e) => `${e.node}:${e.f.name}`);
  }
  setInterest(labs: Iterable<string>): void {
    this.interest.push([...labs].sort());
  }
  subscribe(fn: (e: SourceEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
  emit(e: SourceEvent): void {
    for (const l of this.listeners) l(e);
  }
  info() { return { fake: true }; }
  async close(): Promise<void> { /* nothing */ }
}

let staticDir = '';
beforeEach(() => {
  staticDir = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-web-static-'));
  fs.writeFileSync(path.join(staticDir, 'index.html'), '<!doctype html><html><head><title>netlab</title>\n<link rel="stylesheet" href="app.css">\n</head><body>\n<script src="app.js"></script>\n</body></html>\n');
  fs.writeFileSync(path.join(staticDir, 'app.js'), 'console.log("</script> inside a string");\n//# sourceMappingURL=app.js.map\n');
  fs.writeFileSync(path.join(staticDir, 'app.css'), 'body { color: red }\n');
});
afterEach(() => fs.rmSync(staticDir, { recursive: true, force: true }));

const apps: WebApp[] = [];
afterAll(() => { for (const a of apps) a.close(); });

/** Two containers on a network and a chain of two links, impaired in the file: the link a-c per
 *  direction (a: both values, c's b: side its own), b-c alike both ways, a's attachment. */
const IMPAIRED = `name: im
networks:
  lan: { subnet: 10.5.1.0/24, gateway: false }
nodes:
  a: { networks: { lan: { ipv4: 10.5.1.10, impair: { rate: 5mbit } } } }
  b: { networks: [lan] }
  c:
links:
  - endpoints: ["a:eth1", "c:eth1"]
    ipv4: [10.5.2.1/30, 10.5.2.2/30]
    impair: { rate: 20mbit, delay: 10ms, b: { loss: 20%, rate: 10mbit } }
  - endpoints: ["b:eth1", "c:eth2"]
    ipv4: [10.5.3.1/30, 10.5.3.2/30]
    impair: { delay: 20ms, jitter: 5ms, loss: 1% }
`;
function impairedLab(): Lab {
  const r = loadTopologyText(IMPAIRED, '');
  if (!r.lab) throw new Error(JSON.stringify(r.diagnostics));
  return r.lab;
}

function setup(o: { host?: string; live?: boolean } = {}) {
  const source = new FakeSource();
  source.add(load('labs/bridge.yml'), o.live ?? true);
  source.add(load('labs/routed.yml'), false);
  source.add(impairedLab(), true);
  const web = createWebApp(source, { token: TOKEN, host: o.host ?? '127.0.0.1', defaultLab: 'bridge', staticDir, debounceMs: 5, statsSampleMs: 1 });
  apps.push(web);
  return { source, web, app: web.app };
}

/** A POST as the page makes it: the token header and this server's own Origin. */
function post(app: WebApp['app'], url: string, body?: unknown) {
  const r = request(app).post(url).set('Host', '127.0.0.1:8080').set('Origin', 'http://127.0.0.1:8080').set('X-Netlab-Token', TOKEN);
  return body === undefined ? r : r.send(body as object);
}

describe('web API: reading', () => {
  it('GET /api/labs lists the labs and the one to show first', async () => {
    const { app } = setup();
    const r = await request(app).get('/api/labs').expect(200).expect('Content-Type', /json/);
    expect(r.body.defaultLab).toBe('bridge');
    expect(r.body.labs.map((l: LabSummary) => [l.name, l.live])).toEqual([['bridge', true], ['routed', false], ['im', true]]);
  });

  it('GET /api/labs/:lab is the graph: kinds, processes, interfaces, addresses, routes, cable ends and state', async () => {
    const { app } = setup();
    const g = (await request(app).get('/api/labs/bridge').expect(200)).body as WebGraph;
    expect(g.live).toBe(true);
    expect(g.nodes.map((n) => n.id).sort()).toEqual(['machine', 'net:lan', 'node:client1', 'node:client2', 'node:solo', 'node:web']);
    const web = g.nodes.find((n) => n.id === 'node:web')!;
    expect(web.kind).toBe('container');
    expect(web.process).toMatchObject({ state: 'running', pid: expect.any(Number) });
    expect(web.interfaces.map((f) => f.name)).toEqual(['lo', 'eth0']);
    expect(web.interfaces[1]).toMatchObject({ network: 'lan', addresses: ['10.10.0.10/24'], up: true, carrier: true });
    expect(web.routes).toContainEqual({ dst: '0.0.0.0/0', via: '10.10.0.1', dev: 'eth0' });
    expect(g.nodes.find((n) => n.id === 'net:lan')).toMatchObject({ kind: 'network', variant: 'bridge', detail: 'bridge 10.10.0.0/24' });
    expect(g.nodes.find((n) => n.id === 'machine')!.kind).toBe('machine');
    expect(g.links.map((l) => l.id).sort()).toEqual(['gw:lan', 'if:client1/eth0', 'if:client2/eth0', 'if:web/eth0']);
    const cable = g.links.find((l) => l.id === 'if:web/eth0')!;
    expect(cable).toMatchObject({ kind: 'attachment', source: 'node:web', target: 'net:lan', state: 'up', endpoint: 'web:eth0' });
    expect(cable.a).toEqual({ id: 'node:web', iface: 'eth0', address: '10.10.0.10/24' });
    expect(g.links.find((l) => l.id === 'gw:lan')).toMatchObject({ endpoint: null, b: { address: '10.10.0.1/24' } });
    expect(g.checks).toHaveLength(6);
    // /graph is the same resource.
    expect((await request(app).get('/api/labs/bridge/graph').expect(200)).body.nodes).toHaveLength(6);
  });

  it('a lab that is not up is drawn from its model', async () => {
    const { app } = setup();
    const g = (await request(app).get('/api/labs/routed').expect(200)).body as WebGraph;
    expect(g.live).toBe(false);
    expect(g.status).toBe('offline');
    expect(g.nodes.filter((n) => n.kind === 'container').every((n) => n.process?.state === 'model')).toBe(true);
    const p2p = g.links.find((l) => l.id === 'link:0')!;
    expect(p2p).toMatchObject({ kind: 'link', state: 'unknown', a: { iface: 'eth1', address: '10.0.12.1/30' }, b: { iface: 'eth1', address: '10.0.12.2/30' } });
  });

  it('unknown labs and endpoints are 404 with a JSON error', async () => {
    const { app } = setup();
    expect((await request(app).get('/api/labs/nope').expect(404)).body.error).toMatch(/no lab nope/);
    expect((await request(app).get('/api/labs/Bad_Name').expect(404)).body.error).toMatch(/no lab/);
    expect((await request(app).get('/api/labs/nope/predictions').expect(404)).body.error).toMatch(/no lab/);
    expect((await request(app).get('/api/nothing').expect(404)).body.error).toMatch(/no such API endpoint/);
  });

  it('GET predictions: the all-pairs matrix and the declared checks; from & to explain one pair', async () => {
    const { app } = setup();
    const p = (await request(app).get('/api/labs/bridge/predictions').expect(200)).body;
    expect(p.nodes).toEqual(['web', 'client1', 'client2', 'solo']);
    expect(p.matrix).toHaveLength(16);
    const at = (a: string, b: string) => p.matrix[p.nodes.indexOf(a) * 4 + p.nodes.indexOf(b)];
    expect(at('client1', 'web')).toBe(1);
    expect(at('solo', 'web')).toBe(0);
    expect(at('web', 'web')).toBe(-1);
    expect(p.checks.outcomes).toHaveLength(6);
    expect(p.checks.observed).toBe(false);
    const one = (await request(app).get('/api/labs/bridge/predictions?from=client1&to=web').expect(200)).body;
    expect(one).toMatchObject({ from: 'client1', to: 'web', reach: true, address: '10.10.0.10' });
    expect(one.explanation).toMatch(/client1 -> web/);
    expect(one.path.map((h: { node: string }) => h.node)).toEqual(['client1', 'web']);
    await request(app).get('/api/labs/bridge/predictions?from=client1').expect(400);
  });

  it('GET /api/health reports the source', async () => {
    const { app } = setup();
    expect((await request(app).get('/api/health').expect(200)).body).toMatchObject({ ok: true, source: { fake: true } });
  });
});

describe('web API: node stats', () => {
  it('GET nodes/:node/stats is the node\'s entry of netlab stats --json; the first samples twice, the next is since the previous request', async () => {
    const { app, source } = setup();
    const first = (await request(app).get('/api/labs/bridge/nodes/web/stats').expect(200).expect('Content-Type', /json/)).body as ViewNodeStats;
    expect(first).toEqual({
      name: 'web',
      cpu: { usage_seconds: 2.1, percent: 50 },
      memory: { bytes: 3 * 1024 * 1024, limit: 64 * 1024 * 1024 },
      pids: 2,
      net: [{ iface: 'eth0', rx_bytes: 1502, tx_bytes: 700 }],
    });
    expect(source.statsCalls).toEqual([['bridge', 'web'], ['bridge', 'web']]);
    const next = (await request(app).get('/api/labs/bridge/nodes/web/stats').expect(200)).body as ViewNodeStats;
    expect(next.cpu).toEqual({ usage_seconds: 2.15, percent: 50 });
    expect(source.statsCalls).toHaveLength(3);
  });

  it('unknown lab or node is 404, a lab that is not up 409, a node not built here 404', async () => {
    const { app, source } = setup();
    expect((await request(app).get('/api/labs/nope/nodes/web/stats').expect(404)).body.error).toMatch(/no lab nope/);
    expect((await request(app).get('/api/labs/bridge/nodes/ghost/stats').expect(404)).body.error).toMatch(/has no node ghost/);
    expect((await request(app).get('/api/labs/routed/nodes/r1/stats').expect(409)).body.error).toMatch(/not up/);
    expect((await request(app).get('/api/labs/bridge/nodes/solo/stats').expect(404)).body.error).toMatch(/not built/);
    expect(source.statsCalls).toEqual([['bridge', 'solo']]);
  });

  it('a source refusal keeps its status', async () => {
    const { app, source } = setup();
    source.readStats = async () => { throw new SourceError('netlab stats needs root', 403); };
    expect((await request(app).get('/api/labs/bridge/nodes/web/stats').expect(403)).body.error).toMatch(/needs root/);
  });
});

describe('web API: checks and links', () => {
  it('POST checks runs the declared checks and keeps the result for GET', async () => {
    const { app, source } = setup();
    await request(app).get('/api/labs/bridge/checks').expect(404);
    const r = (await post(app, '/api/labs/bridge/checks').expect(200)).body;
    // The server passes on the source's report as it is (the observed side is the fake's own
    // invention, so only its relay is judged here) ...
    expect(r).toMatchObject(JSON.parse(JSON.stringify(source.lastReport)));
    // ... and the model's side is what labs/bridge.yml says, read off the file by hand: its six
    // checks in order, all expected to reach but solo's (network_mode none), and predicted so.
    expect(r.outcomes.map((o: { label: string; expected: string; predicted: string }) => [o.label, o.expected, o.predicted])).toEqual([
      ['ping client1 -> web', 'reach', 'reach'],
      ['ping client2 -> web', 'reach', 'reach'],
      ['http client1 -> http://web/', 'reach', 'reach'],
      ['tcp client2 -> web:80', 'reach', 'reach'],
      ['dns client1 resolves web', 'reach', 'reach'],
      ['ping solo -> web', 'fail', 'fail'],
    ]);
    expect(r).toMatchObject({ lab: 'bridge', mode: 'checks' });
    expect((await request(app).get('/api/labs/bridge/checks').expect(200)).body).toEqual(r);
  });

  it('POST checks?matrix=1 runs every ordered pair, without the per-pair explanations', async () => {
    const { app } = setup();
    const r = (await post(app, '/api/labs/bridge/checks?matrix=1').expect(200)).body;
    expect(r.mode).toBe('matrix');
    // bridge.yml has 4 nodes: 4 x 3 ordered pairs.
    expect(r.outcomes).toHaveLength(12);
    expect(r.outcomes.every((o: { explanation: string }) => o.explanation === '')).toBe(true);
  });

  it('a second run while one is running is 409', async () => {
    const { app, source } = setup();
    source.checkDelayMs = 200;
    const first = post(app, '/api/labs/bridge/checks').then((r) => r);
    await new Promise((r) => setTimeout(r, 50));
    expect((await post(app, '/api/labs/bridge/checks').expect(409)).body.error).toMatch(/already running/);
    expect((await first).status).toBe(200);
  });

  it('POST links sets a cable down through the source, and the view shows it down', async () => {
    const { app, source } = setup();
    const r = (await post(app, '/api/labs/bridge/links', { endpoint: 'web:eth0', state: 'down' }).expect(200)).body;
    expect(r).toEqual({ ok: true, lab: 'bridge', endpoint: 'web:eth0', state: 'down' });
    expect(source.setLinkCalls).toEqual([['bridge', 'web', 'eth0', false]]);
    const g = (await request(app).get('/api/labs/bridge').expect(200)).body as WebGraph;
    expect(g.links.find((l) => l.id === 'if:web/eth0')).toMatchObject({ state: 'down', why: 'web eth0 admin down' });
    // The checks run against the changed state and their report reaches the page unchanged.
    const checks = (await post(app, '/api/labs/bridge/checks').expect(200)).body;
    expect(checks).toMatchObject(JSON.parse(JSON.stringify(source.lastReport)));
    await post(app, '/api/labs/bridge/links', { endpoint: 'web:eth0', state: 'up' }).expect(200);
    expect(source.setLinkCalls[1]).toEqual(['bridge', 'web', 'eth0', true]);
  });

  it('POST links validates the body, the endpoint and that the lab is up', async () => {
    const { app, source } = setup();
    expect((await post(app, '/api/labs/bridge/links').expect(400)).body.error).toMatch(/JSON body/);
    expect((await post(app, '/api/labs/bridge/links', { endpoint: 'web', state: 'down' }).expect(400)).body.error).toMatch(/NODE:IFACE/);
    expect((await post(app, '/api/labs/bridge/links', { endpoint: 'web:eth0', state: 'sideways' }).expect(400)).body.error).toMatch(/"up" or "down"/);
    expect((await post(app, '/api/labs/bridge/links', { endpoint: 'nobody:eth0', state: 'down' }).expect(404)).body.error).toMatch(/no node nobody/);
    expect((await post(app, '/api/labs/bridge/links', { endpoint: 'web:eth9', state: 'down' }).expect(404)).body.error).toMatch(/no interface eth9/);
    expect((await post(app, '/api/labs/nope/links', { endpoint: 'web:eth0', state: 'down' }).expect(404)).body.error).toMatch(/no lab/);
    expect((await post(app, '/api/labs/routed/links', { endpoint: 'r1:eth1', state: 'down' }).expect(409)).body.error).toMatch(/not up/);
    expect(source.setLinkCalls).toEqual([]);
  });

  it('a source failure keeps its status (409 busy) and message', async () => {
    const { app, source } = setup();
    source.setLink = async () => { throw new SourceError('lab bridge is busy: another netlab (pid 1) is bringing it up or down', 409); };
    expect((await post(app, '/api/labs/bridge/links', { endpoint: 'web:eth0', state: 'down' }).expect(409)).body.error).toMatch(/busy/);
  });
});

describe('web API: impairments', () => {
  const cable = (g: WebGraph, id: string) => g.links.find((l) => l.id === id)!;

  it('POST impair sets a cable\'s impairment through the source, values read as tc writes them; the view shows it both ways; null clears', async () => {
    const { app, source } = setup();
    const r = (await post(app, '/api/labs/bridge/impair', { endpoint: 'web:eth0', impair: { rate: '5mbit', loss: '10%' } }).expect(200)).body;
    expect(r).toEqual({ ok: true, lab: 'bridge', endpoint: 'web:eth0', interfaces: ['web:eth0'], impair: 'rate 5mbit loss 10%' });
    expect(source.setImpairCalls).toEqual([['bridge', 'web', 'eth0', { ...NO_IMPAIRMENT, rateBps: 5_000_000, lossPct: 10 }]]);
    const g = (await request(app).get('/api/labs/bridge').expect(200)).body as WebGraph;
    expect(cable(g, 'if:web/eth0').impair.map((d) => [d.from, d.to, d.text])).toEqual([['web eth0', 'lan', 'rate 5mbit loss 10%'], ['lan', 'web eth0', 'rate 5mbit loss 10%']]);
    expect(cable(g, 'if:web/eth0').impairLabel).toBe('5mbit 10%');
    expect(cable(g, 'if:client1/eth0').impairLabel).toBe('');
    // Every value, and limit as a number or a string of digits.
    await post(app, '/api/labs/bridge/impair', { endpoint: 'web:eth0', impair: { rate: '100kbps', delay: '1.5ms', jitter: '500us', loss: '0.1%', duplicate: '1%', corrupt: '2%', reorder: '25%', limit: 100 } }).expect(200);
    expect(source.setImpairCalls[1][3]).toEqual({ rateBps: 800_000, delayUs: 1500, jitterUs: 500, lossPct: 0.1, duplicatePct: 1, corruptPct: 2, reorderPct: 25, limit: 100 });
    await post(app, '/api/labs/bridge/impair', { endpoint: 'web:eth0', impair: { rate: '1gbit', limit: '50' } }).expect(200);
    expect(source.setImpairCalls[2][3]).toEqual({ ...NO_IMPAIRMENT, rateBps: 1e9, limit: 50 });
    // null takes it away.
    const c = (await post(app, '/api/labs/bridge/impair', { endpoint: 'web:eth0', impair: null }).expect(200)).body;
    expect(c).toMatchObject({ interfaces: ['web:eth0'], impair: '' });
    expect(source.setImpairCalls[3]).toEqual(['bridge', 'web', 'eth0', null]);
    const g2 = (await request(app).get('/api/labs/bridge').expect(200)).body as WebGraph;
    expect(cable(g2, 'if:web/eth0').impair.map((d) => d.text)).toEqual(['', '']);
    expect(cable(g2, 'if:web/eth0').impairLabel).toBe('');
  });

  it('POST impair on a link end sets both directions (the source changes both ends)', async () => {
    const { app } = setup();
    const r = (await post(app, '/api/labs/im/impair', { endpoint: 'a:eth1', impair: { rate: '2mbit' } }).expect(200)).body;
    expect(r.interfaces).toEqual(['a:eth1', 'c:eth1']);
    const g = (await request(app).get('/api/labs/im').expect(200)).body as WebGraph;
    expect(cable(g, 'link:0').impair.map((d) => [d.from, d.to, d.text])).toEqual([['a eth1', 'c eth1', 'rate 2mbit'], ['c eth1', 'a eth1', 'rate 2mbit']]);
    expect(cable(g, 'link:0').impairLabel).toBe('2mbit');
  });

  it.each([
    [undefined, /JSON body/],
    [{ endpoint: 'web:eth0' }, /JSON body/],
    [{ endpoint: 'web', impair: { rate: '1mbit' } }, /NODE:IFACE/],
    [{ endpoint: 'web:eth0', impair: 'rate 1mbit' }, /"impair" must be an object of tc values .* or null to clear/],
    [{ endpoint: 'web:eth0', impair: ['1mbit'] }, /"impair" must be an object/],
    [{ endpoint: 'web:eth0', impair: {} }, /^nothing to set: give rate, delay/],
    [{ endpoint: 'web:eth0', impair: { speed: '1mbit' } }, /^unknown impairment "speed": expected rate, delay, jitter, loss, duplicate, corrupt, reorder, limit$/],
    [{ endpoint: 'web:eth0', impair: { rate: 'fast' } }, /^rate "fast" is not a rate; expected e\.g\. 10mbit/],
    [{ endpoint: 'web:eth0', impair: { rate: 1000000 } }, /^"rate" must be a string in tc's units, e\.g\. "10mbit"$/],
    [{ endpoint: 'web:eth0', impair: { loss: '' } }, /^"loss" must be a string in tc's units/],
    [{ endpoint: 'web:eth0', impair: { delay: '10 parsecs' } }, /^delay "10 parsecs" is not a time; expected e\.g\. 20ms/],
    [{ endpoint: 'web:eth0', impair: { delay: '2min' } }, /^delay "2min" is not a time/],
    [{ endpoint: 'web:eth0', impair: { delay: '90s' } }, /^delay 90s is over a minute$/],
    [{ endpoint: 'web:eth0', impair: { loss: '150%' } }, /^loss "150%" is not a percentage from 0% to 100%/],
    [{ endpoint: 'web:eth0', impair: { loss: '5' } }, /^loss "5" is not a percentage/],
    [{ endpoint: 'web:eth0', impair: { jitter: '5ms' } }, /^jitter varies a delay: give delay too$/],
    [{ endpoint: 'web:eth0', impair: { delay: '5ms', jitter: '9ms' } }, /^jitter 9ms is larger than delay 5ms/],
    [{ endpoint: 'web:eth0', impair: { reorder: '25%' } }, /^reorder sends some packets ahead of the delayed ones: give delay too$/],
    [{ endpoint: 'web:eth0', impair: { rate: '1mbit', limit: 0 } }, /^limit 0: expected a number of packets, 1 or more$/],
    [{ endpoint: 'web:eth0', impair: { rate: '1mbit', limit: '10p' } }, /^limit "10p": expected a number of packets/],
  ])('POST impair %j is 400 with one line, and nothing is asked of the source', async (body, msg) => {
    const { app, source } = setup();
    const r = await post(app, '/api/labs/bridge/impair', body).expect(400).expect('Content-Type', /json/);
    expect(r.body.error).toMatch(msg);
    expect(r.body.error).not.toContain('\n');
    expect(source.setImpairCalls).toEqual([]);
  });

  it('POST impair: unknown lab, node or interface is 404, a lab that is not up 409', async () => {
    const { app, source } = setup();
    const body = (endpoint: string) => ({ endpoint, impair: { rate: '1mbit' } });
    expect((await post(app, '/api/labs/nope/impair', body('web:eth0')).expect(404)).body.error).toBe('no lab nope');
    expect((await post(app, '/api/labs/bridge/impair', body('nobody:eth0')).expect(404)).body.error).toBe('lab bridge has no node nobody');
    expect((await post(app, '/api/labs/bridge/impair', body('web:eth9')).expect(404)).body.error).toBe('node web has no interface eth9');
    expect((await post(app, '/api/labs/routed/impair', body('r1:eth1')).expect(409)).body.error).toMatch(/^lab routed is not up: impairments can be set only in a running lab$/);
    expect(source.setImpairCalls).toEqual([]);
  });

  it('a refusal from the controller (this kernel has no sch_netem) keeps its status and its one line', async () => {
    const { app, source } = setup();
    const netem = 'web:eth0: delay needs the sch_netem kernel module, which this kernel (5.10.0-test) does not have (rate and loss work without it); nothing was built or changed';
    source.setImpairment = async () => { throw new SourceError(netem, 409); };
    const r = await post(app, '/api/labs/bridge/impair', { endpoint: 'web:eth0', impair: { delay: '10ms' } }).expect(409);
    expect(r.body).toEqual({ error: netem });
  });

  it('every open page gets the new graph after POST impair, though the source reports no change', async () => {
    const { web } = setup();
    const s = await openEvents(web, '?lab=bridge');
    try {
      const g0 = await s.next('graph');
      expect(g0.type === 'graph' && cable(g0.graph, 'if:web/eth0').impairLabel).toBe('');
      await post(web.app, '/api/labs/bridge/impair', { endpoint: 'web:eth0', impair: { rate: '5mbit', delay: '20ms', loss: '1%' } }).expect(200);
      const g1 = await s.next('graph');
      expect(g1.type === 'graph' && cable(g1.graph, 'if:web/eth0').impairLabel).toBe('5mbit 20ms 1%');
      expect(g1.type === 'graph' && cable(g1.graph, 'if:web/eth0').impair[0].text).toBe('rate 5mbit delay 20ms loss 1%');
      await post(web.app, '/api/labs/bridge/impair', { endpoint: 'web:eth0', impair: null }).expect(200);
      const g2 = await s.next('graph');
      expect(g2.type === 'graph' && cable(g2.graph, 'if:web/eth0').impairLabel).toBe('');
    } finally {
      await s.close();
    }
  });
});

describe('web API: security', () => {
  const changes: [string, unknown][] = [
    ['/api/labs/bridge/checks', undefined],
    ['/api/labs/bridge/links', { endpoint: 'web:eth0', state: 'down' }],
    ['/api/labs/bridge/impair', { endpoint: 'web:eth0', impair: { rate: '1mbit' } }],
  ];

  it.each(changes)('POST %s without the token is 401', async (url, body) => {
    const { app, source } = setup();
    const r = await request(app).post(url).set('Host', '127.0.0.1:8080').set('Origin', 'http://127.0.0.1:8080').send(body as object).expect(401).expect('Content-Type', /json/);
    expect(r.body.error).toMatch(/token required/);
    expect(source.setLinkCalls).toEqual([]);
    expect(source.setImpairCalls).toEqual([]);
  });

  it.each(changes)('POST %s with a wrong token, or the token only in the query string, is 401', async (url, body) => {
    const { app } = setup();
    await request(app).post(url).set('Host', '127.0.0.1:8080').set('Origin', 'http://127.0.0.1:8080').set('X-Netlab-Token', 'wrong').send(body as object).expect(401);
    await request(app).post(`${url}?token=${TOKEN}`).set('Host', '127.0.0.1:8080').set('Origin', 'http://127.0.0.1:8080').send(body as object).expect(401);
  });

  it.each(changes)('POST %s from a foreign Origin (or none) is 403, even with the token', async (url, body) => {
    const { app, source } = setup();
    const foreign = await request(app).post(url).set('Host', '127.0.0.1:8080').set('Origin', 'http://evil.example').set('X-Netlab-Token', TOKEN).send(body as object).expect(403);
    expect(foreign.body.error).toMatch(/foreign Origin http:\/\/evil\.example/);
    // Same host, other port: another origin.
    await request(app).post(url).set('Host', '127.0.0.1:8080').set('Origin', 'http://127.0.0.1:9999').set('X-Netlab-Token', TOKEN).send(body as object).expect(403);
    const none = await request(app).post(url).set('Host', '127.0.0.1:8080').set('X-Netlab-Token', TOKEN).send(body as object).expect(403);
    expect(none.body.error).toMatch(/Origin header required/);
    expect(source.setLinkCalls).toEqual([]);
    expect(source.setImpairCalls).toEqual([]);
  });

  it('Authorization: Bearer works as the token header', async () => {
    const { app } = setup();
    await request(app).post('/api/labs/bridge/checks').set('Host', 'localhost:8080').set('Origin', 'http://localhost:8080').set('Authorization', `Bearer ${TOKEN}`).expect(200);
  });

  it('on loopback, a request for a non-loopback Host name (DNS rebinding) is 403', async () => {
    const { app } = setup();
    const r = await request(app).get('/api/labs').set('Host', 'evil.example:8080').expect(403);
    expect(r.body.error).toMatch(/loopback names only/);
    await request(app).get('/api/labs').set('Host', 'localhost:8080').expect(200);
    await request(app).get('/api/labs').set('Host', '[::1]:8080').expect(200);
  });

  it('on a non-loopback address, reading needs the token too (header or query), and POST rules stay', async () => {
    const { app } = setup({ host: '0.0.0.0' });
    expect((await request(app).get('/api/labs').set('Host', '192.0.2.10:8080').expect(401)).body.error).toMatch(/token required/);
    await request(app).get('/api/labs/bridge').set('Host', '192.0.2.10:8080').expect(401);
    await request(app).get('/api/labs/bridge/predictions').set('Host', '192.0.2.10:8080').expect(401);
    await request(app).get('/api/events').set('Host', '192.0.2.10:8080').expect(401);
    await request(app).get('/api/labs').set('Host', '192.0.2.10:8080').set('X-Netlab-Token', TOKEN).expect(200);
    await request(app).get(`/api/labs?token=${TOKEN}`).set('Host', '192.0.2.10:8080').expect(200);
    await request(app).post('/api/labs/bridge/checks').set('Host', '192.0.2.10:8080').set('Origin', 'http://192.0.2.10:8080').expect(401);
    await request(app).post('/api/labs/bridge/checks').set('Host', '192.0.2.10:8080').set('Origin', 'http://evil.example').set('X-Netlab-Token', TOKEN).expect(403);
    await request(app).post('/api/labs/bridge/checks').set('Host', '192.0.2.10:8080').set('Origin', 'http://192.0.2.10:8080').set('X-Netlab-Token', TOKEN).expect(200);
  });

  it('responses carry a restrictive CSP and no framing', async () => {
    const { app } = setup();
    const r = await request(app).get('/api/labs').expect(200);
    expect(r.headers['content-security-policy']).toMatch(/default-src 'self'/);
    expect(r.headers['x-frame-options']).toBe('DENY');
    expect(r.headers['x-powered-by']).toBeUndefined();
  });
});

describe('web: the page files', () => {
  it('serves index.html, app.js and app.css from the static folder, nothing else', async () => {
    const { app } = setup();
    expect((await request(app).get('/').expect(200).expect('Content-Type', /html/)).text).toContain('<script src="app.js">');
    await request(app).get('/app.js').expect(200).expect('Content-Type', /javascript/);
    await request(app).get('/app.css').expect(200).expect('Content-Type', /css/);
    await request(app).get('/server/app.js').expect(404);
    await request(app).get('/../package.json').expect(404);
  });

  it('a missing bundle says to build', async () => {
    const { app } = setup();
    fs.rmSync(path.join(staticDir, 'app.js'));
    expect((await request(app).get('/app.js').expect(500)).body.error).toMatch(/npm run build/);
  });
});

/** Reads server-sent events from a real socket (supertest buffers whole responses). */
async function openEvents(web: WebApp, query: string): Promise<{ events: ServerEvent[]; next(type: ServerEvent['type'], ms?: number): Promise<ServerEvent>; close(): Promise<void> }> {
  const server = http.createServer(web.app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const events: ServerEvent[] = [];
  const waiters: { type: string; resolve: (e: ServerEvent) => void; from: number }[] = [];
  let consumed = 0;
  const req = http.get({ host: '127.0.0.1', port, path: `/api/events${query}` });
  const res = await new Promise<http.IncomingMessage>((r) => req.on('response', r));
  expect(res.statusCode).toBe(200);
  expect(res.headers['content-type']).toMatch(/text\/event-stream/);
  let buf = '';
  res.on('data', (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const data = block.split('\n').find((l) => l.startsWith('data: '));
      if (!data) continue;
      events.push(JSON.parse(data.slice(6)) as ServerEvent);
      for (const w of [...waiters]) {
        const hit = events.slice(w.from).find((e) => e.type === w.type);
        if (hit) { waiters.splice(waiters.indexOf(w), 1); w.resolve(hit); }
      }
    }
  });
  return {
    events,
    next(type, ms = 2000) {
      const from = consumed;
      const hitAt = events.findIndex((e, k) => k >= from && e.type === type);
      if (hitAt >= 0) { consumed = hitAt + 1; return Promise.resolve(events[hitAt]); }
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no ${type} event within ${ms} ms (got ${events.map((e) => e.type).join(', ')})`)), ms);
        waiters.push({ type, from, resolve: (e) => { clearTimeout(t); consumed = events.indexOf(e) + 1; resolve(e); } });
      });
    },
    async close() {
      req.destroy();
      web.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe('web API: server-sent events', () => {
  it('sends the labs and the lab, then a new graph when the source reports a change', async () => {
    const { web, source } = setup();
    const s = await openEvents(web, '?lab=bridge');
    try {
      const labs = await s.next('labs');
      expect(labs.type === 'labs' && labs.labs.map((l) => l.name)).toEqual(['bridge', 'routed', 'im']);
      const g0 = await s.next('graph');
      expect(g0.type === 'graph' && g0.graph.links.find((l) => l.id === 'if:web/eth0')!.state).toBe('up');
      expect(source.interest.at(-1)).toEqual(['bridge']);
      // A kernel change (here: the fake's setLink emits a lab event) pushes the new view.
      await source.setLink('bridge', 'web', 'eth0', false);
      const g1 = await s.next('graph');
      expect(g1.type === 'graph' && g1.graph.links.find((l) => l.id === 'if:web/eth0')!.state).toBe('down');
      // An event that changes nothing sends nothing.
      source.emit({ type: 'lab', lab: 'bridge' });
      await new Promise((r) => setTimeout(r, 100));
      expect(s.events.filter((e) => e.type === 'graph')).toHaveLength(2);
      // Labs coming and going: the list, and 'gone' for the lab on screen.
      source.add(load('labs/none.yml'), true);
      source.emit({ type: 'labs' });
      const labs2 = await s.next('labs');
      expect(labs2.type === 'labs' && labs2.labs.map((l) => l.name).sort()).toEqual(['bridge', 'im', 'none', 'routed']);
      source.labsList.delete('bridge');
      source.emit({ type: 'lab', lab: 'bridge' });
      expect(await s.next('gone')).toEqual({ type: 'gone', lab: 'bridge' });
    } finally {
      await s.close();
    }
    expect(source.interest.at(-1)).toEqual([]);
  });

  it('check results run by one page reach the others', async () => {
    const { web } = setup();
    const s = await openEvents(web, '?lab=bridge');
    try {
      await s.next('graph');
      await post(web.app, '/api/labs/bridge/checks').expect(200);
      const c = await s.next('checks');
      expect(c.type === 'checks' && c.report.passed).toBe(6);
    } finally {
      await s.close();
    }
  });
});

describe('web view model', () => {
  it('a missing namespace interface, no carrier and an exited process show as such', () => {
    const lab = load('labs/routed.yml');
    const st = healthyStatus(lab);
    const r1 = st.nodes.find((n) => n.name === 'r1')!;
    r1.interfaces = r1.interfaces.filter((f) => f.name !== 'eth1');
    const r2 = st.nodes.find((n) => n.name === 'r2')!;
    r2.interfaces.find((f) => f.name === 'eth2')!.operUp = false;
    const h3 = st.nodes.find((n) => n.name === 'h3')!;
    h3.container = { ...h3.container, state: 'exited', exit: 'exited 1', exitCode: 1 };
    const g = labView(lab, st, 'up');
    expect(g.links.find((l) => l.id === 'link:0')).toMatchObject({ state: 'down', why: 'r1 eth1 is missing in the kernel' });
    expect(g.links.find((l) => l.id === 'link:1')).toMatchObject({ state: 'down', why: 'r2 eth2 has no carrier' });
    expect(g.nodes.find((n) => n.name === 'r1')!.interfaces.find((f) => f.name === 'eth1')).toMatchObject({ missing: true, up: false });
    expect(g.nodes.find((n) => n.name === 'h3')!.process).toMatchObject({ state: 'exited', exit: 'exited 1' });
  });

  it("a running node's image ports (its ExposedPorts) are on its view node; the model alone has none", () => {
    const lab = load('labs/bridge.yml');
    const st = healthyStatus(lab);
    st.nodes.find((n) => n.name === 'web')!.image = { image: 'nginx:1', digest: 'sha256:' + 'a'.repeat(64), exposedPorts: ['443/tcp', '80/tcp'], stopSignal: 'SIGQUIT' };
    const g = labView(lab, st, 'up');
    expect(g.nodes.find((n) => n.name === 'web')!.ports).toEqual(['443/tcp', '80/tcp']);
    expect(g.nodes.find((n) => n.name === 'client1')!.ports).toEqual([]);
    expect(labView(lab, null, 'offline').nodes.every((n) => n.ports.length === 0)).toBe(true);
  });

  it('each cable carries its impairment per direction as tc\'s words, and a short label', () => {
    const g = labView(impairedLab(), null, 'offline');
    const c = (id: string) => g.links.find((l) => l.id === id)!;
    // a-c: each end's egress is one direction (c's b: side has its own values).
    expect(c('link:0').impair).toEqual([
      { from: 'a eth1', to: 'c eth1', text: 'rate 20mbit delay 10ms', kernel: null },
      { from: 'c eth1', to: 'a eth1', text: 'rate 10mbit delay 10ms loss 20%', kernel: null },
    ]);
    expect(c('link:0').impairLabel).toBe('a→ 20mbit 10ms · c→ 10mbit 10ms 20%');
    // b-c: the same both ways, one label.
    expect(c('link:1').impair.map((d) => d.text)).toEqual(['delay 20ms jitter 5ms loss 1%', 'delay 20ms jitter 5ms loss 1%']);
    expect(c('link:1').impairLabel).toBe('20ms±5ms 1%');
    // A network attachment's impairment holds both ways.
    expect(c('if:a/eth0').impair).toEqual([
      { from: 'a eth0', to: 'lan', text: 'rate 5mbit', kernel: null },
      { from: 'lan', to: 'a eth0', text: 'rate 5mbit', kernel: null },
    ]);
    expect(c('if:a/eth0').impairLabel).toBe('5mbit');
    expect(c('if:b/eth0').impair.map((d) => d.text)).toEqual(['', '']);
    expect(c('if:b/eth0').impairLabel).toBe('');
    // Cables that cannot be impaired have no directions.
    const gw = labView(load('labs/bridge.yml'), null, 'offline').links.find((l) => l.id === 'gw:lan')!;
    expect(gw).toMatchObject({ impair: [], impairLabel: '' });
  });

  it('a running lab\'s cable shows its run-time impairment (modelOf: netlab impair set and cleared) and the kernel\'s reading', () => {
    const file = impairedLab();
    const st = { model: file, impairments: { 'a:eth0': null, 'b:eth0': { ...NO_IMPAIRMENT, rateBps: 1e6, lossPct: 10 } } } as unknown as LabState;
    const running = modelOf(st);
    const status = healthyStatus(running);
    const b = status.nodes.find((n) => n.name === 'b')!.interfaces.find((f) => f.name === 'eth0')! as { impairment?: string | null };
    b.impairment = 'rate 1mbit loss 10% (nftables)';
    const g = labView(running, status, 'up');
    const c = (id: string) => g.links.find((l) => l.id === id)!;
    expect(c('if:b/eth0').impair).toEqual([
      { from: 'b eth0', to: 'lan', text: 'rate 1mbit loss 10%', kernel: 'rate 1mbit loss 10% (nftables)' },
      // The bridge side's qdisc is on the machine: status does not read it.
      { from: 'lan', to: 'b eth0', text: 'rate 1mbit loss 10%', kernel: null },
    ]);
    expect(c('if:b/eth0').impairLabel).toBe('1mbit 10%');
    // Cleared at run time; the kernel read and found none.
    expect(c('if:a/eth0').impair.map((d) => [d.text, d.kernel])).toEqual([['', ''], ['', null]]);
    expect(c('if:a/eth0').impairLabel).toBe('');
    // The file's model is left as it was.
    expect(labView(file, null, 'offline').links.find((l) => l.id === 'if:a/eth0')!.impairLabel).toBe('5mbit');
  });

  it('the label is the values without tc\'s words: rate, delay±jitter, loss, then the rarer ones named', () => {
    expect(impairmentLabel({ ...NO_IMPAIRMENT, rateBps: 10e6, delayUs: 20_000, lossPct: 1 })).toBe('10mbit 20ms 1%');
    expect(impairmentLabel({ ...NO_IMPAIRMENT, delayUs: 20_000, jitterUs: 5000 })).toBe('20ms±5ms');
    expect(impairmentLabel({ ...NO_IMPAIRMENT, rateBps: 512e3, delayUs: 1500 })).toBe('512kbit 1500us');
    expect(impairmentLabel({ ...NO_IMPAIRMENT, duplicatePct: 2, corruptPct: 0.5, reorderPct: 25, delayUs: 1000, limit: 50 })).toBe('1ms dup 2% corrupt 0.5% reorder 25% limit 50');
    expect(impairmentLabel(undefined)).toBe('');
    expect(impairmentLabel(NO_IMPAIRMENT)).toBe('');
  });

  it('overlay labs draw simulated hosts and the VXLAN spans', () => {
    const g = labView(load('labs/overlay.yml'), null, 'offline');
    expect(g.nodes.filter((n) => n.kind === 'host').map((n) => n.name).sort()).toEqual(['h1', 'h2']);
    expect(g.links.filter((l) => l.kind === 'overlay').length).toBeGreaterThan(0);
    expect(g.links.filter((l) => l.kind === 'underlay').every((l) => l.endpoint === null)).toBe(true);
  });
});

describe('standalone page (netlab graph --format html)', () => {
  it('inlines the bundle, the styles and the data, safely', async () => {
    const html = await standaloneHtml(load('labs/bridge.yml'), staticDir);
    expect(html).not.toContain('src="app.js"');
    expect(html).not.toContain('href="app.css"');
    expect(html).toContain('<style>');
    expect(html).toContain('<\\/script> inside a string');
    expect(html).not.toContain('sourceMappingURL');
    expect(html).toContain('<title>bridge - netlab</title>');
    const m = /<script id="netlab-data" type="application\/json">(.*?)<\/script>/s.exec(html)!;
    const data = JSON.parse(m[1]) as EmbeddedData;
    expect(data.graph.lab).toBe('bridge');
    expect(data.graph.live).toBe(false);
    expect(data.predictions!.nodes).toEqual(['web', 'client1', 'client2', 'solo']);
    expect(m[1]).not.toMatch(/<\//);
  });
});
