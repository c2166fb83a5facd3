// A node's stats from the web view against a real lab, as root: `netlab web` (a child process)
// serving a lab of two containers on a bridge network this file brings up. GET
// /api/labs/LAB/nodes/NODE/stats must be the node's entry of `netlab stats --json`, read from its
// cgroups and namespace (memory charged, pids, eth0's counters); unknown nodes are 404.
//
// Safety on a shared machine: the lab is named ws<run>, its subnet comes from a 10.X.0.0/16
// block nothing routes (freeOctets), its network has no gateway on the machine, and only
// `down LAB` of this file's lab is used for cleanup.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labId } from '../../topology/names.js';
import { addLeakProbe, cgroupProbe, containerProcessProbe, expectNoLeaks, snapshot, type Snapshot } from '../helpers/leaks.js';
import { REPO, forceRemoveLab, freeOctets, labLeftovers, netlab, netlabOk, prng, settleLeftovers } from '../helpers/netlab.js';
import { api, startWeb, type WebChild } from '../helpers/web.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('test/integration/web-stats.test.ts skipped: it needs root (it builds a lab in the real kernel)');

const RUN = randomBytes(3).toString('hex');
const rand = prng(Number(process.env.NETLAB_TEST_SEED ?? 0x77737461));

describe.skipIf(!isRoot)('netlab web: a node\'s stats from the API', () => {
  const lab = `ws${RUN}`;
  let tmp = '';
  let before: Snapshot;
  let web: WebChild | null = null;

  beforeAll(async () => {
    for (const f of ['dist/cli/main.js', 'dist/web/server/serve.js', 'dist/web/app.js']) {
      if (!fs.existsSync(path.join(REPO, f))) throw new Error(`${f} is missing: run \`npm run build\` first`);
    }
    addLeakProbe(cgroupProbe((d) => d.includes(`/netlab/${lab}`)));
    addLeakProbe(containerProcessProbe((g) => g.includes(`/netlab/${lab}`)));
    before = snapshot();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-web-stats-'));
    const [o] = freeOctets(1, rand);
    const file = path.join(tmp, `${lab}.yml`);
    fs.writeFileSync(file, `name: ${lab}
networks:
  lan: { driver: bridge, subnet: 10.${o}.0.0/24, gateway: false }
nodes:
  a: { networks: { lan: { ipv4: 10.${o}.0.10 } } }
  b: { networks: [lan] }
`);
    netlabOk(['up', file]);
    web = await startWeb([lab]);
  });

  afterAll(async () => {
    const code = await web?.stop();
    if (labLeftovers(lab).length) netlab(['down', lab]);
    let left = await settleLeftovers(lab);
    if (left.length) { console.warn(`removing what is left of ${lab} without netlab: ${(await forceRemoveLab(lab)).join('; ')}`); left = labLeftovers(lab); }
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    expect(code, `netlab web exit code (stderr: ${web?.stderr()})`).toBe(0);
    expect(left).toEqual([]);
    const id = labId(lab);
    await expectNoLeaks(before, { only: (probe, item) => probe === 'child processes' || item.includes(lab) || item.startsWith(`nl${id}`) || item === `ip netlab_${id}` });
  });

  it('GET nodes/a/stats: CPU time and percent, memory charged, pids, eth0\'s counters; twice, the second since the first', async () => {
    const r = await api(web!, 'GET', `/api/labs/${lab}/nodes/a/stats`);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const s = r.body;
    expect(Object.keys(s).sort()).toEqual(['cpu', 'memory', 'name', 'net', 'pids']);
    expect(s.name).toBe('a');
    expect(s.cpu).toEqual({ usage_seconds: expect.any(Number), percent: expect.any(Number) });
    expect(s.cpu.percent).toBeGreaterThanOrEqual(0);
    expect(s.memory.bytes).toBeGreaterThan(0);
    expect(s.memory.limit === null || s.memory.limit > 0).toBe(true);
    expect(s.pids).toBeGreaterThanOrEqual(1);
    expect(s.net).toEqual([{ iface: 'eth0', rx_bytes: expect.any(Number), tx_bytes: expect.any(Number) }]);
    const again = await api(web!, 'GET', `/api/labs/${lab}/nodes/a/stats`);
    expect(again.status).toBe(200);
    expect(again.body.cpu.percent).toEqual(expect.any(Number));
    expect(again.body.cpu.usage_seconds).toBeGreaterThanOrEqual(s.cpu.usage_seconds);
  });

  it('an unknown node or lab is 404', async () => {
    expect((await api(web!, 'GET', `/api/labs/${lab}/nodes/ghost/stats`)).status).toBe(404);
    expect((await api(web!, 'GET', `/api/labs/nx${RUN}/nodes/a/stats`)).status).toBe(404);
  });
});
