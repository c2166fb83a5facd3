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
import type { Lab } from '../topology/types.js';

export const STATE_ROOT = process.env.NETLAB_STATE_DIR || '/run/netlab';
/** A NETLAB_STATE_DIR the user set is used as it is; only the default gets netlab's tmpfs. */
export const STATE_ROOT_IS_DEFAULT = !process.env.NETLAB_STATE_DIR;

export type LabStatus = 'creating' | 'up' | 'failed' | 'deleting';

export interface LabState {
  version: 1;
  lab: string;
  file: string;
  status: LabStatus;
  /** pid of the `netlab up` that wrote it (meaningful while creating). */
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
}

export function labDir(lab: string): string {
  return path.join(STATE_ROOT, lab);
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
  try {
    const s = JSON.parse(fs.readFileSync(statePath(lab), 'utf8')) as LabState;
    return s.version === 1 ? s : null;
  } catch {
    return null;
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

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class LockBusyError extends Error {
  constructor(readonly lab: string, readonly holder: number) {
    super(`lab ${lab} is busy: another netlab (pid ${holder}) is bringing it up or down`);
  }
}

/** Takes a lock file (holding our pid, created exclusively); a lock left by a dead process is
 *  taken over. Returns the release function, or null when a live process holds it. */
function tryLockFile(file: string): (() => void) | null | number {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx', 0o644);
      fs.writeSync(fd, String(process.pid));
      fs.closeSync(fd);
      return () => {
        try {
          if (fs.readFileSync(file, 'utf8') === String(process.pid)) fs.unlinkSync(file);
        } catch { /* the lab directory may be gone with `down` */ }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let holder = 0;
      try { holder = Number(fs.readFileSync(file, 'utf8')) || 0; } catch { continue; }
      if (holder > 0 && holder !== process.pid && pidAlive(holder)) return holder;
      // Stale (its owner died, e.g. SIGKILL during up): take it over.
      try { fs.unlinkSync(file); } catch { /* raced with another taker */ }
    }
  }
  return 0;
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

/** Takes the lab's lock (a file holding our pid, created exclusively). A lock left by a dead
 *  process is taken over. `prepareRoot` (netlab's tmpfs) runs first, under the state
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
    throw new LockBusyError(lab, r ?? 0);
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
