// Connectivity checks: the lab's declared checks, ad hoc ones, or the all-pairs ping matrix,
// each predicted by the simulator from the model and (unless prediction only) observed in the
// running lab: ping/tcp/http through the probe helper (one process for all of them), throughput
// by the same helper (a receiver in the target's namespace, a sender in the source's), one
// measurement at a time after the round's other probes, dns by
// netlab's own resolver (resolve.ts) from the source container's files, its DNS queries sent by
// the same helper from the source's namespace. A check passes when what was observed is
// what was expected: its explicit `expect`, else the prediction. A check with a wait is tried
// again until it passes or its wait is up, all such checks together in rounds (wait.ts). One
// outcome code for every report: `netlab check`, and the web view's predicted reports
// (predictedReport). format.ts renders them.
import type { Expect, Lab, LabCheck, LabNode } from '../topology/types.js';
import { isIpv4 } from '../topology/ipam.js';
import { checkPredictor, explain, targetAddress, type Prediction } from '../topology/simulate.js';
import { PING_INTERVAL_MS, probeBatcher, runProbes, type Probe, type ProbeResult } from './probe.js';
import { nodeWithAddress, THROUGHPUT_PORT, THROUGHPUT_SECONDS } from '../topology/resolve-checks.js';
import { formatRate } from '../topology/rate.js';
import { containerFiles, resolveName } from './resolve.js';
import { containerState } from '../runtime/container.js';
import { untilHeld, type Clock, type Try } from './wait.js';

/** What a ping check observed: requests sent, replies received (a duplicate counts once), the
 *  loss in percent, the round trips in ms (null without replies), and the most loss its
 *  `expect: { max_loss }` allows (null: any reply will do). */
export interface PingReport {
  sent: number;
  received: number;
  lossPercent: number;
  rttMinMs: number | null;
  rttAvgMs: number | null;
  rttMaxMs: number | null;
  maxLossPercent: number | null;
}

/** What a throughput check measured: the bytes that reached the receiver from the connection's
 *  start until the helper saw the sending time end (`seconds`, at least the check's), as bits
 *  per second; and the least rate its `expect: { min }` asks for. */
export interface ThroughputReport {
  /** As issue 15 names it in --json (snake case, as iperf3's JSON and `netlab stats` write rates). */
  bits_per_second: number;
  bytes: number;
  seconds: number;
  min_bits_per_second: number | null;
}

export interface CheckOutcome {
  label: string;
  kind: LabCheck['kind'];
  from: string;
  target: string;
  /** The address probed (null for dns, or when there is none). */
  address: string | null;
  expected: Expect;
  expectedFrom: 'explicit' | 'prediction';
  predicted: Expect;
  /** Why the simulator predicts that, one line; `explanation` has the hops. */
  reason: string;
  explanation: string;
  /** null when only predicted. */
  observed: Expect | null;
  detail: string;
  /** ping, once a request went out: what it sent and got back; null otherwise. */
  ping: PingReport | null;
  /** throughput, once data arrived: the rate measured; null otherwise. */
  throughput: ThroughputReport | null;
  /** observed === expected (or, prediction only, always true). */
  pass: boolean;
  /** observed !== predicted: the model and the kernel disagree. */
  disagree: boolean;
  /** How long the check was allowed to be retried (ms); null: tried once. */
  waitMs: number | null;
  /** Tries made (0 when only predicted); with a wait, more than 1 when the first did not pass. */
  attempts: number;
  /** From the first try to the start of the try that passed (ms); null: none passed, or only
   *  predicted. 0 when the first try passed. */
  heldAfterMs: number | null;
  /** Set (why) when the check passes only because the lab is not as it was built: its
   *  expectation is the prediction, the prediction is fail in the lab as it runs (a cable set
   *  down, a 100% loss) and reach in the lab as built. A pulled cable never looks green. */
  degraded?: string | null;
}

export interface CheckReport {
  lab: string;
  mode: 'checks' | 'matrix';
  observed: boolean;
  outcomes: CheckOutcome[];
  passed: number;
  failed: number;
  disagreements: number;
  /** Outcomes marked degraded (markDegraded). */
  degraded?: number;
  ms: number;
}

const verdict = (b: boolean): Expect => (b ? 'reach' : 'fail');

function node(lab: Lab, name: string): LabNode {
  const n = lab.nodes.find((x) => x.name === name);
  if (!n) throw new Error(`lab ${lab.name} has no node ${name}`);
  return n;
}

/** Node named by a URL host (case-insensitive, as URL parsing lower-cases it) or null. */
function nodeByHost(lab: Lab, host: string): LabNode | null {
  return lab.nodes.find((n) => n.name.toLowerCase() === host.toLowerCase()) ?? null;
}

/** The address a check's target means for its source: an IPv4 as given, or the node's address seen from `from`. */
function addressFor(lab: Lab, from: string, target: string): string | null {
  if (isIpv4(target)) return target;
  const t = nodeByHost(lab, target);
  return t ? targetAddress(lab, from, t.name) : null;
}

interface Planned {
  check: LabCheck;
  prediction: Prediction;
  address: string | null;
  probe: Probe | null;
  /** Why there is no probe (a check that is not dns). */
  noProbe: string;
}

/** The node a throughput check's receiver runs in: the target node, or the node that has the
 *  target address. */
function receiverOf(lab: Lab, target: string): LabNode | null {
  return isIpv4(target) ? nodeWithAddress(lab.nodes, target) : nodeByHost(lab, target);
}

function plan(lab: Lab, check: LabCheck, predict: (c: LabCheck) => Prediction): Planned {
  const prediction = predict(check);
  const src = node(lab, check.from);
  let address: string | null = null;
  let probe: Probe | null = null;
  let noProbe = 'no address to probe';
  const base = { netns: src.netns, timeoutMs: check.timeoutMs };
  if (check.kind === 'ping' || check.kind === 'tcp') {
    address = addressFor(lab, check.from, check.target);
    if (address) probe = check.kind === 'ping' ? { ...base, kind: 'ping', address, count: check.count } : { ...base, kind: 'tcp', address, port: check.port ?? 80 };
  } else if (check.kind === 'http') {
    const u = new URL(check.target);
    address = addressFor(lab, check.from, u.hostname);
    if (address) probe = { ...base, kind: 'http', address, port: u.port ? Number(u.port) : 80, host: u.host, path: `${u.pathname}${u.search}` };
  } else if (check.kind === 'throughput') {
    address = addressFor(lab, check.from, check.target);
    const receiver = receiverOf(lab, check.target);
    if (!receiver) noProbe = `no node of lab ${lab.name} has the address ${check.target}`;
    else if (receiver.netns === null || src.netns === null) noProbe = `${receiver.netns === null ? receiver.name : src.name} has network_mode host: throughput runs only between namespaces the lab made`;
    else if (address) {
      probe = {
        ...base, kind: 'throughput', address, port: check.port ?? THROUGHPUT_PORT,
        receiverNetns: receiver.netns, durationMs: check.durationMs ?? THROUGHPUT_SECONDS * 1000,
      };
    }
  }
  return { check, prediction, address, probe, noProbe };
}

/** How long a try takes beyond its timeout: a ping's requests go out over (count - 1) x 10 ms,
 *  a throughput check sends for its seconds. */
function busyMs(c: LabCheck): number {
  if (c.kind === 'ping') return (c.count - 1) * PING_INTERVAL_MS;
  if (c.kind === 'throughput') return c.durationMs ?? THROUGHPUT_SECONDS * 1000;
  return 0;
}

/** Judges an http response against the check's expectations. */
function httpVerdict(c: LabCheck, r: ProbeResult): { ok: boolean; detail: string } {
  if (!r.ok) return { ok: false, detail: r.error ?? 'no response' };
  const status = r.httpStatus ?? 0;
  if (c.httpStatus !== null && status !== c.httpStatus) return { ok: false, detail: `status ${status}, expected ${c.httpStatus}` };
  if (c.httpStatus === null && status >= 400) return { ok: false, detail: `status ${status}` };
  if (c.httpContains !== null && !(r.httpBody ?? '').includes(c.httpContains)) return { ok: false, detail: `status ${status}, body lacks ${JSON.stringify(c.httpContains)}` };
  return { ok: true, detail: `status ${status}${c.httpContains !== null ? `, body has ${JSON.stringify(c.httpContains)}` : ''}` };
}

/** Resolves a name as the source container's own programs would, without any tool of its
 *  image: its files read through its root (every node has a container, a host-mode one too:
 *  its /etc is its own, its network the host's), its DNS queries sent from the node's network
 *  namespace (the host's own stack for a host-mode node), all within the check's timeout. */
async function observeDns(lab: Lab, c: LabCheck, probe: (p: Probe) => Promise<ProbeResult>): Promise<{ ok: boolean; detail: string }> {
  const st = containerState(lab.name, c.from);
  if (st.state !== 'running' || st.pid === null) return { ok: false, detail: `does not resolve (container ${c.from} is not running)` };
  const src = node(lab, c.from);
  const r = await resolveName(c.target, containerFiles(st.pid), (q) => probe({
    kind: 'dns', netns: src.netns, address: q.servers.join(','), name: q.name, tryMs: q.tryMs, attempts: q.attempts, timeoutMs: q.timeoutMs,
  }), c.timeoutMs);
  if (r.address === null) return { ok: false, detail: `does not resolve (${r.detail})` };
  if (c.dnsAddress !== null && r.address !== c.dnsAddress) return { ok: false, detail: `resolves to ${r.address}, expected ${c.dnsAddress}` };
  return { ok: true, detail: `resolves to ${r.address}` };
}

type Observation = { ok: boolean; detail: string; ping?: PingReport | null; throughput?: ThroughputReport | null };

/** A percentage as people read it: 0%, 20%, 33.3%. */
const percent = (x: number) => `${Number(x.toFixed(1))}%`;

/** Judges a ping's replies: ok with at least one reply, and no more loss than its max_loss. */
function pingVerdict(c: LabCheck, r: ProbeResult): Observation {
  const s = r.ping ?? null;
  if (!s || s.sent === 0) return { ok: false, detail: r.error ?? 'failed', ping: null };
  const lossPercent = Math.round(((s.sent - s.received) / s.sent) * 100 * 1000) / 1000;
  const maxLossPercent = c.maxLossPercent ?? null;
  const ping: PingReport = { sent: s.sent, received: s.received, lossPercent, rttMinMs: s.rttMinMs, rttAvgMs: s.rttAvgMs, rttMaxMs: s.rttMaxMs, maxLossPercent };
  const tooMuch = maxLossPercent !== null && lossPercent > maxLossPercent;
  let text = `${s.received}/${s.sent} replies, ${percent(lossPercent)} loss${tooMuch ? ` (more than the ${percent(maxLossPercent)} allowed)` : ''}`;
  if (s.rttMinMs !== null) text += `, rtt ${s.rttMinMs.toFixed(2)}/${s.rttAvgMs!.toFixed(2)}/${s.rttMaxMs!.toFixed(2)} ms`;
  // A send that failed (no route) ended the requests: say so.
  if (!r.ok && r.error && r.error !== 'no reply') text = `${r.error}; ${text}`;
  if (r.ok && r.error) text += `; then ${r.error}`;
  return { ok: r.ok && s.received > 0 && !tooMuch, detail: text, ping };
}

/** Judges a throughput measurement: ok when data arrived, at its min rate or more. */
function throughputVerdict(c: LabCheck, r: ProbeResult): Observation {
  if (!r.ok || !r.throughput) return { ok: false, detail: r.error ?? 'failed', throughput: null };
  const { bytes, seconds } = r.throughput;
  const bps = (bytes * 8) / seconds;
  const min = c.minBitsPerSecond ?? null;
  const throughput: ThroughputReport = { bits_per_second: Math.round(bps), bytes, seconds, min_bits_per_second: min };
  const text = `${formatRate(bps)} over ${Number(seconds.toFixed(2))} s`;
  if (min !== null && bps < min) return { ok: false, detail: `${text}, less than the ${formatRate(min)} expected`, throughput };
  return { ok: true, detail: min !== null ? `${text} (at least ${formatRate(min)})` : text, throughput };
}

/** What the check passes with: its explicit expectation, else the prediction. */
const expectedOf = (p: Planned): Expect => p.check.expect ?? verdict(p.prediction.reach);

function outcome(p: Planned, observed: Observation | null, tries: { attempts: number; heldAfterMs: number | null }, withExplanation = true): CheckOutcome {
  const predicted = verdict(p.prediction.reach);
  const expected = expectedOf(p);
  const obs = observed ? verdict(observed.ok) : null;
  return {
    label: p.check.label, kind: p.check.kind, from: p.check.from, target: p.check.target, address: p.address,
    expected, expectedFrom: p.check.expect ? 'explicit' : 'prediction', predicted,
    reason: p.prediction.reason, explanation: withExplanation ? explain(p.prediction) : '',
    observed: obs, detail: observed?.detail ?? '',
    ping: observed?.ping ?? null,
    throughput: observed?.throughput ?? null,
    pass: obs === null ? true : obs === expected,
    disagree: obs !== null && obs !== predicted,
    waitMs: p.check.waitMs ?? null,
    attempts: tries.attempts,
    heldAfterMs: tries.heldAfterMs,
  };
}

export interface RunOptions {
  /** Only predict: no root, the lab need not be up. */
  predictOnly?: boolean;
  /** The probe helper's runner (tests pass a fake one); default runProbes. */
  runProbes?: (probes: Probe[]) => Promise<ProbeResult[]>;
  /** The clock the waits are measured with (tests pass a fake one). */
  clock?: Clock;
}

/** One round of tries: the ping/tcp/http probes of the round in one helper process, then its
 *  throughput checks one at a time (a measurement shares the machine's CPUs and the lab's
 *  links with no other), then the round's dns checks (their queries batched too), each try
 *  with its own timeout. */
async function observeRound(lab: Lab, tries: Try<Planned>[], run: (probes: Probe[]) => Promise<ProbeResult[]>): Promise<Observation[]> {
  const probing = tries.filter((t) => t.item.probe);
  const withTimeout = (t: Try<Planned>): Probe => ({ ...t.item.probe!, timeoutMs: t.timeoutMs });
  const quick = probing.filter((t) => t.item.probe!.kind !== 'throughput').map(withTimeout);
  const results = quick.length > 0 || probing.length === 0 ? await run(quick) : [];
  const measured: ProbeResult[] = [];
  for (const t of probing.filter((x) => x.item.probe!.kind === 'throughput')) measured.push(...await run([withTimeout(t)]));
  const dnsProbe = probeBatcher(run);
  let k = 0;
  let m = 0;
  return Promise.all(tries.map(async ({ item: p, timeoutMs }) => {
    if (p.check.kind === 'dns') return observeDns(lab, { ...p.check, timeoutMs }, dnsProbe);
    if (!p.probe) return { ok: false, detail: p.noProbe };
    if (p.check.kind === 'throughput') return throughputVerdict(p.check, measured[m++]);
    const r = results[k++];
    if (p.check.kind === 'http') return httpVerdict(p.check, r);
    if (p.check.kind === 'ping') return pingVerdict(p.check, r);
    return r.ok ? { ok: true, detail: `connected in ${r.ms!.toFixed(2)} ms` } : { ok: false, detail: r.error ?? 'failed' };
  }));
}

/** Predicts and (unless predictOnly) observes the given checks. A check with a wait (`waitMs`)
 *  that does not pass at once is tried again until it does or its wait is up (wait.ts); one
 *  without is tried once. */
export async function runChecks(lab: Lab, checks: LabCheck[], mode: CheckReport['mode'], o: RunOptions = {}): Promise<CheckReport> {
  const t0 = performance.now();
  const predict = checkPredictor(lab);
  const planned = checks.map((c) => plan(lab, c, predict));
  if (o.predictOnly) return report(lab, mode, false, planned.map((p) => outcome(p, null, { attempts: 0, heldAfterMs: null })), t0);
  const run = o.runProbes ?? runProbes;
  const settled = await untilHeld(planned, {
    // A state written before checks had waits has none.
    waiting: (p) => ({ waitMs: p.check.waitMs ?? null, timeoutMs: p.check.timeoutMs, busyMs: busyMs(p.check) }),
    observe: (tries) => observeRound(lab, tries, run),
    holds: (p, r) => verdict(r.ok) === expectedOf(p),
    ...(o.clock ? { clock: o.clock } : {}),
  });
  return report(lab, mode, true, planned.map((p, i) => outcome(p, settled[i].result, settled[i])), t0);
}

function report(lab: Lab, mode: CheckReport['mode'], wasObserved: boolean, outcomes: CheckOutcome[], t0: number): CheckReport {
  return {
    lab: lab.name, mode, observed: wasObserved, outcomes,
    passed: outcomes.filter((x) => x.pass).length,
    failed: outcomes.filter((x) => !x.pass).length,
    disagreements: outcomes.filter((x) => x.disagree).length,
    ms: performance.now() - t0,
  };
}

/** A report of checks predicted only, from predictions made elsewhere (the web view predicts
 *  all pairs in one simulator world: `predictMatrix`), through the same outcome code as
 *  runChecks; `explanations: false` leaves the per-check hops out (N^2 of them in a matrix). */
export function predictedReport(lab: Lab, checks: LabCheck[], predictions: Prediction[], mode: CheckReport['mode'], o: { explanations?: boolean } = {}): CheckReport {
  const t0 = performance.now();
  if (predictions.length !== checks.length) throw new Error(`predictedReport: ${checks.length} checks but ${predictions.length} predictions`);
  const planned = checks.map((c, i) => plan(lab, c, () => predictions[i]));
  return report(lab, mode, false, planned.map((p) => outcome(p, null, { attempts: 0, heldAfterMs: null }, o.explanations ?? true)), t0);
}

/** The all-pairs ping matrix as checks (every ordered pair of distinct nodes). */
export function matrixChecks(lab: Lab, timeoutMs = 1000): LabCheck[] {
  const out: LabCheck[] = [];
  for (const a of lab.nodes) {
    for (const b of lab.nodes) {
      if (a === b) continue;
      out.push({
        index: out.length, kind: 'ping', from: a.name, target: b.name, port: null, count: 1, timeoutMs, waitMs: null,
        expect: null, httpStatus: null, httpContains: null, dnsAddress: null, label: `ping ${a.name} -> ${b.name}`,
      });
    }
  }
  return out;
}

/** The longest an ad hoc throughput check may send (seconds), as the schema's `seconds`. */
export const MAX_THROUGHPUT_SECONDS = 60;

/** Ad hoc checks from the command line: ping FROM:TO, tcp FROM:TO:PORT, http FROM:URL, dns
 *  FROM:NAME, throughput FROM:TO[:SECONDS]. */
export function adHocCheck(lab: Lab, kind: LabCheck['kind'], spec: string, index: number, expect: Expect | null): LabCheck {
  const colon = spec.indexOf(':');
  if (colon <= 0) throw new Error(`--${kind} ${spec}: expected FROM:${kind === 'http' ? 'URL' : kind === 'dns' ? 'NAME' : kind === 'tcp' ? 'TO:PORT' : kind === 'throughput' ? 'TO[:SECONDS]' : 'TO'}`);
  const from = spec.slice(0, colon);
  let rest = spec.slice(colon + 1);
  const src = node(lab, from);
  if (kind === 'throughput') return adHocThroughput(lab, src, rest, spec, index, expect);
  let port: number | null = null;
  if (kind === 'tcp') {
    const m = /^(.+):(\d+)$/.exec(rest);
    if (!m) throw new Error(`--tcp ${spec}: expected FROM:TO:PORT`);
    rest = m[1];
    port = Number(m[2]);
    if (port < 1 || port > 65535) throw new Error(`--tcp ${spec}: port ${m[2]} is out of range; expected 1-65535`);
  }
  if (kind === 'http' && !/^http:\/\//.test(rest)) rest = `http://${rest}`;
  const to = kind === 'http' ? new URL(rest).hostname : rest;
  if ((kind === 'ping' || kind === 'tcp' || kind === 'http') && !isIpv4(to) && !nodeByHost(lab, to)) throw new Error(`--${kind} ${spec}: ${to} is neither a node nor an IPv4 address`);
  let dnsAddress: string | null = null;
  if (kind === 'dns') {
    const t = nodeByHost(lab, rest);
    dnsAddress = t ? targetAddress(lab, from, t.name) : null;
  }
  return {
    index, kind, from, target: rest, port, count: 1, timeoutMs: 2000, waitMs: null, expect,
    httpStatus: null, httpContains: null, dnsAddress, label: `${kind} ${from} -> ${rest}${port ? `:${port}` : ''}`,
  };
}


function adHocThroughput(lab: Lab, src: LabNode, rest: string, spec: string, index: number, expect: Expect | null): LabCheck {
  const m = /^([^:]+)(?::([^:]*))?$/.exec(rest);
  if (!m) throw new Error(`--throughput ${spec}: expected FROM:TO[:SECONDS]`);
  const to = m[1];
  let durationMs = THROUGHPUT_SECONDS * 1000;
  if (m[2] !== undefined) {
    const secs = Number(m[2]);
    if (!/^[0-9]+(\.[0-9]+)?$/.test(m[2]) || !(secs > 0) || secs > MAX_THROUGHPUT_SECONDS) throw new Error(`--throughput ${spec}: ${JSON.stringify(m[2])} is not a number of seconds; expected more than 0 and at most ${MAX_THROUGHPUT_SECONDS}, e.g. 3`);
    durationMs = Math.max(1, Math.round(secs * 1000));
  }
  const receiver = receiverOf(lab, to);
  if (!receiver) throw new Error(isIpv4(to) ? `--throughput ${spec}: no node of lab ${lab.name} has the address ${to}` : `--throughput ${spec}: ${to} is neither a node nor an IPv4 address`);
  for (const n of [src, receiver]) if (n.netns === null) throw new Error(`--throughput ${spec}: ${n.name} has network_mode host: throughput runs only between namespaces the lab made`);
  return {
    index, kind: 'throughput', from: src.name, target: to, port: THROUGHPUT_PORT, count: 1, timeoutMs: 2000, waitMs: null, expect,
    httpStatus: null, httpContains: null, dnsAddress: null, durationMs, minBitsPerSecond: null, label: `throughput ${src.name} -> ${to}`,
  };
}

/** Marks the outcomes that pass only because the running lab differs from the lab as built
 *  (`built`: the model `up` resolved, every cable up, no run-time impairment): their
 *  expectation is the prediction, which is fail now and reach as built. `checks` are the
 *  report's checks, in its order. */
export function markDegraded(r: CheckReport, checks: LabCheck[], built: Lab): CheckReport {
  const predict = checkPredictor(built);
  let n = 0;
  r.outcomes.forEach((o, i) => {
    if (!(o.expectedFrom === 'prediction' && o.pass && o.predicted === 'fail' && checks[i])) return;
    const asBuilt = predict(checks[i]);
    if (!asBuilt.reach) return;
    o.degraded = `reaches in the lab as built; now ${o.reason}`;
    n++;
  });
  r.degraded = n;
  return r;
}

/** The running lab with what its containers did: a node whose container exited has its
 *  interfaces down (the supervisor took them down with it), so the prediction follows. */
export function withContainerStates(lab: Lab): Lab {
  const exited = lab.nodes.filter((n) => n.netns !== null && containerState(lab.name, n.name).state === 'exited').map((n) => n.name);
  if (exited.length === 0) return lab;
  const m = structuredClone(lab);
  for (const n of m.nodes) if (exited.includes(n.name)) n.exited = true;
  return m;
}
