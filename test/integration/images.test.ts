// OCI images end to end, through the real CLI as root, against real peers: a `docker-registry`
// on 127.0.0.1 with a store of its own, images built by umoci from the host's busybox and pushed
// by skopeo (OCI and Docker v2s2 forms), archives written by skopeo for `image load`. Proves:
// pull into a store of the test's own (NETLAB_IMAGE_STORE), layers shared by diff_id, a lab of
// OCI nodes (Cmd, Entrypoint, User with groups, WorkingDir, Env, whiteouts, an opaque dir, a
// multi-layer image, StopSignal used by down, ExposedPorts in status), `image ls/inspect/rm/
// prune/load`, and the one-line errors (unknown tag, unreachable registry, corrupt blob,
// --pull never, unknown user) with nothing built and nothing half-stored.
//
// Safety: traffic only to 127.0.0.1 (the registry) and inside the lab's namespaces; the lab is
// x<run>-img<n> on a 10.X block nothing routes.
import { randomBytes } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labId } from '../../topology/names.js';
import { addLeakProbe, cgroupProbe, containerProcessProbe, expectNoLeaks, snapshot, type Snapshot } from '../helpers/leaks.js';
import { CLI, REPO, assertBuildFresh, downAndCheck, forceRemoveLab, freeOctets, labLeftovers, prng } from '../helpers/netlab.js';
import { buildTestImages, type OciLayout } from '../helpers/oci-build.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';

const isRoot = process.getuid?.() === 0;
const haveTools = ['docker-registry', 'skopeo', 'umoci'].every((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0);
if (!isRoot || !haveTools) console.warn('test/integration/images.test.ts skipped: it needs root and docker-registry, skopeo, umoci (./setup.sh installs them)');

const RUN = randomBytes(3).toString('hex');
const rand = prng(Number(process.env.NETLAB_TEST_SEED ?? 0x696d6167));

describe.skipIf(!isRoot || !haveTools)('OCI images', () => {
  let tmp = '';
  let store = '';
  let reg: TestRegistry;
  let images: OciLayout;
  let before: Snapshot;
  const labs: string[] = [];
  let octet = 0;

  const cli = (args: string[], o: { timeoutMs?: number; env?: Record<string, string> } = {}) => {
    const r = spawnSync(process.execPath, [CLI, ...args], {
      cwd: REPO, encoding: 'utf8', timeout: o.timeoutMs ?? 120_000, maxBuffer: 1 << 26,
      env: { ...process.env, NETLAB_IMAGE_STORE: store, NETLAB_CONFIG: path.join(tmp, 'config.json'), ...o.env },
    });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const ok = (args: string[]) => {
    const r = cli(args);
    if (r.status !== 0) throw new Error(`netlab ${args.join(' ')} exited ${r.status}:\n${r.stdout}${r.stderr}`);
    return r;
  };
  const ref = (tag: string) => `${reg.host}/test/img:${tag}`;
  const storeFiles = () => execFileSync('find', [store, '-mindepth', '2', '-maxdepth', '3'], { encoding: 'utf8' }).split('\n').filter(Boolean).sort();

  beforeAll(async () => {
    assertBuildFresh();
    addLeakProbe(cgroupProbe((d) => d.includes(`/netlab/x${RUN}-`)));
    addLeakProbe(containerProcessProbe((g) => g.includes(`/netlab/x${RUN}-`)));
    before = snapshot();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-images-'));
    store = path.join(tmp, 'store');
    fs.writeFileSync(path.join(tmp, 'config.json'), '{}\n');
    images = buildTestImages(path.join(tmp, 'build'));
    reg = await startRegistry();
    for (const t of ['base', 'multi', 'whiteout', 'opaque', 'user']) await reg.push(`oci:${images.ref(t)}`, `test/img:${t}`, 'oci');
    await reg.push(`oci:${images.ref('base')}`, 'test/img:v2s2', 'v2s2');
    [octet] = freeOctets(1, rand);
  }, 180_000);

  afterAll(async () => {
    const left: string[] = [];
    for (const lab of labs) {
      left.push(...(await downAndCheck(lab)));
      if (labLeftovers(lab).length > 0) console.warn(`removing what is left of ${lab}: ${(await forceRemoveLab(lab)).join('; ')}`);
    }
    await reg?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    expect(left).toEqual([]);
    await expectNoLeaks(before, {
      only: (probe, item) => probe === 'child processes' || labs.some((l) => item.includes(l) || item.startsWith(`nl${labId(l)}`) || item === `ip netlab_${labId(l)}`),
    });
  }, 120_000);

  it('pulls OCI and Docker v2s2 manifests; layers are stored once per diff_id and shared', () => {
    const a = ok(['image', 'pull', ref('base')]);
    expect(a.stderr).toMatch(/pulled .*test\/img:base \(sha256:[0-9a-f]{64}\)/);
    const layersAfterBase = fs.readdirSync(path.join(store, 'layers/sha256'));
    expect(layersAfterBase).toHaveLength(1);
    ok(['image', 'pull', ref('v2s2')]);
    ok(['image', 'pull', ref('whiteout')]);
    const layers = fs.readdirSync(path.join(store, 'layers/sha256'));
    // v2s2 is the same content (same diff_id): no new layer; whiteout adds exactly one.
    expect(layers).toHaveLength(2);
    expect(layers).toEqual(expect.arrayContaining(layersAfterBase));
    const ls = JSON.parse(ok(['image', 'ls', '--json']).stdout) as { ref: string; digest: string; layers: number; labs: string[] }[];
    expect(ls.map((x) => x.ref).sort()).toEqual([ref('base'), ref('v2s2'), ref('whiteout')].map((r) => r).sort());
    expect(ls.find((x) => x.ref === ref('whiteout'))!.layers).toBe(2);
    const index = JSON.parse(fs.readFileSync(path.join(store, 'index.json'), 'utf8')) as { manifests: { annotations: Record<string, string> }[] };
    expect(index.manifests.map((m) => m.annotations['org.opencontainers.image.ref.name']).sort()).toEqual(ls.map((x) => x.ref).sort());
    expect(JSON.parse(fs.readFileSync(path.join(store, 'oci-layout'), 'utf8'))).toEqual({ imageLayoutVersion: '1.0.0' });
    const inspect = JSON.parse(ok(['image', 'inspect', ref('base'), '--json']).stdout) as { config: { config: { Cmd: string[]; ExposedPorts: object } } };
    expect(inspect.config.config.Cmd).toEqual(['httpd', '-f', '-p', '80', '-h', '/www']);
    expect(Object.keys(inspect.config.config.ExposedPorts)).toEqual(['80/tcp']);
    expect(ok(['image', 'inspect', ref('base')]).stdout).toMatch(/ports: +80\/tcp/);
  }, 120_000);

  it('a lab of OCI nodes: image config applied, whiteouts and opaque dirs, StopSignal, ExposedPorts', () => {
    const lab = `x${RUN}-img0`;
    labs.push(lab);
    const file = path.join(tmp, `${lab}.yml`);
    fs.writeFileSync(file, [
      `name: ${lab}`,
      'networks:',
      `  lan: { subnet: 10.${octet}.0.0/24, gateway: false }`,
      'nodes:',
      `  web: { image: "${ref('base')}", networks: [lan] }`,
      `  wo: { image: "${ref('whiteout')}", networks: [lan] }`,
      `  opq: { image: "${ref('opaque')}", networks: [lan] }`,
      `  multi: { image: "${ref('multi')}", networks: [lan] }`,
      `  app: { image: "${ref('user')}", networks: [lan], command: ["trap 'echo stopped-by-usr1; exit 0' USR1; sleep 1000 & wait"] }`,
      `  ep: { image: "${ref('base')}", networks: [lan], entrypoint: ["/bin/sh", "-c"], command: ["echo from-entrypoint; exec sleep 1000"] }`,
      '  client: { networks: [lan], files: { /etc/app/app.conf: ./app.conf, /opt/conf: ./confdir } }',
      `  hostimg: { image: host, network_mode: none, files: { /etc/netlab-test/x.conf: ./app.conf } }`,
      'checks:',
      '  - http: { from: client, url: "http://web/", expect: { status: 200, contains: "hello from an OCI image" } }',
      '  - dns: { from: wo, name: web }',
    ].join('\n') + '\n');
    fs.writeFileSync(path.join(tmp, 'app.conf'), 'setting=1\n');
    fs.mkdirSync(path.join(tmp, 'confdir/sub'), { recursive: true });
    fs.writeFileSync(path.join(tmp, 'confdir/sub/inner'), 'inner\n');
    const up = cli(['up', file, '--check']);
    expect(up.status, up.stdout + up.stderr).toBe(0);
    // multi and opaque and user were not pulled yet: `up` pulled them as its own phase first.
    expect(up.stderr).toMatch(/pulling .*test\/img:multi/);
    const x = (node: string, cmd: string) => ok(['exec', lab, node, '--', 'sh', '-c', cmd]).stdout;
    expect(x('wo', 'ls /www; ls /usr/bin/wget 2>&1; echo rc=$?')).toMatch(/No such file[\s\S]*rc=1/);
    expect(x('wo', 'ls -A /www | wc -l').trim()).toBe('0');
    expect(x('opq', 'ls -A /www').trim()).toBe('new.html');
    expect(x('multi', 'cat /opt/two/file /opt/three')).toBe('layer three\n3\n');
    expect(x('app', 'id; pwd; echo $GREETING $HOME')).toMatch(/^uid=1000\(app\) gid=1000\(app\) groups=50\(staff\)\n\/home\/app\nhi \/home\/app\n$/);
    expect(x('web', 'echo $PATH')).toBe('/usr/sbin:/usr/bin:/sbin:/bin\n');
    expect(ok(['logs', lab, 'ep']).stdout).toBe('from-entrypoint\n');
    // files: copied into the writable layer (a file and a directory tree); the container's
    // writes stay its own; with image: host, under /etc.
    expect(x('client', 'cat /etc/app/app.conf /opt/conf/sub/inner')).toBe('setting=1\ninner\n');
    x('client', 'echo changed > /etc/app/app.conf');
    expect(fs.readFileSync(path.join(tmp, 'app.conf'), 'utf8')).toBe('setting=1\n');
    expect(x('hostimg', 'cat /etc/netlab-test/x.conf')).toBe('setting=1\n');
    expect(fs.existsSync('/etc/netlab-test')).toBe(false);
    const status = ok(['status', lab]).stdout;
    expect(status).toMatch(new RegExp(`web +running \\(pid \\d+\\), ${ref('base').replace(/[.:/]/g, '\\$&')} exposes 80/tcp`));
    const st = JSON.parse(ok(['status', lab, '--json']).stdout) as { nodes: { name: string; image: { digest: string; exposedPorts: string[] } }[] }[];
    expect(st[0].nodes.find((n) => n.name === 'web')!.image.exposedPorts).toEqual(['80/tcp']);
    // A running lab's image cannot be removed.
    const rm = cli(['image', 'rm', ref('user')]);
    expect(rm.status).toBe(1);
    expect(rm.stderr.trim()).toBe(`netlab: image ${ref('user')} is used by running lab ${lab}; take it down first`);
    const down = ok(['down', lab]);
    // The user image's StopSignal is SIGUSR1: the trap ran and PID 1 exited 0 (SIGTERM is
    // ignored by a PID 1 without a handler and would have ended in SIGKILL).
    expect(down.stdout).toMatch(/app +exited, code 0 \(stopped by SIGUSR1\)\n/);
    labs.pop();
  }, 240_000);

  it('image rm and prune remove what nothing uses; the store grows by an image once', () => {
    const sizeOf = () => Number(execFileSync('du', ['-sb', store], { encoding: 'utf8' }).split('\t')[0]);
    ok(['image', 'rm', ref('opaque')]);
    const ls = JSON.parse(ok(['image', 'ls', '--json']).stdout) as { ref: string }[];
    expect(ls.map((i) => i.ref)).not.toContain(ref('opaque'));
    // opaque's own top layer went with it; base's layer (shared) stays.
    const layers = fs.readdirSync(path.join(store, 'layers/sha256'));
    const s0 = sizeOf();
    ok(['image', 'pull', ref('opaque')]);
    expect(fs.readdirSync(path.join(store, 'layers/sha256'))).toHaveLength(layers.length + 1);
    const grown = sizeOf() - s0;
    expect(grown).toBeLessThan(64 * 1024); // one tiny layer and its blobs, not another busybox
    // A temp left by a pull that died is removed by prune.
    fs.mkdirSync(path.join(store, 'tmp', 'layer.999999999.dead'), { recursive: true });
    expect(ok(['image', 'prune']).stdout).toMatch(/1 leftovers/);
    expect(fs.readdirSync(path.join(store, 'tmp'))).toEqual([]);
  }, 120_000);

  it('image load: a docker save archive (skopeo docker-archive), an OCI archive, an OCI layout directory', () => {
    const dockerTar = path.join(tmp, 'img.tar');
    execFileSync('skopeo', ['copy', '--src-tls-verify=false', `docker://${ref('multi')}`, `docker-archive:${dockerTar}:loaded/multi:1`], { stdio: 'pipe' });
    expect(ok(['image', 'load', dockerTar]).stdout).toMatch(/^loaded docker\.io\/loaded\/multi:1 \(sha256:[0-9a-f]{64}, 3 layers\)\n$/);
    const ociTar = path.join(tmp, 'img-oci.tar');
    execFileSync('skopeo', ['copy', '--src-tls-verify=false', `docker://${ref('user')}`, `oci-archive:${ociTar}:user`], { stdio: 'pipe' });
    const named = cli(['image', 'load', ociTar]);
    expect(named.status).toBe(1);
    expect(named.stderr).toMatch(/named only "user"; give it a name with --name/);
    ok(['image', 'load', ociTar, '--name', 'loaded/user:2']);
    // A layout directory with several images needs no --name when they are named; with a name
    // for one of many, it is refused.
    expect(cli(['image', 'load', images.layout, '--name', 'loaded/layout:1']).stderr).toMatch(/holds 5 images; --name names one/);
    const layoutDir = path.join(tmp, 'layout-one');
    execFileSync('skopeo', ['copy', '--src-tls-verify=false', `docker://${ref('opaque')}`, `oci:${layoutDir}:opaque`], { stdio: 'pipe' });
    ok(['image', 'load', layoutDir, '--name', 'loaded/layout:1']);
    const inspect = JSON.parse(ok(['image', 'inspect', 'loaded/user:2', '--json']).stdout) as { config: { config: { User: string } } };
    expect(inspect.config.config.User).toBe('app');
    const ls = JSON.parse(ok(['image', 'ls', '--json']).stdout) as { ref: string }[];
    expect(ls.map((i) => i.ref)).toEqual(expect.arrayContaining(['docker.io/loaded/multi:1', 'docker.io/loaded/user:2', 'docker.io/loaded/layout:1']));
  }, 120_000);

  it('errors are one line, exit 1, nothing built and nothing half-stored', () => {
    const lab = `x${RUN}-img1`;
    const file = path.join(tmp, `${lab}.yml`);
    const topo = (image: string, extra = '') => { fs.writeFileSync(file, `name: ${lab}\nnodes:\n  n: { image: "${image}"${extra} }\n`); return file; };
    const oneLine = (r: { status: number | null; stderr: string }, re: RegExp) => {
      expect(r.status, r.stderr).toBe(1);
      expect(r.stderr.trim().split('\n').filter((l) => !/^(pulling|  )/.test(l))).toHaveLength(1);
      expect(r.stderr).toMatch(re);
      expect(fs.existsSync(`/run/netns/netlab.${labId(lab)}.n`)).toBe(false);
      expect(fs.existsSync(path.join('/run/netlab', lab))).toBe(false);
    };
    oneLine(cli(['up', topo(ref('nosuchtag'))]), /not found/);
    oneLine(cli(['up', topo('127.0.0.1:1/test/img:1')]), /127\.0\.0\.1:1.*(unreachable|ECONNREFUSED)/);
    oneLine(cli(['up', topo(`${reg.host}/test/img:multi`), '--pull', 'never'], { env: { NETLAB_IMAGE_STORE: path.join(tmp, 'empty-store') } }), /not in the store and --pull never/);
    oneLine(cli(['up', topo(ref('base'), ', user: nobody-here')]), /user nobody-here is not in the image's \/etc\/passwd/);
    // A bad reference is a validation error at the file's line and column.
    const v = cli(['validate', topo('Bad/UPPER:x')]);
    expect(v.status).toBe(1);
    expect(v.stderr).toMatch(new RegExp(`${file.replace(/[.]/g, '\\.')}:3:\\d+: .*image`));
  }, 120_000);

  it('a store without space left: one line, nothing half-stored', () => {
    const small = path.join(tmp, 'small-store');
    fs.mkdirSync(small);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=640k', 'netlab-test-small', small]);
    try {
      const r = cli(['image', 'pull', ref('base')], { env: { NETLAB_IMAGE_STORE: small } });
      expect(r.status, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/netlab: no space left on the device of /);
      expect(r.stderr.split('\n').filter((l) => l.startsWith('netlab:'))).toHaveLength(1);
      expect(r.stderr).toMatch(/netlab: no space left on the device of /);
      expect(fs.readdirSync(path.join(small, 'tmp'))).toEqual([]);
      expect(fs.readdirSync(path.join(small, 'layers/sha256'))).toEqual([]);
    } finally {
      execFileSync('umount', [small]);
    }
  }, 60_000);

  it('a store that fills while the blob is written, before the unpacker wrote a byte: one line, exit 1, not a silent exit 0', async () => {
    // The layer's first tar entry carries a 1.5 MB PAX comment: the unpacker holds it in memory
    // while the blob file fills the 256 KiB store, so the blob side fails first, every time.
    const tarFile = path.join(tmp, 'pax-heavy.tar');
    const { pack } = await import('tar-stream');
    const p = pack();
    const out = fs.createWriteStream(tarFile);
    p.pipe(out);
    p.entry({ name: 'note.txt', pax: { comment: randomBytes(1_100_000).toString('base64') } }, 'x\n');
    p.finalize();
    await new Promise<void>((res, rej) => { out.on('finish', res); out.on('error', rej); });
    images.newImage('paxheavy').rawLayer('paxheavy', tarFile);
    await reg.push(`oci:${images.ref('paxheavy')}`, 'test/img:paxheavy', 'oci');
    const small = path.join(tmp, 'smaller-store');
    fs.mkdirSync(small);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'netlab-test-smaller', small]);
    try {
      const r = cli(['image', 'pull', ref('paxheavy')], { env: { NETLAB_IMAGE_STORE: small } });
      expect(r.status, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/netlab: no space left on the device of .* while storing layer sha256:/);
      expect(r.stderr.split('\n').filter((l) => l.startsWith('netlab:'))).toHaveLength(1);
      expect(fs.readdirSync(path.join(small, 'tmp'))).toEqual([]);
      expect(fs.readdirSync(path.join(small, 'layers/sha256'))).toEqual([]);
      expect(fs.readdirSync(path.join(small, 'blobs/sha256'))).toEqual([]);
    } finally {
      execFileSync('umount', [small]);
    }
  }, 60_000);

  it('a blob corrupted in the registry is refused naming its digest; nothing of it stays', () => {
    // The user image's config differs from base's: corrupt its top-most unique layer.
    const manifest = JSON.parse(fs.readFileSync(path.join(images.layout, 'blobs/sha256', images.digest('whiteout').slice(7)), 'utf8')) as { layers: { digest: string }[] };
    const top = manifest.layers.at(-1)!.digest.slice(7);
    const data = reg.blobPath(`sha256:${top}`);
    const bytes = fs.readFileSync(data);
    bytes[bytes.length >> 1] ^= 0xff;
    fs.writeFileSync(data, bytes);
    const fresh = path.join(tmp, 'store-corrupt');
    const r = cli(['image', 'pull', ref('whiteout')], { env: { NETLAB_IMAGE_STORE: fresh } });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`sha256:${top}`);
    expect(fs.readdirSync(path.join(fresh, 'blobs/sha256'))).not.toContain(top);
    expect(fs.readdirSync(path.join(fresh, 'tmp'))).toEqual([]);
    expect(JSON.parse(fs.readFileSync(path.join(fresh, 'index.json'), 'utf8')).manifests).toEqual([]);
  }, 120_000);
});
