// Images declared from Debian packages, built for real: mmdebstrap from this machine's own
// Debian mirror (its apt sources) into a store of the test's own (NETLAB_IMAGE_STORE), through
// the real CLI as root. One small image (`packages: [iproute2]` on bookworm), built once for the
// whole file. Proves: the image's root is Debian's (ip -V from iproute2, dash as sh, no busybox,
// no /dev entries, no docs but the copyright files), a lab of two nodes of it (netlab-pause as
// the image's Cmd, and a command of the node's own), a second `image build` and `up` are cache
// hits (no mmdebstrap run at all: a fake mmdebstrap first on PATH would leave a mark; under 1 s),
// `up --pull always` never tries to pull it, and an unknown package or suite is mmdebstrap's
// own error in one line, exit 1, no lab, nothing in the store, no mmdebstrap left running.
//
// Safety: the only traffic leaving the machine is mmdebstrap's to the configured Debian mirror;
// the lab's nodes have loopback only (no networks).
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, REPO, assertBuildFresh, downAndCheck, forceRemoveLab, labLeftovers, processesWithArg } from '../helpers/netlab.js';

const isRoot = process.getuid?.() === 0;
const haveTools = ['mmdebstrap', 'mmtarfilter'].every((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0);
if (!isRoot || !haveTools) console.warn('test/integration/image-build.test.ts skipped: it needs root and mmdebstrap (apt-get install mmdebstrap)');

const RUN = randomBytes(3).toString('hex');
const LAB = `hpkg-ib${RUN}`;
const BAD_PKG = `no-such-package-hpkg${RUN}`;
/** A plausible suite name (letters only) no mirror has. */
const BAD_SUITE = `hpkgsuite${RUN.replace(/[0-9]/g, 'x')}`;

describe.skipIf(!isRoot || !haveTools)('images built from Debian packages', () => {
  let tmp = '';
  let store = '';
  let file = '';
  const labs: string[] = [];

  const cli = (args: string[], o: { timeoutMs?: number; env?: Record<string, string>; store?: string } = {}) => {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [CLI, ...args], {
      cwd: REPO, encoding: 'utf8', timeout: o.timeoutMs ?? 120_000, maxBuffer: 1 << 26,
      env: { ...process.env, NETLAB_IMAGE_STORE: o.store ?? store, NETLAB_CONFIG: path.join(tmp, 'config.json'), ...o.env },
    });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr, ms: performance.now() - t0 };
  };
  const ok = (args: string[], o: Parameters<typeof cli>[1] = {}) => {
    const r = cli(args, o);
    if (r.status !== 0) throw new Error(`netlab ${args.join(' ')} exited ${r.status}:\n${r.stdout}${r.stderr}`);
    return r;
  };
  const find = (dir: string) => spawnSync('find', [dir, '-mindepth', '1'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).sort();
  const ours = () => processesWithArg(BAD_PKG).concat(processesWithArg(BAD_SUITE)).filter((p) => /mmdebstrap|mmtarfilter|apt/.test(p.cmd));

  beforeAll(() => {
    assertBuildFresh();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hpkg-image-build-'));
    store = path.join(tmp, 'store');
    fs.writeFileSync(path.join(tmp, 'config.json'), '{}\n');
    file = path.join(tmp, 'lab.yml');
    fs.writeFileSync(file, [
      `name: ${LAB}`,
      'images:',
      '  ipr: { debian: bookworm, packages: [iproute2] }',
      'nodes:',
      '  a: { image: ipr }',
      '  b: { image: ipr, command: [sleep, infinity] }',
      '',
    ].join('\n'));
  });

  afterAll(async () => {
    const left: string[] = [];
    for (const lab of labs) {
      left.push(...(await downAndCheck(lab)));
      if (labLeftovers(lab).length > 0) console.warn(`removing what is left of ${lab}: ${(await forceRemoveLab(lab)).join('; ')}`);
    }
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    expect(left).toEqual([]);
    expect(ours()).toEqual([]);
  }, 120_000);

  it('image build: mmdebstrap from the machine\'s mirror into a one-layer OCI image', () => {
    const r = ok(['image', 'build', file], { timeoutMs: 300_000 });
    const [name, ref, digest] = r.stdout.trim().split(' ');
    expect(name).toBe('ipr');
    expect(ref).toMatch(/^netlab\.invalid\/ipr:bookworm-[0-9a-f]{16}$/);
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(r.stderr).toMatch(/built image ipr \(mmdebstrap, 1 package\) as netlab\.invalid\/ipr:bookworm-[0-9a-f]{16} \(\d+\.\d MB\) in \d+\.\d s/);
    const ls = JSON.parse(ok(['image', 'ls', '--json']).stdout) as { ref: string; layers: number; digest: string }[];
    expect(ls).toEqual([expect.objectContaining({ ref, layers: 1, digest })]);
    const inspect = JSON.parse(ok(['image', 'inspect', ref, '--json']).stdout) as { config: { os: string; config: { Cmd: string[]; Env: string[]; Labels: Record<string, string> } }; layers: { dir: string; mediaType: string }[] };
    expect(inspect.config.os).toBe('linux');
    expect(inspect.config.config.Cmd).toEqual(['/usr/local/sbin/netlab-pause']);
    expect(JSON.parse(inspect.config.config.Labels['io.netlab.recipe'])).toEqual({ version: 1, debian: 'bookworm', packages: ['iproute2'] });
    expect(inspect.layers[0].mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
    const root = inspect.layers[0].dir;
    expect(fs.readdirSync(path.join(root, 'dev'))).toEqual([]); // /dev excluded: the runtime makes its own
    expect(fs.existsSync(path.join(root, 'usr/sbin/ip'))).toBe(true);
    expect(fs.existsSync(path.join(root, 'usr/share/doc/iproute2/copyright'))).toBe(true);
    expect(find(path.join(root, 'usr/share/doc')).filter((f) => !f.endsWith('/copyright') && !fs.statSync(f).isDirectory())).toEqual([]);
    expect(fs.existsSync(path.join(root, 'usr/share/man/man8/ip.8.gz'))).toBe(false);
    // Merged /usr through usr-is-merged, without usrmerge (which pulls the whole of perl).
    const status = fs.readFileSync(path.join(root, 'var/lib/dpkg/status'), 'utf8');
    expect(status).toMatch(/^Package: usr-is-merged$/m);
    expect(status).not.toMatch(/^Package: (usrmerge|perl)$/m);
    expect(fs.readlinkSync(path.join(root, 'bin'))).toBe('usr/bin');
    expect(find(path.join(store, 'tmp'))).toEqual([]);
  }, 300_000);

  it('a second build and up are cache hits: no mmdebstrap runs, the image phase takes under 1 s', () => {
    // A fake mmdebstrap first on PATH: any run would leave its mark (and fail).
    const fake = path.join(tmp, 'fakebin');
    fs.mkdirSync(fake, { recursive: true });
    const mark = path.join(tmp, 'mmdebstrap-ran');
    fs.writeFileSync(path.join(fake, 'mmdebstrap'), `#!/bin/sh\ntouch ${mark}\nexit 99\n`, { mode: 0o755 });
    const env = { PATH: `${fake}:${process.env.PATH}` };
    const b = ok(['image', 'build', file], { env });
    expect(b.stderr).toMatch(/^image ipr: already in the store as netlab\.invalid\/ipr:bookworm-[0-9a-f]{16} \(\d+\.\d MB\)\n$/);
    expect(b.ms).toBeLessThan(1000);
    labs.push(LAB);
    // --pull always: a built image is never pulled (netlab.invalid resolves nowhere anyway).
    const u = ok(['up', file, '--pull', 'always'], { env });
    expect(u.stderr).not.toMatch(/building|pulling/);
    expect(u.ms).toBeLessThan(3000);
    expect(fs.existsSync(mark)).toBe(false);
    expect(u.stdout).toMatch(new RegExp(`^lab ${LAB} is up: 2 nodes`));
  }, 120_000);

  it('both nodes run from the Debian image: iproute2\'s ip, dash as sh, no busybox', () => {
    for (const n of ['a', 'b']) {
      const v = ok(['exec', LAB, n, '--', 'ip', '-V']);
      expect(v.stdout).toMatch(/^ip utility, iproute2-6\.1\.0/);
      const sh = ok(['exec', LAB, n, '--', 'sh', '-c', 'readlink -f /bin/sh; test -e /bin/busybox && echo busybox; cat /etc/debian_version']);
      expect(sh.stdout).toMatch(/^\/usr\/bin\/dash\n12\.\d+\n$/);
    }
    const st = ok(['status', LAB, '--json']);
    const nodes = (JSON.parse(st.stdout) as { nodes: { name: string; image: { image: string } | null; container: { state: string } }[] }[])[0].nodes;
    expect(nodes.map((n) => [n.name, n.image?.image])).toEqual([['a', expect.stringMatching(/^netlab\.invalid\/ipr:/)], ['b', expect.stringMatching(/^netlab\.invalid\/ipr:/)]]);
    const ps = ok(['exec', LAB, 'a', '--', 'cat', '/proc/1/cmdline']);
    expect(ps.stdout.split('\0')[0]).toBe('/usr/local/sbin/netlab-pause');
    const d = ok(['down', LAB]);
    expect(d.stdout).toMatch(/a\s+exited, code 0/); // netlab-pause stops on SIGTERM
  }, 120_000);

  it('an unknown package or suite: mmdebstrap\'s error in one line, exit 1, nothing built, nothing stored', () => {
    const bad = path.join(tmp, 'bad.yml');
    const badStore = path.join(tmp, 'store-bad');
    const badLab = `hpkg-ibx${RUN}`;
    fs.writeFileSync(bad, `name: ${badLab}\nimages:\n  bad: { debian: bookworm, packages: [iproute2, ${BAD_PKG}] }\nnodes:\n  a: { image: bad }\n`);
    labs.push(badLab);
    const u = cli(['up', bad], { store: badStore, timeoutMs: 300_000 });
    expect(u.status).toBe(1);
    expect(u.stderr).toBe(`netlab: image bad (debian bookworm): Unable to locate package ${BAD_PKG}\n`);
    expect(labLeftovers(badLab)).toEqual([]);
    expect(cli(['status', badLab]).status).not.toBe(0);
    const storeFiles = () => find(badStore).filter((f) => !/\/(oci-layout|index\.json|blobs|blobs\/sha256|layers|layers\/sha256|tmp)$/.test(f));
    expect(storeFiles()).toEqual([]);
    expect(JSON.parse(cli(['image', 'ls', '--json'], { store: badStore }).stdout)).toEqual([]);

    const suite = path.join(tmp, 'suite.yml');
    fs.writeFileSync(suite, `name: ${badLab}\nimages:\n  bad: { debian: ${BAD_SUITE}, packages: [iproute2] }\n`);
    const s = cli(['image', 'build', suite], { store: badStore, timeoutMs: 300_000 });
    expect(s.status).toBe(1);
    expect(s.stderr).toMatch(new RegExp(`^netlab: image bad \\(debian ${BAD_SUITE}\\): The repository '\\S+ ${BAD_SUITE} Release' does not have a Release file\\.\n$`));
    expect(storeFiles()).toEqual([]);
    expect(ours()).toEqual([]);
  }, 300_000);
});
