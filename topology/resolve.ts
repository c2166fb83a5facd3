// Semantic checks and resolution: turns a schema-valid raw topology into the Lab model
// (defaults filled in, names resolved, interfaces named, subnets and addresses allocated by
// IPAM, kernel names derived) and reports every semantic problem at its line:col. Everything
// is deterministic: the same file gives the same Lab, byte for byte. The stages' own parts live
// beside it: fields.ts (ports, volumes, sizes, users, MACs), resolve-nodes.ts (a node's security
// settings), resolve-checks.ts (checks).
import * as path from 'node:path';
import type {
  Diagnostic, Driver, Expect, Ipv4Address, Lab, LabCheck, LabHost, LabInterface, LabLink, LabNetwork, LabNode,
  LabRoute, PortMapping, RawCheck, RawNetworkAttachment, RawNode, RawTopology, Resources, VolumeMount,
} from './types.js';
import {
  AddressAllocator, canonicalCidr, cidrContains, cidrsOverlap, IpamError, isIpv4, isUsableAddress, parseCidr,
  parseIfaceAddress, SubnetAllocator,
} from './ipam.js';
import { hostNetns, ifAlias, ifName, labGroup, labId, nodeNetns, IFNAMSIZ_MAX } from './names.js';
import { didYouMean, type Locator, type PathSeg } from './source.js';
import { hostsAddress } from './hosts.js';
import { resolveChecks } from './resolve-checks.js';
import { resolveSecurity } from './resolve-nodes.js';
import {
  BRIDGE_MAX_PORTS, derivedMac, macProblem, MAX_ID, MIN_MEMORY_BYTES, parsePort, parseSize, parseVolume, splitCommand, userProblem,
} from './fields.js';
import { machineProblem, reservedProblem, subnetsToAvoid, type ResolveEnv } from './addrspace.js';

export const DEFAULT_POOL = '10.128.0.0/16';
export const DEFAULT_PREFIX = 24;
export const DEFAULT_MTU = 1500;
export const VXLAN_OVERHEAD = 50;
export const DEFAULT_VXLAN_PORT = 4789;
export const FIRST_AUTO_VNI = 4096;
const IFACE_RE = /^[A-Za-z0-9_.-]+$/;
/** Docker's floor ("Minimum memory limit allowed is 6MB"): below it a node is OOM-killed at once. */
type Claim = { subnet: string; path: PathSeg[]; what: string };

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

export interface ResolveResult {
  lab: Lab | null;
  diagnostics: Diagnostic[];
}

function entries<T>(m: Record<string, T | null> | undefined): [string, T | null][] {
  return m ? Object.entries(m) : [];
}

export function resolveTopology(raw: RawTopology, loc: Locator, file: string, env?: ResolveEnv): ResolveResult {
  const ds: Diagnostic[] = [];
  const err = (p: PathSeg[], message: string, key = false) => ds.push(loc.diag(p, message, { key }));
  const labName = raw.name;
  const baseDir = file ? path.dirname(path.resolve(file)) : process.cwd();

  const rawNodes = entries(raw.nodes).map(([n, v]) => [n, v ?? {}] as [string, RawNode]);
  const nodeNames = new Set(rawNodes.map(([n]) => n));
  // Hostnames are case-insensitive: nodes whose names differ only in case would clash in /etc/hosts.
  const lowerNames = new Map<string, string>();
  for (const [n] of rawNodes) {
    const other = lowerNames.get(n.toLowerCase());
    if (other !== undefined) ds.push(loc.diag(['nodes', n], `node name "${n}" differs from "${other}" only in case; hostnames are case-insensitive, choose another name`, { key: true }));
    else lowerNames.set(n.toLowerCase(), n);
  }
  const rawNets = entries(raw.networks).map(([n, v]) => [n, v ?? {}] as const);
  const netNames = new Set(rawNets.map(([n]) => n));
  const rawHosts = entries(raw.hosts).map(([n, v]) => [n, v ?? {}] as const);
  const hostNames = new Set(rawHosts.map(([n]) => n));

  // ------------------------------------------------------------ subnets we must not overlap
  const claims: Claim[] = [];
  const claimSubnet = (subnet: string, p: PathSeg[], what: string) => {
    for (const c of claims) {
      if (cidrsOverlap(c.subnet, subnet)) {
        err(p, `${what} ${subnet} overlaps ${c.what} ${c.subnet} (line ${loc.at(c.path).line}); subnets of a lab must not overlap`);
        return false;
      }
    }
    claims.push({ subnet, path: p, what });
    return true;
  };
  const checkCidr = (value: string, p: PathSeg[], what: string): string | null => {
    const c = parseCidr(value);
    if (!c) { err(p, `"${value}" is not a valid IPv4 CIDR; expected e.g. 10.10.0.0/24`); return null; }
    const canon = canonicalCidr(value)!;
    if (canon !== value) { err(p, `${what} "${value}" has host bits set; did you mean ${canon}?`); return null; }
    return canon;
  };
  /** A CIDR that addresses are taken from (network, link, underlay, pool): never a reserved range. */
  const checkSubnet = (value: string, p: PathSeg[], what: string): string | null => {
    const s = checkCidr(value, p, what);
    const why = s ? reservedProblem(s) : null;
    if (why) { err(p, `${what} ${why}`); return null; }
    return s;
  };
  // Kernel names are 24-bit hashes: at thousands of interfaces two of them collide, and the
  // later one takes the next salt (deterministic: the same file gives the same names).
  const kernelNames = new Set<string>();
  const uniqueIfName = (kind: 'b' | 'v' | 'x' | 'u', object: string): string => {
    for (let salt = 0; ; salt++) {
      const n = ifName(labName, kind, object, salt);
      if (!kernelNames.has(n)) { kernelNames.add(n); return n; }
    }
  };

  // ------------------------------------------------------------ ipam pool
  let pool = DEFAULT_POOL;
  if (raw.ipam?.pool !== undefined) pool = checkSubnet(raw.ipam.pool, ['ipam', 'pool'], 'ipam pool') ?? DEFAULT_POOL;
  const prefix = raw.ipam?.prefix ?? DEFAULT_PREFIX;
  if (parseCidr(pool) && prefix < parseCidr(pool)!.prefixLen) {
    err(['ipam', 'prefix'], `prefix /${prefix} is larger than the pool ${pool}; expected a prefix of at least /${parseCidr(pool)!.prefixLen}`);
  }

  // ------------------------------------------------------------ networks (explicit parts)
  type NetDraft = { name: string; driver: Driver; subnet: string | null; gw: boolean | string; ipv6: boolean; mtu: number; vni: number | null; port: number | null; p: PathSeg[] };
  const nets: NetDraft[] = [];
  for (const [name, n] of rawNets) {
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
  const netByName = new Map(nets.map((n) => [n.name, n]));

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

  // ------------------------------------------------------------ links (explicit subnets)
  type EndDraft = { node: string; iface: string; ipv4: Ipv4Address | null; p: PathSeg[] };
  type LinkDraft = { index: number; a: EndDraft; b: EndDraft; mtu: number; up: boolean; p: PathSeg[] };
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

  function checkIfaceName(iface: string, p: PathSeg[]): boolean {
    if (Buffer.byteLength(iface) > IFNAMSIZ_MAX) { err(p, `interface name "${iface}" is ${Buffer.byteLength(iface)} bytes; Linux allows at most ${IFNAMSIZ_MAX}`); return false; }
    if (!IFACE_RE.test(iface) || iface === '.' || iface === '..') { err(p, `interface name "${iface}" has invalid characters; expected A-Z, a-z, 0-9, '_', '.', '-'`); return false; }
    if (iface === 'lo') { err(p, 'interface name "lo" is the loopback interface; choose another name'); return false; }
    return true;
  }

  // ------------------------------------------------------------ hosts and the underlay
  let underlay: { subnet: string; bridgeName: string } | null = null;
  const hosts: LabHost[] = [];
  // When the underlay subnet comes from the pool, hosts are finished after network subnets are claimed.
  let pendingUnderlay: ((subnet: string) => void) | null = null;
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
      underlay = { subnet, bridgeName: uniqueIfName('b', '@underlay') };
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
    else pendingUnderlay = finishHosts;
  }

  // ------------------------------------------------------------ nodes: attachments first
  type AttDraft = { node: string; net: string; iface: string | null; ipv4: string | null; mac: string | null; p: PathSeg[] };
  const attachments: AttDraft[] = [];
  const nodeDrafts = new Map<string, { mode: 'bridge' | 'none' | 'host'; host: string | null; atts: AttDraft[] }>();
  const hostGiven = new Set<string>(); // nodes that name a host, defined or not (one error is enough)
  for (const [name, n] of rawNodes) {
    const p: PathSeg[] = ['nodes', name];
    let mode: 'bridge' | 'none' | 'host' = n.network_mode ?? 'bridge';
    const atts: AttDraft[] = [];
    const list: [string, RawNetworkAttachment | null, PathSeg[]][] = Array.isArray(n.networks)
      ? n.networks.map((net, i) => [net, null, [...p, 'networks', i]])
      : entries(n.networks).map(([net, a]) => [net, a, [...p, 'networks', net]]);
    const seenNets = new Set<string>();
    for (const [net, a, np] of list) {
      if (!netNames.has(net)) { err(np, `network "${net}" is not defined${didYouMean(net, netNames)} (networks: ${[...netNames].join(', ') || 'none'})`, !Array.isArray(n.networks)); continue; }
      if (seenNets.has(net)) { err(np, `network "${net}" is listed twice for node ${name}`); continue; }
      seenNets.add(net);
      const d = netByName.get(net)!;
      if (d.driver === 'host' || d.driver === 'none') {
        if (list.length > 1 || n.network_mode !== undefined) err(np, `network ${net} has driver ${d.driver}: a node on it can have no other network nor network_mode`);
        mode = d.driver;
        continue;
      }
      const att: AttDraft = { node: name, net, iface: a?.interface ?? null, ipv4: a?.ipv4 ?? null, mac: a?.mac?.toLowerCase() ?? null, p: np };
      if (att.iface !== null && !checkIfaceName(att.iface, [...np, 'interface'])) att.iface = null;
      if (att.ipv4 !== null && !isIpv4(att.ipv4)) {
        err([...np, 'ipv4'], `"${att.ipv4}" is not an IPv4 address${att.ipv4.includes('/') ? ' (give it without prefix: the prefix comes from the subnet)' : ''}`);
        att.ipv4 = null;
      }
      atts.push(att);
    }
    if (n.network_mode !== undefined && list.length > 0 && atts.length > 0) {
      err([...p, 'network_mode'], `network_mode ${n.network_mode} cannot be combined with networks (${atts.map((a) => a.net).join(', ')}); remove one of them`);
    }
    let host: string | null = null;
    if (n.host !== undefined) {
      hostGiven.add(name);
      if (!hostNames.has(n.host)) err([...p, 'host'], `host "${n.host}" is not defined${didYouMean(n.host, hostNames)} (hosts: ${[...hostNames].join(', ') || 'none: add a hosts: section'})`);
      else host = n.host;
    }
    if (mode !== 'bridge' && host !== null) err([...p, 'host'], `a node with network_mode ${mode} cannot be placed on a simulated host; remove "host" or the network_mode`);
    nodeDrafts.set(name, { mode, host, atts });
    attachments.push(...atts);
  }

  // Network placement: bridge networks are local to one machine, overlays span hosts.
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
  if (rawHosts.length > BRIDGE_MAX_PORTS) {
    err(['hosts'], `${rawHosts.length} hosts need ${rawHosts.length} ports on the underlay bridge; a Linux bridge takes at most ${BRIDGE_MAX_PORTS} (the kernel's BR_MAX_PORTS, less port 0)`, true);
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

  // ------------------------------------------------------------ subnet allocation (IPAM)
  // Automatic subnets also stay clear of the machine's routes and of the running labs' subnets
  // (as Docker allocates around the networks in use), so labs without subnets run side by side.
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
  if (pendingUnderlay) {
    const s = allocSubnet(['hosts'], 'underlay subnet');
    if (s) pendingUnderlay(s);
  }

  // ------------------------------------------------------------ addresses
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

  // ------------------------------------------------------------ build nodes
  const nodes: LabNode[] = [];
  const macs = new Map<string, string>();
  const hostPorts: { m: PortMapping; node: string; p: PathSeg[] }[] = [];
  for (const [name, n] of rawNodes) {
    const p: PathSeg[] = ['nodes', name];
    const nd = nodeDrafts.get(name)!;
    // Interface names: explicit ones first, then ethN with the lowest free N, in listing order.
    const explicit = new Map<string, PathSeg[]>();
    const claimIface = (iface: string, ip: PathSeg[]) => {
      if (explicit.has(iface)) { err(ip, `interface ${iface} is used twice on node ${name} (also at line ${loc.at(explicit.get(iface)!).line}); each interface needs its own name`); return; }
      explicit.set(iface, ip);
    };
    for (const a of nd.atts) if (a.iface) claimIface(a.iface, [...a.p, 'interface']);
    for (const l of links) for (const e of [l.a, l.b]) if (e.node === name) claimIface(e.iface, e.p);
    let k = 0;
    const freeEth = () => { while (explicit.has(`eth${k}`)) k++; const s = `eth${k}`; explicit.set(s, p); return s; };
    const interfaces: LabInterface[] = [];
    for (const a of nd.atts) {
      const net = netByName.get(a.net)!;
      const iface = a.iface ?? freeEth();
      const addr = attAddr.get(a) ?? null;
      const prefixLen = net.subnet ? parseCidr(net.subnet)!.prefixLen : 0;
      interfaces.push({
        name: iface, kind: 'network', network: a.net, link: null, peer: null,
        ipv4: addr ? { address: addr, prefixLen } : null,
        mac: a.mac ?? derivedMac(labName, name, iface), mtu: net.mtu,
        hostSide: uniqueIfName('v', `${name}/${iface}`), alias: ifAlias(labName, name, iface), up: true,
      });
      const macWhy = a.mac ? macProblem(a.mac) : null;
      if (macWhy) err([...a.p, 'mac'], macWhy);
      if (a.mac) {
        if (macs.has(a.mac)) err([...a.p, 'mac'], `MAC ${a.mac} is already used by ${macs.get(a.mac)}; each interface needs its own`);
        macs.set(a.mac, `${name}:${iface}`);
      }
    }
    for (const l of links) {
      for (const [e, o] of [[l.a, l.b], [l.b, l.a]] as const) {
        if (e.node !== name) continue;
        interfaces.push({
          name: e.iface, kind: 'link', network: null, link: l.index, peer: { node: o.node, iface: o.iface },
          ipv4: e.ipv4, mac: derivedMac(labName, name, e.iface), mtu: l.mtu, hostSide: null,
          alias: ifAlias(labName, name, e.iface), up: l.up,
        });
      }
    }

    // Routes.
    const routes: LabRoute[] = [];
    (n.routes ?? []).forEach((r, i) => {
      const rp: PathSeg[] = [...p, 'routes', i];
      if (nd.mode !== 'bridge') { err(rp, `node ${name} has network_mode ${nd.mode}; it has no interfaces to route over`); return; }
      let dst: string | null;
      if (r.dst === 'default') dst = '0.0.0.0/0';
      else dst = checkCidr(r.dst, [...rp, 'dst'], 'route destination');
      if (!dst) return;
      let via: string | null = null;
      if (r.via !== undefined) {
        if (!isIpv4(r.via)) { err([...rp, 'via'], `"${r.via}" is not an IPv4 address`); return; }
        via = r.via;
        const onLink = interfaces.some((f) => f.ipv4 && cidrContains(`${f.ipv4.address}/${f.ipv4.prefixLen}`, via!) && f.ipv4.address !== via);
        if (interfaces.some((f) => f.ipv4?.address === via)) {
          err([...rp, 'via'], `next hop ${via} is node ${name}'s own address; the gateway must be another node on the subnet`);
        } else if (!onLink) {
          const subs = interfaces.filter((f) => f.ipv4).map((f) => `${f.name} ${canonicalCidr(`${f.ipv4!.address}/${f.ipv4!.prefixLen}`)}`);
          err([...rp, 'via'], `next hop ${via} is not on a subnet of node ${name} (${subs.join(', ') || 'it has no addresses'}); the gateway must be directly reachable`);
        }
      }
      let dev: string | null = null;
      if (r.dev !== undefined) {
        if (!interfaces.some((f) => f.name === r.dev)) err([...rp, 'dev'], `node ${name} has no interface "${r.dev}"${didYouMean(r.dev, interfaces.map((f) => f.name))} (interfaces: ${interfaces.map((f) => f.name).join(', ') || 'none'})`);
        else dev = r.dev;
      }
      if (via === null && dev === null) {
        if (r.via === undefined && r.dev === undefined) err(rp, 'a route needs "via" (next hop) or "dev" (interface)', true);
        return;
      }
      if (routes.some((x) => x.dst === dst)) { err([...rp, 'dst'], `node ${name} has two routes to ${dst}`); return; }
      routes.push({ dst, via, dev, origin: 'user' });
    });

    // Like Docker: the first network with a gateway gives the default route, unless one is written.
    if (!routes.some((r) => r.dst === '0.0.0.0/0')) {
      const gwIf = interfaces.find((f) => f.kind === 'network' && gateways.get(f.network!) && f.ipv4);
      if (gwIf) routes.push({ dst: '0.0.0.0/0', via: gateways.get(gwIf.network!)!, dev: gwIf.name, origin: 'gateway' });
    }

    // Command, environment, ports, volumes, resources.
    let command: string[] | null = null;
    if (typeof n.command === 'string') {
      command = splitCommand(n.command);
      if (command === null) err([...p, 'command'], 'unbalanced quotes in command');
      else if (command.length === 0) { err([...p, 'command'], 'empty command; remove the key to use the image default'); command = null; }
    } else if (Array.isArray(n.command)) {
      if (n.command.length === 0) err([...p, 'command'], 'empty command; remove the key to use the image default');
      else command = [...n.command];
    }
    const environment: Record<string, string> = {};
    if (Array.isArray(n.environment)) {
      for (const kv of n.environment) {
        const eq = kv.indexOf('=');
        if (eq > 0) environment[kv.slice(0, eq)] = kv.slice(eq + 1);
      }
    } else if (n.environment) {
      for (const [k2, v] of Object.entries(n.environment)) {
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k2)) err([...p, 'environment', k2], `"${k2}" is not a valid environment variable name; expected [A-Za-z_][A-Za-z0-9_]*`, true);
        else environment[k2] = String(v);
      }
    }
    const ports: PortMapping[] = [];
    (n.ports ?? []).forEach((spec, i) => {
      const pp: PathSeg[] = [...p, 'ports', i];
      if (nd.mode !== 'bridge') { err(pp, `node ${name} has network_mode ${nd.mode}: ${nd.mode === 'host' ? 'its ports are the host\'s already' : 'it has no network'}; remove "ports"`); return; }
      if (nd.host !== null) { err(pp, `node ${name} is on simulated host ${nd.host}; published ports exist only for nodes on the local machine`); return; }
      const r = parsePort(String(spec));
      if (typeof r === 'string') { err(pp, r); return; }
      if (!interfaces.some((f) => f.kind === 'network' && gateways.get(f.network!))) {
        err(pp, `node ${name} is on no network with a gateway, so the host cannot reach it; attach it to a bridge network with gateway: true`);
        return;
      }
      ports.push(r);
      hostPorts.push({ m: r, node: name, p: pp });
    });
    const volumes: VolumeMount[] = [];
    (n.volumes ?? []).forEach((spec, i) => {
      const r = parseVolume(spec, baseDir);
      if (typeof r === 'string') err([...p, 'volumes', i], r);
      else volumes.push(r);
    });
    const resources: Resources = { cpuShares: n.resources?.cpu_shares ?? null, cpus: n.resources?.cpus ?? null, memoryBytes: null, pids: n.resources?.pids ?? null };
    if (n.resources?.memory !== undefined) {
      resources.memoryBytes = parseSize(n.resources.memory);
      if (resources.memoryBytes === null) err([...p, 'resources', 'memory'], `"${n.resources.memory}" is not a memory size; expected e.g. 64m, 1g or a number of bytes`);
      else if (resources.memoryBytes < MIN_MEMORY_BYTES) {
        err([...p, 'resources', 'memory'], `memory limit ${n.resources.memory} (${plural(resources.memoryBytes, 'byte', 'bytes')}) is below the minimum of 6m (${MIN_MEMORY_BYTES} bytes): the node would be killed for lack of memory at once`);
      }
    }
    if (n.user !== undefined) {
      const why = userProblem(n.user);
      if (why) err([...p, 'user'], why);
    }
    if (n.working_dir !== undefined && !n.working_dir.startsWith('/')) err([...p, 'working_dir'], `working_dir "${n.working_dir}" must be an absolute path`);
    if (n.forwarding && nd.mode !== 'bridge') err([...p, 'forwarding'], `forwarding applies to a node with its own network namespace, not network_mode ${nd.mode}`);
    const security = resolveSecurity(n, nd.mode, p, baseDir, err);

    nodes.push({
      name, image: n.image ?? 'busybox', host: nd.host, networkMode: nd.mode,
      netns: nd.mode === 'host' ? null : nodeNetns(labName, name),
      interfaces, routes, command, environment, ports, volumes,
      workingDir: n.working_dir ?? null, user: n.user ?? null, privileged: n.privileged ?? false,
      ...security, forwarding: n.forwarding ?? false, resources,
    });
  }

  // Two nodes publishing the same host port (0.0.0.0 clashes with every address).
  for (let i = 0; i < hostPorts.length; i++) {
    for (let j = 0; j < i; j++) {
      const a = hostPorts[i].m, b = hostPorts[j].m;
      if (a.protocol === b.protocol && a.hostPort === b.hostPort && (a.hostIp === b.hostIp || a.hostIp === '0.0.0.0' || b.hostIp === '0.0.0.0')) {
        err(hostPorts[i].p, `host port ${a.hostPort}/${a.protocol} is already published by ${hostPorts[j].node} (line ${loc.at(hostPorts[j].p).line}); each host port can be published once`);
        break;
      }
    }
  }

  // Duplicate addresses across links and networks (same address on two interfaces).
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

  const { checks, dnsFromHosts } = resolveChecks(raw.checks ?? [], nodeNames, err);

  if (ds.length > 0) return { lab: null, diagnostics: ds };
  const networks: LabNetwork[] = nets.map((n) => ({
    name: n.name, driver: n.driver, subnet: n.subnet, gateway: gateways.get(n.name) ?? null,
    nat: n.driver === 'bridge' && n.gw !== false && gateways.get(n.name) != null,
    ipv6: n.ipv6, mtu: n.mtu, vni: n.driver === 'overlay' ? n.vni : null, port: n.driver === 'overlay' ? n.port : null,
    hosts: [...(netHosts.get(n.name) ?? [])].filter((h): h is string => h !== null).sort(),
    bridgeName: n.driver === 'bridge' || n.driver === 'overlay' ? uniqueIfName('b', n.name) : null,
    vxlanName: n.driver === 'overlay' ? uniqueIfName('x', n.name) : null,
  }));
  const labLinks: LabLink[] = links.map((l) => ({
    index: l.index, mtu: l.mtu, up: l.up,
    a: { node: l.a.node, iface: l.a.iface, ipv4: l.a.ipv4 },
    b: { node: l.b.node, iface: l.b.iface, ipv4: l.b.ipv4 },
  }));
  const lab: Lab = {
    name: labName, file: file ? path.resolve(file) : '', id: labId(labName), group: labGroup(labName),
    underlay, hosts, networks, nodes, links: labLinks, checks,
  };
  for (const c of dnsFromHosts) {
    const from = lab.nodes.find((n) => n.name === c.from)!;
    c.dnsAddress = hostsAddress(lab, from, lab.nodes.find((n) => n.name === c.target)!);
  }
  return { lab, diagnostics: [] };
}

export { BRIDGE_MAX_PORTS, derivedMac, macProblem, MAX_ID, MIN_MEMORY_BYTES, parsePort, parseSize, parseVolume, splitCommand, userProblem };
