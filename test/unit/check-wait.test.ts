// Checks that wait for convergence, without root: the retry scheduler (checks/wait.ts) on a fake
// clock, runChecks wired to it with a fake probe helper (what is re-probed, with which timeout,
// what the outcome and the text say), and `wait` in the topology (schema, resolution, errors at
// line:col).
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LAST_TRY_MS, MAX_WAIT_SECONDS, RETRY_MAX_MS, realClock, retryPause, untilHeld, type Clock, type Try } from '../../checks/wait.js';
import { matrixChecks, runChecks, type CheckOutcome } from '../../checks/run.js';
import { formatMatrix, formatTable, toJUnit } from '../../checks/format.js';
import type { Probe, ProbeResult } from '../../checks/probe.js';
import { withWait } from '../../cli/commands/check.js';
import { loadTopologyFile, loadTopologyText } from '../../topology/load.js';
import { formatDiagnostic } from '../../topology/source.js';
import { schema } from '../../topology/schema.js';
import type { Lab, LabCheck } from '../../topology/types.js';

const LABS = path.resolve(import.meta.dirname, '../../labs');

/** A clock that moves only when slept on or advanced; records every pause. */
function fakeClock(): Clock & { advance(ms: number): void; sleeps: number[]; t(): number } {
  let t = 50_000;
  const sleeps: number[] = [];
  return {
    now: () => t,
    sleep: async (ms) => { expect(ms).toBeGreaterThanOrEqual(0); sleeps.push(ms); t += ms; },
    advance: (ms) => { t += ms; },
    sleeps,
    t: () => t,
  };
}

interface Item { name: string; waitMs: number | null; timeoutMs: number; holdsFrom: number }

/** An observation that holds from the item's holdsFrom-th try on (Infinity: never); each round
 *  takes roundMs of the fake clock. Records every round's tries. */
function scenario(items: Item[], roundMs = 10) {
  const clock = fakeClock();
  const rounds: { at: number; tries: Try<Item>[] }[] = [];
  const run = () => untilHeld(items, {
    waiting: (x) => ({ waitMs: x.waitMs, timeoutMs: x.timeoutMs }),
    observe: async (tries) => {
      rounds.push({ at: clock.now(), tries });
      clock.advance(roundMs);
      return tries.map((t) => t.attempt >= t.item.holdsFrom);
    },
    holds: (_x, ok) => ok,
    clock,
  });
  return { clock, rounds, run };
}

describe('retry scheduler (checks/wait.ts)', () => {
  it('pauses 200 ms before the first retry, growing by half each round to at most 1 s', () => {
    expect([2, 3, 4, 5, 6, 7, 50].map(retryPause)).toEqual([200, 300, 450, 675, 1000, 1000, 1000]);
    expect(RETRY_MAX_MS).toBe(1000);
  });

  it('a try that holds at the 3rd attempt: 3 attempts, held after the two pauses and two rounds', async () => {
    const s = scenario([{ name: 'a', waitMs: 10_000, timeoutMs: 2000, holdsFrom: 3 }]);
    const t0 = s.clock.t();
    const [r] = await s.run();
    expect(r).toEqual({ result: true, attempts: 3, heldAfterMs: 10 + 200 + 10 + 300 });
    expect(s.clock.sleeps).toEqual([200, 300]);
    expect(s.rounds.map((x) => x.at - t0)).toEqual([0, 210, 520]);
    // The first try has the check's own timeout; the retries too while the wait has more left.
    expect(s.rounds.map((x) => x.tries[0].timeoutMs)).toEqual([2000, 2000, 2000]);
    expect(s.rounds.map((x) => x.tries[0].attempt)).toEqual([1, 2, 3]);
  });

  it('a check that never holds stops within its wait: no try starts after the deadline, none runs past it, no pause is longer than 1 s', async () => {
    const s = scenario([{ name: 'never', waitMs: 2000, timeoutMs: 2000, holdsFrom: Infinity }], 5);
    const t0 = s.clock.t();
    const [r] = await s.run();
    expect(r.result).toBe(false);
    expect(r.heldAfterMs).toBeNull();
    // 0, 205, 510, 965, 1645, then the pause is cut so the last try has LAST_TRY_MS before 2000.
    expect(s.rounds.map((x) => x.at - t0)).toEqual([0, 205, 510, 965, 1645, 2000 - LAST_TRY_MS]);
    expect(r.attempts).toBe(6);
    expect(s.clock.t() - t0).toBeLessThanOrEqual(2000);
    for (const p of s.clock.sleeps) expect(p).toBeLessThanOrEqual(RETRY_MAX_MS);
    for (const x of s.rounds.slice(1)) {
      const left = t0 + 2000 - x.at;
      expect(x.tries[0].timeoutMs, `retry at ${x.at - t0}`).toBeLessThanOrEqual(left);
    }
    expect(s.rounds.at(-1)!.tries[0].timeoutMs).toBe(LAST_TRY_MS);
  });

  it('a first try longer than the wait is the only one', async () => {
    const s = scenario([{ name: 'slow', waitMs: 1000, timeoutMs: 2000, holdsFrom: Infinity }], 2000);
    const [r] = await s.run();
    expect(r).toEqual({ result: false, attempts: 1, heldAfterMs: null });
    expect(s.clock.sleeps).toEqual([]);
  });

  it('without a wait there is no retry: one round, no pause, whatever it observed', async () => {
    const s = scenario([
      { name: 'fails', waitMs: null, timeoutMs: 2000, holdsFrom: 2 },
      { name: 'holds', waitMs: null, timeoutMs: 2000, holdsFrom: 1 },
    ]);
    const r = await s.run();
    expect(r).toEqual([{ result: false, attempts: 1, heldAfterMs: null }, { result: true, attempts: 1, heldAfterMs: 0 }]);
    expect(s.rounds).toHaveLength(1);
    expect(s.clock.sleeps).toEqual([]);
  });

  it('a check that holds at once costs nothing more, even with a wait', async () => {
    const s = scenario([{ name: 'ok', waitMs: 600_000, timeoutMs: 2000, holdsFrom: 1 }]);
    expect(await s.run()).toEqual([{ result: true, attempts: 1, heldAfterMs: 0 }]);
    expect(s.rounds).toHaveLength(1);
    expect(s.clock.sleeps).toEqual([]);
  });

  it('each round re-probes only the checks that do not hold yet, and it stops as soon as all hold', async () => {
    const s = scenario([
      { name: 'a', waitMs: 30_000, timeoutMs: 1000, holdsFrom: 1 },
      { name: 'b', waitMs: 30_000, timeoutMs: 1000, holdsFrom: 2 },
      { name: 'c', waitMs: 30_000, timeoutMs: 1000, holdsFrom: 4 },
      { name: 'd', waitMs: null, timeoutMs: 1000, holdsFrom: 3 },
    ]);
    const r = await s.run();
    expect(r.map((x) => [x.result, x.attempts])).toEqual([[true, 1], [true, 2], [true, 4], [false, 1]]);
    expect(s.rounds.map((x) => x.tries.map((t) => t.item.name).join(''))).toEqual(['abcd', 'bc', 'c', 'c']);
    expect(s.clock.sleeps).toEqual([200, 300, 450]);
  });

  it('100 waiting checks take as many rounds as the slowest needs, not 100 times as many', async () => {
    const items = Array.from({ length: 100 }, (_, i) => ({ name: `n${i}`, waitMs: 60_000, timeoutMs: 1000, holdsFrom: 1 + (i % 7) }));
    const s = scenario(items);
    const r = await s.run();
    expect(r.every((x) => x.result)).toBe(true);
    expect(r.map((x) => x.attempts)).toEqual(items.map((x) => x.holdsFrom));
    expect(s.rounds).toHaveLength(7);
    expect(s.rounds.map((x) => x.tries.length)).toEqual([100, 85, 70, 56, 42, 28, 14]);
  });

  it('different waits: the pause is cut so the nearest deadline still gets its last try; the longer wait goes on alone', async () => {
    const s = scenario([
      { name: 'short', waitMs: 600, timeoutMs: 2000, holdsFrom: Infinity },
      { name: 'long', waitMs: 3000, timeoutMs: 2000, holdsFrom: Infinity },
    ], 0);
    const t0 = s.clock.t();
    const r = await s.run();
    const byRound = s.rounds.map((x) => [x.at - t0, x.tries.map((t) => `${t.item.name}:${t.timeoutMs}`).join(' ')]);
    // 0; +200; +300 would pass 600-100, so 500 (short's last try, 100 ms left); then long alone.
    expect(byRound.slice(0, 4)).toEqual([[0, 'short:2000 long:2000'], [200, 'short:400 long:2000'], [500, 'short:100 long:2000'], [950, 'long:2000']]);
    expect(r[0].attempts).toBe(3);
    for (const x of s.rounds) expect(x.at - t0).toBeLessThan(3000);
    expect(s.clock.t() - t0).toBeLessThanOrEqual(3000);
  });

  it('on the real clock, a 0.6 s wait that never holds ends after about 0.6 s', async () => {
    const t0 = performance.now();
    let rounds = 0;
    const [r] = await untilHeld([1], {
      waiting: () => ({ waitMs: 600, timeoutMs: 2000 }),
      observe: async (tries) => { rounds++; return tries.map(() => false); },
      holds: (_x, ok) => ok,
      clock: realClock,
    });
    const ms = performance.now() - t0;
    expect(r.attempts).toBe(rounds);
    expect(rounds).toBeGreaterThanOrEqual(3); // 0, 200, 500
    expect(ms).toBeGreaterThanOrEqual(600 - LAST_TRY_MS - 5);
    expect(ms).toBeLessThan(1000);
  });
});

// ---------------------------------------------------------------- runChecks with a fake probe helper

function bridgeLab(): Lab {
  const r = loadTopologyFile(path.join(LABS, 'bridge.yml'));
  expect(r.diagnostics).toEqual([]);
  return r.lab!;
}

const pick = (lab: Lab, label: string): LabCheck => {
  const c = lab.checks.find((x) => x.label === label);
  if (!c) throw new Error(`test bug: no check ${label} in ${lab.checks.map((x) => x.label).join(', ')}`);
  return c;
};

const NONE = { ms: null, error: null, info: null, httpStatus: null, httpBody: null, addresses: null };
/** What the helper says of a ping with `count` requests, all answered in `ms`, or none. */
const PONG = (ms: number, count = 1) => ({ ...NONE, ok: true, ms, ping: { sent: count, received: count, rttMinMs: ms, rttAvgMs: ms, rttMaxMs: ms } });
const LOST = (count = 1) => ({ ...NONE, ok: false, error: 'no reply', ping: { sent: count, received: 0, rttMinMs: null, rttAvgMs: null, rttMaxMs: null } });

describe('runChecks with waits (fake probe helper, fake clock)', () => {
  it('a ping that replies from its 3rd try on holds after 2 retries; an http check that never does is retried until its wait is up; a tcp check without a wait is tried once', async () => {
    const lab = bridgeLab();
    const checks: LabCheck[] = [
      { ...pick(lab, 'ping client1 -> web'), waitMs: 5000 },
      { ...pick(lab, 'tcp client2 -> web:80') },
      { ...pick(lab, 'http client1 -> http://web/'), waitMs: 1500 },
      { ...pick(lab, 'ping solo -> web') },
    ];
    const clock = fakeClock();
    const calls: Probe[][] = [];
    const runProbes = async (probes: Probe[]): Promise<ProbeResult[]> => {
      calls.push(probes);
      clock.advance(10);
      const round = calls.length;
      return probes.map((p) => {
        if (p.kind === 'ping') return round >= 3 ? PONG(0.05) : LOST();
        return { ...NONE, ok: false, error: 'connect: Connection refused' };
      });
    };
    const r = await runChecks(lab, checks, 'checks', { runProbes, clock });
    const by = new Map(r.outcomes.map((x) => [x.label, x]));
    const ping = by.get('ping client1 -> web')!;
    expect(ping).toMatchObject({ pass: true, observed: 'reach', attempts: 3, heldAfterMs: 520, waitMs: 5000, detail: '1/1 replies, 0% loss, rtt 0.05/0.05/0.05 ms' });
    const tcp = by.get('tcp client2 -> web:80')!;
    expect(tcp).toMatchObject({ pass: false, observed: 'fail', attempts: 1, heldAfterMs: null, waitMs: null, detail: 'connect: Connection refused' });
    const http = by.get('http client1 -> http://web/')!;
    expect(http).toMatchObject({ pass: false, observed: 'fail', attempts: 5, heldAfterMs: null, waitMs: 1500, detail: 'connect: Connection refused' });
    // solo has only loopback: its ping fails, as expected, at once.
    expect(by.get('ping solo -> web')).toMatchObject({ pass: true, observed: 'fail', attempts: 1, heldAfterMs: 0, waitMs: null });

    // Round 1: every probe; then only the waiting checks that do not hold yet.
    const kinds = calls.map((ps) => ps.map((p) => p.kind).join(','));
    expect(kinds).toEqual(['ping,tcp,http,ping', 'ping,http', 'ping,http', 'http', 'http']);
    // The first try has the check's own timeout; retries never run past the wait.
    expect(calls[0].map((p) => p.timeoutMs)).toEqual([2000, 2000, 2000, 2000]);
    expect(calls.at(-1)![0].timeoutMs).toBe(LAST_TRY_MS);
    expect(r).toMatchObject({ passed: 2, failed: 2 });

    const text = formatTable(r);
    expect(text).toMatch(/^ping client1 -> web .* ok  held after 0\.5 s \(3 attempts\)  \(1\/1 replies, 0% loss, rtt 0\.05\/0\.05\/0\.05 ms\)$/m);
    expect(text).toMatch(/^http client1 -> http:\/\/web\/ .* FAIL  DISAGREES with prediction  did not hold within 1\.5 s \(5 attempts\)  \(connect: Connection refused\)$/m);
    // Without a wait, the row reads as it always did.
    expect(text).toMatch(/^tcp client2 -> web:80 .* FAIL  DISAGREES with prediction  \(connect: Connection refused\)$/m);
    expect(text).not.toMatch(/^ping solo -> web .*(held|attempt)/m);
    expect(toJUnit(r)).toContain('message="expected reach, observed fail (did not hold within 1.5 s (5 attempts)): connect: Connection refused"');

    // The JSON report carries the numbers.
    const json = JSON.parse(JSON.stringify(r)) as { outcomes: CheckOutcome[] };
    expect(json.outcomes.map((x) => [x.attempts, x.heldAfterMs])).toEqual([[3, 520], [1, null], [5, null], [1, 0]]);
  });

  it('without waits: one helper run with every probe at its own timeout, no pause (as before waits existed)', async () => {
    const lab = bridgeLab();
    const clock = fakeClock();
    const calls: Probe[][] = [];
    const runProbes = async (probes: Probe[]) => { calls.push(probes); return probes.map(() => ({ ...NONE, ok: false, error: 'no reply' })); };
    const checks = lab.checks.filter((c) => c.kind !== 'dns');
    expect(checks.every((c) => c.waitMs === null)).toBe(true);
    const r = await runChecks(lab, checks, 'checks', { runProbes, clock });
    expect(calls).toHaveLength(1);
    expect(calls[0].map((p) => p.timeoutMs)).toEqual(checks.map((c) => c.timeoutMs));
    expect(calls[0].map((p) => p.kind)).toEqual(checks.map((c) => c.kind));
    expect(clock.sleeps).toEqual([]);
    expect(r.outcomes.every((x) => x.attempts === 1)).toBe(true);
  });

  it('the matrix with a wait: pairs that reach only from the 2nd round on hold then, and the grid says so', async () => {
    const lab = bridgeLab();
    const clock = fakeClock();
    const calls: Probe[][] = [];
    // solo has only loopback; every other pair answers from the 2nd round on.
    const runProbes = async (probes: Probe[]) => {
      calls.push(probes);
      clock.advance(5);
      return probes.map((p) => (calls.length >= 2 && !p.netns!.endsWith('.solo') ? PONG(0.1) : LOST()));
    };
    const r = await runChecks(lab, withWait(matrixChecks(lab), 2), 'matrix', { runProbes, clock });
    expect(r).toMatchObject({ passed: 12, failed: 0, disagreements: 0 });
    const reach = r.outcomes.filter((x) => x.predicted === 'reach');
    expect(reach).toHaveLength(6);
    for (const x of reach) expect(x, x.label).toMatchObject({ attempts: 2, heldAfterMs: 205 });
    for (const x of r.outcomes.filter((y) => y.predicted === 'fail')) expect(x, x.label).toMatchObject({ attempts: 1, heldAfterMs: 0 });
    expect(calls.map((c) => c.length)).toEqual([r.outcomes.filter((x) => x.address !== null).length, 6]);
    expect(formatMatrix(r, lab.nodes.map((n) => n.name))).toContain('\n6 pairs held only after retries (the last after 0.2 s)\n');
  });

  it('prediction only: no tries, no held time', async () => {
    const lab = bridgeLab();
    const r = await runChecks(lab, lab.checks.map((c) => ({ ...c, waitMs: 3000 })), 'checks', { predictOnly: true });
    for (const x of r.outcomes) expect(x).toMatchObject({ waitMs: 3000, attempts: 0, heldAfterMs: null, observed: null });
    expect(formatTable(r)).not.toMatch(/held|attempt/);
  });

  it('--wait (withWait) gives a wait to the checks without one and leaves a check\'s own alone', () => {
    const lab = bridgeLab();
    const own = { ...lab.checks[0], waitMs: 7000 };
    const got = withWait([own, lab.checks[1]], 2.5);
    expect(got.map((c) => c.waitMs)).toEqual([7000, 2500]);
    expect(withWait([lab.checks[1]], undefined)[0].waitMs).toBeNull();
    // A check from a state written before waits existed has no waitMs at all.
    const old = { ...lab.checks[1] } as Partial<LabCheck>;
    delete old.waitMs;
    expect(withWait([old as LabCheck], 1)[0].waitMs).toBe(1000);
  });
});

// ---------------------------------------------------------------- `wait` in the topology

const located = (text: string): string[] => loadTopologyText(text, 'inline.yml').diagnostics.map((d) => formatDiagnostic(d).replace(/^inline\.yml:/, ''));
const BASE = 'name: t\nnetworks: { lan: {} }\nnodes:\n  a: { networks: [lan] }\n  b: { networks: [lan] }\nchecks:\n';

describe('`wait` in checks: schema and resolution', () => {
  it('every kind takes it, fractions allowed; it becomes waitMs; absent is null', () => {
    const r = loadTopologyText(BASE + [
      '  - ping: { from: a, to: b, wait: 10 }',
      '  - tcp: { from: a, to: b, port: 80, wait: 0.5 }',
      '  - http: { from: a, url: "http://b/", wait: 600 }',
      '  - dns: { from: a, name: b, wait: 2.25 }',
      '  - ping: { from: b, to: a }',
      '',
    ].join('\n'), 'inline.yml');
    expect(r.diagnostics.map(formatDiagnostic)).toEqual([]);
    expect(r.lab!.checks.map((c) => c.waitMs)).toEqual([10_000, 500, 600_000, 2250, null]);
  });

  it('out of range, not a number: one error each at its line:col, naming the key', () => {
    expect(located(BASE + '  - ping: { from: a, to: b, wait: 0 }\n')).toEqual(['7:35: checks[0].ping.wait: number 0 is out of range; expected a value > 0']);
    expect(located(BASE + '  - tcp: { from: a, to: b, port: 80, wait: -1 }\n')).toEqual(['7:44: checks[0].tcp.wait: number -1 is out of range; expected a value > 0']);
    expect(located(BASE + '  - http: { from: a, url: "http://b/", wait: 601 }\n')).toEqual(['7:46: checks[0].http.wait: number 601 is out of range; expected a value <= 600']);
    expect(located(BASE + '  - dns:\n      from: a\n      name: b\n      wait: 10s\n')).toEqual(['10:13: checks[0].dns.wait: expected a number, found string "10s"']);
    expect(located(BASE + '  - ping: { from: a, to: b, wiat: 3 }\n')).toEqual(['7:29: checks[0].ping.wiat: unknown key "wiat"; did you mean "wait"? (allowed: from, to, count, timeout, wait, expect)']);
  });

  it('the schema\'s bound is the one --wait uses', () => {
    const defs = schema.definitions as Record<string, { maximum?: number; exclusiveMinimum?: number; properties?: Record<string, { properties: Record<string, { $ref?: string }> }> }>;
    expect(defs.wait.maximum).toBe(MAX_WAIT_SECONDS);
    expect(defs.wait.exclusiveMinimum).toBe(0);
    for (const kind of ['ping', 'tcp', 'http', 'dns']) expect(defs.check.properties![kind].properties.wait.$ref, kind).toBe('#/definitions/wait');
  });
});
