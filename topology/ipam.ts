// IPv4 address management for the topology layer: parsing and validating addresses and CIDRs
// (on top of `ip-address`), containment and overlap tests, and the two deterministic
// allocators the resolver uses: SubnetAllocator hands out network subnets from the ipam pool,
// AddressAllocator hands out host addresses inside one subnet. Addresses are handled as
// unsigned 32-bit integers (plain numbers, 0 .. 2^32-1) internally. Pure: no kernel, no I/O.
import { Address4 } from 'ip-address';
import type { Ipv4Address } from './types.js';
import { NetlabError } from './errors.js';

/** An allocation or parsing failure with a message fit to show to the user. */
export class IpamError extends NetlabError {
  override name = 'IpamError';
}

/** A parsed CIDR. `network` has the host bits cleared; `first`/`last` are the numeric range. */
export interface Cidr {
  network: string;
  prefixLen: number;
  first: number;
  last: number;
}

const DOTTED_QUAD = /^\d{1,3}(\.\d{1,3}){3}$/;
const PREFIX_LEN = /^(0|[1-9]\d?)$/;

/** True for a plain dotted-quad IPv4 address (no prefix, no leading zeros). */
export function isIpv4(s: string): boolean {
  return DOTTED_QUAD.test(s) && Address4.isValid(s);
}

/** Dotted quad -> unsigned 32-bit integer. Throws IpamError on an invalid address. */
export function ipToInt(addr: string): number {
  if (!isIpv4(addr)) throw new IpamError(`invalid IPv4 address '${addr}'`);
  const [a, b, c, d] = new Address4(addr).toArray();
  return ((a << 24) >>> 0) + (b << 16) + (c << 8) + d;
}

/** Unsigned 32-bit integer -> dotted quad. */
export function intToIp(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new IpamError(`not an IPv4 address value: ${n}`);
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff].join('.');
}

/** Number of addresses in a block of this prefix length. */
function blockSize(prefixLen: number): number {
  return 2 ** (32 - prefixLen);
}

function rangeOf(addr: number, prefixLen: number): Cidr {
  const size = blockSize(prefixLen);
  const first = Math.floor(addr / size) * size;
  return { network: intToIp(first), prefixLen, first, last: first + size - 1 };
}

/** Parses `a.b.c.d/len` (0 <= len <= 32). Host bits may be set (see cidrIsCanonical); the
 *  result is the enclosing network. Returns null for anything else, including a bare address. */
export function parseCidr(s: string): Cidr | null {
  const slash = s.indexOf('/');
  if (slash < 0) return null;
  const addr = s.slice(0, slash);
  const len = s.slice(slash + 1);
  if (!isIpv4(addr) || !PREFIX_LEN.test(len)) return null;
  const prefixLen = Number(len);
  if (prefixLen > 32) return null;
  return rangeOf(ipToInt(addr), prefixLen);
}

/** `network/len` of a parsed CIDR. */
export function formatCidr(c: Cidr): string {
  return `${c.network}/${c.prefixLen}`;
}

/** The canonical form of a valid CIDR (host bits cleared: `10.0.0.5/24` -> `10.0.0.0/24`),
 *  or null when `s` is not a CIDR. Use it for "did you mean ..." hints. */
export function canonicalCidr(s: string): string | null {
  const c = parseCidr(s);
  return c ? formatCidr(c) : null;
}

/** True when `s` is a valid CIDR with all host bits zero. */
export function cidrIsCanonical(s: string): boolean {
  return canonicalCidr(s) === s;
}

/** Parses an interface address with prefix, `10.0.12.1/30`, keeping the host bits.
 *  Returns null when `s` is not of that form. */
export function parseIfaceAddress(s: string): Ipv4Address | null {
  const c = parseCidr(s);
  if (!c) return null;
  return { address: s.slice(0, s.indexOf('/')), prefixLen: c.prefixLen };
}

function toCidr(x: string | Cidr, what: string): Cidr {
  if (typeof x !== 'string') return x;
  const c = parseCidr(x);
  if (!c) throw new IpamError(`invalid ${what} '${x}'`);
  return c;
}

/** Parses a CIDR, or a bare address as a /32. Throws IpamError otherwise. */
function toRange(x: string | Cidr, what: string): Cidr {
  if (typeof x === 'string' && isIpv4(x)) return rangeOf(ipToInt(x), 32);
  return toCidr(x, what);
}

/** True when the address lies inside the CIDR (network and broadcast addresses included).
 *  Throws IpamError on an invalid CIDR or address. */
export function cidrContains(cidr: string | Cidr, addr: string): boolean {
  const c = toCidr(cidr, 'CIDR');
  const n = ipToInt(addr);
  return n >= c.first && n <= c.last;
}

/** True when the two CIDRs share at least one address. Throws IpamError on an invalid CIDR. */
export function cidrsOverlap(a: string | Cidr, b: string | Cidr): boolean {
  const x = toCidr(a, 'CIDR');
  const y = toCidr(b, 'CIDR');
  return x.first <= y.last && y.first <= x.last;
}

/** Numeric range of the host addresses of a subnet: network and broadcast excluded up to
 *  /30; both addresses of a /31 (RFC 3021); the single address of a /32. */
export function usableRange(subnet: string | Cidr): { first: number; last: number } {
  const c = toCidr(subnet, 'subnet');
  if (c.prefixLen >= 31) return { first: c.first, last: c.last };
  return { first: c.first + 1, last: c.last - 1 };
}

/** Number of usable host addresses of a subnet (/30: 2, /31: 2, /32: 1, /24: 254). */
export function usableCount(subnet: string | Cidr): number {
  const r = usableRange(subnet);
  return r.last - r.first + 1;
}

/** True when `addr` is a usable host address of `subnet` (inside it, and not its network or
 *  broadcast address where those exist). */
export function isUsableAddress(subnet: string | Cidr, addr: string): boolean {
  const r = usableRange(subnet);
  const n = ipToInt(addr);
  return n >= r.first && n <= r.last;
}

/**
 * Hands out subnets of one prefix length from a pool: each next() returns the lowest aligned
 * subnet of the pool that overlaps neither a reserved range nor a subnet returned before.
 * `reserved` entries are CIDRs (host bits allowed) or bare addresses (taken as /32); they may
 * lie partly or wholly outside the pool.
 */
export class SubnetAllocator {
  readonly pool: Cidr;
  readonly prefixLen: number;
  /** Reserved and allocated ranges. */
  private readonly taken: Cidr[] = [];

  constructor(pool: string, prefixLen: number, reserved: string[] = []) {
    const p = parseCidr(pool);
    if (!p) throw new IpamError(`invalid ipam pool '${pool}'`);
    if (!Number.isInteger(prefixLen) || prefixLen < 0 || prefixLen > 32) {
      throw new IpamError(`invalid subnet prefix length ${prefixLen}`);
    }
    this.pool = p;
    this.prefixLen = prefixLen;
    for (const r of reserved) this.reserve(r);
  }

  /** Marks a CIDR (or bare address) as unavailable for later next() calls. */
  reserve(cidr: string): void {
    this.taken.push(toRange(cidr, 'reserved subnet'));
  }

  /** The lowest free subnet, as `network/len`. Throws IpamError when none is left. */
  next(): string {
    const { pool, prefixLen } = this;
    const what = `pool ${formatCidr(pool)} has no free /${prefixLen} left`;
    if (prefixLen < pool.prefixLen) {
      throw new IpamError(`${what} (a /${prefixLen} is larger than the pool)`);
    }
    const size = blockSize(prefixLen);
    let start = pool.first;
    while (start + size - 1 <= pool.last) {
      const end = start + size - 1;
      const clash = this.taken.find((t) => t.first <= end && start <= t.last);
      if (!clash) {
        const c = rangeOf(start, prefixLen);
        this.taken.push(c);
        return formatCidr(c);
      }
      // Skip past the clashing range, to the next aligned boundary.
      start = Math.ceil((clash.last + 1) / size) * size;
    }
    const total = 2 ** (prefixLen - pool.prefixLen);
    throw new IpamError(
      `${what} (all ${total} overlap reserved or already allocated subnets)`,
    );
  }
}

/**
 * Hands out host addresses of one subnet: next() returns the lowest usable address not yet
 * taken (see usableRange for /31 and /32). `reserved` addresses (e.g. the gateway) are marked
 * used up front; reserved addresses outside the subnet, or that are its network/broadcast
 * address, are ignored, and duplicates are harmless.
 */
export class AddressAllocator {
  readonly subnet: Cidr;
  private readonly range: { first: number; last: number };
  private readonly used = new Set<number>();
  /** Every usable address below the cursor is used (addresses are never released). */
  private cursor: number;

  constructor(subnet: string, reserved: string[] = []) {
    this.subnet = toCidr(subnet, 'subnet');
    this.range = usableRange(this.subnet);
    this.cursor = this.range.first;
    for (const r of reserved) {
      const n = ipToInt(r);
      if (n >= this.range.first && n <= this.range.last) this.used.add(n);
    }
  }

  /** Number of usable host addresses of the subnet. */
  get capacity(): number {
    return this.range.last - this.range.first + 1;
  }

  /** Number of addresses taken so far (reserved included). */
  get usedCount(): number {
    return this.used.size;
  }

  /** True when `addr` has been taken or reserved. */
  has(addr: string): boolean {
    return this.used.has(ipToInt(addr));
  }

  /** Marks a fixed address used. Throws IpamError if it is outside the subnet, is the
   *  network or broadcast address, or is already used. */
  take(addr: string): void {
    const n = ipToInt(addr);
    const s = formatCidr(this.subnet);
    if (n < this.subnet.first || n > this.subnet.last) {
      throw new IpamError(`address ${addr} is outside subnet ${s}`);
    }
    if (n < this.range.first) throw new IpamError(`address ${addr} is the network address of subnet ${s}`);
    if (n > this.range.last) throw new IpamError(`address ${addr} is the broadcast address of subnet ${s}`);
    if (this.used.has(n)) throw new IpamError(`address ${addr} is already in use in subnet ${s}`);
    this.used.add(n);
  }

  /** The lowest free usable address (now marked used). Throws IpamError when the subnet is
   *  full: `subnet 10.0.12.0/30 has 2 usable addresses, 3 needed`. */
  next(): string {
    while (this.cursor <= this.range.last && this.used.has(this.cursor)) this.cursor++;
    if (this.cursor > this.range.last) {
      const cap = this.capacity;
      throw new IpamError(
        `subnet ${formatCidr(this.subnet)} has ${cap} usable address${cap === 1 ? '' : 'es'}, ${this.used.size + 1} needed`,
      );
    }
    this.used.add(this.cursor);
    return intToIp(this.cursor);
  }
}
