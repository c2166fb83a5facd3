// The resolver's images stage: `images:` declares images built from Debian packages (a suite and
// a package list; runtime/images/build.ts builds them with mmdebstrap). Each recipe is checked
// (a plausible Debian suite, Debian package names, each once, a name that is neither netlab's own
// image nor a registry reference) and gets its store reference: netlab.invalid/<name>:<suite>-<hash
// of suite + sorted packages + RECIPE_VERSION>. `.invalid` is a reserved top-level domain (RFC
// 2606) that never resolves, so the reference can never be pulled from anywhere by accident; a
// node's `image: NAME` becomes that reference (resolve.ts), and the same recipe in any lab names
// the same image, so a second `up` finds it in the store at once.
import { createHash } from 'node:crypto';
import type { LabImage, RawImage } from './types.js';
import { BUILTIN_IMAGES } from './image-ref.js';
import type { PathSeg } from './source.js';
import type { ResolveContext } from './resolve-context.js';

/** The registry part of a built image's reference: a name no registry can have. */
export const BUILT_REGISTRY = 'netlab.invalid';
/** Bumped whenever what netlab puts into a built image changes (mmdebstrap options, filters,
 *  config), so recipes built by an older netlab are built again. */
export const RECIPE_VERSION = 1;

/** Debian's release codenames and suite aliases (a name outside this list that looks like one is
 *  still tried: the mirror has the last word, and mmdebstrap's error says so). */
export const DEBIAN_SUITES: readonly string[] = [
  'stable', 'testing', 'unstable', 'oldstable', 'oldoldstable', 'sid',
  'jessie', 'stretch', 'buster', 'bullseye', 'bookworm', 'trixie', 'forky', 'duke',
];
const VERSION_CODENAME: Record<string, string> = { 8: 'jessie', 9: 'stretch', 10: 'buster', 11: 'bullseye', 12: 'bookworm', 13: 'trixie', 14: 'forky', 15: 'duke' };
const UBUNTU = ['xenial', 'bionic', 'focal', 'jammy', 'kinetic', 'lunar', 'mantic', 'noble', 'oracular', 'plucky', 'questing'];
/** Debian Policy 5.6.7: at least two characters, lowercase letters, digits, '+', '-', '.',
 *  starting with a letter or digit. */
export const DEBIAN_PACKAGE_RE = /^[a-z0-9][a-z0-9+.-]+$/;

/** Why SUITE is not a plausible Debian suite, or null. */
export function suiteProblem(suite: string): string | null {
  if (DEBIAN_SUITES.includes(suite)) return null;
  const v = VERSION_CODENAME[suite.replace(/\.\d+$/, '')];
  if (v) return `"${suite}" is a Debian version; the suite is named by its codename: debian: ${v}`;
  if (UBUNTU.includes(suite)) return `"${suite}" is an Ubuntu release, not a Debian suite (expected e.g. bookworm, trixie, stable)`;
  if (suite.toLowerCase() !== suite && DEBIAN_SUITES.includes(suite.toLowerCase())) return `Debian suite names are lowercase: debian: ${suite.toLowerCase()}`;
  const m = /^([a-z]+)-(updates|security|backports|proposed-updates)$/.exec(suite);
  if (m) return `"${suite}" is an add-on to ${m[1]}, not a suite an image can be built from alone; write debian: ${m[1]}`;
  if (!/^[a-z]{3,20}$/.test(suite)) return `"${suite}" is not a Debian suite; expected a codename (bookworm, trixie, sid) or stable, testing, unstable, oldstable`;
  return null;
}

/** The canonical recipe: suite and packages sorted, each once. */
export function recipeHash(debian: string, packages: string[]): string {
  const text = [`netlab-debian-recipe v${RECIPE_VERSION}`, debian, ...[...new Set(packages)].sort()].join('\n');
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

/** The store reference of recipe NAME. */
export function recipeRef(name: string, debian: string, packages: string[]): string {
  return `${BUILT_REGISTRY}/${name}:${debian}-${recipeHash(debian, packages)}`;
}

/** Whether REF is the reference of a built image (never pulled). */
export function isBuiltRef(ref: string): boolean {
  return ref.startsWith(`${BUILT_REGISTRY}/`);
}

/** The images stage: every `images:` entry checked; the good ones by name. */
export function resolveImages(ctx: ResolveContext): Map<string, LabImage> {
  const { err } = ctx;
  const out = new Map<string, LabImage>();
  for (const [name, r] of Object.entries(ctx.raw.images ?? {}) as [string, RawImage][]) {
    const p: PathSeg[] = ['images', name];
    let ok = true;
    if (BUILTIN_IMAGES.includes(name)) { err(p, `image name "${name}" is netlab's own image; choose another name`, true); ok = false; }
    if (suiteProblem(r.debian)) { err([...p, 'debian'], suiteProblem(r.debian)!); ok = false; }
    const seen = new Map<string, number>();
    r.packages.forEach((pkg, i) => {
      if (!DEBIAN_PACKAGE_RE.test(pkg)) {
        const hint = /[=/]/.test(pkg) ? ' (versions and releases cannot be pinned: the suite decides)' : pkg.toLowerCase() !== pkg ? ' (package names are lowercase)' : '';
        err([...p, 'packages', i], `"${pkg}" is not a Debian package name: at least two of a-z, 0-9, '+', '-', '.', starting with a letter or digit${hint}`);
        ok = false;
      } else if (seen.has(pkg)) {
        err([...p, 'packages', i], `package ${pkg} is listed twice (also item ${seen.get(pkg)! + 1})`);
        ok = false;
      } else seen.set(pkg, i);
    });
    if (!ok) continue;
    const packages = [...seen.keys()].sort();
    out.set(name, { name, debian: r.debian, packages, ref: recipeRef(name, r.debian, packages) });
  }
  return out;
}
