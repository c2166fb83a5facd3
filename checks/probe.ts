// Connectivity probes (ping, tcp, http) from inside lab namespaces, run by the shim's probe
// mode: every probe of a batch from one process, sockets created in each source namespace,
// one poll loop. Batches are bounded so a very large matrix does not flood the bridges at once.
import { spawn } from 'node:child_process';
import { SHIM_PATH } from '../runtime/container.js';

export type ProbeKind = 'ping' | 'tcp' | 'http';

export interface Probe {
  kind: ProbeKind;
  /** Named netns of the source, or null for the host's own stack (host-mode nodes). */
  netns: string | null;
  address: string;
  /** ping: number of echo requests (success on the first reply). */
  count?: number;
  /** tcp/http. */
  port?: number;
  timeoutMs: number;
  /** http: Host header and path. */
  host?: string;
  path?: string;
}

export interface ProbeResult {
  ok: boolean;
  /** ping/tcp: round trip or connect time in ms. */
  ms: number | null;
  /** Why it failed ("no reply", "connect: Connection refused"...). */
  error: string | null;
  httpStatus: number | null;
  httpBody: string | null;
}

export const PROBE_BATCH = 10_000;

function line(id: number, p: Probe): string {
  const ns = p.netns ? `/run/netns/${p.netns}` : '-';
  const f: (string | number)[] = [id, p.kind, ns, p.address];
  if (p.kind === 'ping') f.push(p.count ?? 1, p.timeoutMs);
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
      if (verdict === 'ok') {
        out[offset + i] = p.kind === 'http'
          ? { ok: true, ms: null, error: null, httpStatus: Number(detail), httpBody: Buffer.from(body ?? '', 'hex').toString('utf8') }
          : { ok: true, ms: Number(detail) / 1000, error: null, httpStatus: null, httpBody: null };
      } else {
        out[offset + i] = { ok: false, ms: null, error: detail || 'failed', httpStatus: null, httpBody: null };
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
    out[i] ??= { ok: false, ms: null, error: 'no result from the probe helper', httpStatus: null, httpBody: null };
  }
  return out;
}
