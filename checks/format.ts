// Check reports as people and tools read them: a table, the all-pairs grid, a summary line,
// JUnit XML (JSON is the report itself).
import type { CheckOutcome, CheckReport } from './run.js';

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

/** Seconds as written: 10000 ms is "10", 1500 ms "1.5". */
const seconds = (ms: number) => String(Number((ms / 1000).toFixed(3)));

/** What waiting did for an observed check: "held after 3.2 s (4 attempts)" for one that passed
 *  only on a retry, "did not hold within 10 s (12 attempts)" for one with a wait that never
 *  passed; '' otherwise (tried once, or passed at once). */
export function waitNote(x: CheckOutcome): string {
  if (x.observed === null) return '';
  const attempts = `${x.attempts} attempt${x.attempts === 1 ? '' : 's'}`;
  if (x.pass) return x.attempts > 1 && x.heldAfterMs !== null ? `held after ${(x.heldAfterMs / 1000).toFixed(1)} s (${attempts})` : '';
  return x.waitMs !== null ? `did not hold within ${seconds(x.waitMs)} s (${attempts})` : '';
}

export function formatTable(r: CheckReport, o: { explain?: boolean } = {}): string {
  const rows = r.outcomes;
  const w = Math.max(5, ...rows.map((x) => x.label.length));
  const lines = [`${pad('check', w)}  ${pad('expected', 13)} ${pad('predicted', 9)} ${r.observed ? `${pad('observed', 9)} result` : ''}`.trimEnd()];
  for (const x of rows) {
    const exp = `${x.expected}${x.expectedFrom === 'prediction' ? ' (pred)' : ''}`;
    const note = waitNote(x);
    const res = !r.observed ? '' : `${pad(x.observed ?? '-', 9)} ${x.pass ? (x.degraded ? 'DEGRADED' : 'ok') : 'FAIL'}${x.disagree ? '  DISAGREES with prediction' : ''}${note ? `  ${note}` : ''}${x.detail ? `  (${x.detail})` : ''}`;
    lines.push(`${pad(x.label, w)}  ${pad(exp, 13)} ${pad(x.predicted, 9)} ${res}`.trimEnd());
    if (x.degraded) lines.push(`    degraded: ${x.degraded}`);
    if (o.explain || (r.observed && x.disagree)) lines.push(...x.explanation.trimEnd().split('\n').map((l) => `    ${l}`));
  }
  lines.push(summary(r));
  return lines.join('\n') + '\n';
}

export function summary(r: CheckReport): string {
  const what = r.mode === 'matrix' ? 'pairs' : 'checks';
  if (!r.observed) return `${r.outcomes.length} ${what} predicted (${r.outcomes.filter((x) => x.predicted === 'reach').length} reach), nothing run`;
  const degraded = r.degraded ? `, ${r.degraded} of them degraded (they pass only because the lab is not as built)` : '';
  return `${r.passed} passed${degraded}, ${r.failed} failed; ${r.disagreements} disagreement${r.disagreements === 1 ? '' : 's'} with the prediction (${r.outcomes.length} ${what} in ${(r.ms / 1000).toFixed(2)} s)`;
}

/** `--matrix --summary`: counts and the pairs that disagree or fail, no grid (unreadable above
 *  ~40 nodes). */
export function formatMatrixSummary(r: CheckReport): string {
  const lines: string[] = [];
  const reach = r.outcomes.filter((x) => (x.observed ?? x.predicted) === 'reach').length;
  lines.push(`${r.outcomes.length} pairs: ${reach} reach, ${r.outcomes.length - reach} do not${r.observed ? ' (observed)' : ' (predicted)'}`);
  for (const x of r.outcomes.filter((o) => o.disagree || !o.pass)) {
    const note = waitNote(x);
    lines.push(`! ${x.label}: predicted ${x.predicted}, observed ${x.observed ?? '-'} (${x.detail}${note ? `; ${note}` : ''}); ${x.reason}`);
  }
  lines.push(summary(r));
  return lines.join('\n') + '\n';
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
  for (const x of bad) {
    const note = waitNote(x);
    lines.push(`! ${x.label}: predicted ${x.predicted}, observed ${x.observed} (${x.detail}${note ? `; ${note}` : ''}); ${x.reason}`);
  }
  // With a wait, pairs that held only on a retry are no disagreement but worth saying.
  const late = r.outcomes.filter((x) => !x.disagree && x.pass && x.attempts > 1);
  if (late.length > 0) lines.push(`${late.length} pair${late.length === 1 ? '' : 's'} held only after retries (the last after ${(late.reduce((m, x) => Math.max(m, x.heldAfterMs ?? 0), 0) / 1000).toFixed(1)} s)`);
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
    const note = waitNote(x);
    const msg = `expected ${x.expected}, observed ${x.observed}${note ? ` (${note})` : ''}${x.detail ? `: ${x.detail}` : ''}`;
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

