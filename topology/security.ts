// What a node may do, as the topology says it (pure; the runtime applies it): its capability set
// (Docker's default set plus NET_ADMIN, changed by `cap_add` / `cap_drop` with Docker's names;
// none of the network capabilities in the host's namespace unless asked for), its seccomp profile
// (`security_opt: [seccomp=unconfined | seccomp=FILE]`, Docker's default otherwise), and the
// namespaced sysctls it sets at start (`sysctls:`, Docker's --sysctl rules).

/** Linux capabilities by number (linux/capability.h). */
export const CAPABILITIES = [
  'CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'SETPCAP',
  'LINUX_IMMUTABLE', 'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_ADMIN', 'NET_RAW', 'IPC_LOCK', 'IPC_OWNER',
  'SYS_MODULE', 'SYS_RAWIO', 'SYS_CHROOT', 'SYS_PTRACE', 'SYS_PACCT', 'SYS_ADMIN', 'SYS_BOOT', 'SYS_NICE',
  'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'MKNOD', 'LEASE', 'AUDIT_WRITE', 'AUDIT_CONTROL', 'SETFCAP',
  'MAC_OVERRIDE', 'MAC_ADMIN', 'SYSLOG', 'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ', 'PERFMON', 'BPF',
  'CHECKPOINT_RESTORE',
] as const;

/** Docker's default set (moby oci/caps/defaults.go). */
export const DOCKER_DEFAULT_CAPS = [
  'CHOWN', 'DAC_OVERRIDE', 'FSETID', 'FOWNER', 'MKNOD', 'NET_RAW', 'SETGID', 'SETUID', 'SETFCAP', 'SETPCAP',
  'NET_BIND_SERVICE', 'SYS_CHROOT', 'KILL', 'AUDIT_WRITE',
];

/** A capability name as Docker accepts it (CAP_ prefix optional, any case), canonical without
 *  the prefix; "ALL" stays "ALL"; null when unknown. */
export function canonicalCap(name: string): string | null {
  const up = name.trim().toUpperCase().replace(/^CAP_/, '');
  if (up === 'ALL') return 'ALL';
  return (CAPABILITIES as readonly string[]).includes(up) ? up : null;
}

export interface CapInput {
  privileged: boolean;
  networkMode: 'bridge' | 'none' | 'host';
  capAdd: string[];
  capDrop: string[];
}

/** The node's capabilities (canonical names, sorted by number). A lab node gets Docker's set plus
 *  NET_ADMIN (labs configure their own interfaces); in the host's network namespace NET_ADMIN and
 *  NET_RAW are the host's, so neither is kept there unless cap_add names it. Docker's order:
 *  cap_drop ALL empties the set first, cap_add then adds, other drops remove last. */
export function effectiveCaps(n: CapInput): string[] {
  if (n.privileged) return [...CAPABILITIES];
  let set = new Set(DOCKER_DEFAULT_CAPS);
  set.add('NET_ADMIN');
  if (n.networkMode === 'host') { set.delete('NET_ADMIN'); set.delete('NET_RAW'); }
  if (n.capDrop.includes('ALL')) set = new Set();
  for (const c of n.capAdd) {
    if (c === 'ALL') for (const x of CAPABILITIES) set.add(x);
    else set.add(c);
  }
  for (const c of n.capDrop) if (c !== 'ALL' && !n.capAdd.includes(c)) set.delete(c);
  return CAPABILITIES.filter((c) => set.has(c));
}

/** Bit mask of the capabilities (as the kernel numbers them), as a hex string for the shim. */
export function capMask(caps: readonly string[]): string {
  let m = 0n;
  for (const c of caps) {
    const i = (CAPABILITIES as readonly string[]).indexOf(c);
    if (i >= 0) m |= 1n << BigInt(i);
  }
  return m.toString(16);
}

export type SeccompSetting = { mode: 'default' } | { mode: 'unconfined' } | { mode: 'file'; file: string };

/** Parses one `security_opt` entry (Docker's forms); returns the seccomp part, 'ok' for an
 *  accepted no-op, or an error message. */
export function parseSecurityOpt(opt: string, resolvePath: (p: string) => string): { seccomp: SeccompSetting } | 'ok' | string {
  const m = /^([a-z-]+)(?:[=:](.*))?$/.exec(opt);
  if (!m) return `"${opt}" is not a security option; expected e.g. seccomp=unconfined`;
  const [, key, value] = m;
  if (key === 'seccomp') {
    if (value === undefined || value === '') return `seccomp needs a value: seccomp=unconfined, seccomp=default or seccomp=PATH (a Docker seccomp profile)`;
    if (value === 'unconfined') return { seccomp: { mode: 'unconfined' } };
    if (value === 'default' || value === 'builtin') return { seccomp: { mode: 'default' } };
    return { seccomp: { mode: 'file', file: resolvePath(value) } };
  }
  if (key === 'no-new-privileges') {
    // netlab always sets no_new_privs for unprivileged nodes (stricter than Docker's default).
    if (value === undefined || value === 'true') return 'ok';
    return `no-new-privileges:${value} is not supported: netlab nodes always run with no_new_privs (use privileged: true to lift every restriction)`;
  }
  if (key === 'apparmor' || key === 'label' || key === 'systempaths') {
    return `security option ${key} is not supported by netlab (it supports seccomp=... and no-new-privileges)`;
  }
  return `unknown security option "${key}"; netlab supports seccomp=unconfined|default|PATH and no-new-privileges`;
}

/** IPC sysctls that live in the container's own IPC namespace (Docker's list). */
const IPC_SYSCTLS = ['kernel.msgmax', 'kernel.msgmnb', 'kernel.msgmni', 'kernel.sem', 'kernel.shmall', 'kernel.shmmax', 'kernel.shmmni', 'kernel.shm_rmid_forced'];

/** null when `key` is a sysctl a node may set for itself, else why not. Like Docker: IPC ones
 *  (own IPC namespace), fs.mqueue.*, and net.* in the node's own network namespace. */
export function sysctlProblem(key: string, networkMode: 'bridge' | 'none' | 'host'): string | null {
  if (!/^[a-z0-9_]+(\.[a-zA-Z0-9_@:-]+)+$/.test(key) || key.includes('..')) return `"${key}" is not a sysctl name (e.g. net.ipv4.ip_forward)`;
  if (IPC_SYSCTLS.includes(key) || key.startsWith('fs.mqueue.')) return null;
  if (key.startsWith('net.')) {
    return networkMode === 'host' ? `sysctl ${key} would change the host's own network stack (network_mode: host); set it on the host instead` : null;
  }
  return `sysctl ${key} is not namespaced: it would change the whole machine; a node may set net.*, fs.mqueue.* and the IPC ones (${IPC_SYSCTLS.join(', ')})`;
}
