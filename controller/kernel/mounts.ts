// Mounts netlab makes or inspects: /run/netns as a shared mount (where namespaces are bound,
// as nsfs files), whether this process's mounts there are seen by the machine, and the tmpfs
// under netlab's state and container folders.
import * as fs from 'node:fs';
import { c_mount, c_umount2, errnoName, lastErrno, MS_BIND, MS_REC, MS_SHARED } from './libc.js';
import { KernelError, sysFail, toKernelError } from './errors.js';

export const NETNS_RUN_DIR = '/run/netns';

export function checkNetnsName(name: string, op: string): void {
  if (!name || name === '.' || name === '..' || name.includes('/') || Buffer.byteLength(name) > 255) {
    throw new KernelError(op, JSON.stringify(name), 'host', 'EINVAL', 'not a valid netns name');
  }
}

/** Same as iproute2: /run/netns is a shared bind mount so netns mounts propagate to every
 *  mount namespace (containers, `ip netns exec`) instead of being stuck in ours. */
export function ensureNetnsDir(): void {
  try {
    fs.mkdirSync(NETNS_RUN_DIR, { recursive: true, mode: 0o755 });
  } catch (e) {
    throw toKernelError(e, 'open', NETNS_RUN_DIR, 'host');
  }
  if (c_mount('none', NETNS_RUN_DIR, 'none', MS_SHARED | MS_REC, null) === 0) return;
  if (errnoName(lastErrno()) !== 'EINVAL') throw sysFail('open', NETNS_RUN_DIR, 'host', 'mount --make-rshared');
  if (c_mount(NETNS_RUN_DIR, NETNS_RUN_DIR, 'none', MS_BIND | MS_REC, null) < 0) {
    throw sysFail('open', NETNS_RUN_DIR, 'host', 'mount --rbind');
  }
  if (c_mount('none', NETNS_RUN_DIR, 'none', MS_SHARED | MS_REC, null) < 0) {
    throw sysFail('open', NETNS_RUN_DIR, 'host', 'mount --make-rshared');
  }
}

/** Equivalent to: `findmnt -o PROPAGATION /run/netns` (is it a slave?). Whether namespaces
 *  mounted under /run/netns by this process are seen by the rest of the machine. Not under `ip netns exec`: it gives its process a private mount namespace where
 *  /run/netns is a slave of the machine's, so a netns mounted there vanishes for everyone
 *  else (the next netlab run finds an empty file). `nsenter --net=...` keeps the mounts
 *  shared. A container with its own mount namespace (PID 1 in it too) is consistent in
 *  itself and fine. Returns why not, or null when they are. */
export function netnsMountsPrivate(): string | null {
  const ns = (pid: string) => { try { return fs.readlinkSync(`/proc/${pid}/ns/mnt`); } catch { return null; } };
  // (Under `ip netns exec`, /proc/1/ns is not readable: then only the mount itself decides.)
  const own = ns('self'), init = ns('1');
  if (own !== null && own === init) return null;
  let lines: string[];
  try {
    lines = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
  } catch {
    return null;
  }
  // The last mount on /run/netns is the one in effect; optional fields sit between the
  // mount options and the ' - ' separator.
  const entry = lines.filter((l) => l.split(' ')[4] === NETNS_RUN_DIR).pop();
  if (!entry) return null;
  const optional = entry.split(' - ')[0].split(' ').slice(6);
  if (optional.some((f) => f.startsWith('master:'))) {
    return `netlab runs in a private mount namespace where ${NETNS_RUN_DIR} only receives mounts, as under \`ip netns exec\`: the namespaces it makes would not be seen outside it. Enter only the network namespace instead, e.g. \`nsenter --net=/run/netns/NAME netlab ...\``;
  }
  return null;
}

/** Equivalent to: `mount -t tmpfs -o mode=755 tmpfs DIR`. Makes `dir` a tmpfs unless it already lives on one: netlab's state and container layers are
 *  runtime data (gone at reboot, like the kernel objects they describe), and on a disk they
 *  cost ~1 ms per file. Only an empty or missing directory is mounted over, so existing state
 *  is never hidden. Returns true when it mounted. */
export function ensureTmpfs(dir: string): boolean {
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const real = fs.realpathSync(dir);
  if (mountOf(real).fstype === 'tmpfs' || fs.readdirSync(real).length > 0) return false;
  if (c_mount('tmpfs', real, 'tmpfs', 0, 'mode=755') < 0) throw sysFail('mount', real, 'host', 'tmpfs');
  return true;
}

/** The mount that holds `path` (the longest mount point above it), from /proc/self/mountinfo. */
function mountOf(path: string): { mountPoint: string; fstype: string } {
  let best = { mountPoint: '', fstype: '' };
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (sep < 0) continue;
    const mp = f[4].replace(/\\040/g, ' ');
    const under = path === mp || path.startsWith(mp === '/' ? '/' : `${mp}/`);
    if (under && mp.length > best.mountPoint.length) best = { mountPoint: mp, fstype: f[sep + 1] };
  }
  return best;
}

/** Equivalent to: `umount DIR`. Undoes ensureTmpfs: unmounts `dir` when it is itself a tmpfs mount point (not when it merely
 *  lies on one, as under a tmpfs /run). A busy mount stays. Returns true when it unmounted. */
export function releaseTmpfs(dir: string): boolean {
  let real: string;
  try { real = fs.realpathSync(dir); } catch { return false; }
  const m = mountOf(real);
  return m.mountPoint === real && m.fstype === 'tmpfs' && c_umount2(real, 0) === 0;
}
