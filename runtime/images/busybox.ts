// The `busybox` image (the default): built locally from the host's static busybox (Debian's
// busybox-static) with every applet linked in, cached by the binary's hash, and shared read-only
// as the lower layer of every container's overlay (never copied per container).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ImageError, type ImageSpec } from './types.js';

/** The idle PID 1 of nodes without a command (runtime/pause.c, built next to the shim). */
export const PAUSE_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../netlab-pause');
/** Where the busybox image carries it. */
const PAUSE_IN_IMAGE = '/sbin/netlab-pause';

export const IMAGE_CACHE = process.env.NETLAB_IMAGE_CACHE || '/var/cache/netlab/images';
const BUSYBOX_CANDIDATES = ['/bin/busybox', '/usr/bin/busybox'];


function findStaticBusybox(): string {
  for (const p of BUSYBOX_CANDIDATES) {
    if (!fs.existsSync(p)) continue;
    // A dynamic busybox would need the host's libc inside the image: insist on the static one.
    const head = fs.readFileSync(p).subarray(0, 4096);
    if (head.includes(Buffer.from('/lib64/ld-linux')) || head.includes(Buffer.from('/lib/ld-linux'))) continue;
    return p;
  }
  throw new ImageError('image busybox needs a static busybox on the host: install Debian\'s busybox-static (./setup.sh does)');
}

const ETC_FILES: Record<string, string> = {
  'etc/passwd': 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n',
  'etc/group': 'root:x:0:\nnogroup:x:65534:\n',
  'etc/nsswitch.conf': 'hosts: files dns\n',
};

/** The busybox image directory (built on first use, atomically, then reused). */
export function busyboxImage(): string {
  const bin = findStaticBusybox();
  if (!fs.existsSync(PAUSE_PATH)) throw new ImageError(`${PAUSE_PATH} is missing: run ./setup.sh (it builds it)`);
  const hash = createHash('sha256').update(fs.readFileSync(bin)).update(fs.readFileSync(PAUSE_PATH)).digest('hex').slice(0, 16);
  const dir = path.join(IMAGE_CACHE, `busybox-${hash}`);
  if (fs.existsSync(path.join(dir, '.complete'))) return dir;
  fs.mkdirSync(IMAGE_CACHE, { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'root', 'run', 'var/log', 'www', 'home']) {
    fs.mkdirSync(path.join(tmp, d), { recursive: true, mode: d === 'tmp' ? 0o1777 : 0o755 });
  }
  fs.chmodSync(path.join(tmp, 'tmp'), 0o1777);
  fs.copyFileSync(bin, path.join(tmp, 'bin/busybox'));
  fs.chmodSync(path.join(tmp, 'bin/busybox'), 0o755);
  // `busybox --list-full` names every applet with its usual directory (bin/sh, usr/bin/wget...).
  const applets = execFileSync(bin, ['--list-full'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  for (const a of applets) {
    const target = path.join(tmp, a);
    if (a === 'bin/busybox' || fs.existsSync(target)) continue;
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.symlinkSync('/bin/busybox', target);
  }
  for (const [f, text] of Object.entries(ETC_FILES)) fs.writeFileSync(path.join(tmp, f), text);
  fs.copyFileSync(PAUSE_PATH, path.join(tmp, PAUSE_IN_IMAGE));
  fs.chmodSync(path.join(tmp, PAUSE_IN_IMAGE), 0o755);
  fs.writeFileSync(path.join(tmp, '.complete'), `${bin} ${hash} ${applets.length} applets\n`);
  try {
    fs.renameSync(tmp, dir);
  } catch (e) {
    // Another netlab built it at the same time: theirs is as good as ours.
    fs.rmSync(tmp, { recursive: true, force: true });
    if (!fs.existsSync(path.join(dir, '.complete'))) throw e;
  }
  return dir;
}

let cached: string | null = null;

/** The busybox image (its directory found by hashing the host's binary once per process). */
export function busyboxSpec(ref: string): ImageSpec {
  cached ??= busyboxImage();
  return {
    ref, digest: null, root: [{ kind: 'overlay-root', layers: [cached] }], etcInUpper: 'etc',
    config: { entrypoint: [], cmd: [PAUSE_IN_IMAGE], env: {}, workingDir: null, user: null, exposedPorts: [], stopSignal: null },
  };
}
