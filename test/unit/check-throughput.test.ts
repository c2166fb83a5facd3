// Throughput checks and ping's reported numbers, without root: tc-style rates and percentages,
// `throughput:` and ping's `expect: { max_loss }` in the topology (defaults, errors at
// line:col), the probe helper's protocol (lines written, lines read), runChecks with a fake
// helper (what each probe asks for, the verdicts against min and max_loss, throughput measured
// one at a time after the round's other probes, a wait retrying a rate below its min), the
// scheduler's busy time, the ad hoc --throughput, the prediction, and the text and JSON.
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatRate, parsePercent, parseRate } from '../../topology/rate.js';
import { loadTopologyFile, loadTopologyText } from '../../topology/load.js';
import { formatDiagnostic } from '../../topology/source.js';
import { predictCheck } from '../../topology/simulate.js';
import { adHocCheck, runChecks, type CheckOutcome } from '../../checks/run.js';
import { formatTable, toJUnit } from '../../checks/format.js';
import { PING_INTERVAL_MS, parseResult, probeLine, type Probe, type ProbeResult } from '../../checks/probe.js';
import { LAST_TRY_MS, untilHeld, type Clock, type Try } from '../../checks/wait.js';
import { main } from '../../cli/main.js';
import type { Lab, LabCheck } from '../../topology/types.js';

const LABS = path.resolve(import.meta.dirname, '../../labs');

const located = (text: string): string[] => loadTopologyText(text, 'inline.yml').diagnostics.map((d) => formatDiagnostic(d).replace(/^inline\.yml:/, ''));
const BASE = 'name: t\nnetworks: { lan: { subnet: 10.9.0.0/24 } }\nnodes:\n  a: { networks: [lan] }\n  b: { networks: { lan: { ipv4: 10.9.0.20 } } }\n  h: { network_mode: host }\nchecks:\n';
function labOf(checks: string[]): Lab {
  const r = loadTopologyText(BASE + checks.map((c) => `  - ${c}\n`).join(''), 'inline.yml');
  expect(r.diagnostics.map(formatDiagnostic)).toEqual([]);
  return r.lab!;
}

describe('rates and percentages (topology/rate.ts)', () => {
  it('tc\'s units: bit, kbit, mbit, gbit, tbit are bits per second; bps, kbps, mbps, gbps are bytes per second; case does not matter', () => {
    const cases: [string | number, number][] = [
      ['8mbit', 8e6], ['8Mbit', 8e6], ['1gbit', 1e9], ['500kbit', 5e5], ['100bit', 100], ['2tbit', 2e12], ['1.5mbit', 1.5e6], ['.5gbit', 5e8],
      ['1kibit', 1024], ['1mibit', 2 ** 20],
      ['1bps', 8], ['1kbps', 8000], ['1mbps', 8e6], ['2.5MBps', 2e7], ['1gbps', 8e9], ['1kibps', 8192],
      ['1000', 1000], [8_000_000, 8e6],
    ];
    for (const [v, bits] of cases) expect(parseRate(v), String(v)).toBe(bits);
  });

  it('anything else is not a rate: unknown units, a space, signs, zero, nothing', () => {
    for (const bad of ['8mbits', '8 mbit', 'mbit', '', '-1mbit', '+1mbit', '0mbit', '0', '1e6bit', '8mb', '8m', 'fast', 0, -5, Infinity, NaN, null, true, {}]) {
      expect(parseRate(bad), JSON.stringify(bad)).toBeNull();
    }
  });

  it('formats rates for people with three significant digits', () => {
    expect(formatRate(18.7e6)).toBe('18.7 Mbit/s');
    expect(formatRate(19_136_768)).toBe('19.1 Mbit/s');
    expect(formatRate(940e6)).toBe('940 Mbit/s');
    expect(formatRate(999.4e6)).toBe('999 Mbit/s');
    expect(formatRate(999.6e6)).toBe('1 Gbit/s');
    expect(formatRate(3.523e9)).toBe('3.52 Gbit/s');
    expect(formatRate(8e6)).toBe('8 Mbit/s');
    expect(formatRate(512e3)).toBe('512 kbit/s');
    expect(formatRate(512)).toBe('512 bit/s');
  });

  it('percentages are written with %, from 0 to 100', () => {
    expect(['0%', '5%', '0.5%', '100%'].map(parsePercent)).toEqual([0, 5, 0.5, 100]);
    for (const bad of ['5', 5, '101%', '-1%', '5 %', '%', '.5%', '']) expect(parsePercent(bad), JSON.stringify(bad)).toBeNull();
  });
});

describe('throughput and ping expect in the topology', () => {
  it('throughput defaults: port 5201, 3 s, 2 s to connect, expectation from the prediction; expect { min } implies reach', () => {
    const lab = labOf([
      'throughput: { from: a, to: b }',
      'throughput: { from: a, to: 10.9.0.20, seconds: 1.5, port: 6000, timeout: 1, wait: 10, expect: { min: 8mbit } }',
      'throughput: { from: b, to: a, expect: fail }',
      'throughput: { from: b, to: a, expect: { min: 1000000 } }',
    ]);
    const [x, y, z, n] = lab.checks;
    expect(x).toMatchObject({ kind: 'throughput', from: 'a', target: 'b', port: 5201, durationMs: 3000, timeoutMs: 2000, waitMs: null, expect: null, label: 'throughput a -> b' });
    expect(x.minBitsPerSecond ?? null).toBeNull();
    expect(y).toMatchObject({ target: '10.9.0.20', port: 6000, durationMs: 1500, timeoutMs: 1000, waitMs: 10_000, expect: 'reach', minBitsPerSecond: 8e6, label: 'throughput a -> 10.9.0.20:6000' });
    expect(z).toMatchObject({ expect: 'fail' });
    expect(n).toMatchObject({ expect: 'reach', minBitsPerSecond: 1e6 });
  });

  it('ping: count up to 1000, expect { max_loss } implies reach', () => {
    const lab = labOf(['ping: { from: a, to: b, count: 1000, expect: { max_loss: 5% } }', 'ping: { from: a, to: b, count: 20 }']);
    expect(lab.checks[0]).toMatchObject({ count: 1000, expect: 'reach', maxLossPercent: 5 });
    expect(lab.checks[1]).toMatchObject({ count: 20, expect: null });
    expect(lab.checks[1].maxLossPercent ?? null).toBeNull();
  });

  it('bad values: one error each at its line:col, naming the key', () => {
    expect(located(BASE + '  - throughput: { from: a, to: b, expect: { min: 8mbits } }\n')).toEqual([
      '8:50: checks[0].throughput.expect.min: "8mbits" is not a rate above 0; expected a rate like 8mbit: a number with a unit of bit, kbit, mbit, gbit, tbit (bits per second) or bps, kbps, mbps, gbps, tbps (bytes per second, as tc writes them)',
    ]);
    expect(located(BASE + '  - throughput:\n      from: a\n      to: b\n      expect: { min: 0 }\n')).toEqual([
      expect.stringMatching(/^11:22: checks\[0\]\.throughput\.expect\.min: 0 is not a rate above 0; expected a rate like 8mbit/),
    ]);
    expect(located(BASE + '  - throughput: { from: a, to: b, seconds: 0 }\n')).toEqual(['8:44: checks[0].throughput.seconds: number 0 is out of range; expected a value > 0']);
    expect(located(BASE + '  - throughput: { from: a, to: b, seconds: 61 }\n')).toEqual(['8:44: checks[0].throughput.seconds: number 61 is out of range; expected a value <= 60']);
    expect(located(BASE + '  - throughput: { from: a, to: b, port: 70000 }\n')).toEqual(['8:41: checks[0].throughput.port: number 70000 is out of range; expected a value <= 65535']);
    expect(located(BASE + '  - throughput: { from: a, to: b, expect: { max: 8mbit } }\n')).toEqual([
      '8:35: checks[0].throughput.expect: missing required key "min"',
      '8:45: checks[0].throughput.expect.max: unknown key "max" (allowed: min)',
    ]);
    expect(located(BASE + '  - throughput: { from: a, to: b, expect: maybe }\n')).toEqual(['8:43: checks[0].throughput.expect: string "maybe" is not allowed; expected reach, fail or { min }']);
    expect(located(BASE + '  - throughput: { from: a, to: bb }\n')).toEqual(['8:32: checks[0].throughput.to: node "bb" is not defined; did you mean "b"? (nodes: a, b, h)']);
    expect(located(BASE + '  - throughput: { from: a, to: 10.9.0.99 }\n')).toEqual(['8:32: checks[0].throughput.to: no node of this lab has the address 10.9.0.99: the receiver runs in the namespace of the node that has it']);
    expect(located(BASE + '  - throughput: { from: a, to: 10.9.0.300 }\n')).toEqual(['8:32: checks[0].throughput.to: "10.9.0.300" is not a valid IPv4 address']);
    expect(located(BASE + '  - throughput: { from: h, to: b }\n')).toEqual(['8:25: checks[0].throughput.from: node "h" has network_mode host: a throughput check runs only between namespaces the lab made']);
    expect(located(BASE + '  - throughput: { from: a, to: h }\n')).toEqual(['8:32: checks[0].throughput.to: node "h" has network_mode host: a throughput check runs only between namespaces the lab made']);
    expect(located(BASE + '  - throughput: { from: a, to: b, secs: 3 }\n')).toEqual(['8:35: checks[0].throughput.secs: unknown key "secs" (allowed: from, to, seconds, port, timeout, wait, expect)']);
    expect(located(BASE + '  - ping: { from: a, to: b, expect: { max_loss: 5 } }\n')).toEqual(['8:49: checks[0].ping.expect.max_loss: expected a string, found number 5']);
    expect(located(BASE + '  - ping: { from: a, to: b, expect: { max_loss: 101% } }\n')).toEqual(['8:49: checks[0].ping.expect.max_loss: "101%" is not a percentage; expected 0% to 100%, e.g. 5% or 0.5%']);
    expect(located(BASE + '  - ping: { from: a, to: b, count: 1001 }\n')).toEqual(['8:36: checks[0].ping.count: number 1001 is out of range; expected a value <= 1000']);
  });

  it('the simulator predicts throughput like tcp: reachability of the address, the rate not at all', () => {
    const lab = loadTopologyFile(path.join(LABS, 'bridge.yml')).lab!;
    const check = (from: string, to: string): LabCheck => adHocCheck(lab, 'throughput', `${from}:${to}`, 0, null);
    const ok = predictCheck(lab, check('client1', 'web'));
    expect(ok.reach).toBe(true);
    expect(ok.address).toBe('10.10.0.10');
    expect(ok.reason).toMatch(/netlab's receiver listens on port 5201; the rate is measured, not predicted$/);
    expect(predictCheck(lab, check('solo', 'web')).reach).toBe(false);
    expect(predictCheck(lab, check('client1', 'solo')).reach).toBe(false);
    const tcp = predictCheck(lab, { ...check('client2', 'web'), kind: 'tcp', port: 5201 });
    expect({ ...predictCheck(lab, check('client2', 'web')), reason: '' }).toEqual({ ...tcp, reason: '' });
  });
});

describe('ad hoc --throughput FROM:TO[:SECONDS]', () => {
  const lab = () => loadTopologyFile(path.join(LABS, 'bridge.yml')).lab!;
  it('seconds default to 3; a node may be given by its address', () => {
    expect(adHocCheck(lab(), 'throughput', 'client1:web', 0, null)).toMatchObject({ kind: 'throughput', from: 'client1', target: 'web', port: 5201, durationMs: 3000, timeoutMs: 2000, label: 'throughput client1 -> web' });
    expect(adHocCheck(lab(), 'throughput', 'client1:10.10.0.10:0.5', 1, 'reach')).toMatchObject({ target: '10.10.0.10', durationMs: 500, expect: 'reach' });
  });
  it('bad specs say what is expected', () => {
    const err = (spec: string) => { try { adHocCheck(lab(), 'throughput', spec, 0, null); return ''; } catch (e) { return (e as Error).message; } };
    expect(err('client1')).toBe('--throughput client1: expected FROM:TO[:SECONDS]');
    expect(err('client1:web:0')).toBe('--throughput client1:web:0: "0" is not a number of seconds; expected more than 0 and at most 60, e.g. 3');
    expect(err('client1:web:61')).toMatch(/"61" is not a number of seconds/);
    expect(err('client1:web:3s')).toMatch(/"3s" is not a number of seconds/);
    expect(err('client1:web:1:2')).toBe('--throughput client1:web:1:2: expected FROM:TO[:SECONDS]');
    expect(err('client1:nosuch')).toBe('--throughput client1:nosuch: nosuch is neither a node nor an IPv4 address');
    expect(err('client1:10.10.0.99')).toBe('--throughput client1:10.10.0.99: no node of lab bridge has the address 10.10.0.99');
  });
  it('through the CLI: predicted, and a bad spec is a usage error (exit 2)', async () => {
    let out = '', err = '';
    const io = { out: (s: string) => { out += s; }, err: (s: string) => { err += s; } };
    expect(await main(['node', 'netlab', 'check', 'labs/bridge.yml', '--predict-only', '--throughput', 'client1:web', '--throughput', 'solo:web:1'], io)).toBe(0);
    expect(out).toMatch(/^throughput client1 -> web\s+reach \(pred\)\s+reach$/m);
    expect(out).toMatch(/^throughput solo -> web\s+fail \(pred\)\s+fail$/m);
    out = ''; err = '';
    expect(await main(['node', 'netlab', 'check', 'labs/bridge.yml', '--predict-only', '--throughput', 'client1:web:0'], io)).toBe(2);
    expect(err).toBe('netlab: --throughput client1:web:0: "0" is not a number of seconds; expected more than 0 and at most 60, e.g. 3\n');
  });
});

describe('the probe helper\'s protocol (checks/probe.ts <-> runtime/shim.c)', () => {
  it('lines written: ping with its interval, throughput with the receiver\'s namespace and the duration', () => {
    expect(probeLine(4, { kind: 'ping', netns: 'netlab.t.a', address: '10.9.0.20', count: 20, timeoutMs: 2000 })).toBe(`4\tping\t/run/netns/netlab.t.a\t10.9.0.20\t20\t2000\t${PING_INTERVAL_MS}\n`);
    expect(probeLine(5, { kind: 'throughput', netns: 'netlab.t.a', address: '10.9.0.20', port: 5201, timeoutMs: 2000, receiverNetns: 'netlab.t.b', durationMs: 3000 }))
      .toBe('5\tthroughput\t/run/netns/netlab.t.a\t10.9.0.20\t5201\t2000\t/run/netns/netlab.t.b\t3000\n');
    expect(() => probeLine(6, { kind: 'throughput', netns: 'netlab.t.a', address: '10.9.0.20', port: 5201, timeoutMs: 2000 })).toThrow(/receiver/);
  });

  it('lines read: ping stats (ok, with a send error, failed with and without stats), throughput bytes over the window', () => {
    const ping: Probe = { kind: 'ping', netns: 'n', address: '10.9.0.20', count: 20, timeoutMs: 2000 };
    expect(parseResult(ping, '4\tok\t20,16,50,70,90')).toMatchObject({ ok: true, ms: 0.07, error: null, ping: { sent: 20, received: 16, rttMinMs: 0.05, rttAvgMs: 0.07, rttMaxMs: 0.09 } });
    expect(parseResult(ping, '4\tok\t3,1,50,50,50\tsend: Network is unreachable')).toMatchObject({ ok: true, error: 'send: Network is unreachable', ping: { sent: 3, received: 1 } });
    expect(parseResult(ping, '4\tfail\tno reply\t20,0,0,0,0')).toMatchObject({ ok: false, error: 'no reply', ping: { sent: 20, received: 0, rttMinMs: null, rttAvgMs: null, rttMaxMs: null } });
    expect(parseResult(ping, '4\tfail\tnamespace missing')).toMatchObject({ ok: false, error: 'namespace missing', ping: null });
    const tp: Probe = { kind: 'throughput', netns: 'n', address: '10.9.0.20', port: 5201, timeoutMs: 2000, receiverNetns: 'm', durationMs: 3000 };
    expect(parseResult(tp, '5\tok\t7152568\t3000000')).toMatchObject({ ok: true, throughput: { bytes: 7152568, seconds: 3 } });
    expect(parseResult(tp, '5\tfail\tconnect: Connection refused')).toMatchObject({ ok: false, error: 'connect: Connection refused' });
    expect(parseResult(tp, '5\tok\tgarbage')).toMatchObject({ ok: false, error: expect.stringMatching(/^unreadable result/) });
  });
});

// ---------------------------------------------------------------- runChecks with a fake helper

const NONE = { ms: null, error: null, info: null, httpStatus: null, httpBody: null, addresses: null };

/** A clock that moves only when slept on or advanced. */
function fakeClock(): Clock & { advance(ms: number): void; t(): number } {
  let t = 10_000;
  return { now: () => t, sleep: async (ms) => { t += ms; }, advance: (ms) => { t += ms; }, t: () => t };
}

describe('runChecks: ping numbers and throughput (fake probe helper)', () => {
  it('ping reports sent, received, loss and rtt; with max_loss it fails above it; without replies it fails; a failed send is said', async () => {
    const lab = labOf([
      'ping: { from: a, to: b, count: 20 }',
      'ping: { from: a, to: b, count: 20, expect: { max_loss: 5% } }',
      'ping: { from: a, to: b, count: 20, expect: { max_loss: 20% } }',
      'ping: { from: b, to: a, count: 3 }',
      'ping: { from: b, to: a }',
    ]);
    const seen: Probe[] = [];
    const runProbes = async (probes: Probe[]): Promise<ProbeResult[]> => {
      seen.push(...probes);
      return probes.map((p, i) => {
        if (i < 3) return { ...NONE, ok: true, ms: 0.07, ping: { sent: 20, received: 16, rttMinMs: 0.05, rttAvgMs: 0.07, rttMaxMs: 0.094 } };
        if (i === 3) return { ...NONE, ok: false, error: 'no reply', ping: { sent: 3, received: 0, rttMinMs: null, rttAvgMs: null, rttMaxMs: null } };
        return { ...NONE, ok: false, error: 'send: Network is unreachable', ping: { sent: 1, received: 0, rttMinMs: null, rttAvgMs: null, rttMaxMs: null } };
      });
    };
    const r = await runChecks(lab, lab.checks, 'checks', { runProbes, clock: fakeClock() });
    expect(seen.map((p) => [p.kind, p.count, p.address])).toEqual([['ping', 20, '10.9.0.20'], ['ping', 20, '10.9.0.20'], ['ping', 20, '10.9.0.20'], ['ping', 3, lab.nodes[0].interfaces[0].ipv4!.address], ['ping', 1, lab.nodes[0].interfaces[0].ipv4!.address]]);
    const [plain, strict, loose, none, unreach] = r.outcomes;
    expect(plain).toMatchObject({ observed: 'reach', pass: true, detail: '16/20 replies, 20% loss, rtt 0.05/0.07/0.09 ms' });
    expect(plain.ping).toEqual({ sent: 20, received: 16, lossPercent: 20, rttMinMs: 0.05, rttAvgMs: 0.07, rttMaxMs: 0.094, maxLossPercent: null });
    expect(strict).toMatchObject({ expected: 'reach', expectedFrom: 'explicit', observed: 'fail', pass: false, detail: '16/20 replies, 20% loss (more than the 5% allowed), rtt 0.05/0.07/0.09 ms' });
    expect(strict.ping!.maxLossPercent).toBe(5);
    expect(loose).toMatchObject({ observed: 'reach', pass: true });
    expect(none).toMatchObject({ observed: 'fail', detail: '0/3 replies, 100% loss' });
    expect(none.ping).toEqual({ sent: 3, received: 0, lossPercent: 100, rttMinMs: null, rttAvgMs: null, rttMaxMs: null, maxLossPercent: null });
    expect(unreach).toMatchObject({ observed: 'fail', detail: 'send: Network is unreachable; 0/1 replies, 100% loss' });
    expect(formatTable(r)).toMatch(/^ping a -> b .* ok  \(16\/20 replies, 20% loss, rtt 0\.05\/0\.07\/0\.09 ms\)$/m);
    // In --json, as fields of the outcome.
    const json = JSON.parse(JSON.stringify(r)) as { outcomes: CheckOutcome[] };
    expect(json.outcomes[0].ping).toMatchObject({ sent: 20, received: 16, lossPercent: 20 });
    expect(json.outcomes.every((x) => x.throughput === null)).toBe(true);
  });

  it('throughput: a probe from the source to the receiver in the target\'s namespace; measured one at a time after the round\'s other probes; bits per second against min', async () => {
    const lab = labOf([
      'throughput: { from: a, to: b }',
      'ping: { from: a, to: b }',
      'throughput: { from: b, to: a, seconds: 1, port: 6000, expect: { min: 20mbit } }',
      'tcp: { from: a, to: b, port: 80 }',
      'throughput: { from: a, to: 10.9.0.20, expect: { min: 8mbit } }',
    ]);
    const calls: Probe[][] = [];
    const runProbes = async (probes: Probe[]): Promise<ProbeResult[]> => {
      calls.push(probes);
      return probes.map((p) => {
        if (p.kind === 'throughput') return { ...NONE, ok: true, throughput: { bytes: (18.7e6 / 8) * (p.durationMs! / 1000), seconds: p.durationMs! / 1000 } };
        if (p.kind === 'ping') return { ...NONE, ok: true, ms: 0.05, ping: { sent: 1, received: 1, rttMinMs: 0.05, rttAvgMs: 0.05, rttMaxMs: 0.05 } };
        return { ...NONE, ok: false, error: 'connect: Connection refused' };
      });
    };
    const r = await runChecks(lab, lab.checks, 'checks', { runProbes, clock: fakeClock() });
    expect(calls.map((c) => c.map((p) => p.kind).join(','))).toEqual(['ping,tcp', 'throughput', 'throughput', 'throughput']);
    const aAddr = lab.nodes[0].interfaces[0].ipv4!.address;
    expect(calls.slice(1).map(([p]) => [p.netns, p.address, p.port, p.receiverNetns, p.durationMs, p.timeoutMs])).toEqual([
      ['netlab.t.a', '10.9.0.20', 5201, 'netlab.t.b', 3000, 2000],
      ['netlab.t.b', aAddr, 6000, 'netlab.t.a', 1000, 2000],
      ['netlab.t.a', '10.9.0.20', 5201, 'netlab.t.b', 3000, 2000],
    ]);
    const [free, , fast, , enough] = r.outcomes;
    expect(free).toMatchObject({ observed: 'reach', pass: true, detail: '18.7 Mbit/s over 3 s' });
    expect(free.throughput).toEqual({ bits_per_second: 18_700_000, bytes: 7_012_500, seconds: 3, min_bits_per_second: null });
    expect(fast).toMatchObject({ expected: 'reach', observed: 'fail', pass: false, detail: '18.7 Mbit/s over 1 s, less than the 20 Mbit/s expected' });
    expect(fast.throughput!.min_bits_per_second).toBe(20e6);
    expect(enough).toMatchObject({ observed: 'reach', pass: true, detail: '18.7 Mbit/s over 3 s (at least 8 Mbit/s)' });
    const text = formatTable(r);
    expect(text).toMatch(/^throughput a -> b .* ok  \(18\.7 Mbit\/s over 3 s\)$/m);
    expect(text).toMatch(/^throughput b -> \S+:6000 .* FAIL  DISAGREES with prediction  \(18\.7 Mbit\/s over 1 s, less than the 20 Mbit\/s expected\)$/m);
    expect(toJUnit(r)).toContain('classname="netlab.t.throughput"');
    const json = JSON.parse(JSON.stringify(r)) as { outcomes: CheckOutcome[] };
    expect(json.outcomes.map((x) => x.throughput?.bits_per_second ?? null)).toEqual([18_700_000, null, 18_700_000, null, 18_700_000]);
  });

  it('throughput that cannot connect, or gets no data, fails with what the helper said and no rate', async () => {
    const lab = labOf(['throughput: { from: a, to: b, expect: reach }', 'throughput: { from: b, to: a, expect: reach }']);
    let n = 0;
    const runProbes = async (probes: Probe[]) => probes.map(() => ({ ...NONE, ok: false, error: n++ === 0 ? 'connect: Connection refused' : 'connected, but no data arrived' }));
    const r = await runChecks(lab, lab.checks, 'checks', { runProbes, clock: fakeClock() });
    expect(r.outcomes.map((x) => [x.observed, x.detail, x.throughput])).toEqual([['fail', 'connect: Connection refused', null], ['fail', 'connected, but no data arrived', null]]);
  });

  it('with a wait, a rate below its min is measured again until it is enough; no retry starts without its seconds left', async () => {
    const lab = labOf(['throughput: { from: a, to: b, seconds: 2, wait: 7, expect: { min: 10mbit } }']);
    const clock = fakeClock();
    const t0 = clock.t();
    const tries: { at: number; timeoutMs: number }[] = [];
    const runProbes = async (probes: Probe[]): Promise<ProbeResult[]> => {
      tries.push({ at: clock.t() - t0, timeoutMs: probes[0].timeoutMs });
      clock.advance(probes[0].durationMs! + 10);
      const rate = tries.length >= 3 ? 12e6 : 5e6;
      return [{ ...NONE, ok: true, throughput: { bytes: (rate / 8) * 2, seconds: 2 } }];
    };
    const r = await runChecks(lab, lab.checks, 'checks', { runProbes, clock });
    expect(r.outcomes[0]).toMatchObject({ pass: true, attempts: 3, detail: '12 Mbit/s over 2 s (at least 10 Mbit/s)' });
    expect(tries.map((x) => x.at)).toEqual([0, 2210, 4520]);
    // Never holding: tries at 0, 2.21 and 4.52 s; 6.83 s would leave no 2 s of sending before 7 s.
    const never = async (probes: Probe[]): Promise<ProbeResult[]> => { clock.advance(probes[0].durationMs! + 10); return [{ ...NONE, ok: true, throughput: { bytes: 1000, seconds: 2 } }]; };
    const c0 = clock.t();
    const r2 = await runChecks(lab, lab.checks, 'checks', { runProbes: never, clock });
    expect(r2.outcomes[0]).toMatchObject({ pass: false, attempts: 3, detail: '4 kbit/s over 2 s, less than the 10 Mbit/s expected' });
    expect(clock.t() - c0).toBeLessThanOrEqual(7000);
  });
});

describe('the retry scheduler with busy time (a ping\'s requests, a throughput check\'s seconds)', () => {
  /** Rounds of an item that never holds; each try takes its busy time plus its whole timeout. */
  async function never(busyMs: number | undefined) {
    const clock = fakeClock();
    const t0 = clock.t();
    const rounds: { at: number; timeoutMs: number }[] = [];
    const [r] = await untilHeld([1], {
      waiting: () => ({ waitMs: 8000, timeoutMs: 2000, ...(busyMs === undefined ? {} : { busyMs }) }),
      observe: async (tries: Try<number>[]) => {
        rounds.push({ at: clock.t() - t0, timeoutMs: tries[0].timeoutMs });
        clock.advance((busyMs ?? 0) + tries[0].timeoutMs);
        return [false];
      },
      holds: (_x, ok) => ok,
      clock,
    });
    return { r, rounds, end: clock.t() - t0 };
  }

  it('a retry starts only with its busy time (and LAST_TRY_MS) left, and its timeout is cut so it ends by the deadline', async () => {
    // A ping with count 200: 1990 ms of requests, then 2 s for the replies.
    const { r, rounds, end } = await never(1990);
    // 0 -> 3990; the pause (200 ms) then a try whose timeout is what is left after 1990 ms of
    // sending: 8000 - 1990 - 4190 = 1820; at 8000 nothing is left.
    expect(rounds).toEqual([{ at: 0, timeoutMs: 2000 }, { at: 4190, timeoutMs: 1820 }]);
    expect(r.attempts).toBe(2);
    expect(end).toBe(8000);
    expect(8000 - 1990 - 4190).toBeGreaterThan(LAST_TRY_MS);
  });

  it('without busy time, as before: retries until LAST_TRY_MS before the deadline', async () => {
    const { rounds, end } = await never(undefined);
    // The last try's timeout is what is left of the wait: 8000 - 6950.
    expect(rounds).toEqual([{ at: 0, timeoutMs: 2000 }, { at: 2200, timeoutMs: 2000 }, { at: 4500, timeoutMs: 2000 }, { at: 6950, timeoutMs: 1050 }]);
    expect(end).toBe(8000);
  });
});
