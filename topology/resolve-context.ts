// The one context the resolver's stages share (resolve.ts runs them in order): the raw file, its
// locator, the diagnostics so far, the subnets claimed so far and the kernel names taken so far.
// The claims and names live here rather than in a stage because every stage that places a subnet
// or names an interface must see what the earlier ones took: the order of the stages is the order
// of the names, so the same file always gives the same Lab.
import * as path from 'node:path';
import type { Diagnostic, Driver, Ipv4Address, RawNode, RawTopology } from './types.js';
import { canonicalCidr, cidrsOverlap, parseCidr } from './ipam.js';
import { ifName, IFNAMSIZ_MAX } from './names.js';
import type { Locator, PathSeg } from './source.js';
import { reservedProblem, type ResolveEnv } from './addrspace.js';

export const DEFAULT_POOL = '10.128.0.0/16';
export const DEFAULT_PREFIX = 24;
export const DEFAULT_MTU = 1500;
export const VXLAN_OVERHEAD = 50;
export const DEFAULT_VXLAN_PORT = 4789;
export const FIRST_AUTO_VNI = 4096;
const IFACE_RE = /^[A-Za-z0-9_.-]+$/;

/** A subnet the lab uses, with where it was given (for "overlaps ... (line N)"). */
export type Claim = { subnet: string; path: PathSeg[]; what: string };

/** A network as the stages build it up: explicit parts first, then subnet and gateway. */
export type NetDraft = { name: string; driver: Driver; subnet: string | null; gw: boolean | string; ipv6: boolean; mtu: number; vni: number | null; port: number | null; p: PathSeg[] };
export type EndDraft = { node: string; iface: string; ipv4: Ipv4Address | null; p: PathSeg[] };
export type LinkDraft = { index: number; a: EndDraft; b: EndDraft; mtu: number; up: boolean; p: PathSeg[] };
/** One node on one network, before interface names and addresses are given out. */
export type AttDraft = { node: string; net: string; iface: string | null; ipv4: string | null; mac: string | null; p: PathSeg[] };
export type NodeDraft = { mode: 'bridge' | 'none' | 'host'; host: string | null; atts: AttDraft[] };

export interface ResolveContext {
  raw: RawTopology;
  loc: Locator;
  labName: string;
  /** Folder relative volumes and seccomp profiles are read from (the file's own). */
  baseDir: string;
  env: ResolveEnv | undefined;
  ds: Diagnostic[];
  err: (p: PathSeg[], message: string, key?: boolean) => void;
  rawNodes: [string, RawNode][];
  nodeNames: Set<string>;
  netNames: Set<string>;
  hostNames: Set<string>;
  claims: Claim[];
  /** Records a subnet of the lab; false (and a diagnostic) when it overlaps one claimed before. */
  claimSubnet: (subnet: string, p: PathSeg[], what: string) => boolean;
  /** A valid CIDR without host bits, or null (and a diagnostic). */
  checkCidr: (value: string, p: PathSeg[], what: string) => string | null;
  /** A CIDR that addresses are taken from (network, link, underlay, pool): never a reserved range. */
  checkSubnet: (value: string, p: PathSeg[], what: string) => string | null;
  /** The kernel name of an object outside node namespaces, unique within the lab. */
  uniqueIfName: (kind: 'b' | 'v' | 'x' | 'u', object: string) => string;
  /** Whether an interface name is one Linux takes (and not "lo"); a diagnostic when not. */
  checkIfaceName: (iface: string, p: PathSeg[]) => boolean;
}

export function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

export function entries<T>(m: Record<string, T | null> | undefined): [string, T | null][] {
  return m ? Object.entries(m) : [];
}

export function makeContext(raw: RawTopology, loc: Locator, file: string, env?: ResolveEnv): ResolveContext {
  const ds: Diagnostic[] = [];
  const err = (p: PathSeg[], message: string, key = false) => { ds.push(loc.diag(p, message, { key })); };
  const labName = raw.name;
  const rawNodes = entries(raw.nodes).map(([n, v]) => [n, v ?? {}] as [string, RawNode]);

  const claims: Claim[] = [];
  const claimSubnet = (subnet: string, p: PathSeg[], what: string) => {
    for (const c of claims) {
      if (cidrsOverlap(c.subnet, subnet)) {
        err(p, `${what} ${subnet} overlaps ${c.what} ${c.subnet} (line ${loc.at(c.path).line}); subnets of a lab must not overlap`);
        return false;
      }
    }
    claims.push({ subnet, path: p, what });
    return true;
  };
  const checkCidr = (value: string, p: PathSeg[], what: string): string | null => {
    const c = parseCidr(value);
    if (!c) { err(p, `"${value}" is not a valid IPv4 CIDR; expected e.g. 10.10.0.0/24`); return null; }
    const canon = canonicalCidr(value)!;
    if (canon !== value) { err(p, `${what} "${value}" has host bits set; did you mean ${canon}?`); return null; }
    return canon;
  };
  const checkSubnet = (value: string, p: PathSeg[], what: string): string | null => {
    const s = checkCidr(value, p, what);
    const why = s ? reservedProblem(s) : null;
    if (why) { err(p, `${what} ${why}`); return null; }
    return s;
  };
  // Kernel names are 24-bit hashes: at thousands of interfaces two of them collide, and the
  // later one takes the next salt (deterministic: the same file gives the same names).
  const kernelNames = new Set<string>();
  const uniqueIfName = (kind: 'b' | 'v' | 'x' | 'u', object: string): string => {
    for (let salt = 0; ; salt++) {
      const n = ifName(labName, kind, object, salt);
      if (!kernelNames.has(n)) { kernelNames.add(n); return n; }
    }
  };
  const checkIfaceName = (iface: string, p: PathSeg[]): boolean => {
    if (Buffer.byteLength(iface) > IFNAMSIZ_MAX) { err(p, `interface name "${iface}" is ${Buffer.byteLength(iface)} bytes; Linux allows at most ${IFNAMSIZ_MAX}`); return false; }
    if (!IFACE_RE.test(iface) || iface === '.' || iface === '..') { err(p, `interface name "${iface}" has invalid characters; expected A-Z, a-z, 0-9, '_', '.', '-'`); return false; }
    if (iface === 'lo') { err(p, 'interface name "lo" is the loopback interface; choose another name'); return false; }
    return true;
  };

  return {
    raw, loc, labName, env, ds, err, rawNodes,
    baseDir: file ? path.dirname(path.resolve(file)) : process.cwd(),
    nodeNames: new Set(rawNodes.map(([n]) => n)),
    netNames: new Set(entries(raw.networks).map(([n]) => n)),
    hostNames: new Set(entries(raw.hosts).map(([n]) => n)),
    claims, claimSubnet, checkCidr, checkSubnet, uniqueIfName, checkIfaceName,
  };
}
