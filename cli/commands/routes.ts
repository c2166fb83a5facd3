// routes: each node's routing table as the simulator predicts it next to the kernel's, and
// where they differ; with --wait, until they agree (routing protocols converging) or time is up.
import type { Lab } from '../../topology/types.js';
import { LabError, requireRoot } from '../../controller/lab.js';
import { modelOf, readState } from '../../controller/state.js';
import { readRoutes } from '../../controller/routes.js';
import { compareLab, differenceText, hopsText, type RouteRow } from '../../checks/routes.js';
import { predictedTables } from '../../topology/simulate.js';
import { UserError } from '../errors.js';
import type { Io } from '../io.js';
import { labNameOf } from '../target.js';

export interface RoutesOptions { json?: boolean; wait?: number; all?: boolean }


export async function routes(io: Io, arg: string, nodes: string[], opts: RoutesOptions): Promise<void> {
  requireRoot('routes');
  const name = labNameOf(arg);
  const st = readState(name);
  if (!st || st.status !== 'up') throw new LabError(`lab ${name} is not up`);
  const lab: Lab = modelOf(st);
  for (const n of nodes) if (!lab.nodes.some((x) => x.name === n)) throw new UserError(`lab ${name} has no node ${n} (nodes: ${lab.nodes.map((x) => x.name).join(', ')})`);
  const only = nodes.length > 0 ? nodes : undefined;
  const started = Date.now();
  const deadline = started + (opts.wait ?? 0) * 1000;
  let rows: RouteRow[];
  let attempts = 0;
  // Bounded: one read every 250 ms until the deadline; the prediction is the same every time.
  const predicted = predictedTables(lab);
  for (;;) {
    attempts++;
    rows = compareLab(lab, await readRoutes(lab, only, st.as ?? null), predicted);
    if (rows.every((r) => r.same) || Date.now() + 250 > deadline) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  const differ = rows.filter((r) => !r.same);
  const ms = Date.now() - started;
  if (opts.json) {
    io.out(JSON.stringify({ lab: name, agree: differ.length === 0, ms, attempts, routes: rows }, null, 2) + '\n');
  } else {
    const shown = opts.all || nodes.length > 0 ? rows : rows.filter((r) => !r.same || r.predicted?.proto === 'ospf' || r.predicted?.proto === 'bgp' || r.predicted?.proto === 'static');
    const w = Math.max(4, ...shown.map((r) => r.node.length));
    const d = Math.max(11, ...shown.map((r) => r.dst.length));
    io.out(`${'node'.padEnd(w)}  ${'destination'.padEnd(d)}  predicted / kernel\n`);
    for (const r of shown) {
      const p = r.predicted ? `${r.predicted.proto} ${hopsText(r.predicted.nexthops)}${r.predicted.note ? ` (${r.predicted.note})` : ''}` : 'no route';
      const o = r.observed ? `${r.observed.proto} ${hopsText(r.observed.nexthops)}` : 'no route';
      io.out(`${r.node.padEnd(w)}  ${r.dst.padEnd(d)}  ${r.same ? `${p}  ok` : `${p}  /  kernel: ${o}  DIFFERS`}\n`);
    }
    const waited = opts.wait ? ` after ${(ms / 1000).toFixed(1)} s (${attempts} reads)` : '';
    io.out(differ.length === 0 ? `every route agrees with the prediction${waited}\n` : `${differ.length} routes differ from the prediction${waited}\n`);
  }
  if (differ.length > 0) {
    if (!opts.json) for (const r of differ.slice(0, 5)) io.err(`netlab: ${differenceText(r)}\n`);
    throw new UserError('', 1);
  }
}
