// The resolver's node stages: each node's attachments (network mode, host, networks), then the
// Lab's nodes once the network stages have given out subnets and addresses (interface names,
// routes, command, environment, ports, volumes, resources, and its security settings: cap_add,
// cap_drop, security_opt, sysctls, checked with Docker's names and rules), and the checks across
// nodes (host ports published twice). Problems go through the shared context (resolve-context.ts).
import { BUILTIN_IMAGES, parseImageReference } from './image-ref.js';
import * as path from 'node:path';
import type { LabInterface, LabNode, LabRoute, PortMapping, RawNetworkAttachment, RawNode, NodeFile, Resources, RouteNexthop, VolumeMount } from './types.js';
import { canonicalCidr, cidrContains, isIpv4, parseCidr } from './ipam.js';
import { ifAlias, nodeNetns } from './names.js';
import { didYouMean, type PathSeg } from './source.js';
import { canonicalCap, parseSecurityOpt, sysctlProblem, type SeccompSetting } from './security.js';
import { derivedMac, formatCpuList, macProblem, MIN_MEMORY_BYTES, parseCpuList, parsePort, parseSize, parseVolume, splitCommand, userProblem } from './fields.js';
import { entries, plural, type AttDraft, type LinkDraft, type NetDraft, type NodeDraft, type ResolveContext } from './resolve-context.js';

export /** cap_add, cap_drop, security_opt and sysctls of one node, checked (Docker's names and rules). */
function resolveSecurity(
  n: RawNode, mode: 'bridge' | 'none' | 'host', p: PathSeg[], baseDir: string,
  err: (path: PathSeg[], message: string, atKey?: boolean) => void,
): { capAdd: string[]; capDrop: string[]; seccomp: SeccompSetting; sysctls: Record<string, string> } {
  const caps = (key: 'cap_add' | 'cap_drop') => {
    const out: string[] = [];
    (n[key] ?? []).forEach((c, i) => {
      const k = canonicalCap(c);
      if (k === null) err([...p, key, i], `"${c}" is not a Linux capability; expected a name like NET_ADMIN or CAP_SYS_PTRACE, or ALL`);
      else if (!out.includes(k)) out.push(k);
    });
    return out;
  };
  const capAdd = caps('cap_add');
  const capDrop = caps('cap_drop');
  let seccomp: SeccompSetting = { mode: 'default' };
  (n.security_opt ?? []).forEach((o, i) => {
    const r = parseSecurityOpt(o, (f) => path.resolve(baseDir, f));
    if (typeof r === 'string' && r !== 'ok') err([...p, 'security_opt', i], r);
    else if (typeof r === 'object') seccomp = r.seccomp;
  });
  const sysctls: Record<string, string> = {};
  const entries: [string, string, PathSeg[]][] = Array.isArray(n.sysctls)
    ? n.sysctls.map((kv, i) => {
      const eq = kv.indexOf('=');
      return [eq > 0 ? kv.slice(0, eq) : kv, eq > 0 ? kv.slice(eq + 1) : '', [...p, 'sysctls', i]];
    })
    : Object.entries(n.sysctls ?? {}).map(([k, v]) => [k, String(v), [...p, 'sysctls', k]]);
  for (const [k, v, at] of entries) {
    const problem = sysctlProblem(k, mode);
    if (problem) err(at, problem, !Array.isArray(n.sysctls));
    else if (v === '' || /[\n\t\0]/.test(v)) err(at, `sysctl ${k} needs a value without tabs or newlines (KEY=VALUE)`);
    else sysctls[k] = v;
  }
  return { capAdd, capDrop, seccomp, sysctls };
}

/** Hostnames are case-insensitive: nodes whose names differ only in case would clash in /etc/hosts. */
export function checkNodeNameCase(ctx: ResolveContext): void {
  const { ds, loc, rawNodes } = ctx;
  const lowerNames = new Map<string, string>();
  for (const [n] of rawNodes) {
    const other = lowerNames.get(n.toLowerCase());
    if (other !== undefined) ds.push(loc.diag(['nodes', n], `node name "${n}" differs from "${other}" only in case; hostnames are case-insensitive, choose another name`, { key: true }));
    else lowerNames.set(n.toLowerCase(), n);
  }
}

/** Each node's network mode, host and network attachments (interface names and addresses come later). */
export function nodeAttachments(
  ctx: ResolveContext, netByName: Map<string, NetDraft>,
): { attachments: AttDraft[]; nodeDrafts: Map<string, NodeDraft>; hostGiven: Set<string> } {
  const { err, rawNodes, netNames, hostNames, checkIfaceName } = ctx;
  const attachments: AttDraft[] = [];
  const nodeDrafts = new Map<string, NodeDraft>();
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
  return { attachments, nodeDrafts, hostGiven };
}

export type HostPort = { m: PortMapping; node: string; p: PathSeg[] };

/** The Lab's nodes: interfaces, routes, command, entrypoint, environment, ports, volumes, resources, security. */
export function buildNodes(
  ctx: ResolveContext, nodeDrafts: Map<string, NodeDraft>, links: LinkDraft[], netByName: Map<string, NetDraft>,
  attAddr: Map<AttDraft, string | null>, gateways: Map<string, string | null>,
): { nodes: LabNode[]; hostPorts: HostPort[] } {
  const { err, loc, labName, baseDir, rawNodes, checkCidr, uniqueIfName } = ctx;
  const nodes: LabNode[] = [];
  const macs = new Map<string, string>();
  const hostPorts: HostPort[] = [];
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
      // A next hop must be another node's address on one of this node's subnets.
      const checkVia = (v: string, vp: PathSeg[]): boolean => {
        if (!isIpv4(v)) { err(vp, `"${v}" is not an IPv4 address`); return false; }
        const onLink = interfaces.some((f) => f.ipv4 && cidrContains(`${f.ipv4.address}/${f.ipv4.prefixLen}`, v) && f.ipv4.address !== v);
        if (interfaces.some((f) => f.ipv4?.address === v)) {
          err(vp, `next hop ${v} is node ${name}'s own address; the gateway must be another node on the subnet`);
          return false;
        } else if (!onLink) {
          const subs = interfaces.filter((f) => f.ipv4).map((f) => `${f.name} ${canonicalCidr(`${f.ipv4!.address}/${f.ipv4!.prefixLen}`)}`);
          err(vp, `next hop ${v} is not on a subnet of node ${name} (${subs.join(', ') || 'it has no addresses'}); the gateway must be directly reachable`);
          return false;
        }
        return true;
      };
      const checkDev = (d: string, dp: PathSeg[]): boolean => {
        if (interfaces.some((f) => f.name === d)) return true;
        err(dp, `node ${name} has no interface "${d}"${didYouMean(d, interfaces.map((f) => f.name))} (interfaces: ${interfaces.map((f) => f.name).join(', ') || 'none'})`);
        return false;
      };
      const metric = r.metric ?? 0;
      const same = routes.find((x) => x.dst === dst && (x.metric ?? 0) === metric);
      if (same) {
        err([...rp, r.metric === undefined ? 'dst' : 'metric'], `node ${name} has two routes to ${dst} with metric ${metric}: give each its own metric (the lowest is used, the next when it is down), or list equal-cost next hops under one route's nexthops`);
        return;
      }
      if (r.nexthops !== undefined) {
        if (r.via !== undefined || r.dev !== undefined) { err(rp, 'a route has either "nexthops" (ECMP) or "via"/"dev", not both', true); return; }
        const hops: RouteNexthop[] = [];
        let ok = true;
        r.nexthops.forEach((h, j) => {
          const hp: PathSeg[] = [...rp, 'nexthops', j];
          const v = typeof h === 'string' ? h : h.via;
          const d = typeof h === 'string' ? undefined : h.dev;
          if (!checkVia(v, typeof h === 'string' ? hp : [...hp, 'via'])) { ok = false; return; }
          if (d !== undefined && !checkDev(d, [...hp, 'dev'])) { ok = false; return; }
          if (hops.some((x) => x.via === v && x.dev === (d ?? null))) { err(hp, `next hop ${v} is listed twice`); ok = false; return; }
          hops.push({ via: v, dev: d ?? null });
        });
        if (!ok) return;
        routes.push({ dst, via: null, dev: null, ...(r.metric !== undefined ? { metric } : {}), nexthops: hops, origin: 'user' });
        return;
      }
      let via: string | null = null;
      if (r.via !== undefined) {
        if (checkVia(r.via, [...rp, 'via'])) via = r.via;
        else if (!isIpv4(r.via)) return;
      }
      let dev: string | null = null;
      if (r.dev !== undefined && checkDev(r.dev, [...rp, 'dev'])) dev = r.dev;
      if (via === null && dev === null) {
        if (r.via === undefined && r.dev === undefined) err(rp, 'a route needs "via" (next hop) or "dev" (interface)', true);
        return;
      }
      routes.push({ dst, via, dev, ...(r.metric !== undefined ? { metric } : {}), origin: 'user' });
    });

    // Like Docker: the first network with a gateway gives the default route, unless one is written.
    if (!routes.some((r) => r.dst === '0.0.0.0/0')) {
      const gwIf = interfaces.find((f) => f.kind === 'network' && gateways.get(f.network!) && f.ipv4);
      if (gwIf) routes.push({ dst: '0.0.0.0/0', via: gateways.get(gwIf.network!)!, dev: gwIf.name, origin: 'gateway' });
    }

    // Command, environment, ports, volumes, resources.
    const argvOf = (key: 'command' | 'entrypoint'): string[] | null => {
      const v = n[key];
      if (typeof v === 'string') {
        const words = splitCommand(v);
        if (words === null) { err([...p, key], `unbalanced quotes in ${key}`); return null; }
        if (words.length === 0) { err([...p, key], `empty ${key}; remove the key to use the image default`); return null; }
        return words;
      }
      if (Array.isArray(v)) {
        if (v.length === 0) { err([...p, key], `empty ${key}; remove the key to use the image default`); return null; }
        return [...v];
      }
      return null;
    };
    const command = argvOf('command');
    const entrypoint = argvOf('entrypoint');
    const image = n.image ?? 'busybox';
    if (!BUILTIN_IMAGES.includes(image)) {
      try { parseImageReference(image); } catch (e) { err([...p, 'image'], (e as Error).message); }
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
    const files: NodeFile[] = [];
    for (const [target, source] of Object.entries(n.files ?? {})) {
      const at = [...p, 'files', target];
      const t = path.posix.normalize(target);
      if (!target.startsWith('/')) err(at, `file target "${target}" must be an absolute path in the container`, true);
      else if (t === '/' || target.split('/').includes('..')) err(at, `file target "${target}" must name a file below /`, true);
      else if (typeof source !== 'string' || source === '') err(at, `file ${target} needs a source path on the host`);
      else if (files.some((f) => f.target === t)) err(at, `file ${t} is listed twice`, true);
      else files.push({ target: t, source: source.startsWith('~/') ? path.join(process.env.HOME ?? '/root', source.slice(2)) : path.resolve(baseDir, source) });
    }
    const resources: Resources = { cpuShares: n.resources?.cpu_shares ?? null, cpus: n.resources?.cpus ?? null, memoryBytes: null, pids: n.resources?.pids ?? null, cpuset: null };
    if (n.resources?.cpuset !== undefined) {
      const cpus = parseCpuList(String(n.resources.cpuset));
      const at = [...p, 'resources', 'cpuset'];
      if (typeof cpus === 'string') err(at, cpus);
      else {
        resources.cpuset = formatCpuList(cpus);
        // At `up`, the CPUs must be online here (another machine's are its own business).
        const machine = ctx.env?.cpus;
        const here = machine && (machine.as === undefined || machine.as === nd.host);
        const offline = here ? cpus.filter((c) => !machine.online.includes(c)) : [];
        if (offline.length > 0) {
          err(at, `cpuset "${n.resources.cpuset}" names CPU${offline.length === 1 ? '' : 's'} ${formatCpuList(offline)}, which ${offline.length === 1 ? 'is' : 'are'} not online on this machine (online: ${formatCpuList(machine!.online) || 'none'})`);
        }
      }
    }
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
      name, image, host: nd.host, networkMode: nd.mode,
      netns: nd.mode === 'host' ? null : nodeNetns(labName, name),
      interfaces, routes, command, entrypoint, environment, ports, volumes, files,
      workingDir: n.working_dir ?? null, user: n.user ?? null, privileged: n.privileged ?? false,
      ...security, forwarding: n.forwarding ?? false, resources,
    });
  }
  return { nodes, hostPorts };
}

/** Two nodes publishing the same host port (0.0.0.0 clashes with every address). */
export function checkHostPorts(ctx: ResolveContext, hostPorts: HostPort[]): void {
  const { err, loc } = ctx;
  for (let i = 0; i < hostPorts.length; i++) {
    for (let j = 0; j < i; j++) {
      const a = hostPorts[i].m, b = hostPorts[j].m;
      if (a.protocol === b.protocol && a.hostPort === b.hostPort && (a.hostIp === b.hostIp || a.hostIp === '0.0.0.0' || b.hostIp === '0.0.0.0')) {
        err(hostPorts[i].p, `host port ${a.hostPort}/${a.protocol} is already published by ${hostPorts[j].node} (line ${loc.at(hostPorts[j].p).line}); each host port can be published once`);
        break;
      }
    }
  }
}
