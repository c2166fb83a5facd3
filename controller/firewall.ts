// The nftables ruleset of one lab, as text for `nft -f` (pure: no kernel here). One table per
// lab holds all of its firewall state, so it is applied atomically and removed in one step:
//  - isolation as Docker does it: traffic forwarded by the host between a lab bridge and any
//    other netlab interface (another network of this lab, or any other lab) is dropped; only
//    a node that routes between its own interfaces connects two networks;
//  - masquerading for networks with a gateway (outbound NAT, like docker0);
//  - published ports: DNAT from the host's addresses (and 127.0.0.1, through route_localnet
//    on the bridge plus masquerade) to the container.
import type { Lab } from '../topology/types.js';
import { NAME_PREFIX, nftTable } from '../topology/names.js';

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

/** True when the lab needs a table at all (some network is routed by the host). */
export function needsFirewall(lab: Lab): boolean {
  return hostBridges(lab).length > 0;
}

export function labRuleset(lab: Lab): string {
  const table = nftTable(lab.name);
  const bridges = hostBridges(lab);
  const lines: string[] = [];
  lines.push(`table ${NFT_FAMILY} ${table} {`);
  lines.push(`  comment "netlab lab ${lab.name}"`);

  lines.push('  chain forward {');
  lines.push('    type filter hook forward priority -1; policy accept;');
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
