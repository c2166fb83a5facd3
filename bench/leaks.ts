// What the bench could leave behind, read with the system's tools (ip, nft, /proc), not with
// netlab's code: named namespaces, root-namespace links, nft tables, netlab state directories,
// mounts under /run/netns and child processes. A snapshot is taken before the run; at the end,
// every object that is new AND carries one of this run's markers is a leak (the run fails).
// New objects without our markers (another user's lab started meanwhile) are only reported.
import * as fs from 'node:fs';
import { ipLinkNames, sh } from './util.js';

export type Snapshot = Record<string, string[]>;

function netns(): string[] {
  try { return fs.readdirSync('/run/netns'); } catch { return []; }
}

function links(): string[] {
  return ipLinkNames();
}

function nftTables(): string[] {
  if (!sh('sh', ['-c', 'command -v nft'])) return []; // no nft: netlab cannot have made a table
  let out = '';
  for (let i = 0; i < 5 && !out; i++) out = sh('nft', ['-j', 'list', 'tables']);
  if (!out) throw new Error('nft -j list tables failed 5 times: cannot check for leaked tables');
  const items = (JSON.parse(out) as { nftables?: { table?: { family: string; name: string } }[] }).nftables ?? [];
  return items.flatMap((i) => (i.table ? [`${i.table.family} ${i.table.name}`] : []));
}

function stateDirs(): string[] {
  try { return fs.readdirSync(process.env.NETLAB_STATE_DIR || '/run/netlab'); } catch { return []; }
}

function mounts(): string[] {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean)
    .map((l) => l.split(' ')[4] ?? '').filter((m) => m !== (process.env.NETLAB_STATE_DIR || '/run/netlab') && (m.startsWith('/run/netns/') || m.includes('netlab')));
}

/** Processes that look like a lab's (netlab's shim and containers run from /run/netlab/...) or
 *  a Mininet host's (`bash ... mininet:h1`, mnexec). */
function processes(): string[] {
  const out: string[] = [];
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      if (/netlab|mininet:|mnexec/.test(cmd)) out.push(`${pid} ${cmd.slice(0, 200)}`);
    } catch { /* exited meanwhile */ }
  }
  return out;
}

/** cgroup directories below any `netlab` directory (the runtime's <own>/netlab/<lab>/<node>). */
function cgroups(): string[] {
  const out: string[] = [];
  const walk = (dir: string, depth: number, inNetlab: boolean) => {
    if (depth > 10) return;
    let entries: fs.Dirent[];
    try { entries = fs.readdirSync(dir, { withFileTypes: true }); } catch { return; }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const p = `${dir}/${e.name}`;
      const mine = inNetlab || e.name === 'netlab';
      if (inNetlab) out.push(p);
      walk(p, depth + 1, mine);
    }
  };
  walk('/sys/fs/cgroup', 0, false);
  return out;
}

function children(): string[] {
  const out: string[] = [];
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(rest[1]) === process.pid && rest[0] !== 'Z') out.push(`${pid} ${stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))}`);
    } catch { /* exited meanwhile */ }
  }
  return out;
}

export function snapshot(): Snapshot {
  return {
    netns: netns(), links: links(), nftTables: nftTables(), stateDirs: stateDirs(), mounts: mounts(),
    processes: processes(), cgroups: cgroups(), children: children(),
  };
}

export interface LeakReport {
  leaked: Record<string, string[]>;
  /** New since the start but not ours (another user's). */
  foreign: Record<string, string[]>;
}

/** `ours(kind, name)` says whether an object carries this run's markers. */
export function compare(before: Snapshot, after: Snapshot, ours: (kind: string, name: string) => boolean): LeakReport {
  const leaked: Record<string, string[]> = {};
  const foreign: Record<string, string[]> = {};
  for (const kind of Object.keys(after)) {
    const old = new Set(before[kind] ?? []);
    for (const x of after[kind]) {
      if (old.has(x)) continue;
      const target = kind === 'children' || ours(kind, x) ? leaked : foreign;
      (target[kind] ??= []).push(x);
    }
  }
  return { leaked, foreign };
}
