// Helpers for integration tests that drive the real `netlab` CLI (bin/netlab.js, built into
// dist/) and look at what it made with the system's own tools (`ip -j`, `nft -j`, /proc,
// /run/netns), never with netlab's own readers, so a shared bug cannot hide itself.
// Everything here is scoped to one lab name: tests on a shared machine must never see, touch or
// delete objects of labs they did not make.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { randomInt } from 'node:crypto';
import * as net from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { labGroup, labId, nftTable } from '../../topology/names.js';
import type { Plan, PlanStep } from '../../controller/plan.js';
import type { Lab } from '../../topology/types.js';
import { loadTopologyFile } from '../../topology/load.js';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = path.join(REPO, 'bin/netlab.js');
export const STATE_ROOT = '/run/netlab';

// ---------------------------------------------------------------- running the CLI

export interface CliResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** `node bin/netlab.js ARGS...`, no shell. `asUser` runs it through setpriv as that uid/gid. */
export function netlab(args: string[], o: { asUser?: number; timeoutMs?: number } = {}): CliResult {
  const argv = [CLI, ...args];
  const [cmd, cmdArgs] = o.asUser === undefined
    ? [process.execPath, argv]
    : ['setpriv', [`--reuid=${o.asUser}`, `--regid=${o.asUser}`, '--clear-groups', process.execPath, ...argv]];
  const t0 = performance.now();
  const r = spawnSync(cmd, cmdArgs, { cwd: REPO, encoding: 'utf8', maxBuffer: 1 << 28, timeout: o.timeoutMs ?? 60_000, env: { ...process.env, NO_COLOR: '1' } });
  if (r.error) throw r.error;
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, ms: performance.now() - t0 };
}

/** Like netlab() but fails with the output when the exit code is not 0. */
export function netlabOk(args: string[]): CliResult {
  const r = netlab(args);
  if (r.status !== 0) throw new Error(`netlab ${args.join(' ')} exited with ${r.status ?? r.signal}:\n${r.stdout}${r.stderr}`);
  return r;
}

/** Starts the CLI without waiting (crash and signal tests). `detached`: in a process group of
 *  its own, so a test can kill the whole group (process.kill(-pid)), as a terminal would. */
export function netlabSpawn(args: string[], o: { detached?: boolean } = {}): ChildProcess {
  return spawn(process.execPath, [CLI, ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], detached: o.detached ?? false });
}

export function waitExit(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

// ---------------------------------------------------------------- iproute2 / nft views

export interface IpLink {
  ifindex: number; ifname: string; mtu: number; address?: string; ifalias?: string; group?: string;
  master?: string; flags: string[]; operstate: string;
  linkinfo?: { info_kind?: string };
}
export interface IpAddr { ifname: string; addr_info: { family: string; local: string; prefixlen: number }[] }
export interface IpRoute { dst: string; gateway?: string; dev?: string; protocol?: string; scope?: string }

/** `ip [-n NS] -j ARGS` parsed; ns null = the root namespace. */
export function ipj<T>(args: string[], ns: string | null = null): T[] {
  const out = execFileSync('ip', [...(ns ? ['-n', ns] : []), '-j', ...args], { encoding: 'utf8', maxBuffer: 1 << 28, stdio: ['ignore', 'pipe', 'pipe'] });
  return JSON.parse(out || '[]') as T[];
}

export function links(ns: string | null, details = true): IpLink[] {
  return ipj<IpLink>([...(details ? ['-d'] : []), 'link', 'show'], ns);
}

export function link(ns: string | null, name: string): IpLink | null {
  const r = spawnSync('ip', [...(ns ? ['-n', ns] : []), '-j', '-d', 'link', 'show', 'dev', name], { encoding: 'utf8', maxBuffer: 1 << 28 });
  return r.status === 0 ? (JSON.parse(r.stdout) as IpLink[])[0] ?? null : null;
}

export function netnsList(): string[] {
  return ipj<{ name: string }>(['netns', 'list']).map((n) => n.name);
}

export function nftTableNames(): string[] {
  const out = execFileSync('nft', ['-j', 'list', 'tables'], { encoding: 'utf8', maxBuffer: 1 << 28, stdio: ['ignore', 'pipe', 'pipe'] });
  const items = (JSON.parse(out) as { nftables?: { table?: { family: string; name: string } }[] }).nftables ?? [];
  return items.flatMap((i) => (i.table ? [`${i.table.family} ${i.table.name}`] : []));
}

/** Chain names of one nft table, from `nft -j list table`. */
export function nftChains(family: string, table: string): string[] {
  const out = execFileSync('nft', ['-j', 'list', 'table', family, table], { encoding: 'utf8', maxBuffer: 1 << 28, stdio: ['ignore', 'pipe', 'pipe'] });
  const items = (JSON.parse(out) as { nftables?: { chain?: { name: string } }[] }).nftables ?? [];
  return items.flatMap((i) => (i.chain ? [i.chain.name] : [])).sort();
}

/** The objects of one nft table as nft's canonical JSON (handles, metainfo and counter values
 *  left out), one line per table, chain, set and rule, in nft's order. */
function nftCanonical(json: string): string[] {
  return ((JSON.parse(json) as { nftables?: Record<string, Record<string, unknown>>[] }).nftables ?? [])
    .filter((i) => !i.metainfo)
    .map((i) => {
      const [k, v] = Object.entries(i)[0];
      const { handle: _handle, ...rest } = v;
      // Counters count traffic, which a freshly loaded copy has not seen.
      return JSON.stringify({ [k]: rest }).replace(/"counter":\{"packets":\d+,"bytes":\d+\}/g, '"counter":{}');
    });
}

/** The table as the kernel holds it, from `nft -j list table`. */
export function nftTableJson(family: string, table: string): string[] {
  return nftCanonical(execFileSync('nft', ['-j', 'list', 'table', family, table], { encoding: 'utf8', maxBuffer: 1 << 28, stdio: ['ignore', 'pipe', 'pipe'] }));
}

/** What `ruleset` (nft syntax) becomes once loaded: applied in a throwaway network namespace
 *  (`unshare -n`, nothing named, gone when nft exits) and read back with `nft -j`, so it
 *  compares with nftTableJson() as nft itself canonicalizes both. */
export function nftRulesetJson(ruleset: string, family: string, table: string): string[] {
  const out = execFileSync('unshare', ['-n', '--', 'sh', '-c', 'nft -f - && nft -j list table "$1" "$2"', 'sh', family, table], { input: ruleset, encoding: 'utf8', maxBuffer: 1 << 28, stdio: ['pipe', 'pipe', 'pipe'] });
  return nftCanonical(out);
}

function mountPoints(): string[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).map((l) => unescape(l.split(' ')[4] ?? ''));
}

// ---------------------------------------------------------------- processes and cgroups

/** Live (non-zombie) processes whose cgroup path (any hierarchy) contains `needle`. */
export function processesInCgroup(needle: string | ((cgroupPath: string) => boolean)): { pid: number; comm: string }[] {
  const match = typeof needle === 'string' ? (p: string) => p.includes(needle) : needle;
  const out: { pid: number; comm: string }[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      if (stat.slice(close + 2, close + 3) === 'Z') continue;
      const paths = fs.readFileSync(`/proc/${d}/cgroup`, 'utf8').split('\n').map((l) => l.split(':').slice(2).join(':'));
      if (paths.some((p) => p && match(p))) out.push({ pid: Number(d), comm: stat.slice(stat.indexOf('(') + 1, close) });
    } catch { /* exited while we looked */ }
  }
  return out;
}

/** Live processes whose command line contains `needle` (the lab's container supervisor). */
export function processesWithArg(needle: string): { pid: number; cmd: string }[] {
  const out: { pid: number; cmd: string }[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z') continue;
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').join(' ');
      if (cmd.includes(needle)) out.push({ pid: Number(d), cmd });
    } catch { /* exited while we looked */ }
  }
  return out;
}

/** Directories `<cgroup mount><our own cgroup>/netlab/<lab>` that exist: the runtime makes its
 *  groups below the cgroup of the netlab process, which is ours (the CLI is our child). */
function labCgroupDirs(lab: string): string[] {
  const own = new Set(fs.readFileSync('/proc/self/cgroup', 'utf8').split('\n').filter(Boolean).map((l) => l.split(':').slice(2).join(':')));
  const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).flatMap((l) => {
    const [left, right] = l.split(' - ');
    return right && /^cgroup2? /.test(right) ? [left.split(' ')[4]] : [];
  });
  const out = new Set<string>();
  for (const m of mounts) for (const p of own) {
    const dir = path.join(m, p, 'netlab', lab);
    if (fs.existsSync(dir)) out.add(dir);
  }
  return [...out];
}

// ---------------------------------------------------------------- one lab's footprint

const labNsPrefixes = (lab: string) => [`netlab.${lab}.`, `netlab.${lab}+`];
export const isLabNetns = (lab: string, ns: string) => labNsPrefixes(lab).some((p) => ns.startsWith(p));

/** Everything of lab `lab` still on the machine, found by its markers (netns name, link name
 *  prefix and IFLA_GROUP, nft table, mounts, state dir, container processes and cgroups).
 *  Empty when the lab left nothing. */
export function labLeftovers(lab: string, o: { ignoreLinks?: string[] } = {}): string[] {
  const out: string[] = [];
  let files: string[] = [];
  try { files = fs.readdirSync('/run/netns'); } catch { /* no dir, no netns */ }
  for (const n of new Set([...files, ...netnsList()])) if (isLabNetns(lab, n)) out.push(`netns ${n}`);
  const prefix = `nl${labId(lab)}`;
  const group = String(labGroup(lab));
  for (const l of links(null, false)) {
    if (o.ignoreLinks?.includes(l.ifname)) continue;
    if (l.ifname.startsWith(prefix) || l.group === group) out.push(`link ${l.ifname} (group ${l.group})`);
  }
  const table = `ip ${nftTable(lab)}`;
  if (nftTableNames().includes(table)) out.push(`nft table ${table}`);
  for (const m of mountPoints()) if (labNsPrefixes(lab).some((p) => m.startsWith(`/run/netns/${p}`))) out.push(`mount ${m}`);
  if (fs.existsSync(path.join(STATE_ROOT, lab))) out.push(`state dir ${path.join(STATE_ROOT, lab)}`);
  for (const p of processesInCgroup(`/netlab/${lab}/`)) out.push(`process ${p.pid} (${p.comm}) in a cgroup of the lab`);
  for (const p of processesWithArg(`${STATE_ROOT}/${lab}/`)) out.push(`process ${p.pid} (${p.cmd})`);
  for (const d of labCgroupDirs(lab)) out.push(`cgroup ${d}`);
  return out;
}

// ---------------------------------------------------------------- the whole machine, before and after

/** Everything a lab could leave in the root namespace, named without netlab's naming code:
 *  every link (name, index and the alias the kernel reports), every nft table (with its
 *  comment), every entry of /run/netns and every netns listed by iproute2, every mount point. */
export interface MachineSnapshot { links: Map<string, string>; tables: Map<string, string>; netns: Set<string>; mounts: Set<string> }

export function machineSnapshot(): MachineSnapshot {
  const ls = new Map<string, string>();
  for (const l of links(null, false)) ls.set(`${l.ifname}#${l.ifindex}`, l.ifalias ?? '');
  const tables = new Map<string, string>();
  const out = execFileSync('nft', ['-j', 'list', 'tables'], { encoding: 'utf8', maxBuffer: 1 << 28, stdio: ['ignore', 'pipe', 'pipe'] });
  for (const i of (JSON.parse(out) as { nftables?: { table?: { family: string; name: string } }[] }).nftables ?? []) {
    if (!i.table) continue;
    const t = spawnSync('nft', ['list', 'table', i.table.family, i.table.name], { encoding: 'utf8', maxBuffer: 1 << 28 });
    // Deleted between the two calls (another lab went down): it is not there, so not new either.
    if (t.status !== 0 && !nftTableNames().includes(`${i.table.family} ${i.table.name}`)) continue;
    if (t.status !== 0) throw new Error(`nft list table ${i.table.family} ${i.table.name}: ${t.stderr.trim()}`);
    tables.set(`${i.table.family} ${i.table.name}`, /^\s*comment "([^"]*)"/m.exec(t.stdout)?.[1] ?? '');
  }
  let files: string[] = [];
  try { files = fs.readdirSync('/run/netns'); } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e; }
  return { links: ls, tables, netns: new Set([...files, ...netnsList()]), mounts: new Set(mountPoints()) };
}

/** The lab named by a netlab marker the object carries itself (alias `netlab:LAB:...`, table
 *  comment `netlab lab LAB`, netns or mount `netlab.LAB.` / `netlab.LAB+`), or null. */
function markedLab(s: string): string | null {
  return /^netlab:([a-z0-9-]+):/.exec(s)?.[1] ?? /^netlab lab ([a-z0-9-]+)$/.exec(s)?.[1]
    ?? /(?:^|\/)netlab\.([a-z0-9-]+)[.+]/.exec(s)?.[1] ?? null;
}

/** Objects present now that were not in `before`, except those that say they belong to another
 *  lab (other labs come and go on a shared machine) or that `ignore` names (the test's own
 *  scaffolding). An object saying nothing about its owner counts: it is nobody's but ours. */
export function newSinceSnapshot(before: MachineSnapshot, lab: string, ignore: (item: string) => boolean = () => false): string[] {
  const now = machineSnapshot();
  const foreign = (marker: string) => { const m = markedLab(marker); return m !== null && m !== lab; };
  const out: string[] = [];
  for (const [k, alias] of now.links) if (!before.links.has(k) && !foreign(alias)) out.push(`link ${k} (alias ${JSON.stringify(alias)})`);
  for (const [k, comment] of now.tables) if (!before.tables.has(k) && !foreign(comment)) out.push(`nft table ${k} (comment ${JSON.stringify(comment)})`);
  for (const n of now.netns) if (!before.netns.has(n) && !foreign(n)) out.push(`netns ${n}`);
  // The tmpfs on the state root is shared by every lab: it stays while another lab is up.
  const othersUp = (() => { try { return fs.readdirSync(STATE_ROOT, { withFileTypes: true }).some((d) => d.isDirectory() && d.name !== lab); } catch { return false; } })();
  for (const m of now.mounts) if (!before.mounts.has(m) && !foreign(m) && !(m === STATE_ROOT && othersUp)) out.push(`mount ${m}`);
  return out.filter((x) => !ignore(x));
}

/** Waits (bounded) for the lab to leave nothing: the kernel removes the veths of an unmounted
 *  netns in the background. Returns what is still there after settleMs. */
export async function settleLeftovers(lab: string, settleMs = 3000, o: { ignoreLinks?: string[] } = {}): Promise<string[]> {
  const deadline = Date.now() + settleMs;
  let left = labLeftovers(lab, o);
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(50);
    left = labLeftovers(lab, o);
  }
  return left;
}

/** netlab objects on this machine that belong to none of `mine` (another test file, a developer's
 *  lab). `netlab cleanup` removes everything carrying netlab's markers, so tests run it only
 *  when this is empty. */
export function foreignNetlabObjects(mine: Set<string>): string[] {
  const isMine = (lab: string | null) => lab !== null && mine.has(lab);
  const out: string[] = [];
  for (const n of netnsList()) {
    if (!n.startsWith('netlab.')) continue;
    const m = /^netlab\.([a-z0-9-]+)[.+]/.exec(n);
    if (!isMine(m ? m[1] : null)) out.push(`netns ${n}`);
  }
  const myPrefixes = [...mine].map((l) => `nl${labId(l)}`);
  const myGroups = new Set([...mine].map((l) => String(labGroup(l))));
  for (const l of links(null, false)) {
    if (l.ifname.startsWith('nl') && !myPrefixes.some((p) => l.ifname.startsWith(p)) && !myGroups.has(l.group ?? '')) out.push(`link ${l.ifname}`);
  }
  const myTables = new Set([...mine].map((l) => `ip ${nftTable(l)}`));
  for (const t of nftTableNames()) if (t.split(' ')[1]?.startsWith('netlab_') && !myTables.has(t)) out.push(`nft table ${t}`);
  try {
    for (const d of fs.readdirSync(STATE_ROOT, { withFileTypes: true })) if (d.isDirectory() && !mine.has(d.name)) out.push(`state ${d.name}`);
  } catch { /* no state root */ }
  return out;
}

// ---------------------------------------------------------------- the plan, checked in the kernel

function sysctlPath(key: string): string {
  return path.join('/proc/sys', key.includes('/') ? key : key.replace(/\./g, '/'));
}

function network(cidr: string): string {
  const [a, l] = cidr.split('/');
  const len = Number(l);
  const n = a.split('.').reduce((x, o) => (x << 8) + Number(o), 0) >>> 0;
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  const m = (n & mask) >>> 0;
  return `${[m >>> 24, (m >>> 16) & 255, (m >>> 8) & 255, m & 255].join('.')}/${len}`;
}

interface ExpectedLink { kind: string; mtu: number; master: string | null; alias: string; group: number; mac: string | null }

/** Compares the kernel with the plan, step by step, using iproute2's and nft's JSON output.
 *  Returns one line per difference (empty: the kernel holds exactly what the plan made, no
 *  more: no extra links in the lab's namespaces or group, no extra addresses or routes). */
export function planDiff(plan: Plan): string[] {
  const diff: string[] = [];
  const key = (ns: string | null) => ns ?? 'host';
  const want = new Map<string, Map<string, ExpectedLink>>(); // ns -> link name -> expected
  const wantUp = new Set<string>(); // `${ns}/${dev}`
  const wantAddrs = new Map<string, Set<string>>(); // `${ns}/${dev}` -> CIDRs
  const wantRoutes = new Map<string, PlanStep[]>();
  const namespaces = new Set<string | null>([null]);
  const put = (ns: string | null, name: string, e: ExpectedLink) => {
    if (!want.has(key(ns))) want.set(key(ns), new Map());
    want.get(key(ns))!.set(name, e);
  };
  for (const s of plan.steps) {
    switch (s.op) {
      case 'netns.add': namespaces.add(s.netns); want.set(s.netns, want.get(s.netns) ?? new Map()); break;
      case 'bridge.add': put(s.netns, s.name, { kind: 'bridge', mtu: s.mtu, master: null, alias: s.alias, group: s.group, mac: null }); break;
      case 'veth.add':
        put(s.netns, s.name, { kind: 'veth', mtu: s.mtu, master: s.master, alias: s.alias, group: s.group, mac: s.mac });
        put(s.peerNetns, s.peerName, { kind: 'veth', mtu: s.mtu, master: null, alias: s.peerAlias, group: s.group, mac: s.peerMac });
        break;
      case 'vxlan.add': put(s.netns, s.name, { kind: 'vxlan', mtu: s.mtu, master: s.master, alias: s.alias, group: s.group, mac: null }); break;
      case 'link.up': wantUp.add(`${key(s.netns)}/${s.dev}`); break;
      case 'addr.add': {
        const k = `${key(s.netns)}/${s.dev}`;
        if (!wantAddrs.has(k)) wantAddrs.set(k, new Set());
        wantAddrs.get(k)!.add(s.address);
        break;
      }
      case 'route.add': {
        const k = key(s.netns);
        wantRoutes.set(k, [...(wantRoutes.get(k) ?? []), s]);
        break;
      }
      case 'sysctl.set': {
        const file = sysctlPath(s.key);
        const got = s.netns === null
          ? fs.readFileSync(file, 'utf8').trim()
          : spawnSync('ip', ['netns', 'exec', s.netns, 'cat', file], { encoding: 'utf8', maxBuffer: 1 << 28 }).stdout.trim();
        if (got !== s.value) diff.push(`sysctl ${s.key} in ${key(s.netns)}: ${JSON.stringify(got)}, planned ${s.value}`);
        break;
      }
      case 'nft.apply': {
        if (!nftTableNames().includes(`${s.family} ${s.table}`)) { diff.push(`nft table ${s.family} ${s.table} missing`); break; }
        const planned = [...s.ruleset.matchAll(/^\s*chain (\S+) \{/gm)].map((m) => m[1]).sort();
        const got = nftChains(s.family, s.table);
        if (JSON.stringify(got) !== JSON.stringify(planned)) diff.push(`nft table ${s.table} chains ${got}, planned ${planned}`);
        // The rules too, each one: the kernel's table against the planned text loaded elsewhere.
        const have = nftTableJson(s.family, s.table);
        const want = nftRulesetJson(s.ruleset, s.family, s.table);
        for (const r of have) if (!want.includes(r)) diff.push(`nft table ${s.table}: unplanned ${r}`);
        for (const r of want) if (!have.includes(r)) diff.push(`nft table ${s.table}: missing ${r}`);
        if (have.length === want.length && have.some((r, i) => r !== want[i])) diff.push(`nft table ${s.table}: rules in another order than planned`);
        break;
      }
      case 'container.start': {
        // A live process in the node's own cgroup, in the node's network namespace.
        const procs = processesInCgroup((p) => p.endsWith(`/netlab/${plan.lab}/${s.node}`));
        const wantNet = s.netns === null ? fs.readlinkSync('/proc/self/ns/net') : `net:[${fs.statSync(`/run/netns/${s.netns}`, { throwIfNoEntry: false })?.ino}]`;
        const nets = procs.map((p) => { try { return fs.readlinkSync(`/proc/${p.pid}/ns/net`); } catch { return '?'; } });
        if (procs.length === 0) diff.push(`container ${s.node}: no process in its cgroup`);
        else if (!nets.every((n) => n === wantNet)) diff.push(`container ${s.node}: processes in ${nets.join(' ')}, planned ${key(s.netns)} (${wantNet})`);
        break;
      }
      default: break;
    }
  }

  // Namespaces: exactly the planned ones carry the lab's prefix, each one a mount.
  const lab = plan.lab;
  const listed = netnsList().filter((n) => isLabNetns(lab, n)).sort();
  const planned = [...namespaces].filter((n): n is string => n !== null).sort();
  if (JSON.stringify(listed) !== JSON.stringify(planned)) diff.push(`ip netns list: ${listed.join(' ')}; planned ${planned.join(' ')}`);
  const mounts = new Set(mountPoints());
  for (const n of planned) if (!mounts.has(`/run/netns/${n}`)) diff.push(`netns ${n} is not a mount under /run/netns`);

  for (const ns of namespaces) {
    if (ns !== null && !listed.includes(ns)) continue;
    const k = key(ns);
    const expected = want.get(k) ?? new Map<string, ExpectedLink>();
    const all = links(ns);
    // In the root namespace only the lab's links are ours to judge.
    const mine = ns === null
      ? all.filter((l) => l.ifname.startsWith(`nl${plan.id}`) || l.group === String(plan.group))
      : all.filter((l) => l.ifname !== 'lo');
    const gotNames = mine.map((l) => l.ifname).sort();
    const wantNames = [...expected.keys()].sort();
    if (JSON.stringify(gotNames) !== JSON.stringify(wantNames)) diff.push(`links in ${k}: ${gotNames.join(' ')}; planned ${wantNames.join(' ')}`);
    for (const l of all) {
      const e = expected.get(l.ifname);
      if (l.ifname === 'lo' && ns !== null) {
        if (l.flags.includes('UP') !== wantUp.has(`${k}/lo`)) diff.push(`lo in ${k}: up=${l.flags.includes('UP')}`);
        continue;
      }
      if (!e) continue;
      const master = l.master ?? null;
      const got = { kind: l.linkinfo?.info_kind ?? null, mtu: l.mtu, master, alias: l.ifalias ?? null, group: l.group, up: l.flags.includes('UP') };
      const exp = { kind: e.kind, mtu: e.mtu, master: e.master, alias: e.alias, group: String(e.group), up: wantUp.has(`${k}/${l.ifname}`) };
      if (JSON.stringify(got) !== JSON.stringify(exp)) diff.push(`link ${l.ifname} in ${k}: ${JSON.stringify(got)}; planned ${JSON.stringify(exp)}`);
      if (e.mac && l.address !== e.mac) diff.push(`link ${l.ifname} in ${k}: mac ${l.address}; planned ${e.mac}`);
    }
    // Addresses: exactly the planned IPv4 addresses on the lab's links (lo keeps 127.0.0.1/8).
    const mineNames = new Set(mine.map((l) => l.ifname));
    for (const a of ipj<IpAddr>(['addr', 'show'], ns)) {
      if (!mineNames.has(a.ifname)) continue;
      const got = a.addr_info.filter((i) => i.family === 'inet').map((i) => `${i.local}/${i.prefixlen}`).sort();
      const exp = [...(wantAddrs.get(`${k}/${a.ifname}`) ?? [])].sort();
      if (JSON.stringify(got) !== JSON.stringify(exp)) diff.push(`addresses of ${a.ifname} in ${k}: ${got.join(' ')}; planned ${exp.join(' ')}`);
      const v6 = a.addr_info.filter((i) => i.family === 'inet6');
      if (v6.length) diff.push(`IPv6 on ${a.ifname} in ${k}: ${v6.map((i) => i.local).join(' ')} (IPv6 is off unless a network asks)`);
    }
    // Routes: the planned static ones, plus one connected route per planned address, nothing else.
    const routes = ipj<IpRoute>(['route', 'show'], ns).filter((r) => ns !== null || (r.dev !== undefined && mineNames.has(r.dev)));
    const gotStatic = routes.filter((r) => r.protocol !== 'kernel')
      .map((r) => `${r.dst} via ${r.gateway ?? '-'} dev ${r.dev ?? '-'}`).sort();
    const expStatic = (wantRoutes.get(k) ?? []).map((s) => {
      const r = s as Extract<PlanStep, { op: 'route.add' }>;
      // A route planned without dev goes out where the kernel finds its next hop: read it back.
      const dev = r.dev ?? routes.find((x) => x.dst === (r.dst === '0.0.0.0/0' ? 'default' : r.dst) && x.gateway === (r.via ?? undefined))?.dev ?? '?';
      return `${r.dst === '0.0.0.0/0' ? 'default' : r.dst} via ${r.via ?? '-'} dev ${dev}`;
    }).sort();
    if (JSON.stringify(gotStatic) !== JSON.stringify(expStatic)) diff.push(`static routes in ${k}: ${gotStatic.join('; ')}; planned ${expStatic.join('; ')}`);
    const gotKernel = routes.filter((r) => r.protocol === 'kernel').map((r) => `${r.dst} dev ${r.dev}`).sort();
    const expKernel: string[] = [];
    for (const [kd, cidrs] of wantAddrs) {
      const [n, dev] = [kd.slice(0, kd.lastIndexOf('/')), kd.slice(kd.lastIndexOf('/') + 1)];
      if (n !== k) continue;
      for (const c of cidrs) if (!c.endsWith('/32')) expKernel.push(`${network(c)} dev ${dev}`);
    }
    expKernel.sort();
    if (JSON.stringify(gotKernel) !== JSON.stringify(expKernel)) diff.push(`connected routes in ${k}: ${gotKernel.join('; ')}; expected ${expKernel.join('; ')}`);
  }
  return diff;
}

// ---------------------------------------------------------------- traffic (only inside our labs)

/** `ip netns exec NS ping -c1 -W1 ADDR`. expect true: up to `tries` attempts (a new bridge port
 *  or a link just set up may need a moment); expect false: a single attempt must fail. */
export function ping(ns: string, addr: string, expectReach: boolean, tries = 5): boolean {
  const n = expectReach ? tries : 1;
  for (let i = 0; i < n; i++) {
    const r = spawnSync('ip', ['netns', 'exec', ns, 'ping', '-n', '-c1', '-W1', addr], { encoding: 'utf8', maxBuffer: 1 << 28, timeout: 5000 });
    if (r.error) throw new Error(`cannot run ping: ${r.error.message} (apt-get install iputils-ping)`);
    if (r.status === 0) return true;
  }
  return false;
}

/** HTTP GET from the test process (the host), bounded; the body or null. */
export async function httpGet(url: string, timeoutMs = 1000): Promise<string | null> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    return res.ok ? await res.text() : null;
  } catch {
    return null;
  }
}

/** Processes a test starts inside a node (`ip netns exec NS CMD...`, no shell); killAll ends them. */
export class Children {
  private readonly procs = new Set<ChildProcess>();

  start(ns: string, argv: string[]): ChildProcess {
    const p = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: 'ignore' });
    this.procs.add(p);
    p.once('exit', () => this.procs.delete(p));
    return p;
  }

  async killAll(): Promise<void> {
    const waits = [...this.procs].map((p) => {
      const w = waitExit(p);
      p.kill('SIGKILL');
      return w;
    });
    await Promise.all(waits);
  }
}

// ---------------------------------------------------------------- picking free resources

/** Second octets X of 10.X.0.0/16 that nothing in the root namespace routes or addresses, so
 *  a test lab's gateway never shadows a developer's network. */
export function freeOctets(count: number, rand: () => number): number[] {
  const used = new Set<number>();
  for (const r of ipj<IpRoute>(['-4', 'route', 'show', 'table', 'all'])) {
    const m = /^10\.(\d+)\./.exec(r.dst);
    if (m) used.add(Number(m[1]));
  }
  for (const a of ipj<IpAddr>(['-4', 'addr', 'show'])) {
    for (const i of a.addr_info) { const m = /^10\.(\d+)\./.exec(i.local); if (m) used.add(Number(m[1])); }
  }
  const out: number[] = [];
  for (let guard = 0; out.length < count && guard < 10_000; guard++) {
    const x = 150 + Math.floor(rand() * 100); // 10.150-249: away from the examples' 10.0-10.99
    if (!used.has(x) && !out.includes(x)) out.push(x);
  }
  if (out.length < count) throw new Error('no free 10.X.0.0/16 left for test labs');
  return out;
}

/** A TCP port nobody listens on (checked on 0.0.0.0) in 20000-29999. */
export async function freePort(rand: () => number, avoid: number[] = []): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = 20000 + Math.floor(rand() * 10000);
    if (avoid.includes(port)) continue;
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '0.0.0.0', () => s.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error('no free TCP port found');
}

// ---------------------------------------------------------------- misc

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** mulberry32: a small seeded PRNG, so a failing crash trial can be replayed with its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------- last resort

/** Removes what is left of one lab without netlab's code (for when the CLI itself is broken):
 *  its container processes, root links (its IFLA_GROUP and name prefix), namespaces, nft table,
 *  cgroups and state dir, each found by the lab's own markers only. Returns what it did. */
export async function forceRemoveLab(lab: string): Promise<string[]> {
  const did: string[] = [];
  const procs = () => [...processesInCgroup(`/netlab/${lab}/`).map((p) => p.pid), ...processesWithArg(`${STATE_ROOT}/${lab}/`).map((p) => p.pid)];
  for (const pid of procs()) { try { process.kill(pid, 'SIGKILL'); did.push(`killed ${pid}`); } catch { /* gone */ } }
  for (const deadline = Date.now() + 3000; procs().length > 0 && Date.now() < deadline;) await sleep(20);
  const run = (args: string[], cmd = 'ip') => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
  if (run(['link', 'del', 'group', String(labGroup(lab))])) did.push(`ip link del group ${labGroup(lab)}`);
  for (const l of links(null, false)) if (l.ifname.startsWith(`nl${labId(lab)}`) && run(['link', 'del', 'dev', l.ifname])) did.push(`ip link del ${l.ifname}`);
  let files: string[] = [];
  try { files = fs.readdirSync('/run/netns'); } catch { /* none */ }
  for (const n of files) if (isLabNetns(lab, n) && run(['netns', 'del', n])) did.push(`ip netns del ${n}`);
  if (nftTableNames().includes(`ip ${nftTable(lab)}`) && run(['delete', 'table', 'ip', nftTable(lab)], 'nft')) did.push(`nft delete table ip ${nftTable(lab)}`);
  for (const d of labCgroupDirs(lab)) {
    const subs = fs.readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => path.join(d, e.name));
    for (const x of [...subs, d]) { try { fs.rmdirSync(x); did.push(`rmdir ${x}`); } catch { /* busy or gone */ } }
  }
  const dir = path.join(STATE_ROOT, lab);
  if (fs.existsSync(dir)) { fs.rmSync(dir, { recursive: true, force: true }); did.push(`rm -r ${dir}`); }
  return did;
}

/** The tests run bin/netlab.js: refuse to run against a dist/ older than the sources (a stale
 *  build would test yesterday's code). */
export function assertBuildFresh(): void {
  if (!fs.existsSync(path.join(REPO, 'dist/cli/main.js'))) throw new Error('dist/ is missing: run `npm run build` first (the tests run bin/netlab.js)');
  const native: Record<string, string> = { 'shim.c': 'dist/netlab-shim', 'pause.c': 'dist/netlab-pause' };
  for (const dir of ['controller', 'cli', 'topology', 'runtime', 'checks']) {
    for (const f of fs.readdirSync(path.join(REPO, dir))) {
      const out = f.endsWith('.ts') ? path.join(REPO, 'dist', dir, f.replace(/\.ts$/, '.js')) : native[f] ? path.join(REPO, native[f]) : null;
      if (out && (!fs.existsSync(out) || fs.statSync(out).mtimeMs < fs.statSync(path.join(REPO, dir, f)).mtimeMs)) {
        throw new Error(`${path.relative(REPO, out)} is older than ${dir}/${f}: run \`npm run build\` first (the tests run bin/netlab.js)`);
      }
    }
  }
}

/** The resolved model of a topology file the test wrote (it must be valid). */
export function loadModel(file: string): Lab {
  const r = loadTopologyFile(file);
  if (!r.lab) throw new Error(`${file} is invalid: ${JSON.stringify(r.diagnostics)}`);
  return r.lab;
}

/** The model's address of NODE:IFACE. */
export function addrOf(lab: Lab, node: string, iface = 'eth0'): string {
  const a = lab.nodes.find((n) => n.name === node)?.interfaces.find((f) => f.name === iface)?.ipv4?.address;
  if (!a) throw new Error(`test bug: ${node}:${iface} has no address in ${lab.name}`);
  return a;
}

/** Takes a lab down (if anything of it is there) and returns what is still left after that. */
/** With `since` (a machineSnapshot() from before the lab came up), whatever is new on the
 *  machine since then counts too, found without netlab's naming functions. */
export async function downAndCheck(lab: string, o: { since?: MachineSnapshot; ignore?: (item: string) => boolean } = {}): Promise<string[]> {
  if (labLeftovers(lab).length > 0) {
    const r = netlab(['down', lab]);
    if (r.status !== 0) return [`netlab down ${lab} failed (${r.status}): ${r.stderr.trim()}`];
  }
  const left = await settleLeftovers(lab);
  if (!o.since) return left;
  const deadline = Date.now() + 3000;
  let fresh = newSinceSnapshot(o.since, lab, o.ignore);
  while (fresh.length > 0 && Date.now() < deadline) {
    await sleep(50);
    fresh = newSinceSnapshot(o.since, lab, o.ignore);
  }
  return [...left, ...fresh.map((x) => `${x} (new since the snapshot)`)];
}

// ---------------------------------------------------------------- free address space

interface Overlap { net: number; mask: number }
function cidr(c: string): Overlap {
  const [a, l] = c.includes('/') ? c.split('/') : [c, '32'];
  const len = Number(l);
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  const n = a.split('.').reduce((x, o) => x * 256 + Number(o), 0);
  return { net: (n & mask) >>> 0, mask };
}
const overlaps = (a: Overlap, b: Overlap) => {
  const m = (a.mask & b.mask) >>> 0;
  return ((a.net & m) >>> 0) === ((b.net & m) >>> 0);
};

/** A random 10.X.Y.0/24 (X in 100-199) that no route or address on the host overlaps. */
export function freeSubnet(): string {
  const used: Overlap[] = [];
  const routes = JSON.parse(execFileSync('ip', ['-j', '-4', 'route', 'show', 'table', 'all'], { encoding: 'utf8', maxBuffer: 1 << 28 }) || '[]') as { dst: string }[];
  for (const r of routes) if (r.dst !== 'default' && /^\d/.test(r.dst)) used.push(cidr(r.dst));
  const addrs = JSON.parse(execFileSync('ip', ['-j', '-4', 'addr', 'show'], { encoding: 'utf8', maxBuffer: 1 << 28 }) || '[]') as { addr_info: { local: string; prefixlen: number }[] }[];
  for (const a of addrs) for (const i of a.addr_info) used.push(cidr(`${i.local}/${i.prefixlen}`));
  for (let i = 0; i < 1000; i++) {
    const c = `10.${100 + randomInt(100)}.${randomInt(256)}.0/24`;
    const o = cidr(c);
    // Only specific routes count: a host route covering all of 10/8 (or default) is not a user.
    if (!used.some((u) => u.mask >= 0xffff0000 && overlaps(u, o))) return c;
  }
  throw new Error('no free 10.X.Y.0/24 found');
}

/** A test's labs taken down one by one (the afterEach of most integration files): what each
 *  left behind, as "LAB: object" lines (empty when nothing), and the set emptied. */
export async function downEach(labs: Set<string>): Promise<string[]> {
  const problems: string[] = [];
  for (const lab of labs) {
    const left = await downAndCheck(lab);
    if (left.length) problems.push(`${lab}: ${left.join(', ')}`);
  }
  labs.clear();
  return problems;
}
