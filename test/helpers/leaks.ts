// What exists on the machine that a netlab test could leave behind, read with the system's own
// tools (ip, nft, /proc) rather than with netlab's code, so a bug in netlab cannot hide its own
// leak. Take a snapshot() before a test file touches the kernel and call expectNoLeaks(before)
// at the end. Later layers (cgroups, container processes) plug in with addLeakProbe().
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
  const out = execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' });
  return (JSON.parse(out || '[]') as { ifname: string }[]).map((l) => l.ifname);
}

function nftTables(): string[] {
  try {
    const out = execFileSync('nft', ['-j', 'list', 'tables'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const items = (JSON.parse(out) as { nftables?: { table?: { family: string; name: string } }[] }).nftables ?? [];
    return items.flatMap((i) => (i.table ? [`${i.table.family} ${i.table.name}`] : []));
  } catch (e) {
    // No nft binary: netlab cannot have made a table either.
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

/** Mount points under /run/netns (the directory's own shared bind mount is made once per boot,
 *  as iproute2 does, and is not a leak) or anything mentioning netlab. */
function mounts(): string[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).flatMap((line) => {
    const mountPoint = unescape(line.split(' ')[4] ?? '');
    return mountPoint.startsWith('/run/netns/') || line.includes('netlab') ? [mountPoint] : [];
  });
}

/** Children of this process that are still there (a stray `ping`, a container init...). */
function childProcesses(): string[] {
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

/** Objects present now that were not in `before`, by probe; empty when nothing leaked. */
export function newSince(before: Snapshot, now: Snapshot = snapshot()): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [name, items] of Object.entries(now)) {
    const old = new Set(before[name] ?? []);
    const added = items.filter((i) => !old.has(i));
    if (added.length) out[name] = added;
  }
  return out;
}

/** Fails listing every object created since `before` that is still there. Waits up to
 *  settleMs first, because the kernel removes the veths of an unmounted netns in the
 *  background (~150-250 ms for 500 of them). */
export async function expectNoLeaks(before: Snapshot, o: { settleMs?: number } = {}): Promise<void> {
  const deadline = Date.now() + (o.settleMs ?? 3000);
  let leaked = newSince(before);
  while (Object.keys(leaked).length && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    leaked = newSince(before);
  }
  if (Object.keys(leaked).length) {
    const lines = Object.entries(leaked).map(([name, items]) => `  ${name}: ${items.join(', ')}`);
    throw new Error(`left behind on this machine:\n${lines.join('\n')}`);
  }
}
