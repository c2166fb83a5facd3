// Link impairments on the real kernel, through the CLI, as root: measured, not just configured.
// A lab of two busybox nodes on a link whose traffic from a to b loses 20% (nftables numgen in
// a's namespace on this kernel, netem elsewhere) and a third node on a network with a 5 Mbit/s
// rate: 500 pings lose a number inside the 99% binomial interval; tc reads back the rate netlab
// set; `netlab impair` changes the running lab (status shows it, the prediction follows a 100%
// loss, --clear restores every packet); and on a kernel without sch_netem a delay is refused
// in one line before anything is built.
//
// Safety on a shared machine: the labs are named im<run>-..., their subnets are 10.X blocks
// nothing routes (freeOctets), every ping stays inside the lab's namespaces, only `down` of
// these labs cleans up, and afterAll checks nothing is left.
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labId } from '../../topology/names.js';
import type { CheckReport } from '../../checks/run.js';
import { addLeakProbe, cgroupProbe, containerProcessProbe, expectNoLeaks, snapshot, type Snapshot } from '../helpers/leaks.js';
import { downAndCheck, forceRemoveLab, freeOctets, labLeftovers, netlab, prng } from '../helpers/netlab.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('test/integration/impair.test.ts skipped: it needs root');

const RUN = randomBytes(3).toString('hex');
const rand = prng(Number(process.env.NETLAB_TEST_SEED ?? 0x696d7061));
const haveNetem = fs.existsSync('/sys/module/sch_netem');

/** Packets lost of `sent` pings from NODE to ADDR, from busybox ping's summary. */
function pingLoss(lab: string, node: string, addr: string, count: number): { sent: number; received: number } {
  const r = netlab(['exec', lab, node, '--', 'ping', '-q', '-c', String(count), '-i', '0.005', '-W', '1', addr], { timeoutMs: 60_000 });
  const m = /(\d+) packets transmitted, (\d+) packets received/.exec(r.stdout);
  if (!m) throw new Error(`no ping summary (exit ${r.status}):\n${r.stdout}${r.stderr}`);
  return { sent: Number(m[1]), received: Number(m[2]) };
}

/** The 99% interval of a binomial count (normal approximation; n p (1-p) is well above 10 here). */
function binomial99(n: number, p: number): [number, number] {
  const sd = Math.sqrt(n * p * (1 - p));
  return [Math.floor(n * p - 2.576 * sd), Math.ceil(n * p + 2.576 * sd)];
}

describe.skipIf(!isRoot)('link impairments on the real kernel', () => {
  const lab = `im${RUN}-a`;
  let tmp = '';
  let file = '';
  let o = 0;
  let before: Snapshot;
  const labs = [lab];

  beforeAll(() => {
    addLeakProbe(cgroupProbe((d) => d.includes(`/netlab/im${RUN}-`)));
    addLeakProbe(containerProcessProbe((g) => g.includes(`/netlab/im${RUN}-`)));
    before = snapshot();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-impair-'));
    [o] = freeOctets(1, rand);
    file = path.join(tmp, `${lab}.yml`);
    fs.writeFileSync(file, [
      `name: ${lab}`,
      'networks:',
      `  lan: { subnet: 10.${o}.1.0/24, gateway: false }`,
      'nodes:',
      `  a: { networks: { lan: { ipv4: 10.${o}.1.10 } } }`,
      `  b: { command: httpd -f -p 80 -h / }`,
      `  c: { networks: { lan: { ipv4: 10.${o}.1.20, impair: { rate: 5mbit } } } }`,
      'links:',
      '  - endpoints: ["a:eth1", "b:eth1"]',
      `    ipv4: [10.${o}.2.1/30, 10.${o}.2.2/30]`,
      '    impair: { a: { loss: 20% } }',
      '',
    ].join('\n'), { mode: 0o644 });
  });

  afterAll(async () => {
    const left: string[] = [];
    for (const l of labs) {
      left.push(...(await downAndCheck(l)));
      if (labLeftovers(l).length > 0) console.warn(`removing what is left of ${l}: ${(await forceRemoveLab(l)).join('; ')}`);
    }
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    expect(left).toEqual([]);
    await expectNoLeaks(before, {
      only: (probe, item) => probe === 'child processes' || labs.some((l) => item.includes(`netlab.${l}.`) || item.includes(`/netlab/${l}/`) || item.startsWith(`nl${labId(l)}`) || item === `ip netlab_${labId(l)}`),
    });
  });

  it('20% loss from a to b: 500 pings lose a count inside the 99% binomial interval; the rate is the one tc reads back', () => {
    const up = netlab(['up', file], { timeoutMs: 60_000 });
    expect(up.status, up.stderr).toBe(0);
    const { sent, received } = pingLoss(lab, 'a', `10.${o}.2.2`, 500);
    expect(sent).toBe(500);
    const [lo, hi] = binomial99(500, 0.2);
    console.log(`impair.test.ts: 20% loss: ${sent - received} of ${sent} lost (99% interval ${lo}-${hi})`);
    expect(sent - received).toBeGreaterThanOrEqual(lo);
    expect(sent - received).toBeLessThanOrEqual(hi);
    // Only a's direction: b's replies to a ping b starts... come back through a's loss, so b -> a
    // sees the same 20% (its requests pass, a's replies do not always).
    const q = JSON.parse(execFileSync('tc', ['-n', `netlab.${lab}.c`, '-j', 'qdisc', 'show', 'dev', 'eth0'], { encoding: 'utf8' })) as { kind: string; options?: { rate: number } }[];
    expect(q[0]).toMatchObject({ kind: 'tbf', options: { rate: 625_000 } });
    const st = netlab(['status', lab]);
    expect(st.stdout).toMatch(new RegExp(`c .*eth0 10\\.${o}\\.1\\.20/24 \\[rate 5mbit\\]`));
    expect(st.stdout).toMatch(/a .*eth1 [0-9./]+ \[loss 20% \((nftables|netem)\)|a .*eth1 [0-9./]+ \[loss 20%\]/);
  }, 120_000);

  it('netlab impair changes the running lab: 100% loss is predicted and observed as a cut cable; --clear brings every packet back', () => {
    const set = netlab(['impair', lab, 'a:eth1', '--loss', '100%']);
    expect(set.status, set.stderr).toBe(0);
    expect(set.stdout).toBe(`${lab} a:eth1 b:eth1: loss 100%\n`);
    const again = JSON.parse(netlab(['impair', lab, 'a:eth1', '--loss', '100%', '--json']).stdout) as { interfaces: string[]; impairment: { lossPct: number }; text: string };
    expect(again).toMatchObject({ lab, endpoint: 'a:eth1', interfaces: ['a:eth1', 'b:eth1'], impairment: { lossPct: 100 }, text: 'loss 100%' });
    expect(JSON.parse(netlab(['link', lab, 'a:eth1', 'up', '--json']).stdout)).toEqual({ lab, endpoint: 'a:eth1', state: 'up' });
    const c = netlab(['check', lab, '--ping', 'a:b', '--json']);
    const r = JSON.parse(c.stdout) as CheckReport;
    expect(r.outcomes[0]).toMatchObject({ predicted: 'fail', observed: 'fail', pass: true });
    expect(r.outcomes[0].reason).toMatch(/drops every packet it sends \(impair loss 100%\)/);
    // It passes only because of the impairment (as built, a reaches b): degraded, exit 3, so a
    // cut cable never looks green.
    expect(c.status).toBe(3);
    expect(r.degraded).toBe(1);
    expect(r.outcomes[0].degraded).toMatch(/^reaches in the lab as built; now .*drops every packet it sends/);
    const clear = netlab(['impair', lab, 'a:eth1', '--clear']);
    expect(clear.status, clear.stderr).toBe(0);
    const { sent, received } = pingLoss(lab, 'a', `10.${o}.2.2`, 200);
    expect([sent, received]).toEqual([200, 200]);
    expect(netlab(['status', lab]).stdout).not.toMatch(/a .*eth1 [0-9./]+ \[/);
    // A network attachment's loss is both directions: 30% of what c receives and of what it
    // sends (dropped as it enters the bridge), so a ping round trip loses 1 - 0.7 * 0.7 = 51%.
    expect(netlab(['impair', lab, 'c:eth0', '--loss', '30%']).status).toBe(0);
    const att = pingLoss(lab, 'a', `10.${o}.1.20`, 400);
    const [alo, ahi] = binomial99(400, 0.51);
    console.log(`impair.test.ts: 30% each way on c's attachment: ${att.sent - att.received} of ${att.sent} lost (99% interval ${alo}-${ahi})`);
    expect(att.sent - att.received).toBeGreaterThanOrEqual(alo);
    expect(att.sent - att.received).toBeLessThanOrEqual(ahi);
    if (!haveNetem) expect(execFileSync('nft', ['list', 'table', 'netdev', `netlab_${labId(lab)}`], { encoding: 'utf8' })).toMatch(/loss 30% from c:eth0/);
    // Values are checked like the file's: one line, exit 2, nothing changed.
    const bad = netlab(['impair', lab, 'a:eth1', '--loss', '5']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toBe('netlab: --loss: loss "5" is not a percentage from 0% to 100%; expected e.g. 1% or 0.1%\n');
  }, 120_000);

  it('a 20mbit rate measured by the throughput check between 18 and 21 Mbit/s; --clear restores full speed', () => {
    const tp = (): number => {
      const r = netlab(['check', lab, '--throughput', 'b:a:3', '--json'], { timeoutMs: 60_000 });
      const rep = JSON.parse(r.stdout) as CheckReport;
      return rep.outcomes[0].throughput!.bits_per_second;
    };
    // b -> a: b's end of the link carries the rate (a's direction has the 20% loss test's
    // impairment cleared by the test before).
    expect(netlab(['impair', lab, 'b:eth1', '--rate', '20mbit']).status).toBe(0);
    const limited = tp();
    console.log(`impair.test.ts: 20mbit link: ${(limited / 1e6).toFixed(2)} Mbit/s`);
    expect(limited).toBeGreaterThan(18e6);
    expect(limited).toBeLessThan(21e6);
    expect(netlab(['impair', lab, 'b:eth1', '--clear']).status).toBe(0);
    const free = tp();
    console.log(`impair.test.ts: cleared: ${(free / 1e6).toFixed(0)} Mbit/s`);
    expect(free).toBeGreaterThan(200e6);
  }, 120_000);

  it.skipIf(haveNetem)('a delay on a kernel without sch_netem: one line naming the module, exit 1, nothing built', () => {
    const name = `im${RUN}-d`;
    const f = path.join(tmp, `${name}.yml`);
    fs.writeFileSync(f, `name: ${name}\nnodes:\n  a:\n  b:\nlinks:\n  - { endpoints: ["a:eth1", "b:eth1"], ipv4: [10.${o}.3.1/30, 10.${o}.3.2/30], impair: { delay: 20ms } }\n`);
    const up = netlab(['up', f]);
    expect(up.status).toBe(1);
    expect(up.stderr).toMatch(/^netlab: a:eth1: delay needs the sch_netem kernel module, which this kernel \(.+\) does not have \(rate and loss work without it\); nothing was built or changed\n$/);
    expect(fs.existsSync(`/run/netns/netlab.${name}.a`)).toBe(false);
    expect(fs.existsSync(`/run/netlab/${name}`)).toBe(false);
  });
});
