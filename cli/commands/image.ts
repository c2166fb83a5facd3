// netlab image pull | ls | inspect | rm | prune | load | build: the image store from the command
// line, and the progress of builds (also `up`'s build phase).
import { parseImageReference } from '../../topology/image-ref.js';
import { pullImage } from '../../runtime/images/pull.js';
import { loadImages } from '../../runtime/images/load.js';
import {
  findEntry, imageOf, labsUsing, listEntries, prune as pruneStore, removeEntry, STORE, layerBytes, type ImageQuery, type StoredImage,
} from '../../runtime/images/store.js';
import { STATE_ROOT } from '../../runtime/paths.js';
import { requireRoot } from '../../controller/lab.js';
import { UserError } from '../errors.js';
import type { Io } from '../io.js';
import { fmtBytes, pullProgress } from '../pull-progress.js';
import type { BuildEvents } from '../../runtime/images/build.js';
import type { LabImage } from '../../topology/types.js';
import { BUILT_REGISTRY } from '../../topology/resolve-images.js';
import { loadLab } from '../target.js';

/** A reference, a manifest digest (sha256:HEX) or a digest prefix of 12+ hex digits. */
function queryOf(text: string): ImageQuery {
  const m = /^(?:sha256:)?([0-9a-f]{12,64})$/.exec(text);
  if (m) return { canonical: null, digest: `sha256:${m[1]}` };
  const r = parseImageReference(text);
  return { canonical: r.canonical, digest: r.digest };
}

function found(text: string): StoredImage {
  const e = findEntry(queryOf(text));
  if (!e) throw new UserError(`image ${text} is not in the store (${STORE}); \`netlab image ls\` lists what is`);
  return imageOf(e);
}

const short = (d: string) => d.slice(7, 19);

export async function pull(io: Io, ref: string): Promise<void> {
  requireRoot('image pull');
  if (parseImageReference(ref).registry === BUILT_REGISTRY) throw new UserError(`${ref} is an image netlab builds from a topology's \`images:\`; it cannot be pulled: run \`netlab image build FILE\``);
  await pullImage(parseImageReference(ref), { events: pullProgress(io, process.stderr.isTTY === true) });
}

export async function ls(io: Io, opts: { json?: boolean }): Promise<void> {
  const rows = listEntries().map((e) => {
    const img = imageOf(e);
    return { ref: img.ref, digest: img.digest, indexDigest: img.indexDigest, size: img.size, layers: img.diffIds.length, labs: labsUsing(img, STATE_ROOT), added: img.added };
  });
  if (opts.json) { io.out(JSON.stringify(rows, null, 2) + '\n'); return; }
  if (rows.length === 0) { io.out(`no images in ${STORE}\n`); return; }
  const w = Math.max(9, ...rows.map((r) => (r.ref ?? '<none>').length));
  io.out(`${'REFERENCE'.padEnd(w)}  DIGEST        SIZE      LAYERS  LABS\n`);
  for (const r of rows) io.out(`${(r.ref ?? '<none>').padEnd(w)}  ${short(r.digest)}  ${fmtBytes(r.size).padEnd(8)}  ${String(r.layers).padEnd(6)}  ${r.labs.join(',') || '-'}\n`);
}

export async function inspect(io: Io, ref: string, opts: { json?: boolean }): Promise<void> {
  const img = found(ref);
  const labs = labsUsing(img, STATE_ROOT);
  const layers = img.manifest.layers.map((l, i) => ({ digest: l.digest, mediaType: l.mediaType, size: l.size, diffId: img.diffIds[i], dir: img.layerDirs[i], unpackedBytes: layerBytes(img.diffIds[i]) }));
  if (opts.json) {
    io.out(JSON.stringify({ ref: img.ref, digest: img.digest, indexDigest: img.indexDigest, size: img.size, added: img.added, config: img.config, manifest: img.manifest, layers, labs }, null, 2) + '\n');
    return;
  }
  const c = img.config.config ?? {};
  const lines = [
    `reference:    ${img.ref ?? '<none>'}`,
    `digest:       ${img.digest}`,
    ...(img.indexDigest ? [`index:        ${img.indexDigest}`] : []),
    `platform:     ${img.config.os ?? '?'}/${img.config.architecture ?? '?'}${img.config.variant ? `/${img.config.variant}` : ''}`,
    ...(img.config.created ? [`created:      ${img.config.created}`] : []),
    `size:         ${fmtBytes(img.size)} in ${layers.length} layers (${fmtBytes(layers.reduce((s, l) => s + l.unpackedBytes, 0))} unpacked)`,
    `entrypoint:   ${JSON.stringify(c.Entrypoint ?? [])}`,
    `cmd:          ${JSON.stringify(c.Cmd ?? [])}`,
    `env:          ${(c.Env ?? []).join(' ') || '-'}`,
    `working dir:  ${c.WorkingDir || '-'}`,
    `user:         ${c.User || '-'}`,
    `ports:        ${Object.keys(c.ExposedPorts ?? {}).join(' ') || '-'}`,
    `stop signal:  ${c.StopSignal || 'SIGTERM'}`,
    `used by labs: ${labs.join(', ') || '-'}`,
    'layers:',
    ...layers.map((l) => `  ${l.digest}  ${fmtBytes(l.size).padEnd(8)} ${l.mediaType.replace(/^application\/vnd\./, '')}  (${fmtBytes(l.unpackedBytes)} unpacked)`),
  ];
  io.out(lines.join('\n') + '\n');
}

export async function rm(io: Io, refs: string[]): Promise<void> {
  requireRoot('image rm');
  for (const ref of refs) {
    const e = findEntry(queryOf(ref));
    if (!e) throw new UserError(`image ${ref} is not in the store`);
    const img = imageOf(e);
    const labs = labsUsing(img, STATE_ROOT);
    if (labs.length) throw new UserError(`image ${ref} is used by running lab${labs.length > 1 ? 's' : ''} ${labs.join(', ')}; take ${labs.length > 1 ? 'them' : 'it'} down first`);
    removeEntry(e);
    io.out(`untagged ${img.ref ?? img.digest}\n`);
  }
  // What no other image and no container uses goes with it, as `docker rmi` deletes its layers.
  const r = pruneStore(STATE_ROOT);
  if (r.layers || r.blobs) io.out(`deleted ${r.layers} layers and ${r.blobs} blobs (${fmtBytes(r.bytes)})\n`);
}

export async function prune(io: Io): Promise<void> {
  requireRoot('image prune');
  const r = pruneStore(STATE_ROOT);
  io.out(`removed ${r.layers} unreferenced layers, ${r.blobs} blobs and ${r.temps} leftovers of interrupted pulls (${fmtBytes(r.bytes)})\n`);
}

export async function load(io: Io, file: string, opts: { name?: string }): Promise<void> {
  requireRoot('image load');
  const loaded = await loadImages(file, opts.name !== undefined ? { name: opts.name } : {});
  for (const l of loaded) io.out(`loaded ${l.ref ?? '<none>'} (${l.img.digest}, ${l.img.diffIds.length} layers)\n`);
}

const describeRecipe = (img: LabImage) => `image ${img.name} (mmdebstrap, ${img.packages.length} package${img.packages.length === 1 ? '' : 's'})`;

/** Progress of image builds: on a terminal one line rewritten in place (the image, mmdebstrap's
 *  current step, elapsed time); elsewhere one line per image when it is in the store. */
export function buildProgress(io: { err: (s: string) => void }, tty: boolean): BuildEvents {
  let timer: NodeJS.Timeout | null = null;
  let step = '';
  let t0 = 0;
  let what = '';
  const draw = () => io.err(`\r\x1b[Kbuilding ${what}: ${step.slice(0, 60)} ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  const stop = () => { if (timer) clearInterval(timer); timer = null; };
  return {
    start(img, mirror) {
      t0 = performance.now();
      what = describeRecipe(img);
      step = `from ${mirror.uri} ${img.debian}`;
      if (tty) { draw(); timer = setInterval(draw, 500); timer.unref(); }
    },
    step(_img, text) { step = text; },
    done(img, how, ms, stored) {
      stop();
      const size = fmtBytes(stored.size);
      const line = how === 'built'
        ? `built ${describeRecipe(img)} as ${img.ref} (${size}) in ${(ms / 1000).toFixed(1)} s`
        : how === 'tagged'
          ? `image ${img.name}: the same recipe is in the store (${stored.digest.slice(7, 19)}), tagged ${img.ref}`
          : `image ${img.name}: already in the store as ${img.ref} (${size})`;
      io.err(`${tty ? '\r\x1b[K' : ''}${line}\n`);
    },
  };
}

/** `netlab image build FILE`: builds the images the file declares (`images:`). */
export async function build(io: Io, file: string, opts: { rebuild?: boolean }): Promise<void> {
  requireRoot('image build');
  const lab = loadLab(file);
  const images = lab.images ?? [];
  if (images.length === 0) throw new UserError(`${file} declares no images (an images: map of NAME: { debian: SUITE, packages: [...] })`);
  const { buildImage } = await import('../../runtime/images/build.js');
  const events = buildProgress(io, process.stderr.isTTY === true);
  for (const img of images) {
    const s = await buildImage(img, { events, ...(opts.rebuild ? { rebuild: true } : {}) });
    io.out(`${img.name} ${img.ref} ${s.digest}\n`);
  }
}
