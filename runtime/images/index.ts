// Resolves an image reference to an ImageSpec: netlab's own two (the built-in busybox and the
// host's filesystem, by those exact names) or an OCI image from the store. Resolved once per
// process and reference.
import { busyboxSpec } from './busybox.js';
import { hostSpec } from './host.js';
import { ociSpec } from './oci.js';
import type { ImageSpec } from './types.js';

export { ImageError, type ImageSpec, type ImageConfig, type RootMount } from './types.js';

const BUILTIN: Record<string, (ref: string) => ImageSpec> = { busybox: busyboxSpec, host: hostSpec };

const resolved = new Map<string, ImageSpec>();

export function resolveImage(ref: string): ImageSpec {
  const known = resolved.get(ref);
  if (known) return known;
  const spec = (BUILTIN[ref] ?? ociSpec)(ref);
  resolved.set(ref, spec);
  return spec;
}

/** Forgets what was resolved (after a pull or rm in the same process). */
export function forgetResolved(): void {
  resolved.clear();
}
