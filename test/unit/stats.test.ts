// `netlab stats` and `resources.cpuset`, the parts that need no root: CPU lists (parsing,
// canonical form, the diagnostics of validate and up), the cpuset cgroup files of v1 and v2
// (which groups exist, what each gets, what v2 parents enable), reading a container's counters
// from cgroup files (v1 and v2 layouts, "no limit" in both spellings), the link counters from a
// netlink reply, and the report (CPU percent over an interval, the JSON shape, the table).
import { describe, expect, it } from 'vitest';
import { loadTopologyText } from '../../topology/load.js';
import { formatDiagnostic } from '../../topology/source.js';
import { formatCpuList, MAX_CPU, parseCpuList } from '../../topology/resolve.js';
import type { Diagnostic, Resources } from '../../topology/types.js';
import type { ResolveEnv } from '../../topology/addrspace.js';
import { detectLayout, groupDirs, limitFiles, parseCpuStat, parseMemoryLimit, readCgroupSample, v2Enable, type CgroupLayout } from '../../runtime/cgroups.js';
import { onlineCpus } from '../../controller/conflicts.js';
import { toLinkCounters } from '../../controller/kernel/codec.js';
import { cpuPercent, statsOf, type LabReading, type NodeReading } from '../../controller/stats.js';
import { binaryBytes, decimalBytes, formatStats, statsJson } from '../../cli/commands/stats.js';
import type { rt } from 'netlink';

const located = (d: Diagnostic) => formatDiagnostic(d).replace(/^inline\.yml:/, '');
function diags(text: string, env?: ResolveEnv): string[] {
  return loadTopologyText(text, 'inline.yml', env).diagnostics.map(located);
}
const NONE: Resources = { cpuShares: null, cpus: null, memoryBytes: null, pids: null, cpuset: null };

describe('CPU lists', () => {
  it('parses single CPUs, ranges and lists into sorted CPUs, overlaps merged', () => {
    expect(parseCpuList('0')).toEqual([0]);
    expect(parseCpuList('0-1')).toEqual([0, 1]);
    expect(parseCpuList('0,2')).toEqual([0, 2]);
    expect(parseCpuList('8-11,0-3')).toEqual([0, 1, 2, 3, 8, 9, 10, 11]);
    expect(parseCpuList('1,0-2,2')).toEqual([0, 1, 2]);
    expect(parseCpuList('0-1\n')).toEqual([0, 1]); // /sys/devices/system/cpu/online ends in a newline
    expect(parseCpuList(String(MAX_CPU))).toEqual([MAX_CPU]);
  });

  it('refuses what the kernel would refuse, saying why', () => {
    for (const bad of ['', '-1', '0-', '0,', ',0', '0 1', 'a', '0-1-2', '0x1', '1.5']) expect(parseCpuList(bad), bad).toMatch(/is not a CPU list/);
    expect(parseCpuList('3-1')).toBe('range 3-1 in cpuset "3-1" runs backwards; write 1-3');
    expect(parseCpuList(`0,${MAX_CPU + 1}`)).toBe(`CPU ${MAX_CPU + 1} in cpuset "0,${MAX_CPU + 1}" is out of range; CPU numbers go from 0 to ${MAX_CPU}`);
  });

  it('writes the shortest kernel form', () => {
    expect(formatCpuList([0])).toBe('0');
    expect(formatCpuList([0, 1])).toBe('0-1');
    expect(formatCpuList([2, 0])).toBe('0,2');
    expect(formatCpuList([0, 1, 2, 5, 7, 8])).toBe('0-2,5,7-8');
    expect(formatCpuList([])).toBe('');
  });

  it('reads the machine\'s online CPUs, null when the file says nothing usable', () => {
    expect(onlineCpus('0-1\n')).toEqual([0, 1]);
    expect(onlineCpus('0,2-3\n')).toEqual([0, 2, 3]);
    expect(onlineCpus('')).toBeNull();
    expect(onlineCpus('garbage')).toBeNull();
  });
});

describe('resources.cpuset in a topology', () => {
  it('is kept in canonical form; a bare number is one CPU', () => {
    const r = loadTopologyText('name: t\nnodes:\n  a: { resources: { cpuset: "1,0" } }\n  b: { resources: { cpuset: 0 } }\n  c:\n', 'x.yml');
    expect(r.diagnostics).toEqual([]);
    expect(r.lab!.nodes.map((n) => n.resources.cpuset)).toEqual(['0-1', '0', null]);
  });

  it('a malformed list, a backwards range or an impossible CPU is an error at its value', () => {
    expect(diags('name: t\nnodes:\n  a: { resources: { cpuset: "0-" } }\n')).toEqual([
      '3:29: nodes.a.resources.cpuset: string "0-" is not allowed; expected a CPU list like "0", "0-1" or "0,2"',
    ]);
    expect(diags('name: t\nnodes:\n  a:\n    resources:\n      cpuset: "3-1"\n  b: { resources: { cpuset: "0,9000" } }\n')).toEqual([
      '5:15: nodes.a.resources.cpuset: range 3-1 in cpuset "3-1" runs backwards; write 1-3',
      '6:29: nodes.b.resources.cpuset: CPU 9000 in cpuset "0,9000" is out of range; CPU numbers go from 0 to 8191',
    ]);
    expect(diags('name: t\nnodes:\n  a: { resources: { cpuset: -1 } }\n')[0]).toMatch(/^3:29: nodes\.a\.resources\.cpuset: /);
  });

  it('validate does not know the machine; up (env.cpus) refuses CPUs that are not online, at the value', () => {
    const text = 'name: t\nnodes:\n  a: { resources: { cpuset: "0-3" } }\n  b: { resources: { cpuset: "1" } }\n  c: { resources: { cpuset: "0" } }\n';
    expect(diags(text)).toEqual([]);
    expect(diags(text, { cpus: { online: [0, 1] } })).toEqual([
      '3:29: nodes.a.resources.cpuset: cpuset "0-3" names CPUs 2-3, which are not online on this machine (online: 0-1)',
    ]);
    expect(diags(text, { cpus: { online: [0] } })).toEqual([
      '3:29: nodes.a.resources.cpuset: cpuset "0-3" names CPUs 1-3, which are not online on this machine (online: 0)',
      '4:29: nodes.b.resources.cpuset: cpuset "1" names CPU 1, which is not online on this machine (online: 0)',
    ]);
  });

  it('up --as HOST judges only the nodes built on that machine', () => {
    const text = 'name: t\nhosts: { h1: {}, h2: {} }\nnodes:\n  a: { host: h1, resources: { cpuset: "7" } }\n  b: { host: h2, resources: { cpuset: "7" } }\n';
    expect(diags(text, { cpus: { online: [0, 1], as: 'h2' } })).toEqual([
      '5:39: nodes.b.resources.cpuset: cpuset "7" names CPU 7, which is not online on this machine (online: 0-1)',
    ]);
  });
});

const V1: CgroupLayout = {
  version: 1,
  base: { cpu: '/cg/cpu/netlab', cpuacct: '/cg/cpuacct/netlab', memory: '/cg/memory/netlab', pids: '/cg/pids/netlab', cpuset: '/cg/cpuset/netlab', unified: '/cg/unified/netlab' },
};
const V2: CgroupLayout = { version: 2, base: { '': '/cg/user.slice/netlab' } };

describe('cpuset cgroups', () => {
  it('v1 detects the cpuset hierarchy below our own cpuset group', () => {
    const mounts = 'cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\ncgroup /sys/fs/cgroup/cpuset cgroup rw,relatime,cpuset 0 0\n';
    expect(detectLayout('3:cpuset:/box\n1:cpu:/\n', mounts, () => null).base).toEqual({ cpu: '/sys/fs/cgroup/cpu/netlab', cpuset: '/sys/fs/cgroup/cpuset/box/netlab' });
  });

  it('v1: a node gets a cpuset group only when it has a cpuset (an empty v1 cpuset group takes no task)', () => {
    expect(Object.keys(groupDirs(V1, 'lab', 'n', NONE)).sort()).toEqual(['cpu', 'cpuacct', 'memory', 'pids', 'unified']);
    expect(groupDirs(V1, 'lab', 'n', { ...NONE, cpuset: '0' })).toMatchObject({ cpuset: '/cg/cpuset/netlab/lab/n', cpu: '/cg/cpu/netlab/lab/n' });
    expect(groupDirs(V2, 'lab', 'n', NONE)).toEqual({ '': '/cg/user.slice/netlab/lab/n' });
    expect(groupDirs(V2, 'lab', 'n', { ...NONE, cpuset: '0' })).toEqual({ '': '/cg/user.slice/netlab/lab/n' });
  });

  it('v1 writes cpuset.mems (the parent\'s) before cpuset.cpus; v2 writes cpuset.cpus only', () => {
    const r = { ...NONE, cpuset: '0-1', cpuShares: 512 };
    expect(limitFiles(V1, groupDirs(V1, 'l', 'n', r), r, '0')).toEqual([
      ['/cg/cpu/netlab/l/n/cpu.shares', '512'],
      ['/cg/cpuset/netlab/l/n/cpuset.mems', '0'],
      ['/cg/cpuset/netlab/l/n/cpuset.cpus', '0-1'],
    ]);
    expect(limitFiles(V1, groupDirs(V1, 'l', 'n', r), r, '0-1')[1]).toEqual(['/cg/cpuset/netlab/l/n/cpuset.mems', '0-1']);
    expect(limitFiles(V2, groupDirs(V2, 'l', 'n', r), r)).toEqual([
      ['/cg/user.slice/netlab/l/n/cpuset.cpus', '0-1'],
      ['/cg/user.slice/netlab/l/n/cpu.weight', '20'],
    ]);
    expect(limitFiles(V1, groupDirs(V1, 'l', 'n', NONE), NONE)).toEqual([]);
  });

  it('v2 parents enable +cpuset only for a lab that asks for one, and only what they offer', () => {
    expect(v2Enable('cpuset cpu io memory pids\n', false)).toBe('+cpu +memory +pids');
    expect(v2Enable('cpuset cpu io memory pids\n', true)).toBe('+cpuset +cpu +memory +pids');
    expect(v2Enable('cpu memory\n', true)).toBe('+cpu +memory');
    expect(v2Enable('', true)).toBe('');
  });
});

describe('reading a container\'s counters', () => {
  const files = (m: Record<string, string>) => (f: string) => m[f] ?? null;

  it('v1: cpuacct.usage (ns), memory.usage_in_bytes and limit_in_bytes (the huge "no limit" is null), pids.current', () => {
    const dirs = { cpu: '/c', cpuacct: '/a', memory: '/m', pids: '/p' };
    expect(readCgroupSample(1, dirs, files({
      '/a/cpuacct.usage': '1500000000\n', '/m/memory.usage_in_bytes': '188416\n', '/m/memory.limit_in_bytes': '9223372036854771712\n', '/p/pids.current': '3\n',
    }))).toEqual({ cpuNs: 1_500_000_000, memoryBytes: 188416, memoryLimit: null, pids: 3 });
    expect(readCgroupSample(1, dirs, files({ '/m/memory.limit_in_bytes': '67108864\n' }))).toEqual({ cpuNs: null, memoryBytes: null, memoryLimit: 67108864, pids: null });
    // cpu and cpuacct co-mounted: one directory for both.
    expect(readCgroupSample(1, { cpu: '/cc' }, files({ '/cc/cpuacct.usage': '7\n' })).cpuNs).toBe(7);
  });

  it('v2: cpu.stat usage_usec (to ns), memory.current, memory.max ("max" is null), pids.current', () => {
    const stat = 'usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n';
    expect(readCgroupSample(2, { '': '/g' }, files({ '/g/cpu.stat': stat, '/g/memory.current': '4096\n', '/g/memory.max': 'max\n', '/g/pids.current': '1\n' })))
      .toEqual({ cpuNs: 2_500_000_000, memoryBytes: 4096, memoryLimit: null, pids: 1 });
    expect(readCgroupSample(2, { '': '/g' }, files({ '/g/memory.max': '67108864\n' })).memoryLimit).toBe(67108864);
  });

  it('parsers', () => {
    expect(parseCpuStat('user_usec 1\nusage_usec 42\n')).toBe(42_000);
    expect(parseCpuStat('nothing here')).toBeNull();
    expect(parseMemoryLimit('max')).toBeNull();
    expect(parseMemoryLimit('9223372036854771712')).toBeNull();
    expect(parseMemoryLimit(String(2 ** 40))).toBe(2 ** 40);
    expect(parseMemoryLimit('')).toBeNull();
  });

  it('link counters: IFLA_STATS64 (64-bit), else the 32-bit IFLA_STATS, else zeros', () => {
    const big = 5n * 2n ** 32n + 7n; // past what 32-bit counters hold
    const m64 = { data: { index: 2 }, attrs: { ifname: 'eth0', stats64: { rxBytes: big, txBytes: 10n, rxPackets: 3n, txPackets: 1n }, stats: { rxBytes: 7, txBytes: 10, rxPackets: 3, txPackets: 1 } } } as unknown as rt.LinkMessage;
    expect(toLinkCounters(m64)).toEqual({ index: 2, name: 'eth0', rxBytes: Number(big), txBytes: 10, rxPackets: 3, txPackets: 1 });
    const m32 = { data: { index: 3 }, attrs: { ifname: 'eth1', stats: { rxBytes: 70, txBytes: 80, rxPackets: 1, txPackets: 2 } } } as unknown as rt.LinkMessage;
    expect(toLinkCounters(m32)).toEqual({ index: 3, name: 'eth1', rxBytes: 70, txBytes: 80, rxPackets: 1, txPackets: 2 });
    expect(toLinkCounters({ data: {}, attrs: { ifname: 'x' } } as unknown as rt.LinkMessage)).toEqual({ index: 0, name: 'x', rxBytes: 0, txBytes: 0, rxPackets: 0, txPackets: 0 });
  });
});

describe('the report', () => {
  const node = (name: string, atMs: number, cpuNs: number | null, extra: Partial<NodeReading> = {}): NodeReading => ({
    name, atMs, cgroup: { cpuNs, memoryBytes: 1000, memoryLimit: null, pids: 1 }, net: [], ...extra,
  });

  it('CPU percent is CPU time over wall time, of one CPU', () => {
    expect(cpuPercent(node('a', 0, 0), node('a', 500, 250_000_000))).toBe(50);
    expect(cpuPercent(node('a', 1000, 1e9), node('a', 2000, 3e9))).toBe(200); // two CPUs busy
    expect(cpuPercent(node('a', 0, 0), node('a', 1000, 1_234_567))).toBe(0.12);
    expect(cpuPercent(undefined, node('a', 500, 1))).toBeNull();
    expect(cpuPercent(node('a', 0, 5e9), node('a', 500, 1e9))).toBeNull(); // counter went back: a new lab
    expect(cpuPercent(node('a', 0, null), node('a', 500, 1e9))).toBeNull();
    expect(cpuPercent(node('a', 500, 0), node('a', 500, 1e9))).toBeNull(); // no interval
  });

  it('has exactly the documented JSON shape, nodes in reading order, nulls where nothing was read', () => {
    const prev: LabReading[] = [{ lab: 'l', nodes: [node('heavy', 0, 1e9), node('light', 0, 5e8)] }];
    const cur: LabReading[] = [{
      lab: 'l',
      nodes: [
        node('heavy', 500, 1e9 + 333_333_333, { net: [{ iface: 'eth0', rxBytes: 54, txBytes: 12 }], cgroup: { cpuNs: 1e9 + 333_333_333, memoryBytes: 188416, memoryLimit: 67108864, pids: 2 } }),
        node('light', 500, 5e8 + 166_666_667),
        { name: 'gone', atMs: 500, cgroup: null, net: [] },
      ],
    }];
    const report = statsOf(prev, cur);
    expect(report).toEqual([{
      lab: 'l',
      nodes: [
        { name: 'heavy', cpu: { usage_seconds: 1.333333, percent: 66.67 }, memory: { bytes: 188416, limit: 67108864 }, pids: 2, net: [{ iface: 'eth0', rx_bytes: 54, tx_bytes: 12 }] },
        { name: 'light', cpu: { usage_seconds: 0.666667, percent: 33.33 }, memory: { bytes: 1000, limit: null }, pids: 1, net: [] },
        { name: 'gone', cpu: { usage_seconds: null, percent: null }, memory: { bytes: null, limit: null }, pids: null, net: [] },
      ],
    }]);
    expect(Object.keys(report[0].nodes[0])).toEqual(['name', 'cpu', 'memory', 'pids', 'net']);
    expect(statsJson(report, 'l')).toBe(report[0]);
    expect(statsJson(report, undefined)).toEqual({ labs: report });
    // A lab that was not in the previous reading: cumulative values, no percent.
    expect(statsOf([], cur)[0].nodes[0].cpu).toEqual({ usage_seconds: 1.333333, percent: null });
  });

  it('units as docker stats prints them: memory in binary units, traffic in decimal ones', () => {
    expect(binaryBytes(0)).toBe('0B');
    expect(binaryBytes(1023)).toBe('1023B');
    expect(binaryBytes(188416)).toBe('184KiB');
    expect(binaryBytes(1536)).toBe('1.50KiB');
    expect(binaryBytes(64 * 1024 * 1024)).toBe('64.0MiB');
    expect(decimalBytes(54)).toBe('54B');
    expect(decimalBytes(1500)).toBe('1.50kB');
    expect(decimalBytes(23_400_000)).toBe('23.4MB');
  });

  it('the table: a row per node, NET I/O summed over the interfaces, a LAB column for several labs', () => {
    const labs = statsOf(null, [{ lab: 'l', nodes: [
      node('heavy', 0, 2e9, { net: [{ iface: 'eth0', rxBytes: 1000, txBytes: 500 }, { iface: 'eth1', rxBytes: 500, txBytes: 0 }], cgroup: { cpuNs: 2e9, memoryBytes: 188416, memoryLimit: 67108864, pids: 2 } }),
      { name: 'down', atMs: 0, cgroup: null, net: [] },
    ] }]);
    labs[0].nodes[0].cpu.percent = 66.666;
    const text = formatStats(labs);
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NAME\s+CPU %\s+CPU TIME\s+MEM USAGE \/ LIMIT\s+MEM %\s+PIDS\s+NET I\/O$/);
    expect(lines[1].split(/\s{3,}/)).toEqual(['heavy', '66.67%', '2.00s', '184KiB / 64.0MiB', '0.28%', '2', '1.50kB / 500B']);
    expect(lines[2].split(/\s{3,}/)).toEqual(['down', '-', '-', '-', '-', '-', '-']);
    expect(formatStats(labs, { labColumn: true }).split('\n')[1]).toMatch(/^l\s+heavy\s+/);
    expect(formatStats([])).toBe('no labs are up\n');
  });
});
