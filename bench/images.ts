// OCI images (issue 13), ratios in one run, every peer on this machine:
//  1. an image of ~50 MB compressed built from Debian packages (mmdebstrap: iproute2, iputils-ping,
//     nginx-light; one layer via umoci; Cmd `sleep infinity`), cached under
//     /var/cache/netlab-bench/images keyed by the recipe, pushed to a `docker-registry serve` of
//     this run on 127.0.0.1;
//  2. pull: `netlab image pull` (CLI, end to end, a fresh NETLAB_IMAGE_STORE each run) vs
//     `skopeo copy docker://... oci:DIR` (a fresh DIR each run), interleaved, medians; netlab also
//     in-process (pullImage) to separate Node start-up; skopeo + `umoci unpack` for context
//     (netlab's pull also unpacks, skopeo's does not). Goal: netlab CLI <= 1.0x skopeo;
//  3. star N (100) of that image vs the busybox star N, in-process up/down, alternating. Goal: up
//     <= 1.2x busybox; the store's size before, during and after the lab (it grows by the image
//     once, at the pull, not per container) next to the containers' upper dirs;
//  4. Docker (Debian's docker.io) in a network namespace of this run (its own data root, exec
//     root, socket), the same image `docker load`ed: N containers on one user-defined network,
//     `docker run -d` 10 in parallel, then `docker rm -f` 10 in parallel, vs `netlab up FILE` /
//     `netlab down LAB` (CLI, end to end) of the image star. Goal: netlab >= 10x faster both ways.
// Results: bench/results/images.json and the "Images" section of docs/performance.md (kept by
// bench/run.ts when it rewrites the rest of that file). Everything made here is removed in
// finally, then checked gone (processes, namespaces, mounts, lab state, temp dirs, the root
// namespace's iptables).
//
//   npm run build && node dist/bench/images.js [--n 100] [--runs 7] [--docker-runs 3]
//     [--out bench/results/images.json] [--doc docs/performance.md] [--prefix bench-img]
//     [--base 10.236] [--no-docker] [--cache /var/cache/netlab-bench/images] [--pull-runs 5]
//   node dist/bench/images.js --render bench/results/images.json [--doc FILE]   (no measuring)
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { summarizeProfile } from './profile.js';
import { starTopology } from './star.js';
import { fmtMs, fsTypeOf, machine, round, sleep, spliceSection, stats, timeCmd, waitQuiet, type Stats } from './util.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(ROOT, 'bin', 'netlab.js');
const DOCKERD = '/usr/sbin/dockerd';
/** Debian's client (docker.io), not whatever `docker` is first on PATH: it matches dockerd. */
const DOCKER = '/usr/bin/docker';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}
const flag = (name: string) => process.argv.includes(`--${name}`);

function log(s: string): void { console.error(`images: ${s}`); }

function run(cmd: string, args: string[], o: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 28, env: o.env ?? process.env, input: o.input, timeout: o.timeoutMs ?? 600_000 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status ?? r.signal}:\n${(r.stdout ?? '').slice(-2000)}${(r.stderr ?? '').slice(-3000)}`);
  return r.stdout;
}

/** Disk usage in bytes (`du -s --block-size=1`: hard links counted once, what the disk holds). */
function du(...paths: string[]): number {
  const existing = paths.filter((p) => fs.existsSync(p));
  if (existing.length === 0) return 0;
  const out = run('du', ['-s', '-c', '--block-size=1', ...existing]);
  return Number(out.trim().split('\n').at(-1)!.split('\t')[0]);
}

const MiB = (b: number) => round(b / 1048576, 1);

// ---------------------------------------------------------------------------------------------
// 1. The image

/** The machine's own Debian mirror for `suite`, as a one-line source (deb822 or legacy). */
function mirrorLine(suite: string): string {
  const files = ['/etc/apt/sources.list', ...(fs.existsSync('/etc/apt/sources.list.d') ? fs.readdirSync('/etc/apt/sources.list.d').map((f) => path.join('/etc/apt/sources.list.d', f)) : [])];
  for (const f of files) {
    let text = '';
    try { text = fs.readFileSync(f, 'utf8'); } catch { continue; }
    if (f.endsWith('.sources')) {
      for (const stanza of text.split(/\n\s*\n/)) {
        const field = (k: string) => new RegExp(`^${k}:\\s*(.*)$`, 'mi').exec(stanza)?.[1]?.trim() ?? '';
        if (!field('Types').split(/\s+/).includes('deb') || !field('Suites').split(/\s+/).includes(suite)) continue;
        const uri = field('URIs').split(/\s+/)[0];
        if (uri) return `deb ${uri} ${suite} ${field('Components') || 'main'}`;
      }
    } else if (f.endsWith('.list')) {
      for (const line of text.split('\n')) {
        const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+(.*)$/.exec(line.trim());
        if (m && m[2] === suite) return `deb ${m[1]} ${suite} ${m[3]}`;
      }
    }
  }
  throw new Error(`no apt source for ${suite} in /etc/apt: mmdebstrap needs the machine's own mirror`);
}

const RECIPE = {
  suite: 'bookworm',
  variant: 'essential',
  include: ['iproute2', 'iputils-ping', 'nginx-light'],
  dpkgopt: 'path-exclude=/usr/share/{doc,man,locale}/*',
  tarExclude: '/dev/*',
  cmd: ['sleep', 'infinity'],
  env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
};

interface BuiltImage {
  /** OCI layout directory (umoci's) holding tag `deb`. */
  layout: string;
  tag: string;
  key: string;
  rootfsTarBytes: number;
  /** Compressed layer + config + manifest, as the registry serves it. */
  compressedBytes: number;
  builtAt: string;
  buildMs: number;
  cached: boolean;
}

function buildImage(cacheRoot: string): BuiltImage {
  const key = createHash('sha256').update(JSON.stringify(RECIPE)).digest('hex').slice(0, 16);
  const dir = path.join(cacheRoot, `deb-${key}`);
  const metaFile = path.join(dir, 'meta.json');
  if (fs.existsSync(metaFile)) return { ...(JSON.parse(fs.readFileSync(metaFile, 'utf8')) as BuiltImage), layout: path.join(dir, 'oci'), cached: true };
  fs.mkdirSync(cacheRoot, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(cacheRoot, `.build-${key}-`));
  try {
    const t0 = performance.now();
    const tar = path.join(tmp, 'rootfs.tar');
    const mirror = mirrorLine(RECIPE.suite);
    log(`building the image (mmdebstrap ${RECIPE.include.join(',')} from ${mirror}; about 30 s, once: cached in ${dir})`);
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    run('bash', ['-o', 'pipefail', '-c', [
      'mmdebstrap --quiet --mode=unshare', `--variant=${RECIPE.variant}`, `--include=${RECIPE.include.join(',')}`,
      `--dpkgopt=${q(RECIPE.dpkgopt)}`, RECIPE.suite, '-', q(mirror),
      `| mmtarfilter --path-exclude=${q(RECIPE.tarExclude)} > ${q(tar)}`,
    ].join(' ')]);
    const layout = path.join(tmp, 'oci');
    run('umoci', ['init', '--layout', layout]);
    run('umoci', ['new', '--image', `${layout}:deb`]);
    run('umoci', ['raw', 'add-layer', '--image', `${layout}:deb`, tar]);
    run('umoci', ['config', '--image', `${layout}:deb`, ...RECIPE.cmd.flatMap((c) => ['--config.cmd', c]), ...RECIPE.env.flatMap((e) => ['--config.env', e])]);
    run('umoci', ['gc', '--layout', layout]);
    const meta: BuiltImage = {
      layout: '', tag: 'deb', key, rootfsTarBytes: fs.statSync(tar).size,
      compressedBytes: fs.readdirSync(path.join(layout, 'blobs', 'sha256')).reduce((a, f) => a + fs.statSync(path.join(layout, 'blobs', 'sha256', f)).size, 0),
      builtAt: new Date().toISOString(), buildMs: round(performance.now() - t0), cached: false,
    };
    fs.rmSync(tar);
    fs.writeFileSync(path.join(tmp, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');
    fs.renameSync(tmp, dir);
    return { ...meta, layout: path.join(dir, 'oci') };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Processes of this run

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

function httpOk(url: string | { socketPath: string; path: string }): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get(typeof url === 'string' ? url : { ...url, timeout: 1000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200));
    });
    req.setTimeout(1000, () => { req.destroy(); resolve(false); });
    req.on('error', () => resolve(false));
  });
}

async function stopChild(p: ChildProcess | null, graceMs = 20_000): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  await Promise.race([exited, sleep(graceMs)]);
  if (p.exitCode === null && p.signalCode === null) { p.kill('SIGKILL'); await Promise.race([exited, sleep(5000)]); }
}

/** Live processes whose command line mentions `needle` (this run's temp dir). */
function processesMentioning(needle: string): string[] {
  const out: string[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ');
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      if (cmd.includes(needle) && stat[stat.lastIndexOf(')') + 2] !== 'Z') out.push(`${d} ${cmd.trim()}`);
    } catch { /* gone */ }
  }
  return out;
}

function mountsUnder(dir: string): string[] {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m): m is string => !!m && (m === dir || m.startsWith(`${dir}/`)));
}

/** The root namespace's iptables rules and policies, netlab's own (other labs') left out. */
function rootFirewall(): string {
  const r = spawnSync('iptables-save', [], { encoding: 'utf8' });
  return (r.stdout ?? '').split('\n').filter((l) => !l.startsWith('#') && !l.includes('netlab lab ')).map((l) => l.replace(/\[\d+:\d+\]/, '')).join('\n');
}

// ---------------------------------------------------------------------------------------------

interface PullSample { ms: number; bytes: number }

async function main(): Promise<void> {
  // --render FILE: the Images section again from a results file, without measuring.
  const render = arg('render', '');
  if (render) {
    const doc = arg('doc', 'docs/performance.md');
    const r = JSON.parse(fs.readFileSync(render, 'utf8')) as J;
    fs.writeFileSync(doc, spliceSection(fs.existsSync(doc) ? fs.readFileSync(doc, 'utf8') : '# Performance\n', 'images', renderImages(r, path.relative(process.cwd(), render)), '## Running it'));
    log(`rendered ${render} into the Images section of ${doc}`);
    return;
  }
  const n = Number(arg('n', '100'));
  const runs = Number(arg('runs', '7'));
  const dockerRuns = Number(arg('docker-runs', '3'));
  const pullRuns = Number(arg('pull-runs', '5'));
  const out = arg('out', 'bench/results/images.json');
  const doc = arg('doc', 'docs/performance.md');
  const prefix = arg('prefix', 'bench-img');
  const base = arg('base', '10.236').split('.').map(Number) as [number, number];
  const cacheRoot = arg('cache', '/var/cache/netlab-bench/images');
  const wantDocker = !flag('no-docker');
  const runId = randomBytes(3).toString('hex');
  const lab = `${prefix}-${runId}`;
  if (process.getuid?.() !== 0) throw new Error('the images bench needs root (labs, dockerd)');

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-${runId}-`));
  fs.chmodSync(tmp, 0o755);
  const starStore = path.join(tmp, 'store');
  const netlabConfig = path.join(tmp, 'netlab-config.json');
  fs.writeFileSync(netlabConfig, '{}\n');
  // store.ts and config.ts read these when imported or called: set before netlab is imported.
  process.env.NETLAB_IMAGE_STORE = starStore;
  process.env.NETLAB_CONFIG = netlabConfig;
  const [{ up, down }, { loadTopologyFile }, { pullImage }, { parseImageReference }, { storeBytes, readIndex }, { containersDir }] = await Promise.all([
    import('../controller/lab.js'), import('../topology/load.js'), import('../runtime/images/pull.js'),
    import('../topology/image-ref.js'), import('../runtime/images/store.js'), import('../runtime/container.js'),
  ]);
  const cliEnv = (store: string): NodeJS.ProcessEnv => ({ ...process.env, NETLAB_IMAGE_STORE: store, NETLAB_CONFIG: netlabConfig, NO_COLOR: '1' });

  const dockerNs = `${prefix}-${runId}-docker`;
  const firewallBefore = rootFirewall();
  const docker0Before = spawnSync('ip', ['link', 'show', 'docker0'], { stdio: 'ignore' }).status === 0;
  const bridgeSysctlBefore = fs.existsSync('/proc/sys/net/bridge');
  let registry: ChildProcess | null = null;
  let dockerd: ChildProcess | null = null;
  const labsMade = new Set<string>();
  const result: Record<string, unknown> = { what: `OCI images: pull of a ~50 MB Debian image (netlab vs skopeo), star ${n} of it (vs busybox, vs Docker)`, date: new Date().toISOString(), machine: machine(), n, runs, pullRuns, dockerRuns };
  const left: string[] = [];

  try {
    // 1. Image, registry, push.
    const img = buildImage(cacheRoot);
    log(`image: ${MiB(img.compressedBytes)} MiB compressed, rootfs tar ${MiB(img.rootfsTarBytes)} MiB${img.cached ? ` (cached, built ${img.builtAt})` : ` (built in ${fmtMs(img.buildMs)})`}`);
    const port = await freePort();
    const regDir = path.join(tmp, 'registry');
    fs.mkdirSync(path.join(regDir, 'store'), { recursive: true });
    fs.writeFileSync(path.join(regDir, 'config.yml'), [
      'version: 0.1', 'log: {level: error}', `storage: {filesystem: {rootdirectory: ${regDir}/store}, delete: {enabled: true}}`, `http: {addr: 127.0.0.1:${port}}`, '',
    ].join('\n'));
    const regLog = fs.openSync(path.join(regDir, 'log'), 'w');
    registry = spawn('docker-registry', ['serve', path.join(regDir, 'config.yml')], { stdio: ['ignore', regLog, regLog] });
    fs.closeSync(regLog);
    for (let t = Date.now(); !(await httpOk(`http://127.0.0.1:${port}/v2/`)); await sleep(100)) {
      if (registry.exitCode !== null || Date.now() - t > 30_000) throw new Error(`docker-registry did not come up:\n${fs.readFileSync(path.join(regDir, 'log'), 'utf8').slice(-2000)}`);
    }
    const ref = `127.0.0.1:${port}/bench/deb:1`;
    run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${img.layout}:${img.tag}`, `docker://${ref}`]);
    log(`pushed ${ref}`);

    // 2. Pull: interleaved, one warm-up round (page cache of the registry's blobs, the binaries).
    // Context kinds: GNU tar unpacking the same layer blob (the file system's own cost of the
    // layer's files, no registry), and netlab and skopeo into a tmpfs (no disk: the clients alone).
    const kinds = ['netlab CLI', 'netlab in-process', 'skopeo', 'tar -xzf', 'netlab CLI, tmpfs', 'skopeo, tmpfs', 'tar -xzf, tmpfs'] as const;
    const pulls: Record<(typeof kinds)[number] | 'umoci unpack', PullSample[]> = { 'netlab CLI': [], 'netlab in-process': [], skopeo: [], 'umoci unpack': [], 'tar -xzf': [], 'netlab CLI, tmpfs': [], 'skopeo, tmpfs': [], 'tar -xzf, tmpfs': [] };
    const parsed = parseImageReference(ref);
    const shm = path.join(tmp, 'tmpfs');
    fs.mkdirSync(shm);
    run('mount', ['-t', 'tmpfs', '-o', 'size=1g,mode=0755', `${prefix}-${runId}`, shm]);
    const blob = layerBlob(img.layout, img.tag);
    const layerEntries = run('tar', ['-tzf', blob]).split('\n').filter(Boolean).length;
    for (let i = -1; i < pullRuns; i++) {
      const order = kinds.map((_, j) => kinds[(j + i + 1) % kinds.length]);
      for (const kind of order) {
        const dir = path.join(kind.endsWith('tmpfs') ? shm : tmp, `pull-${i + 1}-${kind.replace(/\W+/g, '-')}`);
        await waitQuiet(0.2, 3000);
        let ms = 0;
        if (kind === 'netlab CLI' || kind === 'netlab CLI, tmpfs') {
          const r = await timeCmd(process.execPath, [CLI, 'image', 'pull', ref], { env: cliEnv(dir) });
          if (r.code !== 0) throw new Error(`netlab image pull exited with ${r.code ?? r.signal}:\n${r.stdout}${r.stderr}`);
          ms = r.ms;
        } else if (kind === 'netlab in-process') {
          const t0 = performance.now();
          await pullImage(parsed, { root: dir });
          ms = performance.now() - t0;
        } else if (kind === 'tar -xzf' || kind === 'tar -xzf, tmpfs') {
          fs.mkdirSync(dir);
          const r = await timeCmd('tar', ['-xzf', blob, '-C', dir, '--exclude=./dev/*']);
          if (r.code !== 0) throw new Error(`tar -xzf exited with ${r.code ?? r.signal}:\n${r.stderr}`);
          ms = r.ms;
        } else {
          const r = await timeCmd('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${ref}`, `oci:${dir}:deb`]);
          if (r.code !== 0) throw new Error(`skopeo copy exited with ${r.code ?? r.signal}:\n${r.stderr}`);
          ms = r.ms;
        }
        if (kind === 'skopeo') {
          // Context only: skopeo's copy leaves the layer compressed; netlab's pull unpacks it too.
          const u = await timeCmd('umoci', ['unpack', '--image', `${dir}:deb`, path.join(dir, 'bundle')]);
          if (u.code !== 0) throw new Error(`umoci unpack exited with ${u.code ?? u.signal}:\n${u.stderr}`);
          if (i >= 0) pulls['umoci unpack'].push({ ms: u.ms, bytes: du(path.join(dir, 'bundle')) });
        }
        const bytes = du(dir) - (kind === 'skopeo' ? du(path.join(dir, 'bundle')) : 0);
        if (i >= 0) pulls[kind].push({ ms, bytes });
        log(`pull ${kind.padEnd(17)} run ${i + 1}: ${fmtMs(ms)}, ${MiB(bytes)} MiB on disk`);
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
    // A CPU profile of one more CLI pull (not measured), for "where the time goes".
    const profDir = path.join(tmp, 'prof');
    const profStore = path.join(tmp, 'pull-profile');
    const pr = await timeCmd(process.execPath, ['--cpu-prof', '--cpu-prof-dir', profDir, CLI, 'image', 'pull', ref], { env: cliEnv(profStore) });
    if (pr.code !== 0) throw new Error(`netlab image pull (profiled) exited with ${pr.code}:\n${pr.stderr}`);
    const profFile = fs.readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
    const profile = profFile ? summarizeProfile(path.join(profDir, profFile)) : null;
    const rusage = await timeCmd('bash', ['-c', `NETLAB_IMAGE_STORE=${profStore}-t NETLAB_CONFIG=${netlabConfig} /usr/bin/time -f '%U %S %M' ${process.execPath} ${CLI} image pull ${ref} >/dev/null 2>${tmp}/time.txt; tail -1 ${tmp}/time.txt`]);
    const skRusage = await timeCmd('bash', ['-c', `/usr/bin/time -f '%U %S %M' skopeo copy --quiet --src-tls-verify=false docker://${ref} oci:${tmp}/sk-t:deb 2>${tmp}/time2.txt; tail -1 ${tmp}/time2.txt`]);
    const cpu = (s: string) => { const [u, sy, m] = s.trim().split(/\s+/).map(Number); return { userMs: round(u * 1000), sysMs: round(sy * 1000), maxRssMiB: round(m / 1024, 1) }; };
    fs.rmSync(profStore, { recursive: true, force: true });
    fs.rmSync(`${profStore}-t`, { recursive: true, force: true });
    fs.rmSync(`${tmp}/sk-t`, { recursive: true, force: true });
    const ps = Object.fromEntries(Object.entries(pulls).map(([k, v]) => [k, { ...stats(v.map((x) => x.ms)), diskMiB: v.length ? MiB(v[0].bytes) : null }])) as Record<keyof typeof pulls, Stats & { diskMiB: number | null }>;
    result.image = { ref, ...img, layout: undefined, layerEntries, compressedMiB: MiB(img.compressedBytes), rootfsTarMiB: MiB(img.rootfsTarBytes) };
    result.pull = {
      ...ps,
      ratio: { cli: round(ps['netlab CLI'].median / ps.skopeo.median, 3), inProcess: round(ps['netlab in-process'].median / ps.skopeo.median, 3), cliVsSkopeoUnpack: round(ps['netlab CLI'].median / (ps.skopeo.median + ps['umoci unpack'].median), 3), cliVsTar: round(ps['netlab CLI'].median / ps['tar -xzf'].median, 3), tmpfs: round(ps['netlab CLI, tmpfs'].median / ps['skopeo, tmpfs'].median, 3) },
      goal: 1.0, storeFs: fsTypeOf(tmp).split(' ')[0],
      cpu: { netlabCli: tryCpu(rusage.stdout, cpu), skopeo: tryCpu(skRusage.stdout, cpu) },
      profile: profile ? { totalMs: round(profile.totalMs), categories: Object.fromEntries(Object.entries(profile.categories).map(([k, v]) => [k, round(v)])), top: profile.top.slice(0, 12).map((t) => ({ ...t, ms: round(t.ms) })) } : null,
    };
    log(`pull: netlab CLI ${fmtMs(ps['netlab CLI'].median)}, in-process ${fmtMs(ps['netlab in-process'].median)}, skopeo ${fmtMs(ps.skopeo.median)} (+ umoci unpack ${fmtMs(ps['umoci unpack'].median)})`);

    // 3. Star N of the image vs busybox, in-process.
    await pullImage(parsed);
    const storeAfterPull = { du: du(starStore), storeBytes: storeBytes() };
    const files = { busybox: path.join(tmp, 'star-busybox.yml'), image: path.join(tmp, 'star-image.yml') };
    fs.writeFileSync(files.busybox, starTopology(lab, n, { base }));
    fs.writeFileSync(files.image, starTopology(lab, n, { base, image: ref }));
    const load = (f: string) => {
      const r = loadTopologyFile(f);
      if (!r.lab) throw new Error(`${f}: ${JSON.stringify(r.diagnostics)}`);
      return r.lab;
    };
    const models = { busybox: load(files.busybox), image: load(files.image) };
    const star = { busybox: { up: [] as number[], down: [] as number[] }, image: { up: [] as number[], down: [] as number[] } };
    let during: { storeDu: number; uppersDu: number; upperPerContainer: number } | null = null;
    labsMade.add(lab);
    for (let i = -1; i < runs; i++) {
      for (const kind of (i % 2 ? ['image', 'busybox'] : ['busybox', 'image']) as (keyof typeof models)[]) {
        await waitQuiet(0.3, 3000);
        const u = await up(models[kind]);
        if (kind === 'image' && during === null) {
          const uppers = fs.readdirSync(containersDir(lab)).map((c) => path.join(containersDir(lab), c, 'upper'));
          const uppersDu = du(...uppers);
          during = { storeDu: du(starStore), uppersDu, upperPerContainer: round(uppersDu / uppers.length) };
        }
        const d = await down(lab);
        if (i >= 0) { star[kind].up.push(u.ms); star[kind].down.push(d.ms); }
        log(`star ${n} ${kind.padEnd(8)} run ${i + 1}: up ${fmtMs(u.ms)}, down ${fmtMs(d.ms)}`);
      }
    }
    const storeAfterDown = du(starStore);
    const ss = { busybox: { up: stats(star.busybox.up), down: stats(star.busybox.down) }, image: { up: stats(star.image.up), down: stats(star.image.down) } };
    const imageEntry = readIndex().length;
    result.star = {
      ...ss,
      ratio: { up: round(ss.image.up.median / ss.busybox.up.median, 3), down: round(ss.image.down.median / ss.busybox.down.median, 3) },
      goal: { up: 1.2 },
      store: {
        images: imageEntry,
        afterPullMiB: MiB(storeAfterPull.du), afterPullStoreBytesMiB: MiB(storeAfterPull.storeBytes),
        labUpMiB: during ? MiB(during.storeDu) : null, afterDownMiB: MiB(storeAfterDown),
        growthDuringUpBytes: during ? during.storeDu - storeAfterPull.du : null,
        containerUppersMiB: during ? MiB(during.uppersDu) : null, upperPerContainerKiB: during ? round(during.upperPerContainer / 1024, 1) : null,
        imageCompressedMiB: MiB(img.compressedBytes), rootfsTarMiB: MiB(img.rootfsTarBytes),
      },
    };
    log(`star ${n}: up image ${fmtMs(ss.image.up.median)} vs busybox ${fmtMs(ss.busybox.up.median)}; store ${MiB(storeAfterPull.du)} MiB after pull, ${during ? MiB(during.storeDu) : '?'} MiB with the lab up; uppers ${during ? MiB(during.uppersDu) : '?'} MiB`);

    // 4. Docker.
    if (wantDocker && fs.existsSync(DOCKERD) && fs.existsSync(DOCKER)) {
      const dd = path.join(tmp, 'docker');
      fs.mkdirSync(dd);
      const sock = path.join(dd, 'docker.sock');
      run('ip', ['netns', 'add', dockerNs]);
      run('ip', ['-n', dockerNs, 'link', 'set', 'lo', 'up']);
      const dlog = fs.openSync(path.join(dd, 'dockerd.log'), 'w');
      dockerd = spawn('nsenter', [`--net=/run/netns/${dockerNs}`, DOCKERD, '--data-root', path.join(dd, 'data'), '--exec-root', path.join(dd, 'exec'),
        '--pidfile', path.join(dd, 'docker.pid'), '-H', `unix://${sock}`], { stdio: ['ignore', dlog, dlog] });
      fs.closeSync(dlog);
      for (let t = Date.now(); !(await httpOk({ socketPath: sock, path: '/_ping' })); await sleep(200)) {
        if (dockerd.exitCode !== null || Date.now() - t > 60_000) throw new Error(`dockerd did not come up:\n${fs.readFileSync(path.join(dd, 'dockerd.log'), 'utf8').slice(-3000)}`);
      }
      const dk = (args: string[]) => timeCmd(DOCKER, ['-H', `unix://${sock}`, ...args], { env: { ...process.env, DOCKER_CONFIG: path.join(dd, 'client') } });
      const dkOk = async (args: string[]) => { const r = await dk(args); if (r.code !== 0) throw new Error(`docker ${args.join(' ')}: ${r.code}\n${r.stderr}`); return r; };
      const archive = path.join(dd, 'deb.tar');
      run('skopeo', ['copy', '--quiet', `oci:${img.layout}:${img.tag}`, `docker-archive:${archive}:bench/deb:1`]);
      const loadR = await dkOk(['load', '-q', '-i', archive]);
      fs.rmSync(archive);
      await dkOk(['network', 'create', 'benchnet']);
      const version = (await dkOk(['version', '--format', '{{.Server.Version}} {{.Server.Os}}/{{.Server.Arch}}'])).stdout.trim();
      const driver = (await dkOk(['info', '--format', '{{.Driver}} {{.CgroupDriver}}'])).stdout.trim();
      const lanes = async (count: number, fn: (i: number) => Promise<void>) => {
        let next = 0;
        await Promise.all(Array.from({ length: 10 }, async () => { while (next < count) await fn(next++); }));
      };
      const dockerUp = async (count: number) => {
        const t0 = performance.now();
        await lanes(count, async (i) => { await dkOk(['run', '-d', '--network', 'benchnet', '--name', `c${i + 1}`, 'bench/deb:1']); });
        return performance.now() - t0;
      };
      const dockerRm = async (count: number) => {
        const t0 = performance.now();
        await lanes(count, async (i) => { await dkOk(['rm', '-f', `c${i + 1}`]); });
        return performance.now() - t0;
      };
      const dsamples = { dockerUp: [] as number[], dockerRm: [] as number[], netlabUp: [] as number[], netlabDown: [] as number[] };
      // Warm-up: 10 containers of Docker's, one CLI up/down of netlab's.
      await dockerUp(10); await dockerRm(10);
      for (let i = 0; i < dockerRuns; i++) {
        await waitQuiet(0.3, 5000);
        const nu = await timeCmd(process.execPath, [CLI, 'up', files.image], { env: cliEnv(starStore) });
        if (nu.code !== 0) throw new Error(`netlab up exited with ${nu.code}:\n${nu.stdout}${nu.stderr}`);
        const nd = await timeCmd(process.execPath, [CLI, 'down', lab], { env: cliEnv(starStore) });
        if (nd.code !== 0) throw new Error(`netlab down exited with ${nd.code}:\n${nd.stdout}${nd.stderr}`);
        await waitQuiet(0.3, 5000);
        const du_ = await dockerUp(n);
        const running = (await dkOk(['ps', '-q'])).stdout.trim().split('\n').filter(Boolean).length;
        if (running !== n) throw new Error(`docker: ${running} of ${n} containers running after the runs`);
        await waitQuiet(0.3, 5000);
        const dr = await dockerRm(n);
        dsamples.dockerUp.push(du_); dsamples.dockerRm.push(dr); dsamples.netlabUp.push(nu.ms); dsamples.netlabDown.push(nd.ms);
        log(`docker run ${i + 1}: docker up ${fmtMs(du_)}, rm ${fmtMs(dr)}; netlab CLI up ${fmtMs(nu.ms)}, down ${fmtMs(nd.ms)}`);
      }
      const ds = Object.fromEntries(Object.entries(dsamples).map(([k, v]) => [k, stats(v)])) as Record<keyof typeof dsamples, Stats>;
      result.docker = {
        version, driver, loadMs: round(loadR.ms), ...ds,
        speedup: { up: round(ds.dockerUp.median / ds.netlabUp.median, 2), down: round(ds.dockerRm.median / ds.netlabDown.median, 2) },
        goal: 10,
      };
      log(`docker: up ${fmtMs(ds.dockerUp.median)} vs netlab ${fmtMs(ds.netlabUp.median)}; rm ${fmtMs(ds.dockerRm.median)} vs down ${fmtMs(ds.netlabDown.median)}`);
    } else {
      result.docker = null;
      log(wantDocker ? `docker skipped: ${DOCKERD} or ${DOCKER} missing (apt-get install docker.io; bench/setup.sh does)` : 'docker skipped (--no-docker)');
    }
  } finally {
    for (const l of labsMade) {
      try { await down(l); } catch { /* already down */ }
    }
    await stopChild(dockerd, 30_000);
    for (let i = 0; i < 100 && processesMentioning(tmp).length > 0; i++) await sleep(100);
    for (const p of processesMentioning(tmp)) { try { process.kill(Number(p.split(' ')[0]), 'SIGKILL'); } catch { /* gone */ } }
    await stopChild(registry);
    if (fs.existsSync(`/run/netns/${dockerNs}`)) spawnSync('ip', ['netns', 'del', dockerNs], { stdio: 'ignore' });
    for (const m of mountsUnder(tmp).reverse()) spawnSync('umount', ['-l', m], { stdio: 'ignore' });
    if (!bridgeSysctlBefore && fs.existsSync('/proc/sys/net/bridge')) spawnSync('modprobe', ['-r', 'br_netfilter'], { stdio: 'ignore' });
    fs.rmSync(tmp, { recursive: true, force: true });
    // Nothing of this run may be left.
    await sleep(200);
    left.push(...processesMentioning(tmp).map((p) => `process ${p}`));
    left.push(...mountsUnder(tmp).map((m) => `mount ${m}`));
    if (fs.existsSync(tmp)) left.push(`dir ${tmp}`);
    left.push(...fs.readdirSync('/run/netns').filter((ns) => ns.includes(`${prefix}-${runId}`)).map((ns) => `netns ${ns}`));
    for (const l of labsMade) if (fs.existsSync(path.join(process.env.NETLAB_STATE_DIR || '/run/netlab', l))) left.push(`lab state ${l}`);
    if (rootFirewall() !== firewallBefore) left.push('the root namespace\'s iptables rules changed');
    if (!docker0Before && spawnSync('ip', ['link', 'show', 'docker0'], { stdio: 'ignore' }).status === 0) left.push('docker0 in the root namespace');
    if (left.length) console.error(`images: LEFT BEHIND:\n  ${left.join('\n  ')}`);
  }
  if (left.length) process.exitCode = 1;
  result.leftBehind = left;
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  const md = renderImages(result, out);
  fs.writeFileSync(doc, spliceSection(fs.existsSync(doc) ? fs.readFileSync(doc, 'utf8') : '# Performance\n', 'images', md, '## Running it'));
  log(`wrote ${out} and the Images section of ${doc}`);
}

/** The (one) layer blob of `layout`:`tag`. */
function layerBlob(layout: string, tag: string): string {
  const blob = (d: string) => path.join(layout, 'blobs', ...d.split(':'));
  const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
  const m = index.manifests.find((x) => x.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!m) throw new Error(`${layout}: no tag ${tag}`);
  const manifest = JSON.parse(fs.readFileSync(blob(m.digest), 'utf8')) as { layers: { digest: string }[] };
  return blob(manifest.layers[0].digest);
}

function tryCpu<T>(s: string, f: (s: string) => T): T | null {
  try { return f(s); } catch { return null; }
}

// ---------------------------------------------------------------------------------------------
// The "Images" section

type J = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function renderImages(r: J, out: string): string {
  const ms = (s: Stats) => `${fmtMs(s.median)} (${fmtMs(s.min)}–${fmtMs(s.max)})`;
  const pf = (ok: boolean) => (ok ? '**PASS**' : '**MISS**');
  const p = r.pull as J, s = r.star as J, d = r.docker as J | null, img = r.image as J;
  const lines = [
    '## Images',
    '',
    `Generated by \`bench/images.ts\` (\`npm run bench:images\`), run of ${String(r.date).slice(0, 16).replace('T', ' ')} UTC; raw numbers in [\`${out}\`](../${out}). Medians (min–max).`,
    '',
    `The image: Debian ${RECIPE.suite} \`--variant=${RECIPE.variant}\` with ${RECIPE.include.join(', ')} (mmdebstrap, docs and locales left out), one layer (umoci), Cmd \`${RECIPE.cmd.join(' ')}\`: ${img.compressedMiB} MiB compressed, ${img.rootfsTarMiB} MiB unpacked. It is pushed to a \`docker-registry serve\` of the run on 127.0.0.1 (plain HTTP), so the pull measures the client, not a network.`,
    '',
    '| scenario | netlab | peer | ratio (netlab / peer) | goal | result |',
    '|---|---|---|---|---|---|',
    `| pull, \`netlab image pull\` (CLI, end to end, fresh store on ${p.storeFs}) vs \`skopeo copy docker://… oci:DIR\` (fresh dir), ${p['netlab CLI'].n} interleaved runs | ${ms(p['netlab CLI'])} | ${ms(p.skopeo)} | ${p.ratio.cli.toFixed(2)}x | <= 1.0x | ${pf(p.ratio.cli <= 1.0)} |`,
    `| pull, netlab in-process (\`pullImage\`, no Node start-up) vs skopeo | ${ms(p['netlab in-process'])} | ${ms(p.skopeo)} | ${p.ratio.inProcess.toFixed(2)}x | (context) | |`,
    `| pull, netlab CLI vs skopeo copy + \`umoci unpack\` (netlab's pull also unpacks the layer; skopeo's copy does not) | ${fmtMs(p['netlab CLI'].median)} | ${fmtMs(p.skopeo.median + p['umoci unpack'].median)} (unpack ${fmtMs(p['umoci unpack'].median)}) | ${p.ratio.cliVsSkopeoUnpack.toFixed(2)}x | (context) | |`,
    `| pull into a tmpfs (no disk: the clients alone), netlab CLI vs skopeo | ${ms(p['netlab CLI, tmpfs'])} | ${ms(p['skopeo, tmpfs'])} | ${p.ratio.tmpfs.toFixed(2)}x | (context) | |`,
    `| unpacking floor on the store's file system: netlab CLI pull vs GNU \`tar -xzf\` of the same layer blob (no registry) | ${fmtMs(p['netlab CLI'].median)} | ${ms(p['tar -xzf'])} | ${p.ratio.cliVsTar.toFixed(2)}x | (context) | |`,
    `| star ${r.n} of the image vs star ${r.n} of busybox, \`up\` (in-process, alternating, ${s.image.up.n} runs each) | ${ms(s.image.up)} | ${ms(s.busybox.up)} | ${s.ratio.up.toFixed(2)}x | <= 1.2x | ${pf(s.ratio.up <= 1.2)} |`,
    `| same, \`down\` | ${ms(s.image.down)} | ${ms(s.busybox.down)} | ${s.ratio.down.toFixed(2)}x | | |`,
    `| image store while star ${r.n} of the image is up (grows by the image once, at the pull) | ${s.store.labUpMiB} MiB (after the pull ${s.store.afterPullMiB} MiB; growth during up ${s.store.growthDuringUpBytes} bytes) | containers' upper dirs: ${s.store.containerUppersMiB} MiB in all, ${s.store.upperPerContainerKiB} KiB each | | once, not per container | ${pf(s.store.growthDuringUpBytes === 0)} |`,
  ];
  if (d) {
    lines.push(
      `| star ${r.n} of the image: \`netlab up FILE\` (CLI, end to end) vs \`docker run -d\` x${r.n} on one user-defined network, 10 in parallel, ${d.netlabUp.n} runs | ${ms(d.netlabUp)} | ${ms(d.dockerUp)} | ${(1 / d.speedup.up).toFixed(3)}x (${d.speedup.up}x faster) | >= 10x faster | ${pf(d.speedup.up >= 10)} |`,
      `| same: \`netlab down LAB\` vs \`docker rm -f\` x${r.n}, 10 in parallel | ${ms(d.netlabDown)} | ${ms(d.dockerRm)} | ${(1 / d.speedup.down).toFixed(3)}x (${d.speedup.down}x faster) | >= 10x faster | ${pf(d.speedup.down >= 10)} |`,
    );
  }
  lines.push('');
  const cpu = p.cpu as J;
  if (cpu?.netlabCli && cpu?.skopeo) {
    lines.push(`CPU of one pull: netlab CLI ${fmtMs(cpu.netlabCli.userMs)} user + ${fmtMs(cpu.netlabCli.sysMs)} sys, peak RSS ${cpu.netlabCli.maxRssMiB} MiB; skopeo ${fmtMs(cpu.skopeo.userMs)} user + ${fmtMs(cpu.skopeo.sysMs)} sys, ${cpu.skopeo.maxRssMiB} MiB. On disk after a pull: netlab's store ${p['netlab CLI'].diskMiB} MiB (the compressed blob and the unpacked layer), skopeo's layout ${p.skopeo.diskMiB} MiB (compressed only).`, '');
  }
  if (d) lines.push(`Docker: Debian's docker.io ${d.version} (${d.driver}), its own dockerd in a network namespace of the run (own data root, exec root and socket, default bridge and iptables there, none in the machine's namespace), the image \`docker load\`ed (${fmtMs(d.loadMs)}); one warm-up of 10 containers first. Each run: netlab up, netlab down, then Docker's ${r.n} runs and ${r.n} removals.`, '');
  if (p.ratio.cli > 1.0) {
    const perEntry = (p['tar -xzf'].median - p['tar -xzf, tmpfs'].median) / img.layerEntries;
    lines.push('### Pull: where the time goes', '',
      `The pull goal is missed, and the figures say why. skopeo's \`copy\` writes the ${img.compressedMiB} MiB blob and stops; netlab's pull also unpacks the layer (${img.layerEntries.toLocaleString('en-US')} entries, ${img.rootfsTarMiB} MiB) into the store, which \`up\` needs to mount it. ` +
      `On this machine's ${p.storeFs}, making those files is the cost: GNU tar unpacking the same blob takes ${fmtMs(p['tar -xzf'].median)} there and ${fmtMs(p['tar -xzf, tmpfs'].median)} on a tmpfs, about ${perEntry.toFixed(2)} ms per entry of file-system time, and netlab's whole pull is ${p.ratio.cliVsTar.toFixed(2)}x that tar; skopeo's copy followed by \`umoci unpack\` (what a container needs from it) takes ${fmtMs(p.skopeo.median + p['umoci unpack'].median)}, and netlab's pull is ${p.ratio.cliVsSkopeoUnpack.toFixed(2)}x that. ` +
      `Without the disk (tmpfs), netlab's pull takes ${fmtMs(p['netlab CLI, tmpfs'].median)} against skopeo's ${fmtMs(p['skopeo, tmpfs'].median)} and tar's ${fmtMs(p['tar -xzf, tmpfs'].median)}: decompressing and hashing (the blob's sha256 and the diff_id's) and one lstat per path component per entry (\`resolveParent\` in runtime/images/unpack.ts) are what netlab adds to the copy. A pull that only stored the blob would meet the goal and move the unpacking to the first \`up\`; the store unpacks at pull so that \`up\` never waits for it.`, '');
  }
  if (p.profile && p.ratio.cli > 1.0) {
    const prof = p.profile as J;
    lines.push(`\`node --cpu-prof bin/netlab.js image pull …\` (one more pull, not measured; ${fmtMs(prof.totalMs)} profiled). Self time by category:`, '', '| category | ms |', '|---|---|');
    for (const [k, v] of Object.entries(prof.categories as Record<string, number>)) if (v >= 1) lines.push(`| ${k} | ${Math.round(v)} |`);
    lines.push('', 'Top functions by self time:', '', '| function | where | ms |', '|---|---|---|');
    for (const t of prof.top as J[]) lines.push(`| \`${t.fn}\` | ${t.where} | ${Math.round(t.ms)} |`);
    lines.push('');
  }
  lines.push(`Run it: \`npm run bench:images\` (root; options \`--n\`, \`--runs\` (${r.runs}), \`--docker-runs\` (${r.dockerRuns}), \`--no-docker\`, \`--out\`, \`--doc\`). The image is built once and cached under /var/cache/netlab-bench/images, keyed by its recipe.`, '');
  return lines.join('\n');
}

main().catch((e) => { console.error(e); process.exit(1); });
