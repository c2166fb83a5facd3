// Link impairments (`impair:` on a links[] entry, per direction with a:/b:, or on a network
// attachment): values parsed as tc writes them (rates in bit/kbit/mbit/gbit/tbit or bps/kbps/
// mbps/gbps bytes per second, times in s/ms/us, percentages), checked for sense (jitter and
// reorder need a delay), and put on the interfaces whose egress carries them. Which ones need
// the kernel's sch_netem (everything but rate, and loss, which nftables can do) is decided here
// too, so `up` can refuse them on a kernel without it before anything is built. Also the text
// form of an impairment (status, plan, the web view). Pure.
import type { Impairment, LabNode, RawImpair } from './types.js';
import type { PathSeg } from './source.js';
import type { LinkDraft, ResolveContext } from './resolve-context.js';
import { parsePercent as parseTcPercent, parseRate as parseTcRate } from './rate.js';

const TIME_UNITS: Record<string, number> = { s: 1e6, sec: 1e6, secs: 1e6, ms: 1e3, msec: 1e3, msecs: 1e3, us: 1, usec: 1, usecs: 1 };

/** Bits per second from `10mbit`, `100kbps` (bytes), or a bare number (bits, as tc): rate.ts's
 *  parser, to whole bits. */
export function parseRate(v: string | number): number | null {
  const bits = parseTcRate(v);
  return bits === null ? null : Math.round(bits);
}

/** Microseconds from `20ms`, `500us`, `1.5s`, or a bare number (microseconds, as tc). */
export function parseTime(v: string | number): number | null {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? Math.round(v) : null;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(v);
  if (!m) return null;
  const f = TIME_UNITS[m[2].toLowerCase() || 'us'];
  return f === undefined ? null : Math.round(Number(m[1]) * f);
}

/** Percent (0-100) from `1%`, `0.1%` (rate.ts's parser), or a number of percent. */
export function parsePercent(v: string | number): number | null {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 && v <= 100 ? v : null;
  return parseTcPercent(v.trim());
}

export const NO_IMPAIRMENT: Impairment = { rateBps: null, delayUs: null, jitterUs: null, lossPct: null, duplicatePct: null, corruptPct: null, reorderPct: null, limit: null };

/** True when nothing is set. */
export function isEmptyImpairment(i: Impairment): boolean {
  return Object.values(i).every((v) => v === null);
}

/** What of an impairment needs netem: everything but a rate and a loss (tbf and nftables do those). */
export function netemFeatures(i: Impairment): string[] {
  const out: string[] = [];
  if (i.delayUs) out.push('delay');
  if (i.jitterUs) out.push('jitter');
  if (i.duplicatePct) out.push('duplicate');
  if (i.corruptPct) out.push('corrupt');
  if (i.reorderPct) out.push('reorder');
  return out;
}

/** A rate or a time as tc writes them: `10mbit`, `20ms`, `500us`. */
export const fmtRate = (bps: number) => (bps % 1e9 === 0 ? `${bps / 1e9}gbit` : bps % 1e6 === 0 ? `${bps / 1e6}mbit` : bps % 1e3 === 0 ? `${bps / 1e3}kbit` : `${bps}bit`);
export const fmtTime = (us: number) => (us % 1000 === 0 ? `${us / 1000}ms` : `${us}us`);

/** `rate 10mbit delay 20ms jitter 5ms loss 1%` (tc's words), or '' for none. */
export function impairmentText(i: Impairment | undefined | null): string {
  if (!i) return '';
  const parts: string[] = [];
  if (i.rateBps !== null) parts.push(`rate ${fmtRate(i.rateBps)}`);
  if (i.delayUs !== null) parts.push(`delay ${fmtTime(i.delayUs)}`);
  if (i.jitterUs !== null) parts.push(`jitter ${fmtTime(i.jitterUs)}`);
  if (i.lossPct !== null) parts.push(`loss ${i.lossPct}%`);
  if (i.duplicatePct !== null) parts.push(`duplicate ${i.duplicatePct}%`);
  if (i.corruptPct !== null) parts.push(`corrupt ${i.corruptPct}%`);
  if (i.reorderPct !== null) parts.push(`reorder ${i.reorderPct}%`);
  if (i.limit !== null) parts.push(`limit ${i.limit}`);
  return parts.join(' ');
}

type Err = (p: PathSeg[], message: string) => void;

/** Parses the values of one `impair:` map (without a:/b:) onto `base`; problems at their keys. */
export function parseImpair(raw: RawImpair, p: PathSeg[], err: Err, base: Impairment = NO_IMPAIRMENT): Impairment {
  const out: Impairment = { ...base };
  if (raw.rate !== undefined) {
    const v = parseRate(raw.rate);
    if (v === null) err([...p, 'rate'], `rate "${raw.rate}" is not a rate; expected e.g. 10mbit, 512kbit, 1gbit, 100kbps (bytes per second) or a number of bits per second`);
    else out.rateBps = v;
  }
  for (const k of ['delay', 'jitter'] as const) {
    if (raw[k] === undefined) continue;
    const v = parseTime(raw[k]!);
    if (v === null) err([...p, k], `${k} "${raw[k]}" is not a time; expected e.g. 20ms, 500us or 1s`);
    else if (v > 60_000_000) err([...p, k], `${k} ${raw[k]} is over a minute`);
    else out[k === 'delay' ? 'delayUs' : 'jitterUs'] = v;
  }
  for (const k of ['loss', 'duplicate', 'corrupt', 'reorder'] as const) {
    if (raw[k] === undefined) continue;
    const v = parsePercent(raw[k]!);
    if (v === null) err([...p, k], `${k} "${raw[k]}" is not a percentage from 0% to 100%; expected e.g. 1% or 0.1%`);
    else out[`${k}Pct` as 'lossPct'] = v;
  }
  if (raw.limit !== undefined) out.limit = raw.limit;
  return out;
}

/** The combination rules tc and netem have: jitter and reorder need a delay. */
export function checkCombination(i: Impairment, p: PathSeg[], err: Err): void {
  if (i.jitterUs && !i.delayUs) err([...p, 'jitter'], 'jitter varies a delay: give delay too');
  if (i.jitterUs && i.delayUs && i.jitterUs > i.delayUs) err([...p, 'jitter'], `jitter ${fmtTime(i.jitterUs)} is larger than delay ${fmtTime(i.delayUs)}: packets would be sent before they arrive`);
  if (i.reorderPct && !i.delayUs) err([...p, 'reorder'], 'reorder sends some packets ahead of the delayed ones: give delay too');
}

/** The resolver's impairment stage: links (both ends' egress, a:/b: per direction) and network
 *  attachments (that interface, both directions). */
export function resolveImpairments(ctx: ResolveContext, nodes: LabNode[], links: LinkDraft[]): void {
  const { err } = ctx;
  const byName = new Map(nodes.map((n) => [n.name, n]));
  (ctx.raw.links ?? []).forEach((l, i) => {
    if (!l.impair) return;
    const p: PathSeg[] = ['links', i, 'impair'];
    const d = links.find((x) => x.index === i);
    const { a, b, ...both } = l.impair;
    const base = parseImpair(both, p, err);
    const sides = [[d?.a, a, 'a'], [d?.b, b, 'b']] as const;
    for (const [end, own, key] of sides) {
      const imp = own ? parseImpair(own, [...p, key], err, base) : base;
      checkCombination(imp, own ? [...p, key] : p, err);
      if (!end || isEmptyImpairment(imp)) continue;
      const f = byName.get(end.node)?.interfaces.find((x) => x.name === end.iface);
      if (f) f.impair = imp;
    }
  });
  for (const [name, raw] of ctx.rawNodes) {
    if (!raw.networks || Array.isArray(raw.networks)) continue;
    for (const [net, att] of Object.entries(raw.networks)) {
      if (!att?.impair) continue;
      const p: PathSeg[] = ['nodes', name, 'networks', net, 'impair'];
      const imp = parseImpair(att.impair, p, err);
      checkCombination(imp, p, err);
      const f = byName.get(name)?.interfaces.find((x) => x.kind === 'network' && x.network === net);
      if (f && !isEmptyImpairment(imp)) f.impair = imp;
    }
  }
}
