// What a lab must not take from the machine or from the other labs on it, checked by `up`
// before anything is built: subnets present on the host (a bridge with a host-side gateway)
// must not overlap another lab's such subnet nor the machine's own routes and addresses, and
// published host ports must not be another lab's nor held by a listening socket on the
// machine. Internal networks (no host-side address), links and simulated hosts' networks live
// only inside namespaces: they conflict with nothing outside their lab, and are only avoided by
// automatic allocation. Pure functions over the other labs' states and the machine's tables,
// plus thin readers (/proc/net/route, os.networkInterfaces(), /proc/net/{tcp,udp}{,6}, the state
// files) and the machine-wide claim lock that makes "check, then record the state" atomic
// between two `up`s (readers need no root; `up` holds the lock from resolving the file until
// its state is written, so two labs allocating at the same moment do not take the same subnet).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Lab } from '../topology/types.js';
import { machineProblem, type AvoidSubnet, type MachineNet, type ResolveEnv } from '../topology/addrspace.js';
import { canonicalCidr, cidrsOverlap } from '../topology/ipam.js';
import { labId } from '../topology/names.js';
import { parseCpuList } from '../topology/fields.js';
import { nodesBuilt } from './plan.js';
import { listStateLabs, readState, STATE_ROOT, type LabStatus } from './state.js';
import { NetlabError } from '../topology/errors.js';

/** A conflict with another lab or with the machine: shown as one line, exit 1. */
export class ConflictError extends NetlabError {}

/** A lab that has a state on this machine (being built, up, failing or going down). */
export interface OtherLab {
  name: string;
  status: LabStatus;
  /** `up --as HOST`: only that host's part is here. */
  as: string | null;
  model: Lab;
}

/** A socket of the machine's namespace that owns a port: TCP in LISTEN, UDP bound and not
 *  connected. `address` is dotted IPv4, '::' (the IPv6 wildcard, which also takes IPv4 unless
 *  the socket is v6-only: counted as taking it) or 'v6' (a specific IPv6 address: no IPv4). */
export interface Listener {
  protocol: 'tcp' | 'udp';
  address: string;
  port: number;
  inode: number;
}

/** Interface names netlab makes in the machine's namespace (topology/names.ts ifName). */
const NETLAB_IFNAME = /^nl([0-9a-f]{6})[bvxu][0-9a-f]{6}$/;

/** The lab id in a netlab interface name, or null for any other interface. */
export function netlabIfLabId(dev: string): string | null {
  return NETLAB_IFNAME.exec(dev)?.[1] ?? null;
}

// ---------------------------------------------------------------- what a lab takes

export interface Footprint {
  /** Subnets present on this machine: bridge networks with a host-side gateway. */
  hostSubnets: { subnet: string; network: string }[];
  /** Every subnet of the lab (networks, links, the simulated underlay). */
  subnets: string[];
  ports: { node: string; hostIp: string; hostPort: number; protocol: 'tcp' | 'udp' }[];
}

/** What a lab (or, with `as`, one host's part of it) takes on this machine. */
export function footprint(lab: Lab, as: string | null): Footprint {
  // With `as`, only nodes placed on hosts are built, and bridges on hosts have no gateway.
  const hostSubnets = as !== null ? [] : lab.networks
    .filter((n) => n.driver === 'bridge' && n.gateway !== null && n.subnet !== null)
    .map((n) => ({ subnet: n.subnet!, network: n.name }));
  const subnets = lab.networks.flatMap((n) => (n.subnet ? [n.subnet] : []));
  for (const l of lab.links) if (l.a.ipv4) subnets.push(canonicalCidr(`${l.a.ipv4.address}/${l.a.ipv4.prefixLen}`)!);
  if (lab.underlay && as === null) subnets.push(lab.underlay.subnet);
  const ports = nodesBuilt(lab, as ?? undefined).flatMap((n) => n.ports.map((p) => ({ node: n.name, hostIp: p.hostIp, hostPort: p.hostPort, protocol: p.protocol })));
  return { hostSubnets, subnets, ports };
}

/** Subnets automatic allocation avoids for a lab brought up next to these. */
export function avoidFromLabs(others: OtherLab[]): AvoidSubnet[] {
  return others.flatMap((o) => footprint(o.model, o.as).subnets.map((subnet) => ({ subnet, lab: o.name, owner: `lab ${o.name}` })));
}

function samePort(a: { hostIp: string; hostPort: number; protocol: string }, b: { hostIp: string; hostPort: number; protocol: string }): boolean {
  return a.protocol === b.protocol && a.hostPort === b.hostPort && (a.hostIp === b.hostIp || a.hostIp === '0.0.0.0' || b.hostIp === '0.0.0.0');
}

/** Whether a listener takes the IPv4 port a lab would publish on hostIp (0.0.0.0: every address). */
function listenerTakes(l: Listener, p: { hostIp: string; hostPort: number; protocol: string }): boolean {
  if (l.protocol !== p.protocol || l.port !== p.hostPort || l.address === 'v6') return false;
  return l.address === '0.0.0.0' || l.address === '::' || p.hostIp === '0.0.0.0' || l.address === p.hostIp;
}

const publishedText = (p: { hostIp: string; hostPort: number; protocol: string }) => `${p.hostIp === '0.0.0.0' ? '' : `${p.hostIp}:`}${p.hostPort}/${p.protocol}`;

/** Every conflict of `lab` (one host's part with `as`) with the other labs and the machine, one
 *  line each, naming the subnet or port and who has it. Empty: the lab can be built here. */
export function findConflicts(
  lab: Lab, as: string | null, others: OtherLab[], machine: MachineNet, listeners: Listener[],
  ownerOf: (inode: number) => string | null = () => null,
): string[] {
  const out: string[] = [];
  const mine = footprint(lab, as);
  for (const o of others) {
    if (o.name === lab.name) continue;
    const where = `lab ${o.name} (${o.status}${o.as ? ` as host ${o.as}` : ''})`;
    // Cleanup and down find a lab's objects by its id and link group: two labs sharing one would
    // remove each other's.
    if (o.model.id === lab.id || o.model.group === lab.group) {
      out.push(`lab ${lab.name} has the same kernel ${o.model.id === lab.id ? `id ${lab.id}` : `link group ${lab.group}`} as ${where} (a hash collision of the names); rename one of them`);
    }
    const theirs = footprint(o.model, o.as);
    for (const s of mine.hostSubnets) {
      const t = theirs.hostSubnets.find((x) => cidrsOverlap(x.subnet, s.subnet));
      if (t) out.push(`subnet ${s.subnet} of network ${s.network} overlaps subnet ${t.subnet} of network ${t.network} of ${where}, which is on this machine too; give one of them another subnet (or leave it out to have one allocated)`);
    }
    for (const p of mine.ports) {
      const t = theirs.ports.find((x) => samePort(x, p));
      if (t) out.push(`host port ${publishedText(p)} of node ${p.node} is already published by node ${t.node} of ${where}; choose another host port`);
    }
  }
  for (const s of mine.hostSubnets) {
    const why = machineProblem(s.subnet, machine);
    if (why) out.push(`subnet of network ${s.network} ${why}`);
  }
  for (const p of mine.ports) {
    const l = listeners.find((x) => listenerTakes(x, p));
    if (!l) continue;
    const who = ownerOf(l.inode);
    const at = l.address === 'v6' ? '' : l.address === '::' ? '[::]:' : `${l.address}:`;
    out.push(`host port ${publishedText(p)} of node ${p.node} is in use on this machine: ${who ?? 'a process'} listens on ${at}${l.port}/${l.protocol}; stop it or choose another host port`);
  }
  return out;
}

// ---------------------------------------------------------------- parsing the machine's tables

function leIpv4(hex: string): string {
  const v = parseInt(hex, 16) >>> 0;
  return [v & 255, (v >>> 8) & 255, (v >>> 16) & 255, v >>> 24].join('.');
}

function maskLen(hex: string): number {
  let v = parseInt(hex, 16) >>> 0;
  let n = 0;
  while (v) { n += v & 1; v >>>= 1; }
  return n;
}

/** Routes of /proc/net/route (the main table), the default route left out. */
export function parseProcRoute(text: string): { dst: string; dev: string }[] {
  const out: { dst: string; dev: string }[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const [dev, dst, , flags, , , , mask] = f;
    const RTF_UP = 1;
    if (!(parseInt(flags, 16) & RTF_UP)) continue;
    const len = maskLen(mask);
    if (len === 0) continue;
    out.push({ dst: `${leIpv4(dst)}/${len}`, dev });
  }
  return out;
}

/** IPv4 addresses of os.networkInterfaces(), loopback left out (no lab subnet can be in 127/8). */
export function interfaceAddresses(ifaces: NodeJS.Dict<os.NetworkInterfaceInfo[]>): MachineNet['addresses'] {
  const out: MachineNet['addresses'] = [];
  for (const [dev, list] of Object.entries(ifaces)) {
    for (const a of list ?? []) {
      if (a.family !== 'IPv4' || a.internal) continue;
      const len = a.cidr ? Number(a.cidr.split('/')[1]) : 32;
      out.push({ address: a.address, prefixLen: len, dev });
    }
  }
  return out;
}

/** The 16 bytes of an IPv6 address as /proc/net/tcp6 prints it (four host-order 32-bit words). */
function v6Address(hex: string): string {
  const bytes: number[] = [];
  for (let w = 0; w < 4; w++) {
    const v = parseInt(hex.slice(w * 8, w * 8 + 8), 16) >>> 0;
    bytes.push(v & 255, (v >>> 8) & 255, (v >>> 16) & 255, v >>> 24);
  }
  if (bytes.every((b) => b === 0)) return '::';
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return bytes.slice(12).join('.');
  return 'v6';
}

/** Sockets holding a port, from /proc/net/{tcp,udp}{,6}: TCP in LISTEN (state 0A), UDP
 *  unconnected (state 07 with no remote port). */
export function parseProcNet(text: string, protocol: 'tcp' | 'udp', v6: boolean): Listener[] {
  const out: Listener[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const [, local, remote, st] = f;
    const inode = Number(f[9]);
    if (protocol === 'tcp' ? st !== '0A' : st !== '07' || !/:0000$/.test(remote)) continue;
    const [addrHex, portHex] = local.split(':');
    out.push({ protocol, address: v6 ? v6Address(addrHex) : leIpv4(addrHex), port: parseInt(portHex, 16), inode });
  }
  return out;
}

// ---------------------------------------------------------------- readers (no root needed)

function readText(file: string): string {
  try { return fs.readFileSync(file, 'utf8'); } catch { return ''; }
}

/** The machine's own routes and addresses in this namespace. netlab's interfaces are left out
 *  unless `keepNetlab` says otherwise: running labs are judged from their states, and a lab
 *  must not conflict with its own bridges. */
export function readMachineNet(keepNetlab: (dev: string, labIdOfDev: string) => boolean = () => false): MachineNet {
  const keep = (dev: string) => { const id = netlabIfLabId(dev); return id === null || keepNetlab(dev, id); };
  return {
    routes: parseProcRoute(readText('/proc/net/route')).filter((r) => keep(r.dev)),
    addresses: interfaceAddresses(os.networkInterfaces()).filter((a) => keep(a.dev)),
  };
}

export function readListeners(): Listener[] {
  return [
    ...parseProcNet(readText('/proc/net/tcp'), 'tcp', false), ...parseProcNet(readText('/proc/net/tcp6'), 'tcp', true),
    ...parseProcNet(readText('/proc/net/udp'), 'udp', false), ...parseProcNet(readText('/proc/net/udp6'), 'udp', true),
  ];
}

/** "pid N (comm)" of a process holding the socket, by its fds (only asked on a conflict). */
export function socketOwner(inode: number): string | null {
  const target = `socket:[${inode}]`;
  let pids: string[];
  try { pids = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)); } catch { return null; }
  for (const pid of pids) {
    let fds: string[];
    try { fds = fs.readdirSync(`/proc/${pid}/fd`); } catch { continue; }
    for (const fd of fds) {
      try {
        if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === target) return `pid ${pid} (${readText(`/proc/${pid}/comm`).trim() || '?'})`;
      } catch { /* closed meanwhile */ }
    }
  }
  return null;
}

/** The labs with a state here, `self` left out. */
export function readOtherLabs(self: string): OtherLab[] {
  const out: OtherLab[] = [];
  for (const name of listStateLabs()) {
    if (name === self) continue;
    const st = readState(name);
    // A state without a model this version can read (another netlab's) is judged by nothing
    // rather than crashing every later up.
    const m = st?.model as Partial<Lab> | undefined;
    if (st && Array.isArray(m?.networks) && Array.isArray(m?.nodes) && Array.isArray(m?.links)) out.push({ name, status: st.status, as: st.as ?? null, model: st.model });
  }
  return out;
}

/** What resolving a file for `up` takes from this machine: its routes (with netlab interfaces
 *  no state accounts for: a lab's leftovers still hold their subnet) and the running labs'
 *  subnets. Read under the claim lock (holdClaims) so nobody allocates in between. */
export function envForUp(as?: string): ResolveEnv {
  const others = readOtherLabs('');
  const known = new Set(others.map((o) => labId(o.name)));
  const env: ResolveEnv = { machine: readMachineNet((_dev, id) => !known.has(id)), avoid: avoidFromLabs(others) };
  const online = onlineCpus();
  if (online) env.cpus = { online, ...(as !== undefined ? { as } : {}) };
  return env;
}

/** The machine's online CPUs (/sys/devices/system/cpu/online), null when it cannot be read. */
export function onlineCpus(text = readText('/sys/devices/system/cpu/online')): number[] | null {
  const cpus = text.trim() ? parseCpuList(text) : null;
  return Array.isArray(cpus) ? cpus : null;
}

/** Offline (validate, plan, graph): only the machine's own routes and addresses. */
export function envOffline(): ResolveEnv {
  return { machine: readMachineNet() };
}

// ---------------------------------------------------------------- the claim lock

const CLAIM_LOCK = `${STATE_ROOT}.claims.lock`;
const CLAIM_WAIT_MS = 20_000;
let held = false;

/** Start time of a process (field 22 of /proc/PID/stat), so a reused pid is not taken for the holder. */
function startTime(pid: number): string | null {
  const stat = readText(`/proc/${pid}/stat`);
  if (!stat) return null;
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
}

/** Takes the machine-wide claim lock (waits while another `up` is between resolving its file
 *  and recording its state, which takes milliseconds). Re-entrant for this process. */
export function holdClaims(): void {
  if (held) return;
  const me = `${process.pid} ${startTime(process.pid)}`;
  const deadline = Date.now() + CLAIM_WAIT_MS;
  fs.mkdirSync(path.dirname(CLAIM_LOCK), { recursive: true });
  for (;;) {
    try {
      fs.writeFileSync(CLAIM_LOCK, me, { flag: 'wx', mode: 0o644 });
      held = true;
      process.once('exit', releaseClaims);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const [pid, start] = readText(CLAIM_LOCK).split(' ');
    if (pid && Number(pid) > 0 && startTime(Number(pid)) !== start) {
      // Its holder is gone (killed between resolving and recording): take it over.
      try { if (readText(CLAIM_LOCK).startsWith(`${pid} `)) fs.unlinkSync(CLAIM_LOCK); } catch { /* raced */ }
      continue;
    }
    if (Date.now() > deadline) throw new ConflictError(`another netlab up (pid ${pid || '?'}) has held ${CLAIM_LOCK} for ${CLAIM_WAIT_MS / 1000} s; try again`);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  }
}

/** Releases the claim lock if this process holds it (idempotent). */
export function releaseClaims(): void {
  if (!held) return;
  held = false;
  process.off('exit', releaseClaims);
  try {
    if (readText(CLAIM_LOCK).startsWith(`${process.pid} `)) fs.unlinkSync(CLAIM_LOCK);
  } catch { /* gone already */ }
}

/** `up`'s check before anything is built: holds the claim lock (kept until the caller has
 *  written the lab's state and calls the returned release) and refuses the first conflict with
 *  the other labs or the machine. */
export function claimLab(lab: Lab, as: string | null): () => void {
  holdClaims();
  try {
    const others = readOtherLabs(lab.name);
    const known = new Set([...others.map((o) => labId(o.name)), lab.id]);
    const problems = findConflicts(lab, as, others, readMachineNet((_dev, id) => !known.has(id)), readListeners(), socketOwner);
    if (problems.length > 0) {
      throw new ConflictError(`${problems[0]}${problems.length > 1 ? ` (and ${problems.length - 1} more conflict${problems.length > 2 ? 's' : ''})` : ''}; nothing was built`);
    }
  } catch (e) {
    releaseClaims();
    throw e;
  }
  return releaseClaims;
}
