// Out of the box at scale: a lab of 40 nodes on one network needs more neighbour (ARP) entries
// than the kernel's default gc_thresh2 (512) keeps, so `up` raises gc_thresh1..3 for it, its
// full ping matrix passes (`check --matrix --summary`: counts and the failing pairs only), and
// the last `down` puts the machine's values back. The lab keeps its state in a directory of its
// own (NETLAB_STATE_DIR), so it is the last lab there even while other labs (the quick start's)
// are up in /run/netlab.
//
// Safety on a shared machine: the lab is nb<run>, its subnet is a 10.X block nothing routes
// (freeOctets), gateway false (no host address), every ping stays inside its namespaces; the
// thresholds are put back in afterAll whatever happened.
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addLeakProbe, cgroupProbe, containerProcessProbe, expectNoLeaks, snapshot, type Snapshot } from '../helpers/leaks.js';
import { CLI, REPO, freeOctets, prng } from '../helpers/netlab.js';

const isRoot = process.getuid?.() === 0;
const RUN = randomBytes(3).toString('hex');
const rand = prng(Number(process.env.NETLAB_TEST_SEED ?? 0x6e656967));
const KEYS = [1, 2, 3].map((i) => `/proc/sys/net/ipv4/neigh/default/gc_thresh${i}`);
const read = () => KEYS.map((k) => Number(fs.readFileSync(k, 'utf8').trim()));

describe.skipIf(!isRoot)('neighbour-table thresholds follow the labs', () => {
  const lab = `nb${RUN}`;
  let tmp = '';
  let stateDir = '';
  let file = '';
  let original: number[] = [];
  let before: Snapshot;
  const cli = (args: string[], timeoutMs = 120_000) => spawnSync(process.execPath, [CLI, ...args], { cwd: REPO, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 1 << 26, env: { ...process.env, NETLAB_STATE_DIR: stateDir, NO_COLOR: '1' } });

  beforeAll(() => {
    addLeakProbe(cgroupProbe((d) => d.includes(`/netlab/${lab}/`)));
    addLeakProbe(containerProcessProbe((g) => g.includes(`/netlab/${lab}/`)));
    before = snapshot();
    original = read();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-neigh-'));
    stateDir = path.join(tmp, 'state');
    const [o] = freeOctets(1, rand);
    file = path.join(tmp, `${lab}.yml`);
    const nodes = Array.from({ length: 40 }, (_, i) => `  n${i}: { networks: [lan] }`);
    fs.writeFileSync(file, [`name: ${lab}`, 'networks:', `  lan: { subnet: 10.${o}.0.0/24, gateway: false }`, 'nodes:', ...nodes, ''].join('\n'), { mode: 0o644 });
  });

  afterAll(async () => {
    cli(['down', lab]);
    // Whatever happened, the machine keeps its own values.
    if (original.length === 3 && read().join() !== original.join()) for (const i of [0, 1, 2]) fs.writeFileSync(KEYS[i], String(original[i]));
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    await expectNoLeaks(before, { only: (probe, item) => probe === 'child processes' || item.includes(`netlab.${lab}.`) || item.includes(`/netlab/${lab}/`) });
  });

  it('up raises gc_thresh1..3 for 40 nodes on one network, the whole matrix reaches, down restores them', () => {
    const needed = 40 * 41;
    const up = cli(['up', file, '--json']);
    expect(up.status, up.stderr).toBe(0);
    const u = JSON.parse(up.stdout) as { lab: string; status: string; nodes: { name: string; interfaces: { name: string; address: string | null }[] }[] };
    expect(u).toMatchObject({ lab, status: 'up' });
    expect(u.nodes).toHaveLength(40);
    expect(u.nodes[0].interfaces[0]).toEqual({ name: 'eth0', address: expect.stringMatching(/^10\.\d+\.0\.\d+\/24$/) });
    const raised = read();
    expect(raised[1]).toBeGreaterThanOrEqual(needed);
    expect(raised[2]).toBeGreaterThan(raised[1]);
    expect(raised[0]).toBeLessThanOrEqual(raised[1]);
    const m = cli(['check', lab, '--matrix', '--summary', '--timeout', '2000'], 300_000);
    expect(m.status, m.stdout + m.stderr).toBe(0);
    expect(m.stdout).toMatch(/^1560 pairs: 1560 reach, 0 do not \(observed\)\n/);
    expect(m.stdout.split('\n').filter((l) => l.startsWith('!'))).toEqual([]);
    const down = cli(['down', lab, '--json']);
    expect(down.status, down.stderr).toBe(0);
    const d = JSON.parse(down.stdout) as { lab: string; status: string; netns: string[]; exits: Record<string, string> };
    expect(d).toMatchObject({ lab, status: 'down' });
    expect(d.netns).toHaveLength(40);
    expect(d.exits.n0).toBe('exited, code 0 (stopped by SIGTERM)');
    expect(read()).toEqual(original);
    expect(fs.existsSync(path.join(stateDir, 'gc_thresh.before'))).toBe(false);
  }, 400_000);
});
