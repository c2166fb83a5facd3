// Connectivity probes (ping, tcp, http, throughput) and DNS queries from inside lab namespaces,
// run by the shim's probe mode: every probe of a batch from one process, sockets created in
// each source namespace (a throughput probe's receiver in its target's), one poll loop.
// Batches are bounded so a very large matrix does not flood the bridges at once. A dns probe is
// one A query for one name; which names to ask, and whether to ask at all, is
// checks/resolve.ts's business.
import { spawn } from 'node:child_process';
import { SHIM_PATH } from '../runtime/container.js';

export type ProbeKind = 'ping' | 'tcp' | 'http' | 'dns' | 'throughput';

/** The time between a ping probe's echo requests: 500 requests are sent in about 5 s, and
 *  replies are waited for until the timeout after the last one. */
export const PING_INTERVAL_MS = 10;

export interface Probe {
  kind: ProbeKind;
  /** Named netns of the source, or null for the host's own stack (host-mode nodes). */
  netns: string | null;
  /** The address probed; dns: the nameservers, comma-separated (at most 3 are used). */
  address: string;
  /** ping: number of echo requests, PING_INTERVAL_MS apart (ok when some reply came back). */
  count?: number;
  /** tcp/http/throughput. */
  port?: number;
  /** ping: replies are waited for until this long after the last request; throughput: the
   *  time connecting may take; the others: the whole probe. */
  timeoutMs: number;
  /** throughput: the receiver's named netns (it listens on `address`:`port` there), and how
   *  long the sender sends. */
  receiverNetns?: string;
  durationMs?: number;
  /** http: Host header and path. */
  host?: string;
  path?: string;
  /** dns: the name asked (no trailing dot), the time each server gets per try, the rounds. */
  name?: string;
  tryMs?: number;
  attempts?: number;
}

/** What a ping probe sent and got back; rtts in ms (null when no reply came back). */
export interface PingStats {
  sent: number;
  received: number;
  rttMinMs: number | null;
  rttAvgMs: number | null;
  rttMaxMs: number | null;
}

export interface ProbeResult {
  ok: boolean;
  /** ping: the average round trip; tcp: the connect time; in ms. */
  ms: number | null;
  /** Why it failed ("no reply", "connect: Connection refused"...); dns: one of nxdomain, nodata,
   *  servfail, refused, notimp, rcode, truncated, timeout, error. A ping that got replies: a
   *  send that failed and ended its requests early, or null. */
  error: string | null;
  /** dns failures: the server that answered so, or what went wrong locally. */
  info: string | null;
  httpStatus: number | null;
  httpBody: string | null;
  /** dns: the A records (after CNAMEs), in the answer's order. */
  addresses: string[] | null;
  /** ping, once a request went out; null otherwise. */
  ping?: PingStats | null;
  /** throughput, when data arrived: the bytes the receiver read in the sender's window and
   *  the window's length. */
  throughput?: { bytes: number; seconds: number } | null;
}

/** SENT,RECEIVED,MIN_US,AVG_US,MAX_US from the helper. */
export function parsePingStats(s: string | undefined): PingStats | null {
  const m = /^(\d+),(\d+),(\d+),(\d+),(\d+)$/.exec(s ?? '');
  if (!m) return null;
  const [sent, received, min, avg, max] = m.slice(1).map(Number);
  const ms = (us: number) => (received > 0 ? us / 1000 : null);
  return { sent, received, rttMinMs: ms(min), rttAvgMs: ms(avg), rttMaxMs: ms(max) };
}

export const PROBE_BATCH = 10_000;

/** The helper's input line for probe `p` with this id (runtime/shim.c, probe mode). */
export function probeLine(id: number, p: Probe): string {
  const ns = p.netns ? `/run/netns/${p.netns}` : '-';
  const f: (string | number)[] = [id, p.kind, ns, p.address];
  if (p.kind === 'ping') f.push(p.count ?? 1, p.timeoutMs, PING_INTERVAL_MS);
  else if (p.kind === 'dns') f.push(p.timeoutMs, p.name ?? '', p.tryMs ?? p.timeoutMs, p.attempts ?? 1);
  else f.push(p.port ?? 80, p.timeoutMs);
  if (p.kind === 'throughput') {
    if (!p.receiverNetns || !p.durationMs) throw new Error('a throughput probe needs its receiver\'s namespace and a duration');
    f.push(`/run/netns/${p.receiverNetns}`, Math.max(1, Math.round(p.durationMs)));
  }
  if (p.kind === 'http') f.push(p.host ?? p.address, p.path ?? '/');
  for (const x of f) if (/[\t\n]/.test(String(x))) throw new Error(`probe field contains a tab or newline: ${JSON.stringify(x)}`);
  return f.join('\t') + '\n';
}

/** One output line of the helper (ID<TAB>ok|fail<TAB>DETAIL[<TAB>MORE]) as probe p's result. */
export function parseResult(p: Probe, text: string): ProbeResult {
  const [, verdict, detail = '', body] = text.split('\t');
  const none = { ms: null, error: null, info: null, httpStatus: null, httpBody: null, addresses: null };
  if (p.kind === 'ping') {
    // ok: STATS[<TAB>ERROR]; fail: REASON[<TAB>STATS] (no STATS when nothing was sent).
    const ping = parsePingStats(verdict === 'ok' ? detail : body);
    return verdict === 'ok'
      ? { ...none, ok: true, ms: ping?.rttAvgMs ?? null, ping, error: body ?? null }
      : { ...none, ok: false, error: detail || 'failed', ping };
  }
  if (verdict !== 'ok') return { ...none, ok: false, error: detail || 'failed', info: body ?? null };
  if (p.kind === 'http') return { ...none, ok: true, httpStatus: Number(detail), httpBody: Buffer.from(body ?? '', 'hex').toString('utf8') };
  if (p.kind === 'dns') return { ...none, ok: true, addresses: detail.split(',').filter(Boolean) };
  if (p.kind === 'throughput') {
    const bytes = Number(detail), seconds = Number(body) / 1e6;
    if (!(bytes > 0) || !(seconds > 0)) return { ...none, ok: false, error: `unreadable result from the probe helper: ${JSON.stringify(text)}` };
    return { ...none, ok: true, throughput: { bytes, seconds } };
  }
  return { ...none, ok: true, ms: Number(detail) / 1000 };
}

async function runBatch(probes: Probe[], offset: number, out: ProbeResult[]): Promise<void> {
  const child = spawn(SHIM_PATH, ['probe'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let buf = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const text = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      const i = Number(text.slice(0, text.indexOf('\t'))) - offset;
      const p = probes[i];
      if (p) out[offset + i] = parseResult(p, text);
    }
  });
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  child.stdin!.end(probes.map((p, i) => probeLine(offset + i, p)).join(''));
  const code: number = await new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (c) => resolve(c ?? 1));
  });
  if (code !== 0) throw new Error(`probe helper failed (exit ${code}): ${stderr.trim()}`);
}

/** Runs the probes (in bounded batches) and returns one result per probe, in order. */
export async function runProbes(probes: Probe[]): Promise<ProbeResult[]> {
  const out: ProbeResult[] = new Array(probes.length);
  for (let i = 0; i < probes.length; i += PROBE_BATCH) {
    await runBatch(probes.slice(i, i + PROBE_BATCH), i, out);
  }
  for (let i = 0; i < probes.length; i++) {
    out[i] ??= { ok: false, ms: null, error: 'no result from the probe helper', info: null, httpStatus: null, httpBody: null, addresses: null };
  }
  return out;
}

/** A probe runner that gathers the probes asked for in one turn of the event loop into one
 *  runProbes call: callers that each await their own probe (one dns check's search list after
 *  another's) still share a helper process per round. */
export function probeBatcher(run: (probes: Probe[]) => Promise<ProbeResult[]> = runProbes): (p: Probe) => Promise<ProbeResult> {
  let queue: { probe: Probe; resolve: (r: ProbeResult) => void; reject: (e: unknown) => void }[] = [];
  const flush = () => {
    const batch = queue;
    queue = [];
    run(batch.map((q) => q.probe)).then((rs) => batch.forEach((q, i) => q.resolve(rs[i])), (e: unknown) => batch.forEach((q) => q.reject(e)));
  };
  return (probe) => new Promise((resolve, reject) => {
    if (queue.length === 0) setImmediate(flush);
    queue.push({ probe, resolve, reject });
  });
}
