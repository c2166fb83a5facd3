// The network side of a lab's confinement, attacked from inside a node (`netlab exec`, with the
// NET_ADMIN a default node has), as root against the real kernel:
//  - the host's loopback: a node routes 127.0.0.1 through its gateway (route_localnet is on for
//    the bridge of a published port) and tries a host service bound to 127.0.0.1 only; it must
//    get nothing, while the published 127.0.0.1 port still works from the host;
//  - the lab's subnets never leave the machine: a node of a NAT network pings an internal
//    network, a link subnet and an unused address of the internal subnet; the host's own stack
//    (a host-mode node) does too. The host has no route into them, so without netlab's guard
//    the packets follow the default route out of the uplink, masqueraded. A guard table of this
//    test on the uplink (netdev egress: the very last point before the wire) counts and drops
//    anything to the lab's subnets, so a regression is a failed assertion, never a packet on a
//    real network; with netlab's guard the counter stays 0 and the checks fail, as predicted.
// Each attack is also run once with netlab's rule taken out of the lab's table, to show that
// the test would see the regression (it cannot pass vacuously).
//
// Safety on a shared machine: labs are named hn<run>-<what>, subnets are 10.X.0.0/16 blocks that
// nothing on the host uses (freeOctets), only `down` of this file's labs is run, the guard table
// is this run's own, and leaks are judged only on this run's objects.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { CheckReport } from '../../checks/run.js';
import { labId, nftTable } from '../../topology/names.js';
import { addLeakProbe, cgroupProbe, containerProcessProbe, expectNoLeaks, snapshot, type Snapshot } from '../helpers/leaks.js';
import {
  addrOf, assertBuildFresh, downAndCheck, freeOctets, freePort, httpGet, ipj, loadModel, netlab, netlabOk, prng, sleep, type IpRoute,
} from '../helpers/netlab.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('test/integration/security-network.test.ts skipped: it needs root (it builds labs and attacks them from inside)');

const RUN = randomBytes(3).toString('hex');
const PREFIX = `hn${RUN}-`;
const rand = prng(Number(process.env.NETLAB_TEST_SEED ?? 0x686e6574));
const GUARD = `netlab_test_guard_${RUN}`;

/** The interface of the machine's default route (its uplink), or null without one. */
function uplink(): string | null {
  return ipj<IpRoute>(['-4', 'route', 'show', 'default'])[0]?.dev ?? null;
}

function nft(args: string[], input?: string): string {
  return execFileSync('nft', args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

/** Handles of the rules in chain `chain` of the lab's table whose text contains `needle`. */
function ruleHandles(lab: string, chain: string, needle: string): number[] {
  return nft(['-a', 'list', 'chain', 'ip', nftTable(lab), chain]).split('\n')
    .flatMap((l) => { const m = /# handle (\d+)\s*$/.exec(l); return m && l.includes(needle) ? [Number(m[1])] : []; });
}

describe.skipIf(!isRoot)('a node cannot reach the host\'s loopback, and a lab\'s subnets never leave the machine', () => {
  let tmp = '';
  let before: Snapshot;
  const myLabs = new Set<string>();
  let octets: number[] = [];
  let guardOn: string | null = null;

  beforeAll(() => {
    assertBuildFresh();
    addLeakProbe(cgroupProbe((d) => d.includes(`/netlab/${PREFIX}`)));
    addLeakProbe(containerProcessProbe((g) => g.includes(`/netlab/${PREFIX}`)));
    before = snapshot();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-secnet-'));
    fs.chmodSync(tmp, 0o755);
    octets = freeOctets(2, rand);
  });

  afterEach(async () => {
    for (const lab of myLabs) expect(await downAndCheck(lab), `leftovers of ${lab}`).toEqual([]);
    myLabs.clear();
  });

  afterAll(async () => {
    for (const lab of myLabs) await downAndCheck(lab);
    if (guardOn) spawnSync('nft', ['delete', 'table', 'netdev', GUARD], { stdio: 'ignore' });
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    const mine = (item: string) => item.includes(PREFIX) || item.includes(GUARD) || myLabIds.some((id) => item.includes(id));
    await expectNoLeaks(before, { only: (_probe, item) => mine(item) });
  });

  const myLabIds: string[] = [];
  function newLab(what: string, text: (name: string) => string): { name: string; file: string } {
    const name = `${PREFIX}${what}`;
    if (!/^[a-z][a-z0-9-]{0,31}$/.test(name)) throw new Error(`test bug: bad lab name ${name}`);
    myLabs.add(name);
    myLabIds.push(labId(name));
    const file = path.join(tmp, `${name}.yml`);
    fs.writeFileSync(file, text(name), { mode: 0o644 });
    return { name, file };
  }

  it('a node routing 127.0.0.1 through its gateway gets nothing from a 127.0.0.1-only host service; the published 127.0.0.1 port still works', async () => {
    const o = octets[0];
    const secretPort = await freePort(rand);
    const pubPort = await freePort(rand, [secretPort]);
    // The host service runs in a process of its own: the CLI calls below block this one, and
    // the kernel would complete handshakes for a listener whose process does not run.
    const log = path.join(tmp, 'secret-connections');
    fs.writeFileSync(log, '');
    const server = spawn(process.execPath, ['-e', [
      "const fs = require('node:fs');",
      `require('node:net').createServer((s) => { fs.appendFileSync(${JSON.stringify(log)}, 'x'); s.end('SECRET-FROM-HOST\\n'); })`,
      `  .listen(${secretPort}, '127.0.0.1', () => fs.appendFileSync(${JSON.stringify(log)}, 'ready\\n'));`,
    ].join('\n')], { stdio: 'ignore' });
    const served = () => fs.readFileSync(log, 'utf8').replace('ready\n', '').length;
    for (let i = 0; i < 100 && !fs.readFileSync(log, 'utf8').startsWith('ready'); i++) await sleep(50);
    expect(fs.readFileSync(log, 'utf8')).toBe('ready\n');
    try {
      const { name, file } = newLab('lo', (n) => [
        `name: ${n}`,
        'networks:',
        `  lan: { subnet: 10.${o}.7.0/24 }`,
        'nodes:',
        '  web:',
        '    networks: [lan]',
        `    command: [sh, -c, "mkdir -p /tmp/www && echo hello-from-lab > /tmp/www/index.html && exec httpd -f -p 80 -h /tmp/www"]`,
        `    ports: ["127.0.0.1:${pubPort}:80"]`,
        '  atk:',
        '    networks: [lan]',
        '',
      ].join('\n'));
      netlabOk(['up', file]);
      const gw = loadModel(file).networks[0].gateway!;
      expect(gw).toBe(`10.${o}.7.1`);
      // The host reaches the container through its 127.0.0.1 port (route_localnet + DNAT).
      let page: string | null = null;
      for (let i = 0; i < 20 && page === null; i++) page = await httpGet(`http://127.0.0.1:${pubPort}/`, 1000);
      expect(page).toBe('hello-from-lab\n');
      // What an attacker with NET_ADMIN in the node does: no local 127/8, a route to 127.0.0.1
      // via the gateway, and the node's own checks on 127.x traffic relaxed.
      const attack = [
        'ip route del local 127.0.0.0/8 dev lo table local',
        'ip route del local 127.0.0.1 dev lo table local',
        `ip route add 127.0.0.1/32 via ${gw} dev eth0`,
        'echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet',
        'echo 1 > /proc/sys/net/ipv4/conf/eth0/accept_local',
        'ip route get 127.0.0.1',
      ].join(' && ');
      const setup = netlab(['exec', name, 'atk', '--', 'sh', '-c', attack]);
      expect(setup.status, setup.stderr).toBe(0);
      expect(setup.stdout).toContain(`127.0.0.1 via ${gw} dev eth0`);
      const tryIt = () => netlab(['exec', name, 'atk', '--', 'sh', '-c', `echo | nc -w 2 127.0.0.1 ${secretPort}`], { timeoutMs: 15_000 });
      const r = tryIt();
      expect(r.stdout).not.toContain('SECRET');
      expect(r.status).not.toBe(0);
      expect(served()).toBe(0);
      // The published port is unaffected by the drop (its replies come back as replies).
      expect(await httpGet(`http://127.0.0.1:${pubPort}/`, 2000)).toBe('hello-from-lab\n');

      // Without netlab's drop the same attack gets through: the test sees a regression.
      const handles = ruleHandles(name, 'input', 'ip daddr 127.0.0.0/8 drop');
      expect(handles).toHaveLength(1);
      nft(['delete', 'rule', 'ip', nftTable(name), 'input', 'handle', String(handles[0])]);
      const open = tryIt();
      expect(open.stdout).toContain('SECRET-FROM-HOST');
      expect(served()).toBe(1);
    } finally {
      server.kill('SIGKILL');
      await new Promise((resolve) => (server.exitCode !== null || server.signalCode !== null ? resolve(null) : server.once('exit', resolve)));
    }
  }, 90_000);

  it.skipIf(uplink() === null)('traffic to an internal network, a link subnet or a host-mode node\'s view of them never reaches the uplink, and the checks fail as predicted', () => {
    const o = octets[1];
    const up = uplink()!;
    const { name, file } = newLab('leak', (n) => [
      `name: ${n}`,
      'networks:',
      `  nat: { subnet: 10.${o}.1.0/24 }`,
      `  internal: { subnet: 10.${o}.2.0/24, gateway: false }`,
      'nodes:',
      '  a: { networks: [nat] }',
      '  b: { networks: [internal] }',
      '  hostnode: { network_mode: host }',
      '  r1:',
      '  r2:',
      'links:',
      `  - { endpoints: ["r1:eth0", "r2:eth0"], ipv4: [10.${o}.12.1/30, 10.${o}.12.2/30] }`,
      'checks:',
      '  - ping: { from: a, to: b }',
      `  - ping: { from: a, to: 10.${o}.2.99 }`,
      `  - ping: { from: a, to: 10.${o}.12.2 }`,
      '  - ping: { from: hostnode, to: b }',
      `  - ping: { from: hostnode, to: 10.${o}.12.1 }`,
      // Positive controls: the same node and the host do reach what they should.
      '  - ping: { from: hostnode, to: a }',
      `  - ping: { from: a, to: 10.${o}.1.1 }`,
      '',
    ].join('\n'));
    const model = loadModel(file);
    const subnets = [`10.${o}.1.0/24`, `10.${o}.2.0/24`, `10.${o}.12.0/30`];
    // The guard: on the uplink's egress, after routing, NAT and every netfilter hook.
    nft(['-f', '-'], [
      `table netdev ${GUARD} {`,
      '  chain egress {',
      `    type filter hook egress device "${up}" priority -500; policy accept;`,
      `    ip daddr { ${subnets.join(', ')} } counter drop`,
      '  }',
      '}',
      '',
    ].join('\n'));
    guardOn = up;
    const guardCount = () => Number(/counter packets (\d+)/.exec(nft(['list', 'table', 'netdev', GUARD]))?.[1] ?? NaN);
    try {
      expect(guardCount()).toBe(0);
      netlabOk(['up', file]);
      const r = netlab(['check', name, '--json'], { timeoutMs: 60_000 });
      const report = JSON.parse(r.stdout) as CheckReport;
      const byLabel = new Map(report.outcomes.map((x) => [x.label, x]));
      expect(report.outcomes).toHaveLength(7);
      for (const x of report.outcomes) {
        expect(x.pass, `${x.label}: ${x.reason} / ${x.detail}`).toBe(true);
        expect(x.observed).toBe(x.predicted);
      }
      expect(report.outcomes.filter((x) => x.predicted === 'fail').map((x) => x.address).sort()).toEqual(
        [addrOf(model, 'b'), `10.${o}.2.99`, `10.${o}.12.2`, addrOf(model, 'b'), `10.${o}.12.1`].sort(),
      );
      expect([...byLabel.values()].filter((x) => x.predicted === 'reach')).toHaveLength(2);
      expect(r.status).toBe(0);
      expect(guardCount(), 'packets to the lab\'s subnets reached the uplink').toBe(0);

      // Without netlab's guard the very same pings head for the uplink (and the guard catches
      // them): this is the leak the table closes.
      for (const [chain, needle] of [['forward', 'ip daddr {'], ['outbound', 'ip daddr {']] as const) {
        const hs = ruleHandles(name, chain, needle);
        expect(hs, chain).toHaveLength(1);
        nft(['delete', 'rule', 'ip', nftTable(name), chain, 'handle', String(hs[0])]);
      }
      const leaky = JSON.parse(netlab(['check', name, '--json'], { timeoutMs: 60_000 }).stdout) as CheckReport;
      expect(leaky.outcomes.filter((x) => x.observed === 'reach')).toHaveLength(2); // nothing outside answers: dropped
      expect(guardCount()).toBeGreaterThanOrEqual(5);
    } finally {
      spawnSync('nft', ['delete', 'table', 'netdev', GUARD], { stdio: 'ignore' });
      guardOn = null;
    }
  }, 120_000);
});
