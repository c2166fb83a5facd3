// Routes between the model and the kernel: static routes of the model in the two forms the
// controller needs (the kernel's RouteSpec, for route.add at up and the re-add after `netlab
// link ... up`, and iproute2's text, for plans), and the nodes' tables read back (`netlab routes`).
import type { Lab, RouteNexthop } from '../topology/types.js';
import { Kernel, type RouteInfo } from './kernel/index.js';
/** A route as `ip route` writes it: `DST [via GW] [dev DEV] [metric M]` or
 *  `DST [metric M] nexthop via A [dev D] nexthop via B ...`. */
export function routeText(r: { dst: string; via: string | null; dev: string | null; metric?: number; nexthops?: RouteNexthop[] }): string {
  const metric = r.metric ? ` metric ${r.metric}` : '';
  if (r.nexthops) return `${r.dst}${metric}${r.nexthops.map((h) => ` nexthop via ${h.via}${h.dev ? ` dev ${h.dev}` : ''}`).join('')}`;
  return `${r.dst}${r.via ? ` via ${r.via}` : ''}${r.dev ? ` dev ${r.dev}` : ''}${metric}`;
}

/** The kernel's form of a model route (RouteSpec of controller/kernel). */
export function kernelRoute(r: { dst: string; via: string | null; dev: string | null; metric?: number; nexthops?: RouteNexthop[] }): {
  dst: string; via?: string; dev?: string; metric?: number; nexthops?: { via: string; dev?: string }[];
} {
  return {
    dst: r.dst,
    ...(r.via !== null ? { via: r.via } : {}),
    ...(r.dev !== null ? { dev: r.dev } : {}),
    ...(r.metric ? { metric: r.metric } : {}),
    ...(r.nexthops ? { nexthops: r.nexthops.map((h) => ({ via: h.via, ...(h.dev !== null ? { dev: h.dev } : {}) })) } : {}),
  };
}

/** Every node's main IPv4 routing table, read over netlink (nodes with their own namespace on
 *  this machine; `only` limits it to some). */
export async function readRoutes(lab: Lab, only?: string[], as: string | null = null): Promise<Map<string, RouteInfo[]>> {
  const out = new Map<string, RouteInfo[]>();
  const kernel = await Kernel.open();
  try {
    for (const n of lab.nodes) {
      if (!n.netns || (only && !only.includes(n.name)) || (as !== null && n.host !== as)) continue;
      out.set(n.name, await kernel.ns(n.netns).routeList(4));
    }
  } finally {
    kernel.close();
  }
  return out;
}
