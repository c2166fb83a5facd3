// sysctls of the namespace netlab runs in (/proc/sys): the host's ip_forward, saved and put
// back around the labs, and the machine-wide neighbour-table thresholds `check --matrix` warns
// about. The per-namespace writes are NetnsHandle.sysctlSet (the open has to happen inside
// the namespace); both name a key the way sysctl(8) does.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { KernelError, toKernelError } from './errors.js';

/** A key sysctl(8) would accept, with no way out of /proc/sys. */
export function validSysctlKey(key: string): boolean {
  return /^[A-Za-z0-9_.\/-]+$/.test(key) && !key.includes('..');
}

/** File of a key under /proc/sys. sysctl's own rule: with a '/' in the key, '/' separates and
 *  '.' is literal (eth0.10). */
export function sysctlPath(key: string): string {
  return path.join('/proc/sys', key.includes('/') ? key : key.replace(/\./g, '/'));
}

/** Equivalent to: `sysctl -n KEY` (in the namespace netlab runs in). The value, trimmed; a
 *  key this kernel (or this namespace) does not have fails with errno ENOENT. */
export function hostSysctlGet(key: string): string {
  if (!validSysctlKey(key)) throw new KernelError('sysctlGet', key, 'host', 'EINVAL', 'bad key');
  try {
    return fs.readFileSync(sysctlPath(key), 'utf8').trim();
  } catch (e) {
    throw toKernelError(e, 'sysctlGet', key, 'host');
  }
}

/** Equivalent to: `sysctl -w KEY=VALUE` (in the namespace netlab runs in). */
export function hostSysctlSet(key: string, value: string): void {
  if (!validSysctlKey(key)) throw new KernelError('sysctlSet', key, 'host', 'EINVAL', 'bad key');
  try {
    fs.writeFileSync(sysctlPath(key), value);
  } catch (e) {
    throw toKernelError(e, 'sysctlSet', key, 'host', `= ${value}`);
  }
}
