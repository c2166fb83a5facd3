// Connectivity checks and the reachability simulator, through the real CLI, as root, against
// real labs: `netlab check` (the lab's checks, --matrix, ad hoc --ping/--tcp/--http/--dns,
// --predict-only, --explain, --json, --junit) and `up --check`. What the simulator predicts from
// the model is compared with what the kernel does: they must agree on the example labs, agree
// again on a lab broken on purpose (a router without a route), and visibly disagree once the
// test tampers with a running lab behind netlab's back.
//
// Safety on a shared machine: every lab is named c<run>-<what><n>, its subnets are 10.X.0.0/16
// blocks that nothing in the root namespace uses (freeOctets), and only `down LAB` of this
// file's own labs is used for cleanup (never `netlab cleanup`, except as a last resort when no
// other netlab object exists). Each test asserts its labs left nothing behind.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { labId } from '../../topology/names.js';
import type { CheckOutcome, CheckReport } from '../../checks/run.js';
import { addLeakProbe, cgroupProbe, containerProcessProbe, expectNoLeaks, snapshot, type Snapshot } from '../helpers/leaks.js';
import { REPO, forceRemoveLab, foreignNetlabObjects, freeOctets, labLeftovers, netlab, netlabOk, prng, settleLeftovers, type CliResult, assertBuildFresh, loadModel, addrOf, downAndCheck, downEach } from '../helpers/netlab.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('test/integration/checks.test.ts skipped: it needs root (it builds labs in the real kernel and probes them)');

const RUN = randomBytes(3).toString('hex');
const SEED = Number(process.env.NETLAB_TEST_SEED ?? 0x636b7331);
const rand = prng(SEED);
const NOBODY = 65534;

describe.skipIf(!isRoot)('netlab check: predictions and observations on real labs', () => {
  let tmp = '';
  let before: Snapshot;
  const myLabs = new Set<string>();
  const testLabs = new Set<string>();
  let counter = 0;

  function newLab(what: string): string {
    const name = `c${RUN}-${what}${counter++}`;
    if (!/^[a-z][a-z0-9-]{0,31}$/.test(name)) throw new Error(`test bug: bad lab name ${name}`);
    myLabs.add(name);
    testLabs.add(name);
    return name;
  }

  function writeTopology(lab: string, text: string): string {
    const file = path.join(tmp, `${lab}.yml`);
    fs.writeFileSync(file, text, { mode: 0o644 });
    return file;
  }

  /** labs/<example>.yml as text under a new lab name, with substitutions (subnets). */
  function exampleText(example: string, lab: string, subs: [string | RegExp, string][] = []): string {
    let text = fs.readFileSync(path.join(REPO, 'labs', `${example}.yml`), 'utf8');
    const nameLine = new RegExp(`^name: ${example}\\s*$`, 'm');
    if (!nameLine.test(text)) throw new Error(`labs/${example}.yml has no "name: ${example}" line`);
    text = text.replace(nameLine, `name: ${lab}`);
    for (const [from, to] of subs) {
      const hit = typeof from === 'string' ? text.includes(from) : from.test(text);
      if (!hit) throw new Error(`labs/${example}.yml has no "${from}" to replace`);
      text = typeof from === 'string' ? text.split(from).join(to) : text.replace(from, to);
    }
    return text;
  }

  /** routed.yml with its four subnets moved into 10.<o>.0.0/16: lan1 10.o.1/24, r1-r2 10.o.12/30,
   *  r2-r3 10.o.23/30, h3's link 10.o.3/24. */
  const routedSubs = (o: number): [string, string][] => [
    ['10.1.0.', `10.${o}.1.`], ['10.0.12.', `10.${o}.12.`], ['10.0.23.', `10.${o}.23.`], ['10.3.0.', `10.${o}.3.`],
  ];

  /** The CLI's JSON report; fails with the output when it is not JSON. */
  function report(r: CliResult): CheckReport {
    try {
      return JSON.parse(r.stdout) as CheckReport;
    } catch {
      throw new Error(`not JSON (exit ${r.status}):\n${r.stdout}${r.stderr}`);
    }
  }

  const pair = (x: CheckOutcome) => `${x.from}->${x.target}`;
  const byPair = (r: CheckReport) => new Map(r.outcomes.map((x) => [pair(x), x]));

  beforeAll(() => {
    assertBuildFresh();
    addLeakProbe(cgroupProbe((d) => d.includes(`/netlab/c${RUN}-`)));
    addLeakProbe(containerProcessProbe((g) => g.includes(`/netlab/c${RUN}-`)));
    before = snapshot();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-chk-'));
    fs.chmodSync(tmp, 0o755); // uid 65534 reads topology files here (--predict-only without root)
    fs.mkdirSync(path.join(tmp, 'www'), { mode: 0o755 });
    fs.writeFileSync(path.join(tmp, 'www', 'index.html'), `<h1>hello from netlab</h1> test run ${RUN}\n`, { mode: 0o644 });
    console.log(`checks.test.ts: run ${RUN}, seed ${SEED} (set NETLAB_TEST_SEED to replay), topologies in ${tmp}`);
  });

  afterEach(async () => {
    expect(await downEach(testLabs), 'labs of this test left objects behind').toEqual([]);
  });

  afterAll(async () => {
    let left: string[] = [];
    for (const lab of myLabs) left.push(...(await downAndCheck(lab)).map((x) => `${lab}: ${x}`));
    if (left.length > 0) {
      const foreign = foreignNetlabObjects(myLabs);
      if (foreign.length === 0) {
        netlab(['cleanup']);
        left = [];
        for (const lab of myLabs) left.push(...(await settleLeftovers(lab)).map((x) => `${lab}: ${x}`));
      } else {
        console.warn(`not running netlab cleanup: other netlab objects exist (${foreign.slice(0, 5).join(', ')})`);
      }
    }
    for (const lab of myLabs) {
      if (labLeftovers(lab).length === 0) continue;
      console.warn(`removing what is left of ${lab} without netlab: ${(await forceRemoveLab(lab)).join('; ')}`);
    }
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    expect(left, 'labs of this file left objects behind').toEqual([]);
    const ids = [...myLabs].map((lab) => labId(lab));
    const ours = (probe: string, item: string) => probe === 'child processes'
      || item.includes(`netlab.c${RUN}-`) || item.includes(`/netlab/c${RUN}-`)
      || ids.some((id) => item.startsWith(`nl${id}`) || item === `ip netlab_${id}`);
    await expectNoLeaks(before, { only: ours });
  });

  // ------------------------------------------------------------------ bridge.yml

  it('bridge.yml copy: `up --check` exits 0; `check LAB --json` passes every check, and the http check got status 200 from busybox httpd in web', () => {
    const lab = newLab('br');
    const [o] = freeOctets(1, rand);
    const file = writeTopology(lab, exampleText('bridge', lab, [['10.10.', `10.${o}.`]]));
    const m = loadModel(file);
    expect(m.nodes.find((n) => n.name === 'web')?.volumes.map((v) => v.source)).toEqual([path.join(tmp, 'www')]);

    const up = netlab(['up', file, '--check']);
    expect(up.status, `${up.stdout}${up.stderr}`).toBe(0);
    expect(up.stdout).toContain(`lab ${lab} is up: 4 nodes`);
    expect(up.stdout).toMatch(/6 passed, 0 failed; 0 disagreements/);

    const r = netlab(['check', lab, '--json']);
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
    const rep = report(r);
    expect(rep).toMatchObject({ lab, mode: 'checks', observed: true, passed: 6, failed: 0, disagreements: 0 });
    expect(rep.outcomes).toHaveLength(6);
    for (const x of rep.outcomes) {
      expect(x.pass, `${x.label}: expected ${x.expected}, observed ${x.observed} (${x.detail})`).toBe(true);
      expect(x.disagree, x.label).toBe(false);
      expect(x.observed, x.label).toBe(x.expected);
    }
    const http = rep.outcomes.filter((x) => x.kind === 'http');
    expect(http).toHaveLength(1);
    expect(http[0]).toMatchObject({ from: 'client1', address: addrOf(m, 'web'), expected: 'reach', expectedFrom: 'explicit', observed: 'reach' });
    expect(http[0].detail).toMatch(/^status 200, body has "hello from netlab"$/);
    // The listener really is web's busybox httpd: a missing page is its 404, not a reach.
    const miss = netlab(['check', lab, '--http', 'client1:http://web/no-such-page.html', '--json']);
    expect(miss.status).toBe(1);
    expect(report(miss).outcomes[0]).toMatchObject({ predicted: 'reach', observed: 'fail', pass: false, disagree: true, detail: 'status 404' });

    const dns = rep.outcomes.find((x) => x.kind === 'dns')!;
    expect(dns.detail).toBe(`resolves to ${addrOf(m, 'web')}`);
    const solo = rep.outcomes.find((x) => x.from === 'solo')!;
    expect(solo).toMatchObject({ expected: 'fail', expectedFrom: 'explicit', predicted: 'fail', observed: 'fail' });

    // `check FILE` on the running lab runs the file's checks, an edited file's new ones too.
    fs.appendFileSync(file, '  - ping: { from: client2, to: client1 }\n');
    const edited = netlab(['check', file, '--json']);
    expect(edited.status, edited.stderr).toBe(0);
    expect(edited.stderr).toBe('');
    expect(report(edited).outcomes.map((x) => x.label)).toContain('ping client2 -> client1');
    // A file whose nodes changed: said in one line, and a check from a node the lab lacks is refused.
    fs.appendFileSync(file, '  - ping: { from: newcomer, to: client1 }\n');
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace(/^nodes:\n/m, 'nodes:\n  newcomer: { networks: [lan] }\n'));
    const changed = netlab(['check', file]);
    expect(changed.status).toBe(1);
    expect(changed.stderr).toMatch(new RegExp(`^netlab: check "ping newcomer -> client1" of .* starts from node newcomer, which lab ${lab} as it is up does not have`));
  });

  // ------------------------------------------------------------------ isolated.yml

  it('isolated.yml copy: `check --matrix --json`: every cross-bridge pair fails, predicted and observed; same-bridge pairs reach', () => {
    const lab = newLab('iso');
    const [a, b] = freeOctets(2, rand);
    const file = writeTopology(lab, exampleText('isolated', lab, [['10.21.', `10.${a}.`], ['10.22.', `10.${b}.`]]));
    netlabOk(['up', file]);

    const r = netlab(['check', lab, '--matrix', '--json']);
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
    const rep = report(r);
    expect(rep).toMatchObject({ mode: 'matrix', observed: true, failed: 0, disagreements: 0 });
    const nodes = ['blue1', 'blue2', 'red1', 'red2'];
    const colour = (n: string) => n.replace(/\d+$/, '');
    const got = byPair(rep);
    expect(got.size).toBe(12);
    for (const x of nodes) {
      for (const y of nodes) {
        if (x === y) continue;
        const c = got.get(`${x}->${y}`);
        expect(c, `${x}->${y}`).toBeDefined();
        const want = colour(x) === colour(y) ? 'reach' : 'fail';
        expect({ predicted: c!.predicted, observed: c!.observed }, `${x} -> ${y}: ${c!.detail}; ${c!.reason}`).toEqual({ predicted: want, observed: want });
        if (want === 'fail') expect(c!.reason, `${x} -> ${y}`).toMatch(/the host does not route between lab networks/);
      }
    }
  });

  // ------------------------------------------------------------------ routed.yml

  it('routed.yml copy: the predicted matrix (--predict-only, before the lab exists) equals the observed one, pair by pair', () => {
    const lab = newLab('rt');
    const [o] = freeOctets(1, rand);
    const file = writeTopology(lab, exampleText('routed', lab, routedSubs(o)));

    const p = netlab(['check', file, '--matrix', '--predict-only', '--json']);
    expect(p.status, `${p.stdout}${p.stderr}`).toBe(0);
    expect(labLeftovers(lab), 'prediction made nothing').toEqual([]);
    const predicted = report(p);
    expect(predicted.observed).toBe(false);
    expect(predicted.outcomes).toHaveLength(30);
    for (const x of predicted.outcomes) expect(x.observed, pair(x)).toBeNull();

    netlabOk(['up', file]);
    const r = netlab(['check', lab, '--matrix', '--json']);
    const observed = report(r);
    expect(observed.outcomes.filter((x) => x.disagree).map((x) => `${pair(x)}: predicted ${x.predicted}, observed ${x.observed} (${x.detail})`)).toEqual([]);
    expect(r.status, r.stderr).toBe(0);
    const want = new Map(predicted.outcomes.map((x) => [pair(x), x.predicted]));
    const got = new Map(observed.outcomes.map((x) => [pair(x), x.observed]));
    expect(got).toEqual(want);
    // Not trivially all-reach or all-fail: nogw (no default route) reaches only its own LAN.
    expect([...got.values()].filter((v) => v === 'fail')).toHaveLength(6);
  });

  // ------------------------------------------------------------------ a router without a route

  it('routed copy with r2 missing its route to h3\'s network: exactly the affected pairs are predicted unreachable, observed so, and --explain names r2', () => {
    const lab = newLab('brk');
    const [o] = freeOctets(1, rand);
    const missing = new RegExp(`^\\s*- \\{ dst: 10\\.${o}\\.3\\.0/24, via: 10\\.${o}\\.23\\.2 \\}\\n`, 'm');
    const text = exampleText('routed', lab, routedSubs(o));
    expect(text.match(new RegExp(missing, 'gm')), "r2's route to 10.o.3.0/24 appears once").toHaveLength(1);
    const file = writeTopology(lab, text.replace(missing, ''));
    const h3 = `10.${o}.3.10`;

    // By hand. Intact routed lab: nogw has no default route, so it reaches nothing past lan1, and
    // nothing past lan1 reaches it (its replies have no route).
    const intactFails = ['nogw->r2', 'nogw->r3', 'nogw->h3', 'r2->nogw', 'r3->nogw', 'h3->nogw'];
    // Without r2's route to 10.o.3.0/24, everything that must cross r2 toward h3's network stops
    // at r2: requests to h3 from h1, r1 and r2 itself, and the replies to h3's pings of h1, r1
    // and r2. r3 -> anything, and anything -> r3, does not cross r2 toward 10.o.3.0/24.
    const affected = ['h1->h3', 'r1->h3', 'r2->h3', 'h3->h1', 'h3->r1', 'h3->r2'];
    const wantFails = [...intactFails, ...affected].sort();

    const p = netlab(['check', file, '--matrix', '--predict-only', '--json']);
    expect(p.status, p.stderr).toBe(0);
    const predicted = report(p);
    expect(predicted.outcomes.filter((x) => x.predicted === 'fail').map(pair).sort()).toEqual(wantFails);
    for (const x of predicted.outcomes.filter((y) => affected.includes(pair(y)))) {
      expect(x.reason, pair(x)).toContain(`r2 has no route to ${h3}`);
      expect(x.explanation, pair(x)).toContain(`r2 has no route to ${h3}`);
    }
    // The intact pairs' reasons do not blame r2.
    for (const x of predicted.outcomes.filter((y) => intactFails.includes(pair(y)))) expect(x.reason, pair(x)).not.toContain('r2 has no route');

    netlabOk(['up', file]);
    const r = netlab(['check', lab, '--matrix', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const observed = report(r);
    expect(observed.outcomes.filter((x) => x.observed === 'fail').map(pair).sort()).toEqual(wantFails);
    expect(observed.disagreements).toBe(0);
    expect(new Map(observed.outcomes.map((x) => [pair(x), x.observed]))).toEqual(new Map(predicted.outcomes.map((x) => [pair(x), x.predicted])));

    // --explain, as text: the matrix, then the table with each pair's path or stop.
    const e = netlab(['check', lab, '--matrix', '--explain']);
    expect(e.status, e.stderr).toBe(0);
    const block = (from: string, to: string) => {
      const lines = e.stdout.split('\n');
      const i = lines.findIndex((l) => l.startsWith(`ping ${from} -> ${to} `));
      expect(i, `ping ${from} -> ${to} in:\n${e.stdout}`).toBeGreaterThanOrEqual(0);
      const j = lines.findIndex((l, k) => k > i && !l.startsWith('    '));
      return lines.slice(i, j).join('\n');
    };
    expect(block('h1', 'h3')).toContain(`stops: r2 has no route to ${h3}`);
    expect(block('h3', 'h1')).toMatch(new RegExp(`stops: reply from h1 to ${h3.replace(/\./g, '\\.')}: r2 has no route to ${h3.replace(/\./g, '\\.')}`));
    expect(block('h1', 'r3')).toMatch(/: reach\n/);
    // And ad hoc, one check: `--ping h1:h3 --explain` names r2 too.
    const one = netlab(['check', lab, '--ping', 'h1:h3', '--explain']);
    expect(one.status, one.stderr).toBe(0);
    expect(one.stdout).toContain(`r2 has no route to ${h3}`);
  });

  // ------------------------------------------------------------------ tampering behind netlab's back

  it('tamper: after `ip -n NETNS route del` in a running routed lab, `check LAB` shows predicted reach / observed fail (DISAGREES, disagree: true) and exits 1', () => {
    const lab = newLab('tmp');
    const [o] = freeOctets(1, rand);
    const file = writeTopology(lab, exampleText('routed', lab, routedSubs(o)));
    netlabOk(['up', file]);
    const ok = netlab(['check', lab]);
    expect(ok.status, `${ok.stdout}${ok.stderr}`).toBe(0);
    expect(ok.stdout).not.toContain('DISAGREES');

    execFileSync('ip', ['-n', `netlab.${lab}.r2`, 'route', 'del', `10.${o}.3.0/24`]);

    const t = netlab(['check', lab]);
    expect(t.status).toBe(1);
    const rows = t.stdout.split('\n').filter((l) => l.includes('DISAGREES'));
    expect(rows.map((l) => l.split(/\s{2,}/)[0]).sort()).toEqual(['ping h1 -> h3', 'ping h3 -> h1', 'tcp h1 -> h3:80']);
    for (const l of rows) expect(l).toMatch(/reach \(pred\)\s+reach\s+fail\s+FAIL\s+DISAGREES with prediction/);
    expect(t.stdout).toMatch(/6 passed, 3 failed; 3 disagreements with the prediction/);

    const j = netlab(['check', lab, '--json']);
    expect(j.status).toBe(1);
    const rep = report(j);
    const dis = rep.outcomes.filter((x) => x.disagree);
    expect(dis.map((x) => x.label).sort()).toEqual(['ping h1 -> h3', 'ping h3 -> h1', 'tcp h1 -> h3:80']);
    for (const x of dis) expect(x, x.label).toMatchObject({ predicted: 'reach', observed: 'fail', pass: false, disagree: true });
    expect(rep.outcomes.filter((x) => !x.disagree).every((x) => x.pass)).toBe(true);
    expect(rep).toMatchObject({ failed: 3, disagreements: 3 });
  });

  // ------------------------------------------------------------------ JUnit

  it('`check LAB --junit FILE` writes XML that parses, one testcase per check, with exactly the 2 failures', () => {
    const lab = newLab('ju');
    const [o] = freeOctets(1, rand);
    const file = writeTopology(lab, [
      `name: ${lab}`,
      'networks:',
      `  lan: { driver: bridge, subnet: 10.${o}.0.0/24, gateway: false }`,
      'nodes:',
      '  a: { networks: [lan] }',
      '  b: { networks: [lan], command: "httpd -f -p 80 -h /" }',
      '  solo: { network_mode: none }',
      'checks:',
      '  - ping: { from: a, to: b }',
      '  - ping: { from: b, to: a, expect: fail }      # wrong on purpose: they share lan',
      '  - ping: { from: solo, to: a, expect: reach }  # wrong on purpose: solo has only loopback',
      '  - tcp:  { from: a, to: b, port: 80 }',
      '  - tcp:  { from: b, to: a, port: 80, expect: fail }  # right: nothing listens on a',
      '  - dns:  { from: a, name: b }',
      '',
    ].join('\n'));
    netlabOk(['up', file]);
    const out = path.join(tmp, `${lab}.junit.xml`);
    const r = netlab(['check', lab, '--junit', out]);
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(1);
    expect(r.stdout).toMatch(/4 passed, 2 failed/);

    const xml = fs.readFileSync(out, 'utf8');
    expect(XMLValidator.validate(xml)).toBe(true);
    const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@', isArray: (name) => ['testsuite', 'testcase', 'failure'].includes(name) }).parse(xml) as {
      testsuites: { '@tests': string; '@failures': string; testsuite: { '@tests': string; '@failures': string; testcase: { '@name': string; '@classname': string; failure?: { '@message': string; '@type': string }[] }[] }[] };
    };
    expect(doc.testsuites['@tests']).toBe('6');
    expect(doc.testsuites['@failures']).toBe('2');
    expect(doc.testsuites.testsuite).toHaveLength(1);
    const suite = doc.testsuites.testsuite[0];
    expect(suite['@tests']).toBe('6');
    expect(suite['@failures']).toBe('2');
    expect(suite.testcase).toHaveLength(6);
    expect(suite.testcase.map((c) => c['@name'])).toEqual([
      'ping a -> b (expect reach)', 'ping b -> a (expect fail)', 'ping solo -> a (expect reach)',
      'tcp a -> b:80 (expect reach)', 'tcp b -> a:80 (expect fail)', 'dns a resolves b (expect reach)',
    ]);
    for (const c of suite.testcase) expect(c['@classname']).toMatch(new RegExp(`^netlab\\.${lab}\\.(ping|tcp|dns)$`));
    const failed = suite.testcase.filter((c) => c.failure);
    expect(failed.map((c) => c['@name'])).toEqual(['ping b -> a (expect fail)', 'ping solo -> a (expect reach)']);
    for (const c of failed) expect(c.failure).toHaveLength(1);
    expect(failed[0].failure![0]['@message']).toMatch(/^expected fail, observed reach/);
    expect(failed[1].failure![0]['@message']).toMatch(/^expected reach, observed fail/);
  });

  // ------------------------------------------------------------------ ad hoc, prediction only, not up

  it('ad hoc --ping/--tcp/--http/--dns work; --predict-only works as uid 65534 without the lab up; `check` of a lab that is not up exits non-zero with one line', () => {
    const lab = newLab('adh');
    const [o] = freeOctets(1, rand);
    const file = writeTopology(lab, exampleText('bridge', lab, [['10.10.', `10.${o}.`]]));
    const m = loadModel(file);

    // Not up yet: without --predict-only, by name and by file, one clear line and non-zero.
    for (const arg of [lab, file]) {
      const r = netlab(['check', arg]);
      expect(r.status, arg).not.toBe(0);
      expect(r.stdout, arg).toBe('');
      const lines = r.stderr.trim().split('\n');
      expect(lines, r.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^netlab: lab ${lab} is not up`));
    }
    // Prediction only, not root, the lab not up: the file's checks, an ad hoc one, the matrix.
    const p = netlab(['check', file, '--predict-only', '--json'], { asUser: NOBODY });
    expect(p.status, p.stderr).toBe(0);
    const pr = report(p);
    expect(pr.observed).toBe(false);
    expect(pr.outcomes.map((x) => [x.label, x.predicted, x.observed])).toEqual([
      ['ping client1 -> web', 'reach', null], ['ping client2 -> web', 'reach', null], ['http client1 -> http://web/', 'reach', null],
      ['tcp client2 -> web:80', 'reach', null], ['dns client1 resolves web', 'reach', null], ['ping solo -> web', 'fail', null],
    ]);
    const pt = netlab(['check', file, '--predict-only', '--ping', 'solo:client1', '--explain'], { asUser: NOBODY });
    expect(pt.status, pt.stderr).toBe(0);
    expect(pt.stdout).toMatch(/^ping solo -> client1\s+fail \(pred\)\s+fail$/m);
    expect(pt.stdout).toContain('network_mode none');
    expect(pt.stdout).toMatch(/1 checks predicted \(0 reach\), nothing run/);
    const pm = netlab(['check', file, '--predict-only', '--matrix'], { asUser: NOBODY });
    expect(pm.status, pm.stderr).toBe(0);
    expect(pm.stdout).toMatch(/12 pairs predicted \(6 reach\), nothing run/);
    expect(labLeftovers(lab), 'prediction made nothing').toEqual([]);

    // Up: the ad hoc kinds against the running lab.
    netlabOk(['up', file]);
    const r = netlab(['check', lab, '--ping', 'client1:web', '--ping', 'solo:web', '--tcp', 'client2:web:80', '--http', 'client1:http://web/', '--dns', 'client1:web', '--json']);
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
    const rep = report(r);
    expect(rep.outcomes.map((x) => [x.kind, x.from, x.target, x.predicted, x.observed, x.pass])).toEqual([
      ['ping', 'client1', 'web', 'reach', 'reach', true],
      ['ping', 'solo', 'web', 'fail', 'fail', true],
      ['tcp', 'client2', 'web', 'reach', 'reach', true],
      ['http', 'client1', 'http://web/', 'reach', 'reach', true],
      ['dns', 'client1', 'web', 'reach', 'reach', true],
    ]);
    const web = addrOf(m, 'web');
    expect(rep.outcomes[0].detail).toMatch(/^1\/1 replies, 0% loss, rtt ([\d.]+)\/\1\/\1 ms$/);
    expect(rep.outcomes[0].ping).toMatchObject({ sent: 1, received: 1, lossPercent: 0 });
    expect(rep.outcomes[2]).toMatchObject({ address: web, label: 'tcp client2 -> web:80' });
    expect(rep.outcomes[2].detail).toMatch(/^connected in [\d.]+ ms$/);
    expect(rep.outcomes[3].detail).toBe('status 200');
    expect(rep.outcomes[4].detail).toBe(`resolves to ${web}`);
    // The URL may leave out http://, and a node may be given by address; a closed port fails.
    const more = netlab(['check', lab, '--http', `client2:${web}/`, '--tcp', 'client1:web:81', '--ping', `client2:${addrOf(m, 'client1')}`, '--json']);
    expect(more.status).toBe(1);
    expect(report(more).outcomes.map((x) => [x.label, x.observed])).toEqual([
      [`ping client2 -> ${addrOf(m, 'client1')}`, 'reach'], ['tcp client1 -> web:81', 'fail'], [`http client2 -> http://${web}/`, 'reach'],
    ]);
    expect(report(more).outcomes[1].detail).toMatch(/Connection refused/);
    // A bad ad hoc spec is a usage error (2), one line.
    const bad = netlab(['check', lab, '--ping', 'client1:nosuchnode']);
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split('\n')).toEqual([`netlab: --ping client1:nosuchnode: nosuchnode is neither a node nor an IPv4 address`]);
  });
});
