// Netlink encoding: attribute streams (linkinfo, VXLAN data), addresses and MACs to and from
// their wire bytes (parsed and printed as iproute2 does), the rtnetlink constants netlab uses,
// and a GETLINK reply turned into a LinkInfo. Pure functions: no socket, no kernel.
import { isIPv4, isIPv6 } from 'node:net';
import { AttrStream, FlagsNew, ifla } from 'netlink';
import type { StreamData, rt } from 'netlink';
import type { LinkCounters, LinkInfo, VxlanInfo } from './types.js';

export const NEW = { flags: FlagsNew.CREATE | FlagsNew.EXCL };
export const AF_INET = 2;
export const AF_BRIDGE = 7;
export const AF_INET6 = 10;
export const RT_TABLE_MAIN = 254;
const IF_OPER_UNKNOWN = 0;
const IF_OPER_UP = 6;
/** IFLA_EXT_MASK = RTEXT_FILTER_SKIP_STATS: link replies without counters are half the size. */
export const SKIP_STATS = Buffer.from([8, 0, 0, 0]);
/** Receive-buffer bytes each unread reply may take (skb truesize, measured: an ACK ~0.8 KiB, an
 *  error ACK echoes the request, a GETLINK reply 3-4 KiB). Replies are only read when the event
 *  loop turns, and an overflowing buffer does not just lose replies: netlink@0.3.0 then throws
 *  from its native poll callback (null syscall name) and the whole process aborts. So requests
 *  wait for budget instead, and callers may fire thousands of operations at once. */
export const ACK_COST = 2048;
export const GETLINK_COST = 8192;
/** Asked for; the kernel caps it at net.core.rmem_max (208 KiB by default) and doubles it. */
export const RCVBUF_WANTED = 1 << 20;

export function toBuf(d: StreamData): Buffer {
  const s = new AttrStream();
  s.emit(d);
  return Buffer.concat(s.bufs);
}

export function linkinfo(kind: string, data?: StreamData): Buffer {
  return toBuf(ifla.formatInfo(data ? { kind, data: toBuf(data) } : { kind }));
}

export function be16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

export function upHeader(up: boolean | undefined): rt.Link {
  return up ? { flags: { up: true }, change: { up: true } } : {};
}

export interface ParsedIp { family: 4 | 6; bytes: Buffer }

export function parseIp(s: string): ParsedIp | null {
  if (isIPv4(s)) return { family: 4, bytes: Buffer.from(s.split('.').map(Number)) };
  if (!isIPv6(s)) return null;
  let text = s.split('%')[0];
  if (text.includes('.')) {
    const cut = text.lastIndexOf(':');
    const v4 = Buffer.from(text.slice(cut + 1).split('.').map(Number));
    text = `${text.slice(0, cut + 1)}${v4.readUInt16BE(0).toString(16)}:${v4.readUInt16BE(2).toString(16)}`;
  }
  const [head, tail] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = tail === undefined ? null : tail ? tail.split(':') : [];
  const groups = t === null ? h : [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const bytes = Buffer.alloc(16);
  groups.forEach((g, i) => bytes.writeUInt16BE(parseInt(g, 16), i * 2));
  return { family: 6, bytes };
}

const RTA_GATEWAY = 5;

/** RTA_MULTIPATH's payload: one `struct rtnexthop` (len u16, flags u8, hops u8 = weight - 1,
 *  ifindex s32) per next hop, each followed by its RTA_GATEWAY attribute. Host byte order, as
 *  every rtnetlink header (little-endian on every machine netlab runs on). */
export function encodeMultipath(hops: { gateway: Buffer; ifindex: number; weight?: number }[]): Buffer {
  const parts = hops.map((h) => {
    const attrLen = 4 + h.gateway.length;
    const b = Buffer.alloc(8 + ((attrLen + 3) & ~3));
    b.writeUInt16LE(8 + attrLen, 0);
    b.writeUInt8(0, 2);
    b.writeUInt8((h.weight ?? 1) - 1, 3);
    b.writeInt32LE(h.ifindex, 4);
    b.writeUInt16LE(attrLen, 8);
    b.writeUInt16LE(RTA_GATEWAY, 10);
    h.gateway.copy(b, 12);
    return b;
  });
  return Buffer.concat(parts);
}

/** The next hops of an RTA_MULTIPATH payload (see encodeMultipath); `dead`: RTNH_F_DEAD or
 *  RTNH_F_LINKDOWN is set, the kernel does not use it. */
export function decodeMultipath(b: Buffer): { gateway: Buffer | null; ifindex: number; weight: number; dead: boolean }[] {
  const out: { gateway: Buffer | null; ifindex: number; weight: number; dead: boolean }[] = [];
  let off = 0;
  while (off + 8 <= b.length) {
    const len = b.readUInt16LE(off);
    if (len < 8 || off + len > b.length) break;
    const flags = b.readUInt8(off + 2);
    let gateway: Buffer | null = null;
    for (let a = off + 8; a + 4 <= off + len;) {
      const alen = b.readUInt16LE(a);
      if (alen < 4) break;
      if (b.readUInt16LE(a + 2) === RTA_GATEWAY) gateway = Buffer.from(b.subarray(a + 4, a + alen));
      a += (alen + 3) & ~3;
    }
    out.push({ gateway, ifindex: b.readInt32LE(off + 4), weight: b.readUInt8(off + 3) + 1, dead: (flags & (1 | 16)) !== 0 });
    off += (len + 3) & ~3;
  }
  return out;
}

/** Dotted quad or RFC 5952 text, as inet_ntop (and so `ip`) prints it. */
export function formatIp(b: Buffer): string {
  if (b.length === 4) return [...b].join('.');
  if (b.length !== 16) return b.toString('hex');
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push(b.readUInt16BE(i));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

export interface ParsedCidr extends ParsedIp { len: number }

export function parseCidr(s: string): ParsedCidr | null {
  const [addr, lenText, ...rest] = (s === 'default' ? '0.0.0.0/0' : s).split('/');
  const ip = parseIp(addr);
  if (!ip || rest.length) return null;
  const max = ip.family === 4 ? 32 : 128;
  const len = lenText === undefined ? max : /^\d+$/.test(lenText) ? Number(lenText) : NaN;
  return len >= 0 && len <= max ? { ...ip, len } : null;
}

export function parseMac(s: string): Buffer | null {
  return /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(s) ? Buffer.from(s.replace(/:/g, ''), 'hex') : null;
}

export function formatMac(b: Buffer | undefined): string | null {
  return b && b.length ? [...b].map((x) => x.toString(16).padStart(2, '0')).join(':') : null;
}

/** A link's counters from a GETLINK reply that carries them (no SKIP_STATS): IFLA_STATS64, else
 *  the 32-bit IFLA_STATS (which wrap at 4 GiB), else zeros. Byte counts stay exact as Numbers up
 *  to 2^53 (8 PiB). */
export function toLinkCounters(m: rt.LinkMessage): LinkCounters {
  const s64 = m.attrs.stats64;
  const s32 = m.attrs.stats;
  const n = (big: bigint | undefined, small: number | undefined) => (big !== undefined ? Number(big) : small ?? 0);
  return {
    index: m.data.index ?? 0,
    name: m.attrs.ifname ?? '',
    rxBytes: n(s64?.rxBytes, s32?.rxBytes),
    txBytes: n(s64?.txBytes, s32?.txBytes),
    rxPackets: n(s64?.rxPackets, s32?.rxPackets),
    txPackets: n(s64?.txPackets, s32?.txPackets),
  };
}

export function toLinkInfo(m: rt.LinkMessage): LinkInfo {
  const a = m.attrs;
  const flags = m.data.flags ?? {};
  let kind: string | null = null;
  let vxlan: VxlanInfo | undefined;
  if (a.linkinfo) {
    try {
      const info = ifla.parseInfo(a.linkinfo);
      kind = info.kind ?? null;
      if (kind === 'vxlan' && info.data) {
        const v = ifla.parseVxlan(info.data);
        const local = v.local ?? v.local6;
        vxlan = {
          vni: v.id ?? 0, local: local ? formatIp(local) : null, port: v.port ? v.port.readUInt16BE(0) : 0,
          learning: v.learning === 1, proxy: v.proxy === 1, link: v.link ? v.link : null,
        };
      }
    } catch {
      kind = null;
    }
  }
  const up = flags.up === true;
  return {
    index: m.data.index ?? 0,
    name: a.ifname ?? '',
    kind,
    up,
    operUp: a.operstate === IF_OPER_UP || (a.operstate === IF_OPER_UNKNOWN && up && flags.lowerUp === true),
    mtu: a.mtu ?? 0,
    mac: formatMac(a.address),
    master: a.master ? a.master : null,
    alias: a.ifalias ? a.ifalias : null,
    group: a.group ?? 0,
    ...(vxlan ? { vxlan } : {}),
  };
}

