// The libc calls netlab makes through koffi (setns, unshare, mount, if_nametoindex, socket
// options): Node has no binding for them, and spawning `ip` or `mount` costs milliseconds per
// call. Also errno names and texts, taken from this libc so messages match what `ip` prints.
import * as os from 'node:os';
import * as util from 'node:util';
import * as koffi from 'koffi';

export const CLONE_NEWNET = 0x40000000;
export const MS_BIND = 0x1000;
export const MS_REC = 0x4000;
export const MS_SHARED = 1 << 20;
export const MNT_DETACH = 2;

const libc = koffi.load('libc.so.6');
export const c_setns = libc.func('int setns(int fd, int nstype)') as (fd: number, nstype: number) => number;
export const c_unshare = libc.func('int unshare(int flags)') as (flags: number) => number;
export const c_mount = libc.func(
  'int mount(const char *src, const char *tgt, const char *fstype, unsigned long flags, const char *data)',
) as (src: string | null, tgt: string, fstype: string | null, flags: number, data: string | null) => number;
export const c_umount2 = libc.func('int umount2(const char *tgt, int flags)') as (tgt: string, flags: number) => number;
export const c_gettid = libc.func('int gettid()') as () => number;
const c_strerror = libc.func('const char *strerror(int errnum)') as (errnum: number) => string;
export const c_if_nametoindex = libc.func('unsigned int if_nametoindex(const char *ifname)') as (name: string) => number;
export const c_getsockname = libc.func('int getsockname(int fd, _Out_ uint8_t *addr, _Inout_ uint32_t *len)') as (fd: number, addr: Buffer, len: number[]) => number;
export const c_setsockopt = libc.func('int setsockopt(int fd, int level, int name, const void *value, uint32_t len)') as (fd: number, level: number, name: number, value: Buffer, len: number) => number;

/** errno of the last failed libc call made through koffi. */
export function lastErrno(): number {
  return koffi.errno();
}

export const ERRNO_NUMBERS = os.constants.errno as Record<string, number>;

export function errnoName(n: number): string {
  try {
    return util.getSystemErrorName(-n);
  } catch {
    return `E${n}`;
  }
}

/** Human text of an errno name, from libc so it matches what `ip` prints. */
export function errnoText(name: string): string {
  const n = ERRNO_NUMBERS[name];
  return n === undefined ? 'unknown error' : c_strerror(n);
}

let textToErrno: Map<string, string> | null = null;
/** errno name for a strerror text found in a tool's stderr (nft prints only the text). */
export function errnoFromText(stderr: string): string | null {
  if (!textToErrno) {
    textToErrno = new Map();
    for (const [name, n] of Object.entries(ERRNO_NUMBERS)) {
      if (!textToErrno.has(c_strerror(n))) textToErrno.set(c_strerror(n), name);
    }
  }
  let best: [string, string] | null = null;
  for (const [text, name] of textToErrno) {
    if (stderr.includes(text) && (!best || text.length > best[0].length)) best = [text, name];
  }
  return best ? best[1] : null;
}
