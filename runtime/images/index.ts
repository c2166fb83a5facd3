// Resolves an image reference to an ImageSpec: the providers netlab has (the built-in busybox and
// the host's filesystem; OCI images come later as another provider). Resolved once per process
// and reference.
import { busyboxSpec } from './busybox.js';
import { hostSpec } from './host.js';
import { ImageError, type ImageSpec } from './types.js';

export { ImageError, type ImageSpec, type ImageConfig, type RootMount } from './types.js';

const PROVIDERS: Record<string, (ref: string) => ImageSpec> = { busybox: busyboxSpec, host: hostSpec };

const resolved = new Map<string, ImageSpec>();

export function resolveImage(ref: string): ImageSpec {
  const known = resolved.get(ref);
  if (known) return known;
  const provider = PROVIDERS[ref];
  if (!provider) throw new ImageError(`image "${ref}" is not available: netlab provides ${Object.keys(PROVIDERS).join(' and ')} (OCI images are not supported yet)`);
  const spec = provider(ref);
  resolved.set(ref, spec);
  return spec;
}
