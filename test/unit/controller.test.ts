// Controller logic without root: the firewall ruleset of a lab and the plan executor against a
// recording fake of the kernel interface.
import { describe, expect, it } from 'vitest';
import {
  iptAcceptChain, iptAcceptInput, iptComment, isNetlabComment, iptRemoveInput, labIfPrefix, labRuleset, labSubnets, needsFirewall, parseIptablesSave,
} from '../../controller/firewall.js';
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
    // The internal network is only in the leak guard, never masqueraded.
    expect(rs).not.toContain('ip saddr 10.51.0.0/24');
    expect(rs).toContain('ip daddr { 10.50.0.0/24, 10.51.0.0/24 } oifname');
    expect(rs).toContain('ip daddr 127.0.0.1 tcp dport 18080 dnat to 10.50.0.2:80');
    expect(rs).toContain('fib daddr type local udp dport 5353 dnat to 10.50.0.2:53');
    expect(rs).toContain('ip saddr 127.0.0.0/8 masquerade');
  });

  it('a lab the host routes nothing for gets only the guards: no NAT, no isolation, no ports', () => {
    const lab = load('labs/routed.yml');
    expect(needsFirewall(lab)).toBe(true);
    const rs = labRuleset(lab);
    expect(rs).not.toContain('masquerade');
    expect(rs).not.toContain('dnat');
    expect(rs).not.toMatch(/iifname "nl[0-9a-f]{6}b/);
    expect(rs).toContain(`ip daddr { ${labSubnets(lab).join(', ')} } oifname != "nl*" drop`);
    // lan1's bridge is in the host's namespace: under br_netfilter its bridged traffic meets
    // the iptables FORWARD policy, so Docker's DROP would cut it.
    expect(buildPlan(lab).steps.filter((s) => s.op === 'iptables.accept')).toHaveLength(1);
  });

  it('a lab with no subnet at all needs no table', () => {
    const lab = load('labs/none.yml');
    expect(labSubnets(lab)).toEqual([]);
    expect(needsFirewall(lab)).toBe(false);
    expect(buildPlan(lab).steps.some((s) => s.op === 'nft.apply')).toBe(false);
  });

  it('every subnet of the lab is guarded: networks (internal ones too), link subnets, the underlay, each once', () => {
    const lab = loadTopologyText([
      'name: leak', 'underlay: { subnet: 10.99.0.0/24 }', 'hosts: { h1: {} }',
      'networks:', '  nat: { subnet: 10.60.0.0/24 }', '  internal: { subnet: 10.61.0.0/24, gateway: false }',
      '  ov: { driver: overlay, subnet: 10.62.0.0/24 }',
      'nodes:', '  a: { networks: [nat] }', '  b: { networks: [internal] }', '  c: { host: h1, networks: [ov] }', '  r1:', '  r2:',
      'links:', '  - { endpoints: ["r1:eth0", "r2:eth0"], ipv4: [10.0.12.1/30, 10.0.12.2/30] }',
    ].join('\n'), 'leak.yml').lab!;
    expect(labSubnets(lab)).toEqual(['10.0.12.0/30', '10.60.0.0/24', '10.61.0.0/24', '10.62.0.0/24', '10.99.0.0/24']);
    // Validation refuses overlapping subnets; the set (which nft refuses overlapping elements
    // in) stays valid without relying on it.
    const nested = { ...lab, networks: [...lab.networks, { ...lab.networks[0], name: 'inner', subnet: '10.60.0.128/25' }, { ...lab.networks[0], name: 'same' }] };
    expect(labSubnets(nested)).toEqual(labSubnets(lab));
    const rs = labRuleset(lab);
    // Any netlab interface, not only this lab's: another lab's bridge may carry a reused internal subnet.
    const own = '"nl*"';
    const set = '{ 10.0.12.0/30, 10.60.0.0/24, 10.61.0.0/24, 10.62.0.0/24, 10.99.0.0/24 }';
    // Forwarded (a node routed by the host), first in the forward chain...
    expect(rs).toContain(`chain forward {\n    type filter hook forward priority -1; policy accept;\n    ip daddr ${set} oifname != ${own} drop\n`);
    // ...and anything else leaving, the host's own traffic included, where the interface is
    // final (before masquerading); lo carries the host's own gateway addresses.
    expect(rs).toContain(`chain outbound {\n    type filter hook postrouting priority 99; policy accept;\n    ip daddr ${set} oifname != "lo" oifname != ${own} drop\n  }`);
  });

  it('drops what a lab interface sends to the host\'s loopback, but for replies to the host\'s own connections', () => {
    const lab = loadTopologyText([
      'name: lo', 'networks:', '  a: { subnet: 10.50.0.0/24 }', 'nodes:', '  web: { networks: [a], ports: ["127.0.0.1:18080:80"] }',
    ].join('\n'), 'lo.yml').lab!;
    const rs = labRuleset(lab);
    const own = `"${labIfPrefix('lo')}*"`;
    const input = /chain input \{\n([^}]*)\}/.exec(rs)?.[1] ?? '';
    expect(input).toContain('type filter hook input priority -1; policy accept;');
    const rules = input.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('type'));
    expect(rules).toEqual([
      `iifname ${own} ip daddr 127.0.0.0/8 ct direction reply ct state established,related accept`,
      `iifname ${own} ip daddr 127.0.0.0/8 drop`,
    ]);
    // route_localnet is still what lets the host's 127.0.0.1:18080 reach the container.
    expect(buildPlan(lab).steps.some((s) => s.op === 'sysctl.set' && s.key.endsWith('.route_localnet'))).toBe(true);
  });
});

describe('iptables rules for coexisting with Docker', () => {
  const DOCKER = [
    '# Generated by iptables-save v1.8.9 (nf_tables)', '*filter', ':INPUT ACCEPT [0:0]', ':FORWARD DROP [0:0]', ':OUTPUT ACCEPT [0:0]',
    ':DOCKER - [0:0]', ':DOCKER-ISOLATION-STAGE-1 - [0:0]', ':DOCKER-USER - [0:0]',
    '-A FORWARD -j DOCKER-USER', '-A FORWARD -j DOCKER-ISOLATION-STAGE-1',
    '-A DOCKER-USER -o nlaaaaaa+ -m comment --comment "netlab lab old" -j ACCEPT',
    '-A DOCKER-USER -i nlaaaaaa+ -m comment --comment "netlab lab old" -j ACCEPT',
    '-A DOCKER-USER -i eth1 -m comment --comment "netlab lab oldish but not ours" -j DROP',
    '-A DOCKER-USER -j RETURN', 'COMMIT', '*nat', ':PREROUTING ACCEPT [0:0]', '-A PREROUTING -m comment --comment "netlab lab old" -j DOCKER', 'COMMIT',
  ].join('\n') + '\n';
  const PLAIN = '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n';
  const DROP_ONLY = PLAIN.replace(':FORWARD ACCEPT', ':FORWARD DROP');

  it('goes to DOCKER-USER when Docker made it, else to FORWARD only when its policy is DROP', () => {
    expect(iptAcceptChain(DOCKER)).toBe('DOCKER-USER');
    expect(iptAcceptChain(DROP_ONLY)).toBe('FORWARD');
    expect(iptAcceptChain(PLAIN)).toBeNull();
    expect(iptAcceptChain('')).toBeNull();
    expect(iptAcceptInput(PLAIN, 'x')).toBeNull();
  });

  it('two rules per lab, matching its whole interface prefix, tagged with its name', () => {
    const r = iptAcceptInput(DOCKER, 'web-1')!;
    const p = `${labIfPrefix('web-1')}+`;
    expect(r.chain).toBe('DOCKER-USER');
    expect(r.input).toBe(`*filter\n-I DOCKER-USER 1 -o ${p} -m comment --comment "netlab lab web-1" -j ACCEPT\n-I DOCKER-USER 1 -i ${p} -m comment --comment "netlab lab web-1" -j ACCEPT\nCOMMIT\n`);
    expect(iptAcceptInput(DROP_ONLY, 'web-1')!.input).toContain(`-I FORWARD 1 -i ${p} -m comment --comment "netlab lab web-1" -j ACCEPT`);
  });

  it('a second up replaces the rules an earlier run left instead of stacking them', () => {
    const r = iptAcceptInput(DOCKER, 'old')!;
    expect(r.input.split('\n').filter((l) => l.startsWith('-D '))).toEqual([
      '-D DOCKER-USER -o nlaaaaaa+ -m comment --comment "netlab lab old" -j ACCEPT',
      '-D DOCKER-USER -i nlaaaaaa+ -m comment --comment "netlab lab old" -j ACCEPT',
    ]);
  });

  it('removal finds the rules by their exact comment, in the filter table only', () => {
    expect(iptRemoveInput(DOCKER, (c) => c === iptComment('old'))).toBe([
      '*filter', '-D DOCKER-USER -o nlaaaaaa+ -m comment --comment "netlab lab old" -j ACCEPT',
      '-D DOCKER-USER -i nlaaaaaa+ -m comment --comment "netlab lab old" -j ACCEPT', 'COMMIT', '',
    ].join('\n'));
    expect(iptRemoveInput(DOCKER, (c) => c === iptComment('ol'))).toBeNull();
    expect(iptRemoveInput(PLAIN, () => true)).toBeNull();
    // cleanup: every lab's, nobody else's (the DROP rule's comment only starts like ours).
    expect(iptRemoveInput(DOCKER, isNetlabComment)!.split('\n').filter((l) => l.startsWith('-D '))).toEqual([
      '-D DOCKER-USER -o nlaaaaaa+ -m comment --comment "netlab lab old" -j ACCEPT',
      '-D DOCKER-USER -i nlaaaaaa+ -m comment --comment "netlab lab old" -j ACCEPT',
    ]);
    const all = parseIptablesSave(DOCKER).rules.filter((r) => r.comment?.startsWith('netlab lab '));
    expect(all.map((r) => r.chain)).toEqual(['DOCKER-USER', 'DOCKER-USER', 'DOCKER-USER']);
  });

  it('the plan accepts the lab\'s interfaces whenever it puts one in the host\'s namespace, with --as too', () => {
    for (const f of ['labs/bridge.yml', 'labs/isolated.yml', 'labs/overlay.yml']) {
      const steps = buildPlan(load(f)).steps.filter((s) => s.op === 'iptables.accept');
      expect(steps, f).toHaveLength(1);
    }
    const ov = load('labs/overlay.yml');
    const h1 = buildPlan(ov, { as: ov.hosts[0].name });
    expect(h1.steps.filter((s) => s.op === 'iptables.accept')).toHaveLength(1);
    expect(h1.steps.some((s) => s.op === 'nft.apply')).toBe(false);
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
  return { calls, api: { netnsAdd: (n) => rec(null, 'netnsAdd', n), ns, nftApply: (r) => rec(null, 'nftApply', r.split('\n')[0]), iptablesAccept: (l) => rec(null, 'iptablesAccept', l) } };
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
    expect(calls.at(-2)).toMatch(/^host nftApply table ip netlab_/);
    expect(calls.at(-1)).toBe('host iptablesAccept bridge');
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

describe('run-time state is not the model', () => {
  it('modelOf applies cables set down/up to a copy; the stored model is untouched', async () => {
    const { modelOf } = await import('../../controller/state.js');
    const { loadTopologyFile } = await import('../../topology/load.js');
    const path = await import('node:path');
    const lab = loadTopologyFile(path.resolve(import.meta.dirname, '../../labs/routed.yml')).lab!;
    const link = lab.links[0];
    const st = {
      version: 1 as const, lab: lab.name, file: lab.file, status: 'up' as const, pid: 1, createdAt: '', updatedAt: '',
      progress: { done: 0, total: 0, phase: '' }, error: null, model: lab,
      cables: { [`${link.a.node}:${link.a.iface}`]: false, [`${link.b.node}:${link.b.iface}`]: false },
    };
    const before = JSON.stringify(lab);
    const m = modelOf(st);
    expect(m.links[0].up).toBe(false);
    expect(m.nodes.find((n) => n.name === link.a.node)!.interfaces.find((f) => f.name === link.a.iface)!.up).toBe(false);
    expect(JSON.stringify(lab)).toBe(before);
    expect(modelOf({ ...st, cables: {} })).toBe(lab);
  });
});
