// The resolver's network stages: the IPAM pool, networks (drivers, gateways, VNIs), point-to-point
// links, simulated hosts and their underlay, where each network is placed (one machine or
// several), subnet allocation and address assignment, then the Lab's networks and links. Each
// stage reports its problems through the shared context (resolve-context.ts) at the value's
// file:line:col; resolve.ts runs them in order, because later stages allocate around what the
// earlier ones claimed.
import type { Driver, LabHost, LabLink, LabNetwork, LabNode } from './types.js';
import {
  AddressAllocator, canonicalCidr, cidrsOverlap, IpamError, isIpv4, isUsableAddress, parseCidr, parseIfaceAddress, SubnetAllocator,
} from './ipam.js';
import { hostNetns } from './names.js';
import { didYouMean, type PathSeg } from './source.js';
import { BRIDGE_MAX_PORTS } from './fields.js';
import { machineProblem, reservedProblem, subnetsToAvoid } from './addrspace.js';
import {
  DEFAULT_MTU, DEFAULT_POOL, DEFAULT_PREFIX, DEFAULT_VXLAN_PORT, entries, FIRST_AUTO_VNI, plural, VXLAN_OVERHEAD,
  type AttDraft, type EndDraft, type LinkDraft, type NetDraft, type NodeDraft, type ResolveContext,
} from './resolve-context.js';

/** The pool automatic subnets come from and the prefix length of each. */
export function resolvePool(ctx: ResolveContext): { pool: string; prefix: number } {
  const { raw, err, checkSubnet } = ctx;
  let pool = DEFAULT_POOL;
  if (raw.ipam?.pool !== undefined) pool = checkSubnet(raw.ipam.pool, ['ipam', 'pool'], 'ipam pool') ?? DEFAULT_POOL;
  const prefix = raw.ipam?.prefix ?? DEFAULT_PREFIX;
  if (parseCidr(pool) && prefix < parseCidr(pool)!.prefixLen) {
    err(['ipam', 'prefix'], `prefix /${prefix} is larger than the pool ${pool}; expected a prefix of at least /${parseCidr(pool)!.prefixLen}`);
  }
  return { pool, prefix };
}

/** The explicit parts of every network, then the VNIs of the overlays. */
export function resolveNetworks(ctx: ResolveContext): NetDraft[] {
  const { raw, err, checkSubnet, claimSubnet, hostNames } = ctx;
  const nets: NetDraft[] = [];
  for (const [name, n] of entries(raw.networks).map(([k, v]) => [k, v ?? {}] as const)) {
    const p: PathSeg[] = ['networks', name];
    const driver: Driver = n.driver ?? 'bridge';
    const d: NetDraft = { name, driver, subnet: null, gw: driver === 'bridge', ipv6: n.ipv6 ?? false, mtu: n.mtu ?? (driver === 'overlay' ? DEFAULT_MTU - VXLAN_OVERHEAD : DEFAULT_MTU), vni: null, port: null, p };
    if (driver === 'host' || driver === 'none') {
      for (const k of ['subnet', 'gateway', 'ipv6', 'mtu', 'vni', 'port'] as const) {
        if (n[k] !== undefined) err([...p, k], `"${k}" does not apply to a ${driver} network (it has no interfaces of its own); remove it`, true);
      }
    } else {
      if (n.subnet !== undefined) {
        const s = checkSubnet(n.subnet, [...p, 'subnet'], 'subnet');
        if (s) {
          d.subnet = s;
          claimSubnet(s, [...p, 'subnet'], `subnet of network ${name}`);
        }
      }
      if (n.gateway !== undefined) d.gw = n.gateway;
      if (driver === 'overlay' && d.gw !== false) {
        if (n.gateway !== undefined) err([...p, 'gateway'], 'an overlay network has no host-side gateway; remove "gateway" (or attach the node to a bridge network too)');
        d.gw = false;
      }
      if (typeof d.gw === 'string' && !isIpv4(d.gw)) {
        err([...p, 'gateway'], `"${d.gw}" is not an IPv4 address; expected true, false or an address inside the subnet`);
        d.gw = false;
      }
      if (typeof d.gw === 'string' && d.subnet && !isUsableAddress(d.subnet, d.gw)) {
        err([...p, 'gateway'], `gateway ${d.gw} is outside subnet ${d.subnet} (or is its network/broadcast address); expected a host address of the subnet`);
      }
      if (typeof d.gw === 'string' && !d.subnet && n.subnet === undefined) {
        err([...p, 'gateway'], `a fixed gateway address needs a fixed subnet; add "subnet" to network ${name}`);
      }
      if (driver === 'overlay') {
        d.vni = n.vni ?? null;
        d.port = n.port ?? DEFAULT_VXLAN_PORT;
        if (hostNames.size === 0) {
          err([...p, 'driver'], `overlay network ${name} needs machines to span: add a "hosts:" section and place its nodes with "host:"`);
        }
      } else {
        for (const k of ['vni', 'port'] as const) {
          if (n[k] !== undefined) err([...p, k], `"${k}" applies only to overlay networks; remove it or set driver: overlay`, true);
        }
      }
    }
    nets.push(d);
  }

  // VNIs: given ones are unique; the others are allocated from FIRST_AUTO_VNI upwards.
  const usedVni = new Map<number, string>();
  for (const n of nets) {
    if (n.driver !== 'overlay' || n.vni === null) continue;
    if (usedVni.has(n.vni)) err([...n.p, 'vni'], `VNI ${n.vni} is already used by network ${usedVni.get(n.vni)}; each overlay needs its own`);
    usedVni.set(n.vni, n.name);
  }
  let nextVni = FIRST_AUTO_VNI;
  for (const n of nets) {
    if (n.driver !== 'overlay' || n.vni !== null) continue;
    while (usedVni.has(nextVni)) nextVni++;
    n.vni = nextVni;
    usedVni.set(nextVni, n.name);
  }
  return nets;
}

/** Point-to-point links: endpoints and their explicit subnets. */
export function resolveLinks(ctx: ResolveContext): LinkDraft[] {
  const { raw, err, claimSubnet, nodeNames, checkIfaceName } = ctx;
  const links: LinkDraft[] = [];
  (raw.links ?? []).forEach((l, i) => {
    const p: PathSeg[] = ['links', i];
    const ends: EndDraft[] = [];
    l.endpoints.forEach((ep, j) => {
      const ep_p: PathSeg[] = [...p, 'endpoints', j];
      const m = /^([^:]+):([^:]+)$/.exec(ep);
      if (!m) { err(ep_p, `"${ep}" is not an endpoint; expected NODE:INTERFACE, e.g. "r1:eth1"`); return; }
      const [, node, iface] = m;
      if (!nodeNames.has(node)) { err(ep_p, `node "${node}" is not defined${didYouMean(node, nodeNames)} (nodes: ${[...nodeNames].join(', ') || 'none'})`); return; }
      if (!checkIfaceName(iface, ep_p)) return;
      ends.push({ node, iface, ipv4: null, p: ep_p });
    });
    if (l.ipv4) {
      const addrs = l.ipv4.map((a, j) => {
        const ia = parseIfaceAddress(a);
        if (!ia) err([...p, 'ipv4', j], `"${a}" is not an interface address; expected ADDRESS/PREFIX, e.g. 10.0.12.1/30`);
        return ia;
      });
      if (addrs[0] && addrs[1]) {
        const s0 = canonicalCidr(`${addrs[0].address}/${addrs[0].prefixLen}`)!;
        const s1 = canonicalCidr(`${addrs[1].address}/${addrs[1].prefixLen}`)!;
        if (s0 !== s1) err([...p, 'ipv4', 1], `${l.ipv4[1]} is not on the same subnet as ${l.ipv4[0]} (${s0}); both ends of a link share one subnet`);
        else if (addrs[0].address === addrs[1].address) err([...p, 'ipv4', 1], `both ends of the link have address ${addrs[0].address}; expected two different addresses`);
        else {
          let ok = true;
          for (let j = 0; j < 2; j++) {
            if (!isUsableAddress(s0, addrs[j]!.address)) { err([...p, 'ipv4', j], `${addrs[j]!.address} is the network or broadcast address of ${s0}; expected a host address`); ok = false; }
          }
          const why = reservedProblem(s0);
          if (why) { err([...p, 'ipv4', 0], `link subnet ${why}`); ok = false; }
          if (ok && claimSubnet(s0, [...p, 'ipv4'], `subnet of link ${i}`) && ends.length === 2) {
            ends[0].ipv4 = addrs[0]; ends[1].ipv4 = addrs[1];
          }
        }
      }
    }
    if (ends.length === 2) links.push({ index: links.length, a: ends[0], b: ends[1], mtu: l.mtu ?? DEFAULT_MTU, up: (l.state ?? 'up') === 'up', p });
  });
  return links;
}

/** The simulated hosts and their underlay. When the underlay subnet comes from the pool, pending
 *  finishes the hosts once the network subnets are claimed (allocateSubnets calls it). */
export interface HostsStage {
  underlay: { subnet: string; bridgeName: string } | null;
  hosts: LabHost[];
  pending: ((subnet: string) => void) | null;
}

export function resolveHosts(ctx: ResolveContext): HostsStage {
  const { raw, err, labName, checkSubnet, claimSubnet, uniqueIfName, hostNames } = ctx;
  const rawHosts = entries(raw.hosts).map(([n, v]) => [n, v ?? {}] as const);
  const stage: HostsStage = { underlay: null, hosts: [], pending: null };
  const hosts = stage.hosts;
  if (hostNames.size > 0) {
    let sub: string | null = null;
    if (raw.underlay?.subnet !== undefined) {
      sub = checkSubnet(raw.underlay.subnet, ['underlay', 'subnet'], 'underlay subnet');
      if (sub) claimSubnet(sub, ['underlay', 'subnet'], 'underlay subnet');
    }
    const given = rawHosts.filter(([, h]) => h.address !== undefined);
    if (!sub && raw.underlay?.subnet === undefined && given.length > 0) {
      const [hn, h] = given[0];
      if (isIpv4(h.address!)) {
        sub = canonicalCidr(`${h.address}/24`);
        const why = sub ? reservedProblem(sub) : null;
        if (why) { err(['hosts', hn, 'address'], `underlay subnet (the /24 of the first host address) ${why}`); sub = null; }
        if (sub && !claimSubnet(sub, ['hosts', hn, 'address'], 'underlay subnet (the /24 of the first host address)')) sub = null;
      }
    }
    let alloc: AddressAllocator | null = null;
    const hostAddr: Map<string, string | null> = new Map();
    for (const [hn, h] of rawHosts) {
      if (h.address === undefined) { hostAddr.set(hn, null); continue; }
      const p: PathSeg[] = ['hosts', hn, 'address'];
      if (!isIpv4(h.address)) { err(p, `"${h.address}" is not an IPv4 address`); hostAddr.set(hn, null); continue; }
      hostAddr.set(hn, h.address);
    }
    // The underlay subnet may still be unknown (allocated below with the networks).
    const finishHosts = (subnet: string) => {
      stage.underlay = { subnet, bridgeName: uniqueIfName('b', '@underlay') };
      alloc = new AddressAllocator(subnet, []);
      for (const [hn, a] of hostAddr) {
        if (a === null) continue;
        try { alloc.take(a); } catch (e) {
          err(['hosts', hn, 'address'], `${(e as IpamError).message}${raw.underlay?.subnet === undefined ? '; set underlay.subnet to a subnet holding every host address' : ''}`);
        }
      }
      for (const [hn] of rawHosts) {
        let a = hostAddr.get(hn) ?? null;
        if (a === null) {
          try { a = alloc.next(); } catch (e) { err(['hosts', hn], (e as IpamError).message, true); a = '0.0.0.0'; }
        }
        hosts.push({
          name: hn, address: a, prefixLen: parseCidr(subnet)!.prefixLen, netns: hostNetns(labName, hn),
          underlaySide: uniqueIfName('u', hn), underlayIface: 'eth0',
        });
      }
    };
    if (sub) finishHosts(sub);
    else stage.pending = finishHosts;
  }
  return stage;
}

/** Where each network is: the machines of its nodes (null: the local machine). Also the checks
 *  that need the nodes' placement: bridges on one machine, gateways, bridge ports, link ends. */
export function placeNetworks(
  ctx: ResolveContext, nets: NetDraft[], netByName: Map<string, NetDraft>, attachments: AttDraft[],
  nodeDrafts: Map<string, NodeDraft>, hostGiven: Set<string>, links: LinkDraft[],
): Map<string, Set<string | null>> {
  const { raw, err, env, hostNames } = ctx;
  const netHosts = new Map<string, Set<string | null>>();
  for (const a of attachments) {
    const h = nodeDrafts.get(a.node)!.host;
    const d = netByName.get(a.net)!;
    if (d.driver === 'overlay' && h === null) {
      // Without any hosts the network itself is reported; with a misspelled host, the host is.
      if (hostNames.size > 0 && !hostGiven.has(a.node)) {
        err(['nodes', a.node], `node ${a.node} is on overlay network ${a.net} but has no "host"; place it on one of: ${[...hostNames].join(', ')}`, true);
      }
      continue;
    }
    if (!netHosts.has(a.net)) netHosts.set(a.net, new Set());
    const set = netHosts.get(a.net)!;
    if (d.driver === 'bridge' && set.size > 0 && !set.has(h)) {
      err(a.p, `bridge network ${a.net} is local to one machine but its nodes are on ${[...set, h].map((x) => x ?? 'the local machine').join(' and ')}; use driver: overlay to span machines`);
      continue;
    }
    set.add(h);
  }

  // A bridge on a simulated host is inside that host's namespace: the machine is not on it, so
  // it has no host-side gateway (and no NAT).
  for (const n of nets) {
    if (n.driver !== 'bridge' || ![...(netHosts.get(n.name) ?? [])].some((h) => h !== null)) continue;
    const rawGw = raw.networks?.[n.name]?.gateway;
    if (rawGw !== undefined && rawGw !== false) {
      err([...n.p, 'gateway'], `network ${n.name} is on simulated host ${[...netHosts.get(n.name)!].join(', ')}, where the host machine has no address; remove "gateway"`);
    }
    n.gw = false;
  }

  // A network with a host-side gateway is present on this machine: its subnet must leave the
  // machine's own routes and addresses alone (its connected route would shadow them).
  for (const n of nets) {
    if (n.driver !== 'bridge' || n.gw === false || n.subnet === null) continue;
    const why = machineProblem(n.subnet, env?.machine);
    if (why) err([...n.p, 'subnet'], `subnet of network ${n.name} ${why}`);
  }

  // A Linux bridge has at most BRIDGE_MAX_PORTS ports: each node's interface on the network is
  // one, and so is an overlay's VXLAN device on each host's bridge.
  for (const n of nets) {
    if (n.driver !== 'bridge' && n.driver !== 'overlay') continue;
    const perMachine = new Map<string | null, number>();
    for (const a of attachments) {
      if (a.net !== n.name) continue;
      const h = nodeDrafts.get(a.node)!.host;
      perMachine.set(h, (perMachine.get(h) ?? 0) + 1);
    }
    for (const [h, count] of perMachine) {
      const ports = count + (n.driver === 'overlay' ? 1 : 0);
      if (ports <= BRIDGE_MAX_PORTS) continue;
      const where = h === null ? '' : ` on host ${h}`;
      err(n.p, `network ${n.name} needs ${ports} ports on one bridge${where} (${plural(count, 'node interface', 'node interfaces')}${n.driver === 'overlay' ? ' + its VXLAN device' : ''}); a Linux bridge takes at most ${BRIDGE_MAX_PORTS} (the kernel's BR_MAX_PORTS, less port 0): split the nodes over several networks joined by a router node (forwarding: true)`, true);
      break;
    }
  }
  if (hostNames.size > BRIDGE_MAX_PORTS) {
    err(['hosts'], `${hostNames.size} hosts need ${hostNames.size} ports on the underlay bridge; a Linux bridge takes at most ${BRIDGE_MAX_PORTS} (the kernel's BR_MAX_PORTS, less port 0)`, true);
  }

  // Link endpoints: both nodes must have their own netns on the same machine.
  for (const l of links) {
    for (const e of [l.a, l.b]) {
      const nd = nodeDrafts.get(e.node)!;
      if (nd.mode !== 'bridge') err(e.p, `node ${e.node} has network_mode ${nd.mode}; a point-to-point link needs a node with its own network namespace`);
    }
    const ha = nodeDrafts.get(l.a.node)!.host, hb = nodeDrafts.get(l.b.node)!.host;
    if (ha !== hb) err(l.b.p, `a veth link cannot cross machines (${l.a.node} is on ${ha ?? 'the local machine'}, ${l.b.node} on ${hb ?? 'the local machine'}); connect them with an overlay network`);
  }
  return netHosts;
}

/** Subnets of the networks (and the underlay) that the file leaves out, from the pool. */
export function allocateSubnets(ctx: ResolveContext, nets: NetDraft[], pool: string, prefix: number, hostsStage: HostsStage): void {
  const { raw, err, env, labName, claims } = ctx;
  let subnetAlloc: SubnetAllocator | null = null;
  const avoid = subnetsToAvoid(env, labName);
  const allocSubnet = (p: PathSeg[], what: string): string | null => {
    try {
      subnetAlloc ??= new SubnetAllocator(pool, prefix, [...claims.map((c) => c.subnet), ...avoid.map((a) => a.subnet)]);
      const s = subnetAlloc.next();
      claims.push({ subnet: s, path: p, what });
      return s;
    } catch (e) {
      if (e instanceof IpamError) {
        const inPool = avoid.filter((a) => cidrsOverlap(a.subnet, pool));
        const users = [...new Set(inPool.map((a) => a.owner))];
        const busy = users.length ? ` (in use here: ${users.slice(0, 3).join(', ')}${users.length > 3 ? `, and ${users.length - 3} more` : ''})` : '';
        err(p, `${e.message}${busy}; give the network a subnet, or use a larger ipam.pool or a longer ipam.prefix`, true);
        return null;
      }
      throw e;
    }
  };
  for (const n of nets) {
    if ((n.driver === 'bridge' || n.driver === 'overlay') && n.subnet === null && raw.networks?.[n.name]?.subnet === undefined) {
      n.subnet = allocSubnet(n.p, `subnet of network ${n.name}`);
    }
  }
  if (hostsStage.pending) {
    const s = allocSubnet(['hosts'], 'underlay subnet');
    if (s) hostsStage.pending(s);
  }
}

/** Gateways of the networks and the address of each attachment (given ones first). */
export function assignAddresses(
  ctx: ResolveContext, nets: NetDraft[], netByName: Map<string, NetDraft>, attachments: AttDraft[],
): { gateways: Map<string, string | null>; attAddr: Map<AttDraft, string | null> } {
  const { raw, err } = ctx;
  const addrAllocs = new Map<string, AddressAllocator>();
  const gateways = new Map<string, string | null>();
  for (const n of nets) {
    if (!n.subnet) continue;
    const a = new AddressAllocator(n.subnet, []);
    let gw: string | null = null;
    if (typeof n.gw === 'string') {
      try { a.take(n.gw); gw = n.gw; } catch { /* reported above */ }
    } else if (n.gw === true) {
      try { gw = a.next(); } catch (e) { err(n.p, (e as IpamError).message, true); }
    }
    gateways.set(n.name, gw);
    addrAllocs.set(n.name, a);
  }
  const attAddr = new Map<AttDraft, string | null>();
  for (const att of attachments) {
    if (att.ipv4 === null) continue;
    const a = addrAllocs.get(att.net);
    if (!a) {
      if (netByName.get(att.net)!.subnet === null && raw.networks?.[att.net]?.subnet === undefined) {
        err([...att.p, 'ipv4'], `network ${att.net} has no fixed subnet, so a fixed address cannot be checked; add "subnet" to network ${att.net}`);
      }
      continue;
    }
    try { a.take(att.ipv4); attAddr.set(att, att.ipv4); } catch (e) {
      const msg = (e as IpamError).message;
      const gw = gateways.get(att.net);
      err([...att.p, 'ipv4'], gw === att.ipv4 ? `address ${att.ipv4} is the gateway of network ${att.net}; choose another` : msg.includes('already in use') ? `duplicate address: ${msg}` : msg);
    }
  }
  const byNet = new Map<string, AttDraft[]>();
  for (const att of attachments) {
    if (!byNet.has(att.net)) byNet.set(att.net, []);
    byNet.get(att.net)!.push(att);
  }
  for (const att of attachments) {
    if (att.ipv4 !== null) continue;
    const a = addrAllocs.get(att.net);
    if (!a) continue;
    try { attAddr.set(att, a.next()); } catch (e) {
      const d = netByName.get(att.net)!;
      const need = byNet.get(att.net)!.length + (gateways.get(att.net) ? 1 : 0);
      err(d.subnet && raw.networks?.[att.net]?.subnet !== undefined ? [...d.p, 'subnet'] : d.p,
        `network ${att.net}: subnet ${d.subnet} has ${plural(a.capacity, 'usable address', 'usable addresses')}, ${need} needed (${plural(byNet.get(att.net)!.length, 'node', 'nodes')}${gateways.get(att.net) ? ' + gateway' : ''}); use a larger subnet`);
      break;
    }
  }
  return { gateways, attAddr };
}

/** The same address on two link interfaces. */
export function checkLinkAddresses(ctx: ResolveContext, nodes: LabNode[], links: LinkDraft[]): void {
  const { err } = ctx;
  const seenAddr = new Map<string, string>();
  for (const nd of nodes) {
    for (const f of nd.interfaces) {
      if (!f.ipv4 || f.kind !== 'link') continue;
      const who = `${nd.name}:${f.name}`;
      if (seenAddr.has(f.ipv4.address)) {
        const l = links[f.link!];
        const e = l.a.node === nd.name && l.a.iface === f.name ? 0 : 1;
        err([...l.p, 'ipv4', e], `duplicate address ${f.ipv4.address}: also on ${seenAddr.get(f.ipv4.address)}`);
      }
      seenAddr.set(f.ipv4.address, who);
    }
  }
}

export function labNetworks(
  ctx: ResolveContext, nets: NetDraft[], gateways: Map<string, string | null>, netHosts: Map<string, Set<string | null>>,
): LabNetwork[] {
  const { uniqueIfName } = ctx;
  return nets.map((n) => ({
    name: n.name, driver: n.driver, subnet: n.subnet, gateway: gateways.get(n.name) ?? null,
    nat: n.driver === 'bridge' && n.gw !== false && gateways.get(n.name) != null,
    ipv6: n.ipv6, mtu: n.mtu, vni: n.driver === 'overlay' ? n.vni : null, port: n.driver === 'overlay' ? n.port : null,
    hosts: [...(netHosts.get(n.name) ?? [])].filter((h): h is string => h !== null).sort(),
    bridgeName: n.driver === 'bridge' || n.driver === 'overlay' ? uniqueIfName('b', n.name) : null,
    vxlanName: n.driver === 'overlay' ? uniqueIfName('x', n.name) : null,
  }));
}

export function labLinks(links: LinkDraft[]): LabLink[] {
  return links.map((l) => ({
    index: l.index, mtu: l.mtu, up: l.up,
    a: { node: l.a.node, iface: l.a.iface, ipv4: l.a.ipv4 },
    b: { node: l.b.node, iface: l.b.iface, ipv4: l.b.ipv4 },
  }));
}
