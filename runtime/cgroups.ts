// Container cgroups on v2 (unified, most machines) and v1 (this machine: cpu, cpuacct, memory,
// pids each mounted on its own). Groups are created below the cgroup netlab itself runs in
// (read from /proc/self/cgroup), as <own>/netlab/<lab>/<node>, never elsewhere; their paths are
// recorded in the lab state so `down` from another shell removes exactly them. The translation
// of limits to each version's files is pure and unit-tested.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Resources } from '../topology/types.js';
import { NetlabError } from '../topology/errors.js';

export const CGROUP_ROOT = '/sys/fs/cgroup';
export const CFS_PERIOD_US = 100_000;

export type CgroupVersion = 1 | 2;

export interface CgroupLayout {
  version: CgroupVersion;
  /** Controller -> directory where netlab's group for that controller lives (v2: one dir). */
  base: Record<string, string>;
}

/** v1 controllers netlab uses; each may be mounted alone or co-mounted (cpu,cpuacct). A
 *  cpuset group is made only for a node with resources.cpuset (see groupDirs). */
const V1_CONTROLLERS = ['cpu', 'cpuacct', 'memory', 'pids', 'devices', 'cpuset'] as const;
/** Key of the unified (v2) hierarchy's group on a hybrid v1 machine: it has no controllers there,
 *  but the container's eBPF device program is attached to it. */
export const UNIFIED = 'unified';

/** Parses /proc/self/cgroup: controller -> path (v2 entry under key ''). */
export function parseProcCgroup(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === '') out.set('', m[2]);
    for (const c of m[1].split(',')) if (c && !c.startsWith('name=')) out.set(c, m[2]);
  }
  return out;
}

/** Where each controller's hierarchy is mounted, from /proc/self/mountinfo-like mount lines. */
export function parseCgroupMounts(mounts: string): { v2: string | null; v1: Map<string, string> } {
  let v2: string | null = null;
  const v1 = new Map<string, string>();
  for (const line of mounts.split('\n')) {
    const f = line.split(' ');
    if (f.length < 4) continue;
    if (f[2] === 'cgroup2' && (f[1] === CGROUP_ROOT || v2 === null)) v2 = f[1];
    if (f[2] === 'cgroup') for (const o of f[3].split(',')) if ((V1_CONTROLLERS as readonly string[]).includes(o)) v1.set(o, f[1]);
  }
  return { v2, v1 };
}

/** v2 when the unified hierarchy is the one holding the controllers, else v1. */
export function detectLayout(procCgroup: string, mounts: string, v2Controllers: (dir: string) => string | null): CgroupLayout {
  const own = parseProcCgroup(procCgroup);
  const { v2, v1 } = parseCgroupMounts(mounts);
  if (v2 !== null) {
    const ctrls = v2Controllers(v2) ?? '';
    if (/\bmemory\b/.test(ctrls) || v1.size === 0) {
      return { version: 2, base: { '': path.join(v2, own.get('') ?? '/', 'netlab') } };
    }
  }
  const base: Record<string, string> = {};
  for (const c of V1_CONTROLLERS) {
    const mnt = v1.get(c);
    // With a unified tree, the eBPF device program there enforces the device rules (the kernel
    // asks it before v1's devices controller): v1's would only repeat them at a cost per container.
    if (c === 'devices' && v2 !== null) continue;
    if (mnt) base[c] = path.join(mnt, own.get(c) ?? '/', 'netlab');
  }
  if (v2 !== null) base[UNIFIED] = path.join(v2, own.get('') ?? '/', 'netlab');
  return { version: 1, base };
}

export function currentLayout(): CgroupLayout {
  return detectLayout(fs.readFileSync('/proc/self/cgroup', 'utf8'), fs.readFileSync('/proc/mounts', 'utf8'), (dir) => {
    try { return fs.readFileSync(path.join(dir, 'cgroup.controllers'), 'utf8'); } catch { return null; }
  });
}

/** cpu.shares (v1, 2..262144) -> cpu.weight (v2, 1..10000), the mapping runc and systemd use. */
export function sharesToWeight(shares: number): number {
  return Math.max(1, Math.min(10000, 1 + Math.floor(((shares - 2) * 9999) / 262142)));
}

/** The directory of each controller's group of one container: <base>/<lab>/<node>. On v1 the
 *  cpuset hierarchy only for a node with a cpuset: a v1 cpuset group needs cpus and mems before
 *  a task may join it, and every other node simply keeps its parent's CPUs. */
export function groupDirs(layout: CgroupLayout, lab: string, node: string, r: Pick<Resources, 'cpuset'>): Record<string, string> {
  const dirs: Record<string, string> = {};
  for (const [ctrl, base] of Object.entries(layout.base)) {
    if (ctrl === 'cpuset' && layout.version === 1 && (r.cpuset ?? null) === null) continue;
    dirs[ctrl] = path.join(base, lab, node);
  }
  return dirs;
}

/** The files and values that apply `r` to one container's group(s). On v1, cpuset.mems comes
 *  with cpuset.cpus (see cpusetParents: the node takes its parent's memory nodes). */
export function limitFiles(layout: CgroupLayout, dirs: Record<string, string>, r: Resources, parentMems = '0'): [string, string][] {
  const out: [string, string][] = [];
  const cpuset = r.cpuset ?? null;
  if (layout.version === 2) {
    const d = dirs[''];
    if (cpuset !== null) out.push([path.join(d, 'cpuset.cpus'), cpuset]);
    if (r.cpuShares !== null) out.push([path.join(d, 'cpu.weight'), String(sharesToWeight(r.cpuShares))]);
    if (r.cpus !== null) out.push([path.join(d, 'cpu.max'), `${Math.round(r.cpus * CFS_PERIOD_US)} ${CFS_PERIOD_US}`]);
    if (r.memoryBytes !== null) {
      out.push([path.join(d, 'memory.max'), String(r.memoryBytes)]);
      out.push([path.join(d, 'memory.swap.max'), '0']);
    }
    if (r.pids !== null) out.push([path.join(d, 'pids.max'), String(r.pids)]);
    return out;
  }
  if (r.cpuShares !== null && dirs.cpu) out.push([path.join(dirs.cpu, 'cpu.shares'), String(r.cpuShares)]);
  if (r.cpus !== null && dirs.cpu) {
    out.push([path.join(dirs.cpu, 'cpu.cfs_period_us'), String(CFS_PERIOD_US)]);
    out.push([path.join(dirs.cpu, 'cpu.cfs_quota_us'), String(Math.round(r.cpus * CFS_PERIOD_US))]);
  }
  if (r.memoryBytes !== null && dirs.memory) out.push([path.join(dirs.memory, 'memory.limit_in_bytes'), String(r.memoryBytes)]);
  if (r.pids !== null && dirs.pids) out.push([path.join(dirs.pids, 'pids.max'), String(r.pids)]);
  if (cpuset !== null && dirs.cpuset) {
    // mems first: a v1 cpuset group takes a task only once both are set.
    out.push([path.join(dirs.cpuset, 'cpuset.mems'), parentMems]);
    out.push([path.join(dirs.cpuset, 'cpuset.cpus'), cpuset]);
  }
  return out;
}

/** Controllers to turn on in v2 parents, so children get the interface files. cpuset only when
 *  a node asks for one: enabling a controller in a group is refused (EBUSY) while the group has
 *  processes of its own, so a lab without a cpuset changes nothing it did not change before. */
const V2_ENABLE = ['cpu', 'memory', 'pids'];

/** The controllers to write into a v2 parent's cgroup.subtree_control, of those it offers
 *  (its cgroup.controllers): "+cpu +memory +pids", "+cpuset" in front when `cpuset`. */
export function v2Enable(available: string, cpuset: boolean): string {
  const want = cpuset ? ['cpuset', ...V2_ENABLE] : V2_ENABLE;
  const avail = new Set(available.split(/\s+/).filter(Boolean));
  return want.filter((c) => avail.has(c)).map((c) => `+${c}`).join(' ');
}

function enableV2(dir: string, cpuset: boolean): void {
  let avail = '';
  try { avail = fs.readFileSync(path.join(dir, 'cgroup.controllers'), 'utf8'); } catch { return; }
  if (cpuset && !/\bcpuset\b/.test(avail)) {
    throw new CgroupError(`resources.cpuset needs the cpuset controller, and cgroup ${dir} does not offer it (its cgroup.controllers: ${avail.trim() || 'none'})`);
  }
  const want = v2Enable(avail, cpuset);
  if (want) fs.writeFileSync(path.join(dir, 'cgroup.subtree_control'), want);
}

/** v1 cpuset groups netlab makes between its parent and a node (<own>/netlab, <own>/netlab/<lab>)
 *  start with empty cpus and mems, and a group below one cannot be given any: each takes its
 *  parent's when it has none yet (as cgroup.clone_children would). Returns the memory nodes of
 *  the lab's group, for the node's cpuset.mems. */
function cpusetParents(base: string, lab: string): string {
  let mems = '';
  for (const dir of [base, path.join(base, lab)]) {
    fs.mkdirSync(dir, { recursive: true });
    const parent = path.dirname(dir);
    for (const f of ['cpuset.cpus', 'cpuset.mems']) {
      const file = path.join(dir, f);
      if (fs.readFileSync(file, 'utf8').trim() === '') fs.writeFileSync(file, fs.readFileSync(path.join(parent, f), 'utf8').trim());
    }
    mems = fs.readFileSync(path.join(dir, 'cpuset.mems'), 'utf8').trim();
  }
  return mems;
}

export class CgroupError extends NetlabError {}

/** The directory (on the unified hierarchy) where the container's eBPF device program goes: its v2
 *  group, or on a hybrid machine its group in the unified tree; null on a pure v1 machine. */
export function deviceProgramGroup(layout: CgroupLayout, dirs: Record<string, string>): string | null {
  return layout.version === 2 ? dirs[''] ?? null : dirs[UNIFIED] ?? null;
}

/** cgroup v1's device allow-list: everything denied, then the rules allowed (null: no rules,
 *  a privileged container keeps the parent's "allow all"). */
export function deviceFiles(layout: CgroupLayout, dirs: Record<string, string>, allow: string[] | null): [string, string][] {
  if (allow === null || layout.version === 2 || !dirs.devices) return [];
  return [[path.join(dirs.devices, 'devices.deny'), 'a'], ...allow.map((l): [string, string] => [path.join(dirs.devices, 'devices.allow'), l])];
}

/** Creates <base>/<lab>/<node> for every controller, writes the limits (and v1 device rules);
 *  returns the dirs. */
export function createContainerGroups(layout: CgroupLayout, lab: string, node: string, r: Resources, deviceAllow: string[] | null = null): Record<string, string> {
  const dirs = groupDirs(layout, lab, node, r);
  const cpuset = (r.cpuset ?? null) !== null;
  let mems = '0';
  for (const [ctrl, dir] of Object.entries(dirs)) {
    const base = layout.base[ctrl];
    const labDir = path.join(base, lab);
    if (layout.version === 2) {
      // v2's "no internal processes" rule: controllers are enabled top-down on our own subtree.
      fs.mkdirSync(base, { recursive: true });
      enableV2(path.dirname(base), cpuset);
      enableV2(base, cpuset);
      fs.mkdirSync(labDir, { recursive: true });
      enableV2(labDir, cpuset);
    } else if (ctrl === 'cpuset') {
      mems = cpusetParents(base, lab);
    }
    fs.mkdirSync(dir, { recursive: true });
  }
  if (cpuset && layout.version === 1 && !dirs.cpuset) throw new CgroupError('resources.cpuset needs the cpuset controller, which is not mounted on this machine');
  for (const [file, value] of [...limitFiles(layout, dirs, r, mems), ...deviceFiles(layout, dirs, deviceAllow)]) {
    try {
      fs.writeFileSync(file, value);
    } catch (e) {
      // The kernel refuses a cpuset naming CPUs its parent lacks (offline, or outside netlab's own cpuset).
      if (path.basename(file) === 'cpuset.cpus') {
        const parent = readOr(path.join(path.dirname(path.dirname(file)), layout.version === 2 ? 'cpuset.cpus.effective' : 'cpuset.effective_cpus'));
        throw new CgroupError(`cannot give node ${node} cpuset ${value}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message} (CPUs available to it: ${parent ?? 'unknown'})`);
      }
      throw e;
    }
  }
  return dirs;
}

function readOr(file: string): string | null {
  try { return fs.readFileSync(file, 'utf8').trim(); } catch { return null; }
}

/** The cgroup.procs files the shim writes "0" into to join the container's groups. */
export function procsFiles(dirs: Record<string, string>): string[] {
  return Object.values(dirs).map((d) => path.join(d, 'cgroup.procs'));
}

export function pidsIn(dirs: Record<string, string>): number[] {
  const pids = new Set<number>();
  for (const d of Object.values(dirs)) {
    try {
      for (const l of fs.readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n')) if (l) pids.add(Number(l));
    } catch { /* gone already */ }
  }
  return [...pids];
}

/** Removes the groups (and the lab's parent when empty); processes must be gone. Retries
 *  briefly: a killed task leaves its cgroup a moment after it is reaped. */
export async function removeGroups(dirs: Record<string, string>): Promise<string[]> {
  const left: string[] = [];
  for (const d of Object.values(dirs)) {
    let ok = false;
    for (let i = 0; i < 50 && !ok; i++) {
      try { fs.rmdirSync(d); ok = true; } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') ok = true;
        else if (code === 'EBUSY') await new Promise((r) => setTimeout(r, 20));
        else throw e;
      }
    }
    if (!ok) left.push(d);
    for (const parent of [path.dirname(d), path.dirname(path.dirname(d))]) {
      try { fs.rmdirSync(parent); } catch { /* not empty: other labs or nodes */ }
    }
  }
  return left;
}

/** CPU time used by a container's group, in nanoseconds. */
export function cpuUsageNs(layout: CgroupLayout, dirs: Record<string, string>): number {
  if (layout.version === 2) {
    const m = /usage_usec (\d+)/.exec(fs.readFileSync(path.join(dirs[''], 'cpu.stat'), 'utf8'));
    return m ? Number(m[1]) * 1000 : 0;
  }
  return Number(fs.readFileSync(path.join(dirs.cpuacct ?? dirs.cpu, 'cpuacct.usage'), 'utf8').trim());
}

/** One reading of a container's groups for `netlab stats`; null where a file could not be read
 *  (the group gone, a controller not there). */
export interface CgroupSample {
  /** Cumulative CPU time of the group's tasks, nanoseconds. */
  cpuNs: number | null;
  /** Memory charged to the group (v1 memory.usage_in_bytes, v2 memory.current). */
  memoryBytes: number | null;
  /** The group's memory limit; null when it has none. */
  memoryLimit: number | null;
  pids: number | null;
}

/** v1 writes "no limit" as the largest page-aligned counter (9223372036854771712 on x86-64,
 *  above 2^62 on every page size); v2 writes "max". */
export function parseMemoryLimit(text: string): number | null {
  const t = text.trim();
  if (t === '' || t === 'max' || !/^\d+$/.test(t)) return null;
  return BigInt(t) >= 1n << 62n ? null : Number(t);
}

/** usage_usec of v2's cpu.stat, in nanoseconds. */
export function parseCpuStat(text: string): number | null {
  const m = /^usage_usec (\d+)$/m.exec(text);
  return m ? Number(m[1]) * 1000 : null;
}

const count = (text: string | null): number | null => {
  const t = text?.trim() ?? '';
  return /^\d+$/.test(t) ? Number(t) : null;
};

/** Reads a container's CPU, memory and pids counters from its groups (`read` returns a file's
 *  text or null; the real one reads /sys/fs/cgroup). */
export function readCgroupSample(version: CgroupVersion, dirs: Record<string, string>, read: (file: string) => string | null = readOr): CgroupSample {
  const at = (dir: string | undefined, file: string) => (dir === undefined ? null : read(path.join(dir, file)));
  if (version === 2) {
    const d = dirs[''];
    const stat = at(d, 'cpu.stat');
    const max = at(d, 'memory.max');
    return { cpuNs: stat === null ? null : parseCpuStat(stat), memoryBytes: count(at(d, 'memory.current')), memoryLimit: max === null ? null : parseMemoryLimit(max), pids: count(at(d, 'pids.current')) };
  }
  const limit = at(dirs.memory, 'memory.limit_in_bytes');
  return {
    cpuNs: count(at(dirs.cpuacct ?? dirs.cpu, 'cpuacct.usage')),
    memoryBytes: count(at(dirs.memory, 'memory.usage_in_bytes')),
    memoryLimit: limit === null ? null : parseMemoryLimit(limit),
    pids: count(at(dirs.pids, 'pids.current')),
  };
}

/** How many times the kernel OOM-killed a task of this group. */
export function oomKills(layout: CgroupLayout, dirs: Record<string, string>): number {
  try {
    const file = layout.version === 2 ? path.join(dirs[''], 'memory.events') : path.join(dirs.memory, 'memory.oom_control');
    const m = /oom_kill (\d+)/.exec(fs.readFileSync(file, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}
