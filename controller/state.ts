// Per-lab state on disk under /run/netlab/<lab>/ (a tmpfs: kernel objects vanish at reboot,
// and so does this): the resolved model, the status and progress of `up`, written atomically
// (temp file + rename), and the lock that stops two up/down runs of one lab from racing.
//
// Crash safety does not depend on this file: every kernel object a lab creates is derivable
// from the lab name (netns prefix, IFLA_GROUP, nft table name), so `down LAB` and `cleanup`
// work from the name alone. The state records the intent (status 'creating' with the model)
// before the first kernel step, so `status` can tell a half-built lab from a running one.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { labDir, STATE_ROOT, STATE_ROOT_IS_DEFAULT } from '../runtime/paths.js';
import type { Impairment, Lab } from '../topology/types.js';
import { NetlabError } from '../topology/errors.js';


export type LabStatus = 'creating' | 'up' | 'failed' | 'deleting';

export interface LabState {
  version: 1;
  lab: string;
  file: string;
  status: LabStatus;
  /** pid of the `netlab up` (or, while deleting, `down`) that wrote it; whether it still runs
   *  is told by the lab's lock (lockHolder), not by this pid. */
  pid: number;
  createdAt: string;
  updatedAt: string;
  /** Steps of the plan done so far, out of total. */
  progress: { done: number; total: number; phase: string };
  error: string | null;
  model: Lab;
  /** Set when this machine runs only one host's part of the lab (`up --as HOST`). A machine
   *  keeps one state per lab name, so two parts of one lab on one machine (a test playing two
   *  machines with two network namespaces) each need their own NETLAB_STATE_DIR. */
  as?: string;
  /** Cables set down or up at run time (`netlab link`), by "NODE:IFACE" (both ends of a link):
   *  the model stays as the file resolved it; modelOf() gives the lab as it runs. */
  cables?: Record<string, boolean>;
  /** Impairments set at run time (`netlab impair`), by "NODE:IFACE": null when cleared. Like
   *  cables, applied by modelOf() over the model. */
  impairments?: Record<string, Impairment | null>;
  /** Set by a complete `up`: the iptables chain its accept rules went into (DOCKER-USER or
   *  FORWARD), null when it needed none; absent when unknown (down then looks). */
  iptables?: string | null;
  /** While deleting: the status before `down` (or a rollback) began, which says whether
   *  containers may still be starting. */
  was?: LabStatus;
}


function statePath(lab: string): string {
  return path.join(labDir(lab), 'state.json');
}

/** Atomic replace: readers see the old or the new file, never half of one. */
export function writeFileAtomic(file: string, data: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, data, { mode: 0o644 });
  fs.renameSync(tmp, file);
}

export function writeState(s: LabState): void {
  fs.mkdirSync(labDir(s.lab), { recursive: true, mode: 0o755 });
  s.updatedAt = new Date().toISOString();
  writeFileAtomic(statePath(s.lab), JSON.stringify(s, null, 2) + '\n');
}

export function readState(lab: string): LabState | null {
  return readStateChecked(lab).state;
}

/** The state, or why it could not be read (null error: there is none). For `status`, which
 *  shows a damaged state file instead of pretending the lab has none. */
export function readStateChecked(lab: string): { state: LabState | null; error: string | null } {
  let text: string;
  try { text = fs.readFileSync(statePath(lab), 'utf8'); } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { state: null, error: code === 'ENOENT' ? null : `cannot read ${statePath(lab)}: ${code ?? (e as Error).message}` };
  }
  try {
    const s = JSON.parse(text) as LabState;
    if (s?.version === 1) return { state: s, error: null };
    return { state: null, error: `${statePath(lab)}: unknown state version ${JSON.stringify(s?.version)}` };
  } catch (e) {
    return { state: null, error: `${statePath(lab)}: not valid JSON (${(e as Error).message})` };
  }
}

/** Labs with a state directory, sorted. */
export function listStateLabs(): string[] {
  try {
    return fs.readdirSync(STATE_ROOT, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  } catch {
    return [];
  }
}

export function removeState(lab: string): void {
  fs.rmSync(labDir(lab), { recursive: true, force: true });
}

/** Who a lock file names: a process, by pid and start time (so a reused pid is not it), on one
 *  boot (a state directory on a disk outlives a reboot). */
export interface LockHolder {
  pid: number;
  /** Start time of the process in clock ticks since boot (field 22 of /proc/PID/stat). */
  start: number | null;
  boot: string | null;
}

function readBootId(): string {
  try { return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(); } catch { return ''; }
}
const BOOT_ID = readBootId();

/** Field 22 (starttime) and field 3 (state) of /proc/PID/stat; null when there is no such
 *  process. comm (field 2) may contain spaces and parentheses: fields resume after the last ')'. */
function procStat(pid: number): { state: string; start: number } | null {
  let stat: string;
  try { stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8'); } catch { return null; }
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: rest[0], start: Number(rest[19]) };
}

function self(): LockHolder {
  return { pid: process.pid, start: procStat(process.pid)?.start ?? null, boot: BOOT_ID };
}

function formatHolder(h: LockHolder): string {
  return `${h.pid} ${h.start ?? '-'} ${h.boot ?? '-'}\n`;
}

/** Parses a lock file; a file holding only a pid (older netlab) gives start and boot null. */
export function parseHolder(text: string): LockHolder | null {
  const m = /^(\d+)(?: (\d+|-) (\S+))?\n?$/.exec(text);
  if (!m || Number(m[1]) <= 0) return null;
  return { pid: Number(m[1]), start: m[2] && m[2] !== '-' ? Number(m[2]) : null, boot: m[3] && m[3] !== '-' ? m[3] : null };
}

/** The holder is still running: same boot, a process with that pid and start time, and not a
 *  zombie (a killed `up` whose parent has not reaped it yet holds nothing). A holder without a
 *  start time (an older netlab's lock) is judged by its pid alone. */
export function holderAlive(h: LockHolder): boolean {
  if (h.boot !== null && BOOT_ID !== '' && h.boot !== BOOT_ID) return false;
  const st = procStat(h.pid);
  if (!st || st.state === 'Z' || st.state === 'X') return false;
  return h.start === null || st.start === h.start;
}

/** A live process is still running `netlab web` and the like: pid alive, not a zombie. */
function pidAlive(pid: number): boolean {
  return holderAlive({ pid, start: null, boot: null });
}

export class LockBusyError extends NetlabError {
  constructor(readonly lab: string, readonly holder: number) {
    super(`lab ${lab} is busy: another netlab (pid ${holder}) is bringing it up or down`);
  }
}

/** Takes a lock file naming us (pid, start time, boot id). The file appears whole or not at
 *  all (written aside, then hard-linked into place, which fails when it exists). A lock whose
 *  holder is gone (SIGKILL, a reused pid, a reboot) is taken over; the takeover renames the
 *  stale file aside first and checks it moved the very file it judged, so two processes taking
 *  over one stale lock cannot both win. Only the path is kept, never an open descriptor, so no
 *  child (the container supervisor) can inherit the lock. Returns the release function, or the
 *  pid of the live holder. */
function tryLockFile(file: string): (() => void) | number {
  const mine = formatHolder(self());
  const tmp = `${file}.${process.pid}.new`;
  fs.writeFileSync(tmp, mine, { mode: 0o644 });
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        fs.linkSync(tmp, file);
        sweepAside(file);
        return () => {
          try {
            if (fs.readFileSync(file, 'utf8') === mine) fs.unlinkSync(file);
          } catch { /* the lab directory may be gone with `down` */ }
        };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      let text: string;
      try { text = fs.readFileSync(file, 'utf8'); } catch { continue; } // released meanwhile
      const holder = parseHolder(text);
      if (holder && holderAlive(holder)) return holder.pid;
      // Stale (its owner died, e.g. SIGKILL during up): take it over.
      const aside = `${file}.${process.pid}.stale`;
      try { fs.renameSync(file, aside); } catch { continue; } // someone else took it over first
      const moved = fs.readFileSync(aside, 'utf8');
      if (moved !== text) {
        // A new holder's lock replaced the stale one between our read and the rename: put it back.
        try { fs.linkSync(aside, file); } catch { /* cannot happen unless a third taker raced */ }
        fs.unlinkSync(aside);
        const h = parseHolder(moved);
        if (h && holderAlive(h)) return h.pid;
        continue;
      }
      fs.unlinkSync(aside);
    }
    return 0;
  } finally {
    try { fs.unlinkSync(tmp); } catch { /* gone with the directory */ }
  }
}

/** Removes what a taker killed between its few steps left next to the lock (`lock.PID.new`,
 *  `lock.PID.stale`; for the state directory's own lock those sit in /run). */
function sweepAside(file: string): void {
  const dir = path.dirname(file);
  const base = path.basename(file);
  let names: string[];
  try { names = fs.readdirSync(dir); } catch { return; }
  for (const n of names) {
    const m = /^(\d+)\.(new|stale)$/.exec(n.startsWith(`${base}.`) ? n.slice(base.length + 1) : '');
    if (m && Number(m[1]) !== process.pid && !pidAlive(Number(m[1]))) {
      try { fs.unlinkSync(path.join(dir, n)); } catch { /* another taker swept it */ }
    }
  }
}

/** The live netlab holding a lab's lock (an up or down running now), or null. */
export function lockHolder(lab: string): LockHolder | null {
  let text: string;
  try { text = fs.readFileSync(path.join(labDir(lab), 'lock'), 'utf8'); } catch { return null; }
  const h = parseHolder(text);
  return h && holderAlive(h) ? h : null;
}

/** Next to the state directory, not in it: guards mounting and unmounting its tmpfs. */
const ROOT_LOCK = `${STATE_ROOT}.lock`;

/** Runs fn holding the state directory's own lock (held for microseconds: waits up to 2 s). */
function withRootLock<T>(fn: () => T): T {
  const end = Date.now() + 2000;
  for (;;) {
    const r = tryLockFile(ROOT_LOCK);
    if (typeof r === 'function') {
      try { return fn(); } finally { r(); }
    }
    if (Date.now() > end) throw new LockBusyError('(state directory)', typeof r === 'number' ? r : 0);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  }
}

/** Takes the lab's lock (see tryLockFile). A lock left by a process that is gone is taken over. `prepareRoot` (netlab's tmpfs) runs first, under the state
 *  directory's lock, so it never races with releaseStateRoot. Returns the release function. */
export function lockLab(lab: string, prepareRoot?: (dir: string) => void): () => void {
  const take = () => {
    const dir = labDir(lab);
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    const r = tryLockFile(path.join(dir, 'lock'));
    if (typeof r === 'function') {
      return () => {
        r();
        // An `up` refused before it wrote any state leaves no empty lab directory behind (it
        // would list as a lab); rmdir fails harmlessly when there is a state or another's lock.
        try { fs.rmdirSync(dir); } catch { /* not empty, or gone */ }
      };
    }
    throw new LockBusyError(lab, r);
  };
  if (!STATE_ROOT_IS_DEFAULT || !prepareRoot) return take();
  return withRootLock(() => {
    prepareRoot(STATE_ROOT);
    return take();
  });
}

/** Marks the state directory as watched by this process (a `netlab web`), so that it stays. */
export function holdStateRoot(): () => void {
  const file = path.join(STATE_ROOT, `.web-${process.pid}`);
  try { fs.writeFileSync(file, ''); } catch { return () => {}; }
  return () => { try { fs.unlinkSync(file); } catch { /* gone already */ } };
}

/** Once no lab is left, undoes prepareRoot (unmounts netlab's tmpfs), so that `down` of the last
 *  lab leaves no mount behind. */
export function releaseStateRoot(release: (dir: string) => void): void {
  if (!STATE_ROOT_IS_DEFAULT) return;
  withRootLock(() => {
    let entries: string[];
    try { entries = fs.readdirSync(STATE_ROOT); } catch { return; }
    // A running `netlab web` keeps the directory (it watches it); one that died does not.
    entries = entries.filter((e) => {
      const m = /^\.web-(\d+)$/.exec(e);
      if (!m || pidAlive(Number(m[1]))) return true;
      try { fs.unlinkSync(path.join(STATE_ROOT, e)); } catch { /* gone already */ }
      return false;
    });
    if (entries.length === 0) release(STATE_ROOT);
  });
}

export { labDir, STATE_ROOT, STATE_ROOT_IS_DEFAULT };

/** The lab as it runs: the resolved model with the run-time state applied (cables set down or
 *  up). A copy: the state's model itself is never changed after `up`. */
export function modelOf(st: LabState): Lab {
  const cables = st.cables ?? {};
  const imps = st.impairments ?? {};
  if (Object.keys(cables).length === 0 && Object.keys(imps).length === 0) return st.model;
  const m = structuredClone(st.model);
  for (const n of m.nodes) for (const f of n.interfaces) {
    const v = imps[`${n.name}:${f.name}`];
    if (v === null) delete f.impair;
    else if (v !== undefined) f.impair = v;
  }
  for (const n of m.nodes) for (const f of n.interfaces) {
    const v = cables[`${n.name}:${f.name}`];
    if (v !== undefined) f.up = v;
  }
  for (const l of m.links) {
    const a = cables[`${l.a.node}:${l.a.iface}`], b = cables[`${l.b.node}:${l.b.iface}`];
    if (a !== undefined || b !== undefined) l.up = (a ?? l.up) && (b ?? l.up);
  }
  return m;
}
