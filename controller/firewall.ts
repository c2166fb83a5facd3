// The nftables ruleset of one lab, as text for `nft -f` (pure: no kernel here). One table per
// lab holds all of its firewall state, so it is applied atomically and removed in one step:
//  - isolation as Docker does it: traffic forwarded by the host between a lab bridge and any
//    other netlab interface (another network of this lab, or any other lab) is dropped; only
//    a node that routes between its own interfaces connects two networks;
//  - masquerading for networks with a gateway (outbound NAT, like docker0);
//  - published ports: DNAT from the host's addresses (and 127.0.0.1, through route_localnet
//    on the bridge plus masquerade) to the container;
//  - the host's loopback is not the lab's: packets to 127.0.0.0/8 arriving on a lab interface
//    are dropped unless they answer a connection the host made (CVE-2020-8558: route_localnet
//    would otherwise let a node reach 127.0.0.1-only host services);
//  - a lab's subnets never leave the machine: traffic to any of them (networks, point-to-point
//    links, the underlay) that the host would send out of an interface that is not the lab's
//    own (its default route, the uplink) is dropped, forwarded or the host's own.
// Also the iptables text for coexisting with Docker (accept rules for the lab's interfaces in
// DOCKER-USER or a DROP FORWARD policy), as input for iptables-restore; kernel/iptables.ts runs it.
import type { Lab } from '../topology/types.js';
import { labId, NAME_PREFIX, nftTable } from '../topology/names.js';
import { formatCidr, parseCidr, type Cidr } from '../topology/ipam.js';

export const NFT_FAMILY = 'ip';

function q(s: string): string {
  return `"${s}"`;
}

/** Bridges in the host's root namespace that carry a network with a gateway (they are routed by the host). */
export function hostBridges(lab: Lab): { bridge: string; subnet: string; nat: boolean; gateway: string }[] {
  return lab.networks
    .filter((n) => n.driver === 'bridge' && n.hosts.length === 0 && n.bridgeName && n.subnet && n.gateway)
    .map((n) => ({ bridge: n.bridgeName!, subnet: n.subnet!, nat: n.nat, gateway: n.gateway! }));
}

/** Every subnet of the lab: networks, point-to-point links (the network of each end's
 *  address), the underlay; sorted, and without those inside another (one nft set element each). */
export function labSubnets(lab: Lab): string[] {
  const all: Cidr[] = [];
  const add = (s: string | null | undefined) => { const c = s ? parseCidr(s) : null; if (c) all.push(c); };
  for (const n of lab.networks) add(n.subnet);
  for (const l of lab.links) for (const e of [l.a, l.b]) if (e.ipv4) add(`${e.ipv4.address}/${e.ipv4.prefixLen}`);
  add(lab.underlay?.subnet);
  const inside = (c: Cidr, o: Cidr) => o.first <= c.first && o.last >= c.last;
  const kept = all.filter((c, i) => !all.some((o, j) => j !== i && inside(c, o) && (!inside(o, c) || j < i)));
  return kept.sort((a, b) => a.first - b.first).map(formatCidr);
}

/** True when the lab needs a table at all: some network is routed by the host, or the lab has
 *  subnets that must not leave the machine. */
export function needsFirewall(lab: Lab): boolean {
  return hostBridges(lab).length > 0 || labSubnets(lab).length > 0;
}

/** nft/iptables pattern of every interface the lab makes in the host's namespace: they all
 *  start with `nl<lab id>` (bridges, host ends of veths, VXLAN devices, the underlay). */
export function labIfPrefix(lab: string): string {
  return `${NAME_PREFIX}${labId(lab)}`;
}

export function labRuleset(lab: Lab): string {
  const table = nftTable(lab.name);
  const bridges = hostBridges(lab);
  const lines: string[] = [];
  lines.push(`table ${NFT_FAMILY} ${table} {`);
  lines.push(`  comment "netlab lab ${lab.name}"`);

  const own = q(labIfPrefix(lab.name) + '*');
  // The subnet guard lets a lab subnet's traffic out through any netlab interface: with
  // br_netfilter (bridge-nf-call-iptables=1, built into some kernels) frames bridged inside
  // another lab's bridge pass these hooks too, and that lab may reuse an internal subnet.
  // Only non-netlab interfaces (the uplink) lead off the machine.
  const anyLab = q(NAME_PREFIX + '*');
  const subnets = labSubnets(lab);
  const subnetSet = subnets.length === 1 ? subnets[0] : `{ ${subnets.join(', ')} }`;

  lines.push('  chain input {');
  lines.push('    type filter hook input priority -1; policy accept;');
  // Only replies to the host's own connections (a published 127.0.0.1 port's answers come back
  // de-NATed to 127.0.0.1); not kube-proxy's ESTABLISHED in the original direction, which a node
  // spoofing 127.0.0.1 as its source could match with a tuple of a host-local connection.
  lines.push(`    iifname ${own} ip daddr 127.0.0.0/8 ct direction reply ct state established,related accept`);
  lines.push(`    iifname ${own} ip daddr 127.0.0.0/8 drop`);
  lines.push('  }');

  lines.push('  chain forward {');
  lines.push('    type filter hook forward priority -1; policy accept;');
  if (subnets.length > 0) lines.push(`    ip daddr ${subnetSet} oifname != ${anyLab} drop`);
  for (const b of bridges) {
    // Another network or another lab: every netlab interface but this bridge itself.
    lines.push(`    iifname ${q(b.bridge)} oifname ${q(NAME_PREFIX + '*')} oifname != ${q(b.bridge)} drop`);
  }
  for (const b of bridges) {
    lines.push(`    oifname ${q(b.bridge)} ct state established,related accept`);
    lines.push(`    oifname ${q(b.bridge)} ct status dnat accept`);
    lines.push(`    oifname ${q(b.bridge)} iifname != ${q(b.bridge)} drop`);
  }
  lines.push('  }');

  const ports: { hostIp: string; hostPort: number; protocol: string; dest: string; containerPort: number; bridge: string }[] = [];
  for (const node of lab.nodes) {
    for (const p of node.ports) {
      const f = node.interfaces.find((i) => i.kind === 'network' && i.ipv4 && bridges.some((b) => b.bridge === lab.networks.find((n) => n.name === i.network)?.bridgeName));
      if (!f?.ipv4) continue;
      const bridge = lab.networks.find((n) => n.name === f.network)!.bridgeName!;
      ports.push({ hostIp: p.hostIp, hostPort: p.hostPort, protocol: p.protocol, dest: f.ipv4.address, containerPort: p.containerPort, bridge });
    }
  }
  const dnat = (hook: 'prerouting' | 'output') => {
    for (const p of ports) {
      const match = p.hostIp === '0.0.0.0' ? 'fib daddr type local' : `ip daddr ${p.hostIp}`;
      // Traffic the host sends to itself must not be redirected when it comes from the lab's bridge.
      lines.push(`    ${match} ${hook === 'prerouting' ? `iifname != ${q(p.bridge)} ` : ''}${p.protocol} dport ${p.hostPort} dnat to ${p.dest}:${p.containerPort}`);
    }
  };
  if (ports.length > 0) {
    lines.push('  chain prerouting {');
    lines.push('    type nat hook prerouting priority dstnat; policy accept;');
    dnat('prerouting');
    lines.push('  }');
    lines.push('  chain output {');
    lines.push('    type nat hook output priority -100; policy accept;');
    dnat('output');
    lines.push('  }');
  }

  if (subnets.length > 0) {
    // The host's own traffic to a lab subnet it has no route into (an internal network, a
    // link) would follow its default route out of the machine. Checked at postrouting, not
    // output: there the interface is the final one, after a published port's DNAT rerouted
    // 127.0.0.1 into the lab (the output hook still sees lo). lo: the host's own gateway addresses.
    lines.push('  chain outbound {');
    lines.push('    type filter hook postrouting priority 99; policy accept;');
    lines.push(`    ip daddr ${subnetSet} oifname != "lo" oifname != ${anyLab} drop`);
    lines.push('  }');
  }

  lines.push('  chain postrouting {');
  lines.push('    type nat hook postrouting priority srcnat; policy accept;');
  for (const b of bridges) {
    // Connections to 127.0.0.1:PORT leave with a loopback source: give them the gateway's.
    if (ports.some((p) => p.bridge === b.bridge)) lines.push(`    oifname ${q(b.bridge)} ip saddr 127.0.0.0/8 masquerade`);
    if (b.nat) lines.push(`    ip saddr ${b.subnet} oifname != ${q(b.bridge)} oifname != ${q(NAME_PREFIX + '*')} masquerade`);
  }
  lines.push('  }');
  lines.push('}');
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------- iptables (coexistence with Docker)

/** The comment on every iptables rule netlab adds for a lab: rules are found again by it (down
 *  works from the lab name alone, after a crash too). */
export const IPT_COMMENT_PREFIX = 'netlab lab ';

export function iptComment(lab: string): string {
  return `${IPT_COMMENT_PREFIX}${lab}`;
}

/** True for a comment netlab wrote for some lab (a lab name has no spaces). */
export function isNetlabComment(comment: string): boolean {
  return /^netlab lab [a-z][a-z0-9-]{0,31}$/.test(comment);
}

/** One rule of `iptables-save` output: its chain, the rest of its spec, and its comment. */
export interface IptRule {
  chain: string;
  spec: string;
  comment: string | null;
}

/** The chains (with their policy, `-` for user chains) and rules of the filter table in
 *  `iptables-save -t filter` output. */
export function parseIptablesSave(save: string): { chains: Map<string, string>; rules: IptRule[] } {
  const chains = new Map<string, string>();
  const rules: IptRule[] = [];
  let inFilter = false;
  for (const line of save.split('\n')) {
    if (line.startsWith('*')) { inFilter = line.trim() === '*filter'; continue; }
    if (!inFilter) continue;
    const c = /^:(\S+) (\S+)/.exec(line);
    if (c) { chains.set(c[1], c[2]); continue; }
    const r = /^-A (\S+) (.*)$/.exec(line);
    if (!r) continue;
    const m = /--comment (?:"((?:[^"\\]|\\.)*)"|(\S+))/.exec(r[2]);
    rules.push({ chain: r[1], spec: r[2], comment: m ? (m[1] ?? m[2]).replace(/\\(.)/g, '$1') : null });
  }
  return { chains, rules };
}

/** Where the host's iptables filter would drop a lab's forwarded traffic (bridged traffic too,
 *  once br_netfilter is loaded): Docker's DOCKER-USER chain when it exists (Docker jumps there
 *  first from FORWARD, and keeps it across restarts), else FORWARD when its policy is DROP;
 *  null when nothing drops it. */
export function iptAcceptChain(save: string): string | null {
  const { chains } = parseIptablesSave(save);
  if (chains.has('DOCKER-USER')) return 'DOCKER-USER';
  if (chains.get('FORWARD') === 'DROP') return 'FORWARD';
  return null;
}

/** iptables-restore --noflush input that removes the rules whose comment matches, or null
 *  when there is none. */
export function iptRemoveInput(save: string, match: (comment: string) => boolean): string | null {
  const dels = parseIptablesSave(save).rules.filter((r) => r.comment !== null && match(r.comment)).map((r) => `-D ${r.chain} ${r.spec}`);
  return dels.length ? `*filter\n${dels.join('\n')}\nCOMMIT\n` : null;
}

/** iptables-restore --noflush input that accepts everything in or out of the lab's interfaces
 *  at the top of `chain` (two rules: `+` matches the whole `nl<lab id>` prefix), replacing any
 *  left by an earlier run. Null when no chain would drop the lab's traffic. The lab's own nft
 *  table still does the isolation: these rules only keep Docker's policy from overriding it. */
export function iptAcceptInput(save: string, lab: string): { chain: string; input: string } | null {
  const chain = iptAcceptChain(save);
  if (chain === null) return null;
  const comment = iptComment(lab);
  const dels = parseIptablesSave(save).rules.filter((r) => r.comment === comment).map((r) => `-D ${r.chain} ${r.spec}`);
  const ifs = `${labIfPrefix(lab)}+`;
  const adds = [`-I ${chain} 1 -o ${ifs} -m comment --comment "${comment}" -j ACCEPT`, `-I ${chain} 1 -i ${ifs} -m comment --comment "${comment}" -j ACCEPT`];
  return { chain, input: `*filter\n${[...dels, ...adds].join('\n')}\nCOMMIT\n` };
}
