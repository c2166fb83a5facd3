// What confinement costs per container: star N (default 100) with containers, brought up and down
// in this one process, alternately as every node is confined by default (seccomp filter, /proc
// masks and read-only paths, device rules, closed descriptors, Docker's capabilities) and as every
// node is `privileged: true` (none of that: what a node cost before issue 11). Runs interleave so
// both see the same machine; the ratio of medians is the figure (target: up within 1.15x).
//
//   npm run build && node dist/bench/confinement.js [--n 100] [--runs 7] [--out bench/results/confinement.json]
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { up, down } from '../controller/lab.js';
import { loadTopologyFile } from '../topology/load.js';
import { starTopology } from './star.js';
import { fmtMs, machine, round, stats, waitQuiet } from './util.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}

async function main(): Promise<void> {
  const n = Number(arg('n', '100'));
  const runs = Number(arg('runs', '7'));
  const out = arg('out', 'bench/results/confinement.json');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-bench-conf-'));
  const lab = `bench-conf-${process.pid}`;
  const confined = path.join(tmp, 'confined.yml');
  const privileged = path.join(tmp, 'privileged.yml');
  fs.writeFileSync(confined, starTopology(lab, n));
  fs.writeFileSync(privileged, starTopology(lab, n).replace(/\{ networks: \[lan\] \}/g, '{ networks: [lan], privileged: true }'));
  const load = (f: string) => {
    const r = loadTopologyFile(f);
    if (!r.lab) throw new Error(`${f}: ${JSON.stringify(r.diagnostics)}`);
    return r.lab;
  };
  const models = { confined: load(confined), privileged: load(privileged) };
  const samples = { confined: { up: [] as number[], down: [] as number[] }, privileged: { up: [] as number[], down: [] as number[] } };
  try {
    // One warm-up of each (the busybox image, page cache), then alternating measured runs.
    for (let i = -1; i < runs; i++) {
      for (const kind of (i % 2 ? ['confined', 'privileged'] : ['privileged', 'confined']) as (keyof typeof models)[]) {
        await waitQuiet(0.3, 3000);
        const u = await up(models[kind]);
        const d = await down(lab);
        if (i >= 0) { samples[kind].up.push(u.ms); samples[kind].down.push(d.ms); }
        console.error(`${kind.padEnd(10)} run ${i + 1}: up ${fmtMs(u.ms)}, down ${fmtMs(d.ms)}`);
      }
    }
  } finally {
    try { await down(lab); } catch { /* already down */ }
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const s = {
    confined: { up: stats(samples.confined.up), down: stats(samples.confined.down) },
    privileged: { up: stats(samples.privileged.up), down: stats(samples.privileged.down) },
  };
  const result = {
    what: `star ${n} with containers: default confinement vs privileged (no confinement), in one process, ${runs} alternating runs each`,
    date: new Date().toISOString(), machine: machine(), n, runs, ...s,
    ratio: { up: round(s.confined.up.median / s.privileged.up.median, 3), down: round(s.confined.down.median / s.privileged.down.median, 3) },
    target: { up: 1.15 },
  };
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  console.log(`star ${n}: up confined ${fmtMs(s.confined.up.median)} vs privileged ${fmtMs(s.privileged.up.median)} = ${result.ratio.up}x (target <= 1.15x); down ${fmtMs(s.confined.down.median)} vs ${fmtMs(s.privileged.down.median)} = ${result.ratio.down}x`);
}

main().catch((e) => { console.error(e); process.exit(1); });
