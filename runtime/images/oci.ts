// The OCI provider: an image from the store (pulled or loaded) as an ImageSpec. Its layers are
// the store's unpacked directories (lowerdirs, top first, shared by every container) and its
// config is the image's own: Entrypoint, Cmd, Env (with Docker's default PATH when the image
// sets none), WorkingDir, User, ExposedPorts, StopSignal.
import * as fs from 'node:fs';
import { parseImageReference } from '../../topology/image-ref.js';
import { storedImage } from './pull.js';
import { STORE } from './store.js';
import { ImageError, type ImageSpec } from './types.js';

/** Docker's PATH for images that set none (moby's oci.DefaultPathEnv). */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function envRecord(list: string[] | null | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  for (const kv of list ?? []) {
    const eq = kv.indexOf('=');
    if (eq > 0) env[kv.slice(0, eq)] = kv.slice(eq + 1);
    else if (kv) env[kv] = '';
  }
  return env;
}

export function ociSpec(text: string, root = STORE): ImageSpec {
  const ref = parseImageReference(text);
  const img = storedImage(ref, root);
  if (!img) throw new ImageError(`image ${text} (${ref.canonical}) is not in the image store: \`netlab up\` pulls it (unless --pull never), or run \`netlab image pull ${text}\``);
  for (const d of img.layerDirs) {
    if (!fs.existsSync(d)) throw new ImageError(`image ${text}: its layer ${d} is missing from the store; run \`netlab image pull ${text}\` again`);
  }
  const c = img.config.config ?? {};
  const env = envRecord(c.Env);
  env.PATH ??= DEFAULT_PATH;
  return {
    ref: text,
    digest: img.digest,
    root: [{ kind: 'overlay-root', layers: [...img.layerDirs].reverse() }],
    etcInUpper: 'etc',
    config: {
      entrypoint: c.Entrypoint ?? [],
      cmd: c.Cmd ?? [],
      env,
      workingDir: c.WorkingDir || null,
      user: c.User || null,
      exposedPorts: Object.keys(c.ExposedPorts ?? {}).sort(),
      stopSignal: c.StopSignal || null,
    },
  };
}
