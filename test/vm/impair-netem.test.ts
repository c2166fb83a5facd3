// netlab's netem code paths for real, on a kernel that has sch_netem: Debian's own, booted in
// QEMU by test/vm/vm.ts (this machine's kernel has no netem). The host half boots the VM and runs
// this very file inside it with vitest (VITEST_IN_VM=1); the guest half brings up a lab of two
// nodes joined by two links, one with `impair: { delay: 20ms }` (netem on both ends) and one
// without, and measures what netlab set: the round trip over the impaired link is the plain
// one's plus 2 x 20 ms (within 2 ms, medians: emulation is slow, so only differences count);
// jitter spreads it; netem's own 20% loss over 500 pings falls in the 99% binomial interval;
// `netlab impair` sets a delay on the running lab (no refusal here) and tc reads back a netem
// qdisc; --clear takes it away.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { REPO, netlab, netlabOk, netnsList } from '../helpers/netlab.js';
import { runVitestInVm, vmUnavailableReason } from './vm.js';

const inGuest = process.env.VITEST_IN_VM === '1';
const why = inGuest ? null : vmUnavailableReason();
if (!inGuest && why) console.warn(`test/vm/impair-netem.test.ts: skipped: ${why}`);

const pingTimes = (out: string): number[] => [...out.matchAll(/time=([\d.]+) ?ms/g)].map((m) => Number(m[1]));
const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]!; };

describe.skipIf(inGuest || why !== null)('impairments with netem, on a kernel that has it (QEMU)', () => {
  it('delay, jitter, loss and netlab impair, measured inside the VM (this file, run by vitest there)', async () => {
    expect(fs.existsSync(path.join(REPO, 'dist/cli/main.js')), 'dist/ is not built: npm run build').toBe(true);
    const r = await runVitestInVm(REPO, 'test/vm/impair-netem.test.ts', { timeoutMs: 900_000 });
    console.log(`impair-netem in the VM: boot ${(r.bootMs / 1000).toFixed(1)} s, total ${(r.totalMs / 1000).toFixed(1)} s`);
    expect(r.code, r.output).toBe(0);
    const line = /^NETLAB_VM_NETEM (.*)$/m.exec(r.output);
    expect(line, `the guest-side test did not run:\n${r.output}`).not.toBeNull();
    const m = JSON.parse(line![1]!) as { plain: number; delayed: number; jitterSpread: number; lost: number };
    console.log(`in the VM: rtt plain ${m.plain} ms, delay 20ms ${m.delayed} ms (difference ${(m.delayed - m.plain).toFixed(2)}); jitter spread ${m.jitterSpread} ms; netem 20% loss: ${m.lost} of 500`);
  }, 960_000);
});

describe.skipIf(!inGuest)('inside the VM: netlab impairments on netem', () => {
  it('delay adds 2 x 20 ms to the round trip (within 2 ms), jitter spreads it, loss is binomial, netlab impair sets and clears netem', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmimp-'));
    const file = path.join(dir, 'vmimp.yml');
    fs.writeFileSync(file, [
      'name: vmimp',
      'nodes:',
      '  a:',
      '  b:',
      'links:',
      '  - { endpoints: ["a:eth1", "b:eth1"], ipv4: [10.78.1.1/30, 10.78.1.2/30], impair: { delay: 20ms } }',
      '  - { endpoints: ["a:eth2", "b:eth2"], ipv4: [10.78.2.1/30, 10.78.2.2/30] }',
      '',
    ].join('\n'));
    const plan = netlabOk(['plan', file]).stdout;
    expect(plan).toMatch(/qdisc\.set .* eth1 root netem delay 20ms limit 1000/);
    expect(plan).not.toMatch(/nft\.netns/); // loss and delay go in netem here
    netlabOk(['up', file]);
    try {
      const ping = (to: string, n: number, interval = '0.05') => {
        const r = netlab(['exec', 'vmimp', 'a', '--', 'ping', '-c', String(n), '-i', interval, to], { timeoutMs: 120_000 });
        return { out: r.stdout, times: pingTimes(r.stdout) };
      };
      const q = JSON.parse(execFileSync('tc', ['-n', 'netlab.vmimp.a', '-j', 'qdisc', 'show', 'dev', 'eth1'], { encoding: 'utf8' })) as { kind: string; options?: { delay?: { delay: number } } }[];
      expect(q[0]?.kind).toBe('netem');
      // Interleave the two paths so the emulator's slowness hits both alike.
      const plainT: number[] = [];
      const delayedT: number[] = [];
      for (let i = 0; i < 5; i++) {
        plainT.push(...ping('10.78.2.2', 5).times);
        delayedT.push(...ping('10.78.1.2', 5).times);
      }
      expect(plainT.length).toBeGreaterThanOrEqual(20);
      expect(delayedT.length).toBeGreaterThanOrEqual(20);
      const plain = median(plainT);
      const delayed = median(delayedT);
      expect(Math.abs(delayed - plain - 40)).toBeLessThanOrEqual(2);
      // Jitter: 20ms +- 5ms each way: the round trips spread over several ms.
      expect(netlab(['impair', 'vmimp', 'a:eth1', '--delay', '20ms', '--jitter', '5ms']).status).toBe(0);
      const jit = ping('10.78.1.2', 30).times;
      const spread = Math.max(...jit) - Math.min(...jit);
      expect(spread).toBeGreaterThan(4);
      expect(Math.min(...jit)).toBeGreaterThanOrEqual(plain + 25);
      // Loss in netem: netlab impair sets it on both ends of the plain link.
      expect(netlab(['impair', 'vmimp', 'a:eth2', '--loss', '20%']).status).toBe(0);
      const lossOut = netlab(['exec', 'vmimp', 'a', '--', 'ping', '-q', '-c', '500', '-i', '0.01', '-W', '2', '10.78.2.2'], { timeoutMs: 180_000 }).stdout;
      const mm = /(\d+) packets transmitted, (\d+) (packets )?received/.exec(lossOut);
      expect(mm, lossOut).not.toBeNull();
      const lost = Number(mm![1]) - Number(mm![2]);
      // Both ends of the link got 20%: a round trip survives 0.8 x 0.8.
      const p = 1 - 0.8 * 0.8, sd = Math.sqrt(500 * p * (1 - p));
      expect(lost).toBeGreaterThanOrEqual(Math.floor(500 * p - 2.576 * sd));
      expect(lost).toBeLessThanOrEqual(Math.ceil(500 * p + 2.576 * sd));
      const st = netlabOk(['status', 'vmimp']).stdout;
      expect(st).toMatch(/eth2 10\.78\.2\.1\/30 \[loss 20%\]/);
      expect(netlab(['impair', 'vmimp', 'a:eth1', '--clear']).status).toBe(0);
      const after = JSON.parse(execFileSync('tc', ['-n', 'netlab.vmimp.a', '-j', 'qdisc', 'show', 'dev', 'eth1'], { encoding: 'utf8' })) as { kind: string }[];
      expect(after[0]?.kind).toBe('noqueue');
      console.log(`NETLAB_VM_NETEM ${JSON.stringify({ plain, delayed, jitterSpread: Math.round(spread * 100) / 100, lost })}`);
    } finally {
      netlabOk(['down', 'vmimp']);
    }
    expect(netnsList().filter((n) => n.startsWith('netlab.vmimp.'))).toEqual([]);
  }, 800_000);
});
