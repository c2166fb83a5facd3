// Memory a lab adds, read from /proc: the processes netlab starts for it (the lab's supervisor,
// `netlab-shim supervise`, and every process of its containers: the supervisor's descendants)
// with their RSS (resident pages, shared ones counted in each process), PSS (shared pages split
// between the processes that map them) and USS (private pages only); and the kernel's side, as
// the change of /proc/meminfo's MemAvailable (and the fields that explain it) from just before
// `up` to just after it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { labDir } from '../controller/state.js';

/** /proc/meminfo in KiB. */
export function meminfo(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of fs.readFileSync('/proc/meminfo', 'utf8').split('\n')) {
    const m = /^(\w+(?:\(\w+\))?):\s+(\d+)/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

/** The meminfo fields whose change explains a lab's kernel-side cost. */
export const MEMINFO_FIELDS = ['MemAvailable', 'MemFree', 'AnonPages', 'Shmem', 'Slab', 'SUnreclaim', 'KernelStack', 'PageTables', 'VmallocUsed', 'Percpu'] as const;
export type MeminfoDelta = Record<(typeof MEMINFO_FIELDS)[number], number>;

/** The kernel's own objects in meminfo (KiB): slab, page tables, vmalloc (which holds the
 *  kernel stacks, CONFIG_VMAP_STACK), shmem (the state on tmpfs), per-CPU areas. Their change is
 *  a steadier measure of what a lab costs the kernel than MemAvailable, which also moves with the
 *  page cache, the measuring process's own heap, and memory the kernel gives back late from
 *  earlier work (slab objects and RCU-deferred frees of a lab just taken down are reused by the
 *  next `up`). It misses large kmalloc allocations, which meminfo does not show. */
export function kernelObjects(d: MeminfoDelta): number {
  return d.Slab + d.PageTables + d.VmallocUsed + d.Shmem + d.Percpu;
}

/** Waits until MemAvailable has stopped moving (less than 1 MiB over 300 ms, three times in a
 *  row), at most capMs: memory freed late by the previous run is not counted in the next one. */
export async function memQuiet(capMs = 5000): Promise<number> {
  const t0 = performance.now();
  let prev = meminfo().MemAvailable ?? 0;
  let calm = 0;
  while (calm < 3 && performance.now() - t0 < capMs) {
    await new Promise((r) => setTimeout(r, 300));
    const cur = meminfo().MemAvailable ?? 0;
    calm = Math.abs(cur - prev) < 1024 ? calm + 1 : 0;
    prev = cur;
  }
  return performance.now() - t0;
}

/** after - before, in KiB, of MEMINFO_FIELDS (MemAvailable and MemFree as "used": before - after). */
export function meminfoDelta(before: Record<string, number>, after: Record<string, number>): MeminfoDelta {
  const d = {} as MeminfoDelta;
  for (const k of MEMINFO_FIELDS) {
    const b = before[k] ?? 0;
    const a = after[k] ?? 0;
    d[k] = k === 'MemAvailable' || k === 'MemFree' ? b - a : a - b;
  }
  return d;
}

export interface ProcMem {
  /** KiB */
  rss: number;
  pss: number;
  uss: number;
}

function procMem(pid: number): ProcMem | null {
  try {
    const roll = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const f = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(roll)?.[1] ?? 0);
    return { rss: f('Rss'), pss: f('Pss'), uss: f('Private_Clean') + f('Private_Dirty') };
  } catch {
    return null;
  }
}

/** pid -> parent pid of every process. */
function parents(): Map<number, number> {
  const m = new Map<number, number>();
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (rest[0] !== 'Z') m.set(Number(e), Number(rest[1]));
    } catch { /* exited meanwhile */ }
  }
  return m;
}

export interface LabMemory {
  /** The lab's supervisor (`netlab-shim supervise`), or null when it has none (bare namespaces). */
  supervisor: ProcMem | null;
  /** Every descendant of the supervisor: the containers' processes. */
  containers: ProcMem & { processes: number };
  /** supervisor + containers. */
  total: ProcMem;
}

/** The processes netlab added for `lab`, found from its supervisor's pid file. */
export function labMemory(lab: string): LabMemory {
  const zero = (): ProcMem => ({ rss: 0, pss: 0, uss: 0 });
  const res: LabMemory = { supervisor: null, containers: { ...zero(), processes: 0 }, total: zero() };
  let sup = 0;
  try { sup = Number(fs.readFileSync(path.join(labDir(lab), 'containers', 'supervisor.pid'), 'utf8').trim()) || 0; } catch { /* bare */ }
  if (!sup) return res;
  res.supervisor = procMem(sup);
  const pp = parents();
  const kids = new Map<number, number[]>();
  for (const [pid, ppid] of pp) (kids.get(ppid) ?? kids.set(ppid, []).get(ppid)!).push(pid);
  const stack = [...(kids.get(sup) ?? [])];
  while (stack.length) {
    const pid = stack.pop()!;
    const m = procMem(pid);
    if (m) {
      res.containers.rss += m.rss;
      res.containers.pss += m.pss;
      res.containers.uss += m.uss;
      res.containers.processes++;
    }
    stack.push(...(kids.get(pid) ?? []));
  }
  for (const k of ['rss', 'pss', 'uss'] as const) res.total[k] = (res.supervisor?.[k] ?? 0) + res.containers[k];
  return res;
}

/** Open file descriptors of this process. */
export function openFds(): number {
  try { return fs.readdirSync('/proc/self/fd').length; } catch { return -1; }
}

/** Resident memory of one idle process started on the host (`argv`), read after `waitMs`; the
 *  process is killed afterwards. null if it could not be started. */
export async function idleProcessMemory(argv: string[], waitMs = 300): Promise<ProcMem | null> {
  const { spawn } = await import('node:child_process');
  let child;
  try {
    child = spawn(argv[0], argv.slice(1), { stdio: 'ignore' });
  } catch {
    return null;
  }
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.once('error', () => { /* reported as null below */ });
  await new Promise((r) => setTimeout(r, waitMs));
  const m = child.pid ? procMem(child.pid) : null;
  child.kill('SIGKILL');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
  return m;
}
