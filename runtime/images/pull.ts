// Pulling an image into the store: the manifest for this machine's platform and the config
// first (small, verified in memory), then every layer the store lacks, three at a time (Docker's
// max-concurrent-downloads), each streamed once into its blob file and its unpacked directory.
// The image is recorded in index.json only when all of it is there. Also `ensureImages`: what
// `up` does before anything is built (--pull missing|always|never).
import { parseImageReference, BUILTIN_IMAGES, type ImageReference } from '../../topology/image-ref.js';
import { RegistryClient, type Descriptor, type PulledManifest } from './registry.js';
import { loadConfig, type NetlabConfig } from './config.js';
import { ImageError } from './types.js';
import { findEntry, imageOf, initStore, MEDIA, putBlob, putLayer, recordImage, STORE, type OciImageConfig, type StoredImage } from './store.js';

/** What a pull reports, per layer, for the CLI's progress lines. */
export interface PullEvents {
  /** The manifest is known: the layers to fetch (with their sizes). */
  start?(ref: string, layers: Descriptor[]): void;
  /** `bytes` more of layer `i` arrived. */
  bytes?(ref: string, i: number, bytes: number): void;
  /** Layer `i` is in the store: 'present' (nothing fetched) or 'stored'. */
  layerDone?(ref: string, i: number, how: 'present' | 'stored'): void;
  done?(ref: string, img: StoredImage): void;
}

export type PullPolicy = 'missing' | 'always' | 'never';

const LAYER_PARALLELISM = 3;

const CONFIG_LIMIT = 8 << 20;

function checkConfig(ref: string, m: PulledManifest, cfg: OciImageConfig): void {
  const ids = cfg.rootfs?.diff_ids;
  if (!Array.isArray(ids) || ids.length !== m.manifest.layers.length) {
    throw new ImageError(`image ${ref}: the config lists ${Array.isArray(ids) ? ids.length : 'no'} diff_ids for ${m.manifest.layers.length} layers`);
  }
  if (cfg.os && cfg.os !== 'linux') throw new ImageError(`image ${ref}: it is a ${cfg.os} image; netlab runs Linux images only`);
}

async function inParallel<T>(items: T[], limit: number, fn: (x: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown = null;
  const worker = async () => {
    while (failed === null && next < items.length) {
      const i = next++;
      try { await fn(items[i], i); } catch (e) { failed ??= e; }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed !== null) throw failed;
}

/** Pulls REF from its registry into the store; resolves to the stored image. */
export async function pullImage(ref: ImageReference, o: { config?: NetlabConfig; events?: PullEvents; client?: RegistryClient; root?: string } = {}): Promise<StoredImage> {
  const root = o.root ?? STORE;
  const config = o.config ?? loadConfig();
  const client = o.client ?? new RegistryClient({ config });
  const m = await client.getManifest(ref);
  const cfgBytes = await client.fetchBlobBytes(m, m.manifest.config, CONFIG_LIMIT);
  let cfg: OciImageConfig;
  try { cfg = JSON.parse(cfgBytes.toString('utf8')) as OciImageConfig; } catch { throw new ImageError(`image ${ref.canonical}: its config ${m.manifest.config.digest} is not JSON`); }
  checkConfig(ref.canonical, m, cfg);
  initStore(root);
  const layers = m.manifest.layers;
  o.events?.start?.(ref.canonical, layers);
  await inParallel(layers, LAYER_PARALLELISM, async (d, i) => {
    const how = await putLayer(d, cfg.rootfs.diff_ids[i], () => client.fetchBlob(m, d), {
      config, root, progress: { bytes: (n) => o.events?.bytes?.(ref.canonical, i, n) },
    });
    o.events?.layerDone?.(ref.canonical, i, how);
  });
  putBlob(m.manifest.config, cfgBytes, root);
  putBlob({ mediaType: m.manifestMediaType, digest: m.manifestDigest, size: m.manifestBytes.length }, m.manifestBytes, root);
  if (m.index) putBlob({ mediaType: m.index.mediaType, digest: m.index.digest, size: m.index.bytes.length }, m.index.bytes, root);
  const mediaType = m.manifestMediaType === MEDIA.dockerManifest ? MEDIA.dockerManifest : MEDIA.ociManifest;
  recordImage(ref.canonical, { digest: m.manifestDigest, size: m.manifestBytes.length, mediaType }, m.index?.digest ?? null, root);
  const entry = findEntry({ canonical: ref.canonical, digest: null }, root)!;
  const img = imageOf(entry, root);
  o.events?.done?.(ref.canonical, img);
  return img;
}

/** The store's image for a reference, or null when it is not there. */
export function storedImage(ref: ImageReference, root = STORE): StoredImage | null {
  const entry = findEntry({ canonical: ref.digest && !ref.tag ? null : ref.canonical, digest: ref.digest }, root);
  return entry ? imageOf(entry, root) : null;
}

/** The OCI references among a lab's images (busybox and host are netlab's own). */
export function ociReferences(images: string[]): ImageReference[] {
  const seen = new Map<string, ImageReference>();
  for (const s of images) {
    if (BUILTIN_IMAGES.includes(s)) continue;
    const r = parseImageReference(s);
    seen.set(r.canonical, r);
  }
  return [...seen.values()];
}

/** Whether `ensureImages` would pull anything (or refuse, with --pull never). */
export function needsPull(images: string[], policy: PullPolicy, root = STORE): boolean {
  const refs = ociReferences(images);
  return refs.some((r) => policy === 'always' || storedImage(r, root) === null);
}

/** What `up` does first: every image the lab needs is in the store afterwards (pulled per the
 *  policy), or it throws naming the first one that could not be had. */
export async function ensureImages(images: string[], policy: PullPolicy, o: { events?: PullEvents; root?: string } = {}): Promise<void> {
  const refs = ociReferences(images);
  if (refs.length === 0) return;
  const root = o.root ?? STORE;
  const todo = refs.filter((r) => policy === 'always' || storedImage(r, root) === null);
  if (policy === 'never' && todo.length > 0) {
    throw new ImageError(`image ${todo[0].canonical} is not in the store and --pull never forbids pulling it: run \`netlab image pull ${todo[0].canonical}\` first`);
  }
  if (todo.length === 0) return;
  const config = loadConfig();
  const client = new RegistryClient({ config });
  for (const r of todo) await pullImage(r, { config, client, root, ...(o.events ? { events: o.events } : {}) });
}
