// Unpacking one layer blob into its own directory, in one pass (decompress -> sha256 of the tar
// for the diff_id -> tar parse -> write), treating the tar as hostile input.
//
// Whiteouts become overlayfs whiteouts (`.wh.NAME` -> a 0/0 character device NAME,
// `.wh..wh..opq` -> trusted.overlay.opaque=y on its directory) instead of being applied by
// flattening the layers: each layer directory is then a ready overlay lowerdir, stored once per
// diff_id and shared by every image and every container that has it; flattening would need a
// copy of the whole root per image (and per tag of it).
//
// Refused (the directory removed, one-line ImageError naming the entry): paths that climb out of
// the layer with `..`, relative symlinks that climb above the layer root from their directory,
// hardlinks to anything that is not already an entry of this layer, an uncompressed stream
// larger than the limit (checked as bytes arrive: a gzip bomb is stopped at the limit), corrupt
// compression, and an input stream that fails (a digest mismatch found at its end). Nothing is
// ever written through a symlink to outside: a parent that is a symlink is resolved inside the
// layer directory, never on the host. Device nodes (character and block) are skipped and listed,
// as mmtarfilter does for /dev/*; FIFOs are made.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { createGunzip } from 'node:zlib';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import { Decompress } from 'fzstd';
import { ImageError } from './types.js';
import { lsetxattr, mknod, S_IFCHR, S_IFIFO } from './fsops.js';

export interface UnpackOptions {
  /** Limit on the uncompressed tar stream in bytes. */
  maxBytes: number;
}

export interface UnpackResult {
  /** sha256 of the uncompressed tar, 'sha256:<hex>'. */
  diffId: string;
  tarBytes: number;
  entries: number;
  /** Device nodes skipped (paths in the layer). */
  skipped: string[];
}

export const LAYER_MEDIA_TYPES: readonly string[] = [
  'application/vnd.oci.image.layer.v1.tar',
  'application/vnd.oci.image.layer.v1.tar+gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  'application/vnd.docker.image.rootfs.diff.tar',
  'application/vnd.docker.image.rootfs.diff.tar.gzip',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  'application/vnd.docker.image.rootfs.diff.tar.zstd',
];

type Compression = 'none' | 'gzip' | 'zstd' | 'auto';

function compressionOf(mediaType: string): Compression {
  if (mediaType === 'auto') return 'auto';
  if (!LAYER_MEDIA_TYPES.includes(mediaType)) throw new ImageError(`layer media type ${mediaType} is not supported (netlab unpacks tar, tar+gzip and tar+zstd layers)`);
  if (/gzip$/.test(mediaType)) return 'gzip';
  if (/zstd$/.test(mediaType)) return 'zstd';
  return 'none';
}

/** zstd as a Transform over fzstd's streaming decompressor. */
function unzstd(): Transform {
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      try { z.push(chunk); cb(); } catch (e) { cb(new ImageError(`corrupt zstd data: ${(e as Error).message}`)); }
    },
    flush(cb) {
      try { z.push(new Uint8Array(0), true); cb(); } catch (e) { cb(new ImageError(`corrupt zstd data: ${(e as Error).message}`)); }
    },
  });
  const z = new Decompress((d) => { t.push(Buffer.from(d)); });
  return t;
}

/** The first bytes decide (docker save archives name no media type): gzip, zstd or plain. */
async function sniffed(blob: Readable): Promise<{ kind: Compression; stream: Readable }> {
  const it = blob[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const first = await it.next();
  const head: Buffer = first.done ? Buffer.alloc(0) : first.value;
  const kind: Compression = head[0] === 0x1f && head[1] === 0x8b ? 'gzip' : head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528 ? 'zstd' : 'none';
  const stream = Readable.from((async function* rest() {
    if (!first.done) yield head;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield r.value;
    }
  })(), { objectMode: false });
  return { kind, stream };
}

function decompressor(kind: Compression): Transform | null {
  if (kind === 'gzip') return createGunzip({ chunkSize: 256 * 1024 });
  if (kind === 'zstd') return unzstd();
  return null;
}

/** Hashes and counts the uncompressed tar; fails as soon as it passes the limit. */
function meter(limit: number, state: { bytes: number; hash: ReturnType<typeof createHash> }): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      state.bytes += chunk.length;
      if (state.bytes > limit) { cb(new ImageError(`layer is larger than ${limit} bytes unpacked (max-layer-size): refused`)); return; }
      state.hash.update(chunk);
      cb(null, chunk);
    },
  });
}

/** An entry's name as a path inside the layer ('' for the root), or an error when it climbs out. */
function inLayer(name: string, what: string): string {
  const n = path.posix.normalize(`/${name}`).replace(/\/+$/, '');
  // normalize('/' + x) clamps `..` at the root; a name that needed clamping climbs out.
  const plain = path.posix.normalize(name.replace(/^\/+/, '')).replace(/\/+$/, '');
  if (plain === '..' || plain.startsWith('../')) throw new ImageError(`${what} ${JSON.stringify(name)} climbs out of the layer`);
  return n === '/' ? '' : n.slice(1);
}

interface Entry { name: string; type: string; mode: number; uid: number; gid: number; mtime: Date; linkname: string | null; pax: Record<string, string> | null }

class LayerWriter {
  readonly skipped: string[] = [];
  entries = 0;
  private readonly dirTimes = new Map<string, Date>();
  /** Paths this layer has made (hardlinks may only point at these). */
  private readonly made = new Set<string>();
  constructor(private readonly root: string) {}

  /** Directories of this layer known to be real directories (layer-relative): a layer of 7,000
   *  entries would otherwise lstat every parent of every entry again. Dropped when an entry
   *  replaces one of them. */
  private readonly dirs = new Set<string>(['']);

  /** The host path for REL, every parent resolved inside the layer: a parent that is a symlink
   *  of this layer is followed with the layer directory as its root (absolute targets and `..`
   *  stay inside), missing parents are made. The last component is not followed. */
  private resolveParent(rel: string): string {
    const parts = rel.split('/');
    const base = parts.pop()!;
    let cur: string[] = [];
    let hops = 0;
    const queue = [...parts];
    while (queue.length > 0) {
      const part = queue.shift()!;
      if (part === '' || part === '.') continue;
      if (part === '..') { cur.pop(); continue; }
      const key = cur.length ? `${cur.join('/')}/${part}` : part;
      if (this.dirs.has(key)) { cur.push(part); continue; }
      const p = path.join(this.root, key);
      const st = fs.lstatSync(p, { throwIfNoEntry: false });
      if (!st) { fs.mkdirSync(p, { mode: 0o755 }); this.dirs.add(key); cur.push(part); continue; }
      if (st.isDirectory()) { this.dirs.add(key); cur.push(part); continue; }
      if (st.isSymbolicLink()) {
        if (++hops > 40) throw new ImageError(`entry ${rel}: too many levels of symbolic links`);
        const target = fs.readlinkSync(p);
        if (target.startsWith('/')) cur = [];
        queue.unshift(...target.split('/'));
        continue;
      }
      // A file where a directory is needed: tar replaces it.
      fs.rmSync(p, { force: true });
      fs.mkdirSync(p, { mode: 0o755 });
      this.dirs.add(key);
      cur.push(part);
    }
    return path.join(this.root, ...cur, base);
  }

  private clear(p: string, keepDir: boolean): void {
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    if (!st) return;
    if (keepDir && st.isDirectory()) return;
    if (st.isDirectory()) {
      const rel = path.relative(this.root, p);
      for (const d of this.dirs) if (d === rel || d.startsWith(`${rel}/`)) this.dirs.delete(d);
    }
    fs.rmSync(p, { recursive: true, force: true });
  }

  private meta(p: string, e: Entry, isLink: boolean): void {
    fs.lchownSync(p, e.uid, e.gid);
    if (!isLink) fs.chmodSync(p, e.mode & 0o7777); // after chown, which clears setuid
    for (const [k, v] of Object.entries(e.pax ?? {})) {
      if (k.startsWith('SCHILY.xattr.')) lsetxattr(p, k.slice('SCHILY.xattr.'.length), Buffer.from(v, 'binary'));
    }
    if (e.type === 'directory') this.dirTimes.set(p, e.mtime);
    else fs.lutimesSync(p, e.mtime, e.mtime);
  }

  /** Prepares the entry; for a regular file returns the open descriptor to write its data to. */
  begin(e: Entry): number | null {
    this.entries++;
    const rel = inLayer(e.name, 'entry');
    if (rel === '') { if (e.type === 'directory') this.meta(this.root, e, false); return null; }
    const base = path.posix.basename(rel);
    if (base === '.wh..wh..opq') {
      const dir = path.dirname(this.resolveParent(rel));
      fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
      lsetxattr(dir, 'trusted.overlay.opaque', Buffer.from('y'));
      return null;
    }
    if (base.startsWith('.wh.')) {
      const target = this.resolveParent(path.posix.join(path.posix.dirname(rel), base.slice(4)));
      this.clear(target, false);
      mknod(target, S_IFCHR | 0o600, 0);
      return null;
    }
    const p = this.resolveParent(rel);
    switch (e.type) {
      case 'directory': {
        this.clear(p, true);
        if (!fs.existsSync(p)) fs.mkdirSync(p, { mode: 0o755 });
        this.meta(p, e, false);
        this.made.add(rel);
        return null;
      }
      case 'symlink': {
        const target = e.linkname ?? '';
        if (!target.startsWith('/')) {
          const climbs = path.posix.normalize(path.posix.join(path.posix.dirname(rel), target));
          if (climbs === '..' || climbs.startsWith('../')) throw new ImageError(`symlink ${rel} -> ${target} points outside the layer`);
        }
        this.clear(p, false);
        fs.symlinkSync(target, p);
        this.meta(p, e, true);
        this.made.add(rel);
        return null;
      }
      case 'link': {
        const targetRel = inLayer(e.linkname ?? '', `hardlink ${rel} ->`);
        if (!this.made.has(targetRel)) throw new ImageError(`hardlink ${rel} -> ${e.linkname} does not point at an earlier entry of this layer`);
        const target = this.resolveParent(targetRel);
        const st = fs.lstatSync(target, { throwIfNoEntry: false });
        if (!st || st.isDirectory()) throw new ImageError(`hardlink ${rel} -> ${e.linkname}: no such file in this layer`);
        this.clear(p, false);
        fs.linkSync(target, p);
        this.made.add(rel);
        return null;
      }
      case 'character-device':
      case 'block-device':
        this.skipped.push(rel);
        return null;
      case 'fifo':
        this.clear(p, false);
        mknod(p, S_IFIFO | (e.mode & 0o777), 0);
        this.meta(p, e, false);
        this.made.add(rel);
        return null;
      case 'file':
      case 'contiguous-file': {
        this.clear(p, false);
        const fd = fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
        this.made.add(rel);
        return fd;
      }
      default:
        throw new ImageError(`entry ${rel} has tar type ${e.type}, which a layer may not hold`);
    }
  }

  endFile(fd: number, e: Entry): void {
    fs.closeSync(fd);
    this.meta(this.resolveParent(inLayer(e.name, 'entry')), e, false);
  }

  finish(): void {
    // Directory times last, deepest first: writing into a directory changes its mtime.
    for (const [p, t] of [...this.dirTimes].sort((a, b) => b[0].length - a[0].length)) fs.utimesSync(p, t, t);
  }
}

const MAX_PAX_BYTES = 1 << 20;

/** Unpacks a layer into DIR (which must not exist yet); see the header for what is refused. */
export async function unpackLayer(blob: Readable, mediaType: string, dir: string, o: UnpackOptions): Promise<UnpackResult> {
  const kind = compressionOf(mediaType);
  fs.mkdirSync(dir, { mode: 0o755 });
  const state = { bytes: 0, hash: createHash('sha256') };
  const writer = new LayerWriter(dir);
  const extract = tar.extract();
  extract.on('entry', (h, stream, next) => {
    // A refused entry ends the whole extraction, which destroys this entry's stream with the
    // same error: reported once, by the pipeline, not again as an unhandled stream error.
    stream.on('error', () => {});
    const pax = (h as { pax?: Record<string, string> }).pax ?? null;
    const e: Entry = {
      name: h.name, type: h.type ?? 'file', mode: h.mode ?? 0o644, uid: h.uid ?? 0, gid: h.gid ?? 0,
      mtime: h.mtime ?? new Date(0), linkname: h.linkname ?? null, pax,
    };
    let fd: number | null;
    try {
      if (pax && Object.values(pax).reduce((s, v) => s + v.length, 0) > MAX_PAX_BYTES) throw new ImageError(`entry ${h.name}: PAX header larger than ${MAX_PAX_BYTES} bytes`);
      fd = writer.begin(e);
    } catch (err) {
      stream.resume();
      // ENOSPC and the like keep their code: the caller names them as such.
      next(err instanceof ImageError || (err as NodeJS.ErrnoException).code ? err as Error : new ImageError(`entry ${h.name}: ${(err as Error).message}`));
      return;
    }
    if (fd === null) { stream.on('end', () => next()); stream.resume(); return; }
    const file = fd;
    stream.on('data', (c) => {
      try { fs.writeSync(file, c as Buffer); } catch (err) { extract.destroy(err as Error); }
    });
    stream.on('end', () => {
      try { writer.endFile(file, e); next(); } catch (err) { next(err as Error); }
    });
    stream.on('error', () => { try { fs.closeSync(file); } catch { /* closed */ } });
  });
  try {
    const input = kind === 'auto' ? await sniffed(blob) : { kind, stream: blob };
    const inflate = decompressor(input.kind);
    if (inflate) await pipeline(input.stream, inflate, meter(o.maxBytes, state), extract);
    else await pipeline(input.stream, meter(o.maxBytes, state), extract);
    writer.finish();
    return { diffId: `sha256:${state.hash.digest('hex')}`, tarBytes: state.bytes, entries: writer.entries, skipped: writer.skipped };
  } catch (e) {
    blob.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
    if (e instanceof ImageError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'Z_DATA_ERROR' || code === 'Z_BUF_ERROR') throw new ImageError(`layer is not valid gzip data (${(e as Error).message})`);
    if (code === 'ENOSPC') throw new ImageError(`no space left on the device of ${dir} while unpacking a layer`);
    throw new ImageError(`layer cannot be unpacked: ${(e as Error).message}`);
  }
}
