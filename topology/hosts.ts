// The /etc/hosts of a node, derived from the model: itself, and every node it shares a segment
// with (a network, or a point-to-point link) at its address there; a host-mode node sees the
// nodes on networks with a host gateway. Used by the runtime to write the file and by the
// simulator to predict what a name resolves to.
import type { Lab, LabNode } from './types.js';

/** Addresses of the nodes `node` shares a segment with (a network or a point-to-point link). */
export function hostsFile(lab: Lab, node: LabNode): string {
  const lines = ['127.0.0.1\tlocalhost', `127.0.1.1\t${node.name}`];
  const seen = new Set<string>([node.name]);
  const own = new Set(node.interfaces.map((f) => f.network).filter((n): n is string => n !== null));
  const hostReach = new Set(lab.networks.filter((n) => n.gateway).map((n) => n.name));
  for (const f of node.interfaces) if (f.ipv4) lines.push(`${f.ipv4.address}\t${node.name}`);
  for (const other of lab.nodes) {
    if (seen.has(other.name)) continue;
    const shared = other.interfaces.find((f) => f.ipv4 && ((f.network && (own.has(f.network) || (node.networkMode === 'host' && hostReach.has(f.network))))
      || (f.peer?.node === node.name)));
    if (shared?.ipv4) {
      lines.push(`${shared.ipv4.address}\t${other.name}`);
      seen.add(other.name);
    }
  }
  return lines.join('\n') + '\n';
}

