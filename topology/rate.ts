// Rates and percentages as topologies write them. A rate is what tc(8) accepts: a number with a
// unit, case-insensitive, no space: bit, kbit, mbit, gbit, tbit (bits per second, powers of
// 1000), kibit, mibit, gibit, tibit (powers of 1024), and bps, kbps, mbps, gbps, tbps, kibps,
// mibps, gibps, tibps (BYTES per second, as tc writes them); a bare number is bits per second,
// as in tc. Pure, no root.

const BIT_UNITS: Record<string, number> = {
  bit: 1, kbit: 1e3, mbit: 1e6, gbit: 1e9, tbit: 1e12,
  kibit: 2 ** 10, mibit: 2 ** 20, gibit: 2 ** 30, tibit: 2 ** 40,
};
const BYTE_UNITS: Record<string, number> = {
  bps: 8, kbps: 8e3, mbps: 8e6, gbps: 8e9, tbps: 8e12,
  kibps: 8 * 2 ** 10, mibps: 8 * 2 ** 20, gibps: 8 * 2 ** 30, tibps: 8 * 2 ** 40,
};

export const RATE_HINT = 'a rate like 8mbit: a number with a unit of bit, kbit, mbit, gbit, tbit (bits per second) or bps, kbps, mbps, gbps, tbps (bytes per second, as tc writes them)';

/** Bits per second of a tc-style rate (a string like "8mbit", or a number of bits per second),
 *  or null when it is not one, or not above 0. */
export function parseRate(v: unknown): number | null {
  if (typeof v === 'number') return Number.isFinite(v) && v > 0 ? v : null;
  if (typeof v !== 'string') return null;
  const m = /^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([a-z]*)$/i.exec(v);
  if (!m) return null;
  const unit = m[2].toLowerCase();
  const scale = unit === '' ? 1 : BIT_UNITS[unit] ?? BYTE_UNITS[unit];
  if (scale === undefined) return null;
  const bits = Number(m[1]) * scale;
  return Number.isFinite(bits) && bits > 0 ? bits : null;
}

/** A rate for people: three significant digits and a unit of bit/s, kbit/s, Mbit/s, Gbit/s
 *  (powers of 1000): 18.7 Mbit/s, 940 Mbit/s, 3.52 Gbit/s. */
export function formatRate(bitsPerSecond: number): string {
  const units: [number, string][] = [[1e12, 'Tbit/s'], [1e9, 'Gbit/s'], [1e6, 'Mbit/s'], [1e3, 'kbit/s']];
  for (const [scale, name] of units) {
    if (bitsPerSecond >= scale * 0.9995) return `${Number((bitsPerSecond / scale).toPrecision(3))} ${name}`;
  }
  return `${Number(bitsPerSecond.toPrecision(3))} bit/s`;
}

/** A percentage as written: "5%", "0.5%", "100%" (0 to 100), or null. */
export function parsePercent(v: unknown): number | null {
  if (typeof v !== 'string') return null;
  const m = /^([0-9]+(?:\.[0-9]+)?)%$/.exec(v);
  if (!m) return null;
  const n = Number(m[1]);
  return n >= 0 && n <= 100 ? n : null;
}
