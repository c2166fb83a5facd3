// Values of a topology written as strings or numbers, parsed and checked one by one (pure): sizes,
// commands, users, MACs, port mappings, volumes, derived MACs. The resolver reports what these
// return at the value's file:line:col.
import * as path from 'node:path';
import { isIpv4 } from './ipam.js';
import type { PortMapping, VolumeMount } from './types.js';

export const MIN_MEMORY_BYTES = 6 * 1024 * 1024;
/** A Linux bridge numbers its ports 1..BR_MAX_PORTS-1 (BR_MAX_PORTS = 1 << 10 in
 *  net/bridge/br_private.h; port 0 is never used): the 1024th port fails with EXFULL. */
export const BRIDGE_MAX_PORTS = 1023;
/** (uid_t)-1 = 4294967295 means "no change" to setuid/setgid, so the largest real id is one less. */
export const MAX_ID = 4294967294;

/** Splits a command line into words like a shell would for quoting, without running a shell. */
export function splitCommand(s: string): string[] | null {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (quote) {
      if (ch === quote) quote = null;
      else if (ch === '\\' && quote === '"' && i + 1 < s.length && '"\\$`'.includes(s[i + 1])) cur += s[++i];
      else cur += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch; inWord = true;
    } else if (ch === '\\' && i + 1 < s.length) {
      cur += s[++i]; inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) { out.push(cur); cur = ''; inWord = false; }
    } else {
      cur += ch; inWord = true;
    }
  }
  if (quote) return null;
  if (inWord) out.push(cur);
  return out;
}

const SIZE_UNITS: Record<string, number> = { b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };
export function parseSize(v: string | number): number | null {
  if (typeof v === 'number') return Number.isInteger(v) && v > 0 ? v : null;
  const m = /^([0-9]+(?:\.[0-9]+)?)([bkmgBKMG]?)$/.exec(v);
  if (!m) return null;
  const n = Math.floor(Number(m[1]) * SIZE_UNITS[(m[2] || 'b').toLowerCase()]);
  return n > 0 ? n : null;
}

/** The largest CPU number a cpuset may name: the kernel's NR_CPUS is at most 8192. */
export const MAX_CPU = 8191;

/** A kernel CPU list ("0", "0-1", "0,2", "0-3,8-11", as cpuset.cpus and
 *  /sys/devices/system/cpu/online write them) as the sorted CPUs it names, or why it is none.
 *  Overlapping parts are allowed (the kernel takes them too); an empty list is not. */
export function parseCpuList(v: string): number[] | string {
  const text = v.trim();
  if (!/^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$/.test(text)) return `"${v}" is not a CPU list; expected CPU numbers and ranges such as "0", "0-1" or "0,2"`;
  const cpus = new Set<number>();
  for (const part of text.split(',')) {
    const [a, b = a] = part.split('-').map(Number);
    if (b < a) return `range ${part} in cpuset "${v}" runs backwards; write ${b}-${a}`;
    if (b > MAX_CPU) return `CPU ${b} in cpuset "${v}" is out of range; CPU numbers go from 0 to ${MAX_CPU}`;
    for (let c = a; c <= b; c++) cpus.add(c);
  }
  return [...cpus].sort((x, y) => x - y);
}

/** Sorted CPUs as the kernel's shortest list form: [0, 1, 2, 5] -> "0-2,5". */
export function formatCpuList(cpus: number[]): string {
  const sorted = [...new Set(cpus)].sort((x, y) => x - y);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    parts.push(j === i ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/** Why a node's `user` cannot be run as, or null. The forms are NAME, UID, NAME:GID and UID:GID:
 *  the runtime looks NAME up in the image's /etc/passwd and takes the group as a number. */
export function userProblem(user: string): string | null {
  const parts = user.split(':');
  if (parts.length > 2) return `"${user}" is not a user; expected NAME, UID or UID:GID (one ':' at most)`;
  if (parts.some((x) => x === '')) return `"${user}" has an empty ${parts[0] === '' ? 'user' : 'group'} part; expected NAME, UID or UID:GID, e.g. "1000:1000"`;
  const [u, g] = parts;
  const idProblem = (v: string, what: string) => (Number(v) > MAX_ID ? `${what} ${v} in "${user}" is out of range; expected 0-${MAX_ID}` : null);
  if (/^[0-9]+$/.test(u)) {
    const e = idProblem(u, 'uid');
    if (e) return e;
  } else if (!/^[A-Za-z_][A-Za-z0-9_.-]*\$?$/.test(u) || u.length > 32) {
    return `"${u}" is neither a uid nor a user name; expected a number or a name of letters, digits, '_', '.', '-' (at most 32 characters)`;
  }
  if (g !== undefined) {
    if (!/^[0-9]+$/.test(g)) return `group "${g}" in "${user}" is not a number; give the gid (group names are not looked up)`;
    const e = idProblem(g, 'gid');
    if (e) return e;
  }
  return null;
}

/** Why a MAC address (six hex bytes, as the schema checks) cannot be an interface's, or null. */
export function macProblem(mac: string): string | null {
  const bytes = mac.split(':').map((x) => parseInt(x, 16));
  if (bytes.every((b) => b === 0)) return `MAC ${mac} is all zeros, which no interface can have; give a unicast address such as 02:00:00:00:00:01`;
  if (bytes.every((b) => b === 0xff)) return `MAC ${mac} is the broadcast address; give a unicast address such as 02:00:00:00:00:01`;
  if (bytes[0] & 1) return `MAC ${mac} is a multicast address (the lowest bit of its first byte is set); give a unicast address such as 02:00:00:00:00:01`;
  return null;
}

/** Docker's port forms: [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp]. */
export function parsePort(spec: string): PortMapping | string {
  const m = /^(?:(\d{1,3}(?:\.\d{1,3}){3}):)?(\d+):(\d+)(?:\/(tcp|udp))?$/.exec(spec);
  if (!m) {
    if (/^\d+(\/(tcp|udp))?$/.test(spec)) return `"${spec}" publishes no host port; write HOST_PORT:CONTAINER_PORT, e.g. "8080:${spec.split('/')[0]}"`;
    if (/-/.test(spec)) return `port ranges are not supported ("${spec}"); list each port`;
    return `"${spec}" is not a port mapping; expected [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp], e.g. "8080:80" or "127.0.0.1:5353:53/udp"`;
  }
  const hostIp = m[1] ?? '0.0.0.0';
  if (!isIpv4(hostIp)) return `"${m[1]}" is not an IPv4 address in "${spec}"`;
  const hostPort = Number(m[2]);
  const containerPort = Number(m[3]);
  for (const p of [hostPort, containerPort]) {
    if (p < 1 || p > 65535) return `port ${p} in "${spec}" is out of range; expected 1-65535`;
  }
  return { hostIp, hostPort, containerPort, protocol: (m[4] as 'tcp' | 'udp') ?? 'tcp' };
}

export function parseVolume(spec: string, baseDir: string): VolumeMount | string {
  const parts = spec.split(':');
  let mode: string | null = null;
  if (parts.length === 3) mode = parts.pop()!;
  if (parts.length !== 2 || !parts[0] || !parts[1]) {
    return `"${spec}" is not a volume; expected HOST_PATH:CONTAINER_PATH[:ro|:rw], e.g. "./www:/www:ro"`;
  }
  if (mode !== null && mode !== 'ro' && mode !== 'rw') return `mode "${mode}" in "${spec}" is not allowed; expected ro or rw`;
  const [src, dst] = parts;
  if (!dst.startsWith('/')) return `container path "${dst}" in "${spec}" must be absolute (start with /)`;
  if (!/^(\/|\.\/|\.\.\/|\.$|\.\.$|~\/)/.test(src)) {
    return `named volumes are not supported ("${src}"); use a path: "./${src}" for a folder next to the topology file, or an absolute path`;
  }
  const home = process.env.HOME ?? '/root';
  const source = src.startsWith('~/') ? path.join(home, src.slice(2)) : path.resolve(baseDir, src);
  return { source, target: path.posix.normalize(dst), readOnly: mode === 'ro' };
}

/** A deterministic, locally administered unicast MAC for an interface of the model. */
export function derivedMac(lab: string, node: string, iface: string): string {
  // FNV-1a over the identity; 02: prefix = locally administered, unicast (like Docker's 02:42:...).
  let h1 = 0x811c9dc5, h2 = 0x01000193;
  const s = `${lab}/${node}/${iface}`;
  for (let i = 0; i < s.length; i++) {
    h1 = Math.imul(h1 ^ s.charCodeAt(i), 0x01000193) >>> 0;
    h2 = Math.imul(h2 ^ s.charCodeAt(i), 0x811c9dc5) >>> 0;
  }
  const b = [0x02, (h1 >>> 24) & 0xff, (h1 >>> 16) & 0xff, (h1 >>> 8) & 0xff, h1 & 0xff, h2 & 0xff];
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}
