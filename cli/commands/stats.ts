// `netlab stats [LAB] [--json] [--watch]`: CPU, memory, pids and traffic per node, as a table
// like `docker stats` or as JSON. One shot: two readings 500 ms apart (CPU percent needs an
// interval). --watch: a new frame every second, CPU percent over that second, until Ctrl-C
// (a terminal is redrawn in place; anything else gets one table, or one JSON line, per frame).
import { readStats, statsOf, type LabReading, type LabStats, type NodeStats } from '../../controller/stats.js';
import { requireRoot } from '../../controller/labs.js';
import type { Io } from '../io.js';
import { labNameOf } from '../target.js';

export interface StatsOptions { json?: boolean; watch?: boolean }

/** Interval of the one-shot reading and of --watch's first frame. */
export const FIRST_INTERVAL_MS = 500;
export const WATCH_INTERVAL_MS = 1000;

/** Memory as docker stats prints it: binary units, 3 significant digits ("1.23MiB"). */
export function binaryBytes(n: number): string {
  return scaled(n, 1024, ['B', 'KiB', 'MiB', 'GiB', 'TiB']);
}

/** Traffic as docker stats prints it: decimal units ("1.5kB", "23.4MB"). */
export function decimalBytes(n: number): string {
  return scaled(n, 1000, ['B', 'kB', 'MB', 'GB', 'TB']);
}

function scaled(n: number, base: number, units: string[]): string {
  let i = 0;
  let v = n;
  while (v >= base && i < units.length - 1) { v /= base; i++; }
  if (i === 0) return `${n}${units[0]}`;
  const digits = v >= 100 ? 0 : v >= 10 ? 1 : 2;
  return `${v.toFixed(digits)}${units[i]}`;
}

function row(s: NodeStats): string[] {
  const cpu = s.cpu.percent === null ? '-' : `${s.cpu.percent.toFixed(2)}%`;
  const time = s.cpu.usage_seconds === null ? '-' : `${s.cpu.usage_seconds.toFixed(2)}s`;
  const mem = s.memory.bytes === null ? '-' : `${binaryBytes(s.memory.bytes)} / ${s.memory.limit === null ? 'no limit' : binaryBytes(s.memory.limit)}`;
  const memPct = s.memory.bytes !== null && s.memory.limit !== null && s.memory.limit > 0 ? `${((s.memory.bytes / s.memory.limit) * 100).toFixed(2)}%` : '-';
  const rx = s.net.reduce((t, f) => t + f.rx_bytes, 0);
  const tx = s.net.reduce((t, f) => t + f.tx_bytes, 0);
  const net = s.net.length === 0 ? '-' : `${decimalBytes(rx)} / ${decimalBytes(tx)}`;
  return [s.name, cpu, time, mem, memPct, s.pids === null ? '-' : String(s.pids), net];
}

/** The table: one row per node (a LAB column first when several labs are shown); NET I/O is
 *  received / sent over every interface of the node but lo. */
export function formatStats(labs: LabStats[], o: { labColumn?: boolean } = {}): string {
  if (labs.length === 0) return 'no labs are up\n';
  const head = ['NAME', 'CPU %', 'CPU TIME', 'MEM USAGE / LIMIT', 'MEM %', 'PIDS', 'NET I/O'];
  const rows: string[][] = [];
  for (const l of labs) for (const n of l.nodes) rows.push(o.labColumn ? [l.lab, ...row(n)] : row(n));
  const table = [o.labColumn ? ['LAB', ...head] : head, ...rows];
  const widths = table[0].map((_, c) => Math.max(...table.map((r) => r[c].length)));
  return table.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]))).join('   ').trimEnd()).join('\n') + '\n';
}

/** The JSON document: one lab's report, or `{ labs: [...] }` for every lab. */
export function statsJson(labs: LabStats[], labName: string | undefined): object {
  return labName !== undefined ? labs[0] : { labs };
}

const sleep = (ms: number, stop: () => boolean) => new Promise<void>((resolve) => {
  const started = Date.now();
  const tick = () => (stop() || Date.now() - started >= ms ? resolve() : setTimeout(tick, Math.min(50, ms - (Date.now() - started))));
  tick();
});

export async function stats(io: Io, arg: string | undefined, opts: StatsOptions): Promise<void> {
  requireRoot('stats');
  const lab = arg === undefined ? undefined : labNameOf(arg);
  const render = (labs: LabStats[]) => (opts.json
    ? JSON.stringify(statsJson(labs, lab), null, opts.watch ? undefined : 2) + '\n'
    : formatStats(labs, { labColumn: lab === undefined }));
  let prev: LabReading[] = await readStats(lab);
  if (!opts.watch) {
    await new Promise((r) => setTimeout(r, FIRST_INTERVAL_MS));
    io.out(render(statsOf(prev, await readStats(lab))));
    return;
  }
  let stopped = false;
  const stop = () => { stopped = true; };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  const tty = !opts.json && process.stdout.isTTY === true;
  try {
    let wait = FIRST_INTERVAL_MS;
    for (;;) {
      await sleep(wait, () => stopped);
      if (stopped) break;
      const cur = await readStats(lab);
      const text = render(statsOf(prev, cur));
      // A terminal is redrawn in place (as docker stats does); a pipe or file gets every frame.
      io.out(tty ? `\x1b[H\x1b[2J${text}` : opts.json ? text : `${text}\n`);
      prev = cur;
      wait = WATCH_INTERVAL_MS;
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}
