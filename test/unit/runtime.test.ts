// Pure parts of the runtime: cgroup layout detection and limit files for v1 and v2, the
// generated /etc files.
import { describe, expect, it } from 'vitest';
import { detectLayout, limitFiles, parseProcCgroup, sharesToWeight } from '../../runtime/cgroups.js';
import { resolvConf } from '../../runtime/container.js';
import { hostsFile } from '../../topology/hosts.js';
import { loadTopologyFile } from '../../topology/load.js';

const V1_MOUNTS = [
  'cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0',
  'cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0',
  'cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0',
  'cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0',
  'cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0',
].join('\n');
const V1_SELF = '4:memory:/process_api/abc\n2:cpuacct:/\n1:cpu:/\n8:pids:/user.slice\n0::/\n';
const V2_MOUNTS = 'cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n';
const V2_SELF = '0::/user.slice/user-0.slice/session-3.scope\n';

describe('cgroup layout', () => {
  it('parses /proc/self/cgroup, co-mounted controllers included', () => {
    const m = parseProcCgroup('5:cpu,cpuacct:/a\n3:name=systemd:/b\n0::/c\n');
    expect(m.get('cpu')).toBe('/a');
    expect(m.get('cpuacct')).toBe('/a');
    expect(m.get('')).toBe('/c');
    expect(m.has('name=systemd')).toBe(false);
  });

  it('v1 (hybrid, controllers on v1): groups go below our own cgroup of each controller, one in the unified tree for the device program (so no v1 devices group)', () => {
    const l = detectLayout(V1_SELF + '6:devices:/dev.slice\n', V1_MOUNTS + '\ncgroup /sys/fs/cgroup/devices cgroup rw,relatime,devices 0 0', () => '');
    expect(l.version).toBe(1);
    expect(l.base).toEqual({
      cpu: '/sys/fs/cgroup/cpu/netlab',
      cpuacct: '/sys/fs/cgroup/cpuacct/netlab',
      memory: '/sys/fs/cgroup/memory/process_api/abc/netlab',
      pids: '/sys/fs/cgroup/pids/user.slice/netlab',
      unified: '/sys/fs/cgroup/unified/netlab',
    });
  });

  it('v1 without a unified tree: the v1 devices controller holds the device rules', () => {
    const mounts = V1_MOUNTS.split('\n').filter((l) => !l.startsWith('cgroup2')).join('\n') + '\ncgroup /sys/fs/cgroup/devices cgroup rw,relatime,devices 0 0';
    const l = detectLayout(V1_SELF + '6:devices:/dev.slice\n', mounts, () => '');
    expect(l.base.devices).toBe('/sys/fs/cgroup/devices/dev.slice/netlab');
    expect(l.base.unified).toBeUndefined();
  });

  it('v2 (unified): one directory below our own cgroup', () => {
    const l = detectLayout(V2_SELF, V2_MOUNTS, () => 'cpuset cpu io memory pids');
    expect(l).toEqual({ version: 2, base: { '': '/sys/fs/cgroup/user.slice/user-0.slice/session-3.scope/netlab' } });
  });

  it('writes v1 and v2 limit files with the right units', () => {
    const r = { cpuShares: 512, cpus: 0.5, memoryBytes: 64 * 1024 * 1024, pids: 50 };
    const v1 = limitFiles({ version: 1, base: {} }, { cpu: '/c', cpuacct: '/a', memory: '/m', pids: '/p' }, r);
    expect(v1).toEqual([
      ['/c/cpu.shares', '512'], ['/c/cpu.cfs_period_us', '100000'], ['/c/cpu.cfs_quota_us', '50000'],
      ['/m/memory.limit_in_bytes', String(64 * 1024 * 1024)], ['/p/pids.max', '50'],
    ]);
    const v2 = limitFiles({ version: 2, base: {} }, { '': '/g' }, r);
    expect(v2).toEqual([
      ['/g/cpu.weight', String(sharesToWeight(512))], ['/g/cpu.max', '50000 100000'],
      ['/g/memory.max', String(64 * 1024 * 1024)], ['/g/memory.swap.max', '0'], ['/g/pids.max', '50'],
    ]);
    expect(limitFiles({ version: 1, base: {} }, { cpu: '/c' }, { cpuShares: null, cpus: null, memoryBytes: null, pids: null, cpuset: null })).toEqual([]);
  });

  it('maps cpu shares to weights as runc does (1024 -> 39, 2 -> 1, 262144 -> 10000)', () => {
    expect(sharesToWeight(1024)).toBe(39);
    expect(sharesToWeight(2)).toBe(1);
    expect(sharesToWeight(262144)).toBe(10000);
    expect(sharesToWeight(1024) / sharesToWeight(512)).toBeCloseTo(2, 0);
  });
});

describe('generated /etc files', () => {
  const lab = loadTopologyFile('labs/bridge.yml').lab!;
  const node = (n: string) => lab.nodes.find((x) => x.name === n)!;

  it('hosts: the node itself and every node it shares a network with', () => {
    const h = hostsFile(lab, node('client1'));
    expect(h).toContain('10.10.0.10\tweb\n');
    expect(h).toContain('\tclient2\n');
    expect(h).toContain('127.0.0.1\tlocalhost');
    expect(h).not.toContain('solo');
  });

  it('hosts of a none node: only itself', () => {
    expect(hostsFile(lab, node('solo')).trim().split('\n')).toEqual(['127.0.0.1\tlocalhost', '127.0.1.1\tsolo']);
  });

  it('resolv.conf drops loopback resolvers (unreachable from a lab namespace)', () => {
    const r = resolvConf('nameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch example.org\n# comment\n');
    expect(r).toContain('nameserver 10.0.0.2');
    expect(r).toContain('search example.org');
    expect(r).not.toContain('127.0.0.53');
  });
});
