// KernelError, the one error type of controller/kernel/, and the conversion of whatever the
// netlink package, koffi, node:fs or a spawned tool reports into it. The `netlink` package
// reports failures as a bare Error('Request rejected: EEXIST'); a KernelError names the
// operation, object and namespace as well.
import { errnoName, errnoText, lastErrno } from './libc.js';
import { NetlabError } from '../../topology/errors.js';

/** Every kernel failure: which operation, on which object, in which namespace, and the errno. */
export class KernelError extends NetlabError {
  override readonly name = 'KernelError';
  constructor(
    /** Operation, e.g. 'linkAdd'. */
    readonly op: string,
    /** Object operated on, e.g. an interface or netns name. */
    readonly object: string,
    /** Namespace name, or 'host' for the namespace netlab runs in. */
    readonly netns: string,
    /** errno name, e.g. 'EEXIST' ('ENOPKG' when a needed tool is not installed). */
    readonly errno: string,
    /** Extra context (a tool's stderr, the veth peer), appended to the message. */
    readonly detail?: string,
    options?: { cause?: unknown },
  ) {
    super(`${op} ${object} in netns ${netns}: ${errno} (${errnoText(errno)})${detail ? `: ${detail}` : ''}`, options);
  }
}

/** errno name carried by anything the netlink package, koffi or node:fs throws. */
export function errnoOf(e: unknown): string {
  if (e instanceof KernelError) return e.errno;
  const err = e as { code?: unknown; errno?: unknown; message?: unknown };
  if (typeof err?.code === 'string' && /^E[A-Z0-9]+$/.test(err.code)) return err.code;
  const m = typeof err?.message === 'string' ? /Request rejected: (\S+)/.exec(err.message) : null;
  if (m) return /^\d+$/.test(m[1]) ? errnoName(Number(m[1])) : m[1];
  if (typeof err?.errno === 'number') return errnoName(Math.abs(err.errno));
  return 'EPROTO';
}

export function toKernelError(e: unknown, op: string, object: string, netns: string, detail?: string): KernelError {
  if (e instanceof KernelError) return e;
  const errno = errnoOf(e);
  // Keep the package's own text when it is not an errno (e.g. a parse failure) so it is not lost.
  const own = errno === 'EPROTO' && e instanceof Error ? e.message : undefined;
  return new KernelError(op, object, netns, errno, [detail, own].filter(Boolean).join('; ') || undefined, { cause: e });
}

/** The failure of the libc call just made through koffi. */
export function sysFail(op: string, object: string, netns: string, detail?: string): KernelError {
  return new KernelError(op, object, netns, errnoName(lastErrno()), detail);
}
