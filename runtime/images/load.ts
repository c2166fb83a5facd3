// `netlab image load`: images from files instead of a registry. Three forms, as Docker and the
// OCI tools write them: a `docker save` archive (legacy: manifest.json + <id>.json configs +
// layer tars; Docker 25+ writes an OCI layout next to it), an OCI image layout directory, or an
// OCI layout as a tar (optionally gzip-compressed). An archive is hostile input like a layer:
// its members are extracted as plain files into a private temp directory under the store
// (names checked, links resolved inside the archive only), then every blob is verified against
// its digest on the way into the store, exactly as a pulled one.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { createGunzip } from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { parseImageReference } from '../../topology/image-ref.js';
import { loadConfig, type NetlabConfig } from './config.js';
import { currentPlatform, indexPlatforms, platformString, selectPlatform, type Descriptor, type ImageManifest } from './registry.js';
import { ImageError } from './types.js';
import {
  findEntry, imageOf, initStore, MEDIA, putBlob, putLayer, recordImage, STORE, storePaths, verifiedStream,
  type OciImageConfig, type StoredImage,
} from './store.js';

const MAX_ARCHIVE_MEMBERS = 100_000;

/** A tree of files read from an archive or a directory, by archive-relative path. */
interface Source {
  read(name: string): Buffer | null;
  open(name: string): Readable;
  has(name: string): boolean;
}

function dirSource(dir: string, links: Map<string, string> = new Map()): Source {
  const resolve = (name: string): string => {
    let n = path.posix.normalize(name).replace(/^(\.\/)+/, '').replace(/^\/+/, '');
    for (let i = 0; i < 16 && links.has(n); i++) n = links.get(n)!;
    if (n.startsWith('../') || n === '..') throw new ImageError(`archive member ${name} points outside the archive`);
    const full = path.join(dir, n);
    // A directory given by the user may hold symlinks: they must not lead out of it.
    const real = fs.existsSync(full) ? fs.realpathSync(full) : full;
    const base = fs.realpathSync(dir);
    if (real !== base && !real.startsWith(base + path.sep)) throw new ImageError(`${name} resolves outside ${dir}`);
    return full;
  };
  return {
    has: (name) => { try { return fs.statSync(resolve(name)).isFile(); } catch { return false; } },
    read: (name) => { try { return fs.readFileSync(resolve(name)); } catch { return null; } },
    open: (name) => fs.createReadStream(resolve(name), { highWaterMark: 1 << 20 }),
  };
}

function safeMember(name: string): string | null {
  const n = path.posix.normalize(name).replace(/^(\.\/)+/, '').replace(/\/+$/, '');
  if (n === '' || n === '.') return null;
  if (n.startsWith('/') || n === '..' || n.startsWith('../')) throw new ImageError(`archive member ${JSON.stringify(name)} escapes the archive`);
  return n;
}

/** Extracts an archive's regular files into DIR (nothing else is created: links are recorded and
 *  resolved by name, devices refused). */
async function extractArchive(file: string, dir: string): Promise<Map<string, string>> {
  const links = new Map<string, string>();
  const head = Buffer.alloc(2);
  const fd = fs.openSync(file, 'r');
  try { fs.readSync(fd, head, 0, 2, 0); } finally { fs.closeSync(fd); }
  const extract = tar.extract();
  let members = 0;
  extract.on('entry', (h, stream, next) => {
    const done = (e?: Error) => { stream.resume(); next(e); };
    try {
      if (++members > MAX_ARCHIVE_MEMBERS) throw new ImageError(`${file}: more than ${MAX_ARCHIVE_MEMBERS} members`);
      const name = safeMember(h.name);
      if (name === null || h.type === 'directory') { done(); return; }
      if (h.type === 'symlink' || h.type === 'link') {
        const target = h.type === 'symlink' ? path.posix.join(path.posix.dirname(name), h.linkname ?? '') : (h.linkname ?? '');
        const t = safeMember(target);
        if (t !== null) links.set(name, t);
        done();
        return;
      }
      if (h.type !== 'file' && h.type !== 'contiguous-file') throw new ImageError(`${file}: member ${name} is a ${h.type}; an image archive holds files only`);
      const out = path.join(dir, name);
      fs.mkdirSync(path.dirname(out), { recursive: true });
      const w = fs.createWriteStream(out, { flags: 'wx' });
      stream.pipe(w);
      w.on('finish', () => next());
      w.on('error', (e) => next(e));
    } catch (e) {
      done(e as Error);
    }
  });
  const input = fs.createReadStream(file, { highWaterMark: 1 << 20 });
  const gz = head[0] === 0x1f && head[1] === 0x8b;
  try {
    if (gz) await pipeline(input, createGunzip(), extract);
    else await pipeline(input, extract);
  } catch (e) {
    if (e instanceof ImageError) throw e;
    throw new ImageError(`${file}: not a readable image archive (${(e as Error).message})`);
  }
  return links;
}

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A legacy archive's layer carries no media type: its first bytes tell the compression. */
function layerMediaType(src: Source, name: string): Promise<string> {
  const fd = src.open(name);
  return new Promise<string>((resolve) => {
    fd.once('data', (c: Buffer) => {
      fd.destroy();
      if (c[0] === 0x1f && c[1] === 0x8b) resolve(MEDIA.ociLayerGzip);
      else if (c.readUInt32LE(0) === 0xfd2fb528) resolve('application/vnd.oci.image.layer.v1.tar+zstd');
      else resolve(MEDIA.ociLayer);
    });
    fd.once('end', () => resolve(MEDIA.ociLayer));
    fd.once('error', () => resolve(MEDIA.ociLayer));
  });
}

/** One image found in the input, ready to go into the store. */
interface Candidate {
  names: string[];
  manifest: ImageManifest;
  manifestBytes: Buffer;
  configBytes: Buffer;
  /** The member that holds each layer's bytes. */
  layerFiles: string[];
}

async function legacyCandidates(src: Source): Promise<Candidate[]> {
  let list: { Config: string; RepoTags?: string[] | null; Layers: string[] }[];
  try { list = JSON.parse(src.read('manifest.json')!.toString('utf8')); } catch { throw new ImageError('manifest.json of the archive is not JSON'); }
  if (!Array.isArray(list)) throw new ImageError('manifest.json of the archive is not a list');
  const out: Candidate[] = [];
  for (const item of list) {
    const configBytes = src.read(item.Config);
    if (!configBytes) throw new ImageError(`the archive lacks ${item.Config}, named by its manifest.json`);
    const layers: Descriptor[] = [];
    for (const l of item.Layers ?? []) {
      if (!src.has(l)) throw new ImageError(`the archive lacks ${l}, named by its manifest.json`);
      // Digest by one read of the member: a legacy archive names layers by path, not digest.
      const h = createHash('sha256');
      let size = 0;
      for await (const c of src.open(l)) { h.update(c as Buffer); size += (c as Buffer).length; }
      layers.push({ mediaType: await layerMediaType(src, l), digest: `sha256:${h.digest('hex')}`, size });
    }
    const manifest: ImageManifest = {
      schemaVersion: 2, mediaType: MEDIA.ociManifest,
      config: { mediaType: MEDIA.ociConfig, digest: sha256(configBytes), size: configBytes.length },
      layers,
    };
    out.push({ names: item.RepoTags ?? [], manifest, manifestBytes: Buffer.from(JSON.stringify(manifest)), configBytes, layerFiles: item.Layers });
  }
  return out;
}

const blobName = (digest: string) => {
  const m = /^sha256:([0-9a-f]{64})$/.exec(digest);
  if (!m) throw new ImageError(`unsupported digest ${digest}`);
  return `blobs/sha256/${m[1]}`;
};

function readVerified(src: Source, d: Descriptor): Buffer {
  const b = src.read(blobName(d.digest));
  if (!b) throw new ImageError(`the layout lacks blob ${d.digest}`);
  if (b.length !== d.size || sha256(b) !== d.digest) throw new ImageError(`blob ${d.digest} of the layout does not match its descriptor (size or sha256)`);
  return b;
}

function ociCandidates(src: Source): Candidate[] {
  const want = currentPlatform();
  const top = JSON.parse(src.read('index.json')!.toString('utf8')) as { manifests?: Descriptor[] };
  const out: Candidate[] = [];
  const visit = (d: Descriptor, names: string[], depth: number) => {
    if (depth > 4) throw new ImageError('the layout nests indexes more than 4 deep');
    const bytes = readVerified(src, d);
    const j = JSON.parse(bytes.toString('utf8')) as { mediaType?: string; manifests?: Descriptor[]; config?: Descriptor; layers?: Descriptor[] };
    const type = j.mediaType ?? d.mediaType;
    if (type === MEDIA.ociIndex || type === MEDIA.dockerList || Array.isArray(j.manifests)) {
      const entries = j.manifests ?? [];
      // A layout's nested index often has one entry without a platform: that one is the image.
      const pick = selectPlatform(entries, want) ?? (entries.length === 1 && !entries[0].platform ? entries[0] : null);
      if (!pick) throw new ImageError(`the layout's index has no image for ${platformString(want)} (it has ${indexPlatforms(entries).join(', ') || 'none'})`);
      visit(pick, names, depth + 1);
      return;
    }
    if (!j.config || !Array.isArray(j.layers)) throw new ImageError(`manifest ${d.digest} of the layout has no config or layers (media type ${type})`);
    const manifest = j as ImageManifest;
    out.push({ names, manifest, manifestBytes: bytes, configBytes: readVerified(src, manifest.config), layerFiles: manifest.layers.map((l) => blobName(l.digest)) });
  };
  for (const d of top.manifests ?? []) {
    const a = d.annotations ?? {};
    const names = [a['io.containerd.image.name'], a['org.opencontainers.image.ref.name']].filter((x): x is string => !!x);
    visit(d, names, 0);
  }
  return out;
}

/** The canonical reference an archive's name stands for; a bare tag (an OCI layout's ref.name
 *  is often just "1") is no name for an image. */
function canonicalName(names: string[]): string | null {
  for (const n of names) {
    // A ref.name like "latest" would parse as docker.io/library/latest: only a name with a
    // repository and a tag or a path counts.
    if (!n.includes('/') && !n.includes(':')) continue;
    try {
      return parseImageReference(n).canonical;
    } catch { /* not a reference */ }
  }
  return null;
}

export interface LoadedImage { ref: string | null; img: StoredImage }

/** Loads every image of FILE (archive or layout directory) into the store. `name` names the
 *  image (required when the input names it only by a tag or not at all; only for one image). */
export async function loadImages(file: string, o: { name?: string; config?: NetlabConfig; root?: string } = {}): Promise<LoadedImage[]> {
  const root = o.root ?? STORE;
  const config = o.config ?? loadConfig();
  const st = fs.statSync(file, { throwIfNoEntry: false });
  if (!st) throw new ImageError(`${file}: no such file or directory`);
  initStore(root);
  let tmp: string | null = null;
  try {
    let src: Source;
    if (st.isDirectory()) src = dirSource(file);
    else {
      tmp = path.join(storePaths(root).tmp, `load.${process.pid}.${Date.now().toString(36)}`);
      fs.mkdirSync(tmp, { recursive: true, mode: 0o700 });
      const links = await extractArchive(file, tmp);
      src = dirSource(tmp, links);
    }
    let candidates: Candidate[];
    if (src.has('manifest.json')) candidates = await legacyCandidates(src);
    else if (src.has('index.json') && src.has('oci-layout')) candidates = ociCandidates(src);
    else throw new ImageError(`${file}: neither a docker save archive (manifest.json) nor an OCI image layout (oci-layout, index.json)`);
    if (candidates.length === 0) throw new ImageError(`${file}: holds no image`);
    if (o.name !== undefined && candidates.length > 1) throw new ImageError(`${file}: holds ${candidates.length} images; --name names one`);
    const out: LoadedImage[] = [];
    for (const c of candidates) {
      let cfg: OciImageConfig;
      try { cfg = JSON.parse(c.configBytes.toString('utf8')) as OciImageConfig; } catch { throw new ImageError(`${file}: an image config is not JSON`); }
      const ids = cfg.rootfs?.diff_ids ?? [];
      if (ids.length !== c.manifest.layers.length) throw new ImageError(`${file}: the config lists ${ids.length} diff_ids for ${c.manifest.layers.length} layers`);
      const names = o.name !== undefined ? [parseImageReference(o.name).canonical] : c.names.map((n) => canonicalName([n])).filter((n): n is string => n !== null);
      if (names.length === 0 && c.names.length > 0) {
        throw new ImageError(`${file}: its image is named only ${JSON.stringify(c.names[0])}; give it a name with --name REPOSITORY[:TAG]`);
      }
      for (let i = 0; i < c.manifest.layers.length; i++) {
        const d = c.manifest.layers[i];
        const member = c.layerFiles[i];
        await putLayer(d, ids[i], async () => verifiedStream(src.open(member), d), { config, root });
      }
      putBlob(c.manifest.config, c.configBytes, root);
      const mediaType = c.manifest.mediaType ?? MEDIA.ociManifest;
      const md = { mediaType, digest: sha256(c.manifestBytes), size: c.manifestBytes.length };
      putBlob(md, c.manifestBytes, root);
      for (const n of names.length ? names : [null]) recordImage(n, md, null, root);
      const entry = names.length ? findEntry({ canonical: names[0], digest: null }, root)! : findEntry({ canonical: null, digest: md.digest }, root)!;
      out.push({ ref: names[0] ?? null, img: imageOf(entry, root) });
    }
    return out;
  } finally {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  }
}
