// The web view's API against a real lab, as root: `netlab web` (a child process) serving a copy
// of labs/bridge.yml that this file brings up. Every endpoint, the refusals (no token, foreign
// Origin), and the live updates over server-sent events, each from its real cause: the lab
// appearing and disappearing (/run/netlab), a cable set down through the API and another behind
// netlab's back (netlink link notifications from the lab's namespaces), and a container killed
// (its exit file). What the server reports is compared with the system's own tools (`ip -j`).
//
// Safety on a shared machine: the lab is named w<run>-..., its subnet is a 10.X.0.0/16 block
// nothing routes (freeOctets), only `down LAB` of this file's lab is used for cleanup, and the
// server only ever touches the labs it is asked about.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labId } from '../../topology/names.js';
import { addLeakProbe, cgroupProbe, containerProcessProbe, expectNoLeaks, snapshot, type Snapshot } from '../helpers/leaks.js';
import { REPO, forceRemoveLab, freeOctets, ipj, labLeftovers, link, netlab, netlabOk, prng, settleLeftovers, type IpAddr } from '../helpers/netlab.js';
import { api, events, startWeb, type EventStream, type WebChild } from '../helpers/web.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('test/integration/web.test.ts skipped: it needs root (it builds a lab in the real kernel)');

const RUN = randomBytes(3).toString('hex');
const rand = prng(Number(process.env.NETLAB_TEST_SEED ?? 0x77656231));

describe.skipIf(!isRoot)('netlab web: the API against a real lab', () => {
  const lab = `w${RUN}-web`;
  let tmp = '';
  let file = '';
  let octet = 0;
  let before: Snapshot;
  let web: WebChild | null = null;
  let all: EventStream | null = null;
  let mine: EventStream | null = null;
  const ns = (node: string) => `netlab.${lab}.${node}`;
  const findLink = (g: any, id: string) => g.links.find((l: any) => l.id === id);

  beforeAll(async () => {
    for (const f of ['dist/cli/main.js', 'dist/web/server/serve.js', 'dist/web/app.js']) {
      if (!fs.existsSync(path.join(REPO, f))) throw new Error(`${f} is missing: run \`npm run build\` first`);
    }
    addLeakProbe(cgroupProbe((d) => d.includes(`/netlab/w${RUN}-`)));
    addLeakProbe(containerProcessProbe((g) => g.includes(`/netlab/w${RUN}-`)));
    before = snapshot();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-web-'));
    fs.mkdirSync(path.join(tmp, 'www'));
    fs.writeFileSync(path.join(tmp, 'www', 'index.html'), `hello from netlab web test ${RUN}\n`);
    [octet] = freeOctets(1, rand);
    const text = fs.readFileSync(path.join(REPO, 'labs/bridge.yml'), 'utf8').replace(/^name: bridge\s*$/m, `name: ${lab}`).split('10.10.').join(`10.${octet}.`);
    file = path.join(tmp, `${lab}.yml`);
    fs.writeFileSync(file, text);
    // Every lab on the machine, before ours exists: it must appear.
    web = await startWeb([]);
    all = await events(web);
    await all.next('labs');
  });

  afterAll(async () => {
    all?.close();
    mine?.close();
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

  it('a lab brought up while the server runs appears (labs event), live', async () => {
    netlabOk(['up', file]);
    const e = await all!.next('labs', (x) => x.labs.some((l: any) => l.name === lab && l.live), 10_000);
    expect(e.labs.find((l: any) => l.name === lab)).toMatchObject({ status: 'up', live: true, nodes: 4, file });
    const r = await api(web!, 'GET', '/api/labs');
    expect(r.status).toBe(200);
    expect(r.body.labs.map((l: any) => l.name)).toContain(lab);
  });

  it('GET the graph: processes, kernel interfaces, addresses and routes, cable state, as ip reports them', async () => {
    const r = await api(web!, 'GET', `/api/labs/${lab}`);
    expect(r.status).toBe(200);
    const g = r.body;
    expect(g).toMatchObject({ lab, live: true, status: 'up' });
    expect(g.nodes.map((n: any) => n.id).sort()).toEqual(['machine', 'net:lan', 'node:client1', 'node:client2', 'node:solo', 'node:web']);
    for (const n of g.nodes.filter((x: any) => x.kind === 'container')) {
      expect(n.process.state, n.name).toBe('running');
      expect(n.process.pid).toBeGreaterThan(1);
      expect(fs.existsSync(`/proc/${n.process.pid}`)).toBe(true);
    }
    const webNode = g.nodes.find((n: any) => n.id === 'node:web');
    const kernelAddrs = ipj<IpAddr>(['addr', 'show', 'dev', 'eth0'], ns('web'))[0].addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`);
    expect(webNode.interfaces.find((f: any) => f.name === 'eth0')).toMatchObject({ addresses: kernelAddrs, up: true, carrier: true, network: 'lan' });
    expect(kernelAddrs).toEqual([`10.${octet}.0.10/24`]);
    expect(webNode.routes).toContainEqual({ dst: '0.0.0.0/0', via: `10.${octet}.0.1`, dev: 'eth0' });
    expect(g.nodes.find((n: any) => n.id === 'node:solo').interfaces.map((f: any) => f.name)).toEqual(['lo']);
    expect(g.links.map((l: any) => [l.id, l.state]).sort()).toEqual([['gw:lan', 'up'], ['if:client1/eth0', 'up'], ['if:client2/eth0', 'up'], ['if:web/eth0', 'up']]);
  });

  it('GET predictions: the matrix and the declared checks, predicted', async () => {
    const r = await api(web!, 'GET', `/api/labs/${lab}/predictions`);
    expect(r.status).toBe(200);
    expect(r.body.nodes).toEqual(['web', 'client1', 'client2', 'solo']);
    expect(r.body.matrix.filter((v: number) => v === 1)).toHaveLength(6);
    expect(r.body.checks.outcomes).toHaveLength(6);
    const one = await api(web!, 'GET', `/api/labs/${lab}/predictions?from=solo&to=web`);
    expect(one.body).toMatchObject({ reach: false });
  });

  it('refuses changes without the token (401) or from a foreign Origin (403)', async () => {
    const body = { endpoint: 'web:eth0', state: 'down' };
    for (const p of [`/api/labs/${lab}/checks`, `/api/labs/${lab}/links`]) {
      const none = await api(web!, 'POST', p, { body, headers: { Origin: web!.base } });
      expect(none.status, p).toBe(401);
      expect(none.body.error).toMatch(/token required/);
      const wrong = await api(web!, 'POST', p, { body, headers: { Origin: web!.base, 'X-Netlab-Token': 'nope' } });
      expect(wrong.status).toBe(401);
      const foreign = await api(web!, 'POST', p, { body, headers: { Origin: 'http://evil.example', 'X-Netlab-Token': web!.token } });
      expect(foreign.status).toBe(403);
      expect(foreign.body.error).toMatch(/foreign Origin/);
      const noOrigin = await api(web!, 'POST', p, { body, headers: { 'X-Netlab-Token': web!.token } });
      expect(noOrigin.status).toBe(403);
    }
    // Nothing happened: the cable is still up.
    expect(link(ns('web'), 'eth0')!.flags).toContain('UP');
    // A DNS-rebound name (fetch cannot set Host: plain http).
    const rebound = await new Promise<number>((resolve, reject) => {
      const u = new URL(web!.base);
      http.get({ host: u.hostname, port: u.port, path: '/api/labs', headers: { Host: `evil.example:${u.port}` } }, (res) => { res.resume(); resolve(res.statusCode ?? 0); }).on('error', reject);
    });
    expect(rebound).toBe(403);
  });

  it('POST checks runs the lab\'s checks in the kernel: all pass and agree with the prediction', async () => {
    const r = await api(web!, 'POST', `/api/labs/${lab}/checks`, { own: true });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ lab, mode: 'checks', observed: true, passed: 6, failed: 0, disagreements: 0 });
    expect((await api(web!, 'GET', `/api/labs/${lab}/checks`)).body.passed).toBe(6);
    const m = await api(web!, 'POST', `/api/labs/${lab}/checks?matrix=1`, { own: true });
    expect(m.status).toBe(200);
    expect(m.body).toMatchObject({ mode: 'matrix', observed: true, disagreements: 0 });
    expect(m.body.outcomes).toHaveLength(12);
  });

  it('POST links sets a cable down (ip agrees) and the page\'s stream gets the new graph; checks then fail', async () => {
    mine = await events(web!, `?lab=${lab}`);
    const g0 = await mine.next('graph');
    expect(findLink(g0.graph, 'if:web/eth0').state).toBe('up');
    const t0 = performance.now();
    const r = await api(web!, 'POST', `/api/labs/${lab}/links`, { own: true, body: { endpoint: 'web:eth0', state: 'down' } });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(link(ns('web'), 'eth0')!.flags).not.toContain('UP');
    const g1 = await mine.next('graph', (e) => findLink(e.graph, 'if:web/eth0').state === 'down', 2000);
    console.log(`web.test.ts: link down -> graph event in ${Math.round(performance.now() - t0)} ms`);
    expect(findLink(g1.graph, 'if:web/eth0').why).toMatch(/admin down|no carrier/);
    const c = await api(web!, 'POST', `/api/labs/${lab}/checks`, { own: true });
    expect(c.body.failed).toBeGreaterThan(0); // the http check expects status 200 explicitly
    await mine.next('checks');
    const up = await api(web!, 'POST', `/api/labs/${lab}/links`, { own: true, body: { endpoint: 'web:eth0', state: 'up' } });
    expect(up.status).toBe(200);
    await mine.next('graph', (e) => findLink(e.graph, 'if:web/eth0').state === 'up', 2000);
    expect((await api(web!, 'POST', `/api/labs/${lab}/links`, { own: true, body: { endpoint: 'web:eth7', state: 'down' } })).status).toBe(404);
  });

  it('a cable set down behind netlab\'s back shows through netlink alone', async () => {
    const t0 = performance.now();
    const ipDown = spawnSync('ip', ['-n', ns('client1'), 'link', 'set', 'eth0', 'down']);
    expect(ipDown.status).toBe(0);
    const g = await mine!.next('graph', (e) => findLink(e.graph, 'if:client1/eth0').state === 'down', 2000);
    console.log(`web.test.ts: ip link set down -> graph event in ${Math.round(performance.now() - t0)} ms`);
    expect(g.graph.nodes.find((n: any) => n.name === 'client1').interfaces.find((f: any) => f.name === 'eth0').up).toBe(false);
    spawnSync('ip', ['-n', ns('client1'), 'link', 'set', 'eth0', 'up']);
    await mine!.next('graph', (e) => findLink(e.graph, 'if:client1/eth0').state === 'up', 2000);
  });

  it('a container that exits shows as exited (its exit file)', async () => {
    const g = (await api(web!, 'GET', `/api/labs/${lab}`)).body;
    const pid = g.nodes.find((n: any) => n.name === 'client2').process.pid;
    process.kill(pid, 'SIGKILL');
    const e = await mine!.next('graph', (x) => x.graph.nodes.find((n: any) => n.name === 'client2').process.state === 'exited', 3000);
    expect(e.graph.nodes.find((n: any) => n.name === 'client2').process.exit).toMatch(/killed 9/);
  });

  it('the lab brought down disappears: gone for its page, out of the labs list, namespaces released', async () => {
    const health0 = (await api(web!, 'GET', '/api/health')).body;
    expect(health0.source.monitors.filter((n: string) => n.includes(lab)).length).toBeGreaterThanOrEqual(4);
    netlabOk(['down', lab]);
    await mine!.next('gone', (e) => e.lab === lab, 10_000);
    await all!.next('labs', (e) => !e.labs.some((l: any) => l.name === lab), 10_000);
    expect((await api(web!, 'GET', `/api/labs/${lab}`)).status).toBe(404);
    const health = (await api(web!, 'GET', '/api/health')).body;
    expect(health.source.monitors.filter((n: string) => n.includes(lab))).toEqual([]);
    expect(await settleLeftovers(lab)).toEqual([]);
  });
});
