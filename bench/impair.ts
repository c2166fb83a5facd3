// Impairments (issue 15): applying a rate limit to N (100) links, netlab's way (one RTM_NEWQDISC
// each over netlink, all in flight at once on the namespace's socket) against `tc qdisc
// replace` in a loop (a process per link, as a script would) and `tc -batch` (one process, one
// line per link: the floor of the tool), in one run, interleaved, medians. Then the same for
// taking them away. The links are veth pairs in one network namespace of this run, removed at
// the end (checked gone).
//
//   npm run build && node dist/bench/impair.js [--n 100] [--runs 7] [--out bench/results/impair.json] [--doc docs/performance.md]
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kernel } from '../controller/kernel/index.js';
import { tbfFor } from '../controller/kernel/tc.js';
import { machine, spliceSection, stats, type Machine, type Stats } from './util.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

interface ImpairResults {
  machine: Machine;
  date: string;
  n: number;
  runs: number;
  set: { netlab: Stats; tcLoop: Stats; tcBatch: Stats };
  clear: { netlab: Stats; tcLoop: Stats; tcBatch: Stats };
  /** tc loop / netlab, medians. */
  ratioSet: number;
  ratioClear: number;
}

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : def;
}

function tc(args: string[], input?: string): void {
  const r = spawnSync('tc', args, { input, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tc ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) { console.error('bench/impair.ts needs root'); return 1; }
  const n = Number(arg('n', '100'));
  const runs = Number(arg('runs', '7'));
  const out = path.resolve(arg('out', path.join(ROOT, 'bench/results/impair.json')));
  const doc = path.resolve(arg('doc', path.join(ROOT, 'docs/performance.md')));
  const ns = `bench-imp-${randomBytes(3).toString('hex')}`;
  const k = await Kernel.open();
  const devs = Array.from({ length: n }, (_, i) => `v${i}a`);
  const spec = tbfFor(20e6, null);
  const t = { set: { netlab: [] as number[], tcLoop: [] as number[], tcBatch: [] as number[] }, clear: { netlab: [] as number[], tcLoop: [] as number[], tcBatch: [] as number[] } };
  try {
    k.netnsAdd(ns);
    const h = k.ns(ns);
    await Promise.all(devs.map((d, i) => h.linkAddVeth(d, `v${i}b`, ns, { up: true, peerUp: true })));
    const tcLine = (d: string) => `qdisc replace dev ${d} root handle 1: tbf rate 20mbit burst ${spec.burstBytes} limit ${spec.limitBytes}`;
    for (let r = 0; r < runs; r++) {
      // netlab: every request in flight at once.
      let t0 = performance.now();
      await Promise.all(devs.map((d) => h.qdiscReplace(d, spec)));
      t.set.netlab.push(performance.now() - t0);
      t0 = performance.now();
      await Promise.all(devs.map((d) => h.qdiscDelete(d)));
      t.clear.netlab.push(performance.now() - t0);
      // tc in a loop: a process per link.
      t0 = performance.now();
      for (const d of devs) tc(['-n', ns, ...tcLine(d).split(' ')]);
      t.set.tcLoop.push(performance.now() - t0);
      t0 = performance.now();
      for (const d of devs) tc(['-n', ns, 'qdisc', 'del', 'dev', d, 'root']);
      t.clear.tcLoop.push(performance.now() - t0);
      // tc -batch: one process.
      t0 = performance.now();
      tc(['-n', ns, '-batch', '-'], devs.map(tcLine).join('\n') + '\n');
      t.set.tcBatch.push(performance.now() - t0);
      t0 = performance.now();
      tc(['-n', ns, '-batch', '-'], devs.map((d) => `qdisc del dev ${d} root`).join('\n') + '\n');
      t.clear.tcBatch.push(performance.now() - t0);
    }
    // What netlab set is what tc reads back.
    await Promise.all(devs.map((d) => h.qdiscReplace(d, spec)));
    const shown = JSON.parse(spawnSync('tc', ['-n', ns, '-j', 'qdisc', 'show', 'dev', devs[n - 1]], { encoding: 'utf8' }).stdout) as { kind: string; options: { rate: number } }[];
    if (shown[0]?.kind !== 'tbf' || shown[0].options.rate !== 2_500_000) throw new Error(`tc reads back ${JSON.stringify(shown)}`);
  } finally {
    try { k.netnsDel(ns); } finally { k.close(); }
  }
  if (fs.existsSync(`/run/netns/${ns}`)) throw new Error(`namespace ${ns} left behind`);
  const s = (x: number[]) => stats(x);
  const res: ImpairResults = {
    machine: machine(), date: new Date().toISOString(), n, runs,
    set: { netlab: s(t.set.netlab), tcLoop: s(t.set.tcLoop), tcBatch: s(t.set.tcBatch) },
    clear: { netlab: s(t.clear.netlab), tcLoop: s(t.clear.tcLoop), tcBatch: s(t.clear.tcBatch) },
    ratioSet: 0, ratioClear: 0,
  };
  res.ratioSet = Math.round((res.set.tcLoop.median / res.set.netlab.median) * 10) / 10;
  res.ratioClear = Math.round((res.clear.tcLoop.median / res.clear.netlab.median) * 10) / 10;
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify(res, null, 2) + '\n');
  const f = (x: Stats) => `${x.median.toFixed(1)} ms (${x.min.toFixed(1)}–${x.max.toFixed(1)})`;
  const body = [
    '## Impairments',
    '',
    `Applying a rate limit (tbf, 20mbit) to ${n} links in one namespace and taking it away again, ${runs} runs interleaved, medians (min–max), on ${res.machine.nproc} CPUs, kernel ${os.release()} (\`npm run bench:impair\`, ${path.relative(ROOT, out)}):`,
    '',
    '| | set | clear |',
    '|---|---|---|',
    `| netlab (one RTM_NEWQDISC / RTM_DELQDISC per link, all in flight) | ${f(res.set.netlab)} | ${f(res.clear.netlab)} |`,
    `| \`tc qdisc replace\` in a loop (a process per link) | ${f(res.set.tcLoop)} | ${f(res.clear.tcLoop)} |`,
    `| \`tc -batch\` (one process) | ${f(res.set.tcBatch)} | ${f(res.clear.tcBatch)} |`,
    '',
    `netlab is **${res.ratioSet}x** faster than the tc loop at setting and **${res.ratioClear}x** at clearing; \`tc -batch\` is the tool's own floor (one process, the same messages one after the other).`,
    '',
  ].join('\n');
  const old = fs.existsSync(doc) ? fs.readFileSync(doc, 'utf8') : '';
  fs.writeFileSync(doc, spliceSection(old, 'impair', body, '## Running it'));
  console.log(body);
  return 0;
}

main().then((c) => { process.exitCode = c; }, (e) => { console.error(e); process.exitCode = 70; });
