// What exists on the machine that a netlab test could leave behind, read with the system's own
// tools (ip, nft, /proc) rather than with netlab's code, so a bug in netlab cannot hide its own
// leak. Take a snapshot() before a test file touches the kernel and call expectNoLeaks(before)
// at the end. Later layers plug in with addLeakProbe(): cgroupProbe() and containerProcessProbe()
// watch the container runtime's cgroups and the processes in them. On a shared machine, pass
// expectNoLeaks an `only` filter so other people's labs coming and going do not count.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';

export interface LeakProbe {
  /** Shown in the failure message, e.g. 'netns'. */
  name: string;
  /** Current objects as stable strings; anything present now but not in the snapshot leaked. */
  list(): string[];
}

export type Snapshot = Record<string, string[]>;

function netnsNames(): string[] {
  try {
    return fs.readdirSync('/run/netns');
  } catch {
    return [];
  }
}

function rootLinks(): string[] {
  const out = execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8', maxBuffer: 1 << 28 });
  return (JSON.parse(out || '[]') as { ifname: string }[]).map((l) => l.ifname);
}

function nftTables(): string[] {
  try {
    const out = execFileSync('nft', ['-j', 'list', 'tables'], { encoding: 'utf8', maxBuffer: 1 << 28, stdio: ['ignore', 'pipe', 'pipe'] });
    const items = (JSON.parse(out) as { nftables?: { table?: { family: string; name: string } }[] }).nftables ?? [];
    return items.flatMap((i) => (i.table ? [`${i.table.family} ${i.table.name}`] : []));
  } catch (e) {
    // No nft binary: netlab cannot have made a table either.
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

/** Mount points under /run/netns (the directory's own shared bind mount is made once per boot,
 *  as iproute2 does, and is not a leak) or anything mentioning netlab (netlab's tmpfs on its
 *  state directory included: the last lab down unmounts it). */
function mounts(): string[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).flatMap((line) => {
    const mountPoint = unescape(line.split(' ')[4] ?? '');
    return mountPoint.startsWith('/run/netns/') || line.includes('netlab') ? [mountPoint] : [];
  });
}

/** Children of this process that are still there (a stray `ping`, a container init...), as
 *  "pid comm" (zombies count: nobody waited for them). */
export function childProcesses(): string[] {
  const out: string[] = [];
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      // comm may contain spaces and parentheses: fields resume after the last ')'.
      const close = stat.lastIndexOf(')');
      const ppid = Number(stat.slice(close + 2).split(' ')[1]);
      if (ppid === process.pid) out.push(`${pid} ${stat.slice(stat.indexOf('(') + 1, close)}`);
    } catch {
      // exited while we looked
    }
  }
  return out;
}

const CGROUP_ROOT = '/sys/fs/cgroup';

/** Every cgroup directory below a `netlab` directory (netlab's container groups, any controller,
 *  v1 or v2, wherever the creating process sat), as paths under /sys/fs/cgroup. `match` narrows
 *  them, e.g. to one test run's labs; on a shared machine other labs come and go. */
export function netlabCgroups(match: (dir: string) => boolean = () => true): string[] {
  const out: string[] = [];
  const walk = (dir: string, depth: number) => {
    if (depth > 12) return;
    let entries: fs.Dirent[];
    try { entries = fs.readdirSync(dir, { withFileTypes: true }); } catch { return; }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const sub = `${dir}/${e.name}`;
      if (/\/netlab(\/|$)/.test(sub.slice(CGROUP_ROOT.length)) && match(sub)) out.push(sub);
      walk(sub, depth + 1);
    }
  };
  walk(CGROUP_ROOT, 0);
  return out;
}

/** Live processes (zombies excluded: an exited supervisor whose parent never reaps it holds
 *  nothing) whose /proc/PID/cgroup names a group below `netlab/`, as "PID comm group". */
export function netlabCgroupProcesses(match: (group: string) => boolean = () => true): string[] {
  const out: string[] = [];
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      if (stat.slice(close + 2, close + 3) === 'Z') continue;
      const group = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').map((l) => l.slice(l.indexOf(':', l.indexOf(':') + 1) + 1))
        .find((g) => /\/netlab\//.test(g) && match(g));
      if (group) out.push(`${pid} ${stat.slice(stat.indexOf('(') + 1, close)} ${group}`);
    } catch {
      // exited while we looked
    }
  }
  return out;
}

/** Probes for the container runtime's objects: cgroups and the processes in them. Pass a
 *  filter to watch only your own labs (e.g. `(s) => s.includes('/netlab/r1a2b3c')`). */
export function cgroupProbe(match?: (dir: string) => boolean): LeakProbe {
  return { name: 'cgroups (netlab)', list: () => netlabCgroups(match) };
}
export function containerProcessProbe(match?: (group: string) => boolean): LeakProbe {
  return { name: 'container processes', list: () => netlabCgroupProcesses(match) };
}

const probes: LeakProbe[] = [
  { name: 'netns', list: netnsNames },
  { name: 'links (root netns)', list: rootLinks },
  { name: 'nftables tables', list: nftTables },
  { name: 'mounts', list: mounts },
  { name: 'child processes', list: childProcesses },
];

/** Registers another kind of object to watch (cgroups, container processes...). Take snapshots
 *  after registering. */
export function addLeakProbe(probe: LeakProbe): void {
  if (!probes.some((p) => p.name === probe.name)) probes.push(probe);
}

export function snapshot(): Snapshot {
  return Object.fromEntries(probes.map((p) => [p.name, p.list().sort()]));
}

/** Decides which new objects count (a test on a shared machine counts only its own). */
export type LeakFilter = (probe: string, item: string) => boolean;

/** Objects present now that were not in `before`, by probe; empty when nothing leaked. */
export function newSince(before: Snapshot, now: Snapshot = snapshot(), only?: LeakFilter): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [name, items] of Object.entries(now)) {
    const old = new Set(before[name] ?? []);
    const added = items.filter((i) => !old.has(i) && (!only || only(name, i)));
    if (added.length) out[name] = added;
  }
  return out;
}

/** Fails listing every object created since `before` that is still there. Waits up to
 *  settleMs first, because the kernel removes the veths of an unmounted netns in the
 *  background (~150-250 ms for 500 of them). */
export async function expectNoLeaks(before: Snapshot, o: { settleMs?: number; only?: LeakFilter } = {}): Promise<void> {
  const deadline = Date.now() + (o.settleMs ?? 3000);
  let leaked = newSince(before, snapshot(), o.only);
  while (Object.keys(leaked).length && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    leaked = newSince(before, snapshot(), o.only);
  }
  if (Object.keys(leaked).length) {
    const lines = Object.entries(leaked).map(([name, items]) => `  ${name}: ${items.join(', ')}`);
    throw new Error(`left behind on this machine:\n${lines.join('\n')}`);
  }
}
