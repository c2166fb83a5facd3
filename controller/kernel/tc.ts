// Traffic control messages, written by hand (the `netlink` package has the RTM_*QDISC headers but
// nothing for a qdisc's options): the TCA_OPTIONS of tbf (a rate limit) and netem (delay,
// jitter, loss, duplicate, corrupt, reorder, and a rate of its own), and their decoding from a
// dump, as `tc -j qdisc show` reads them. Also whether this kernel can make a netem qdisc at all
// (the module, loaded or loadable, or built in), without trying. Pure but for that probe.
// Layouts: include/uapi/linux/pkt_sched.h. Host byte order (little-endian), as rtnetlink.
import * as fs from 'node:fs';
import * as os from 'node:os';

export const TC_H_ROOT = 0xffffffff;
/** The handle netlab gives its root qdisc (1:), so a replace finds its own. */
export const NETLAB_QDISC_HANDLE = 0x10000;

const TCA_TBF_PARMS = 1;
const TCA_TBF_RATE64 = 4;
const TCA_TBF_BURST = 6;
const TCA_NETEM_REORDER = 3;
const TCA_NETEM_CORRUPT = 4;
const TCA_NETEM_RATE = 6;
const TCA_NETEM_RATE64 = 8;
const TCA_NETEM_LATENCY64 = 10;
const TCA_NETEM_JITTER64 = 11;
const TC_LINKLAYER_ETHERNET = 1;
const U32_MAX = 0xffffffff;
/** PSCHED ticks are 64 ns (PSCHED_SHIFT 6). */
const NS_PER_TICK = 64;

/** A tbf: the rate, the bucket (burst) and the queue (limit), in bytes. */
export interface TbfSpec { kind: 'tbf'; rateBps: number; burstBytes: number; limitBytes: number }
/** A netem: times in microseconds, probabilities in percent, rate in bits per second. */
export interface NetemSpec {
  kind: 'netem';
  delayUs: number; jitterUs: number; lossPct: number; duplicatePct: number; corruptPct: number; reorderPct: number;
  rateBps: number; limit: number;
}
export type QdiscSpec = TbfSpec | NetemSpec;

function attr(type: number, payload: Buffer): Buffer {
  const len = 4 + payload.length;
  const b = Buffer.alloc((len + 3) & ~3);
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type, 2);
  payload.copy(b, 4);
  return b;
}

const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n >>> 0, 0); return b; };
const u64 = (n: number) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(Math.round(n)), 0); return b; };
const s64 = (n: number) => { const b = Buffer.alloc(8); b.writeBigInt64LE(BigInt(Math.round(n)), 0); return b; };
/** A percentage as the kernel's u32 probability (iproute2's rint(p * UINT32_MAX)). */
const prob = (pct: number) => Math.min(U32_MAX, Math.round((pct / 100) * U32_MAX));

/** struct tc_ratespec for a rate in bytes/s (capped: the rest goes in the 64-bit attribute). */
function ratespec(bytesPerSec: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(0, 0); // cell_log: only for a rate table, which the Ethernet link layer does without
  b.writeUInt8(TC_LINKLAYER_ETHERNET, 1);
  b.writeUInt32LE(Math.min(bytesPerSec, U32_MAX), 8);
  return b;
}

/** A sensible bucket for a rate: 4 ms of traffic (above the kernel timer's tick), at least two
 *  full frames, so the rate holds without bursts the size of a second. */
export function tbfFor(rateBps: number, limitPackets: number | null): TbfSpec {
  const bytes = rateBps / 8;
  const burstBytes = Math.max(3200, Math.ceil(bytes * 0.004));
  // Queue: the packets asked for (as 1500-byte frames), else 200 ms of traffic (at least 64
  // frames): a shorter queue drops TCP's bursts often enough that a 20 Mbit/s cable carried
  // under 18 of it on a busy machine, where a real link's buffer would have absorbed them.
  const limitBytes = limitPackets !== null ? limitPackets * 1500 : Math.max(burstBytes * 2, 64 * 1500, Math.ceil(bytes * 0.2));
  return { kind: 'tbf', rateBps, burstBytes, limitBytes };
}

/** TCA_OPTIONS of a tbf (`tc qdisc add ... tbf rate R burst B limit L`). */
export function encodeTbf(q: TbfSpec): Buffer {
  const bytesPerSec = Math.round(q.rateBps / 8);
  const bufferTicks = Math.min(U32_MAX, Math.round(((q.burstBytes / bytesPerSec) * 1e9) / NS_PER_TICK));
  const parms = Buffer.concat([ratespec(bytesPerSec), Buffer.alloc(12), u32(q.limitBytes), u32(bufferTicks), u32(0)]);
  const attrs = [attr(TCA_TBF_PARMS, parms), attr(TCA_TBF_BURST, u32(q.burstBytes))];
  if (bytesPerSec > U32_MAX) attrs.push(attr(TCA_TBF_RATE64, u64(bytesPerSec)));
  return Buffer.concat(attrs);
}

/** TCA_OPTIONS of a netem: struct tc_netem_qopt, then its attributes (not nested: netem's
 *  options are a struct followed by attributes, as iproute2 writes them). */
export function encodeNetem(q: NetemSpec): Buffer {
  const ticks = (us: number) => Math.min(U32_MAX, Math.round((us * 1000) / NS_PER_TICK));
  const qopt = Buffer.concat([
    u32(ticks(q.delayUs)), u32(q.limit), u32(prob(q.lossPct)),
    u32(q.reorderPct > 0 ? 1 : 0), // gap: 1 makes reorder apply to every packet's chance, as tc does
    u32(prob(q.duplicatePct)), u32(ticks(q.jitterUs)),
  ]);
  // As iproute2: the 64-bit times only when the 32-bit tick fields cannot hold them (~4.5 min).
  const attrs: Buffer[] = [];
  if ((q.delayUs * 1000) / NS_PER_TICK > U32_MAX) attrs.push(attr(TCA_NETEM_LATENCY64, s64(q.delayUs * 1000)));
  if ((q.jitterUs * 1000) / NS_PER_TICK > U32_MAX) attrs.push(attr(TCA_NETEM_JITTER64, s64(q.jitterUs * 1000)));
  if (q.reorderPct > 0) attrs.push(attr(TCA_NETEM_REORDER, Buffer.concat([u32(prob(q.reorderPct)), u32(0)])));
  if (q.corruptPct > 0) attrs.push(attr(TCA_NETEM_CORRUPT, Buffer.concat([u32(prob(q.corruptPct)), u32(0)])));
  if (q.rateBps > 0) {
    const bytesPerSec = Math.round(q.rateBps / 8);
    attrs.push(attr(TCA_NETEM_RATE, Buffer.concat([u32(Math.min(bytesPerSec, U32_MAX)), u32(0), u32(0), u32(0)])));
    if (bytesPerSec > U32_MAX) attrs.push(attr(TCA_NETEM_RATE64, u64(bytesPerSec)));
  }
  return Buffer.concat([qopt, ...attrs]);
}

function attrsOf(b: Buffer, from = 0): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  for (let off = from; off + 4 <= b.length;) {
    const len = b.readUInt16LE(off);
    if (len < 4 || off + len > b.length) break;
    out.set(b.readUInt16LE(off + 2) & 0x3fff, b.subarray(off + 4, off + len));
    off += (len + 3) & ~3;
  }
  return out;
}

const pct = (p: number) => Math.round((p / U32_MAX) * 100 * 1e4) / 1e4;

/** A dumped qdisc's options, decoded (null for kinds netlab does not make). */
export function decodeQdisc(kind: string, options: Buffer | undefined): QdiscSpec | null {
  if (!options) return null;
  if (kind === 'tbf') {
    const a = attrsOf(options);
    const parms = a.get(TCA_TBF_PARMS);
    if (!parms || parms.length < 36) return null;
    const r64 = a.get(TCA_TBF_RATE64);
    const bytesPerSec = r64 ? Number(r64.readBigUInt64LE(0)) : parms.readUInt32LE(8);
    const bufferNs = parms.readUInt32LE(28) * NS_PER_TICK;
    return { kind: 'tbf', rateBps: bytesPerSec * 8, burstBytes: Math.round((bufferNs / 1e9) * bytesPerSec), limitBytes: parms.readUInt32LE(24) };
  }
  if (kind === 'netem') {
    if (options.length < 24) return null;
    const a = attrsOf(options, 24);
    const ns = (t: number, id: number) => { const x = a.get(id); return x ? Number(x.readBigInt64LE(0)) : t * NS_PER_TICK; };
    const rate = a.get(TCA_NETEM_RATE64) ? Number(a.get(TCA_NETEM_RATE64)!.readBigUInt64LE(0)) : a.get(TCA_NETEM_RATE)?.readUInt32LE(0) ?? 0;
    return {
      kind: 'netem',
      delayUs: Math.round(ns(options.readUInt32LE(0), TCA_NETEM_LATENCY64) / 1000),
      jitterUs: Math.round(ns(options.readUInt32LE(20), TCA_NETEM_JITTER64) / 1000),
      limit: options.readUInt32LE(4),
      lossPct: pct(options.readUInt32LE(8)),
      duplicatePct: pct(options.readUInt32LE(16)),
      reorderPct: a.get(TCA_NETEM_REORDER) ? pct(a.get(TCA_NETEM_REORDER)!.readUInt32LE(0)) : 0,
      corruptPct: a.get(TCA_NETEM_CORRUPT) ? pct(a.get(TCA_NETEM_CORRUPT)!.readUInt32LE(0)) : 0,
      rateBps: rate * 8,
    };
  }
  return null;
}

/** Whether this kernel can make a netem qdisc: sch_netem loaded, built in, or a module the
 *  kernel can load on demand (listed in modules.dep of the running kernel). */
export function netemAvailable(): boolean {
  if (fs.existsSync('/sys/module/sch_netem')) return true;
  const dir = `/lib/modules/${os.release()}`;
  for (const f of ['modules.builtin', 'modules.dep']) {
    try { if (/(^|\/)sch_netem\.ko/m.test(fs.readFileSync(`${dir}/${f}`, 'utf8'))) return true; } catch { /* no such file */ }
  }
  return false;
}
