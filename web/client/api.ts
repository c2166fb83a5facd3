// How the page talks to netlab: over HTTP (fetch + server-sent events) when served by
// `netlab web`, or from the data inlined in a standalone page (`netlab graph --format html`).
import type { EmbeddedData, LabSummary, Predictions, ServerEvent, ViewCheckReport, ViewNodeStats, WebGraph } from '../server/types.js';

export interface PairExplanation {
  from: string;
  to: string;
  address: string | null;
  reach: boolean;
  reason: string;
  explanation: string;
  path: { node: string; iface: string | null; address: string | null }[];
  reply: { node: string; iface: string | null; address: string | null }[];
}

export interface EventHandlers {
  onEvent(e: ServerEvent): void;
  onConnection(open: boolean): void;
}

export interface Api {
  /** No server: the standalone page. */
  readonly standalone: boolean;
  labs(): Promise<{ labs: LabSummary[]; defaultLab: string | null }>;
  graph(lab: string): Promise<WebGraph>;
  predictions(lab: string): Promise<Predictions>;
  explainPair(lab: string, from: string, to: string): Promise<PairExplanation | null>;
  runChecks(lab: string, matrix: boolean): Promise<ViewCheckReport>;
  setLink(lab: string, endpoint: string, state: 'up' | 'down'): Promise<void>;
  /** Sets the impairment of the cable at endpoint (tc's values as strings), or clears it (null). */
  setImpairment(lab: string, endpoint: string, impair: ImpairValues | null): Promise<ImpairAnswer>;
  /** A running node's CPU (percent since the previous call), memory, pids and traffic. */
  nodeStats(lab: string, node: string): Promise<ViewNodeStats>;
  /** Live updates for one lab (and the list of labs); returns the function that stops them. */
  events(lab: string | null, h: EventHandlers): () => void;
}

/** The body's `impair` of POST /api/labs/:lab/impair: tc's values, e.g. { rate: '10mbit', loss: '1%' }. */
export type ImpairValues = Partial<Record<'rate' | 'delay' | 'jitter' | 'loss' | 'duplicate' | 'corrupt' | 'reorder' | 'limit', string>>;

/** Its answer: the interfaces changed and the impairment in tc's words ('' when cleared). */
export interface ImpairAnswer {
  ok: true;
  lab: string;
  endpoint: string;
  interfaces: string[];
  impair: string;
}

export class ApiError extends Error {
  constructor(message: string, readonly status: number) {
    super(message);
  }
}

const TOKEN_KEY = 'netlab.token';

/** The token from the URL netlab web printed (kept for this tab, then removed from the
 *  address bar so it does not end up in history or screenshots). */
export function takeToken(): string | null {
  const url = new URL(location.href);
  const t = url.searchParams.get('token');
  if (t) {
    try { sessionStorage.setItem(TOKEN_KEY, t); } catch { /* storage disabled */ }
    url.searchParams.delete('token');
    history.replaceState(null, '', url.pathname + (url.search || '') + url.hash);
    return t;
  }
  try { return sessionStorage.getItem(TOKEN_KEY); } catch { return null; }
}

export class HttpApi implements Api {
  readonly standalone = false;
  constructor(private readonly token: string | null) {}

  private async call<T>(method: 'GET' | 'POST', url: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (this.token) headers['X-Netlab-Token'] = this.token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
    const text = await res.text();
    let data: unknown = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    if (!res.ok) throw new ApiError((data as { error?: string } | null)?.error ?? `${res.status} ${res.statusText}`, res.status);
    return data as T;
  }

  labs() { return this.call<{ labs: LabSummary[]; defaultLab: string | null }>('GET', '/api/labs'); }
  graph(lab: string) { return this.call<WebGraph>('GET', `/api/labs/${encodeURIComponent(lab)}`); }
  predictions(lab: string) { return this.call<Predictions>('GET', `/api/labs/${encodeURIComponent(lab)}/predictions`); }
  explainPair(lab: string, from: string, to: string) {
    return this.call<PairExplanation>('GET', `/api/labs/${encodeURIComponent(lab)}/predictions?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`);
  }
  runChecks(lab: string, matrix: boolean) { return this.call<ViewCheckReport>('POST', `/api/labs/${encodeURIComponent(lab)}/checks${matrix ? '?matrix=1' : ''}`); }
  async setLink(lab: string, endpoint: string, state: 'up' | 'down') {
    await this.call('POST', `/api/labs/${encodeURIComponent(lab)}/links`, { endpoint, state });
  }
  setImpairment(lab: string, endpoint: string, impair: ImpairValues | null) {
    return this.call<ImpairAnswer>('POST', `/api/labs/${encodeURIComponent(lab)}/impair`, { endpoint, impair });
  }
  nodeStats(lab: string, node: string) {
    return this.call<ViewNodeStats>('GET', `/api/labs/${encodeURIComponent(lab)}/nodes/${encodeURIComponent(node)}/stats`);
  }

  events(lab: string | null, h: EventHandlers): () => void {
    const q = new URLSearchParams();
    if (lab) q.set('lab', lab);
    if (this.token) q.set('token', this.token);
    const es = new EventSource(`/api/events?${q}`);
    const on = (type: ServerEvent['type']) => es.addEventListener(type, (m) => {
      try { h.onEvent(JSON.parse((m as MessageEvent<string>).data) as ServerEvent); } catch { /* ignore a bad event */ }
    });
    on('labs');
    on('graph');
    on('gone');
    on('checks');
    es.onopen = () => h.onConnection(true);
    es.onerror = () => h.onConnection(false);
    return () => es.close();
  }
}

/** The standalone page: one lab's model and predictions, nothing to run or change. */
export class StaticApi implements Api {
  readonly standalone = true;
  constructor(private readonly data: EmbeddedData) {}
  async labs() {
    const g = this.data.graph;
    return { labs: [{ name: g.lab, status: g.status, live: false, file: g.file, nodes: g.nodes.filter((n) => n.kind === 'container').length }], defaultLab: g.lab };
  }
  async graph() { return this.data.graph; }
  async predictions(lab: string) {
    if (!this.data.predictions) throw new ApiError(`no predictions for ${lab} in this page`, 404);
    return this.data.predictions;
  }
  async explainPair(_lab: string, from: string, to: string): Promise<PairExplanation | null> {
    const o = this.data.predictions?.checks.outcomes.find((x) => x.from === from && x.target === to);
    return o ? { from, to, address: o.address, reach: o.predicted === 'reach', reason: o.reason, explanation: o.explanation, path: [], reply: [] } : null;
  }
  async runChecks(lab: string, matrix: boolean): Promise<ViewCheckReport> {
    const p = await this.predictions(lab);
    if (!matrix) return p.checks;
    const outcomes = [];
    for (let i = 0; i < p.nodes.length; i++) {
      for (let j = 0; j < p.nodes.length; j++) {
        const v = p.matrix[i * p.nodes.length + j];
        if (v < 0) continue;
        const verdict = v === 1 ? 'reach' as const : 'fail' as const;
        outcomes.push({
          label: `ping ${p.nodes[i]} -> ${p.nodes[j]}`, kind: 'ping', from: p.nodes[i], target: p.nodes[j], address: null,
          expected: verdict, expectedFrom: 'prediction' as const, predicted: verdict, reason: '', explanation: '',
          observed: null, detail: '', pass: true, disagree: false,
        });
      }
    }
    return { lab, mode: 'matrix', observed: false, outcomes, passed: outcomes.length, failed: 0, disagreements: 0, ms: 0 };
  }
  async setLink(): Promise<void> {
    throw new ApiError('this is a standalone page of the model: serve the lab with `netlab web` to set links down', 409);
  }
  async setImpairment(): Promise<ImpairAnswer> {
    throw new ApiError('this is a standalone page of the model: serve the lab with `netlab web` to set impairments', 409);
  }
  async nodeStats(): Promise<ViewNodeStats> {
    throw new ApiError('this is a standalone page of the model: serve the lab with `netlab web` for stats', 409);
  }
  events(): () => void { return () => undefined; }
}

export function embeddedData(): EmbeddedData | null {
  const el = document.getElementById('netlab-data');
  if (!el?.textContent) return null;
  try { return JSON.parse(el.textContent) as EmbeddedData; } catch { return null; }
}
