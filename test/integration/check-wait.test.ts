// Checks that wait for convergence, through the real CLI, as root, on a real lab: two busybox
// nodes on one cable. `up --check` retries a declared check with `wait` until b's server has
// started; `netlab check LAB --wait 10` started while the cable is down holds once the test sets
// it up again, about 1.5 s later; a check that cannot hold (the cable down) fails after about
// its wait, not sooner and not much later.
//
// Safety on a shared machine: the lab is named cw<run>, its cable's subnet is in a 10.X.0.0/16
// block nothing routes (freeOctets), every probe goes from a to b's own address inside the
// lab's namespaces, only `down LAB` of this lab cleans up, and afterAll checks nothing is left.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labId } from '../../topology/names.js';
import type { CheckOutcome, CheckReport } from '../../checks/run.js';
import { addLeakProbe, cgroupProbe, containerProcessProbe, expectNoLeaks, snapshot, type Snapshot } from '../helpers/leaks.js';
import { assertBuildFresh, downAndCheck, forceRemoveLab, freeOctets, labLeftovers, netlab, netlabOk, netlabSpawn, prng, sleep, waitExit } from '../helpers/netlab.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('test/integration/check-wait.test.ts skipped: it needs root (it builds a lab in the real kernel and probes it)');

const RUN = randomBytes(3).toString('hex');
const rand = prng(Number(process.env.NETLAB_TEST_SEED ?? 0x63776169));

describe.skipIf(!isRoot)('checks with wait: retried until they hold, bounded by their wait', () => {
  const lab = `cw${RUN}`;
  let tmp = '';
  let file = '';
  let bAddr = '';
  let before: Snapshot;

  /** The CLI's JSON report; fails with the output when it is not JSON. */
  function report(stdout: string, stderr = ''): CheckReport {
    try {
      return JSON.parse(stdout) as CheckReport;
    } catch {
      throw new Error(`not JSON:\n${stdout}${stderr}`);
    }
  }
  const one = (r: CheckReport): CheckOutcome => {
    expect(r.outcomes).toHaveLength(1);
    return r.outcomes[0];
  };

  beforeAll(() => {
    assertBuildFresh();
    addLeakProbe(cgroupProbe((d) => d.includes(`/netlab/${lab}/`)));
    addLeakProbe(containerProcessProbe((g) => g.includes(`/netlab/${lab}/`)));
    before = snapshot();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-cw-'));
    const [o] = freeOctets(1, rand);
    bAddr = `10.${o}.1.2`;
    file = path.join(tmp, `${lab}.yml`);
    fs.writeFileSync(file, [
      `name: ${lab}`,
      'nodes:',
      '  a:',
      // b's server starts 3 s after b does: the declared check below cannot hold at once.
      '  b: { command: [sh, -c, "sleep 3; exec httpd -f -p 80 -h /"] }',
      'links:',
      `  - { endpoints: ["a:eth1", "b:eth1"], ipv4: [10.${o}.1.1/30, ${bAddr}/30] }`,
      'checks:',
      `  - tcp: { from: a, to: ${bAddr}, port: 80, wait: 20 }`,
      '',
    ].join('\n'), { mode: 0o644 });
    console.log(`check-wait.test.ts: lab ${lab}, topology ${file}`);
  });

  afterAll(async () => {
    let left = await downAndCheck(lab);
    if (labLeftovers(lab).length > 0) {
      console.warn(`removing what is left of ${lab} without netlab: ${(await forceRemoveLab(lab)).join('; ')}`);
      left = [...left, ...labLeftovers(lab)];
    }
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    expect(left, 'the lab left objects behind').toEqual([]);
    const id = labId(lab);
    await expectNoLeaks(before, {
      only: (probe, item) => probe === 'child processes' || item.includes(`netlab.${lab}.`) || item.includes(`/netlab/${lab}/`) || item.startsWith(`nl${id}`) || item === `ip netlab_${id}`,
    });
  });

  it('`up --check` retries the declared tcp check (wait: 20) until b\'s server listens, and says after how long it held', () => {
    const up = netlab(['up', file, '--check'], { timeoutMs: 60_000 });
    expect(up.status, `${up.stdout}${up.stderr}`).toBe(0);
    const row = up.stdout.split('\n').find((l) => l.startsWith(`tcp a -> ${bAddr}:80 `));
    expect(row, up.stdout).toBeDefined();
    const m = /\bok  held after (\d+\.\d) s \((\d+) attempts\)  \(connected in [0-9.]+ ms\)$/.exec(row!);
    expect(m, row).not.toBeNull();
    expect(Number(m![2])).toBeGreaterThan(1);
    expect(Number(m![1])).toBeGreaterThan(0);
    expect(Number(m![1])).toBeLessThan(20);
    expect(up.stdout).toMatch(/1 passed, 0 failed/);
    // Now it holds at once: one try, nothing said about waiting.
    const again = netlab(['check', lab, '--json']);
    expect(again.status, again.stderr).toBe(0);
    expect(one(report(again.stdout, again.stderr))).toMatchObject({ pass: true, attempts: 1, heldAfterMs: 0, waitMs: 20_000 });
  });

  it('`check LAB --wait 10` started with the cable down holds once the cable is set up again ~1.5 s later', async () => {
    netlabOk(['link', lab, 'a:eth1', 'down']);
    // Without a wait: tried once, fails at once (as before waits existed).
    const now = netlab(['check', lab, '--ping', `a:${bAddr}`, '--expect', 'reach', '--json']);
    expect(now.status, now.stderr).toBe(1);
    expect(one(report(now.stdout, now.stderr))).toMatchObject({ pass: false, observed: 'fail', attempts: 1, heldAfterMs: null, waitMs: null });

    const t0 = performance.now();
    const child = netlabSpawn(['check', lab, '--ping', `a:${bAddr}`, '--expect', 'reach', '--wait', '10', '--json']);
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    try {
      await sleep(1500);
      expect(child.exitCode, `the check ended before the cable came back: ${out}${err}`).toBeNull();
      netlabOk(['link', lab, 'a:eth1', 'up']);
      const upAt = performance.now() - t0;
      const { code } = await waitExit(child);
      const total = performance.now() - t0;
      expect(code, `${out}${err}`).toBe(0);
      const x = one(report(out, err));
      expect(x).toMatchObject({ pass: true, observed: 'reach', expected: 'reach', waitMs: 10_000 });
      expect(x.attempts).toBeGreaterThan(1);
      expect(x.heldAfterMs).not.toBeNull();
      expect(x.heldAfterMs!).toBeGreaterThanOrEqual(1000);
      expect(x.heldAfterMs!).toBeLessThanOrEqual(10_000);
      // It held soon after the cable came back (pauses are at most 1 s), not at the end of the wait.
      expect(x.heldAfterMs!).toBeLessThan(upAt + 1500);
      expect(total).toBeLessThan(upAt + 3000);
    } finally {
      if (child.exitCode === null && child.signalCode === null) { child.kill('SIGKILL'); await waitExit(child); }
    }
  });

  it('a check that cannot hold (the cable down) fails after about its wait, with the attempts and the last detail', () => {
    netlabOk(['link', lab, 'a:eth1', 'down']);
    try {
      const r = netlab(['check', lab, '--ping', `a:${bAddr}`, '--expect', 'reach', '--wait', '3', '--json'], { timeoutMs: 30_000 });
      expect(r.status, r.stderr).toBe(1);
      const rep = report(r.stdout, r.stderr);
      const x = one(rep);
      expect(x).toMatchObject({ pass: false, observed: 'fail', heldAfterMs: null, waitMs: 3000 });
      // 0, 0.2, 0.5, 0.95, 1.625, 2.625, 2.9 s: the cable is down, so each try fails at once.
      expect(x.attempts).toBeGreaterThanOrEqual(5);
      expect(x.attempts).toBeLessThanOrEqual(10);
      expect(x.detail).not.toBe('');
      expect(rep.ms).toBeGreaterThanOrEqual(2500);
      expect(rep.ms).toBeLessThan(4500);
      expect(r.ms).toBeLessThan(10_000);

      const text = netlab(['check', lab, '--ping', `a:${bAddr}`, '--expect', 'reach', '--wait', '1.5']);
      expect(text.status).toBe(1);
      expect(text.stdout).toMatch(new RegExp(`^ping a -> ${bAddr.replace(/\./g, '\\.')} .* FAIL  did not hold within 1\\.5 s \\(\\d+ attempts\\)  \\(.+\\)$`, 'm'));
    } finally {
      netlabOk(['link', lab, 'a:eth1', 'up']);
    }
  });
});
