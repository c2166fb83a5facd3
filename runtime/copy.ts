// `netlab cp`: files and directory trees into and out of a running container's root as the
// container sees it. The container side runs in runtime/shim.c (cp-in, cp-out): it joins the
// container's mount namespace first, so its overlay root and volumes are what it reads and
// writes, and every path and symlink is resolved inside the container, never on the host (a
// link to /etc/shadow in the container is the container's /etc/shadow). Nothing is run inside
// the image, which needs no tar. The host side is the host's GNU tar (a tar stream between the
// two): it reads the host's files going in, and extracts going out with its own protections
// (no member leaves the destination, nothing is written through a link the stream made).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { RuntimeError, SHIM_PATH, containerState, describeState } from './container.js';

export class CopyError extends RuntimeError {}

/** The pid of a running container's PID 1, or a one-line error. */
function runningPid(lab: string, node: string): number {
  const s = containerState(lab, node);
  if (s.state !== 'running' || s.pid === null) throw new CopyError(`cp: container ${node} of lab ${lab} is not running (${describeState(s)})`);
  return s.pid;
}

/** A path in the container: absolute (a relative one is taken from its root), no trailing slash
 *  kept except for "/" itself (a trailing slash still means "a directory" to cp-in). */
function containerPath(p: string): string {
  return p.startsWith('/') ? p : `/${p}`;
}

interface Finished { code: number | null; signal: NodeJS.Signals | null; stderr: string }

function finished(child: ChildProcess, what: string): Promise<Finished> {
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
  // 'exit' and the end of stderr, not 'close': a child whose stdout was handed on to the next
  // process of the pipe never gets a 'close'.
  const stderrDone = new Promise<void>((resolve) => { if (!child.stderr) resolve(); else child.stderr.on('close', () => resolve()); });
  return new Promise((resolve, reject) => {
    child.on('error', (e) => reject(new CopyError(`cp: cannot run ${what}: ${e.message}`)));
    child.on('exit', (code, signal) => { void stderrDone.then(() => resolve({ code, signal, stderr })); });
  });
}

/** The shim's and tar's messages, warnings passed on; the first failure (the container side
 *  first: when it fails, tar only sees a cut stream) as one line. */
function report(shim: Finished, tar: Finished, warn: (line: string) => void): void {
  const lines = (t: string) => t.split('\n').map((l) => l.trim()).filter(Boolean);
  for (const l of lines(shim.stderr)) if (l.startsWith('netlab-shim: warning: ')) warn(`cp: ${l.slice('netlab-shim: '.length)}`);
  const shimError = lines(shim.stderr).find((l) => l.startsWith('netlab-shim: ') && !l.startsWith('netlab-shim: warning: '));
  if (shim.code !== 0) throw new CopyError(`cp: ${shimError?.slice('netlab-shim: '.length) ?? `the container side failed (${shim.code ?? shim.signal})`}`);
  if (tar.code !== 0) {
    const t = lines(tar.stderr).find((l) => !/Exiting with failure status/.test(l));
    throw new CopyError(`cp: ${t ?? `tar failed (${tar.code ?? tar.signal})`}`);
  }
}

const TAR = process.env.NETLAB_TAR || 'tar';

/** Copies the host's SRC (a file or a directory, recursively) to DEST in the container: into
 *  DEST when it is an existing directory there, else as DEST. Modes, numeric owners and mtimes
 *  are kept; links inside a tree are copied as links. */
export async function copyIn(lab: string, node: string, src: string, dest: string, warn: (line: string) => void = () => {}): Promise<void> {
  const pid = runningPid(lab, node);
  let real: string;
  try { real = fs.realpathSync(src); } catch (e) {
    throw new CopyError(`cp: ${src}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (e as Error).message}`);
  }
  if (real === '/') throw new CopyError('cp: refusing to copy the host\'s whole root');
  const given = path.basename(src.replace(/\/+$/, ''));
  const name = given === '' || given === '.' || given === '..' ? path.basename(real) : given;
  // "./NAME": a name that starts with "-" is not an option to tar.
  const tar = spawn(TAR, ['-c', '-f', '-', '--format=gnu', '--numeric-owner', '--hard-dereference', '-C', path.dirname(real), `./${path.basename(real)}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  const tarDone = finished(tar, TAR);
  const shim = spawn(SHIM_PATH, ['cp-in', String(pid), containerPath(dest), name], { stdio: [tar.stdout!, 'ignore', 'pipe'] });
  const [t, s] = await Promise.all([tarDone, finished(shim, SHIM_PATH)]);
  report(s, t, warn);
}

/** Copies SRC in the container (a symlink there followed, in the container) to the host's DEST:
 *  into DEST when it is an existing directory, else as DEST (whose parent must exist). Modes
 *  and mtimes kept; the files are owned by the user running netlab. */
export async function copyOut(lab: string, node: string, src: string, dest: string, warn: (line: string) => void = () => {}): Promise<void> {
  const pid = runningPid(lab, node);
  const from = containerPath(src);
  let dir: string;
  let name: string;
  let st: fs.Stats | null = null;
  try { st = fs.statSync(dest); } catch { /* does not exist */ }
  if (st?.isDirectory()) {
    dir = dest;
    name = path.posix.basename(path.posix.normalize(from));
    if (name === '') throw new CopyError(`cp: copy the container's root directory by naming its entries, e.g. ${lab}:${node}:/etc`);
  } else {
    if (!st && /\/$/.test(dest)) throw new CopyError(`cp: ${dest}: no such directory`);
    dir = path.dirname(path.resolve(dest));
    name = path.basename(path.resolve(dest));
    let parent: fs.Stats | null = null;
    try { parent = fs.statSync(dir); } catch { /* missing */ }
    if (!parent?.isDirectory()) throw new CopyError(`cp: ${path.dirname(dest)}: no such directory`);
  }
  const shim = spawn(SHIM_PATH, ['cp-out', String(pid), from, name], { stdio: ['ignore', 'pipe', 'pipe'] });
  const shimDone = finished(shim, SHIM_PATH);
  const tar = spawn(TAR, ['-x', '-f', '-', '-C', dir, '--preserve-permissions', '--no-same-owner'], { stdio: [shim.stdout!, 'ignore', 'pipe'] });
  const [s, t] = await Promise.all([shimDone, finished(tar, TAR)]);
  report(s, t, warn);
}

/** SRC and DST of `netlab cp`: exactly one is LAB:NODE:PATH. A host path containing ':' is
 *  written with a '/' in front of its first ':' (./a:b, /tmp/a:b), as with docker cp. */
export interface CopyArgs { direction: 'in' | 'out'; host: string; lab: string; node: string; path: string }

const CONTAINER_SIDE = /^([a-z][a-z0-9-]{0,31}):([A-Za-z0-9][A-Za-z0-9_-]{0,62}):(.*)$/;

export function containerSide(arg: string): { lab: string; node: string; path: string } | null {
  if (arg.startsWith('/') || arg.startsWith('.')) return null;
  const m = CONTAINER_SIDE.exec(arg);
  return m ? { lab: m[1], node: m[2], path: m[3] } : null;
}

/** Parses SRC DST; a usage problem is returned as its message (the CLI makes it exit 2). */
export function parseCopyArgs(src: string, dst: string): CopyArgs | string {
  const a = containerSide(src), b = containerSide(dst);
  if (a && b) return 'cp: both SRC and DST are LAB:NODE:PATH; one side must be a path on this machine';
  if (!a && !b) return `cp: neither SRC nor DST is LAB:NODE:PATH (e.g. netlab cp ./file mylab:web:/tmp/)`;
  const c = (a ?? b)!;
  if (c.path === '') return `cp: ${a ? src : dst}: no path in the container after NODE:`;
  const host = a ? dst : src;
  if (host === '') return 'cp: empty host path';
  return { direction: a ? 'out' : 'in', host, ...c };
}
