// The web view's server without root: the express app (web/server/app.ts) over an injected
// fake data source, through supertest. Every endpoint, the security rules (token, Origin, Host,
// loopback vs other addresses), server-sent events, the page files; the view model that merges
// the model with the kernel's status (web/server/view.ts); and the standalone page.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import request from 'supertest';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadTopologyFile } from '../../topology/load.js';
import type { Lab } from '../../topology/types.js';
import type { LabStatusReport, NodeStatus } from '../../controller/lab.js';
import { runChecks, type CheckReport } from '../../checks/run.js';
import { createWebApp, type WebApp } from '../../web/server/app.js';
import { SourceError, type LabSource, type SourceEvent } from '../../web/server/source.js';
import { labView } from '../../web/server/view.js';
import { predictedMatrixReport } from '../../web/server/predict.js';
import { standaloneHtml } from '../../web/server/html.js';
import type { EmbeddedData, LabSummary, ServerEvent, WebGraph } from '../../web/server/types.js';

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
  async setLink(lab: string, node: string, iface: string, up: boolean): Promise<void> {
    this.setLinkCalls.push([lab, node, iface, up]);
    const f = this.labsList.get(lab)?.status?.nodes.find((n) => n.name === node)?.interfaces.find((x) => x.name === iface);
    if (f) { f.up = up; f.operUp = up; }
    this.emit({ type: 'lab', lab });
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

function setup(o: { host?: string; live?: boolean } = {}) {
  const source = new FakeSource();
  source.add(load('labs/bridge.yml'), o.live ?? true);
  source.add(load('labs/routed.yml'), false);
  const web = createWebApp(source, { token: TOKEN, host: o.host ?? '127.0.0.1', defaultLab: 'bridge', staticDir, debounceMs: 5 });
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
    expect(r.body.labs.map((l: LabSummary) => [l.name, l.live])).toEqual([['bridge', true], ['routed', false]]);
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

describe('web API: security', () => {
  const changes: [string, unknown][] = [['/api/labs/bridge/checks', undefined], ['/api/labs/bridge/links', { endpoint: 'web:eth0', state: 'down' }]];

  it.each(changes)('POST %s without the token is 401', async (url, body) => {
    const { app, source } = setup();
    const r = await request(app).post(url).set('Host', '127.0.0.1:8080').set('Origin', 'http://127.0.0.1:8080').send(body as object).expect(401).expect('Content-Type', /json/);
    expect(r.body.error).toMatch(/token required/);
    expect(source.setLinkCalls).toEqual([]);
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
      expect(labs.type === 'labs' && labs.labs.map((l) => l.name)).toEqual(['bridge', 'routed']);
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
      expect(labs2.type === 'labs' && labs2.labs.map((l) => l.name).sort()).toEqual(['bridge', 'none', 'routed']);
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
