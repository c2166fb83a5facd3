// Connectivity checks: the lab's declared checks, ad hoc ones, or the all-pairs ping matrix,
// each predicted by the simulator from the model and (unless prediction only) observed in the
// running lab: ping/tcp/http through the probe helper (one process for all of them), dns by
// resolving the name inside the source container. A check passes when what was observed is
// what was expected: its explicit `expect`, else the prediction. Also renders the results as
// a table, a matrix grid, JSON and JUnit XML.
import type { Expect, Lab, LabCheck, LabNode } from '../topology/types.js';
import { isIpv4 } from '../topology/ipam.js';
import { checkPredictor, explain, targetAddress, type Prediction } from '../topology/simulate.js';
import { runProbes, type Probe, type ProbeResult } from '../runtime/probe.js';
import { execCapture } from '../runtime/container.js';

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
  /** observed === expected (or, prediction only, always true). */
  pass: boolean;
  /** observed !== predicted: the model and the kernel disagree. */
  disagree: boolean;
}

export interface CheckReport {
  lab: string;
  mode: 'checks' | 'matrix';
  observed: boolean;
  outcomes: CheckOutcome[];
  passed: number;
  failed: number;
  disagreements: number;
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
}

function plan(lab: Lab, check: LabCheck, predict: (c: LabCheck) => Prediction): Planned {
  const prediction = predict(check);
  const src = node(lab, check.from);
  let address: string | null = null;
  let probe: Probe | null = null;
  const base = { netns: src.netns, timeoutMs: check.timeoutMs };
  if (check.kind === 'ping' || check.kind === 'tcp') {
    address = addressFor(lab, check.from, check.target);
    if (address) probe = check.kind === 'ping' ? { ...base, kind: 'ping', address, count: check.count } : { ...base, kind: 'tcp', address, port: check.port ?? 80 };
  } else if (check.kind === 'http') {
    const u = new URL(check.target);
    address = addressFor(lab, check.from, u.hostname);
    if (address) probe = { ...base, kind: 'http', address, port: u.port ? Number(u.port) : 80, host: u.host, path: `${u.pathname}${u.search}` };
  }
  return { check, prediction, address, probe };
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

/** Resolves a name inside the source container, as its own programs would (its /etc/hosts):
 *  ping prints the address it resolved before it sends anything. */
async function observeDns(lab: Lab, c: LabCheck): Promise<{ ok: boolean; detail: string }> {
  const r = await execCapture(lab.name, c.from, ['ping', '-c', '1', '-W', '1', c.target], Math.max(c.timeoutMs, 3000));
  const m = /PING [^\s(]+ \((\d+\.\d+\.\d+\.\d+)\)/.exec(r.stdout + r.stderr);
  if (!m) return { ok: false, detail: `does not resolve (${(r.stderr || r.stdout).trim().split('\n')[0] || `exit ${r.code}`})` };
  if (c.dnsAddress !== null && m[1] !== c.dnsAddress) return { ok: false, detail: `resolves to ${m[1]}, expected ${c.dnsAddress}` };
  return { ok: true, detail: `resolves to ${m[1]}` };
}

function outcome(p: Planned, observed: { ok: boolean; detail: string } | null): CheckOutcome {
  const predicted = verdict(p.prediction.reach);
  const expected = p.check.expect ?? predicted;
  const obs = observed ? verdict(observed.ok) : null;
  return {
    label: p.check.label, kind: p.check.kind, from: p.check.from, target: p.check.target, address: p.address,
    expected, expectedFrom: p.check.expect ? 'explicit' : 'prediction', predicted,
    reason: p.prediction.reason, explanation: explain(p.prediction),
    observed: obs, detail: observed?.detail ?? '',
    pass: obs === null ? true : obs === expected,
    disagree: obs !== null && obs !== predicted,
  };
}

export interface RunOptions {
  /** Only predict: no root, the lab need not be up. */
  predictOnly?: boolean;
}

/** Predicts and (unless predictOnly) observes the given checks. */
export async function runChecks(lab: Lab, checks: LabCheck[], mode: CheckReport['mode'], o: RunOptions = {}): Promise<CheckReport> {
  const t0 = performance.now();
  const predict = checkPredictor(lab);
  const planned = checks.map((c) => plan(lab, c, predict));
  let observed: ({ ok: boolean; detail: string } | null)[] = planned.map(() => null);
  if (!o.predictOnly) {
    const probes = planned.filter((p) => p.probe).map((p) => p.probe!);
    const results = await runProbes(probes);
    let k = 0;
    observed = await Promise.all(planned.map(async (p) => {
      if (p.check.kind === 'dns') return observeDns(lab, p.check);
      if (!p.probe) return { ok: false, detail: 'no address to probe' };
      const r = results[k++];
      if (p.check.kind === 'http') return httpVerdict(p.check, r);
      return r.ok ? { ok: true, detail: `${p.check.kind === 'ping' ? 'reply' : 'connected'} in ${r.ms!.toFixed(2)} ms` } : { ok: false, detail: r.error ?? 'failed' };
    }));
  }
  const outcomes = planned.map((p, i) => outcome(p, observed[i]));
  return {
    lab: lab.name, mode, observed: !o.predictOnly, outcomes,
    passed: outcomes.filter((x) => x.pass).length,
    failed: outcomes.filter((x) => !x.pass).length,
    disagreements: outcomes.filter((x) => x.disagree).length,
    ms: performance.now() - t0,
  };
}

/** The all-pairs ping matrix as checks (every ordered pair of distinct nodes). */
export function matrixChecks(lab: Lab, timeoutMs = 1000): LabCheck[] {
  const out: LabCheck[] = [];
  for (const a of lab.nodes) {
    for (const b of lab.nodes) {
      if (a === b) continue;
      out.push({
        index: out.length, kind: 'ping', from: a.name, target: b.name, port: null, count: 1, timeoutMs,
        expect: null, httpStatus: null, httpContains: null, dnsAddress: null, label: `ping ${a.name} -> ${b.name}`,
      });
    }
  }
  return out;
}

/** Ad hoc checks from the command line: ping FROM:TO, tcp FROM:TO:PORT, http FROM:URL, dns FROM:NAME. */
export function adHocCheck(lab: Lab, kind: LabCheck['kind'], spec: string, index: number, expect: Expect | null): LabCheck {
  const colon = spec.indexOf(':');
  if (colon <= 0) throw new Error(`--${kind} ${spec}: expected FROM:${kind === 'http' ? 'URL' : kind === 'dns' ? 'NAME' : kind === 'tcp' ? 'TO:PORT' : 'TO'}`);
  const from = spec.slice(0, colon);
  let rest = spec.slice(colon + 1);
  node(lab, from);
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
    index, kind, from, target: rest, port, count: 1, timeoutMs: 2000, expect,
    httpStatus: null, httpContains: null, dnsAddress, label: `${kind} ${from} -> ${rest}${port ? `:${port}` : ''}`,
  };
}

// ---------------------------------------------------------------- output

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

export function formatTable(r: CheckReport, o: { explain?: boolean } = {}): string {
  const rows = r.outcomes;
  const w = Math.max(5, ...rows.map((x) => x.label.length));
  const lines = [`${pad('check', w)}  ${pad('expected', 13)} ${pad('predicted', 9)} ${r.observed ? `${pad('observed', 9)} result` : ''}`.trimEnd()];
  for (const x of rows) {
    const exp = `${x.expected}${x.expectedFrom === 'prediction' ? ' (pred)' : ''}`;
    const res = !r.observed ? '' : `${pad(x.observed ?? '-', 9)} ${x.pass ? 'ok' : 'FAIL'}${x.disagree ? '  DISAGREES with prediction' : ''}${x.detail ? `  (${x.detail})` : ''}`;
    lines.push(`${pad(x.label, w)}  ${pad(exp, 13)} ${pad(x.predicted, 9)} ${res}`.trimEnd());
    if (o.explain || (r.observed && x.disagree)) lines.push(...x.explanation.trimEnd().split('\n').map((l) => `    ${l}`));
  }
  lines.push(summary(r));
  return lines.join('\n') + '\n';
}

export function summary(r: CheckReport): string {
  const what = r.mode === 'matrix' ? 'pairs' : 'checks';
  if (!r.observed) return `${r.outcomes.length} ${what} predicted (${r.outcomes.filter((x) => x.predicted === 'reach').length} reach), nothing run`;
  return `${r.passed} passed, ${r.failed} failed; ${r.disagreements} disagreement${r.disagreements === 1 ? '' : 's'} with the prediction (${r.outcomes.length} ${what} in ${(r.ms / 1000).toFixed(2)} s)`;
}

/** The matrix as a grid: rows are sources, columns destinations. Cell: R reach / . fail as
 *  observed (or predicted); '!' marks a disagreement between the two. */
export function formatMatrix(r: CheckReport, nodes: string[]): string {
  const cell = new Map(r.outcomes.map((x) => [`${x.from}\u0000${x.target}`, x]));
  const w = Math.max(...nodes.map((n) => n.length), 4);
  const colW = 3;
  const lines: string[] = [];
  // Column headers, written vertically so the grid stays narrow.
  const maxLen = Math.max(...nodes.map((n) => n.length));
  for (let i = 0; i < maxLen; i++) {
    lines.push(`${' '.repeat(w + 2)}${nodes.map((n) => pad(n[i] ?? '', colW)).join('')}`.trimEnd());
  }
  for (const a of nodes) {
    let row = `${pad(a, w)}  `;
    for (const b of nodes) {
      const x = cell.get(`${a}\u0000${b}`);
      if (!x) { row += pad('-', colW); continue; }
      const v = x.observed ?? x.predicted;
      row += pad(`${v === 'reach' ? 'R' : '.'}${x.disagree ? '!' : ''}`, colW);
    }
    lines.push(row.trimEnd());
  }
  lines.push(`R reach, . no reach${r.observed ? ' (observed); ! observed differs from the prediction' : ' (predicted)'}`);
  const bad = r.outcomes.filter((x) => x.disagree);
  for (const x of bad) lines.push(`! ${x.label}: predicted ${x.predicted}, observed ${x.observed} (${x.detail}); ${x.reason}`);
  lines.push(summary(r));
  return lines.join('\n') + '\n';
}

function xml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, '');
}

/** JUnit XML: one testcase per check, a failure element for each that did not pass. */
export function toJUnit(r: CheckReport): string {
  const t = (r.ms / 1000 / Math.max(1, r.outcomes.length)).toFixed(3);
  const cases = r.outcomes.map((x) => {
    const name = `${x.label} (expect ${x.expected})`;
    const open = `    <testcase classname="netlab.${xml(r.lab)}.${x.kind}" name="${xml(name)}" time="${t}"`;
    if (x.pass) return `${open}/>`;
    const msg = `expected ${x.expected}, observed ${x.observed}${x.detail ? `: ${x.detail}` : ''}`;
    return `${open}>\n      <failure message="${xml(msg)}" type="${x.disagree ? 'disagreement' : 'unexpected'}">${xml(`${msg}\npredicted ${x.predicted}: ${x.explanation}`)}</failure>\n    </testcase>`;
  });
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="netlab" tests="${r.outcomes.length}" failures="${r.failed}" time="${(r.ms / 1000).toFixed(3)}">`,
    `  <testsuite name="netlab ${xml(r.lab)} ${r.mode}" tests="${r.outcomes.length}" failures="${r.failed}" errors="0" skipped="0" time="${(r.ms / 1000).toFixed(3)}">`,
    ...cases,
    '  </testsuite>',
    '</testsuites>',
    '',
  ].join('\n');
}

