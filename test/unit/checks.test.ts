// One outcome code for every check report: the web view's predicted matrix (one simulator world
// for all pairs) must say exactly what `netlab check --matrix --predict-only` says, pair by pair.
import { describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { matrixChecks, runChecks } from '../../checks/run.js';
import { predictedMatrixReport } from '../../web/server/predict.js';
import { loadTopologyFile } from '../../topology/load.js';

const LABS = path.resolve(import.meta.dirname, '../../labs');

describe('checks: one outcome code', () => {
  for (const name of ['bridge', 'routed', 'isolated', 'host', 'none', 'overlay']) {
    it(`labs/${name}.yml: the predicted matrix equals runChecks(matrixChecks) predicted only, but for the explanations`, async () => {
      const r = loadTopologyFile(path.join(LABS, `${name}.yml`));
      expect(r.diagnostics).toEqual([]);
      const lab = r.lab!;
      const slow = await runChecks(lab, matrixChecks(lab), 'matrix', { predictOnly: true });
      const fast = predictedMatrixReport(lab);
      expect(fast.outcomes.length).toBe(lab.nodes.length * (lab.nodes.length - 1));
      if (name !== 'none') expect(fast.outcomes.some((o) => o.predicted === 'reach')).toBe(true);
      expect(fast.outcomes).toEqual(slow.outcomes.map((o) => ({ ...o, explanation: '' })));
      expect({ ...fast, ms: 0 }).toEqual({ ...slow, outcomes: fast.outcomes, ms: 0 });
    });
  }
});
