// Registry credentials from the Docker CLI's config file ($DOCKER_CONFIG/config.json, else
// ~/.docker/config.json), so `docker login` once serves netlab too. Only the inline `auths`
// entries are read. `credsStore` and `credHelpers` name external programs
// (docker-credential-*) that netlab does not run: executing a helper picked by a config file
// under a root process is more than reading a credential, and images that need one can be
// pulled after writing the entry inline (`auth`, or `username`/`password`).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ImageError } from './types.js';

export interface Credentials {
  username?: string;
  password?: string;
  /** An OAuth2 refresh token (Docker's `identitytoken`), traded at the token endpoint. */
  identityToken?: string;
  /** A bearer token sent to the registry as it is (Docker's `registrytoken`). */
  registryToken?: string;
  /** The file and `auths` key they came from, for error messages. */
  from: string;
}

/** The Docker Hub key `docker login` writes. */
const DOCKER_HUB_KEY = 'https://index.docker.io/v1/';
const DOCKER_HUB_HOSTS = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

export function dockerConfigFile(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.DOCKER_CONFIG || path.join(env.HOME || os.homedir(), '.docker');
  return path.join(dir, 'config.json');
}

/** The Docker CLI's ConvertToHostname: a key may be a URL ('https://host:5000/v2/') or a bare
 *  host[:port]. */
function keyHost(key: string): string {
  let k = key;
  if (k.startsWith('http://')) k = k.slice(7);
  else if (k.startsWith('https://')) k = k.slice(8);
  return k.split('/')[0]!.toLowerCase();
}

function decodeEntry(file: string, key: string, v: unknown): Credentials | null {
  if (typeof v !== 'object' || v === null) return null;
  const e = v as Record<string, unknown>;
  const from = `${file} (${key})`;
  const c: Credentials = { from };
  if (typeof e.auth === 'string' && e.auth !== '') {
    const text = Buffer.from(e.auth, 'base64').toString('utf8');
    const colon = text.indexOf(':');
    if (colon < 0) throw new ImageError(`${from}: "auth" is not base64 of user:password`);
    c.username = text.slice(0, colon);
    c.password = text.slice(colon + 1);
  } else if (typeof e.username === 'string' && e.username !== '') {
    c.username = e.username;
    c.password = typeof e.password === 'string' ? e.password : '';
  }
  if (typeof e.identitytoken === 'string' && e.identitytoken !== '') c.identityToken = e.identitytoken;
  if (typeof e.registrytoken === 'string' && e.registrytoken !== '') c.registryToken = e.registrytoken;
  return c.username !== undefined || c.identityToken || c.registryToken ? c : null;
}

/** Credentials for REGISTRY (host[:port] as in a reference; 'docker.io' for Docker Hub, whatever
 *  host its mirrors or API answer on), or null when the file has none for it. */
export function findCredentials(registry: string, env: NodeJS.ProcessEnv = process.env): Credentials | null {
  const file = dockerConfigFile(env);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new ImageError(`${file}: cannot read the Docker config file: ${(e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new ImageError(`${file}: not valid JSON: ${(e as Error).message.split('\n')[0]}`);
  }
  const auths = (doc as { auths?: unknown } | null)?.auths;
  if (typeof auths !== 'object' || auths === null) return null;
  const entries = auths as Record<string, unknown>;
  const want = registry.toLowerCase();
  const hub = DOCKER_HUB_HOSTS.has(want);
  // The exact key first (what `docker login` wrote), then any key naming the same host, as the
  // Docker CLI does.
  const exact = hub ? DOCKER_HUB_KEY : registry;
  if (exact in entries) {
    const c = decodeEntry(file, exact, entries[exact]);
    if (c) return c;
  }
  for (const [key, v] of Object.entries(entries)) {
    const h = keyHost(key);
    if (hub ? DOCKER_HUB_HOSTS.has(h) : h === want) {
      const c = decodeEntry(file, key, v);
      if (c) return c;
    }
  }
  return null;
}
