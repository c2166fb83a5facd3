// Images declared from Debian packages (`images:`), without building anything: the recipe's
// validation at file:line:col, its hash and store reference, the node's image becoming that
// reference, the machine's Debian mirror read from apt sources (one-line and deb822 forms, in
// a directory of the test's own), mmdebstrap's arguments and its error reduced to one line.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadTopologyText } from '../../topology/load.js';
import { parseImageReference } from '../../topology/image-ref.js';
import { recipeHash, recipeRef, suiteProblem } from '../../topology/resolve-images.js';
import { machineMirror, mirrorLine, mmdebstrapArgs, mmdebstrapError, mmtarfilterArgs } from '../../runtime/images/build.js';

const lab = (images: string, nodes = '  a: { image: frr }\n') => loadTopologyText(`name: t\nimages:\n${images}nodes:\n${nodes}`, 'x.yml');
const problems = (images: string, nodes?: string) => lab(images, nodes).diagnostics.map((d) => `${d.line}:${d.col}: ${d.message}`);

describe('images: validation', () => {
  it('a good recipe: the Lab keeps it (packages sorted) and the node runs its store reference', () => {
    const r = lab('  frr: { debian: bookworm, packages: [tcpdump, frr, iproute2] }\n', '  a: { image: frr }\n  b: {}\n  c: { image: frr:9 }\n');
    expect(r.diagnostics).toEqual([]);
    const img = r.lab!.images![0];
    expect(img).toEqual({ name: 'frr', debian: 'bookworm', packages: ['frr', 'iproute2', 'tcpdump'], ref: `netlab.invalid/frr:bookworm-${recipeHash('bookworm', ['frr', 'iproute2', 'tcpdump'])}` });
    expect(r.lab!.nodes.map((n) => n.image)).toEqual([img.ref, 'busybox', 'frr:9']);
    // A canonical reference: parsing it changes nothing, and it names no registry that resolves.
    const p = parseImageReference(img.ref);
    expect(p.canonical).toBe(img.ref);
    expect(p.registry).toBe('netlab.invalid');
  });

  it('a lab without images: has no images key (its model is what it was)', () => {
    const r = loadTopologyText('name: t\nnodes:\n  a: {}\n', 'x.yml');
    expect(r.lab).not.toBeNull();
    expect('images' in r.lab!).toBe(false);
  });

  it('the hash is of the suite and the sorted packages: order does not matter, content does', () => {
    expect(recipeHash('bookworm', ['b1', 'a1'])).toBe(recipeHash('bookworm', ['a1', 'b1']));
    expect(recipeHash('bookworm', ['a1'])).not.toBe(recipeHash('trixie', ['a1']));
    expect(recipeHash('bookworm', ['a1'])).not.toBe(recipeHash('bookworm', ['a1', 'b1']));
    expect(recipeHash('bookworm', ['a1'])).toMatch(/^[0-9a-f]{16}$/);
    // Lab-independent: the same recipe under the same name in two labs is one image.
    const a = loadTopologyText('name: one\nimages: { x: { debian: sid, packages: [iproute2] } }\n', 'a.yml').lab!;
    const b = loadTopologyText('name: two\nimages: { x: { debian: sid, packages: [iproute2] } }\n', 'b.yml').lab!;
    expect(a.images![0].ref).toBe(b.images![0].ref);
    expect(recipeRef('x', 'sid', ['iproute2'])).toBe(a.images![0].ref);
  });

  it('schema problems: unknown key, empty package list, missing suite, a name that is a reference', () => {
    expect(problems('  frr: { debian: bookworm, packages: [frr], cmd: x }\n')).toEqual(['3:45: unknown key "cmd" (allowed: debian, packages)']);
    expect(problems('  frr: { debian: bookworm, packages: [] }\n')).toEqual(['3:38: expected at least 1 items, found 0']);
    expect(problems('  frr: { packages: [frr] }\n')).toEqual(['3:3: missing required key "debian"']);
    expect(problems('  "quay.io/frr": { debian: bookworm, packages: [frr] }\n')[0]).toMatch(/^3:3: name "quay.io\/frr" is not allowed; expected .*not a registry reference/);
    expect(problems('  "frr:9": { debian: bookworm, packages: [frr] }\n')[0]).toMatch(/^3:3: name "frr:9" is not allowed/);
  });

  it('meaning: a name of netlab\'s own, implausible suites, bad or repeated package names', () => {
    expect(problems('  busybox: { debian: bookworm, packages: [frr] }\n', '  a: {}\n')).toEqual(['3:3: image name "busybox" is netlab\'s own image; choose another name']);
    expect(problems('  host: { debian: bookworm, packages: [frr] }\n', '  a: {}\n')).toEqual(['3:3: image name "host" is netlab\'s own image; choose another name']);
    expect(problems('  frr: { debian: "12", packages: [frr] }\n')).toEqual(['3:18: "12" is a Debian version; the suite is named by its codename: debian: bookworm']);
    expect(problems('  frr: { debian: jammy, packages: [frr] }\n')[0]).toMatch(/^3:18: "jammy" is an Ubuntu release/);
    expect(problems('  frr: { debian: Bookworm, packages: [frr] }\n')).toEqual(['3:18: Debian suite names are lowercase: debian: bookworm']);
    expect(problems('  frr: { debian: bookworm-backports, packages: [frr] }\n')[0]).toMatch(/^3:18: "bookworm-backports" is an add-on to bookworm/);
    expect(problems('  frr: { debian: "debian 12", packages: [frr] }\n')[0]).toMatch(/^3:18: "debian 12" is not a Debian suite/);
    expect(problems('  frr: { debian: bookworm, packages: [frr, FRR, "frr=8.4", "a,b", x, frr] }\n')).toEqual([
      '3:44: "FRR" is not a Debian package name: at least two of a-z, 0-9, \'+\', \'-\', \'.\', starting with a letter or digit (package names are lowercase)',
      '3:49: "frr=8.4" is not a Debian package name: at least two of a-z, 0-9, \'+\', \'-\', \'.\', starting with a letter or digit (versions and releases cannot be pinned: the suite decides)',
      '3:60: "a,b" is not a Debian package name: at least two of a-z, 0-9, \'+\', \'-\', \'.\', starting with a letter or digit',
      '3:67: "x" is not a Debian package name: at least two of a-z, 0-9, \'+\', \'-\', \'.\', starting with a letter or digit',
      '3:70: package frr is listed twice (also item 1)',
    ]);
    // Plausible but unknown suites are left to the mirror (mmdebstrap says so, in one line).
    for (const s of ['bookworm', 'trixie', 'sid', 'stable', 'testing', 'unstable', 'oldstable', 'forky', 'someday']) expect(suiteProblem(s)).toBeNull();
    // Package names Debian has, with the characters policy allows.
    expect(problems('  frr: { debian: bookworm, packages: [g++, libstdc++6, python3.11, iputils-ping] }\n')).toEqual([]);
  });

  it('a node cannot name netlab.invalid directly', () => {
    expect(problems('  frr: { debian: bookworm, packages: [frr] }\n', '  a: { image: "netlab.invalid/frr:x" }\n')).toEqual([
      '5:15: netlab.invalid names images netlab builds from `images:`; declare the image there and write image: NAME',
    ]);
  });
});

describe('the machine\'s Debian mirror', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hpkg-apt-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const etc = (files: Record<string, string>) => {
    const d = fs.mkdtempSync(path.join(tmp, 'etc-'));
    fs.mkdirSync(path.join(d, 'sources.list.d'));
    for (const [f, t] of Object.entries(files)) fs.writeFileSync(path.join(d, f), t);
    return d;
  };

  it('deb822: the Debian source, not security, not other vendors; its Signed-By keyring', () => {
    const d = etc({
      'sources.list.d/nodesource.sources': 'Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\nComponents: main\n',
      'sources.list.d/debian.sources': [
        'Types: deb', '# a comment', 'URIs: http://mirror.example/debian', 'Suites: bookworm bookworm-updates', 'Components: main contrib',
        'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg', '',
        'Types: deb', 'URIs: http://mirror.example/debian-security', 'Suites: bookworm-security', 'Components: main', '',
      ].join('\n'),
    });
    const m = machineMirror({ etcApt: d, env: {}, codename: 'bookworm' });
    expect(m).toEqual({ uri: 'http://mirror.example/debian', components: ['main', 'contrib'], signedBy: '/usr/share/keyrings/debian-archive-keyring.gpg', from: path.join(d, 'sources.list.d/debian.sources') });
    expect(mirrorLine(m, 'trixie')).toBe('deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.example/debian trixie main contrib');
  });

  it('one-line sources.list; a disabled deb822 source and files of other extensions are not read', () => {
    const d = etc({
      'sources.list': '# deb http://old.example/debian buster main\ndeb-src http://src.example/debian bookworm main\ndeb [arch=amd64] http://one.example/debian bookworm main\n',
      'sources.list.d/x.sources': 'Enabled: no\nTypes: deb\nURIs: http://off.example/debian\nSuites: bookworm\nComponents: main\n',
      'sources.list.d/y.list.disabled': 'deb http://no.example/debian bookworm main\n',
    });
    const m = machineMirror({ etcApt: d, env: {}, codename: 'bookworm' });
    expect(m.uri).toBe('http://one.example/debian');
    expect(m.signedBy).toBeNull();
    expect(mirrorLine(m, 'bookworm')).toBe('deb http://one.example/debian bookworm main');
  });

  it('the machine\'s own codename first; NETLAB_DEBIAN_MIRROR overrides; none is one clear line', () => {
    const d = etc({ 'sources.list': 'deb http://a.example/debian bullseye main\ndeb http://b.example/debian bookworm main\n' });
    expect(machineMirror({ etcApt: d, env: {}, codename: 'bookworm' }).uri).toBe('http://b.example/debian');
    expect(machineMirror({ etcApt: d, env: {}, codename: null }).uri).toBe('http://a.example/debian');
    expect(machineMirror({ etcApt: d, env: { NETLAB_DEBIAN_MIRROR: 'http://m.example/debian' } }).uri).toBe('http://m.example/debian');
    const ubuntu = etc({ 'sources.list': 'deb http://archive.ubuntu.com/ubuntu jammy main\n' });
    expect(() => machineMirror({ etcApt: ubuntu, env: {}, codename: 'jammy' })).toThrow(/^no Debian mirror in this machine's apt sources .*NETLAB_DEBIAN_MIRROR/);
  });
});

describe('mmdebstrap', () => {
  it('its arguments: unshare, essential, the packages, docs dropped but copyright kept, the one mirror line', () => {
    const args = mmdebstrapArgs({ name: 'x', debian: 'bookworm', packages: ['iproute2', 'tcpdump'], ref: 'r' }, { uri: 'http://m.example/debian', components: ['main'], signedBy: null, from: 't' });
    expect(args).toContain('--mode=unshare');
    expect(args).toContain('--variant=essential');
    expect(args).toContain('--include=iproute2,tcpdump');
    expect(args).toContain('--dpkgopt=path-exclude=/usr/share/doc/*');
    expect(args).toContain('--dpkgopt=path-include=/usr/share/doc/*/copyright');
    expect(args.slice(-3)).toEqual(['bookworm', '-', 'deb http://m.example/debian bookworm main']);
    expect(mmtarfilterArgs()).toEqual(expect.arrayContaining(['--path-exclude=/dev/*', '--path-exclude=/usr/share/man/*', '--path-include=/usr/share/doc/*/copyright']));
  });

  it('its error in one line: the cause, not the wrappers around it', () => {
    const pkg = [
      'I: running apt-get update...', 'Reading package lists...', 'E: Unable to locate package no-such-pkg-xyz',
      'E: setup failed: E: apt-get -o Dir::Bin::dpkg=env --yes install iproute2 no-such-pkg-xyz failed',
      'I: main() received signal PIPE: waiting for setup...', 'E: mmdebstrap failed to run', '',
    ].join('\n');
    expect(mmdebstrapError(pkg)).toBe('Unable to locate package no-such-pkg-xyz');
    const suite = [
      'Err:2 http://deb.debian.org/debian bogosuite Release', '  404  Not Found [IP: 203.0.113.80 80]',
      "E: The repository 'http://deb.debian.org/debian bogosuite Release' does not have a Release file.",
      'E: command failed: /usr/share/mmdebstrap/hooks/maybe-merged-usr/setup00.sh', 'E: mmdebstrap failed to run',
    ].join('\n');
    expect(mmdebstrapError(suite)).toBe("The repository 'http://deb.debian.org/debian bogosuite Release' does not have a Release file.");
    expect(mmdebstrapError('something odd\n')).toBe('something odd');
  });
});
