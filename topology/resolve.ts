// Semantic checks and resolution: turns a schema-valid raw topology into the Lab model
// (defaults filled in, names resolved, interfaces named, subnets and addresses allocated by
// IPAM, kernel names derived) and reports every semantic problem at its line:col. Everything
// is deterministic: the same file gives the same Lab, byte for byte. This file only runs the
// stages in order over one context (resolve-context.ts): resolve-networks.ts (pool, networks,
// links, hosts, placement, IPAM, addresses), resolve-nodes.ts (attachments, nodes, security),
// resolve-routing.ts (OSPF/BGP of routing nodes), impair.ts (link impairments),
// resolve-checks.ts (checks), fields.ts (ports, volumes, sizes, users, MACs). The order is part
// of the result: automatic subnets go around the ones claimed before, kernel names that hash
// alike are told apart in the order they are taken, and diagnostics come out in this order.
import * as path from 'node:path';
import type { Diagnostic, Lab, RawTopology } from './types.js';
import { labGroup, labId } from './names.js';
import type { Locator } from './source.js';
import { hostsAddress } from './hosts.js';
import { resolveChecks } from './resolve-checks.js';
import { resolveRouting } from './resolve-routing.js';
import { resolveImpairments } from './impair.js';
import { BUILT_REGISTRY, isBuiltRef, resolveImages } from './resolve-images.js';
import { buildNodes, checkHostPorts, checkNodeNameCase, nodeAttachments } from './resolve-nodes.js';
import {
  allocateSubnets, assignAddresses, checkLinkAddresses, labLinks, labNetworks, placeNetworks, resolveHosts, resolveLinks,
  resolveNetworks, resolvePool,
} from './resolve-networks.js';
import { makeContext } from './resolve-context.js';
import type { ResolveEnv } from './addrspace.js';
import {
  BRIDGE_MAX_PORTS, derivedMac, formatCpuList, macProblem, MAX_CPU, MAX_ID, MIN_MEMORY_BYTES, parseCpuList, parsePort, parseSize, parseVolume, splitCommand, userProblem,
} from './fields.js';

export { DEFAULT_MTU, DEFAULT_POOL, DEFAULT_PREFIX, DEFAULT_VXLAN_PORT, FIRST_AUTO_VNI, VXLAN_OVERHEAD } from './resolve-context.js';

export interface ResolveResult {
  lab: Lab | null;
  diagnostics: Diagnostic[];
}

export function resolveTopology(raw: RawTopology, loc: Locator, file: string, env?: ResolveEnv): ResolveResult {
  const ctx = makeContext(raw, loc, file, env);
  checkNodeNameCase(ctx);
  const images = resolveImages(ctx);
  const { pool, prefix } = resolvePool(ctx);
  const nets = resolveNetworks(ctx);
  const netByName = new Map(nets.map((n) => [n.name, n]));
  const links = resolveLinks(ctx);
  const hostsStage = resolveHosts(ctx);
  const { attachments, nodeDrafts, hostGiven } = nodeAttachments(ctx, netByName);
  const netHosts = placeNetworks(ctx, nets, netByName, attachments, nodeDrafts, hostGiven, links);
  allocateSubnets(ctx, nets, pool, prefix, hostsStage);
  const { gateways, attAddr } = assignAddresses(ctx, nets, netByName, attachments);
  const { nodes, hostPorts } = buildNodes(ctx, nodeDrafts, links, netByName, attAddr, gateways);
  checkHostPorts(ctx, hostPorts);
  // A node that names an `images:` entry runs the image built from it.
  for (const n of nodes) {
    const built = images.get(n.image);
    if (built) n.image = built.ref;
    else if (isBuiltRef(n.image)) ctx.err(['nodes', n.name, 'image'], `${BUILT_REGISTRY} names images netlab builds from \`images:\`; declare the image there and write image: NAME`);
  }
  resolveRouting(ctx, nodes, images, links);
  resolveImpairments(ctx, nodes, links);
  checkLinkAddresses(ctx, nodes, links);
  const { checks, dnsFromHosts } = resolveChecks(raw.checks ?? [], ctx.nodeNames, ctx.err, nodes);

  if (ctx.ds.length > 0) return { lab: null, diagnostics: ctx.ds };
  // Bridge and VXLAN names are taken last (after every node's veth), as they always were: taking
  // them earlier would change which name gets the next salt when two hash alike.
  const networks = labNetworks(ctx, nets, gateways, netHosts);
  const lab: Lab = {
    name: ctx.labName, file: file ? path.resolve(file) : '', id: labId(ctx.labName), group: labGroup(ctx.labName),
    underlay: hostsStage.underlay, hosts: hostsStage.hosts, networks, nodes, links: labLinks(links), checks,
    ...(images.size > 0 ? { images: [...images.values()] } : {}),
  };
  for (const c of dnsFromHosts) {
    const from = lab.nodes.find((n) => n.name === c.from)!;
    c.dnsAddress = hostsAddress(lab, from, lab.nodes.find((n) => n.name === c.target)!);
  }
  return { lab, diagnostics: [] };
}

export { BRIDGE_MAX_PORTS, derivedMac, formatCpuList, macProblem, MAX_CPU, MAX_ID, MIN_MEMORY_BYTES, parseCpuList, parsePort, parseSize, parseVolume, splitCommand, userProblem };
