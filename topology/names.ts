// Kernel object names and ownership markers for a lab. Linux interface names are at most 15
// bytes, so host-side names are derived from hashes (collision-free across labs, stable for the
// same file); the readable name goes into the interface alias. Every name netlab creates in a
// shared namespace starts with NAME_PREFIX so `netlab cleanup` can find it without state.
import { createHash } from 'node:crypto';

/** Prefix of every interface netlab creates outside a node's own namespace. No '-': Mininet's
 *  `mn -c` deletes every `*-ethN` link, and our names must never match that. */
export const NAME_PREFIX = 'nl';
/** Prefix of every named network namespace (under /run/netns). */
export const NETNS_PREFIX = 'netlab.';
/** Prefix of every interface alias (IFLA_IFALIAS) netlab sets. */
export const ALIAS_PREFIX = 'netlab:';
/** Name of the nftables table of a lab: `netlab_<id>`. */
export const NFT_TABLE_PREFIX = 'netlab_';
export const IFNAMSIZ_MAX = 15;

function hex(input: string, chars: number): string {
  return createHash('sha256').update(input).digest('hex').slice(0, chars);
}

/** 6 hex chars identifying a lab in kernel names. */
export function labId(lab: string): string {
  return hex(`lab:${lab}`, 6);
}

/** IFLA_GROUP of a lab's links: a non-zero 31-bit number derived from the lab name
 *  (0 is the kernel's default group and must never be used). */
export function labGroup(lab: string): number {
  const n = parseInt(hex(`group:${lab}`, 8), 16) & 0x7fffffff;
  return n === 0 ? 1 : n;
}

/** Interface name `nl<lab id><kind><6 hex>` = 15 bytes. `salt` resolves rare in-lab collisions. */
export function ifName(lab: string, kind: 'b' | 'v' | 'x' | 'u', object: string, salt = 0): string {
  return `${NAME_PREFIX}${labId(lab)}${kind}${hex(`${lab}/${object}/${salt}`, 6)}`;
}

export function nodeNetns(lab: string, node: string): string {
  return `${NETNS_PREFIX}${lab}.${node}`;
}

export function hostNetns(lab: string, host: string): string {
  return `${NETNS_PREFIX}${lab}+${host}`;
}

export function ifAlias(lab: string, node: string, iface: string): string {
  return `${ALIAS_PREFIX}${lab}:${node}:${iface}`;
}

export function nftTable(lab: string): string {
  return `${NFT_TABLE_PREFIX}${labId(lab)}`;
}

/** Lab name from a netns name made by nodeNetns/hostNetns, or null if it is not netlab's. */
export function labOfNetns(netns: string): string | null {
  if (!netns.startsWith(NETNS_PREFIX)) return null;
  const rest = netns.slice(NETNS_PREFIX.length);
  const m = /^([a-z0-9-]+)[.+]/.exec(rest);
  return m ? m[1] : null;
}
