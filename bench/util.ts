// Small helpers shared by the benchmark: statistics, timing of child commands, the machine's
// description, and a wait for the machine to be quiet between measured runs.
import { spawn, spawnSync, type SpawnOptions } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface Stats {
  median: number;
  min: number;
  max: number;
  n: number;
  samples: number[];
}

export function stats(samples: number[]): Stats {
  const s = [...samples].sort((a, b) => a - b);
  const n = s.length;
  const median = n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  return { median: round(median), min: round(s[0] ?? NaN), max: round(s[n - 1] ?? NaN), n, samples: samples.map((x) => round(x)) };
}

export function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export function fmtMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '-';
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

export function fmtStats(s: Stats | null | undefined): string {
  if (!s || s.n === 0) return '-';
  return `${fmtMs(s.median)} (${fmtMs(s.min)}–${fmtMs(s.max)})`;
}

export interface CmdResult {
  ms: number;
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, timing it from spawn to exit (wall clock). */
export function timeCmd(cmd: string, args: string[], opts: SpawnOptions & { input?: string; timeoutMs?: number } = {}): Promise<CmdResult> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { ...opts, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    let timer: NodeJS.Timeout | undefined;
    if (opts.timeoutMs) timer = setTimeout(() => child.kill('SIGTERM'), opts.timeoutMs);
    child.on('error', (e) => { if (timer) clearTimeout(timer); reject(e); });
    child.on('close', (code, signal) => {
      const ms = performance.now() - t0;
      if (timer) clearTimeout(timer);
      resolve({ ms, code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
    if (opts.input !== undefined) {
      child.stdin!.on('error', () => { /* the child exited without reading: its exit status tells */ });
      child.stdin!.end(opts.input);
    }
  });
}

/** stdout of a short command ('' when it fails); with `both`, stdout + stderr (mn --version
 *  prints to stderr). */
export function sh(cmd: string, args: string[], both = false): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) return '';
  return (both ? `${r.stdout}${r.stderr}` : r.stdout).trim();
}

/** Names of the links in the root namespace, with `ip -j link show`. A dump can fail while
 *  another user creates or deletes links at the same moment ("Dump was interrupted"), so it is
 *  retried; only repeated failure throws (an empty list always means no link). */
export function ipLinkNames(): string[] {
  let last = '';
  for (let i = 0; i < 10; i++) {
    const r = spawnSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8', maxBuffer: 1 << 28 });
    if (r.status === 0 && r.stdout.trim()) return (JSON.parse(r.stdout) as { ifname: string }[]).map((l) => l.ifname);
    last = (r.stderr || '').trim();
  }
  throw new Error(`ip -j link show failed 10 times: ${last}`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function cpuTicks(): { busy: number; total: number } {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/** Waits until the machine is quiet (the kernel's deferred netns clean-up of the previous run
 *  and anything else has finished): a 200 ms window with less than `maxBusy` of all CPUs busy,
 *  at most `capMs`. Returns the busy fraction of the last window (recorded with each sample so
 *  a noisy run can be seen). */
export async function waitQuiet(maxBusy = 0.1, capMs = 6000): Promise<number> {
  const t0 = Date.now();
  let busy = 1;
  do {
    const a = cpuTicks();
    await sleep(200);
    const b = cpuTicks();
    busy = (b.busy - a.busy) / Math.max(1, b.total - a.total);
  } while (busy > maxBusy && Date.now() - t0 < capMs);
  return round(busy, 3);
}

export function loadavg(): number[] {
  return os.loadavg().map((x) => round(x, 2));
}

export interface Machine {
  hostname: string;
  nproc: number;
  cpuModel: string;
  memoryMiB: number;
  kernel: string;
  os: string;
  node: string;
  iproute2: string;
  mininet: string | null;
  /** File system that holds netlab's state (/run/netlab): tmpfs on most machines. */
  stateFs: string;
}

/** Type of the file system a path is on (longest mount point that prefixes it). */
export function fsTypeOf(p: string): string {
  let best = '';
  let type = 'unknown';
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    const mp = f[4];
    const dash = f.indexOf('-');
    if (!mp || dash < 0) continue;
    if ((p === mp || p.startsWith(mp.endsWith('/') ? mp : `${mp}/`)) && mp.length >= best.length) {
      best = mp;
      type = `${f[dash + 1]} (${f[dash + 2]} on ${mp})`;
    }
  }
  return type;
}

export function machine(): Machine {
  let osName = '';
  try {
    osName = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(fs.readFileSync('/etc/os-release', 'utf8'))?.[1] ?? '';
  } catch { /* not Linux-standard: leave empty */ }
  const cpuModel = /^model name\s*:\s*(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? os.cpus()[0]?.model ?? '';
  const mn = sh('mn', ['--version'], true);
  return {
    hostname: os.hostname(),
    nproc: Number(sh('nproc', [])) || os.cpus().length,
    cpuModel,
    memoryMiB: Math.round(os.totalmem() / 1048576),
    kernel: `${os.type()} ${os.release()}`,
    os: osName,
    node: process.version,
    iproute2: sh('ip', ['-V']).replace(/^ip utility, /, ''),
    mininet: mn || null,
    stateFs: fsTypeOf(process.env.NETLAB_STATE_DIR || '/run/netlab'),
  };
}

/** Peak resident set of this process in KiB (VmHWM, the same as resourceUsage().maxRSS). */
export function peakRssKiB(): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]);
  } catch { /* fall through */ }
  return process.resourceUsage().maxRSS;
}

/** The runtime's per-node file pattern (as prepareNode does it: 4 directories made with
 *  `recursive`, 7 small files), for 100 nodes, then its `rm -r`; in ms. */
function fsPattern(base: string): { createMs: number; rmMs: number } {
  fs.rmSync(base, { recursive: true, force: true });
  const t0 = performance.now();
  for (let i = 0; i < 100; i++) {
    const dir = path.join(base, `n${i}`);
    for (const d of ['upper', 'work', 'rootfs', 'upper/etc']) fs.mkdirSync(path.join(dir, d), { recursive: true });
    for (const f of ['upper/etc/hosts', 'upper/etc/hostname', 'upper/etc/resolv.conf', 'cgroups.json', 'spec', 'argv', 'env']) {
      fs.writeFileSync(path.join(dir, f), 'x'.repeat(200));
    }
  }
  const t1 = performance.now();
  fs.rmSync(base, { recursive: true, force: true });
  return { createMs: round(t1 - t0), rmMs: round(performance.now() - t1) };
}

export interface FsCost {
  /** Where netlab's state lives and what file system that is. */
  stateDir: string;
  stateFs: string;
  /** Medians of 3 runs of the 100-node pattern beside the state directory and on a tmpfs. */
  beside: { createMs: number; rmMs: number };
  tmpfs: { createMs: number; rmMs: number } | null;
}

/** Measures the runtime's file pattern beside netlab's state directory (same file system) and
 *  on a private tmpfs mounted under `scratch` (unmounted before returning). */
export function fsCost(stateRoot: string, runId: string, scratch: string): FsCost {
  const med = (xs: { createMs: number; rmMs: number }[]) => ({
    createMs: stats(xs.map((x) => x.createMs)).median, rmMs: stats(xs.map((x) => x.rmMs)).median,
  });
  const beside = path.join(path.dirname(stateRoot), `netlab-bench-fs-${runId}`);
  const a = [0, 1, 2].map(() => fsPattern(beside));
  let tmpfs: FsCost['tmpfs'] = null;
  const mnt = path.join(scratch, 'tmpfs');
  fs.mkdirSync(mnt, { recursive: true });
  if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64m', 'none', mnt]).status === 0) {
    try {
      tmpfs = med([0, 1, 2].map(() => fsPattern(path.join(mnt, 'x'))));
    } finally {
      spawnSync('umount', [mnt]);
    }
  }
  return { stateDir: path.dirname(stateRoot), stateFs: fsTypeOf(stateRoot), beside: med(a), tmpfs };
}

const sectionBegin = (name: string) => `<!-- begin ${name}: generated by bench/${name}.ts, kept by bench/run.ts -->`;
const sectionEnd = (name: string) => `<!-- end ${name} -->`;

/** `doc` with the generated section `name` replaced by `body` (or, when absent, put before the
 *  line `before`, else at the end). Lets one script own a part of a file another one renders. */
export function spliceSection(doc: string, name: string, body: string, before?: string): string {
  const block = `${sectionBegin(name)}\n${body.trimEnd()}\n${sectionEnd(name)}\n`;
  const a = doc.indexOf(sectionBegin(name));
  const b = doc.indexOf(sectionEnd(name));
  if (a >= 0 && b > a) return doc.slice(0, a) + block + doc.slice(b + sectionEnd(name).length).replace(/^\n/, '');
  const at = before ? doc.search(new RegExp(`^${before.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`, 'm')) : -1;
  if (at >= 0) return `${doc.slice(0, at)}${block}\n${doc.slice(at)}`;
  return `${doc.trimEnd()}\n\n${block}`;
}

/** Generated sections of other scripts (see spliceSection) found in `oldDoc`, carried into
 *  `newDoc`, so rewriting the file does not lose them. */
export function carrySections(oldDoc: string, newDoc: string, before?: string): string {
  let doc = newDoc;
  for (const m of oldDoc.matchAll(/<!-- begin ([\w-]+): generated by [^\n]*-->\n([\s\S]*?)<!-- end \1 -->/g)) {
    doc = spliceSection(doc, m[1]!, m[2]!, before);
  }
  return doc;
}
