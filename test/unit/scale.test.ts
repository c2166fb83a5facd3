// Labs at scale without root: how many neighbour entries a lab needs (what `up` raises the
// machine's gc_thresh for), and `check --matrix --summary` (counts and failing pairs, no grid).
import { describe, expect, it } from 'vitest';
import { loadTopologyText } from '../../topology/load.js';
import { neighbourEntries } from '../../controller/plan.js';
import { matrixChecks, runChecks } from '../../checks/run.js';
import { formatMatrixSummary } from '../../checks/format.js';
import type { Lab } from '../../topology/types.js';

function lab(yaml: string): Lab {
  const r = loadTopologyText(yaml, '');
  if (!r.lab) throw new Error(r.diagnostics.map((d) => d.message).join('; '));
  return r.lab;
}

describe('labs at scale', () => {
  it('neighbour entries: k (k + 1) per network of k addresses, two per link', () => {
    const nodes = Array.from({ length: 30 }, (_, i) => `  n${i}: { networks: [lan] }`).join('\n');
    expect(neighbourEntries(lab(`name: big\nnetworks:\n  lan: { subnet: 10.9.0.0/24, gateway: false }\nnodes:\n${nodes}\n`))).toBe(30 * 31);
    expect(neighbourEntries(lab('name: l\nnodes:\n  a:\n  b:\nlinks:\n  - { endpoints: ["a:eth0", "b:eth0"], ipv4: [10.1.0.1/30, 10.1.0.2/30] }\n'))).toBe(2);
  });

  it('--matrix --summary: the counts and only the pairs that fail their expectation', async () => {
    const l = lab('name: s\nnetworks:\n  a: { subnet: 10.2.0.0/24, gateway: false }\n  b: { subnet: 10.3.0.0/24, gateway: false }\nnodes:\n  x: { networks: [a] }\n  y: { networks: [a] }\n  z: { networks: [b] }\n');
    const r = await runChecks(l, matrixChecks(l, 1000), 'matrix', { predictOnly: true });
    const text = formatMatrixSummary(r);
    expect(text.split('\n')[0]).toBe('6 pairs: 2 reach, 4 do not (predicted)');
    // Predicted only: every expectation is the prediction, so nothing is listed.
    expect(text.split('\n').filter((x) => x.startsWith('!'))).toEqual([]);
  });
});
