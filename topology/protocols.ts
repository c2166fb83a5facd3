// The routing protocols as the simulator models them: from the routers of a lab and which of
// their interfaces pass frames, the routes FRR converges to and installs in each kernel.
//  - OSPF (one area): link-state shortest paths. Two routers are adjacent over a segment on which
//    both run OSPF on a working interface of the same subnet; crossing it costs the sending
//    interface's cost. Every OSPF interface's subnet is a prefix, reached at the distance to its
//    router plus that interface's cost; equal-cost paths are all installed (ECMP), as FRR does.
//  - eBGP: path vector over the sessions that are up (both ends configured, both interfaces
//    working). A router announces its connected networks that are up (FRR's network import
//    check) and its best path to each prefix; a path that holds the receiver's own AS is
//    dropped. Best path: shortest AS path, then the lowest router ID of the neighbour (netlab
//    configures `bgp bestpath compare-routerid`), then the lowest next-hop address; one path.
//  - Zebra's choice between them: a connected subnet beats every protocol, eBGP (distance 20)
//    beats OSPF (110). Static routes are the kernel's own and beat both (simulate.ts).
// Pure: no kernel, no I/O.
import { cidrContains, formatCidr, ipToInt, parseCidr } from './ipam.js';

export interface RouterIface {
  name: string;
  address: string;
  prefixLen: number;
  /** Segment id: routers on the same one can talk (a network or a link). */
  segment: string;
  /** Up with carrier: frames pass and its connected route is active. */
  usable: boolean;
  /** OSPF cost when OSPF runs on it, else null. */
  ospfCost: number | null;
}

export interface Router {
  id: string;
  routerId: string;
  ifaces: RouterIface[];
  ospf: boolean;
  bgp: { asn: number; neighbors: string[]; networks: string[] } | null;
}

export interface ProtocolRoute {
  dst: string;
  proto: 'ospf' | 'bgp';
  /** The next hops installed (several: ECMP). */
  nexthops: { via: string; dev: string }[];
  /** OSPF: the path cost; BGP: the AS path length. */
  cost: number;
  /** BGP only: the AS path, nearest AS first. */
  asPath?: number[];
}

const subnetOf = (f: RouterIface) => formatCidr(parseCidr(`${f.address}/${f.prefixLen}`)!);

function connected(r: Router): Set<string> {
  return new Set(r.ifaces.filter((f) => f.usable).map(subnetOf));
}

/** Routes each router installs, by router id. */
export function protocolRoutes(routers: Router[]): Map<string, ProtocolRoute[]> {
  const out = new Map<string, ProtocolRoute[]>(routers.map((r) => [r.id, []]));
  const bgp = bgpRoutes(routers);
  const ospf = ospfRoutes(routers);
  for (const r of routers) {
    const own = connected(r);
    const b = bgp.get(r.id) ?? [];
    const chosen = new Map<string, ProtocolRoute>();
    for (const x of ospf.get(r.id) ?? []) if (!own.has(x.dst)) chosen.set(x.dst, x);
    for (const x of b) if (!own.has(x.dst)) chosen.set(x.dst, x); // eBGP's distance 20 < OSPF's 110
    out.set(r.id, [...chosen.values()].sort((a, c) => a.dst.localeCompare(c.dst)));
  }
  return out;
}

// ---------------------------------------------------------------- OSPF

interface Adjacency { to: Router; cost: number; dev: string; via: string }

function ospfRoutes(routers: Router[]): Map<string, ProtocolRoute[]> {
  const speakers = routers.filter((r) => r.ospf);
  const live = (r: Router) => r.ifaces.filter((f) => f.usable && f.ospfCost !== null);
  const adj = new Map<Router, Adjacency[]>();
  for (const r of speakers) {
    const list: Adjacency[] = [];
    for (const f of live(r)) {
      for (const s of speakers) {
        if (s === r) continue;
        for (const g of live(s)) {
          if (g.segment === f.segment && subnetOf(g) === subnetOf(f) && g.address !== f.address) list.push({ to: s, cost: f.ospfCost!, dev: f.name, via: g.address });
        }
      }
    }
    adj.set(r, list);
  }
  const out = new Map<string, ProtocolRoute[]>();
  for (const src of speakers) {
    // Dijkstra with every equal-cost first hop kept.
    const dist = new Map<Router, number>([[src, 0]]);
    const first = new Map<Router, Map<string, { via: string; dev: string }>>([[src, new Map()]]);
    const done = new Set<Router>();
    for (;;) {
      let u: Router | null = null;
      for (const [r, d] of dist) if (!done.has(r) && (u === null || d < dist.get(u)!)) u = r;
      if (u === null) break;
      done.add(u);
      for (const a of adj.get(u) ?? []) {
        const d = dist.get(u)! + a.cost;
        const hops = u === src ? new Map([[`${a.via} ${a.dev}`, { via: a.via, dev: a.dev }]]) : first.get(u)!;
        const old = dist.get(a.to);
        if (old === undefined || d < old) {
          dist.set(a.to, d);
          first.set(a.to, new Map(hops));
        } else if (d === old && !done.has(a.to)) {
          for (const [k, v] of hops) first.get(a.to)!.set(k, v);
        }
      }
    }
    // Prefixes: each OSPF interface's subnet, at its router's distance plus its cost.
    const best = new Map<string, { cost: number; hops: Map<string, { via: string; dev: string }> }>();
    for (const [x, d] of dist) {
      if (x === src) continue;
      for (const f of live(x)) {
        const p = subnetOf(f);
        const c = d + f.ospfCost!;
        const cur = best.get(p);
        if (!cur || c < cur.cost) best.set(p, { cost: c, hops: new Map(first.get(x)!) });
        else if (c === cur.cost) for (const [k, v] of first.get(x)!) cur.hops.set(k, v);
      }
    }
    const routes: ProtocolRoute[] = [];
    for (const [dst, b] of best) {
      if (b.hops.size === 0) continue;
      const nexthops = [...b.hops.values()].sort((m, n) => ipToInt(m.via) - ipToInt(n.via));
      routes.push({ dst, proto: 'ospf', nexthops, cost: b.cost });
    }
    out.set(src.id, routes);
  }
  return out;
}

// ---------------------------------------------------------------- eBGP

interface BgpPath { asPath: number[]; via: string | null; dev: string | null; nbrRouterId: string }

function bgpRoutes(routers: Router[]): Map<string, ProtocolRoute[]> {
  const speakers = routers.filter((r) => r.bgp);
  // A session: r's neighbor address is s's address on a working interface, r's own interface on
  // that subnet works, and s lists r's address back.
  const sessions = new Map<Router, { peer: Router; via: string; dev: string }[]>();
  const ifaceFor = (r: Router, addr: string) => r.ifaces.find((f) => f.usable && f.address !== addr && cidrContains(`${f.address}/${f.prefixLen}`, addr));
  for (const r of speakers) {
    const list: { peer: Router; via: string; dev: string }[] = [];
    for (const addr of r.bgp!.neighbors) {
      const peer = speakers.find((s) => s !== r && s.ifaces.some((f) => f.usable && f.address === addr));
      const mine = ifaceFor(r, addr);
      if (!peer || !mine) continue;
      const theirs = peer.ifaces.find((f) => f.address === addr)!;
      if (theirs.segment !== mine.segment) continue;
      if (!peer.bgp!.neighbors.includes(mine.address)) continue;
      list.push({ peer, via: addr, dev: mine.name });
    }
    sessions.set(r, list);
  }
  const better = (a: BgpPath, b: BgpPath) => {
    if (a.asPath.length !== b.asPath.length) return a.asPath.length < b.asPath.length;
    if (a.nbrRouterId !== b.nbrRouterId) return ipToInt(a.nbrRouterId) < ipToInt(b.nbrRouterId);
    return ipToInt(a.via ?? '0.0.0.0') < ipToInt(b.via ?? '0.0.0.0');
  };
  // Locally originated networks (up interfaces only), then rounds until nothing changes.
  let rib = new Map<Router, Map<string, BgpPath>>();
  for (const r of speakers) {
    const own = connected(r);
    rib.set(r, new Map(r.bgp!.networks.filter((n) => own.has(n)).map((n) => [n, { asPath: [], via: null, dev: null, nbrRouterId: r.routerId }])));
  }
  for (let round = 0; round <= speakers.length + 1; round++) {
    const next = new Map<Router, Map<string, BgpPath>>();
    let changed = false;
    for (const r of speakers) {
      const mine = new Map<string, BgpPath>();
      for (const [p, path] of rib.get(r)!) if (path.via === null) mine.set(p, path);
      for (const s of sessions.get(r)!) {
        for (const [p, path] of rib.get(s.peer)!) {
          const asPath = [s.peer.bgp!.asn, ...path.asPath];
          if (asPath.includes(r.bgp!.asn)) continue;
          const cand: BgpPath = { asPath, via: s.via, dev: s.dev, nbrRouterId: s.peer.routerId };
          const cur = mine.get(p);
          if (!cur || (cur.via !== null && better(cand, cur))) mine.set(p, cand);
        }
      }
      const old = rib.get(r)!;
      if (old.size !== mine.size || [...mine].some(([p, x]) => { const o = old.get(p); return !o || o.via !== x.via || o.asPath.join() !== x.asPath.join(); })) changed = true;
      next.set(r, mine);
    }
    rib = next;
    if (!changed) break;
  }
  const out = new Map<string, ProtocolRoute[]>();
  for (const r of speakers) {
    const routes: ProtocolRoute[] = [];
    for (const [dst, path] of rib.get(r)!) {
      if (path.via === null) continue;
      routes.push({ dst, proto: 'bgp', nexthops: [{ via: path.via, dev: path.dev! }], cost: path.asPath.length, asPath: path.asPath });
    }
    out.set(r.id, routes);
  }
  return out;
}
