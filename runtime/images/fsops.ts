// The file-system calls the image code needs and Node lacks: mknod (overlayfs whiteouts are 0/0
// character devices, FIFOs in layers) and the extended-attribute calls (overlayfs marks an
// opaque directory with trusted.overlay.opaque; layers carry security.capability and user.*
// attributes). Through koffi, as controller/kernel/libc.ts does for its calls; the runtime keeps
// its own small binding so it never imports the controller.
import * as koffi from 'koffi';
import * as os from 'node:os';

const libc = koffi.load('libc.so.6');
const c_mknod = libc.func('int mknod(const char *path, unsigned int mode, unsigned long dev)') as (p: string, mode: number, dev: number) => number;
const c_lsetxattr = libc.func('int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)') as (p: string, n: string, v: Buffer, s: number, f: number) => number;
const c_lgetxattr = libc.func('long lgetxattr(const char *path, const char *name, _Out_ uint8_t *value, size_t size)') as (p: string, n: string, v: Buffer, s: number) => number;

export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;

function errnoError(call: string, p: string): NodeJS.ErrnoException {
  const errno = koffi.errno();
  const code = Object.entries(os.constants.errno).find(([, v]) => v === errno)?.[0] ?? `errno ${errno}`;
  const e = new Error(`${call} ${p}: ${code}`) as NodeJS.ErrnoException;
  e.code = code;
  e.errno = errno;
  return e;
}

/** Equivalent to: `mknod PATH c|p MAJOR MINOR` (mode includes the file type bits). */
export function mknod(p: string, mode: number, dev = 0): void {
  if (c_mknod(p, mode, dev) !== 0) throw errnoError('mknod', p);
}

/** Equivalent to: `setfattr -h -n NAME -v VALUE PATH`. */
export function lsetxattr(p: string, name: string, value: Buffer): void {
  if (c_lsetxattr(p, name, value, value.length, 0) !== 0) throw errnoError('lsetxattr', p);
}

/** Equivalent to: `getfattr -h -n NAME PATH`; null when the attribute is not set. */
export function lgetxattr(p: string, name: string): Buffer | null {
  const buf = Buffer.alloc(256);
  const n = c_lgetxattr(p, name, buf, buf.length);
  if (n < 0) {
    const e = errnoError('lgetxattr', p);
    if (e.code === 'ENODATA' || e.code === 'ENOTSUP' || e.code === 'ENOENT') return null;
    throw e;
  }
  return buf.subarray(0, n);
}
