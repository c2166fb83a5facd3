// Predicted routing tables against the kernel's: for each node, the simulator's winning route
// to every destination (topology/simulate.ts predictedTable) next to the route the kernel
// forwards by (the lowest metric of the main table, its live next hops), and the differences
// in one line each ("r4: 10.61.1.0/24 predicted via 10.61.45.2 (ospf), kernel via 10.61.34.1
// (ospf)"). `netlab routes` prints them; a check that disagrees with its prediction names the
// routers on its path whose routes differ.
import type { Lab } from '../topology/types.js';
import { predictedTables, type PredictedRoute } from '../topology/simulate.js';

/** A kernel route as controller/kernel's routeList returns it. */
export interface KernelRoute {
  dst: string;
  via: string | null;
  dev: string | null;
  metric: number;
  nexthops: { via: string | null; dev: string | null; dead: boolean }[] | null;
  protocol: string;
}

export interface ObservedRoute {
  dst: string;
  proto: string;
  metric: number;
  nexthops: { via: string | null; dev: string }[];
}

export interface RouteRow {
  node: string;
  dst: string;
  predicted: PredictedRoute | null;
  observed: ObservedRoute | null;
  same: boolean;
}

// rtnetlink protocol numbers (include/uapi/linux/rtnetlink.h) for the ones FRR's zebra uses.
const PROTO_NAMES: Record<string, string> = { '2': 'kernel', '3': 'boot', '4': 'static', '186': 'bgp', '188': 'ospf' };

function protoOf(p: string): string {
  const name = PROTO_NAMES[p] ?? p;
  if (name === 'kernel') return 'connected';
  if (name === 'boot' || name === 'static') return 'static';
  return name;
}

/** The route the kernel forwards by for each destination: the lowest metric, live next hops. */
export function observedTable(routes: KernelRoute[]): ObservedRoute[] {
  const best = new Map<string, KernelRoute>();
  for (const r of routes) {
    const cur = best.get(r.dst);
    if (!cur || r.metric < cur.metric) best.set(r.dst, r);
  }
  return [...best.values()].map((r) => ({
    dst: r.dst, proto: protoOf(r.protocol), metric: r.metric,
    nexthops: (r.nexthops ? r.nexthops.filter((h) => !h.dead) : [{ via: r.via, dev: r.dev }])
      .map((h) => ({ via: h.via, dev: h.dev ?? '?' }))
      .sort((a, b) => `${a.via} ${a.dev}`.localeCompare(`${b.via} ${b.dev}`)),
  }));
}

/** Next hops as `ip route` writes them: `via A dev D, via B dev E`. */
export const hopsText = (h: { via: string | null; dev: string }[]) => h.map((x) => (x.via ? `via ${x.via} dev ${x.dev}` : `dev ${x.dev}`)).join(', ');
const sameHops = (a: { via: string | null; dev: string }[], b: { via: string | null; dev: string }[]) => hopsText(a) === hopsText(b);

/** Predicted and observed tables side by side, one row per destination of either. */
export function compareTables(node: string, predicted: PredictedRoute[], observed: ObservedRoute[]): RouteRow[] {
  const dsts = [...new Set([...predicted.map((r) => r.dst), ...observed.map((r) => r.dst)])];
  return dsts.map((dst) => {
    const p = predicted.find((r) => r.dst === dst) ?? null;
    const o = observed.find((r) => r.dst === dst) ?? null;
    return { node, dst, predicted: p, observed: o, same: p !== null && o !== null && sameHops(p.nexthops, o.nexthops) };
  });
}

/** One line for a row that differs. */
export function differenceText(r: RouteRow): string {
  const p = r.predicted ? `${hopsText(r.predicted.nexthops)} (${r.predicted.proto})` : 'no route';
  const o = r.observed ? `${hopsText(r.observed.nexthops)} (${r.observed.proto})` : 'no route';
  return `${r.node}: ${r.dst} predicted ${p}, kernel ${o}`;
}

/** Rows for every node of the lab with its own namespace, given each node's kernel routes
 *  (and, when the caller compares again and again, the predicted tables computed once). */
export function compareLab(lab: Lab, kernel: Map<string, KernelRoute[]>, predicted: Map<string, PredictedRoute[]> = predictedTables(lab)): RouteRow[] {
  const rows: RouteRow[] = [];
  for (const n of lab.nodes) {
    const k = kernel.get(n.name);
    if (!k) continue;
    rows.push(...compareTables(n.name, predicted.get(n.name) ?? [], observedTable(k)));
  }
  return rows;
}
