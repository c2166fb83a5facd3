// netlab's machine-wide image settings: /etc/netlab/config.json, or the file NETLAB_CONFIG names.
// Its keys are Docker's daemon.json ones where Docker has them (`registry-mirrors`,
// `insecure-registries`), so a user can copy them over, plus netlab's own `max-layer-size`.
// Unknown keys are ignored for the same reason: a whole daemon.json is a valid netlab config.
import * as fs from 'node:fs';
import * as net from 'node:net';
import { ImageError } from './types.js';

export interface NetlabConfig {
  /** The file read, null when there was none. */
  file: string | null;
  /** Mirror base URLs for docker.io images ('https://mirror.example' without a trailing '/'). */
  registryMirrors: string[];
  /** host[:port] names or CIDRs, as Docker takes them ('http://' prefixes dropped as Docker does). */
  insecureRegistries: string[];
  /** Largest unpacked size of one layer, in bytes (a gzip bomb stops there). */
  maxLayerBytes: number;
}

export const DEFAULT_CONFIG_FILE = '/etc/netlab/config.json';
export const DEFAULT_MAX_LAYER_BYTES = 20 * 1024 ** 3;

export function defaultConfig(): NetlabConfig {
  return { file: null, registryMirrors: [], insecureRegistries: [], maxLayerBytes: DEFAULT_MAX_LAYER_BYTES };
}

const UNITS: Record<string, number> = {
  '': 1, b: 1,
  k: 1024, kib: 1024, m: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gib: 1024 ** 3, t: 1024 ** 4, tib: 1024 ** 4,
  kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12,
};

/** Bytes from a number or a size string: "500MB" (powers of 1000), "20GiB" or "20g" (powers of
 *  1024, as Docker's `--memory 20g`). Null when it is neither. */
export function parseByteSize(v: unknown): number | null {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v > 0 ? v : null;
  if (typeof v !== 'string') return null;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(v);
  if (!m) return null;
  const unit = UNITS[m[2]!.toLowerCase()];
  if (unit === undefined) return null;
  const n = Math.floor(Number(m[1]) * unit);
  return Number.isSafeInteger(n) && n > 0 ? n : null;
}

function mirrorUrl(file: string, v: unknown): string {
  const bad = (why: string): never => { throw new ImageError(`${file}: registry-mirrors entry ${JSON.stringify(v)} ${why}`); };
  if (typeof v !== 'string') return bad('is not a string');
  let u: URL;
  try { u = new URL(v); } catch { return bad('is not a URL (write it as https://host[:port])'); }
  // Docker's ValidateMirror: a bare scheme://host[:port], nothing that would be lost or leaked.
  if (u.protocol !== 'http:' && u.protocol !== 'https:') bad('must be an http:// or https:// URL');
  if (u.username || u.password) bad('must not contain credentials (put them in the Docker config file)');
  if ((u.pathname !== '/' && u.pathname !== '') || u.search || u.hash) bad('must not have a path, query or fragment');
  return `${u.protocol}//${u.host}`;
}

function insecureEntry(file: string, v: unknown): string {
  const bad = (why: string): never => { throw new ImageError(`${file}: insecure-registries entry ${JSON.stringify(v)} ${why}`); };
  if (typeof v !== 'string' || v === '') return bad('is not a host[:port] or CIDR string');
  let s = v;
  const lower = s.toLowerCase();
  if (lower.startsWith('http://')) s = s.slice(7);
  else if (lower.startsWith('https://')) s = s.slice(8);
  else if (s.includes('://')) bad("must not contain '://'");
  s = s.replace(/\/+$/, '');
  const slash = s.indexOf('/');
  if (slash >= 0) {
    const addr = s.slice(0, slash);
    const bits = s.slice(slash + 1);
    const family = net.isIP(addr);
    if (!family || !/^\d+$/.test(bits) || Number(bits) > (family === 4 ? 32 : 128)) bad('is not a valid CIDR');
    return s;
  }
  if (!/^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9a-fA-F:]+\])(?::\d+)?$/.test(s)) {
    bad('is not a host[:port] or CIDR');
  }
  return s;
}

/** Reads the config file (NETLAB_CONFIG, else /etc/netlab/config.json); an absent file gives
 *  the defaults. Anything present but wrong is an ImageError naming the file. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): NetlabConfig {
  const file = env.NETLAB_CONFIG || DEFAULT_CONFIG_FILE;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return defaultConfig();
    throw new ImageError(`${file}: cannot read the netlab config file: ${(e as Error).message}`);
  }
  return parseConfig(file, text);
}

export function parseConfig(file: string, text: string): NetlabConfig {
  let doc: unknown;
  try {
    // An empty file (NETLAB_CONFIG=/dev/null, a `touch`ed config) means no settings.
    doc = text.trim() === '' ? {} : JSON.parse(text);
  } catch (e) {
    throw new ImageError(`${file}: not valid JSON: ${(e as Error).message.split('\n')[0]}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new ImageError(`${file}: the config must be a JSON object`);
  const o = doc as Record<string, unknown>;
  const c: NetlabConfig = { ...defaultConfig(), file };
  const list = (key: string): unknown[] => {
    const v = o[key];
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw new ImageError(`${file}: ${key} must be a list`);
    return v;
  };
  c.registryMirrors = list('registry-mirrors').map((v) => mirrorUrl(file, v));
  c.insecureRegistries = list('insecure-registries').map((v) => insecureEntry(file, v));
  if (o['max-layer-size'] !== undefined) {
    const n = parseByteSize(o['max-layer-size']);
    if (n === null) throw new ImageError(`${file}: max-layer-size ${JSON.stringify(o['max-layer-size'])} is not a size (bytes as a number, or a string like "20GiB" or "500MB")`);
    c.maxLayerBytes = n;
  }
  return c;
}
