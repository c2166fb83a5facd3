// The iproute2 floor: the same star N (namespaces, a bridge with the gateway address, one veth
// per node with its peer made directly in the node's namespace, addresses, links up, a default
// route, no IPv6 chatter) built by `ip -batch` files, and torn down the same way.
//
// iproute2 6.1's batch mode has no per-line `-n NS` ("Object "-n" is unknown"), so the work
// inside each namespace needs one `ip` process per namespace. Three honest ways are measured and
// the fastest is reported as the floor:
//   seq   one root batch, then `ip -n NS -batch FILE` per namespace, from one shell script
//   exec  one root batch whose last lines are `netns exec NS ip -batch FILE` (ip forks them)
//   par2  the root batch, then the per-namespace batches in two parallel lanes (2 cores)
// IPv6 is kept quiet with `addrgenmode none` (no link-local address, so no DAD/RS/MLD), the
// batch equivalent of netlab's disable_ipv6 sysctls (iproute2 cannot write sysctls, and a
// `sysctl` process per namespace would make the floor slower, not a floor).
// Teardown: `link del group G` (every host-side veth and the bridge in one message; the peers go
// with them) then `netns del` per namespace, in one batch, as netlab's down does; and, measured
// too, `link del BRIDGE` + `netns del` only (veths then die with their namespace, later).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { addressing, FLOOR_BASE } from './star.js';
import { ipLinkNames, sleep, timeCmd, type CmdResult } from './util.js';

export type FloorBuild = 'seq' | 'exec' | 'par2';
export type FloorTeardown = 'group' | 'netns';
export const FLOOR_BUILDS: FloorBuild[] = ['seq', 'exec', 'par2'];

export interface FloorSpec {
  n: number;
  dir: string;
  /** Namespace names. */
  netns: string[];
  bridge: string;
  /** Prefix of every root-namespace link name (bridge and host-side veths). */
  linkPrefix: string;
  group: number;
}

/** Names from the run id: netns `bfl<id>-<i>`, links `bf<6 hex>...` (no '-', 15 bytes max). */
export function floorSpec(runId: string, n: number, dir: string): FloorSpec {
  const short = runId.slice(0, 6);
  const group = (parseInt(createHash('sha256').update(`floor:${runId}:${n}`).digest('hex').slice(0, 8), 16) & 0x7ffffff0) || 16;
  return {
    n, dir,
    netns: Array.from({ length: n }, (_, i) => `bfl${runId}-${n}-${i + 1}`),
    bridge: `bf${short}br`,
    linkPrefix: `bf${short}`,
    group,
  };
}

function hostVeth(s: FloorSpec, i: number): string {
  return `${s.linkPrefix}v${i + 1}`;
}

/** Writes the batch files and scripts of every variant; returns their paths. */
export function writeFloorFiles(s: FloorSpec): Record<string, string> {
  fs.mkdirSync(s.dir, { recursive: true });
  const a = addressing(FLOOR_BASE, s.n);
  const root: string[] = [];
  for (const ns of s.netns) root.push(`netns add ${ns}`);
  root.push(`link add ${s.bridge} group ${s.group} type bridge`);
  root.push(`link set dev ${s.bridge} addrgenmode none`);
  root.push(`addr add ${a.gateway}/${a.prefix} dev ${s.bridge}`);
  root.push(`link set dev ${s.bridge} up`);
  s.netns.forEach((ns, i) => {
    const v = hostVeth(s, i);
    root.push(`link add ${v} group ${s.group} master ${s.bridge} type veth peer name eth0 netns ${ns}`);
    root.push(`link set dev ${v} addrgenmode none up`);
  });
  const files: Record<string, string> = {};
  files.root = path.join(s.dir, 'root.batch');
  fs.writeFileSync(files.root, root.join('\n') + '\n');
  const nsFiles: string[] = [];
  s.netns.forEach((ns, i) => {
    const f = path.join(s.dir, `ns${i + 1}.batch`);
    fs.writeFileSync(f, [
      'link set dev lo up',
      'link set dev eth0 addrgenmode none',
      `addr add ${a.node(i)}/${a.prefix} dev eth0`,
      'link set dev eth0 up',
      `route add default via ${a.gateway} dev eth0`,
    ].join('\n') + '\n');
    nsFiles.push(f);
  });
  // seq: one shell, one ip per namespace.
  files.seq = path.join(s.dir, 'seq.sh');
  fs.writeFileSync(files.seq, ['set -e', `ip -batch ${files.root}`, ...s.netns.map((ns, i) => `ip -n ${ns} -batch ${nsFiles[i]}`)].join('\n') + '\n');
  // exec: everything from one `ip -batch`, which forks `ip` inside each namespace.
  files.exec = path.join(s.dir, 'exec.batch');
  fs.writeFileSync(files.exec, root.join('\n') + '\n' + s.netns.map((ns, i) => `netns exec ${ns} ip -batch ${nsFiles[i]}`).join('\n') + '\n');
  // par2: root batch, then two lanes.
  const lanes: string[][] = [[], []];
  s.netns.forEach((ns, i) => lanes[i % 2].push(`ip -n ${ns} -batch ${nsFiles[i]}`));
  files.par2 = path.join(s.dir, 'par2.sh');
  fs.writeFileSync(files.par2, [
    'set -e', `ip -batch ${files.root}`,
    `( set -e; ${lanes[0].join('; ') || 'true'} ) & a=$!`,
    `( set -e; ${lanes[1].join('; ') || 'true'} ) & b=$!`,
    'wait $a; wait $b',
  ].join('\n') + '\n');
  files.tdGroup = path.join(s.dir, 'teardown-group.batch');
  fs.writeFileSync(files.tdGroup, [`link del group ${s.group}`, ...s.netns.map((ns) => `netns del ${ns}`)].join('\n') + '\n');
  files.tdNetns = path.join(s.dir, 'teardown-netns.batch');
  fs.writeFileSync(files.tdNetns, [`link del dev ${s.bridge}`, ...s.netns.map((ns) => `netns del ${ns}`)].join('\n') + '\n');
  return files;
}

function check(r: CmdResult, what: string): CmdResult {
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code ?? r.signal}): ${r.stderr.trim().split('\n').slice(0, 4).join(' | ')}`);
  return r;
}

export async function floorBuild(files: Record<string, string>, v: FloorBuild): Promise<number> {
  const r = v === 'exec' ? await timeCmd('ip', ['-batch', files.exec]) : await timeCmd('sh', [files[v]]);
  return check(r, `floor build (${v})`).ms;
}

export async function floorTeardown(files: Record<string, string>, v: FloorTeardown): Promise<number> {
  return check(await timeCmd('ip', ['-batch', v === 'group' ? files.tdGroup : files.tdNetns]), `floor teardown (${v})`).ms;
}

/** Root-namespace links of the floor still present. */
export function floorLinks(s: FloorSpec): string[] {
  return ipLinkNames().filter((n) => n.startsWith(s.linkPrefix));
}

export function floorNetns(s: FloorSpec): string[] {
  let all: string[] = [];
  try { all = fs.readdirSync('/run/netns'); } catch { /* none */ }
  const mine = new Set(s.netns);
  return all.filter((n) => mine.has(n));
}

/** The build really made what it should: N+1 links in the group, N namespaces. */
export function floorVerify(s: FloorSpec): void {
  const links = floorLinks(s).length;
  const ns = floorNetns(s).length;
  if (links !== s.n + 1 || ns !== s.n) throw new Error(`floor build incomplete: ${links} links (want ${s.n + 1}), ${ns} netns (want ${s.n})`);
}

/** Until the floor's links and namespaces are gone (the kernel removes veths of a deleted
 *  namespace in the background); returns the wait in ms. */
export async function floorSettle(s: FloorSpec, capMs = 15_000): Promise<number> {
  const t0 = performance.now();
  while (floorLinks(s).length > 0 || floorNetns(s).length > 0) {
    if (performance.now() - t0 > capMs) throw new Error(`floor objects still there after ${capMs} ms`);
    await sleep(5);
  }
  return performance.now() - t0;
}

/** Best-effort removal of anything of the floor (used in `finally`). */
export async function floorCleanup(s: FloorSpec): Promise<void> {
  // Unconditional (an error only means "not there"): the group holds the bridge and host ends.
  await timeCmd('ip', ['link', 'del', 'group', String(s.group)]);
  for (const l of floorLinks(s)) await timeCmd('ip', ['link', 'del', l]);
  for (const ns of floorNetns(s)) await timeCmd('ip', ['netns', 'del', ns]);
}
