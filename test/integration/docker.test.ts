// Coexistence with Docker, for real: Debian's docker.io (installed by this test when missing)
// runs next to a lab. dockerd, on a machine whose ip_forward was 0, turns it on and sets the
// iptables FORWARD policy to DROP; with br_netfilter (bridge-nf-call-iptables=1) every bridged
// packet meets that policy, so without netlab's accept rules in DOCKER-USER a lab is dead even
// inside one bridge. The test shows both: all checks and the all-pairs matrix pass with netlab's
// rules, and a ping inside the bridge fails once they are deleted; `down` removes them.
// Also without Docker: a DROP FORWARD policy alone gets the rules in FORWARD, and with no
// iptables installed nothing is attempted.
//
// Where: dockerd and the labs run in a network namespace of this test (`nsenter --net`), which
// holds exactly what Docker changes in a namespace (its iptables chains and nat rules, the
// FORWARD policy, ip_forward, docker0, the namespace's bridge-nf-call-iptables), so other labs
// on this shared machine never see a DROP policy; netlab runs there as it would in the initial
// namespace (it works in the namespace it runs in). Removing that namespace undoes all of it;
// the test then requires the machine's own iptables and nft rulesets (other labs' tables aside)
// and bridge settings to be exactly as before, br_netfilter unloaded again if Docker loaded it,
// and no dockerd, containerd, mount or namespace of the test left.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckReport } from '../../checks/run.js';
import { labId } from '../../topology/names.js';
import { addLeakProbe, cgroupProbe, containerProcessProbe, expectNoLeaks, snapshot, type Snapshot } from '../helpers/leaks.js';
import { CLI, REPO, assertBuildFresh, isLabNetns, netnsList, sleep, type CliResult } from '../helpers/netlab.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('test/integration/docker.test.ts skipped: it needs root (it runs dockerd and labs)');

const RUN = randomBytes(3).toString('hex');
const PREFIX = `hd${RUN}-`;
const DOCKERD = '/usr/sbin/dockerd';
const COMMENT = (lab: string) => `netlab lab ${lab}`;

/** Runs a command in network namespace `ns` (nsenter: the mount namespace stays the machine's). */
function inNs(ns: string, argv: string[], o: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): CliResult {
  const t0 = performance.now();
  const r = spawnSync('nsenter', [`--net=/run/netns/${ns}`, ...argv], {
    cwd: REPO, input: o.input, encoding: 'utf8', maxBuffer: 1 << 28, timeout: o.timeoutMs ?? 60_000, env: { ...process.env, NO_COLOR: '1', ...o.env },
  });
  if (r.error) throw r.error;
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, ms: performance.now() - t0 };
}

function inNsOk(ns: string, argv: string[], o: { input?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const r = inNs(ns, argv, o);
  if (r.status !== 0) throw new Error(`${argv.join(' ')} in ${ns} exited with ${r.status ?? r.signal}:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** The machine's own rulesets and bridge settings, other netlab labs' tables left out (they
 *  come and go on a shared machine). */
function machineFirewall(): Record<string, string> {
  const save = spawnSync('iptables-save', [], { encoding: 'utf8' });
  const ruleset = execFileSync('nft', ['-j', 'list', 'ruleset'], { encoding: 'utf8', maxBuffer: 1 << 28 });
  const items = (JSON.parse(ruleset) as { nftables: Record<string, { table?: string; name?: string }>[] }).nftables;
  const foreign = (i: Record<string, { table?: string; name?: string }>) => {
    const v = Object.values(i)[0];
    const table = 'table' in i ? v?.name : v?.table;
    return typeof table === 'string' && table.startsWith('netlab_');
  };
  const bridgeDir = '/proc/sys/net/bridge';
  const bridge = fs.existsSync(bridgeDir) ? fs.readdirSync(bridgeDir).map((f) => `${f}=${fs.readFileSync(path.join(bridgeDir, f), 'utf8').trim()}`).join(' ') : 'absent';
  return {
    iptables: (save.stdout ?? '').split('\n').filter((l) => !l.startsWith('#')).join('\n'),
    // Counters move with traffic; what matters is which tables, chains, rules and policies exist.
    nft: JSON.stringify(items.filter((i) => !('metainfo' in i) && !foreign(i)), (k, v: unknown) => (k === 'counter' ? null : v)),
    bridge,
    docker0: String(spawnSync('ip', ['link', 'show', 'docker0'], { stdio: 'ignore' }).status === 0),
  };
}

/** GET /_ping on dockerd's socket: true when it answers OK. */
function dockerPing(sock: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ socketPath: sock, path: '/_ping', timeout: 1000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve(res.statusCode === 200 && body === 'OK'));
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => { req.destroy(); resolve(false); });
  });
}

/** Processes whose command line mentions `needle` (dockerd and the containerd it started). */
function processesMentioning(needle: string): string[] {
  const out: string[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ');
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      if (cmd.includes(needle) && stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z') out.push(`${d} ${cmd.trim()}`);
    } catch { /* gone */ }
  }
  return out;
}

function installDocker(): void {
  if (fs.existsSync(DOCKERD)) return;
  // Never start the service the package ships (on a systemd machine it would run in the
  // machine's own namespace, DROP policy and all): policy-rc.d says no to every start.
  const policy = '/usr/sbin/policy-rc.d';
  const madePolicy = !fs.existsSync(policy);
  if (madePolicy) fs.writeFileSync(policy, '#!/bin/sh\n# netlab docker.test.ts: no service starts while it installs docker.io\nexit 101\n', { mode: 0o755 });
  try {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const install = () => spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'docker.io'], { encoding: 'utf8', env, timeout: 600_000 });
    let r = install();
    if (r.status !== 0) {
      // A fresh machine has no package lists yet.
      spawnSync('apt-get', ['update', '-qq'], { encoding: 'utf8', env, timeout: 300_000 });
      r = install();
    }
    if (r.status !== 0) throw new Error(`apt-get install docker.io failed (${r.status}): ${r.stderr}`);
  } finally {
    if (madePolicy) fs.rmSync(policy, { force: true });
  }
}

describe.skipIf(!isRoot)('netlab next to Docker (docker.io from Debian): DROP FORWARD policy and br_netfilter', () => {
  let tmp = '';
  let before: Snapshot;
  let firewallBefore: Record<string, string>;
  let bridgeModuleBefore = false;
  const NS = `${PREFIX}dockerns`;
  const PLAIN_NS = `${PREFIX}dropns`;
  let dockerd: ChildProcess | null = null;
  const labs = new Set<string>();
  const env = () => ({ NETLAB_STATE_DIR: path.join(tmp, 'state') });
  const netlabIn = (ns: string, args: string[], extra: NodeJS.ProcessEnv = {}) => inNs(ns, [process.execPath, CLI, ...args], { env: { ...env(), ...extra }, timeoutMs: 120_000 });
  const netlabInOk = (ns: string, args: string[], extra: NodeJS.ProcessEnv = {}) => {
    const r = netlabIn(ns, args, extra);
    if (r.status !== 0) throw new Error(`netlab ${args.join(' ')} in ${ns} exited with ${r.status ?? r.signal}:\n${r.stdout}${r.stderr}`);
    return r;
  };
  const iptablesSave = (ns: string) => inNsOk(ns, ['iptables-save', '-t', 'filter']);
  const ourRules = (ns: string, lab: string) => iptablesSave(ns).split('\n').filter((l) => l.includes(`--comment "${COMMENT(lab)}"`));

  function newNs(name: string): void {
    execFileSync('ip', ['netns', 'add', name]);
    execFileSync('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    // A fresh Debian machine: no forwarding until Docker (or a lab with NAT) turns it on. Docker
    // sets the DROP policy only when it is the one that turns it on.
    inNsOk(name, ['sysctl', '-qw', 'net.ipv4.ip_forward=0']);
  }

  function writeLab(name: string, subnetBase: string): string {
    labs.add(name);
    const file = path.join(tmp, `${name}.yml`);
    fs.writeFileSync(file, [
      `name: ${name}`,
      'networks:',
      `  lan: { subnet: ${subnetBase}.1.0/24 }`,
      `  back: { subnet: ${subnetBase}.2.0/24, gateway: false }`,
      'nodes:',
      '  web:',
      '    networks: [lan]',
      '    command: [sh, -c, "mkdir -p /tmp/www && echo hello-next-to-docker > /tmp/www/index.html && exec httpd -f -p 80 -h /tmp/www"]',
      '  c1: { networks: [lan] }',
      '  c2: { networks: [lan] }',
      '  r: { networks: [lan, back] }',
      '  d1: { networks: [back] }',
      '  d2: { networks: [back] }',
      'checks:',
      '  - ping: { from: c1, to: c2 }',
      '  - ping: { from: c2, to: web }',
      '  - tcp: { from: c1, to: web, port: 80 }',
      '  - http: { from: c2, url: "http://web/", expect: { status: 200, contains: hello-next-to-docker } }',
      `  - ping: { from: c1, to: ${subnetBase}.1.1 }`,
      '  - ping: { from: d1, to: d2 }',
      '  - ping: { from: r, to: d1 }',
      '  - ping: { from: c1, to: d1, expect: fail }',
      '',
    ].join('\n'), { mode: 0o644 });
    return file;
  }

  const report = (r: CliResult): CheckReport => {
    try { return JSON.parse(r.stdout) as CheckReport; } catch { throw new Error(`not JSON (exit ${r.status}):\n${r.stdout}${r.stderr}`); }
  };

  beforeAll(async () => {
    assertBuildFresh();
    installDocker();
    addLeakProbe(cgroupProbe((d) => d.includes(`/netlab/${PREFIX}`)));
    addLeakProbe(containerProcessProbe((g) => g.includes(`/netlab/${PREFIX}`)));
    addLeakProbe({ name: 'dockerd of this test', list: () => (tmp ? processesMentioning(tmp) : []) });
    before = snapshot();
    firewallBefore = machineFirewall();
    bridgeModuleBefore = fs.existsSync('/proc/sys/net/bridge');
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-docker-'));
    fs.chmodSync(tmp, 0o755);
    newNs(NS);
    const d = path.join(tmp, 'docker');
    fs.mkdirSync(d);
    const sock = path.join(d, 'docker.sock');
    const log = fs.openSync(path.join(d, 'dockerd.log'), 'w');
    dockerd = spawn('nsenter', [`--net=/run/netns/${NS}`, DOCKERD,
      '--data-root', path.join(d, 'data'), '--exec-root', path.join(d, 'exec'), '--pidfile', path.join(d, 'docker.pid'),
      '-H', `unix://${sock}`, '--iptables=true', '--ip-forward=true'], { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    const deadline = Date.now() + 60_000;
    while (!(await dockerPing(sock))) {
      if (dockerd.exitCode !== null || Date.now() > deadline) {
        throw new Error(`dockerd did not come up (exit ${dockerd.exitCode}):\n${fs.readFileSync(path.join(d, 'dockerd.log'), 'utf8').slice(-3000)}`);
      }
      await sleep(200);
    }
  }, 900_000);

  afterAll(async () => {
    for (const lab of labs) {
      for (const ns of [NS, PLAIN_NS]) if (fs.existsSync(`/run/netns/${ns}`)) netlabIn(ns, ['down', lab]);
    }
    if (dockerd && dockerd.exitCode === null && dockerd.signalCode === null) {
      const exited = new Promise((r) => dockerd!.once('exit', r));
      dockerd.kill('SIGTERM');
      await Promise.race([exited, sleep(30_000)]);
      if (dockerd.exitCode === null && dockerd.signalCode === null) dockerd.kill('SIGKILL');
    }
    // containerd, started by dockerd, stops with it; bounded wait, then force.
    for (let i = 0; i < 100 && tmp && processesMentioning(tmp).length > 0; i++) await sleep(100);
    for (const p of tmp ? processesMentioning(tmp) : []) { try { process.kill(Number(p.split(' ')[0]), 'SIGKILL'); } catch { /* gone */ } }
    for (const ns of [NS, PLAIN_NS]) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    if (!bridgeModuleBefore && fs.existsSync('/proc/sys/net/bridge')) spawnSync('modprobe', ['-r', 'br_netfilter'], { stdio: 'ignore' });
    if (tmp) {
      for (const m of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m) => m?.startsWith(tmp)).reverse()) {
        spawnSync('umount', ['-l', m], { stdio: 'ignore' });
      }
      fs.rmSync(tmp, { recursive: true, force: true });
    }
    expect(machineFirewall()).toEqual(firewallBefore);
    const ids = [...labs].map(labId);
    await expectNoLeaks(before, { only: (_p, item) => item.includes(PREFIX) || ids.some((id) => item.includes(id)) || (tmp !== '' && item.includes(tmp)) });
  }, 120_000);

  it('dockerd set the conditions that break labs: FORWARD policy DROP, bridge-nf-call-iptables=1, a DOCKER-USER chain', () => {
    const save = iptablesSave(NS);
    expect(save).toContain(':FORWARD DROP');
    expect(save).toContain(':DOCKER-USER - ');
    expect(save).toContain('-A FORWARD -j DOCKER-USER');
    expect(inNsOk(NS, ['cat', '/proc/sys/net/bridge/bridge-nf-call-iptables']).trim()).toBe('1');
    expect(inNsOk(NS, ['ip', '-br', 'link', 'show', 'docker0'])).toContain('docker0');
  });

  it('a lab (a bridge of four nodes, an internal network) passes its checks and the all-pairs matrix; without netlab\'s DOCKER-USER rules a ping inside the bridge fails; down removes them', () => {
    const lab = `${PREFIX}lab`;
    const file = writeLab(lab, '10.77');
    netlabInOk(NS, ['up', file]);
    const rules = ourRules(NS, lab);
    const prefix = `nl${labId(lab)}+`;
    expect(rules.sort()).toEqual([
      `-A DOCKER-USER -i ${prefix} -m comment --comment "${COMMENT(lab)}" -j ACCEPT`,
      `-A DOCKER-USER -o ${prefix} -m comment --comment "${COMMENT(lab)}" -j ACCEPT`,
    ]);
    // Docker's RETURN stays last: ours come before it.
    const userChain = iptablesSave(NS).split('\n').filter((l) => l.startsWith('-A DOCKER-USER'));
    expect(userChain.at(-1)).toBe('-A DOCKER-USER -j RETURN');

    const checks = report(netlabIn(NS, ['check', lab, '--json']));
    expect(checks.outcomes).toHaveLength(8);
    for (const o of checks.outcomes) expect(o.pass, `${o.label}: ${o.detail}`).toBe(true);
    const matrix = report(netlabIn(NS, ['check', lab, '--matrix', '--json']));
    expect(matrix.outcomes).toHaveLength(6 * 5);
    for (const o of matrix.outcomes) expect(o.pass, `${o.label}: ${o.detail}`).toBe(true);
    expect(matrix.outcomes.filter((o) => o.observed === 'reach').length).toBeGreaterThanOrEqual(4 * 3 + 3 * 2);

    // Not vacuous: take netlab's rules out and traffic inside the bridge dies at Docker's policy.
    const dels = rules.map((l) => l.replace(/^-A /, '-D '));
    inNsOk(NS, ['iptables-restore', '-w', '10', '--noflush'], { input: `*filter\n${dels.join('\n')}\nCOMMIT\n` });
    const broken = report(netlabIn(NS, ['check', lab, '--ping', 'c1:c2', '--json']));
    expect(broken.outcomes[0].observed).toBe('fail');
    inNsOk(NS, ['iptables-restore', '-w', '10', '--noflush'], { input: `*filter\n${rules.map((l) => l.replace(/^-A DOCKER-USER /, '-I DOCKER-USER 1 ')).join('\n')}\nCOMMIT\n` });
    expect(report(netlabIn(NS, ['check', lab, '--ping', 'c1:c2', '--json'])).outcomes[0].observed).toBe('reach');

    netlabInOk(NS, ['down', lab]);
    expect(ourRules(NS, lab)).toEqual([]);
    expect(iptablesSave(NS).split('\n').filter((l) => l.startsWith('-A DOCKER-USER'))).toEqual(['-A DOCKER-USER -j RETURN']);
    expect(netnsList().filter((n) => isLabNetns(lab, n))).toEqual([]);
  }, 300_000);

  it('down finds the rules by their comment alone, with no state left (as after a crash between the rules and the state)', () => {
    const lab = `${PREFIX}crash`;
    const file = writeLab(lab, '10.78');
    netlabInOk(NS, ['up', file]);
    const rules = ourRules(NS, lab);
    expect(rules).toHaveLength(2);
    netlabInOk(NS, ['down', lab]);
    // Put back what a run killed after adding its rules would leave: the rules, no state, no lab.
    const foreign = '-A DOCKER-USER -i eth9 -m comment --comment "not netlab" -j ACCEPT';
    const toInsert = [...rules, foreign].map((l) => l.replace(/^-A DOCKER-USER /, '-I DOCKER-USER 1 '));
    inNsOk(NS, ['iptables-restore', '-w', '10', '--noflush'], { input: `*filter\n${toInsert.join('\n')}\nCOMMIT\n` });
    expect(fs.existsSync(path.join(tmp, 'state', lab))).toBe(false);
    expect(netlabInOk(NS, ['down', lab]).stdout).toContain('is down: removed 0 namespaces, 2 iptables rules');
    expect(ourRules(NS, lab)).toEqual([]);
    // Only netlab's own rules go.
    expect(iptablesSave(NS)).toContain(foreign);
    inNsOk(NS, ['iptables-restore', '-w', '10', '--noflush'], { input: `*filter\n${foreign.replace('-A ', '-D ')}\nCOMMIT\n` });
  }, 300_000);

  it('without Docker: a DROP FORWARD policy alone gets the rules in FORWARD; with no iptables installed, nothing is tried and up still works', () => {
    newNs(PLAIN_NS);
    inNsOk(PLAIN_NS, ['iptables', '-w', '-P', 'FORWARD', 'DROP']);
    const lab = `${PREFIX}plain`;
    const file = writeLab(lab, '10.79');
    netlabInOk(PLAIN_NS, ['up', file]);
    expect(ourRules(PLAIN_NS, lab).map((l) => l.split(' ').slice(0, 4).join(' ')).sort()).toEqual([
      `-A FORWARD -i nl${labId(lab)}+`, `-A FORWARD -o nl${labId(lab)}+`,
    ]);
    expect(report(netlabIn(PLAIN_NS, ['check', lab, '--ping', 'c1:c2', '--json'])).outcomes[0].observed).toBe('reach');
    netlabInOk(PLAIN_NS, ['down', lab]);
    expect(ourRules(PLAIN_NS, lab)).toEqual([]);
    // No iptables binary: up and down neither fail nor add anything (the lab is then at the
    // mercy of the DROP policy, which only an iptables user could have set).
    const missing = { NETLAB_IPTABLES: path.join(tmp, 'no-such-iptables') };
    netlabInOk(PLAIN_NS, ['up', file], missing);
    expect(ourRules(PLAIN_NS, lab)).toEqual([]);
    netlabInOk(PLAIN_NS, ['down', lab], missing);
    inNsOk(PLAIN_NS, ['iptables', '-w', '-P', 'FORWARD', 'ACCEPT']);
  }, 300_000);
});
