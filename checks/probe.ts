// Connectivity probes (ping, tcp, http) and DNS queries from inside lab namespaces, run by the
// shim's probe mode: every probe of a batch from one process, sockets created in each source
// namespace, one poll loop. Batches are bounded so a very large matrix does not flood the
// bridges at once. A dns probe is one A query for one name; which names to ask, and whether to
// ask at all, is checks/resolve.ts's business.
import { spawn } from 'node:child_process';
import { SHIM_PATH } from '../runtime/container.js';

export type ProbeKind = 'ping' | 'tcp' | 'http' | 'dns';

export interface Probe {
  kind: ProbeKind;
  /** Named netns of the source, or null for the host's own stack (host-mode nodes). */
  netns: string | null;
  /** The address probed; dns: the nameservers, comma-separated (at most 3 are used). */
  address: string;
  /** ping: number of echo requests (success on the first reply). */
  count?: number;
  /** tcp/http. */
  port?: number;
  timeoutMs: number;
  /** http: Host header and path. */
  host?: string;
  path?: string;
  /** dns: the name asked (no trailing dot), the time each server gets per try, the rounds. */
  name?: string;
  tryMs?: number;
  attempts?: number;
}

export interface ProbeResult {
  ok: boolean;
  /** ping/tcp: round trip or connect time in ms. */
  ms: number | null;
  /** Why it failed ("no reply", "connect: Connection refused"...); dns: one of nxdomain, nodata,
   *  servfail, refused, notimp, rcode, truncated, timeout, error. */
  error: string | null;
  /** dns failures: the server that answered so, or what went wrong locally. */
  info: string | null;
  httpStatus: number | null;
  httpBody: string | null;
  /** dns: the A records (after CNAMEs), in the answer's order. */
  addresses: string[] | null;
}

export const PROBE_BATCH = 10_000;

function line(id: number, p: Probe): string {
  const ns = p.netns ? `/run/netns/${p.netns}` : '-';
  const f: (string | number)[] = [id, p.kind, ns, p.address];
  if (p.kind === 'ping') f.push(p.count ?? 1, p.timeoutMs);
  else if (p.kind === 'dns') f.push(p.timeoutMs, p.name ?? '', p.tryMs ?? p.timeoutMs, p.attempts ?? 1);
  else f.push(p.port ?? 80, p.timeoutMs);
  if (p.kind === 'http') f.push(p.host ?? p.address, p.path ?? '/');
  for (const x of f) if (/[\t\n]/.test(String(x))) throw new Error(`probe field contains a tab or newline: ${JSON.stringify(x)}`);
  return f.join('\t') + '\n';
}

async function runBatch(probes: Probe[], offset: number, out: ProbeResult[]): Promise<void> {
  const child = spawn(SHIM_PATH, ['probe'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let buf = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const [id, verdict, detail = '', body] = buf.slice(0, nl).split('\t');
      buf = buf.slice(nl + 1);
      const i = Number(id) - offset;
      const p = probes[i];
      if (!p) continue;
      const none = { ms: null, error: null, info: null, httpStatus: null, httpBody: null, addresses: null };
      if (verdict === 'ok') {
        out[offset + i] = p.kind === 'http'
          ? { ...none, ok: true, httpStatus: Number(detail), httpBody: Buffer.from(body ?? '', 'hex').toString('utf8') }
          : p.kind === 'dns' ? { ...none, ok: true, addresses: detail.split(',').filter(Boolean) }
          : { ...none, ok: true, ms: Number(detail) / 1000 };
      } else {
        out[offset + i] = { ...none, ok: false, error: detail || 'failed', info: body ?? null };
      }
    }
  });
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  child.stdin!.end(probes.map((p, i) => line(offset + i, p)).join(''));
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
