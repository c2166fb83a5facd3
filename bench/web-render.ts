// Render time of the web view for a 300-node lab, in headless Chromium (Debian's, driven by
// playwright-core). The lab is generated and served from its model (offline: nothing is built,
// no root needed): 12 bridge networks of 24 hosts, and 12 routers on a ring of point-to-point
// links, one per network. Measured from navigation start (performance.timeOrigin) to
//  - drawn: the first full frame (every node and cable in the DOM, the layout precomputed for
//    a bounded time), and
//  - settled: the force simulation has cooled and stopped;
// cold (empty localStorage: the layout is computed) and warm (the layout remembered from the
// previous load). Not a timed test: `npm run build && node dist/bench/web-render.js` writes
// bench/results/web-render.json. The target is drawn <= 2000 ms cold.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext } from 'playwright-core';
import { loadTopologyText } from '../topology/load.js';
import { startWebServer } from '../web/server/serve.js';
import { LiveSource } from '../web/server/live.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CHROMIUM = process.env.NETLAB_CHROMIUM || '/usr/bin/chromium';
const RUNS = Number(process.env.NETLAB_BENCH_RUNS ?? 5);
const LIMIT_MS = 2000;
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** 300 containers: `nets` bridge networks with a router each (ring of /30 links) and hosts. */
export function bigTopology(name: string, nodes = 300, nets = 12): string {
  const lines = [`name: ${name}`, 'networks:'];
  for (let i = 0; i < nets; i++) lines.push(`  n${i}: { subnet: 10.200.${i}.0/24 }`);
  lines.push('nodes:');
  for (let i = 0; i < nets; i++) lines.push(`  r${i}: { networks: [n${i}], forwarding: true }`);
  for (let h = 0; h < nodes - nets; h++) lines.push(`  h${h}: { networks: [n${h % nets}] }`);
  lines.push('links:');
  for (let i = 0; i < nets; i++) {
    const j = (i + 1) % nets;
    lines.push(`  - { endpoints: ["r${i}:p${i}a", "r${j}:p${i}b"], ipv4: [10.201.${i}.1/30, 10.201.${i}.2/30] }`);
  }
  return lines.join('\n') + '\n';
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** What the page records (web/client/main.ts): ms since navigation start. */
interface PageTimings { __netlab: { drawnAt: number | null; settledAt: number | null } }

interface Sample { drawnMs: number; settledMs: number; nodes: number; links: number }

async function measure(ctx: BrowserContext, url: string): Promise<Sample> {
  const page = ctx.pages()[0] ?? await ctx.newPage();
  await page.goto(url);
  await page.waitForFunction(() => document.body.dataset.graphState === 'settled', null, { timeout: 60_000 });
  const t = await page.evaluate(() => ({
    drawn: (window as unknown as PageTimings).__netlab.drawnAt ?? -1,
    settled: (window as unknown as PageTimings).__netlab.settledAt ?? -1,
    nodes: document.querySelectorAll('#graph g.node').length,
    links: document.querySelectorAll('#graph g.link').length,
  }));
  return { drawnMs: t.drawn, settledMs: t.settled, nodes: t.nodes, links: t.links };
}

async function main(): Promise<void> {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: run ./setup.sh (it installs Debian's chromium)`);
  const r = loadTopologyText(bigTopology('webbench'), 'webbench.yml');
  if (!r.lab) throw new Error(`generated topology is invalid: ${JSON.stringify(r.diagnostics.slice(0, 3))}`);
  const lab = r.lab;
  const source = await LiveSource.create({ offline: lab, kernel: false });
  const server = await startWebServer({ offline: lab, port: 0, host: '127.0.0.1', source });
  const cold: Sample[] = [];
  const warm: Sample[] = [];
  try {
    for (let i = 0; i < RUNS; i++) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-bench-chromium-'));
      const ctx = await chromium.launchPersistentContext(dir, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1600, height: 1000 } });
      try {
        cold.push(await measure(ctx, server.url));
        warm.push(await measure(ctx, server.url));
      } finally {
        await ctx.close();
        fs.rmSync(dir, { recursive: true, force: true });
      }
      console.log(`run ${i + 1}: cold drawn ${cold[i].drawnMs.toFixed(0)} ms, settled ${cold[i].settledMs.toFixed(0)} ms; warm drawn ${warm[i].drawnMs.toFixed(0)} ms, settled ${warm[i].settledMs.toFixed(0)} ms (${cold[i].nodes} nodes, ${cold[i].links} cables drawn)`);
    }
  } finally {
    await server.close();
  }
  const result = {
    bench: 'web-render',
    date: new Date().toISOString(),
    machine: `${os.cpus().length} cores, ${os.cpus()[0]?.model ?? '?'}`,
    chromium: CHROMIUM,
    lab: { containers: lab.nodes.length, networks: lab.networks.length, links: lab.links.length, drawnNodes: cold[0].nodes, drawnCables: cold[0].links },
    runs: RUNS,
    coldDrawnMs: Math.round(median(cold.map((s) => s.drawnMs))),
    coldSettledMs: Math.round(median(cold.map((s) => s.settledMs))),
    warmDrawnMs: Math.round(median(warm.map((s) => s.drawnMs))),
    warmSettledMs: Math.round(median(warm.map((s) => s.settledMs))),
    limitMs: LIMIT_MS,
    samples: { cold, warm },
  };
  const pass = result.coldDrawnMs <= LIMIT_MS;
  const out = path.join(REPO, 'bench/results/web-render.json');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify({ ...result, pass }, null, 2) + '\n');
  console.log(`${lab.nodes.length} containers (${cold[0].nodes} nodes, ${cold[0].links} cables): drawn in ${result.coldDrawnMs} ms cold (settled ${result.coldSettledMs} ms), ${result.warmDrawnMs} ms warm (settled ${result.warmSettledMs} ms); limit ${LIMIT_MS} ms: ${pass ? 'ok' : 'OVER'}`);
  console.log(`wrote ${path.relative(REPO, out)}`);
  if (!pass) process.exitCode = 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  main().catch((e) => { console.error(e); process.exit(1); });
}
