// The resolver's routing stage (after the nodes and their images): a node's `routing:` (OSPF
// area and interfaces, eBGP ASN and neighbours, router ID) and the `ospf: { cost }` of links and
// network attachments, turned into LabNode.routing that runtime/frr.ts renders into FRR's files.
// A routing node runs FRR: it needs an image that has it (checked here where the file says so:
// busybox and host do not; an `images:` recipe must list the frr package; a pulled image is
// checked at up), and it gets what FRR's daemons need to run: NET_ADMIN and SYS_ADMIN (zebra
// refuses to start without them), forwarding, and FRR as its command unless one is given.
import type { LabImage, LabInterface, LabNode, RawRouting } from './types.js';
import { OSPF_DEFAULT_COST } from './types.js';
import { canonicalCidr, intToIp, ipToInt, isIpv4 } from './ipam.js';
import type { PathSeg } from './source.js';
import type { LinkDraft, ResolveContext } from './resolve-context.js';

/** The command a routing node runs when the file gives none: FRR's own init script starts
 *  watchfrr and the daemons of /etc/frr/daemons, then PID 1 idles (as FRR's docker image does):
 *  netlab-pause where the image has it (images netlab builds: it reaps orphans and exits 0 on
 *  SIGTERM), else sleep. */
export const FRR_COMMAND = ['/bin/sh', '-c', '/usr/lib/frr/frrinit.sh start >/dev/null || exit 1; [ -x /usr/local/sbin/netlab-pause ] && exec /usr/local/sbin/netlab-pause; exec sleep infinity'];

/** Capabilities FRR's daemons ask for at start (zebra: net_admin, net_raw, sys_admin). */
export const FRR_CAPS = ['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN'];

function areaId(v: number | string): string | null {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 && v <= 0xffffffff ? intToIp(v) : null;
  if (/^\d+$/.test(v)) return areaId(Number(v));
  return isIpv4(v) ? v : null;
}

/** Both nodes' interfaces on one segment (a link between them, or a network both are on). */
function sharedSegments(a: LabNode, b: LabNode): { mine: LabInterface; theirs: LabInterface }[] {
  const out: { mine: LabInterface; theirs: LabInterface }[] = [];
  for (const f of a.interfaces) {
    if (!f.ipv4) continue;
    const g = f.kind === 'link'
      ? b.interfaces.find((x) => x.kind === 'link' && x.link === f.link && f.peer?.node === b.name)
      : b.interfaces.find((x) => x.kind === 'network' && x.network === f.network);
    if (g?.ipv4) out.push({ mine: f, theirs: g });
  }
  return out;
}

export function resolveRouting(ctx: ResolveContext, nodes: LabNode[], images: Map<string, LabImage>, links: LinkDraft[]): void {
  const { err } = ctx;
  const byName = new Map(nodes.map((n) => [n.name, n]));
  // OSPF costs written on links and attachments.
  (ctx.raw.links ?? []).forEach((l, i) => {
    const cost = l.ospf?.cost;
    if (cost === undefined) return;
    const d = links.find((x) => x.index === i);
    if (!d) return;
    for (const e of [d.a, d.b]) {
      const f = byName.get(e.node)?.interfaces.find((x) => x.name === e.iface);
      if (f) f.ospfCost = cost;
    }
  });
  for (const [name, raw] of ctx.rawNodes) {
    const node = byName.get(name);
    if (!node || !raw.networks || Array.isArray(raw.networks)) continue;
    for (const [net, att] of Object.entries(raw.networks)) {
      const cost = att?.ospf?.cost;
      if (cost === undefined) continue;
      if (!raw.routing?.ospf) err(['nodes', name, 'networks', net, 'ospf'], `node ${name} has no routing.ospf: an OSPF cost applies only to a node that runs OSPF`);
      const f = node.interfaces.find((x) => x.kind === 'network' && x.network === net);
      if (f) f.ospfCost = cost;
    }
  }

  const areas = new Map<string, string>();
  const routers = ctx.rawNodes.filter(([, raw]) => raw.routing);
  for (const [name, raw] of routers) {
    const node = byName.get(name);
    if (!node) continue;
    const r = raw.routing as RawRouting;
    const p: PathSeg[] = ['nodes', name, 'routing'];
    if (node.networkMode !== 'bridge') { err(p, `node ${name} has network_mode ${node.networkMode}: routing needs the node's own interfaces`); continue; }
    const imageName = raw.image ?? 'busybox';
    const built = images.get(imageName);
    if (imageName === 'busybox' || imageName === 'host') {
      err(raw.image === undefined ? p : ['nodes', name, 'image'], `node ${name} has routing, which runs FRR, and image ${imageName} has no FRR: declare an image with it (images: { frr: { debian: bookworm, packages: [frr] } }) and write image: frr`);
      continue;
    }
    if (built && !built.packages.includes('frr')) {
      err(['nodes', name, 'image'], `node ${name} has routing, which runs FRR, and image ${imageName} does not install it: add frr to images.${imageName}.packages`);
      continue;
    }
    const addressed = node.interfaces.filter((f) => f.ipv4);
    let routerId: string;
    if (r.router_id !== undefined) {
      if (!isIpv4(r.router_id)) { err([...p, 'router_id'], `router_id "${r.router_id}" is not an IPv4 address (a router ID is written like one)`); continue; }
      routerId = r.router_id;
    } else if (addressed.length > 0) {
      routerId = intToIp(Math.min(...addressed.map((f) => ipToInt(f.ipv4!.address))));
    } else {
      err(p, `node ${name} has routing but no interface address to take a router ID from; give routing.router_id`);
      continue;
    }
    let ospf: NonNullable<LabNode['routing']>['ospf'] = null;
    if (r.ospf) {
      const area = areaId(r.ospf.area ?? 0);
      if (area === null) { err([...p, 'ospf', 'area'], `OSPF area "${r.ospf.area}" is neither a number (0-4294967295) nor a dotted quad`); continue; }
      areas.set(area, areas.get(area) ?? name);
      let names: string[];
      if (r.ospf.interfaces) {
        names = [];
        r.ospf.interfaces.forEach((i, k) => {
          const f = node.interfaces.find((x) => x.name === i);
          if (!f) err([...p, 'ospf', 'interfaces', k], `node ${name} has no interface "${i}" (interfaces: ${node.interfaces.map((x) => x.name).join(', ') || 'none'})`);
          else if (!f.ipv4) err([...p, 'ospf', 'interfaces', k], `interface ${name}:${i} has no IPv4 address, so OSPF cannot run on it`);
          else names.push(i);
        });
      } else {
        names = addressed.map((f) => f.name);
      }
      ospf = { area, interfaces: names.map((i) => ({ name: i, cost: node.interfaces.find((x) => x.name === i)!.ospfCost ?? OSPF_DEFAULT_COST })) };
    }
    node.routing = { routerId, ospf, bgp: null };
    // FRR runs as the node's command; what its daemons need to.
    if (node.command === null && node.entrypoint === null) node.command = [...FRR_COMMAND];
    if (!node.privileged && !node.capAdd.includes('ALL')) for (const c of FRR_CAPS) if (!node.capAdd.includes(c)) node.capAdd.push(c);
    if (raw.forwarding === undefined) node.forwarding = true;
  }
  if (areas.size > 1) {
    const [a, b] = [...areas.entries()];
    err(['nodes', b[1], 'routing', 'ospf', 'area'], `node ${b[1]} is in OSPF area ${b[0]} and node ${a[1]} in area ${a[0]}: netlab runs one OSPF area per lab (put every router in the same area)`);
  }

  // eBGP sessions, once every router is known.
  for (const [name, raw] of routers) {
    const node = byName.get(name);
    const bgp = raw.routing?.bgp;
    if (!node?.routing || !bgp) continue;
    const p: PathSeg[] = ['nodes', name, 'routing', 'bgp'];
    const isBgp = (n: LabNode) => ctx.rawNodes.find(([x]) => x === n.name)?.[1].routing?.bgp !== undefined;
    const asnOf = (n: LabNode) => ctx.rawNodes.find(([x]) => x === n.name)![1].routing!.bgp!.asn;
    const neighbors: { node: string; address: string; asn: number }[] = [];
    const peerWith = (other: LabNode, at: PathSeg[], explicit: boolean) => {
      const shared = sharedSegments(node, other);
      if (shared.length === 0) { if (explicit) err(at, `BGP neighbor ${other.name} shares no network or link with ${name}: netlab's eBGP sessions are between directly connected routers`); return; }
      if (asnOf(other) === bgp.asn) { err(at, `${name} and ${other.name} are both in AS ${bgp.asn}: netlab configures eBGP only (give each router its own ASN)`); return; }
      for (const s of shared) neighbors.push({ node: other.name, address: s.theirs.ipv4!.address, asn: asnOf(other) });
    };
    if (bgp.neighbors) {
      bgp.neighbors.forEach((nb, k) => {
        const other = byName.get(nb);
        const at: PathSeg[] = [...p, 'neighbors', k];
        if (!other) err(at, `no node "${nb}" in this lab`);
        else if (other === node) err(at, `${name} cannot peer with itself`);
        else if (!isBgp(other)) err(at, `node ${nb} has no routing.bgp, so it has no BGP session to offer`);
        else peerWith(other, at, true);
      });
    } else {
      for (const other of nodes) if (other !== node && isBgp(other) && sharedSegments(node, other).length > 0) peerWith(other, p, false);
    }
    const networks = [...new Set(node.interfaces.filter((f) => f.ipv4).map((f) => canonicalCidr(`${f.ipv4!.address}/${f.ipv4!.prefixLen}`)!))];
    node.routing.bgp = { asn: bgp.asn, neighbors, networks };
  }
}
