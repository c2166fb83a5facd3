// The web view end to end, as root, in a real headless Chromium (Debian's /usr/bin/chromium
// driven by playwright-core: no browser is downloaded): a copy of labs/bridge.yml is brought up,
// `netlab web LAB` serves it, the page draws it (counted in the DOM), the "Run checks" button
// runs the checks and colours the result, `netlab link LAB web:eth0 down` in a shell turns the
// cable red within a second without a reload, a cable's panel impairs it (the label appears, tc
// agrees, a refusal is shown, Clear takes it away), and screenshots are kept under test-artifacts/.
// Then the lab is taken down, the browser closed, the server stopped, and nothing may be left.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labId } from '../../topology/names.js';
import { addLeakProbe, cgroupProbe, containerProcessProbe, expectNoLeaks, snapshot, type Snapshot } from '../helpers/leaks.js';
import { CLI, REPO, forceRemoveLab, freeOctets, labLeftovers, netlab, netlabOk, prng, settleLeftovers } from '../helpers/netlab.js';
import { ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, freshProfile, startWeb, type WebChild } from '../helpers/web.js';

const isRoot = process.getuid?.() === 0;
const hasChromium = fs.existsSync(CHROMIUM);
if (!isRoot) console.warn('test/integration/web-e2e.test.ts skipped: it needs root (it builds a lab in the real kernel)');
else if (!hasChromium) console.warn(`test/integration/web-e2e.test.ts skipped: ${CHROMIUM} is missing (./setup.sh installs Debian's chromium)`);

const RUN = randomBytes(3).toString('hex');
const rand = prng(Number(process.env.NETLAB_TEST_SEED ?? 0x65326531));
const RED = 'rgb(220, 38, 38)'; // --link-down in web/client/style.css
const hasNetem = fs.existsSync('/sys/module/sch_netem');

/** The root qdisc of DEV in namespace NS, as `tc -j` reports it. */
function rootQdisc(ns: string, dev: string): { kind: string; options?: { rate?: number } } {
  const r = spawnSync('tc', ['-n', ns, '-j', 'qdisc', 'show', 'dev', dev], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tc -n ${ns} qdisc show dev ${dev}: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { kind: string; root?: boolean; options?: { rate?: number } }[]).find((q) => q.root)!;
}

describe.skipIf(!isRoot || !hasChromium)('netlab web in Chromium: draw, run checks, see a cable go down live', () => {
  const lab = `e${RUN}-web`;
  let tmp = '';
  let profile = '';
  let before: Snapshot;
  let web: WebChild | null = null;
  let ctx: BrowserContext | null = null;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    for (const f of ['dist/cli/main.js', 'dist/web/server/serve.js', 'dist/web/app.js', 'dist/web/index.html']) {
      if (!fs.existsSync(path.join(REPO, f))) throw new Error(`${f} is missing: run \`npm run build\` first`);
    }
    addLeakProbe(cgroupProbe((d) => d.includes(`/netlab/e${RUN}-`)));
    addLeakProbe(containerProcessProbe((g) => g.includes(`/netlab/e${RUN}-`)));
    before = snapshot();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-e2e-'));
    fs.mkdirSync(path.join(tmp, 'www'));
    fs.writeFileSync(path.join(tmp, 'www', 'index.html'), 'hello from netlab\n');
    const [o] = freeOctets(1, rand);
    const text = fs.readFileSync(path.join(REPO, 'labs/bridge.yml'), 'utf8').replace(/^name: bridge\s*$/m, `name: ${lab}`).split('10.10.').join(`10.${o}.`);
    const file = path.join(tmp, `${lab}.yml`);
    fs.writeFileSync(file, text);
    netlabOk(['up', file]);
    web = await startWeb([lab]);
    profile = freshProfile();
    ctx = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1400, height: 860 } });
    page = ctx.pages()[0] ?? await ctx.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
  });

  afterAll(async () => {
    // Down the lab, close the browser, stop the server; then nothing may be left.
    if (labLeftovers(lab).length) netlab(['down', lab]);
    await ctx?.close();
    const code = await web?.stop();
    if (profile) fs.rmSync(profile, { recursive: true, force: true });
    let left = await settleLeftovers(lab);
    if (left.length) { console.warn(`removing what is left of ${lab} without netlab: ${(await forceRemoveLab(lab)).join('; ')}`); left = labLeftovers(lab); }
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    expect(code, `netlab web exit code (stderr: ${web?.stderr()})`).toBe(0);
    expect(left).toEqual([]);
    const id = labId(lab);
    await expectNoLeaks(before, { only: (probe, item) => probe === 'child processes' || item.includes(lab) || item.startsWith(`nl${id}`) || item === `ip netlab_${id}` });
    expect(pageErrors).toEqual([]);
  });

  it('draws every node and cable of the lab', async () => {
    await page.goto(web!.url);
    await page.waitForFunction(() => document.body.dataset.graphState === 'drawn' || document.body.dataset.graphState === 'settled', null, { timeout: 15_000 });
    // 4 containers, the lan bridge and the machine (the gateway's host side); 3 attachments + the gateway.
    expect(await page.locator('#graph g.node').count()).toBe(6);
    expect(await page.locator('#graph g.link').count()).toBe(4);
    expect(await page.locator('#graph g.node[data-kind=container][data-state=running]').count()).toBe(4);
    expect(await page.locator('#graph g.node[data-kind=network]').count()).toBe(1);
    expect(await page.locator('#graph g.node[data-kind=machine]').count()).toBe(1);
    expect(await page.locator('#graph g.link[data-state=up]').count()).toBe(4);
    // The token left the address bar; the lab is picked and live.
    expect(page.url()).not.toContain('token=');
    await expect.poll(() => page.locator('#lab-status').textContent()).toBe('up');
    await expect.poll(() => page.locator('#conn').getAttribute('class')).toContain('on');
    // The side panel shows a node's interfaces, addresses and process.
    await page.locator('#graph g.node[data-id="node:web"]').click();
    await expect.poll(() => page.locator('#tab-node h2').textContent()).toBe('web');
    const panel = (await page.locator('#tab-node').textContent()) ?? '';
    expect(panel).toMatch(/running, pid \d+/);
    expect(panel).toMatch(/eth0/);
    expect(panel).toMatch(/10\.\d+\.0\.10\/24/);
    expect(panel).toMatch(/0\.0\.0\.0\/0/);
  });

  it('"Run checks" runs them and colours the result', async () => {
    await page.locator('#run-checks').click();
    await page.waitForFunction(() => document.body.dataset.checks === 'observed', null, { timeout: 30_000 });
    expect(await page.locator('#tab-checks tr.check').count()).toBe(6);
    expect(await page.locator('#tab-checks tr.check.pass').count()).toBe(6);
    expect(await page.locator('#tab-checks [data-summary=checks]').textContent()).toMatch(/^6 passed, 0 failed; 0 disagreements/);
    // Every container is ringed green (its checks passed).
    expect(await page.locator('#graph g.node[data-kind=container][data-result=pass]').count()).toBe(4);
    const ring = await page.locator('#graph g.node[data-id="node:web"] circle.ring').evaluate((el) => getComputedStyle(el).stroke);
    expect(ring).toBe('rgb(22, 163, 74)');
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'web-e2e-checks.png') });
  });

  it('`netlab link LAB web:eth0 down` in a shell turns the cable red within 1 s, without a reload', async () => {
    await page.evaluate(() => { (window as unknown as { e2eMarker: number }).e2eMarker = 42; });
    const cable = page.locator('#graph g.link[data-id="if:web/eth0"]');
    const stroke = () => cable.locator('line.vis').evaluate((el) => getComputedStyle(el).stroke);
    expect(await stroke()).not.toBe(RED);
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [CLI, 'link', lab, 'web:eth0', 'down'], { cwd: REPO, encoding: 'utf8', maxBuffer: 1 << 28, timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    const t1 = performance.now();
    await page.waitForFunction(() => document.querySelector('#graph g.link[data-id="if:web/eth0"]')?.getAttribute('data-state') === 'down', null, { timeout: 1000, polling: 10 });
    const t2 = performance.now();
    console.log(`web-e2e: cable red ${Math.round(t2 - t1)} ms after \`netlab link\` returned (${Math.round(t2 - t0)} ms after it started)`);
    expect(t2 - t1).toBeLessThanOrEqual(1000);
    expect(await stroke()).toBe(RED);
    expect(await page.evaluate(() => (window as unknown as { e2eMarker?: number }).e2eMarker)).toBe(42);
    // The tooltip text of the cable says why.
    expect(await page.locator('#graph g.link[data-state=down]').count()).toBe(1);
    // Run the checks again: the kernel now fails the web checks (the http check expects 200).
    await page.locator('#run-checks').click();
    await page.waitForFunction(() => (window as unknown as { __netlab: { checksAt: number | null } }).__netlab.checksAt !== null && document.querySelector('#tab-checks tr.check.fail') !== null, null, { timeout: 30_000 });
    expect(await page.locator('#graph g.node[data-id="node:web"]').getAttribute('data-result')).toBe('fail');
    await page.locator('#graph g.node[data-id="node:web"]').click();
    await page.locator('.tabs button[data-tab=checks]').click();
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    const shot = path.join(ARTIFACTS, 'web-e2e.png');
    await page.screenshot({ path: shot });
    expect(fs.statSync(shot).size).toBeGreaterThan(10_000);
    console.log(`web-e2e: screenshot ${path.relative(REPO, shot)}`);
  });

  it('a dragged node stays pinned where it was dropped, across a reload (localStorage, per lab)', async () => {
    const shape = page.locator('#graph g.node[data-id="node:solo"] path.shape');
    const box = (await shape.boundingBox())!;
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + 60, box.y + 40, { steps: 8 });
    await page.mouse.up();
    await expect.poll(() => page.locator('#graph g.node[data-id="node:solo"]').getAttribute('class')).toContain('pinned');
    const saved = await page.evaluate((l) => JSON.parse(localStorage.getItem(`netlab:layout:${l}`) ?? 'null'), lab);
    expect(saved.pinned['node:solo']).toHaveLength(2);
    await page.waitForFunction(() => document.body.dataset.graphState === 'settled', null, { timeout: 10_000 });
    const where = () => page.locator('#graph g.node[data-id="node:solo"]').getAttribute('transform');
    const before = await where();
    await page.reload();
    await page.waitForFunction(() => document.body.dataset.graphState === 'settled', null, { timeout: 15_000 });
    expect(await where()).toBe(before);
    expect(await page.locator('#graph g.node[data-id="node:solo"]').getAttribute('class')).toContain('pinned');
  });

  it('a cable\'s panel impairs it: the label and the dashed stroke appear, tc agrees; a refusal is shown; Clear takes it away', async () => {
    const id = 'if:client1/eth0';
    const ns = `netlab.${lab}.client1`;
    const cable = page.locator(`#graph g.link[data-id="${id}"]`);
    const label = page.locator(`#graph text.clabel[data-link="${id}"]`);
    const panel = page.locator('#tab-node');
    // A click on the cable (dispatched on its hit line: a line's box can be too thin for a
    // pointer click to be located) opens its panel in the details tab.
    await cable.locator('line.hit').dispatchEvent('click');
    await expect.poll(() => panel.getAttribute('data-cable')).toBe(id);
    expect(await panel.isVisible()).toBe(true);
    expect(await panel.locator('h2').textContent()).toBe('client1 eth0 — lan');
    expect(await panel.locator('[data-impair]').allTextContents()).toEqual(['none', 'none']);
    expect(await label.count()).toBe(0);
    const dash = () => cable.locator('line.vis').evaluate((el) => getComputedStyle(el).strokeDasharray);
    expect(await dash()).toBe('none');

    await panel.locator('input[name=rate]').fill('5mbit');
    await panel.locator('input[name=loss]').fill('10%');
    await panel.locator('button[data-action=apply]').click();
    await page.waitForFunction((i) => document.querySelector(`#graph text.clabel[data-link="${i}"]`)?.textContent === '5mbit 10%', id, { timeout: 5000 });
    expect(await cable.getAttribute('data-impaired')).toBe('true');
    expect(await dash()).not.toBe('none');
    expect(rootQdisc(ns, 'eth0')).toMatchObject({ kind: 'tbf', options: { rate: 625_000 } });
    await expect.poll(() => panel.locator('[data-impair]').allTextContents()).toEqual(['rate 5mbit loss 10%', 'rate 5mbit loss 10%']);
    expect(await page.locator('#message').textContent()).toBe('client1:eth0: rate 5mbit loss 10%');
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'web-e2e-impair.png') });

    // A value tc would not take: the server's one line under the form, nothing changed.
    await panel.locator('input[name=rate]').fill('fast');
    await panel.locator('button[data-action=apply]').click();
    await expect.poll(() => panel.locator('.form-error').textContent()).toMatch(/^rate "fast" is not a rate/);
    expect(await panel.locator('.form-error').isVisible()).toBe(true);
    expect(await page.locator('#message').getAttribute('class')).toContain('error');
    if (!hasNetem) {
      // This kernel has no netem: delay is refused, naming the module.
      await panel.locator('input[name=rate]').fill('5mbit');
      await panel.locator('input[name=delay]').fill('10ms');
      await panel.locator('button[data-action=apply]').click();
      await expect.poll(() => panel.locator('.form-error').textContent()).toMatch(/^client1:eth0: delay needs the sch_netem kernel module/);
    }
    expect(await label.textContent()).toBe('5mbit 10%');
    expect(rootQdisc(ns, 'eth0')).toMatchObject({ kind: 'tbf', options: { rate: 625_000 } });

    // Clear: the label goes, tc is back to noqueue, the form is empty and the error gone.
    await panel.locator('button[data-action=clear]').click();
    await page.waitForFunction((i) => document.querySelector(`#graph text.clabel[data-link="${i}"]`) === null, id, { timeout: 5000 });
    expect(await cable.getAttribute('data-impaired')).toBeNull();
    expect(rootQdisc(ns, 'eth0').kind).toBe('noqueue');
    expect(await panel.locator('input[name=rate]').inputValue()).toBe('');
    expect(await panel.locator('input[name=delay]').inputValue()).toBe('');
    expect(await panel.locator('.form-error').isVisible()).toBe(false);
    await expect.poll(() => panel.locator('[data-impair]').allTextContents()).toEqual(['none', 'none']);
  });
});
