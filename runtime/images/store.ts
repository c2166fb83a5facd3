// The image store: /var/lib/netlab/images (or NETLAB_IMAGE_STORE), an OCI image layout
// (`oci-layout`, `index.json` whose entries carry `org.opencontainers.image.ref.name` = the
// canonical reference, `blobs/sha256/`) plus `layers/sha256/<diff_id>/`: every layer unpacked
// once, by its uncompressed digest, and shared as an overlay lowerdir by every image and
// container that has it. What lands in `blobs/` or `layers/` was verified first (size and
// sha256 against its descriptor, the unpacked tar against the config's diff_id) and moved in
// by rename from `tmp/`, so a crash mid-pull never leaves a half layer that counts as present.
// Pull, load and remove go through here; the image's spec for a container is in oci.ts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import { ImageError } from './types.js';
import type { Descriptor, ImageManifest } from './registry.js';
import { unpackLayer } from './unpack.js';
import type { NetlabConfig } from './config.js';

export const STORE = process.env.NETLAB_IMAGE_STORE || '/var/lib/netlab/images';
const REF_NAME = 'org.opencontainers.image.ref.name';
/** The digest of the index (manifest list) the manifest was chosen from, when there was one. */
const INDEX_DIGEST = 'io.netlab.index.digest';
const ADDED = 'io.netlab.added';

export const MEDIA = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
} as const;

/** An image's configuration blob (the OCI image config; Docker's is the same shape). */
export interface OciImageConfig {
  architecture?: string;
  os?: string;
  variant?: string;
  created?: string;
  config?: {
    User?: string;
    ExposedPorts?: Record<string, object>;
    Env?: string[] | null;
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    WorkingDir?: string;
    StopSignal?: string;
    Labels?: Record<string, string> | null;
  } | null;
  rootfs: { type: string; diff_ids: string[] };
}

export interface IndexEntry {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

/** One image in the store, read back from its blobs. */
export interface StoredImage {
  /** The canonical reference it is stored under (null: loaded without a name). */
  ref: string | null;
  digest: string;
  indexDigest: string | null;
  manifest: ImageManifest;
  config: OciImageConfig;
  /** Unpacked layer directories, bottom first (the config's diff_id order). */
  layerDirs: string[];
  diffIds: string[];
  /** Bytes of its blobs (config + compressed layers), as a registry counts an image. */
  size: number;
  added: string | null;
}

export function storePaths(root = STORE) {
  return {
    root,
    index: path.join(root, 'index.json'),
    blobs: path.join(root, 'blobs', 'sha256'),
    layers: path.join(root, 'layers', 'sha256'),
    tmp: path.join(root, 'tmp'),
    lock: path.join(root, 'index.lock'),
  };
}

const HEX = /^sha256:([0-9a-f]{64})$/;

function hexOf(digest: string): string {
  const m = HEX.exec(digest);
  if (!m) throw new ImageError(`unsupported digest ${JSON.stringify(digest)}: netlab verifies sha256 digests only`);
  return m[1];
}

export function blobPath(digest: string, root = STORE): string {
  return path.join(storePaths(root).blobs, hexOf(digest));
}

export function layerDir(diffId: string, root = STORE): string {
  return path.join(storePaths(root).layers, hexOf(diffId));
}

/** Creates the layout's skeleton (idempotent). */
export function initStore(root = STORE): void {
  const p = storePaths(root);
  for (const d of [p.blobs, p.layers, p.tmp]) fs.mkdirSync(d, { recursive: true, mode: 0o700 });
  const layout = path.join(root, 'oci-layout');
  if (!fs.existsSync(layout)) fs.writeFileSync(layout, '{"imageLayoutVersion":"1.0.0"}\n');
  if (!fs.existsSync(p.index)) writeAtomic(p.index, JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [] }, null, 1) + '\n', root);
}

function writeAtomic(file: string, data: string | Buffer, root = STORE): void {
  const tmp = path.join(storePaths(root).tmp, `${path.basename(file)}.${process.pid}.${Math.random().toString(36).slice(2)}`);
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

export function readIndex(root = STORE): IndexEntry[] {
  try {
    const j = JSON.parse(fs.readFileSync(storePaths(root).index, 'utf8')) as { manifests?: IndexEntry[] };
    return Array.isArray(j.manifests) ? j.manifests : [];
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new ImageError(`image store ${root}: index.json is unreadable (${(e as Error).message})`);
  }
}

function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

/** Runs `fn` holding the index lock (a file made with O_EXCL holding our pid; a dead holder's
 *  lock is taken over), so two `pull`s or a `pull` and an `rm` never lose each other's entry. */
function withIndexLock<T>(root: string, fn: () => T): T {
  const { lock } = storePaths(root);
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      fs.writeFileSync(lock, `${process.pid}\n`, { flag: 'wx' });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const holder = Number(fs.readFileSync(lock, 'utf8').trim() || 0);
      if (!holder || !pidAlive(holder)) { try { fs.unlinkSync(lock); } catch { /* raced */ } continue; }
      if (Date.now() > deadline) throw new ImageError(`image store ${root} is locked by process ${holder}`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
  try { return fn(); } finally { try { fs.unlinkSync(lock); } catch { /* gone */ } }
}

function updateIndex(root: string, edit: (entries: IndexEntry[]) => IndexEntry[]): void {
  withIndexLock(root, () => {
    const next = edit(readIndex(root));
    writeAtomic(storePaths(root).index, JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: next }, null, 1) + '\n', root);
  });
}

// ---------------------------------------------------------------- reading images back

function readJsonBlob<T>(digest: string, root: string): T {
  let bytes: Buffer;
  try { bytes = fs.readFileSync(blobPath(digest, root)); } catch { throw new ImageError(`image store ${root}: blob ${digest} is missing (run \`netlab image pull\` again)`); }
  return JSON.parse(bytes.toString('utf8')) as T;
}

export function imageOf(entry: IndexEntry, root = STORE): StoredImage {
  const manifest = readJsonBlob<ImageManifest>(entry.digest, root);
  const config = readJsonBlob<OciImageConfig>(manifest.config.digest, root);
  const diffIds = config.rootfs?.diff_ids ?? [];
  return {
    ref: entry.annotations?.[REF_NAME] ?? null,
    digest: entry.digest,
    indexDigest: entry.annotations?.[INDEX_DIGEST] ?? null,
    manifest, config, diffIds,
    layerDirs: diffIds.map((d) => layerDir(d, root)),
    size: manifest.config.size + manifest.layers.reduce((s, l) => s + l.size, 0),
    added: entry.annotations?.[ADDED] ?? null,
  };
}

/** What a user may write to name a stored image: its canonical reference, or a manifest (or
 *  index) digest, with or without the name, or a digest prefix of at least 12 hex digits. */
export interface ImageQuery { canonical: string | null; digest: string | null }

export function findEntry(q: ImageQuery, root = STORE): IndexEntry | null {
  const entries = readIndex(root);
  if (q.digest) {
    const d = q.digest;
    const hit = entries.find((e) => e.digest === d || e.annotations?.[INDEX_DIGEST] === d)
      ?? (/^sha256:[0-9a-f]{12,63}$/.test(d) ? entries.find((e) => e.digest.startsWith(d)) : undefined);
    return hit ?? null;
  }
  return entries.find((e) => e.annotations?.[REF_NAME] === q.canonical) ?? null;
}

export function listEntries(root = STORE): IndexEntry[] {
  return readIndex(root);
}

// ---------------------------------------------------------------- writing: blobs and layers

/** A sink for bytes that are checked against a descriptor: written to a temp file, renamed into
 *  blobs/ only when the size and digest match. */
function verifyAgainst(d: Descriptor, bytes: Buffer): void {
  if (bytes.length !== d.size) throw new ImageError(`blob ${d.digest}: ${bytes.length} bytes, the descriptor says ${d.size}`);
  const got = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  if (got !== d.digest) throw new ImageError(`blob ${d.digest}: content has digest ${got}`);
}

/** Stores a small blob (manifest, config) already in memory, verified. */
export function putBlob(d: Descriptor, bytes: Buffer, root = STORE): void {
  verifyAgainst(d, bytes);
  const file = blobPath(d.digest, root);
  if (!fs.existsSync(file)) writeAtomic(file, bytes, root);
}

function tempName(root: string, what: string): string {
  return path.join(storePaths(root).tmp, `${what}.${process.pid}.${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`);
}

/** A Readable whose bytes are hashed as they pass and that fails before its end when they do
 *  not match the descriptor (for blobs read from a file or an archive). */
export function verifiedStream(src: Readable, d: Descriptor): Readable {
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  const h = createHash('sha256');
  let n = 0;
  src.on('data', (c: Buffer) => {
    h.update(c);
    n += c.length;
    if (n > d.size) { src.destroy(); out.destroy(new ImageError(`blob ${d.digest}: more than the ${d.size} bytes its descriptor says`)); return; }
    if (!out.write(c)) src.pause();
  });
  out.on('drain', () => src.resume());
  src.on('error', (e) => out.destroy(e instanceof ImageError ? e : new ImageError(`blob ${d.digest}: ${(e as Error).message}`)));
  src.on('end', () => {
    const got = `sha256:${h.digest('hex')}`;
    if (n !== d.size) out.destroy(new ImageError(`blob ${d.digest}: ${n} bytes, the descriptor says ${d.size}`));
    else if (got !== d.digest) out.destroy(new ImageError(`blob ${d.digest}: content has digest ${got} (corrupt or tampered: nothing of it was kept)`));
    else out.end();
  });
  return out;
}

export interface LayerProgress {
  /** Bytes received so far of this layer's blob. */
  bytes(n: number): void;
}

/** Stores one layer: its blob (unless present) and its unpacked directory (unless present),
 *  from one pass over the (verified) stream `open` gives. Both land only once the blob's digest
 *  and the unpacked tar's diff_id are proven. */
export async function putLayer(
  d: Descriptor, diffId: string, open: () => Promise<Readable>, o: { config: NetlabConfig; progress?: LayerProgress; mediaType?: string; root?: string },
): Promise<'present' | 'stored'> {
  const root = o.root ?? STORE;
  const blobFile = blobPath(d.digest, root);
  const dir = layerDir(diffId, root);
  const haveBlob = fs.existsSync(blobFile);
  const haveLayer = fs.existsSync(dir);
  if (haveBlob && haveLayer) return 'present';
  const src = await open();
  const tmpBlob = haveBlob ? null : tempName(root, 'blob');
  const tmpDir = haveLayer ? null : tempName(root, 'layer');
  const file = tmpBlob ? fs.createWriteStream(tmpBlob) : null;
  const toUnpack = tmpDir ? new PassThrough({ highWaterMark: 1 << 20 }) : null;
  // One pass: each chunk goes to the blob file and to the unpacker; the source waits for both.
  let waiting = 0;
  const resume = () => { if (--waiting === 0) src.resume(); };
  file?.on('drain', resume);
  toUnpack?.on('drain', resume);
  const fileDone = file ? new Promise<void>((res, rej) => { file.on('finish', res); file.on('error', rej); }) : Promise.resolve();
  const srcDone = new Promise<void>((res, rej) => {
    src.on('data', (c: Buffer) => {
      o.progress?.bytes(c.length);
      if (file && !file.write(c)) { waiting++; src.pause(); }
      if (toUnpack && !toUnpack.write(c)) { waiting++; src.pause(); }
    });
    src.on('end', () => { file?.end(); toUnpack?.end(); res(); });
    src.on('error', (e) => { file?.destroy(); toUnpack?.destroy(e); rej(e); });
  });
  const unpacked = toUnpack && tmpDir
    ? unpackLayer(toUnpack, o.mediaType ?? d.mediaType, tmpDir, { maxBytes: o.config.maxLayerBytes })
    : Promise.resolve(null);
  try {
    const [r] = await Promise.all([unpacked, srcDone, fileDone]);
    if (r && r.diffId !== diffId) throw new ImageError(`layer ${d.digest}: unpacked content has diff_id ${r.diffId}, the image config says ${diffId} (nothing of it was kept)`);
    if (tmpBlob) renameInto(tmpBlob, blobFile);
    if (tmpDir) renameInto(tmpDir, dir);
    return 'stored';
  } catch (e) {
    // Whichever side failed first, the others stop too: the source, the blob file, and the
    // unpacker's input (ended with the error, or it would wait for data forever, and with
    // nothing else left in the event loop the process would just exit 0).
    src.destroy();
    file?.destroy();
    toUnpack?.destroy(e as Error);
    await unpacked.catch(() => null); // its own cleanup has run before we report
    for (const t of [tmpBlob, tmpDir]) if (t) fs.rmSync(t, { recursive: true, force: true });
    if ((e as NodeJS.ErrnoException).code === 'ENOSPC') throw new ImageError(`no space left on the device of ${root} while storing layer ${d.digest}`);
    throw e instanceof ImageError ? e : new ImageError(`layer ${d.digest}: ${(e as Error).message}`);
  }
}

/** Renames a verified temp file or directory into place; a concurrent pull that got there
 *  first holds identical content, so ours is dropped. */
function renameInto(tmp: string, final: string): void {
  try {
    fs.renameSync(tmp, final);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'EISDIR') throw e;
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** Records an image in index.json under `ref` (replacing what that reference named before). */
export function recordImage(ref: string | null, manifest: { digest: string; size: number; mediaType: string }, indexDigest: string | null, root = STORE): void {
  const annotations: Record<string, string> = { [ADDED]: new Date().toISOString() };
  if (ref) annotations[REF_NAME] = ref;
  if (indexDigest) annotations[INDEX_DIGEST] = indexDigest;
  updateIndex(root, (entries) => [
    ...entries.filter((e) => (ref ? e.annotations?.[REF_NAME] !== ref : e.digest !== manifest.digest || e.annotations?.[REF_NAME] !== undefined)),
    { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.size, annotations },
  ]);
}

// ---------------------------------------------------------------- use, remove, prune

/** Layer directories in use by containers of labs on this machine: read from every container's
 *  spec (its `layer=` lines) under the state directory, so removal never pulls a lowerdir from
 *  under a running container. */
export function layersInUse(stateRoot: string): Map<string, string[]> {
  const used = new Map<string, string[]>();
  let labs: string[] = [];
  try { labs = fs.readdirSync(stateRoot); } catch { return used; }
  for (const lab of labs) {
    const cdir = path.join(stateRoot, lab, 'containers');
    let nodes: string[] = [];
    try { nodes = fs.readdirSync(cdir); } catch { continue; }
    for (const n of nodes) {
      let spec = '';
      try { spec = fs.readFileSync(path.join(cdir, n, 'spec'), 'utf8'); } catch { continue; }
      for (const m of spec.matchAll(/^layer=(.*)$/gm)) {
        const l = used.get(m[1]) ?? [];
        if (!l.includes(lab)) l.push(lab);
        used.set(m[1], l);
      }
    }
  }
  return used;
}

/** The labs whose containers use any of the image's layers. */
export function labsUsing(img: StoredImage, stateRoot: string): string[] {
  const used = layersInUse(stateRoot);
  const labs = new Set<string>();
  for (const d of img.layerDirs) for (const l of used.get(d) ?? []) labs.add(l);
  return [...labs].sort();
}

export function removeEntry(entry: IndexEntry, root = STORE): void {
  updateIndex(root, (entries) => entries.filter((e) => !(e.digest === entry.digest && e.annotations?.[REF_NAME] === entry.annotations?.[REF_NAME])));
}

export interface PruneReport { blobs: number; layers: number; temps: number; bytes: number }

function du(p: string): number {
  let total = 0;
  const st = fs.lstatSync(p, { throwIfNoEntry: false });
  if (!st) return 0;
  if (!st.isDirectory()) return st.size;
  for (const e of fs.readdirSync(p)) total += du(path.join(p, e));
  return total;
}

/** Removes blobs and layers no stored image references and no container uses, and temp files
 *  of pulls that died (their process is gone). */
export function prune(stateRoot: string, root = STORE): PruneReport {
  const p = storePaths(root);
  const report: PruneReport = { blobs: 0, layers: 0, temps: 0, bytes: 0 };
  if (!fs.existsSync(p.index)) return report;
  return withIndexLock(root, () => {
    const keepBlobs = new Set<string>();
    const keepLayers = new Set<string>();
    for (const e of readIndex(root)) {
      keepBlobs.add(hexOf(e.digest));
      const idx = e.annotations?.[INDEX_DIGEST];
      if (idx) keepBlobs.add(hexOf(idx));
      try {
        const img = imageOf(e, root);
        keepBlobs.add(hexOf(img.manifest.config.digest));
        for (const l of img.manifest.layers) keepBlobs.add(hexOf(l.digest));
        for (const d of img.diffIds) keepLayers.add(hexOf(d));
      } catch { /* an entry with a missing blob keeps what it names */ }
    }
    for (const dir of layersInUse(stateRoot).keys()) if (dir.startsWith(p.layers + path.sep)) keepLayers.add(path.basename(dir));
    for (const b of fs.readdirSync(p.blobs)) {
      if (keepBlobs.has(b)) continue;
      report.bytes += du(path.join(p.blobs, b));
      fs.rmSync(path.join(p.blobs, b), { force: true });
      report.blobs++;
    }
    for (const l of fs.readdirSync(p.layers)) {
      if (keepLayers.has(l)) continue;
      report.bytes += du(path.join(p.layers, l));
      fs.rmSync(path.join(p.layers, l), { recursive: true, force: true });
      report.layers++;
    }
    for (const t of fs.readdirSync(p.tmp)) {
      const pid = Number(/\.(\d+)\./.exec(t)?.[1] ?? 0);
      if (pid && pid !== process.pid && pidAlive(pid)) continue;
      report.bytes += du(path.join(p.tmp, t));
      fs.rmSync(path.join(p.tmp, t), { recursive: true, force: true });
      report.temps++;
    }
    return report;
  });
}

/** Total bytes of the store on disk (blobs + unpacked layers), for `image ls` and the bench. */
export function storeBytes(root = STORE): number {
  const p = storePaths(root);
  return du(p.blobs) + du(p.layers);
}

export function layerBytes(diffId: string, root = STORE): number {
  return du(layerDir(diffId, root));
}
