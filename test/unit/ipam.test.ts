import { describe, expect, it } from 'vitest';
import {
  AddressAllocator,
  IpamError,
  SubnetAllocator,
  canonicalCidr,
  cidrContains,
  cidrIsCanonical,
  cidrsOverlap,
  formatCidr,
  intToIp,
  ipToInt,
  isIpv4,
  isUsableAddress,
  parseCidr,
  parseIfaceAddress,
  usableCount,
  usableRange,
} from '../../topology/ipam.js';

describe('isIpv4 / ipToInt / intToIp', () => {
  it('accepts dotted quads only', () => {
    for (const ok of ['0.0.0.0', '10.0.0.1', '255.255.255.255', '192.168.1.254']) expect(isIpv4(ok)).toBe(true);
    for (const bad of ['', '10.0.0', '10.0.0.0.1', '256.0.0.1', '01.2.3.4', '1.2.3.04', '10.0.0.1/24', ' 10.0.0.1', 'a.b.c.d', '0x1.2.3.4', '::1']) {
      expect(isIpv4(bad), bad).toBe(false);
    }
  });

  it('converts both ways, including the extremes', () => {
    expect(ipToInt('0.0.0.0')).toBe(0);
    expect(ipToInt('255.255.255.255')).toBe(0xffffffff);
    expect(ipToInt('10.0.0.1')).toBe(0x0a000001);
    expect(ipToInt('192.168.1.2')).toBe(0xc0a80102);
    expect(intToIp(0xc0a80102)).toBe('192.168.1.2');
    expect(intToIp(0xffffffff)).toBe('255.255.255.255');
    expect(intToIp(0)).toBe('0.0.0.0');
    for (const a of ['1.2.3.4', '128.0.0.0', '172.16.254.3']) expect(intToIp(ipToInt(a))).toBe(a);
  });

  it('throws IpamError on invalid input', () => {
    expect(() => ipToInt('300.1.1.1')).toThrow(IpamError);
    expect(() => ipToInt('10.0.0.0/8')).toThrow(/invalid IPv4 address '10.0.0.0\/8'/);
    expect(() => intToIp(-1)).toThrow(IpamError);
    expect(() => intToIp(2 ** 32)).toThrow(IpamError);
    expect(() => intToIp(1.5)).toThrow(IpamError);
  });
});

describe('parseCidr', () => {
  it('parses a canonical CIDR into its numeric range', () => {
    expect(parseCidr('10.0.0.0/24')).toEqual({ network: '10.0.0.0', prefixLen: 24, first: 0x0a000000, last: 0x0a0000ff });
    expect(parseCidr('0.0.0.0/0')).toEqual({ network: '0.0.0.0', prefixLen: 0, first: 0, last: 0xffffffff });
    expect(parseCidr('10.0.0.7/32')).toEqual({ network: '10.0.0.7', prefixLen: 32, first: 0x0a000007, last: 0x0a000007 });
    expect(parseCidr('10.0.0.6/31')).toMatchObject({ first: 0x0a000006, last: 0x0a000007 });
  });

  it('clears host bits of a non-canonical CIDR', () => {
    expect(parseCidr('10.0.0.5/24')).toMatchObject({ network: '10.0.0.0', prefixLen: 24 });
    expect(parseCidr('192.168.77.200/20')).toMatchObject({ network: '192.168.64.0', prefixLen: 20 });
  });

  it('returns null for invalid strings', () => {
    for (const bad of ['', '10.0.0.0', '10.0.0.0/', '10.0.0.0/33', '10.0.0.0/-1', '10.0.0.0/08', '10.0.0.0/ 8', '10.0.0/8', '256.0.0.0/8', '10.0.0.0/8/8', 'default', '10.0.0.0/x', ' 10.0.0.0/8']) {
      expect(parseCidr(bad), bad).toBeNull();
    }
  });

  it('formats and canonicalises', () => {
    expect(formatCidr(parseCidr('10.1.2.3/16')!)).toBe('10.1.0.0/16');
    expect(canonicalCidr('10.0.0.5/24')).toBe('10.0.0.0/24');
    expect(canonicalCidr('nope')).toBeNull();
  });
});

describe('cidrIsCanonical', () => {
  it('is true only when the host bits are zero', () => {
    expect(cidrIsCanonical('10.0.0.0/24')).toBe(true);
    expect(cidrIsCanonical('10.0.0.5/24')).toBe(false);
    expect(cidrIsCanonical('10.0.0.5/32')).toBe(true);
    expect(cidrIsCanonical('10.0.0.4/30')).toBe(true);
    expect(cidrIsCanonical('10.0.0.6/30')).toBe(false);
    expect(cidrIsCanonical('0.0.0.0/0')).toBe(true);
    expect(cidrIsCanonical('10.0.0.0/33')).toBe(false);
    expect(cidrIsCanonical('garbage')).toBe(false);
  });
});

describe('parseIfaceAddress', () => {
  it('keeps the host part', () => {
    expect(parseIfaceAddress('10.0.12.1/30')).toEqual({ address: '10.0.12.1', prefixLen: 30 });
    expect(parseIfaceAddress('10.0.12.1')).toBeNull();
    expect(parseIfaceAddress('10.0.12.1/40')).toBeNull();
  });
});

describe('cidrContains / cidrsOverlap', () => {
  it('tests containment, edges included', () => {
    expect(cidrContains('10.0.0.0/24', '10.0.0.0')).toBe(true);
    expect(cidrContains('10.0.0.0/24', '10.0.0.255')).toBe(true);
    expect(cidrContains('10.0.0.0/24', '10.0.1.0')).toBe(false);
    expect(cidrContains('10.0.0.0/24', '9.255.255.255')).toBe(false);
    expect(cidrContains('0.0.0.0/0', '255.255.255.255')).toBe(true);
    expect(cidrContains('10.0.0.7/32', '10.0.0.7')).toBe(true);
    expect(cidrContains('10.0.0.7/32', '10.0.0.6')).toBe(false);
    expect(cidrContains(parseCidr('10.0.0.0/8')!, '10.200.0.1')).toBe(true);
  });

  it('throws on invalid arguments', () => {
    expect(() => cidrContains('10.0.0.0/24', 'x')).toThrow(IpamError);
    expect(() => cidrContains('10.0.0.0', '10.0.0.1')).toThrow(/invalid CIDR/);
  });

  it('detects overlap both ways', () => {
    expect(cidrsOverlap('10.0.0.0/16', '10.0.5.0/24')).toBe(true);
    expect(cidrsOverlap('10.0.5.0/24', '10.0.0.0/16')).toBe(true);
    expect(cidrsOverlap('10.0.0.0/24', '10.0.1.0/24')).toBe(false);
    expect(cidrsOverlap('10.0.0.0/24', '10.0.0.0/24')).toBe(true);
    expect(cidrsOverlap('10.0.0.0/31', '10.0.0.1/32')).toBe(true);
    expect(cidrsOverlap('10.0.0.0/31', '10.0.0.2/32')).toBe(false);
    expect(cidrsOverlap('0.0.0.0/0', '192.168.0.0/16')).toBe(true);
    expect(() => cidrsOverlap('10.0.0.0/24', 'bad')).toThrow(IpamError);
  });
});

describe('usableCount / usableRange', () => {
  it('excludes network and broadcast up to /30, keeps both on /31 and the one on /32', () => {
    expect(usableCount('10.0.0.0/24')).toBe(254);
    expect(usableCount('10.0.0.0/30')).toBe(2);
    expect(usableCount('10.0.0.0/29')).toBe(6);
    expect(usableCount('10.0.0.0/31')).toBe(2);
    expect(usableCount('10.0.0.9/32')).toBe(1);
    expect(usableCount('10.0.0.0/8')).toBe(2 ** 24 - 2);
    expect(usableRange('10.0.0.4/30')).toEqual({ first: ipToInt('10.0.0.5'), last: ipToInt('10.0.0.6') });
    expect(usableRange('10.0.0.4/31')).toEqual({ first: ipToInt('10.0.0.4'), last: ipToInt('10.0.0.5') });
  });

  it('isUsableAddress', () => {
    expect(isUsableAddress('10.0.0.0/24', '10.0.0.1')).toBe(true);
    expect(isUsableAddress('10.0.0.0/24', '10.0.0.0')).toBe(false);
    expect(isUsableAddress('10.0.0.0/24', '10.0.0.255')).toBe(false);
    expect(isUsableAddress('10.0.0.0/24', '10.0.1.1')).toBe(false);
    expect(isUsableAddress('10.0.0.0/31', '10.0.0.0')).toBe(true);
  });
});

describe('SubnetAllocator', () => {
  it('hands out consecutive subnets from the start of the pool', () => {
    const a = new SubnetAllocator('10.128.0.0/16', 24);
    expect([a.next(), a.next(), a.next()]).toEqual(['10.128.0.0/24', '10.128.1.0/24', '10.128.2.0/24']);
  });

  it('skips subnets overlapping reserved ranges (larger, smaller, partial, bare address)', () => {
    const a = new SubnetAllocator('10.0.0.0/16', 24, ['10.0.0.0/23', '10.0.2.77/32', '10.0.3.128/25', '10.0.4.1', '9.0.0.0/8']);
    expect(a.next()).toBe('10.0.5.0/24');
    expect(a.next()).toBe('10.0.6.0/24');
  });

  it('reserved subnets larger than the allocation size are jumped over in one step', () => {
    const a = new SubnetAllocator('10.0.0.0/8', 24, ['10.0.0.0/9']);
    expect(a.next()).toBe('10.128.0.0/24');
  });

  it('fills gaps below later reservations', () => {
    const a = new SubnetAllocator('10.0.0.0/24', 26, ['10.0.0.64/26']);
    expect(a.next()).toBe('10.0.0.0/26');
    a.reserve('10.0.0.128/26');
    expect(a.next()).toBe('10.0.0.192/26');
  });

  it('is deterministic', () => {
    const run = () => {
      const a = new SubnetAllocator('172.20.0.0/16', 28, ['172.20.0.16/28', '172.20.0.40/29']);
      return Array.from({ length: 5 }, () => a.next());
    };
    expect(run()).toEqual(run());
    expect(run()).toEqual(['172.20.0.0/28', '172.20.0.48/28', '172.20.0.64/28', '172.20.0.80/28', '172.20.0.96/28']);
  });

  it('throws a clear IpamError when the pool is exhausted', () => {
    const a = new SubnetAllocator('10.0.0.0/23', 24, ['10.0.1.0/24']);
    expect(a.next()).toBe('10.0.0.0/24');
    expect(() => a.next()).toThrow(IpamError);
    expect(() => a.next()).toThrow(/^pool 10\.0\.0\.0\/23 has no free \/24 left/);
  });

  it('throws when the subnet size does not fit in the pool', () => {
    const a = new SubnetAllocator('10.0.0.0/30', 24);
    expect(() => a.next()).toThrow('pool 10.0.0.0/30 has no free /24 left (a /24 is larger than the pool)');
  });

  it('allocates the whole pool when sizes match, then is exhausted', () => {
    const a = new SubnetAllocator('10.0.0.0/24', 24);
    expect(a.next()).toBe('10.0.0.0/24');
    expect(() => a.next()).toThrow(IpamError);
  });

  it('rejects an invalid pool, prefix or reservation', () => {
    expect(() => new SubnetAllocator('10.0.0.0', 24)).toThrow(/invalid ipam pool '10.0.0.0'/);
    expect(() => new SubnetAllocator('10.0.0.0/8', 33)).toThrow(IpamError);
    expect(() => new SubnetAllocator('10.0.0.0/8', 24, ['nope'])).toThrow(/invalid reserved subnet 'nope'/);
  });

  it('accepts a non-canonical pool as its enclosing network', () => {
    const a = new SubnetAllocator('10.0.0.5/16', 24);
    expect(a.next()).toBe('10.0.0.0/24');
  });
});

describe('AddressAllocator', () => {
  it('skips the network address and hands out ascending addresses', () => {
    const a = new AddressAllocator('10.0.0.0/24');
    expect([a.next(), a.next()]).toEqual(['10.0.0.1', '10.0.0.2']);
    expect(a.capacity).toBe(254);
    expect(a.usedCount).toBe(2);
  });

  it('respects reserved and taken addresses and fills gaps', () => {
    const a = new AddressAllocator('10.0.0.0/24', ['10.0.0.1', '10.0.0.1', '192.168.0.1', '10.0.0.0']);
    expect(a.usedCount).toBe(1);
    a.take('10.0.0.3');
    expect(a.has('10.0.0.3')).toBe(true);
    expect(a.has('10.0.0.4')).toBe(false);
    expect([a.next(), a.next(), a.next()]).toEqual(['10.0.0.2', '10.0.0.4', '10.0.0.5']);
  });

  it('take() rejects addresses outside the subnet, network, broadcast and duplicates', () => {
    const a = new AddressAllocator('10.0.0.0/24');
    expect(() => a.take('10.0.1.1')).toThrow('address 10.0.1.1 is outside subnet 10.0.0.0/24');
    expect(() => a.take('10.0.0.0')).toThrow('address 10.0.0.0 is the network address of subnet 10.0.0.0/24');
    expect(() => a.take('10.0.0.255')).toThrow('address 10.0.0.255 is the broadcast address of subnet 10.0.0.0/24');
    a.take('10.0.0.10');
    expect(() => a.take('10.0.0.10')).toThrow('address 10.0.0.10 is already in use in subnet 10.0.0.0/24');
    expect(() => a.take('bogus')).toThrow(IpamError);
  });

  it('/30 with three nodes is exhausted with a message naming the subnet', () => {
    const a = new AddressAllocator('10.0.12.0/30');
    expect(a.next()).toBe('10.0.12.1');
    expect(a.next()).toBe('10.0.12.2');
    expect(() => a.next()).toThrow(IpamError);
    expect(() => a.next()).toThrow('subnet 10.0.12.0/30 has 2 usable addresses, 3 needed');
  });

  it('counts reserved addresses (the gateway) in "needed"', () => {
    const a = new AddressAllocator('10.0.12.0/30', ['10.0.12.1']);
    expect(a.next()).toBe('10.0.12.2');
    expect(() => a.next()).toThrow('subnet 10.0.12.0/30 has 2 usable addresses, 3 needed');
  });

  it('/31 uses both addresses (RFC 3021)', () => {
    const a = new AddressAllocator('10.0.0.6/31');
    expect([a.next(), a.next()]).toEqual(['10.0.0.6', '10.0.0.7']);
    expect(() => a.next()).toThrow('subnet 10.0.0.6/31 has 2 usable addresses, 3 needed');
    const b = new AddressAllocator('10.0.0.6/31');
    b.take('10.0.0.6');
    b.take('10.0.0.7');
  });

  it('/32 has exactly one address', () => {
    const a = new AddressAllocator('10.0.0.9/32');
    expect(a.next()).toBe('10.0.0.9');
    expect(() => a.next()).toThrow('subnet 10.0.0.9/32 has 1 usable address, 2 needed');
  });

  it('rejects an invalid subnet or reservation', () => {
    expect(() => new AddressAllocator('10.0.0.0/99')).toThrow(/invalid subnet/);
    expect(() => new AddressAllocator('10.0.0.0/24', ['x'])).toThrow(IpamError);
  });

  it('is deterministic', () => {
    const run = () => {
      const a = new AddressAllocator('10.5.0.0/29', ['10.5.0.1']);
      a.take('10.5.0.4');
      return [a.next(), a.next(), a.next(), a.next()];
    };
    expect(run()).toEqual(['10.5.0.2', '10.5.0.3', '10.5.0.5', '10.5.0.6']);
    expect(run()).toEqual(run());
  });
});
