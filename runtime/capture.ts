// `netlab capture`: frames of one interface of a node, as pcap, from an AF_PACKET socket the
// shim opens in the node's network namespace (runtime/shim.c capture). No tcpdump: the shim
// writes libpcap's format itself, straight to the file or to this process's stdout (the same
// descriptor, so `netlab capture ... | tcpdump -r -` reads it as it comes). The filter is a
// small language, parsed here into the shim's terms, all of which a frame must match.
import * as fs from 'node:fs';
import { spawn } from 'node:child_process';
import { RuntimeError, SHIM_PATH } from './container.js';
import { suggest } from '../topology/source.js';

export class CaptureError extends RuntimeError {}

/** A filter problem: a usage error (exit 2). */
export class FilterError extends CaptureError {
  constructor(message: string) {
    super(message, { exitCode: 2 });
  }
}

const PROTOCOLS = ['icmp', 'tcp', 'udp', 'arp'];
const WORDS = [...PROTOCOLS, 'host', 'port', 'and'];

/** Parses a filter: primitives `icmp`, `tcp`, `udp`, `arp`, `host A.B.C.D`, `port N`, joined by
 *  `and` (or `&&`); `tcp port N` and `udp port N` are short for `tcp and port N`. Returns the
 *  shim's terms (icmp, tcp, udp, arp, host=A.B.C.D, port=N); an empty filter is no terms. */
export function parseFilter(expr: string): string[] {
  const words = expr.trim() === '' ? [] : expr.trim().split(/\s+/);
  const terms: string[] = [];
  let i = 0;
  let expectPrimitive = true;
  const where = (w: string | undefined) => (w === undefined ? 'at the end' : `at "${w}"`);
  while (i < words.length) {
    const w = words[i].toLowerCase();
    if (!expectPrimitive) {
      if (w === 'and' || w === '&&') { expectPrimitive = true; i++; continue; }
      if (w === 'port' && (terms[terms.length - 1] === 'tcp' || terms[terms.length - 1] === 'udp')) { expectPrimitive = true; continue; }
      throw new FilterError(`--filter "${expr}": expected "and" ${where(words[i])}${w === 'or' || w === '||' || w === 'not' || w === '!' ? ' (only "and" is supported)' : ''}`);
    }
    if (PROTOCOLS.includes(w)) { terms.push(w); i++; expectPrimitive = false; continue; }
    if (w === 'host') {
      const a = words[i + 1];
      if (a === undefined || !isIpv4(a)) throw new FilterError(`--filter "${expr}": "host" needs an IPv4 address, ${a === undefined ? 'got nothing' : `not "${a}"`}`);
      terms.push(`host=${a}`);
      i += 2; expectPrimitive = false; continue;
    }
    if (w === 'port') {
      const p = words[i + 1];
      if (p === undefined || !/^\d{1,5}$/.test(p) || Number(p) < 1 || Number(p) > 65535) throw new FilterError(`--filter "${expr}": "port" needs a number from 1 to 65535, ${p === undefined ? 'got nothing' : `not "${p}"`}`);
      terms.push(`port=${Number(p)}`);
      i += 2; expectPrimitive = false; continue;
    }
    if (w === 'and' || w === '&&') throw new FilterError(`--filter "${expr}": "and" needs a primitive before it`);
    const hint = suggest(w, WORDS);
    throw new FilterError(`--filter "${expr}": unknown word "${words[i]}"${hint ? `; did you mean "${hint}"?` : ''} (supported: icmp, tcp, udp, arp, host ADDR, port N, joined by and)`);
  }
  if (words.length > 0 && expectPrimitive) throw new FilterError(`--filter "${expr}": a primitive is missing ${where(undefined)}`);
  return terms;
}

function isIpv4(a: string): boolean {
  const parts = a.split('.');
  return parts.length === 4 && parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255);
}

export interface CaptureOptions {
  /** The node's namespace name, null for the host's (network_mode: host). */
  netns: string | null;
  iface: string;
  /** Stop after this many frames; 0: until a signal or the reader is gone. */
  count: number;
  terms: string[];
  /** Write the pcap to this file (created or truncated, mode 0644); absent: this process's stdout. */
  file?: string;
  /** The shim's progress lines ("listening on ...", "N packets captured"). */
  info: (line: string) => void;
}

/** Runs the capture until it stops (COUNT frames, SIGINT/SIGTERM/SIGHUP to this process, which
 *  are passed on, or the reader of stdout gone); resolves to the number of frames written. */
export async function capture(o: CaptureOptions): Promise<number> {
  let out: number | 'inherit' = 'inherit';
  if (o.file !== undefined) {
    try { out = fs.openSync(o.file, 'w', 0o644); } catch (e) { throw new CaptureError(`capture: cannot write ${o.file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`); }
  }
  const args = ['capture', o.netns === null ? '-' : `/run/netns/${o.netns}`, o.iface, String(o.count), ...o.terms];
  const child = spawn(SHIM_PATH, args, { stdio: ['ignore', out, 'pipe'] });
  if (typeof out === 'number') fs.closeSync(out);
  const forward = (sig: NodeJS.Signals) => () => { try { child.kill(sig); } catch { /* gone */ } };
  const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((s) => [s, forward(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  let error: string | null = null;
  let captured = 0;
  let buf = '';
  child.stderr!.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.startsWith('netlab-shim: ')) error ??= line.slice('netlab-shim: '.length);
      else {
        const m = /^(\d+) packets? captured$/.exec(line);
        if (m) captured = Number(m[1]);
        o.info(line);
      }
    }
  });
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on('error', (e) => reject(new CaptureError(`capture: cannot run ${SHIM_PATH}: ${e.message}`)));
      child.on('close', (c) => resolve(c));
    });
    if (code !== 0) throw new CaptureError(`capture: ${error ?? `the capture helper failed (${code})`}`);
    return captured;
  } finally {
    for (const [s, h] of handlers) process.off(s, h);
  }
}
