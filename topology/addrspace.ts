// The IPv4 space a lab may use: the ranges no lab subnet may touch (loopback, "this network",
// multicast, reserved/broadcast), the extra rule for subnets that are present on the machine
// itself (a bridge with a host-side gateway: no link-local, no overlap with the machine's own
// routes and addresses), and the subnets automatic allocation must stay clear of. Pure: the
// machine's routes and the other labs are read by controller/conflicts.ts and passed in.
import { cidrContains, cidrsOverlap, parseCidr } from './ipam.js';

/** The machine's own IPv4 network as seen from its namespace: routes of the main table (the
 *  default route left out: every subnet overlaps it) and interface addresses, each with its
 *  device. netlab's own interfaces are left out by the reader (other labs are judged from their
 *  state instead, and a lab must not conflict with itself). */
export interface MachineNet {
  routes: { dst: string; dev: string }[];
  addresses: { address: string; prefixLen: number; dev: string }[];
}

/** A subnet automatic allocation must avoid, and who uses it (shown when the pool runs out). */
export interface AvoidSubnet {
  subnet: string;
  /** The lab that uses it (its own entries are ignored when it is re-resolved), or null for the machine. */
  lab: string | null;
  owner: string;
}

/** Options of resolution that depend on the machine (none: the file is judged alone). */
export interface ResolveEnv {
  machine?: MachineNet;
  /** Subnets in use elsewhere (running labs): only automatic allocation avoids them. */
  avoid?: AvoidSubnet[];
  /** The machine's online CPUs (at `up`): a node's resources.cpuset must name only these. `as`:
   *  only the nodes of that host are built here (`up --as`), so only theirs are judged. */
  cpus?: { online: number[]; as?: string };
}

/** Ranges that are never a lab subnet, in the order they are reported. */
export const RESERVED_RANGES: { cidr: string; what: string }[] = [
  { cidr: '0.0.0.0/8', what: '"this network" (0.0.0.0/8)' },
  { cidr: '127.0.0.0/8', what: 'loopback (127.0.0.0/8)' },
  { cidr: '224.0.0.0/4', what: 'multicast (224.0.0.0/4)' },
  { cidr: '240.0.0.0/4', what: 'reserved and broadcast (240.0.0.0/4)' },
];

/** Link-local: the machine's own (DHCP fallback, cloud metadata at 169.254.169.254). */
export const LINK_LOCAL = '169.254.0.0/16';

/** Why `subnet` (a valid CIDR) cannot be a lab subnet at all, or null. */
export function reservedProblem(subnet: string): string | null {
  const c = parseCidr(subnet);
  if (!c) return null;
  if (c.prefixLen === 0) return `${subnet} is the whole IPv4 space (every address, the default route included); give a subnet such as 10.10.0.0/24`;
  const r = RESERVED_RANGES.find((x) => cidrsOverlap(x.cidr, c));
  return r ? `${subnet} overlaps ${r.what}, which is no lab subnet; choose a private range such as 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16` : null;
}

/** Why a subnet that will be present on this machine (a bridge with a host-side gateway)
 *  cannot be used here, or null: link-local, or an overlap with one of the machine's routes or
 *  addresses (its connected route would shadow the machine's own, cutting it off). */
export function machineProblem(subnet: string, machine: MachineNet | undefined): string | null {
  if (cidrsOverlap(subnet, LINK_LOCAL)) return `${subnet} overlaps link-local ${LINK_LOCAL}, which the machine itself uses; choose another subnet or make the network internal (gateway: false)`;
  if (!machine) return null;
  for (const a of machine.addresses) {
    if (cidrContains(subnet, a.address)) return `${subnet} contains this machine's address ${a.address}/${a.prefixLen} on ${a.dev}; bringing it up would cut the machine off from that network: choose another subnet`;
  }
  for (const r of machine.routes) {
    if (cidrsOverlap(subnet, r.dst)) return `${subnet} overlaps this machine's route ${r.dst} on ${r.dev}; bringing it up would cut the machine off from that network: choose another subnet`;
  }
  return null;
}

/** What automatic allocation stays clear of: the machine's routes and the subnets of its
 *  addresses, and the subnets of other labs (never the lab's own, when it is re-resolved). */
export function subnetsToAvoid(env: ResolveEnv | undefined, lab: string): AvoidSubnet[] {
  const out: AvoidSubnet[] = [];
  for (const r of env?.machine?.routes ?? []) out.push({ subnet: r.dst, lab: null, owner: `this machine's route on ${r.dev}` });
  for (const a of env?.machine?.addresses ?? []) out.push({ subnet: `${a.address}/${a.prefixLen}`, lab: null, owner: `this machine's address on ${a.dev}` });
  for (const a of env?.avoid ?? []) if (a.lab !== lab) out.push(a);
  return out.filter((a) => parseCidr(a.subnet)?.prefixLen !== 0);
}
