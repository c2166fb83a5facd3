// Images built from Debian packages (a topology's `images:`): mmdebstrap makes the root
// filesystem from the machine's own Debian mirror (read from its apt sources), mmtarfilter drops
// /dev and the docs, man pages and translations, and the tar becomes a one-layer OCI image in
// the store, through the store's own functions (putLayer unpacks and verifies it, putBlob,
// recordImage), so it is an image like any pulled one: `image ls/inspect/rm`, shared layers.
// The reference carries a hash of the recipe (topology/resolve-images.ts), so what was built
// once is found at once.
//
// Choices, and why:
// - `--mode=unshare`: netlab runs as root, so `--mode=root` would work too, but it runs every
//   package's maintainer scripts as the machine's real root in a chroot; in unshare mode they
//   run as root of a user namespace of their own, which cannot touch the host (measured here:
//   both take the same time, 25-45 s for iproute2).
// - `--variant=essential` + `--include`: the Essential set and the packages with their
//   dependencies (no recommends): no apt inside (list apt to have it), the smallest image.
// - the `maybe-merged-usr` hook: without it bookworm's init-system-helpers pulls usrmerge and
//   with it perl (147 MB instead of 65 MB for iproute2).
// - docs, man pages and translations are dropped (`--dpkgopt path-exclude` while installing,
//   and mmtarfilter for what mmdebstrap extracts before dpkg reads the options), but each
//   package's copyright file is kept: it is small and it is what the license asks for when an
//   image is passed on.
// - Cmd is netlab's own idle PID 1 (netlab-pause, copied in as /usr/local/sbin/netlab-pause), as
//   for the busybox image: a node without a command idles, reaps and stops on SIGTERM at once.
// - the layer blob is the tar gzip-compressed (65 MB -> 25 MB, 2 s); its diff_id the tar's sha256.
// - the mirror: the machine's Debian source (its URI, components and Signed-By keyring) with
//   the recipe's suite; given to mmdebstrap explicitly, since without one it also adds
//   security.debian.org, which not every network reaches. NETLAB_DEBIAN_MIRROR overrides it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createGzip } from 'node:zlib';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseImageReference } from '../../topology/image-ref.js';
import { BUILT_REGISTRY, RECIPE_VERSION, DEBIAN_SUITES } from '../../topology/resolve-images.js';
import type { LabImage } from '../../topology/types.js';
import { loadConfig, type NetlabConfig } from './config.js';
import { currentPlatform } from './registry.js';
import { PAUSE_PATH } from './busybox.js';
import { DEFAULT_PATH } from './oci.js';
import { storedImage } from './pull.js';
import { ImageError } from './types.js';
import {
  blobPath, findEntry, imageOf, initStore, listEntries, MEDIA, putBlob, putLayer, recordImage, STORE, storePaths, type OciImageConfig, type StoredImage,
} from './store.js';

const PAUSE_IN_IMAGE = '/usr/local/sbin/netlab-pause';
const MERGED_USR_HOOK = '/usr/share/mmdebstrap/hooks/maybe-merged-usr';
const DROPPED = ['/usr/share/doc/*', '/usr/share/man/*', '/usr/share/locale/*'];
const KEPT = ['/usr/share/doc/*/copyright'];

// ---------------------------------------------------------------- the machine's Debian mirror

export interface DebianMirror {
  uri: string;
  components: string[];
  /** A keyring file the source is signed by (null: apt's trusted keys). */
  signedBy: string | null;
  /** Where it was read from (file name, or the environment variable). */
  from: string;
}

interface AptSource { types: string[]; uris: string[]; suites: string[]; components: string[]; signedBy: string | null; enabled: boolean; from: string }

/** One-line sources (`deb [opts] URI SUITE COMPONENT...`). */
function parseListFile(text: string, from: string): AptSource[] {
  const out: AptSource[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) continue;
    const m = /^(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (!m) continue;
    const opts = Object.fromEntries((m[2] ?? '').trim().split(/\s+/).filter(Boolean).map((o) => { const i = o.indexOf('='); return [o.slice(0, i).toLowerCase(), o.slice(i + 1)]; }));
    out.push({ types: [m[1]], uris: [m[3]], suites: [m[4]], components: m[5].split(/\s+/).filter(Boolean), signedBy: opts['signed-by'] ?? null, enabled: true, from });
  }
  return out;
}

/** deb822 sources (`Types:`, `URIs:`, `Suites:`, `Components:`, `Signed-By:`, `Enabled:`). */
function parseSourcesFile(text: string, from: string): AptSource[] {
  const out: AptSource[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let last: string | null = null;
    for (const raw of stanza.split('\n')) {
      if (raw.startsWith('#')) continue;
      if (/^\s/.test(raw) && last) { fields.set(last, `${fields.get(last)}\n${raw.trim()}`); continue; }
      const m = /^([A-Za-z-]+):\s*(.*)$/.exec(raw);
      if (!m) continue;
      last = m[1].toLowerCase();
      fields.set(last, m[2].trim());
    }
    if (!fields.has('uris')) continue;
    const words = (k: string) => (fields.get(k) ?? '').split(/\s+/).filter(Boolean);
    const sb = fields.get('signed-by') ?? null;
    out.push({
      types: words('types'), uris: words('uris'), suites: words('suites'), components: words('components'),
      // An inline key (several lines) cannot go on a one-line source: apt's trusted keys then.
      signedBy: sb && !sb.includes('\n') && sb.startsWith('/') ? sb : null,
      enabled: !/^(no|false|0)$/i.test(fields.get('enabled') ?? 'yes'), from,
    });
  }
  return out;
}

export function readAptSources(etcApt = '/etc/apt'): AptSource[] {
  const out: AptSource[] = [];
  const read = (f: string) => { try { return fs.readFileSync(f, 'utf8'); } catch { return null; } };
  const main = read(path.join(etcApt, 'sources.list'));
  if (main !== null) out.push(...parseListFile(main, path.join(etcApt, 'sources.list')));
  let names: string[] = [];
  try { names = fs.readdirSync(path.join(etcApt, 'sources.list.d')).sort(); } catch { /* none */ }
  for (const n of names) {
    const f = path.join(etcApt, 'sources.list.d', n);
    const text = n.endsWith('.list') || n.endsWith('.sources') ? read(f) : null;
    if (text === null) continue;
    out.push(...(n.endsWith('.list') ? parseListFile(text, f) : parseSourcesFile(text, f)));
  }
  return out;
}

function machineCodename(): string | null {
  try { return /^VERSION_CODENAME=["']?([a-z]+)/m.exec(fs.readFileSync('/etc/os-release', 'utf8'))?.[1] ?? null; } catch { return null; }
}

/** The machine's Debian mirror: the first enabled `deb` source for a Debian suite (one naming the
 *  machine's own codename first), not a security one. */
export function machineMirror(o: { etcApt?: string; env?: NodeJS.ProcessEnv; codename?: string | null } = {}): DebianMirror {
  const env = o.env ?? process.env;
  const forced = env.NETLAB_DEBIAN_MIRROR;
  if (forced) return { uri: forced, components: ['main'], signedBy: null, from: 'NETLAB_DEBIAN_MIRROR' };
  const etc = o.etcApt ?? '/etc/apt';
  const debian = readAptSources(etc).filter((s) => s.enabled && s.types.includes('deb')
    && s.suites.some((x) => DEBIAN_SUITES.includes(x)) && !s.uris.some((u) => /security/.test(u)));
  const codename = o.codename === undefined ? machineCodename() : o.codename;
  const pick = debian.find((s) => codename !== null && s.suites.includes(codename)) ?? debian[0];
  if (!pick) {
    throw new ImageError(`no Debian mirror in this machine's apt sources (${etc}/sources.list, ${etc}/sources.list.d): set NETLAB_DEBIAN_MIRROR to one, e.g. http://deb.debian.org/debian`);
  }
  return { uri: pick.uris[0], components: pick.components.length ? pick.components : ['main'], signedBy: pick.signedBy, from: pick.from };
}

/** The one source line mmdebstrap gets: the mirror with the recipe's suite. */
export function mirrorLine(m: DebianMirror, suite: string): string {
  return `deb ${m.signedBy ? `[signed-by=${m.signedBy}] ` : ''}${m.uri} ${suite} ${m.components.join(' ')}`;
}

/** The machine's apt proxy settings, passed on (mmdebstrap's apt reads no host apt.conf). */
function aptProxyOptions(): string[] {
  const r = spawnSync('apt-config', ['shell', 'HTTP', 'Acquire::http::Proxy', 'HTTPS', 'Acquire::https::Proxy'], { encoding: 'utf8', timeout: 5000 });
  if (r.status !== 0) return [];
  const out: string[] = [];
  for (const m of r.stdout.matchAll(/^(HTTPS?)='([^']*)'$/gm)) out.push(`--aptopt=Acquire::${m[1].toLowerCase()}::Proxy "${m[2]}"`);
  return out;
}

// ---------------------------------------------------------------- the build

export function mmdebstrapArgs(img: LabImage, mirror: DebianMirror): string[] {
  if (/\s/.test(PAUSE_PATH)) throw new ImageError(`netlab's directory ${path.dirname(PAUSE_PATH)} has a space in its path; mmdebstrap's copy-in cannot take it`);
  return [
    '--mode=unshare', '--variant=essential', `--include=${img.packages.join(',')}`,
    ...(fs.existsSync(MERGED_USR_HOOK) ? [`--hook-dir=${MERGED_USR_HOOK}`] : []),
    ...DROPPED.map((p) => `--dpkgopt=path-exclude=${p}`), ...KEPT.map((p) => `--dpkgopt=path-include=${p}`),
    `--customize-hook=copy-in ${PAUSE_PATH} ${path.posix.dirname(PAUSE_IN_IMAGE)}`,
    ...aptProxyOptions(),
    img.debian, '-', mirrorLine(mirror, img.debian),
  ];
}

export function mmtarfilterArgs(): string[] {
  return ['--path-exclude=/dev/*', ...DROPPED.map((p) => `--path-exclude=${p}`), ...KEPT.map((p) => `--path-include=${p}`)];
}

/** mmdebstrap's own error, in one line: its first `E:` line that is not one of its wrappers
 *  ("setup failed: E: apt-get ... failed", "mmdebstrap failed to run"), else its last line. */
export function mmdebstrapError(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  const errors = lines.filter((l) => l.startsWith('E: '));
  const wrapper = /^E: (setup failed|command failed|mmdebstrap failed|.* failed$|.*exited with exit code)/;
  const best = errors.find((l) => !wrapper.test(l)) ?? errors[0] ?? lines[lines.length - 1] ?? 'no output';
  return best.replace(/^E: /, '');
}

export interface BuildEvents {
  /** The build begins (nothing for this recipe in the store). */
  start?(img: LabImage, mirror: DebianMirror): void;
  /** A step of mmdebstrap (its `I:` lines). */
  step?(img: LabImage, text: string): void;
  /** In the store: 'built' now, 'present' already, 'tagged' (the same recipe under another name). */
  done?(img: LabImage, how: 'built' | 'present' | 'tagged', ms: number, stored: StoredImage): void;
}

/** The stored image of a recipe, when all of it is there. */
export function builtImage(img: LabImage, root = STORE): StoredImage | null {
  const s = storedImage(parseImageReference(img.ref), root);
  return s && s.layerDirs.every((d) => fs.existsSync(d)) ? s : null;
}

/** The same recipe stored under another name (the tag is the recipe's hash). */
function sameRecipe(img: LabImage, root: string): StoredImage | null {
  const tag = img.ref.slice(img.ref.lastIndexOf(':'));
  for (const e of listEntries(root)) {
    const r = e.annotations?.['org.opencontainers.image.ref.name'];
    if (!r || !r.startsWith(`${BUILT_REGISTRY}/`) || !r.endsWith(tag)) continue;
    try {
      const s = imageOf(e, root);
      if (s.layerDirs.every((d) => fs.existsSync(d))) return s;
    } catch { /* broken entry: build */ }
  }
  return null;
}

/** Hashes and counts what passes. */
function hasher(): { t: Transform; digest: () => string; size: () => number } {
  const h = createHash('sha256');
  let n = 0;
  const t = new Transform({ transform(c: Buffer, _e, cb) { h.update(c); n += c.length; cb(null, c); } });
  return { t, digest: () => `sha256:${h.digest('hex')}`, size: () => n };
}

// 'exit', not 'close': mmdebstrap's stdout is mmtarfilter's stdin, never closed on our side.
const exited = (c: ChildProcess) => new Promise<number>((res) => {
  if (c.exitCode !== null || c.signalCode !== null) { res(c.exitCode ?? 128); return; }
  c.once('exit', (code, sig) => res(code ?? (sig ? 128 : 1)));
});
const ended = (s: NodeJS.ReadableStream | null) => new Promise<void>((res) => {
  if (!s || (s as { readableEnded?: boolean }).readableEnded) { res(); return; }
  s.once('end', res); s.once('error', () => res()); s.once('close', res);
});

/** Builds the image of a recipe into the store (unless there: `rebuild` builds it anyway). */
export async function buildImage(img: LabImage, o: { root?: string; config?: NetlabConfig; rebuild?: boolean; events?: BuildEvents; mirror?: DebianMirror } = {}): Promise<StoredImage> {
  const root = o.root ?? STORE;
  const t0 = performance.now();
  if (!o.rebuild) {
    const have = builtImage(img, root);
    if (have) { o.events?.done?.(img, 'present', performance.now() - t0, have); return have; }
    const other = sameRecipe(img, root);
    if (other) {
      recordImage(img.ref, { digest: other.digest, size: fs.statSync(blobPath(other.digest, root)).size, mediaType: MEDIA.ociManifest }, null, root);
      const s = builtImage(img, root)!;
      o.events?.done?.(img, 'tagged', performance.now() - t0, s);
      return s;
    }
  }
  if (spawnSync('sh', ['-c', 'command -v mmdebstrap && command -v mmtarfilter'], { stdio: 'ignore' }).status !== 0) {
    throw new ImageError(`image ${img.name} is built from Debian packages with mmdebstrap, which is not installed: apt-get install mmdebstrap`);
  }
  if (!fs.existsSync(PAUSE_PATH)) throw new ImageError(`${PAUSE_PATH} is missing: run ./setup.sh (it builds it)`);
  const mirror = o.mirror ?? machineMirror();
  const config = o.config ?? loadConfig();
  initStore(root);
  o.events?.start?.(img, mirror);
  const tmpGz = path.join(storePaths(root).tmp, `build.${process.pid}.${Date.now().toString(36)}.tar.gz`);
  const mm = spawn('mmdebstrap', mmdebstrapArgs(img, mirror), { stdio: ['ignore', 'pipe', 'pipe'] });
  const tf = spawn('mmtarfilter', mmtarfilterArgs(), { stdio: [mm.stdout, 'pipe', 'pipe'] });
  // A signal while building: the children go first (mmdebstrap removes its temp directory on
  // SIGTERM), then our temp file, then the signal takes its course.
  const onSignal = (sig: NodeJS.Signals) => {
    for (const c of [mm, tf]) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    void Promise.all([exited(mm), exited(tf)]).then(() => {
      fs.rmSync(tmpGz, { force: true });
      removeSignals();
      process.kill(process.pid, sig);
    });
  };
  const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];
  const removeSignals = () => { for (const s of SIGNALS) process.removeListener(s, onSignal); };
  for (const s of SIGNALS) process.on(s, onSignal);
  let stderr = '';
  let tfErr = '';
  let partial = '';
  mm.stderr!.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
    if (stderr.length > 1 << 20) stderr = stderr.slice(-(1 << 19));
    partial += s;
    const lines = partial.split('\n');
    partial = lines.pop()!;
    for (const l of lines) if (l.startsWith('I: ')) o.events?.step?.(img, l.slice(3));
  });
  tf.stderr!.setEncoding('utf8').on('data', (s: string) => { tfErr += s; });
  try {
    const tar = hasher();
    const gz = hasher();
    const written = pipeline(tf.stdout!, tar.t, createGzip(), gz.t, fs.createWriteStream(tmpGz));
    const [mmCode, tfCode] = await Promise.all([exited(mm), exited(tf), written.catch(() => undefined), ended(mm.stderr), ended(tf.stderr)]);
    await written.catch((e: Error) => { if (mmCode === 0 && tfCode === 0) throw e; });
    if (mmCode !== 0) throw new ImageError(`image ${img.name} (debian ${img.debian}): ${mmdebstrapError(stderr)}`);
    if (tfCode !== 0) throw new ImageError(`image ${img.name}: mmtarfilter failed: ${tfErr.trim().split('\n').pop() ?? `exit ${tfCode}`}`);
    const diffId = tar.digest();
    const layer = { mediaType: MEDIA.ociLayerGzip, digest: gz.digest(), size: gz.size() };
    await putLayer(layer, diffId, async () => fs.createReadStream(tmpGz, { highWaterMark: 1 << 20 }), { config, root });
    const plat = currentPlatform();
    const created = new Date().toISOString();
    const cfg: OciImageConfig & { history: object[] } = {
      created, os: 'linux', architecture: plat.architecture, ...(plat.variant ? { variant: plat.variant } : {}),
      config: {
        Env: [`PATH=${DEFAULT_PATH}`],
        Cmd: [PAUSE_IN_IMAGE],
        Labels: {
          'io.netlab.recipe': JSON.stringify({ version: RECIPE_VERSION, debian: img.debian, packages: img.packages }),
          'io.netlab.mirror': mirror.uri,
        },
      },
      rootfs: { type: 'layers', diff_ids: [diffId] },
      history: [{ created, created_by: `mmdebstrap --variant=essential --include=${img.packages.join(',')} ${img.debian} (netlab)` }],
    };
    const cfgBytes = Buffer.from(JSON.stringify(cfg));
    const cfgDesc = { mediaType: MEDIA.ociConfig, digest: `sha256:${createHash('sha256').update(cfgBytes).digest('hex')}`, size: cfgBytes.length };
    const manifest = { schemaVersion: 2, mediaType: MEDIA.ociManifest, config: cfgDesc, layers: [layer] };
    const mBytes = Buffer.from(JSON.stringify(manifest));
    const mDesc = { mediaType: MEDIA.ociManifest, digest: `sha256:${createHash('sha256').update(mBytes).digest('hex')}`, size: mBytes.length };
    putBlob(cfgDesc, cfgBytes, root);
    putBlob(mDesc, mBytes, root);
    recordImage(img.ref, mDesc, null, root);
    const stored = imageOf(findEntry({ canonical: img.ref, digest: null }, root)!, root);
    o.events?.done?.(img, 'built', performance.now() - t0, stored);
    return stored;
  } finally {
    for (const c of [mm, tf]) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    await Promise.all([exited(mm), exited(tf)]);
    removeSignals();
    fs.rmSync(tmpGz, { force: true });
  }
}

/** What `up` does first: every recipe among IMAGES in the store (built when missing). */
export async function ensureBuilt(images: LabImage[], o: { root?: string; rebuild?: boolean; events?: BuildEvents } = {}): Promise<StoredImage[]> {
  const out: StoredImage[] = [];
  for (const img of images) out.push(await buildImage(img, o));
  return out;
}

/** Whether any of IMAGES must be built (not in the store under its reference). */
export function needsBuild(images: LabImage[], root = STORE): boolean {
  return images.some((i) => !builtImage(i, root));
}
