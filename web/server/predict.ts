// Predictions in the API's shapes, computed with one simulator world for all pairs
// (predictMatrix) rather than one per check: 300 nodes are 89,700 pairs.
import type { Lab } from '../../topology/types.js';
import { predictMatrix } from '../../topology/simulate.js';
import { runChecks, type CheckOutcome, type CheckReport } from '../../controller/checks.js';
import type { Predictions, ViewCheckReport } from './types.js';

/** A check report as the API returns it; the matrix's per-pair explanations are left out
 *  (N^2 of them: GET predictions?from=&to= explains one pair). */
export function toViewReport(r: CheckReport): ViewCheckReport {
  const outcomes = r.mode === 'matrix' ? r.outcomes.map((o) => ({ ...o, explanation: '' })) : r.outcomes;
  return { ...r, outcomes, at: new Date().toISOString() };
}

/** The all-pairs ping matrix, predicted only (what runChecks(matrixChecks) gives with
 *  predictOnly, minus the explanations). */
export function predictedMatrixReport(lab: Lab): CheckReport {
  const t0 = performance.now();
  const outcomes: CheckOutcome[] = predictMatrix(lab).map((p) => {
    const v = p.reach ? 'reach' as const : 'fail' as const;
    return {
      label: `ping ${p.from} -> ${p.to}`, kind: 'ping', from: p.from, target: p.to, address: p.address,
      expected: v, expectedFrom: 'prediction', predicted: v, reason: p.reason, explanation: '',
      observed: null, detail: '', pass: true, disagree: false,
    };
  });
  return { lab: lab.name, mode: 'matrix', observed: false, outcomes, passed: outcomes.length, failed: 0, disagreements: 0, ms: performance.now() - t0 };
}

/** GET /api/labs/:lab/predictions: the matrix (compact) and the declared checks. */
export async function predictionsOf(lab: Lab): Promise<Predictions> {
  const nodes = lab.nodes.map((n) => n.name);
  const index = new Map(nodes.map((n, i) => [n, i]));
  const matrix = new Array<number>(nodes.length * nodes.length).fill(-1);
  for (const p of predictMatrix(lab)) matrix[index.get(p.from)! * nodes.length + index.get(p.to)!] = p.reach ? 1 : 0;
  const checks = toViewReport(await runChecks(lab, lab.checks, 'checks', { predictOnly: true }));
  return { lab: lab.name, nodes, matrix, checks };
}
