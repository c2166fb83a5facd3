// `netlab stats`: what each node uses, read from the kernel. CPU time, memory and pids from the
// node's cgroups (the directories `up` recorded in its container's cgroups.json: v1 cpuacct,
// memory, pids, or the one v2 group), traffic per interface from the link counters
// (IFLA_STATS64) in the node's network namespace. A reading is raw counters with the time it was
// taken; statsOf turns two readings into the report (CPU percent over the interval between them).
// Each reading opens its own netlink sockets and closes them before it returns: a socket in a
// node's namespace would keep that namespace (and its veths) alive after a `down` meanwhile.
import { labOfNetns, NETNS_PREFIX } from '../topology/names.js';
import { containerGroups } from '../runtime/container.js';
import { readCgroupSample, type CgroupSample } from '../runtime/cgroups.js';
import { nodesBuilt } from './plan.js';
import { Kernel } from './kernel/index.js';
import { modelOf, readStateChecked } from './state.js';
import { knownLabs, LabError, requireRoot } from './labs.js';

export interface IfaceCounters { iface: string; rxBytes: number; txBytes: number }

export interface NodeReading {
  name: string;
  /** performance.now() when its cgroup files were read. */
  atMs: number;
  /** null: the container has no groups (not started, or its cgroups.json is gone). */
  cgroup: CgroupSample | null;
  /** Every interface of its namespace but lo; empty for network_mode host (the machine's own
   *  interfaces are not the node's) and when the namespace cannot be read. */
  net: IfaceCounters[];
}

export interface LabReading { lab: string; nodes: NodeReading[] }

/** The JSON report, one lab: exactly `{ lab, nodes: [{ name, cpu, memory, pids, net }] }`. */
export interface NodeStats {
  name: string;
  /** usage_seconds: cumulative CPU time of the node's processes; percent: of one CPU over the
   *  interval (200 is two CPUs busy). null when the group could not be read. */
  cpu: { usage_seconds: number | null; percent: number | null };
  /** bytes charged to the node's memory cgroup; limit null when it has none. */
  memory: { bytes: number | null; limit: number | null };
  pids: number | null;
  net: { iface: string; rx_bytes: number; tx_bytes: number }[];
}
export interface LabStats { lab: string; nodes: NodeStats[] }

/** Nodes of a lab as its state has them (built here: `up --as` builds only one host's), else
 *  from the namespaces left on the machine. */
function labNodes(lab: string, netnsNames: string[]): { name: string; netns: string | null }[] | null {
  const { state } = readStateChecked(lab);
  if (state) return nodesBuilt(modelOf(state), state.as ?? null).map((n) => ({ name: n.name, netns: n.netns }));
  const prefix = `${NETNS_PREFIX}${lab}.`;
  const names = netnsNames.filter((n) => labOfNetns(n) === lab && n.startsWith(prefix));
  return names.length ? names.map((n) => ({ name: n.slice(prefix.length), netns: n })) : null;
}

/** Reads the counters of one lab (it must be up) or of every lab on the machine; with `node`,
 *  of that node of the lab only (no reading when the lab has no such node built here). */
export async function readStats(labName?: string, now: () => number = () => performance.now(), node?: string): Promise<LabReading[]> {
  requireRoot('stats');
  const kernel = await Kernel.open();
  try {
    const labs = labName ? [labName] : await knownLabs(kernel);
    const netns = kernel.netnsList();
    const existing = new Set(netns);
    const out: LabReading[] = [];
    for (const lab of labs) {
      const all = labNodes(lab, netns);
      if (all === null) {
        if (labName) throw new LabError(`lab ${lab} is not up`);
        continue;
      }
      const nodes = node === undefined ? all : all.filter((n) => n.name === node);
      const readings = await Promise.all(nodes.map(async (n): Promise<NodeReading> => {
        const groups = containerGroups(lab, n.name);
        const atMs = now();
        const cgroup = groups ? readCgroupSample(groups.version, groups.dirs) : null;
        let net: IfaceCounters[] = [];
        if (n.netns !== null && existing.has(n.netns)) {
          try {
            net = (await kernel.ns(n.netns).linkStats()).filter((l) => l.name !== 'lo').map((l) => ({ iface: l.name, rxBytes: l.rxBytes, txBytes: l.txBytes }));
          } catch {
            net = []; // the namespace went away or cannot be entered: no counters to show
          }
        }
        return { name: n.name, atMs, cgroup, net };
      }));
      out.push({ lab, nodes: readings });
    }
    return out;
  } finally {
    kernel.close();
  }
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;

/** CPU percent of one node between two readings: its CPU time over the wall time, of one CPU;
 *  null without both readings, or when the counter went back (the lab was brought up anew). */
export function cpuPercent(prev: NodeReading | undefined, cur: NodeReading): number | null {
  const a = prev?.cgroup?.cpuNs;
  const b = cur.cgroup?.cpuNs;
  if (a == null || b == null || prev === undefined) return null;
  const wallNs = (cur.atMs - prev.atMs) * 1e6;
  if (!(wallNs > 0) || b < a) return null;
  return round(((b - a) / wallNs) * 100, 2);
}

/** The report from the latest reading, with CPU percent over the interval since `prev`. */
export function statsOf(prev: LabReading[] | null, cur: LabReading[]): LabStats[] {
  return cur.map((l) => {
    const before = new Map(prev?.find((p) => p.lab === l.lab)?.nodes.map((n) => [n.name, n]) ?? []);
    return {
      lab: l.lab,
      nodes: l.nodes.map((n): NodeStats => ({
        name: n.name,
        cpu: { usage_seconds: n.cgroup?.cpuNs == null ? null : round(n.cgroup.cpuNs / 1e9, 6), percent: cpuPercent(before.get(n.name), n) },
        memory: { bytes: n.cgroup?.memoryBytes ?? null, limit: n.cgroup?.memoryLimit ?? null },
        pids: n.cgroup?.pids ?? null,
        net: n.net.map((f) => ({ iface: f.iface, rx_bytes: f.rxBytes, tx_bytes: f.txBytes })),
      })),
    };
  });
}
