// Predictions in the API's shapes, computed with one simulator world for all pairs
// (predictMatrix) rather than one per check: 300 nodes are 89,700 pairs.
import type { Lab } from '../../topology/types.js';
import { predictMatrix } from '../../topology/simulate.js';
import { matrixChecks, predictedReport, runChecks, type CheckReport } from '../../checks/run.js';
import type { Predictions, ViewCheckReport } from './types.js';

/** A check report as the API returns it; the matrix's per-pair explanations are left out
 *  (N^2 of them: GET predictions?from=&to= explains one pair). */
export function toViewReport(r: CheckReport): ViewCheckReport {
  const outcomes = r.mode === 'matrix' ? r.outcomes.map((o) => ({ ...o, explanation: '' })) : r.outcomes;
  return { ...r, outcomes, at: new Date().toISOString() };
}

/** The all-pairs ping matrix, predicted only: runChecks(matrixChecks) with predictOnly gives the
 *  same outcomes, but predicts pair by pair; here one simulator world serves every pair, and
 *  the explanations are left out. */
export function predictedMatrixReport(lab: Lab): CheckReport {
  return predictedReport(lab, matrixChecks(lab), predictMatrix(lab), 'matrix', { explanations: false });
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
