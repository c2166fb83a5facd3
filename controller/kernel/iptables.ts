// iptables-save/-restore of the namespace netlab runs in: only to add and remove accept rules
// where Docker's iptables filter would drop a lab (the rule text is controller/firewall.ts's).
// Run with no shell, exit status checked.
import { spawnSync } from 'node:child_process';
import { errnoFromText } from './libc.js';
import { errnoOf, KernelError } from './errors.js';

/** iptables-save/-restore of the namespace netlab runs in. NETLAB_IPTABLES overrides the
 *  `iptables` part of both names (tests point it at a missing file). */
function iptablesBin(tool: 'save' | 'restore'): string {
  return `${process.env.NETLAB_IPTABLES || 'iptables'}-${tool}`;
}

/** Equivalent to: `iptables-save -t TABLE`. Its output, or null when there is nothing to look
 *  at: iptables is not installed (then no Docker either), or this kernel or backend has no such
 *  table to read. */
export function iptablesSave(table: string): string | null {
  const bin = iptablesBin('save');
  const env = { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` };
  const res = spawnSync(bin, ['-t', table], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'pipe'] });
  if (res.error) {
    if (errnoOf(res.error) === 'ENOENT') return null;
    throw new KernelError('iptablesSave', `table ${table}`, 'host', errnoOf(res.error), `running ${bin}`, { cause: res.error });
  }
  return res.status === 0 ? res.stdout : null;
}

/** Equivalent to: `iptables-restore -w 10 --noflush` (one transaction on the tables named in
 *  the input) */
export function iptablesRestore(input: string): void {
  const bin = iptablesBin('restore');
  const env = { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` };
  const res = spawnSync(bin, ['-w', '10', '--noflush'], { input, encoding: 'utf8', env, stdio: ['pipe', 'pipe', 'pipe'] });
  const object = input.split('\n').find((l) => l.startsWith('-')) ?? 'rules';
  if (res.error) throw new KernelError('iptablesRestore', object, 'host', errnoOf(res.error) === 'ENOENT' ? 'ENOPKG' : errnoOf(res.error), `running ${bin}`, { cause: res.error });
  if (res.status !== 0) {
    const stderr = (res.stderr ?? '').trim();
    throw new KernelError('iptablesRestore', object, 'host', errnoFromText(stderr) ?? 'EINVAL', `${bin} exited with ${res.status ?? res.signal}: ${stderr.split('\n').slice(0, 4).join(' | ')}`);
  }
}
