// The web view's HTTP server (express 5): the page and its bundle, a JSON API over a LabSource,
// and server-sent events that push a lab's new view when the source reports a change.
//
// Security (the server can set links down and run probes as root):
//  - every request that changes something (POST) needs the per-run token in a header
//    (X-Netlab-Token or Authorization: Bearer), and an Origin header naming this server; a
//    foreign or missing Origin is refused (cross-site requests from a browser), so is a token in
//    the query string (it leaks into logs and history);
//  - on a loopback address the Host header must be a loopback name too (a DNS-rebound name
//    is refused), and reads need no token; on any other address every API request needs the
//    token (EventSource cannot send headers, so reads also take ?token=);
//  - refusals are 401 (no or wrong token) or 403 (Host, Origin) with a JSON { error }.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash, timingSafeEqual } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import { predictPair, explain } from '../../topology/simulate.js';
import { checkCombination, impairmentText, isEmptyImpairment, NO_IMPAIRMENT, parseImpair } from '../../topology/impair.js';
import type { Impairment, RawImpair } from '../../topology/types.js';
import { statsOf, type NodeReading } from '../../controller/stats.js';
import { predictionsOf, toViewReport } from './predict.js';
import { SourceError, type LabSource } from './source.js';
import type { Predictions, ServerEvent, ViewCheckReport, ViewNodeStats, WebGraph } from './types.js';

export { toViewReport };

export const TOKEN_HEADER = 'x-netlab-token';
const LAB_NAME = /^[a-z][a-z0-9-]{0,31}$/;

export interface WebAppOptions {
  /** The per-run secret. */
  token: string;
  /** Address the server listens on (decides the loopback rules above). */
  host: string;
  /** Lab the page shows first. */
  defaultLab?: string | null;
  /** Folder with index.html, app.js and app.css (dist/web); null serves the API only. */
  staticDir?: string | null;
  /** Coalesces bursts of change events (a lab coming up makes hundreds). */
  debounceMs?: number;
  /** Keep-alive comment interval on event streams. */
  heartbeatMs?: number;
  /** A node's first stats request: the interval between its two readings (CPU percent). */
  statsSampleMs?: number;
}

export interface WebApp {
  app: express.Express;
  /** Ends every event stream and stops listening to the source. */
  close(): void;
  /** Open event streams. */
  clients(): number;
}

export function isLoopbackAddress(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || h === '::ffff:127.0.0.1';
}

/** Host name of a Host header ("127.0.0.1:8080" -> "127.0.0.1", "[::1]:80" -> "::1"). */
function hostnameOf(hostHeader: string): string {
  const h = hostHeader.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') > 0 ? h.indexOf(']') : undefined);
  return h.split(':')[0];
}

function sameSecret(given: string, token: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b);
}

function tokenIn(req: Request, allowQuery: boolean): string | null {
  const h = req.headers[TOKEN_HEADER];
  if (typeof h === 'string' && h) return h;
  const auth = req.headers.authorization;
  if (typeof auth === 'string' && /^Bearer\s+\S+$/i.test(auth)) return auth.replace(/^Bearer\s+/i, '');
  if (allowQuery && typeof req.query.token === 'string') return req.query.token;
  return null;
}

function refuse(res: Response, status: 400 | 401 | 403 | 404 | 409, error: string): void {
  res.status(status).json({ error });
}

const IMPAIR_KEYS = ['rate', 'delay', 'jitter', 'loss', 'duplicate', 'corrupt', 'reorder', 'limit'] as const;

/** The `impair` of a POST impair body: null (clear), an impairment, or the one-line problem.
 *  Values are strings in tc's units (a bare JSON number would be ambiguous: tc reads a number
 *  as bits per second or microseconds), checked as the topology's `impair:` is; limit is a
 *  number of packets. */
export function impairmentFromBody(v: unknown): { impair: Impairment | null } | { error: string } {
  const expected = `"impair" must be an object of tc values (${IMPAIR_KEYS.join(', ')}; e.g. {"rate": "10mbit", "loss": "1%"}), or null to clear`;
  if (v === null) return { impair: null };
  if (typeof v !== 'object' || Array.isArray(v)) return { error: expected };
  const raw: RawImpair = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (!(IMPAIR_KEYS as readonly string[]).includes(k)) return { error: `unknown impairment "${k}": expected ${IMPAIR_KEYS.join(', ')}` };
    if (k === 'limit') {
      const n = typeof x === 'number' ? x : typeof x === 'string' && /^\s*\d+\s*$/.test(x) ? Number(x) : NaN;
      if (!Number.isInteger(n) || n < 1) return { error: `limit ${JSON.stringify(x)}: expected a number of packets, 1 or more` };
      raw.limit = n;
      continue;
    }
    if (typeof x !== 'string' || !x.trim()) return { error: `"${k}" must be a string in tc's units, e.g. ${k === 'rate' ? '"10mbit"' : k === 'delay' || k === 'jitter' ? '"20ms"' : '"1%"'}` };
    raw[k as Exclude<(typeof IMPAIR_KEYS)[number], 'limit'>] = x;
  }
  if (Object.keys(raw).length === 0) return { error: `nothing to set: give ${IMPAIR_KEYS.join(', ')}, or "impair": null to clear` };
  const problems: string[] = [];
  const imp = parseImpair(raw, [], (_p, m) => problems.push(m), NO_IMPAIRMENT);
  // The combination rules the topology's `impair:` has.
  checkCombination(imp, [], (_p, m) => problems.push(m));
  if (problems.length) return { error: problems[0] };
  return { impair: isEmptyImpairment(imp) ? null : imp };
}

interface Client {
  res: Response;
  lab: string | null;
}

export function createWebApp(source: LabSource, o: WebAppOptions): WebApp {
  const loopback = isLoopbackAddress(o.host);
  const debounceMs = o.debounceMs ?? 40;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  // ------------------------------------------------------------ headers and the Host rule
  app.use((req, res, next) => {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('Content-Security-Policy', "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
    if (loopback && !isLoopbackAddress(hostnameOf(req.headers.host ?? ''))) {
      refuse(res, 403, `Host "${req.headers.host ?? ''}" refused: this server listens on ${o.host} and answers to loopback names only`);
      return;
    }
    next();
  });

  // ------------------------------------------------------------ the token and Origin rules
  app.use('/api', (req, res, next) => {
    const reading = req.method === 'GET' || req.method === 'HEAD';
    if (reading) {
      if (!loopback) {
        const t = tokenIn(req, true);
        if (!t || !sameSecret(t, o.token)) { refuse(res, 401, 'token required: open the URL netlab web printed (…/?token=…)'); return; }
      }
      next();
      return;
    }
    const t = tokenIn(req, false);
    if (!t || !sameSecret(t, o.token)) { refuse(res, 401, `token required: send the token netlab web printed in the ${TOKEN_HEADER} header`); return; }
    const origin = req.headers.origin;
    const own = `http://${req.headers.host ?? ''}`;
    if (!origin) { refuse(res, 403, `Origin header required (expected ${own})`); return; }
    if (origin.toLowerCase() !== own.toLowerCase()) { refuse(res, 403, `foreign Origin ${origin} refused (expected ${own})`); return; }
    next();
  });

  const labParam = (req: Request, res: Response): string | null => {
    const lab = String(req.params.lab ?? '');
    if (!LAB_NAME.test(lab)) { refuse(res, 404, `no lab ${JSON.stringify(lab)}`); return null; }
    return lab;
  };

  // ------------------------------------------------------------ API
  app.get('/api/labs', async (_req, res) => {
    res.json({ labs: await source.labs(), defaultLab: o.defaultLab ?? null });
  });

  const sendGraph = async (req: Request, res: Response) => {
    const lab = labParam(req, res);
    if (!lab) return;
    const g = await source.graph(lab);
    if (!g) { refuse(res, 404, `no lab ${lab}`); return; }
    res.json(g);
  };
  app.get('/api/labs/:lab', sendGraph);
  app.get('/api/labs/:lab/graph', sendGraph);

  const predictionCache = new Map<string, { key: string; value: Predictions }>();
  app.get('/api/labs/:lab/predictions', async (req, res) => {
    const lab = labParam(req, res);
    if (!lab) return;
    const m = await source.model(lab);
    if (!m) { refuse(res, 404, `no lab ${lab}`); return; }
    const { from, to } = req.query;
    if (typeof from === 'string' || typeof to === 'string') {
      if (typeof from !== 'string' || typeof to !== 'string') { refuse(res, 400, 'give both from and to'); return; }
      const p = predictPair(m.lab, from, to);
      res.json({ from: p.from, to: p.to, address: p.address, reach: p.reach, reason: p.reason, explanation: explain(p), path: p.path, reply: p.reply });
      return;
    }
    const key = createHash('sha1').update(JSON.stringify(m.lab)).digest('hex');
    const cached = predictionCache.get(lab);
    if (cached?.key === key) { res.json(cached.value); return; }
    const value = await predictionsOf(m.lab);
    predictionCache.set(lab, { key, value });
    res.json(value);
  });

  const lastReports = new Map<string, ViewCheckReport>();
  const running = new Set<string>();
  app.get('/api/labs/:lab/checks', (req, res) => {
    const lab = labParam(req, res);
    if (!lab) return;
    const r = lastReports.get(lab);
    if (!r) { refuse(res, 404, `no checks have run on lab ${lab} yet`); return; }
    res.json(r);
  });

  app.post('/api/labs/:lab/checks', async (req, res) => {
    const lab = labParam(req, res);
    if (!lab) return;
    const matrix = req.query.matrix === '1' || req.query.matrix === 'true';
    if (running.has(lab)) { refuse(res, 409, `checks of lab ${lab} are already running`); return; }
    if (!(await source.model(lab))) { refuse(res, 404, `no lab ${lab}`); return; }
    running.add(lab);
    try {
      const r = toViewReport(await source.runChecks(lab, matrix));
      lastReports.set(lab, r);
      broadcast((c) => c.lab === lab, { type: 'checks', report: r });
      res.json(r);
    } finally {
      running.delete(lab);
    }
  });

  app.post('/api/labs/:lab/links', express.json({ limit: '16kb' }), async (req, res) => {
    const lab = labParam(req, res);
    if (!lab) return;
    const body = req.body as { endpoint?: unknown; state?: unknown } | undefined;
    if (!body || typeof body !== 'object') { refuse(res, 400, 'expected a JSON body {"endpoint": "node:iface", "state": "up"|"down"} (Content-Type: application/json)'); return; }
    const { endpoint, state } = body;
    const m = typeof endpoint === 'string' ? /^([^:\s]+):([^:\s]+)$/.exec(endpoint) : null;
    if (!m) { refuse(res, 400, `"endpoint" must be NODE:IFACE, e.g. web:eth0`); return; }
    if (state !== 'up' && state !== 'down') { refuse(res, 400, '"state" must be "up" or "down"'); return; }
    const model = await source.model(lab);
    if (!model) { refuse(res, 404, `no lab ${lab}`); return; }
    const node = model.lab.nodes.find((n) => n.name === m[1]);
    if (!node) { refuse(res, 404, `lab ${lab} has no node ${m[1]}`); return; }
    if (!node.interfaces.some((f) => f.name === m[2])) { refuse(res, 404, `node ${m[1]} has no interface ${m[2]}`); return; }
    if (!model.live) { refuse(res, 409, `lab ${lab} is not up: links can be set down only in a running lab`); return; }
    await source.setLink(lab, m[1], m[2], state === 'up');
    schedule(lab);
    res.json({ ok: true, lab, endpoint, state });
  });

  app.post('/api/labs/:lab/impair', express.json({ limit: '16kb' }), async (req, res) => {
    const lab = labParam(req, res);
    if (!lab) return;
    const body = req.body as { endpoint?: unknown; impair?: unknown } | undefined;
    if (!body || typeof body !== 'object' || !('impair' in body)) { refuse(res, 400, 'expected a JSON body {"endpoint": "node:iface", "impair": {"rate": "10mbit", "delay": "20ms", "loss": "1%"} | null} (Content-Type: application/json)'); return; }
    const m = typeof body.endpoint === 'string' ? /^([^:\s]+):([^:\s]+)$/.exec(body.endpoint) : null;
    if (!m) { refuse(res, 400, `"endpoint" must be NODE:IFACE, e.g. web:eth0`); return; }
    const parsed = impairmentFromBody(body.impair);
    if ('error' in parsed) { refuse(res, 400, parsed.error); return; }
    const model = await source.model(lab);
    if (!model) { refuse(res, 404, `no lab ${lab}`); return; }
    const node = model.lab.nodes.find((n) => n.name === m[1]);
    if (!node) { refuse(res, 404, `lab ${lab} has no node ${m[1]}`); return; }
    if (!node.interfaces.some((f) => f.name === m[2])) { refuse(res, 404, `node ${m[1]} has no interface ${m[2]}`); return; }
    if (!model.live) { refuse(res, 409, `lab ${lab} is not up: impairments can be set only in a running lab`); return; }
    const interfaces = await source.setImpairment(lab, m[1], m[2], parsed.impair);
    // The state file's rewrite is watched too; this makes the update not wait for it.
    schedule(lab);
    res.json({ ok: true, lab, endpoint: body.endpoint, interfaces, impair: impairmentText(parsed.impair) });
  });

  // A node's usage. CPU percent is over the time since the previous request for that node (the
  // page polls), or, on the first one (or when the counter went back: the lab came up anew),
  // over a short sample of two readings.
  const lastReading = new Map<string, NodeReading>();
  app.get('/api/labs/:lab/nodes/:node/stats', async (req, res) => {
    const lab = labParam(req, res);
    if (!lab) return;
    const name = String(req.params.node ?? '');
    const key = `${lab}\u0000${name}`;
    const model = await source.model(lab);
    if (!model) { lastReading.delete(key); refuse(res, 404, `no lab ${lab}`); return; }
    if (!model.lab.nodes.some((n) => n.name === name)) { refuse(res, 404, `lab ${lab} has no node ${name}`); return; }
    if (!model.live) { lastReading.delete(key); refuse(res, 409, `lab ${lab} is not up: stats are read from a running lab`); return; }
    const read = async () => {
      const r = await source.readStats(lab, name);
      if (!r) throw new SourceError(`node ${name} of lab ${lab} is not built on this machine`, 404);
      return r;
    };
    let prev = lastReading.get(key);
    let cur = await read();
    const nodeStats = (a: NodeReading | undefined, b: NodeReading): ViewNodeStats => statsOf(a ? [{ lab, nodes: [a] }] : null, [{ lab, nodes: [b] }])[0].nodes[0];
    let s = nodeStats(prev, cur);
    if (s.cpu.percent === null && cur.cgroup?.cpuNs != null) {
      prev = cur;
      await new Promise((r) => setTimeout(r, o.statsSampleMs ?? 250));
      cur = await read();
      s = nodeStats(prev, cur);
    }
    lastReading.set(key, cur);
    res.json(s);
  });

  app.get('/api/health', (_req, res) => {
    res.json({ ok: true, clients: clients.size, source: source.info() });
  });

  // ------------------------------------------------------------ server-sent events
  const clients = new Set<Client>();
  const send = (c: Client, e: ServerEvent) => {
    c.res.write(`event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
  };
  /** Tells the source which labs are on screen (only those need kernel notifications). */
  function interest(): void {
    source.setInterest(new Set([...clients].map((c) => c.lab).filter((l): l is string => l !== null)));
  }
  function broadcast(to: (c: Client) => boolean, e: ServerEvent): void {
    for (const c of clients) if (to(c)) send(c, e);
  }

  app.get('/api/events', async (req, res) => {
    const lab = typeof req.query.lab === 'string' && LAB_NAME.test(req.query.lab) ? req.query.lab : null;
    res.status(200);
    res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
    res.setHeader('Cache-Control', 'no-cache, no-transform');
    res.setHeader('X-Accel-Buffering', 'no');
    res.flushHeaders();
    res.write('retry: 1000\n\n');
    const c: Client = { res, lab };
    clients.add(c);
    interest();
    req.on('close', () => { clients.delete(c); interest(); });
    send(c, { type: 'labs', labs: await source.labs() });
    if (lab) {
      const g = await source.graph(lab);
      if (!clients.has(c)) return;
      if (g) { lastSent.set(lab, fingerprint(g)); send(c, { type: 'graph', graph: g }); } else send(c, { type: 'gone', lab });
    }
  });

  // A change reported by the source: re-read the lab (or the list) once the burst is over, and
  // push it to the pages showing it, if it differs from what they were sent.
  const timers = new Map<string, NodeJS.Timeout>();
  const inflight = new Set<string>();
  const again = new Set<string>();
  const lastSent = new Map<string, string>();
  const LABS = '\u0000labs';
  const fingerprint = (g: WebGraph) => JSON.stringify({ ...g, at: '' });

  function schedule(key: string): void {
    if (timers.has(key)) return;
    timers.set(key, setTimeout(() => { timers.delete(key); void refresh(key); }, debounceMs));
  }

  async function refresh(key: string): Promise<void> {
    if (inflight.has(key)) { again.add(key); return; }
    inflight.add(key);
    try {
      if (key === LABS) {
        if (clients.size) broadcast(() => true, { type: 'labs', labs: await source.labs() });
        return;
      }
      if (![...clients].some((c) => c.lab === key)) { lastSent.delete(key); return; }
      const g = await source.graph(key);
      if (!g) {
        lastSent.delete(key);
        broadcast((c) => c.lab === key, { type: 'gone', lab: key });
        return;
      }
      const f = fingerprint(g);
      if (lastSent.get(key) === f) return;
      lastSent.set(key, f);
      broadcast((c) => c.lab === key, { type: 'graph', graph: g });
    } catch {
      // The next change event reads it again.
    } finally {
      inflight.delete(key);
      if (again.delete(key)) schedule(key);
    }
  }

  const unsubscribe = source.subscribe((e) => schedule(e.type === 'labs' ? LABS : e.lab));
  const heartbeat = setInterval(() => { for (const c of clients) c.res.write(': keep-alive\n\n'); }, o.heartbeatMs ?? 20_000);
  heartbeat.unref();

  // ------------------------------------------------------------ the page
  const FILES: Record<string, string> = { '/': 'index.html', '/index.html': 'index.html', '/app.js': 'app.js', '/app.css': 'app.css', '/app.js.map': 'app.js.map' };
  app.get(Object.keys(FILES), (req, res) => {
    if (!o.staticDir) { refuse(res, 404, 'this server has no front end'); return; }
    const file = path.join(o.staticDir, FILES[req.path]);
    if (!fs.existsSync(file)) { res.status(500).json({ error: `web front end not built (${file} is missing): run npm run build` }); return; }
    res.setHeader('Cache-Control', 'no-cache');
    res.sendFile(file);
  });

  app.use('/api', (_req, res) => refuse(res, 404, 'no such API endpoint'));
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    if (res.headersSent) { res.end(); return; }
    if (err instanceof SourceError) { res.status(err.status).json({ error: err.message }); return; }
    const status = (err as { status?: number; type?: string }).status;
    if (status && status >= 400 && status < 500) { res.status(status).json({ error: (err as Error).message }); return; }
    res.status(500).json({ error: (err as Error)?.message ?? String(err) });
  });

  return {
    app,
    clients: () => clients.size,
    close() {
      unsubscribe();
      clearInterval(heartbeat);
      for (const t of timers.values()) clearTimeout(t);
      timers.clear();
      for (const c of clients) c.res.end();
      clients.clear();
      source.setInterest([]);
    },
  };
}
