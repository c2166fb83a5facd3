// Helpers for the web view's integration tests: `netlab web` as a child process (its URL and
// token read from what it prints), a server-sent events reader, and Debian's Chromium through
// playwright-core (never a downloaded browser).
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { CLI, REPO, waitExit } from './netlab.js';

export const CHROMIUM = process.env.NETLAB_CHROMIUM || '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
export const ARTIFACTS = path.join(REPO, 'test-artifacts');

export interface WebChild {
  proc: ChildProcess;
  url: string;
  base: string;
  token: string;
  stderr(): string;
  /** SIGTERM, then the exit code (SIGKILL after 5 s). */
  stop(): Promise<number | null>;
}

/** `node bin/netlab.js web ARGS... --port 0`, resolved once it printed its URL. */
export async function startWeb(args: string[], timeoutMs = 15_000): Promise<WebChild> {
  const proc = spawn(process.execPath, [CLI, 'web', ...args, '--port', '0'], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const url = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`netlab web printed no URL within ${timeoutMs} ms:\n${out}${err}`)); }, timeoutMs);
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /(http:\/\/\S+)/.exec(out);
      if (m) { clearTimeout(t); resolve(m[1]); }
    });
    proc.once('exit', (code) => { clearTimeout(t); reject(new Error(`netlab web exited (${code}) before printing its URL:\n${out}${err}`)); });
  });
  const u = new URL(url);
  return {
    proc,
    url,
    base: `${u.protocol}//${u.host}`,
    token: u.searchParams.get('token') ?? '',
    stderr: () => err,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      const w = waitExit(proc);
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      const r = await w;
      clearTimeout(t);
      return r.code;
    },
  };
}

/** A request to the child server; `own` adds the token header and this server's Origin. */
export async function api(w: WebChild, method: 'GET' | 'POST', p: string, o: { body?: unknown; own?: boolean; headers?: Record<string, string> } = {}): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = { ...(o.headers ?? {}) };
  if (o.own) { headers['X-Netlab-Token'] = w.token; headers.Origin = w.base; }
  if (o.body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(`${w.base}${p}`, { method, headers, body: o.body === undefined ? undefined : JSON.stringify(o.body) });
  const text = await res.text();
  let body: unknown = text;
  try { body = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, body };
}

export interface EventStream {
  events: { type: string; [k: string]: any }[];
  /** The first event (after those already taken) of `type` matching `pred`. */
  next(type: string, pred?: (e: any) => boolean, ms?: number): Promise<any>;
  close(): void;
}

/** Reads GET /api/events of the child server. */
export async function events(w: WebChild, query = ''): Promise<EventStream> {
  const u = new URL(`${w.base}/api/events${query}`);
  const events: { type: string }[] = [];
  const waiters = new Set<() => void>();
  let taken = 0;
  const req = http.get({ host: u.hostname, port: u.port, path: u.pathname + u.search });
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => { req.on('response', resolve); req.on('error', reject); });
  if (res.statusCode !== 200) throw new Error(`GET /api/events: ${res.statusCode}`);
  let buf = '';
  res.on('data', (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const data = block.split('\n').find((l) => l.startsWith('data: '));
      if (data) events.push(JSON.parse(data.slice(6)));
    }
    for (const wake of [...waiters]) wake();
  });
  res.on('error', () => undefined);
  return {
    events,
    next(type, pred = () => true, ms = 5000) {
      return new Promise((resolve, reject) => {
        const look = () => {
          for (let k = taken; k < events.length; k++) {
            const e = events[k];
            if (e.type === type && pred(e)) { taken = k + 1; waiters.delete(look); clearTimeout(t); resolve(e); return true; }
          }
          return false;
        };
        const t = setTimeout(() => { waiters.delete(look); reject(new Error(`no matching ${type} event within ${ms} ms (events: ${events.slice(taken).map((e) => e.type).join(', ') || 'none'})`)); }, ms);
        if (!look()) waiters.add(look);
      });
    },
    close() { req.destroy(); },
  };
}

/** A fresh Chromium profile folder (removed by the caller). */
export function freshProfile(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-chromium-'));
}
