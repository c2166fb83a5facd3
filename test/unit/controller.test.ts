// Controller logic without root: the firewall ruleset of a lab and the plan executor against a
// recording fake of the kernel interface.
import { describe, expect, it } from 'vitest';
import { labRuleset, needsFirewall } from '../../controller/firewall.js';
import { AbortedError, ApplyError, applyPlan, type KernelApi, type NsApi } from '../../controller/apply.js';
import { buildPlan } from '../../controller/plan.js';
import { loadTopologyFile, loadTopologyText } from '../../topology/load.js';

const load = (f: string) => loadTopologyFile(f).lab!;

describe('firewall ruleset', () => {
  it('isolates each host-routed bridge from every other netlab interface', () => {
    const lab = load('labs/isolated.yml');
    const rs = labRuleset(lab);
    const bridges = lab.networks.map((n) => n.bridgeName!);
    expect(bridges).toHaveLength(2);
    for (const b of bridges) {
      expect(rs).toContain(`iifname "${b}" oifname "nl*" oifname != "${b}" drop`);
      expect(rs).toContain(`oifname "${b}" iifname != "${b}" drop`);
    }
    expect(rs).toMatch(/^table ip netlab_[0-9a-f]{6} \{/);
  });

  it('masquerades only networks with a gateway, and publishes ports with DNAT', () => {
    const lab = loadTopologyText([
      'name: fw', 'networks:', '  a: { subnet: 10.50.0.0/24 }', '  b: { subnet: 10.51.0.0/24, gateway: false }',
      'nodes:', '  web: { networks: [a], ports: ["127.0.0.1:18080:80", "5353:53/udp"] }', '  x: { networks: [b] }',
    ].join('\n'), 'fw.yml').lab!;
    const rs = labRuleset(lab);
    expect(rs).toContain('ip saddr 10.50.0.0/24');
    expect(rs).not.toContain('10.51.0.0/24');
    expect(rs).toContain('ip daddr 127.0.0.1 tcp dport 18080 dnat to 10.50.0.2:80');
    expect(rs).toContain('fib daddr type local udp dport 5353 dnat to 10.50.0.2:53');
    expect(rs).toContain('ip saddr 127.0.0.0/8 masquerade');
  });

  it('a lab with only internal networks needs no table', () => {
    expect(needsFirewall(load('labs/routed.yml'))).toBe(false);
    expect(buildPlan(load('labs/routed.yml')).steps.some((s) => s.op === 'nft.apply')).toBe(false);
  });
});

/** Records every kernel call as a line like `host linkAddBridge nl..`. */
function recorder(failOn?: (line: string) => boolean): { api: KernelApi; calls: string[] } {
  const calls: string[] = [];
  const rec = (ns: string | null, op: string, ...args: unknown[]) => {
    const line = `${ns ?? 'host'} ${op} ${args.map((a) => (typeof a === 'object' ? JSON.stringify(a) : String(a))).join(' ')}`.trim();
    calls.push(line);
    if (failOn?.(line)) throw new Error(`linkAdd ${String(args[0])} in netns ${ns ?? 'host'}: EEXIST (File exists)`);
  };
  const ns = (name: string | null): NsApi => ({
    linkAddBridge: async (n, o) => rec(name, 'linkAddBridge', n, o),
    linkAddVeth: async (n, p, pn, o) => rec(name, 'linkAddVeth', n, p, pn, o),
    linkAddVxlan: async (n, o) => rec(name, 'linkAddVxlan', n, o),
    linkSet: async (n, o) => rec(name, 'linkSet', n, o),
    addrAdd: async (d, c) => rec(name, 'addrAdd', d, c),
    routeAdd: async (r) => rec(name, 'routeAdd', r),
    neighAdd: async (d, i, m) => rec(name, 'neighAdd', d, i, m),
    fdbAppend: async (d, m, i) => rec(name, 'fdbAppend', d, m, i),
    sysctlSet: (k, v) => rec(name, 'sysctlSet', k, v),
  });
  return { calls, api: { netnsAdd: (n) => rec(null, 'netnsAdd', n), ns, nftApply: (r) => rec(null, 'nftApply', r.split('\n')[0]) } };
}

describe('applyPlan', () => {
  it('turns every step into the matching kernel call, in plan order', async () => {
    const plan = buildPlan(load('labs/bridge.yml'), { containers: false });
    const { api, calls } = recorder();
    const progress: number[] = [];
    await applyPlan(plan, api, { progress: (d) => progress.push(d) });
    expect(calls).toHaveLength(plan.steps.length);
    expect(progress.at(-1)).toBe(plan.steps.length);
    const idx = (re: RegExp) => calls.findIndex((c) => re.test(c));
    expect(idx(/netnsAdd netlab\.bridge\.web/)).toBeLessThan(idx(/linkAddVeth .* eth0 netlab\.bridge\.web/));
    expect(idx(/addrAdd eth0 10\.10\.0\.10\/24/)).toBeLessThan(idx(/routeAdd/));
    expect(calls.at(-1)).toMatch(/^host nftApply table ip netlab_/);
  });

  it('names the failing step and stops there', async () => {
    const plan = buildPlan(load('labs/routed.yml'), { containers: false });
    const { api, calls } = recorder((l) => /linkAddVeth eth1 eth1 netlab\.routed\.r2/.test(l));
    const err = await applyPlan(plan, api).catch((e) => e);
    expect(err).toBeInstanceOf(ApplyError);
    expect(err.message).toMatch(/^step \d+ \(veth\.add: link r1:eth1 <-> r2:eth1\) failed: .*EEXIST/);
    expect(calls.length).toBe(err.index + 1);
  });

  it('stops before the next step when aborted (the caller rolls back)', async () => {
    const plan = buildPlan(load('labs/bridge.yml'), { containers: false });
    const { api, calls } = recorder();
    let n = 0;
    const err = await applyPlan(plan, api, { aborted: () => (++n > 5 ? 'SIGINT' : null) }).catch((e) => e);
    expect(err).toBeInstanceOf(AbortedError);
    expect(calls).toHaveLength(5);
  });

  it('starts a lab\'s containers in one batch', async () => {
    const plan = buildPlan(load('labs/bridge.yml'), { containers: true });
    const { api } = recorder();
    const batches: string[][] = [];
    await applyPlan(plan, api, { startContainers: async (steps) => { batches.push(steps.map((s) => s.node)); } });
    expect(batches).toEqual([['web', 'client1', 'client2', 'solo']]);
  });
});
