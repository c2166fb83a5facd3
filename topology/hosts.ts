// Name resolution inside a lab, derived from the model: a node's /etc/hosts lists itself and
// every node it shares a segment with (a network, or a point-to-point link) at its address
// there; a host-mode node sees the nodes on networks with a host gateway. The runtime writes
// the file from this, the simulator predicts dns checks from it, and the resolver takes the
// expected address of a dns check from it: one rule in one place.
import type { Lab, LabNode } from './types.js';

/** The address `other` has in `node`'s /etc/hosts: its first address on a network shared with
 *  `node` (for a host-mode `node`: on a network with a gateway), or on a link to `node`. Null
 *  when it is not listed there. */
export function hostsAddress(lab: Lab, node: LabNode, other: LabNode): string | null {
  const own = new Set(node.interfaces.map((f) => f.network).filter((n): n is string => n !== null));
  const hostReach = new Set(lab.networks.filter((n) => n.gateway).map((n) => n.name));
  const shared = other.interfaces.find((f) => f.ipv4 && ((f.network && (own.has(f.network) || (node.networkMode === 'host' && hostReach.has(f.network))))
    || (f.peer?.node === node.name)));
  return shared?.ipv4?.address ?? null;
}

/** The text of `node`'s /etc/hosts. Its own name maps to 127.0.1.1 first, as Debian does. */
export function hostsFile(lab: Lab, node: LabNode): string {
  const lines = ['127.0.0.1\tlocalhost', `127.0.1.1\t${node.name}`];
  for (const f of node.interfaces) if (f.ipv4) lines.push(`${f.ipv4.address}\t${node.name}`);
  for (const other of lab.nodes) {
    if (other === node) continue;
    const a = hostsAddress(lab, node, other);
    if (a) lines.push(`${a}\t${other.name}`);
  }
  return lines.join('\n') + '\n';
}
