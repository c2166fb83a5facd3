// Layer unpacking as hostile input (runtime/images/unpack.ts), as root: tars built on purpose
// for every refusal (escaping paths, escaping and write-through symlinks, hardlinks out of the
// layer, devices, a gzip bomb, corrupt data, a stream that fails at its end), each asserting the
// message, that the layer directory is gone and that nothing outside changed; what a root needs
// kept (modes with setuid, owners, xattrs, times, hardlinks, whiteouts in overlayfs form, zstd);
// and a differential test: every test image unpacked layer by layer and mounted as overlayfs
// equals `umoci unpack` of the same image, file by file.
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar-stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { unpackLayer } from '../../runtime/images/unpack.js';
import { lgetxattr } from '../../runtime/images/fsops.js';
import { buildTestImages, type OciLayout } from '../helpers/oci-build.js';

const isRoot = process.getuid?.() === 0;
const haveUmoci = spawnSync('sh', ['-c', 'command -v umoci && command -v zstd']).status === 0;
if (!isRoot || !haveUmoci) console.warn('test/integration/unpack.test.ts skipped: it needs root, umoci and zstd');

interface E { name: string; type?: tar.Headers['type']; linkname?: string; data?: string | Buffer; mode?: number; uid?: number; gid?: number; mtime?: Date; pax?: Record<string, string> }

function tarOf(entries: E[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise<Buffer>((res, rej) => { pack.on('end', () => res(Buffer.concat(chunks))); pack.on('error', rej); });
  for (const e of entries) {
    const data = e.data === undefined ? undefined : Buffer.from(e.data);
    const h: tar.Headers = { name: e.name, type: e.type ?? 'file', mode: e.mode ?? (e.type === 'directory' ? 0o755 : 0o644), uid: e.uid ?? 0, gid: e.gid ?? 0, mtime: e.mtime ?? new Date(1_700_000_000_000), ...(e.linkname ? { linkname: e.linkname } : {}), ...(e.pax ? { pax: e.pax } : {}) };
    if (e.type === 'character-device' || e.type === 'block-device') Object.assign(h, { devmajor: 1, devminor: 3 });
    pack.entry(h, data);
  }
  pack.finalize();
  return done;
}

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const MAX = 64 << 20;

describe.skipIf(!isRoot || !haveUmoci)('unpacking layers', () => {
  let tmp = '';
  let outside = '';
  let n = 0;
  const mounts: string[] = [];
  const fresh = () => path.join(tmp, `layer-${++n}`);
  const listOutside = () => execFileSync('find', [outside, '-printf', '%p %m %s\\n'], { encoding: 'utf8' });

  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-unpack-'));
    outside = path.join(tmp, 'outside');
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'keep'), 'untouched\n');
  });
  afterEach(() => {
    for (const m of mounts.splice(0)) spawnSync('umount', [m]);
  });
  afterAll(() => {
    const left = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => tmp && l.includes(tmp));
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    expect(left).toEqual([]);
  });

  async function refused(entries: E[] | Buffer, re: RegExp, media = 'application/vnd.oci.image.layer.v1.tar', maxBytes = MAX): Promise<void> {
    const before = listOutside();
    const dir = fresh();
    const bytes = Buffer.isBuffer(entries) ? entries : await tarOf(entries);
    await expect(unpackLayer(Readable.from([bytes]), media, dir, { maxBytes })).rejects.toThrow(re);
    expect(fs.existsSync(dir)).toBe(false);
    expect(listOutside()).toBe(before);
  }

  it('refuses paths that climb out of the layer', async () => {
    await refused([{ name: '../x', data: 'x' }], /entry "\.\.\/x" climbs out of the layer/);
    await refused([{ name: 'ok', data: '1' }, { name: 'a/../../x', data: 'x' }], /"a\/\.\.\/\.\.\/x" climbs out/);
    await refused([{ name: '/../etc/x', data: 'x' }], /climbs out/);
  });

  it('refuses relative symlinks that climb above the layer root; absolute targets are kept', async () => {
    await refused([{ name: 'l', type: 'symlink', linkname: '../../..' }], /symlink l -> \.\.\/\.\.\/\.\. points outside the layer/);
    await refused([{ name: 'a/b/l', type: 'symlink', linkname: '../../../etc' }], /points outside the layer/);
    const dir = fresh();
    await unpackLayer(Readable.from([await tarOf([{ name: 'bin/sh', type: 'symlink', linkname: '/bin/busybox' }, { name: 'usr/lib/x', type: 'symlink', linkname: '../../etc/x' }])]), 'application/vnd.oci.image.layer.v1.tar', dir, { maxBytes: MAX });
    expect(fs.readlinkSync(path.join(dir, 'bin/sh'))).toBe('/bin/busybox');
    expect(fs.readlinkSync(path.join(dir, 'usr/lib/x'))).toBe('../../etc/x');
  });

  it('never writes through a symlink to outside: a symlinked parent resolves inside the layer', async () => {
    const before = listOutside();
    const dir = fresh();
    await unpackLayer(Readable.from([await tarOf([
      { name: 'a', type: 'symlink', linkname: outside },
      { name: 'a/file', data: 'written\n' },
      { name: 'a/keep', data: 'overwritten?\n' },
    ])]), 'application/vnd.oci.image.layer.v1.tar', dir, { maxBytes: MAX });
    expect(listOutside()).toBe(before);
    expect(fs.readFileSync(path.join(outside, 'keep'), 'utf8')).toBe('untouched\n');
    // The write landed where the container will see it: <root><outside>/file inside the layer.
    expect(fs.readFileSync(path.join(dir, outside, 'file'), 'utf8')).toBe('written\n');
    expect(fs.lstatSync(path.join(dir, 'a')).isSymbolicLink()).toBe(true);
  });

  it('refuses hardlinks out of the layer or to anything it has not unpacked itself', async () => {
    await refused([{ name: 'h', type: 'link', linkname: 'etc/passwd' }], /hardlink h -> etc\/passwd does not point at an earlier entry of this layer/);
    await refused([{ name: 'h', type: 'link', linkname: '../outside/keep' }], /climbs out of the layer/);
    await refused([{ name: 'h', type: 'link', linkname: '/../../etc/passwd' }], /climbs out/);
  });

  it('skips device nodes and lists them; makes FIFOs', async () => {
    const dir = fresh();
    const r = await unpackLayer(Readable.from([await tarOf([
      { name: 'dev/', type: 'directory' },
      { name: 'dev/null', type: 'character-device' },
      { name: 'dev/sda', type: 'block-device' },
      { name: 'run/fifo', type: 'fifo', mode: 0o600 },
    ])]), 'application/vnd.oci.image.layer.v1.tar', dir, { maxBytes: MAX });
    expect(r.skipped).toEqual(['dev/null', 'dev/sda']);
    expect(fs.readdirSync(path.join(dir, 'dev'))).toEqual([]);
    expect(fs.lstatSync(path.join(dir, 'run/fifo')).isFIFO()).toBe(true);
  });

  it('stops a gzip bomb at the limit, quickly and in bounded memory', async () => {
    const zeros = Buffer.alloc(256 << 20);
    const plain = await tarOf([{ name: 'big', data: zeros }]);
    const bomb = gzipSync(plain, { level: 9 });
    expect(bomb.length).toBeLessThan(1 << 20);
    const rss0 = process.memoryUsage().rss;
    const t0 = performance.now();
    await refused(bomb, /larger than 8388608 bytes unpacked \(max-layer-size\)/, 'application/vnd.oci.image.layer.v1.tar+gzip', 8 << 20);
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(process.memoryUsage().rss - rss0).toBeLessThan(200 << 20);
  });

  it('refuses corrupt compression and a stream that fails at its end', async () => {
    const gz = gzipSync(await tarOf([{ name: 'f', data: 'x'.repeat(10_000) }]));
    gz[gz.length >> 1] ^= 0xff;
    await refused(gz, /gzip|corrupt|unpacked/, 'application/vnd.oci.image.layer.v1.tar+gzip');
    await refused(Buffer.from('not zstd at all, not at all'), /zstd/, 'application/vnd.oci.image.layer.v1.tar+zstd');
    const bytes = await tarOf([{ name: 'f', data: 'fine' }]);
    const dir = fresh();
    const failing = new Readable({ read() { this.push(bytes); this.destroy(new Error('blob sha256:abc: content has digest sha256:def')); } });
    await expect(unpackLayer(failing, 'application/vnd.oci.image.layer.v1.tar', dir, { maxBytes: MAX })).rejects.toThrow(/sha256:def/);
    expect(fs.existsSync(dir)).toBe(false);
    await refused([{ name: 'x', data: 'y' }], /media type application\/x-nope is not supported/, 'application/x-nope');
  });

  it('keeps what a root needs: owners, setuid modes, xattrs, times, hardlinks; whiteouts in overlayfs form; zstd and auto', async () => {
    const mtime = new Date(1_600_000_000_000);
    const entries: E[] = [
      { name: 'usr/bin/', type: 'directory', mtime },
      { name: 'usr/bin/su', data: '#!su', mode: 0o4755, uid: 0, gid: 0 },
      { name: 'usr/bin/ping', data: 'ping', mode: 0o755, pax: { 'SCHILY.xattr.security.capability': Buffer.from('0100000200200000000000000000000000000000', 'hex').toString('binary') } },
      { name: 'home/app/file', data: 'mine', uid: 1000, gid: 1000, mode: 0o640, mtime },
      { name: 'home/app/hard', type: 'link', linkname: 'home/app/file' },
      { name: 'etc/.wh.gone', data: '' },
      { name: 'www/.wh..wh..opq', data: '' },
      { name: 'www/new.html', data: 'n' },
      { name: 'x'.repeat(120) + '/' + 'y'.repeat(150), data: 'long name' },
    ];
    const plain = await tarOf(entries);
    const zst = path.join(tmp, 'layer.tar.zst');
    fs.writeFileSync(path.join(tmp, 'layer.tar'), plain);
    execFileSync('zstd', ['-q', '-f', path.join(tmp, 'layer.tar'), '-o', zst]);
    for (const [media, bytes] of [
      ['application/vnd.oci.image.layer.v1.tar', plain],
      ['application/vnd.oci.image.layer.v1.tar+gzip', gzipSync(plain)],
      ['application/vnd.oci.image.layer.v1.tar+zstd', fs.readFileSync(zst)],
      ['auto', gzipSync(plain)],
      ['auto', fs.readFileSync(zst)],
      ['auto', plain],
    ] as [string, Buffer][]) {
      const dir = fresh();
      const r = await unpackLayer(Readable.from([bytes]), media, dir, { maxBytes: MAX });
      expect(r.diffId, media).toBe(sha(plain));
      expect(r.tarBytes).toBe(plain.length);
      const su = fs.statSync(path.join(dir, 'usr/bin/su'));
      expect(su.mode & 0o7777).toBe(0o4755);
      const own = fs.statSync(path.join(dir, 'home/app/file'));
      expect([own.uid, own.gid, own.mode & 0o777, own.mtimeMs]).toEqual([1000, 1000, 0o640, mtime.getTime()]);
      expect(own.nlink).toBe(2);
      expect(fs.statSync(path.join(dir, 'usr/bin')).mtimeMs).toBe(mtime.getTime());
      expect(lgetxattr(path.join(dir, 'usr/bin/ping'), 'security.capability')?.toString('hex')).toBe('0100000200200000000000000000000000000000');
      const wh = fs.lstatSync(path.join(dir, 'etc/gone'));
      expect([wh.isCharacterDevice(), wh.rdev]).toEqual([true, 0]);
      expect(fs.existsSync(path.join(dir, 'etc/.wh.gone'))).toBe(false);
      expect(lgetxattr(path.join(dir, 'www'), 'trusted.overlay.opaque')?.toString()).toBe('y');
      expect(fs.readdirSync(path.join(dir, 'www'))).toEqual(['new.html']);
      expect(fs.readFileSync(path.join(dir, 'x'.repeat(120), 'y'.repeat(150)), 'utf8')).toBe('long name');
    }
  });

  describe('differential: netlab\'s layers as overlayfs equal umoci unpack', () => {
    let images: OciLayout;
    beforeAll(() => { images = buildTestImages(path.join(tmp, 'images')); }, 120_000);

    /** path -> "type mode uid:gid size sha|target" for every entry under root. */
    function tree(root: string): Map<string, string> {
      const out = new Map<string, string>();
      const walk = (rel: string) => {
        const p = path.join(root, rel);
        const st = fs.lstatSync(p);
        const mode = (st.mode & 0o7777).toString(8);
        let what: string;
        if (st.isSymbolicLink()) what = `l ${fs.readlinkSync(p)}`;
        else if (st.isDirectory()) what = 'd';
        else if (st.isFile()) what = `f ${st.size} ${sha(fs.readFileSync(p))} ${Math.floor(st.mtimeMs / 1000)}`;
        else what = `other ${st.mode.toString(8)}`;
        if (rel) out.set(rel, `${what} ${st.isSymbolicLink() ? '' : mode} ${st.uid}:${st.gid}`);
        if (st.isDirectory() && !st.isSymbolicLink()) for (const e of fs.readdirSync(p).sort()) walk(rel ? `${rel}/${e}` : e);
      };
      walk('');
      return out;
    }

    for (const tag of ['base', 'multi', 'whiteout', 'opaque', 'user']) {
      it(tag, async () => {
        const blobs = path.join(images.layout, 'blobs/sha256');
        const manifest = JSON.parse(fs.readFileSync(path.join(blobs, images.digest(tag).slice(7)), 'utf8')) as { config: { digest: string }; layers: { digest: string; mediaType: string }[] };
        const config = JSON.parse(fs.readFileSync(path.join(blobs, manifest.config.digest.slice(7)), 'utf8')) as { rootfs: { diff_ids: string[] } };
        const dirs: string[] = [];
        for (const [i, l] of manifest.layers.entries()) {
          const dir = fresh();
          const r = await unpackLayer(fs.createReadStream(path.join(blobs, l.digest.slice(7))), l.mediaType, dir, { maxBytes: MAX });
          expect(r.diffId).toBe(config.rootfs.diff_ids[i]);
          dirs.push(dir);
        }
        let merged = dirs[0];
        if (dirs.length > 1) {
          merged = path.join(tmp, `merged-${tag}-${randomBytes(3).toString('hex')}`);
          fs.mkdirSync(merged);
          execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${[...dirs].reverse().join(':')}`, merged]);
          mounts.push(merged);
        }
        const bundle = images.unpack(tag, path.join(tmp, `umoci-${tag}-${randomBytes(3).toString('hex')}`));
        const ours = tree(merged);
        const theirs = tree(path.join(bundle, 'rootfs'));
        expect(ours.size).toBeGreaterThan(100);
        expect([...ours.entries()].filter(([k, v]) => theirs.get(k) !== v)).toEqual([]);
        expect([...theirs.keys()].filter((k) => !ours.has(k))).toEqual([]);
      }, 60_000);
    }
  });
});
