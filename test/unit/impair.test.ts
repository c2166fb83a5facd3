// Impairments without root: `impair:` values as tc writes them and their refusals at their
// lines, the plan's steps (tbf for a rate, netem when the kernel has it, nftables loss rules
// otherwise, the one-line refusal of netem-only features), the tc messages against what
// iproute2 sends and what the kernel dumps (recorded with strace from the real tc: see the
// hex below), and the simulator's view (100% loss is a cut cable, a rate changes nothing).
import { describe, expect, it } from 'vitest';
import { loadTopologyText } from '../../topology/load.js';
import { buildPlan, impairSteps, lossRuleset } from '../../controller/plan.js';
import { decodeQdisc, encodeNetem, encodeTbf, tbfFor } from '../../controller/kernel/tc.js';
import { impairmentText, parsePercent, parseRate, parseTime } from '../../topology/impair.js';
import { predictPair } from '../../topology/simulate.js';
import type { Diagnostic, Lab } from '../../topology/types.js';

const hex = (s: string) => Buffer.from(s.replace(/\\x/g, ''), 'hex');

function lab(yaml: string): Lab {
  const r = loadTopologyText(yaml, '');
  if (!r.lab) throw new Error(`test lab is not valid: ${r.diagnostics.map((d) => `${d.line}:${d.col} ${d.message}`).join('; ')}`);
  return r.lab;
}
function problems(yaml: string): Diagnostic[] {
  const r = loadTopologyText(yaml, '');
  expect(r.lab).toBeNull();
  return r.diagnostics;
}

const TWO = (linkImpair: string, attImpair = '') => `name: im
networks:
  lan: { subnet: 10.5.1.0/24, gateway: false }
nodes:
  a: { networks: { lan: { ipv4: 10.5.1.10${attImpair ? `, impair: ${attImpair}` : ''} } } }
  b: { networks: [lan] }
  c:
links:
  - endpoints: ["a:eth1", "c:eth1"]
    ipv4: [10.5.2.1/30, 10.5.2.2/30]
${linkImpair ? `    impair: ${linkImpair}\n` : ''}`;

describe('impair: values and refusals', () => {
  it('reads rates, times and percentages as tc writes them', () => {
    expect(parseRate('10mbit')).toBe(10e6);
    expect(parseRate('512kbit')).toBe(512e3);
    expect(parseRate('100kbps')).toBe(800e3);
    expect(parseRate('1gbit')).toBe(1e9);
    expect(parseRate(2000)).toBe(2000);
    expect(parseRate('10 furlongs')).toBeNull();
    expect(parseTime('20ms')).toBe(20_000);
    expect(parseTime('1.5ms')).toBe(1500);
    expect(parseTime('500us')).toBe(500);
    expect(parseTime('1s')).toBe(1e6);
    expect(parseTime('fast')).toBeNull();
    expect(parsePercent('1%')).toBe(1);
    expect(parsePercent('0.1%')).toBe(0.1);
    expect(parsePercent(5)).toBe(5);
    expect(parsePercent('101%')).toBeNull();
    expect(parsePercent('5')).toBeNull();
  });

  it('puts a link\'s values on both ends, a: and b: on one direction each, an attachment\'s on its interface', () => {
    const l = lab(TWO('{ rate: 20mbit, delay: 10ms, b: { loss: 20%, rate: 10mbit } }', '{ rate: 5mbit }'));
    const f = (n: string, i: string) => l.nodes.find((x) => x.name === n)!.interfaces.find((x) => x.name === i)!.impair;
    expect(impairmentText(f('a', 'eth1'))).toBe('rate 20mbit delay 10ms');
    expect(impairmentText(f('c', 'eth1'))).toBe('rate 10mbit delay 10ms loss 20%');
    expect(impairmentText(f('a', 'eth0'))).toBe('rate 5mbit');
    expect(f('b', 'eth0')).toBeUndefined();
  });

  it('refuses bad values and impossible combinations at their line and column', () => {
    const d = problems(TWO('{ rate: fast, jitter: 5ms, loss: 120%, b: { delay: 5ms, jitter: 9ms } }'));
    expect(d.map((x) => [x.line, x.path, x.message])).toEqual([
      [11, 'links[0].impair.rate', expect.stringMatching(/rate "fast" is not a rate/)],
      [11, 'links[0].impair.jitter', 'jitter varies a delay: give delay too'],
      [11, 'links[0].impair.loss', expect.stringMatching(/loss "120%" is not a percentage/)],
      [11, 'links[0].impair.b.jitter', expect.stringMatching(/jitter 9ms is larger than delay 5ms/)],
    ]);
    expect(problems(TWO('{ ratee: 1mbit }'))[0].message).toMatch(/ratee/);
    expect(problems(TWO('', '{ reorder: 1% }'))[0].message).toMatch(/reorder sends some packets ahead of the delayed ones: give delay too/);
  });
});

describe('impair: the plan', () => {
  it('without netem: tbf for rates (both sides of an attachment), nftables for loss, in the node\'s namespace', () => {
    const l = lab(TWO('{ rate: 20mbit, b: { loss: 20% } }', '{ rate: 5mbit, loss: 10% }'));
    const steps = buildPlan(l, { containers: false, netem: false }).steps.filter((s) => s.op === 'qdisc.set' || s.op === 'nft.netns' || (s.op === 'nft.apply' && s.family === 'netdev'));
    const hostSide = l.nodes[0].interfaces[0].hostSide!;
    expect(steps.map((s) => `${s.op} ${'netns' in s ? s.netns ?? 'host' : 'host'} ${'dev' in s ? s.dev : s.table}`)).toEqual([
      'qdisc.set netlab.im.a eth0', `qdisc.set host ${hostSide}`, 'qdisc.set netlab.im.a eth1',
      'nft.netns netlab.im.a netlab_impair', 'qdisc.set netlab.im.c eth1', `nft.apply host netlab_${l.id}`,
    ]);
    const rules = (i: number) => ('ruleset' in steps[i] ? steps[i].ruleset : '');
    expect(steps[0]).toMatchObject({ qdisc: { kind: 'tbf', rateBps: 5e6 } });
    // Dropped where the packets arrive (a drop on the way out would fail the sender's sendto):
    // a's table takes 10% of what reaches it over lan and 20% of what c sends it over the link.
    expect(rules(3)).toContain('iifname "eth0" numgen random mod 1000000 < 100000 drop comment "loss 10%"');
    expect(rules(3)).toContain('iifname "eth1" numgen random mod 1000000 < 200000 drop comment "loss 20%"');
    // What a sends into lan: at its bridge port's ingress, in the machine's namespace.
    expect(rules(5)).toContain(`type filter hook ingress device "${hostSide}" priority 0; policy accept;`);
    expect(rules(5)).toContain('meta protocol ip numgen random mod 1000000 < 100000 drop comment "loss 10% from a:eth0"');
  });

  it('with netem: one netem qdisc carries delay, loss and the rate', () => {
    const l = lab(TWO('{ rate: 20mbit, delay: 10ms, jitter: 2ms, loss: 1% }'));
    const steps = buildPlan(l, { containers: false, netem: true }).steps.filter((s) => s.op === 'qdisc.set' || s.op === 'nft.netns');
    expect(steps.map((s) => s.op)).toEqual(['qdisc.set', 'qdisc.set']);
    expect(steps[0]).toMatchObject({ qdisc: { kind: 'netem', delayUs: 10_000, jitterUs: 2000, lossPct: 1, rateBps: 20e6, limit: 1000 } });
  });

  it('without netem, delay is refused in one line naming the module, before any step', () => {
    const l = lab(TWO('{ delay: 10ms }'));
    expect(() => buildPlan(l, { containers: false, netem: false })).toThrow(/^a:eth1: delay needs the sch_netem kernel module, which this kernel \(.+\) does not have \(rate and loss work without it\); nothing was built or changed$/);
  });

  it('clearing (netlab impair --clear) takes away the qdiscs and the loss table', () => {
    const l = lab(TWO(''));
    const steps = impairSteps(l, l.nodes[0], false, null, true);
    expect(steps.map((s) => s.op)).toEqual(['qdisc.clear', 'qdisc.clear', 'qdisc.clear', 'nft.netns']);
    expect(lossRuleset([])).toBe('table inet netlab_impair\ndelete table inet netlab_impair\n');
    expect(lossRuleset([{ dev: 'eth1', pct: 100 }])).toContain('iifname "eth1" drop comment "loss 100%"');
  });
});

describe('impair: tc messages', () => {
  it('netem: the same TCA_OPTIONS iproute2 sends (recorded: tc qdisc replace ... netem delay 20ms 5ms loss 1% duplicate 0.5% corrupt 0.1% reorder 2% limit 500)', () => {
    const recorded = hex('\\xb4\\xc4\\x04\\x00\\xf4\\x01\\x00\\x00\\x29\\x5c\\x8f\\x02\\x01\\x00\\x00\\x00\\x14\\xae\\x47\\x01\\x2d\\x31\\x01\\x00\\x0c\\x00\\x03\\x00\\x52\\xb8\\x1e\\x05\\x00\\x00\\x00\\x00\\x0c\\x00\\x04\\x00\\x37\\x89\\x41\\x00\\x00\\x00\\x00\\x00');
    const ours = encodeNetem({ kind: 'netem', delayUs: 20_000, jitterUs: 5000, lossPct: 1, duplicatePct: 0.5, corruptPct: 0.1, reorderPct: 2, rateBps: 0, limit: 500 });
    expect(ours.toString('hex')).toBe(recorded.toString('hex'));
    expect(decodeQdisc('netem', ours)).toEqual({ kind: 'netem', delayUs: 20_000, jitterUs: 5000, lossPct: 1, duplicatePct: 0.5, corruptPct: 0.1, reorderPct: 2, rateBps: 0, limit: 500 });
  });

  it('netem with a rate: TCA_NETEM_RATE as iproute2 sends it (recorded: netem delay 10ms loss 20% rate 20mbit)', () => {
    const recorded = hex('\\x5a\\x62\\x02\\x00\\xe8\\x03\\x00\\x00\\x33\\x33\\x33\\x33\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x14\\x00\\x06\\x00\\xa0\\x25\\x26\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00');
    expect(encodeNetem({ kind: 'netem', delayUs: 10_000, jitterUs: 0, lossPct: 20, duplicatePct: 0, corruptPct: 0, reorderPct: 0, rateBps: 20e6, limit: 1000 }).toString('hex')).toBe(recorded.toString('hex'));
  });

  it('tbf: the kernel\'s dump of `tc qdisc replace ... tbf rate 20mbit burst 10000 limit 125000` decodes to what tc -j shows', () => {
    // TCA_OPTIONS of the RTM_NEWQDISC the kernel sent to `tc qdisc show` (tc -j: rate 2500000 bytes/s, burst 10000).
    const dumped = hex('\\x28\\x00\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\xa0\\x25\\x26\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x48\\xe8\\x01\\x00\\x24\\xf4\\x00\\x00\\x00\\x00\\x00\\x00');
    expect(decodeQdisc('tbf', dumped)).toEqual({ kind: 'tbf', rateBps: 20e6, burstBytes: 10000, limitBytes: 125000 });
    // Ours: the same parameters block (the Ethernet link layer needs no rate table), plus TCA_TBF_BURST.
    const ours = encodeTbf({ kind: 'tbf', rateBps: 20e6, burstBytes: 10000, limitBytes: 125000 });
    expect(ours.subarray(0, 40).toString('hex')).toBe(dumped.toString('hex'));
    expect(decodeQdisc('tbf', ours)).toEqual({ kind: 'tbf', rateBps: 20e6, burstBytes: 10000, limitBytes: 125000 });
    expect(tbfFor(20e6, null)).toEqual({ kind: 'tbf', rateBps: 20e6, burstBytes: 10000, limitBytes: 500000 });
    expect(tbfFor(1e6, null)).toEqual({ kind: 'tbf', rateBps: 1e6, burstBytes: 3200, limitBytes: 96000 });
  });
});

describe('impair: the prediction', () => {
  it('loss 100% is a cut cable (one way is enough to fail a ping); a rate or partial loss changes nothing', () => {
    expect(predictPair(lab(TWO('{ rate: 1kbit, loss: 50% }')), 'a', 'c').reach).toBe(true);
    const cut = predictPair(lab(TWO('{ b: { loss: 100% } }')), 'a', 'c');
    expect(cut.reach).toBe(false);
    expect(cut.reason).toMatch(/reply from c to 10\.5\.2\.1: c eth1 drops every packet it sends \(impair loss 100%\)/);
    const att = predictPair(lab(TWO('', '{ loss: 100% }')), 'b', 'a');
    expect(att.reach).toBe(false);
    expect(att.reason).toMatch(/a eth0 drops every packet it receives/);
  });
});
