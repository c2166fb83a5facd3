// The pure parts of inspect, cp and capture: the capture filter language (into the shim's
// terms), cp's SRC/DST forms, inspect's text, and the usage errors of the three commands (exit
// 2, one line, before anything needs root or a lab).
import { describe, expect, it } from 'vitest';
import { main } from '../../cli/main.js';
import { formatInspect } from '../../cli/commands/operate.js';
import { FilterError, parseFilter } from '../../runtime/capture.js';
import { containerSide, parseCopyArgs } from '../../runtime/copy.js';
import type { NodeInspect } from '../../controller/inspect.js';

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  const code = await main(['node', 'netlab', ...args], { out: (s) => { out += s; }, err: (s) => { err += s; } });
  return { code, out, err };
}

describe('capture --filter', () => {
  it('turns primitives joined by and into the shim\'s terms', () => {
    expect(parseFilter('')).toEqual([]);
    expect(parseFilter('   ')).toEqual([]);
    expect(parseFilter('icmp')).toEqual(['icmp']);
    expect(parseFilter('ARP')).toEqual(['arp']);
    expect(parseFilter('icmp and host 10.1.2.3')).toEqual(['icmp', 'host=10.1.2.3']);
    expect(parseFilter('tcp && port 80 and host 192.168.0.1')).toEqual(['tcp', 'port=80', 'host=192.168.0.1']);
    expect(parseFilter('udp port 53')).toEqual(['udp', 'port=53']);
    expect(parseFilter('tcp port 0080')).toEqual(['tcp', 'port=80']);
  });

  it('refuses what it does not support, in one line naming the problem', () => {
    const err = (e: string) => { try { parseFilter(e); } catch (x) { expect(x).toBeInstanceOf(FilterError); expect((x as FilterError).exitCode).toBe(2); return (x as Error).message; } throw new Error(`${e} was accepted`); };
    expect(err('icmp or tcp')).toBe('--filter "icmp or tcp": expected "and" at "or" (only "and" is supported)');
    expect(err('not icmp')).toMatch(/unknown word "not"/);
    expect(err('icnp')).toBe('--filter "icnp": unknown word "icnp"; did you mean "icmp"? (supported: icmp, tcp, udp, arp, host ADDR, port N, joined by and)');
    expect(err('icmp and')).toBe('--filter "icmp and": a primitive is missing at the end');
    expect(err('and icmp')).toBe('--filter "and icmp": "and" needs a primitive before it');
    expect(err('icmp tcp')).toBe('--filter "icmp tcp": expected "and" at "tcp"');
    expect(err('icmp port 80')).toBe('--filter "icmp port 80": expected "and" at "port"');
    expect(err('host')).toBe('--filter "host": "host" needs an IPv4 address, got nothing');
    expect(err('host 10.0.0.256')).toBe('--filter "host 10.0.0.256": "host" needs an IPv4 address, not "10.0.0.256"');
    expect(err('host web')).toMatch(/needs an IPv4 address, not "web"/);
    expect(err('port 0')).toMatch(/"port" needs a number from 1 to 65535, not "0"/);
    expect(err('port 65536')).toMatch(/not "65536"/);
    expect(err('port http')).toMatch(/not "http"/);
  });
});

describe('cp SRC DST', () => {
  it('reads LAB:NODE:PATH on exactly one side', () => {
    expect(parseCopyArgs('./f', 'lab1:web:/tmp/')).toEqual({ direction: 'in', host: './f', lab: 'lab1', node: 'web', path: '/tmp/' });
    expect(parseCopyArgs('lab1:web:/etc/hosts', 'out')).toEqual({ direction: 'out', host: 'out', lab: 'lab1', node: 'web', path: '/etc/hosts' });
    expect(parseCopyArgs('lab1:web:a:b', '/tmp')).toMatchObject({ direction: 'out', path: 'a:b' });
    expect(parseCopyArgs('a', 'b')).toMatch(/neither SRC nor DST is LAB:NODE:PATH/);
    expect(parseCopyArgs('l:a:/x', 'l:b:/y')).toMatch(/both SRC and DST/);
    expect(parseCopyArgs('f', 'lab1:web:')).toBe('cp: lab1:web:: no path in the container after NODE:');
  });

  it('a host path that starts with / or . is never a container side, even with colons', () => {
    expect(containerSide('./lab:web:x')).toBeNull();
    expect(containerSide('/tmp/lab:web:x')).toBeNull();
    expect(containerSide('Lab:web:x')).toBeNull(); // not a lab name
    expect(containerSide('lab:-web:x')).toBeNull(); // not a node name
    expect(containerSide('lab:web:x')).toEqual({ lab: 'lab', node: 'web', path: 'x' });
  });
});

describe('usage errors (exit 2, one line)', () => {
  it('cp with no container side, or two', async () => {
    const r = await run(['cp', 'a', 'b']);
    expect(r.code).toBe(2);
    expect(r.err).toBe('netlab: cp: neither SRC nor DST is LAB:NODE:PATH (e.g. netlab cp ./file mylab:web:/tmp/)\n');
    expect((await run(['cp', 'l:a:/x', 'l:b:/y'])).code).toBe(2);
  });

  it('capture: -c, --filter and the endpoint', async () => {
    for (const c of ['0', '-1', 'x', '1.5']) {
      const r = await run(['capture', 'somelab', 'n:eth0', '-c', c]);
      expect(r.code, c).toBe(2);
      expect(r.err, c).toBe(`netlab: -c ${c}: expected a number of packets, 1 or more\n`);
    }
    const f = await run(['capture', 'somelab', 'n:eth0', '--filter', 'icmp or arp']);
    expect(f.code).toBe(2);
    expect(f.err).toBe('netlab: --filter "icmp or arp": expected "and" at "or" (only "and" is supported)\n');
    const e = await run(['capture', 'somelab', 'eth0']);
    expect(e.code).toBe(2);
    expect(e.err).toBe('netlab: "eth0" is not an interface; expected NODE:IFACE, e.g. web:eth0\n');
  });
});

describe('inspect text', () => {
  it('shows every part, one value per line where there are several', () => {
    const r: NodeInspect = {
      lab: 'l1', node: 'web',
      image: { reference: 'docker.io/library/nginx:1.27', digest: 'sha256:abc', exposedPorts: ['80/tcp'], stopSignal: 'SIGQUIT' },
      argv: ['/docker-entrypoint.sh', 'nginx', '-g', 'daemon off;'], command: null, entrypoint: null,
      env: { A: '1', B: 'two words' },
      user: { configured: '101:101', uid: 101, gid: 101, groups: [] }, workingDir: '/srv',
      mounts: { volumes: [{ source: '/h/www', target: '/www', readOnly: true }], files: [{ source: '/h/c.conf', target: '/etc/c.conf' }] },
      ports: [], resources: { cpus: 0.5, cpuShares: null, memoryBytes: 64 * 1024 * 1024, pids: 100 },
      privileged: false, capAdd: ['SYS_PTRACE'], capDrop: [], netns: 'netlab.l1.web', networkMode: 'bridge',
      state: { node: 'web', state: 'running', pid: 42, exit: null, exitCode: null, oomKilled: false },
      interfaces: [{ name: 'eth0', up: true, operUp: true, mtu: 1500, mac: '02:00:00:00:00:01', addresses: ['10.0.0.2/24'], impairment: null }],
      routes: [{ dst: 'default', via: '10.0.0.1', dev: 'eth0' }], error: null,
    };
    expect(formatInspect(r)).toBe([
      'lab l1 node web: running (pid 42)',
      '  image        docker.io/library/nginx:1.27 (sha256:abc)',
      '  command      /docker-entrypoint.sh nginx -g "daemon off;"',
      '  user         101:101 (uid 101, gid 101)',
      '  working dir  /srv',
      '  env          A=1',
      '               B=two words',
      '  volumes      /h/www -> /www (read-only)',
      '  files        /h/c.conf -> /etc/c.conf',
      '  resources    cpus 0.5, memory 64 MiB, pids 100',
      '  caps         +SYS_PTRACE',
      '  pid          42',
      '  interfaces   eth0 up mtu 1500 02:00:00:00:00:01 10.0.0.2/24',
      '  routes       default via 10.0.0.1 dev eth0',
      '',
    ].join('\n'));
  });
});
