// The registry client: the distribution HTTP API v2 (OCI distribution spec) over Node's global
// fetch. It owns how netlab talks to a registry: which base URLs serve a reference (mirrors for
// docker.io, plain HTTP for loopback and insecure registries, as Docker does), the ping and the
// Basic/Bearer auth flow, manifest negotiation and platform choice in an index, and verification
// of every byte it hands out against the digest that named it. What it does not own: where the
// bytes go (the store) and what is in a layer (the unpacker).
import { createHash } from 'node:crypto';
import * as net from 'node:net';
import * as os from 'node:os';
import { Readable, Transform } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { ImageReference } from '../../topology/image-ref.js';
import { findCredentials, type Credentials } from './auth.js';
import { loadConfig, type NetlabConfig } from './config.js';
import { ImageError } from './types.js';

export interface Platform { os: string; architecture: string; variant?: string }
export interface Descriptor { mediaType: string; digest: string; size: number; platform?: Platform; annotations?: Record<string, string>; urls?: string[] }
export interface ImageManifest { schemaVersion: 2; mediaType?: string; config: Descriptor; layers: Descriptor[]; annotations?: Record<string, string> }
export interface PulledManifest {
  ref: ImageReference;
  manifest: ImageManifest;
  manifestDigest: string;
  manifestMediaType: string;
  manifestBytes: Buffer;
  /** The index the manifest was chosen from, when the reference named one. */
  index: { digest: string; mediaType: string; bytes: Buffer } | null;
  /** Base URL that answered, e.g. 'http://127.0.0.1:5000'; blobs come from the same place. */
  source: string;
}

export const MEDIA_TYPES = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
} as const;

/** Every manifest form netlab reads. A registry only serves the types listed (Debian's
 *  distribution 2.8 answers 404 for an OCI manifest when the OCI types are missing). */
export const MANIFEST_ACCEPT = [MEDIA_TYPES.ociIndex, MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifestList, MEDIA_TYPES.dockerManifest].join(', ');

const INDEX_TYPES = new Set<string>([MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerManifestList]);
const MANIFEST_TYPES = new Set<string>([MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest]);
const CONFIG_TYPES = new Set<string>([MEDIA_TYPES.ociConfig, MEDIA_TYPES.dockerConfig]);

/** Layer media types netlab unpacks and their compression. Docker's foreign (Windows) layers
 *  and encrypted layers are not among them. */
const LAYER_TYPES: Record<string, 'none' | 'gzip' | 'zstd'> = {
  'application/vnd.oci.image.layer.v1.tar': 'none',
  'application/vnd.oci.image.layer.v1.tar+gzip': 'gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd': 'zstd',
  'application/vnd.oci.image.layer.nondistributable.v1.tar': 'none',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip': 'gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd': 'zstd',
  'application/vnd.docker.image.rootfs.diff.tar': 'none',
  'application/vnd.docker.image.rootfs.diff.tar.gzip': 'gzip',
  'application/vnd.docker.image.rootfs.diff.tar.zstd': 'zstd',
};

/** The compression of a layer media type, or null when netlab does not unpack that type. */
export function layerCompression(mediaType: string): 'none' | 'gzip' | 'zstd' | null {
  return LAYER_TYPES[mediaType] ?? null;
}

const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const MAX_SMALL_BYTES = 1024 * 1024;
const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_REDIRECTS = 10;
const DIGEST_RE = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

/** What went wrong, so callers (and the mirror fallback) can tell a missing image from a
 *  refused login or a dead host without reading the message. */
export type RegistryErrorKind = 'not-found' | 'auth' | 'unreachable' | 'protocol' | 'content' | 'unsupported';

export class RegistryError extends ImageError {
  constructor(message: string, readonly kind: RegistryErrorKind, cause?: unknown) {
    super(message, cause !== undefined ? { cause } : {});
  }
}

// ---------------------------------------------------------------------------------------------
// Endpoints

export interface Endpoint {
  /** 'https://registry-1.docker.io', 'http://127.0.0.1:5000'. */
  base: string;
  /** host[:port] the base names, for messages. */
  host: string;
  /** The name credentials are looked up under ('docker.io' for Docker Hub itself). */
  authName: string;
  mirror: boolean;
}

function splitHostPort(hostPort: string): { host: string; port: string | null } {
  const m = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(hostPort);
  if (!m) return { host: hostPort, port: null };
  return { host: m[1]!, port: m[2] ?? null };
}

/** 127.0.0.0/8, ::1 and 'localhost': Docker speaks plain HTTP to these without being told. */
export function isLoopbackHost(hostPort: string): boolean {
  const h = splitHostPort(hostPort).host.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost') return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  if (net.isIPv6(h)) {
    const b = new net.BlockList();
    b.addAddress('::1', 'ipv6');
    return b.check(h, 'ipv6');
  }
  return false;
}

/** Whether insecure-registries lists the registry: by its exact host[:port] as Docker does, or
 *  by a CIDR holding its address. Docker also resolves host names to match them against CIDRs;
 *  netlab matches only address literals, so a lookup never decides whether TLS is used. */
export function isInsecureRegistry(hostPort: string, config: NetlabConfig): boolean {
  const { host } = splitHostPort(hostPort);
  const addr = host.replace(/^\[(.*)\]$/, '$1');
  const family = net.isIP(addr);
  for (const entry of config.insecureRegistries) {
    const slash = entry.indexOf('/');
    if (slash < 0) {
      if (entry.toLowerCase() === hostPort.toLowerCase()) return true;
      continue;
    }
    const cidrAddr = entry.slice(0, slash);
    const cidrFamily = net.isIP(cidrAddr);
    if (!family || cidrFamily !== family) continue;
    const b = new net.BlockList();
    b.addSubnet(cidrAddr, Number(entry.slice(slash + 1)), family === 4 ? 'ipv4' : 'ipv6');
    if (b.check(addr, family === 4 ? 'ipv4' : 'ipv6')) return true;
  }
  return false;
}

/** The base URLs to try for REGISTRY, in order. docker.io is served by registry-1.docker.io
 *  after every configured mirror. */
export function registryEndpoints(registry: string, config: NetlabConfig): Endpoint[] {
  if (registry === 'docker.io') {
    return [
      ...config.registryMirrors.map((m) => ({ base: m, host: new URL(m).host, authName: new URL(m).host, mirror: true })),
      { base: 'https://registry-1.docker.io', host: 'registry-1.docker.io', authName: 'docker.io', mirror: false },
    ];
  }
  const plain = isLoopbackHost(registry) || isInsecureRegistry(registry, config);
  return [{ base: `${plain ? 'http' : 'https'}://${registry}`, host: registry, authName: registry, mirror: false }];
}

// ---------------------------------------------------------------------------------------------
// WWW-Authenticate

export interface Challenge { scheme: string; params: Record<string, string> }

/** Parses a WWW-Authenticate value (RFC 7235): one or more challenges, each a scheme and
 *  comma-separated auth-params whose values may be quoted strings with backslash escapes. */
export function parseWwwAuthenticate(header: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const s = header;
  const skipWs = () => { while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++; };
  const token = () => { const m = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+/.exec(s.slice(i)); if (!m) return ''; i += m[0].length; return m[0]; };
  while (i < s.length) {
    skipWs();
    while (s[i] === ',') { i++; skipWs(); }
    const scheme = token();
    if (!scheme) break;
    const ch: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    out.push(ch);
    skipWs();
    // auth-params until the next "token SP" that starts a new challenge.
    for (;;) {
      skipWs();
      const start = i;
      const key = token();
      if (!key) break;
      skipWs();
      if (s[i] !== '=') { i = start; break; } // a new scheme (or token68, which registries do not use)
      i++;
      skipWs();
      let value = '';
      if (s[i] === '"') {
        i++;
        while (i < s.length && s[i] !== '"') {
          if (s[i] === '\\' && i + 1 < s.length) i++;
          value += s[i++];
        }
        i++;
      } else {
        value = token();
      }
      ch.params[key.toLowerCase()] = value;
      skipWs();
      if (s[i] === ',') { i++; continue; }
      break;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Platforms

/** This machine's platform in OCI terms (GOARCH names). netlab runs on Linux only. */
export function currentPlatform(): Platform {
  // Compared as a string: Node's Architecture type lacks some names process.arch can have.
  switch (process.arch as string) {
    case 'x64': return { os: 'linux', architecture: 'amd64' };
    case 'arm64': return { os: 'linux', architecture: 'arm64', variant: 'v8' };
    case 'arm': {
      const v = Number((process.config.variables as Record<string, unknown>).arm_version) || 7;
      return { os: 'linux', architecture: 'arm', variant: `v${v}` };
    }
    case 'ia32': return { os: 'linux', architecture: '386' };
    case 'ppc64': return { os: 'linux', architecture: os.endianness() === 'LE' ? 'ppc64le' : 'ppc64' };
    case 'mips64el': return { os: 'linux', architecture: 'mips64le' };
    case 'loong64': return { os: 'linux', architecture: 'loong64' };
    default: return { os: 'linux', architecture: process.arch }; // s390x, riscv64, mips: same names
  }
}

export function platformString(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

/** containerd's normalisation: arm64 means v8 and arm v7 when no variant is given; '8' = 'v8'. */
function normVariant(arch: string, v: string | undefined): string {
  const x = v ? (v.startsWith('v') ? v : `v${v}`) : '';
  if (arch === 'arm64') return x || 'v8';
  if (arch === 'arm') return x || 'v7';
  if (arch === 'amd64') return x === 'v1' ? '' : x;
  return x;
}

/** The index entry for WANT: same os and architecture, the same variant (an arm machine also
 *  runs older arm variants, newest first); attestation entries (unknown/unknown) never match. */
export function selectPlatform(manifests: Descriptor[], want: Platform): Descriptor | null {
  const same = manifests.filter((d) => d.platform && MANIFEST_TYPES.has(d.mediaType) && !isAttestation(d)
    && d.platform.os === want.os && d.platform.architecture === want.architecture);
  const wv = normVariant(want.architecture, want.variant);
  const exact = same.find((d) => normVariant(want.architecture, d.platform!.variant) === wv);
  if (exact) return exact;
  if (want.architecture === 'arm') {
    const mine = Number(wv.slice(1));
    const older = same.map((d) => ({ d, n: Number(normVariant('arm', d.platform!.variant).slice(1)) }))
      .filter((x) => x.n < mine).sort((a, b) => b.n - a.n);
    if (older[0]) return older[0].d;
  }
  return null;
}

/** BuildKit's provenance and SBOM manifests: platform unknown/unknown, or annotated as such. */
function isAttestation(d: Descriptor): boolean {
  return (d.platform?.os === 'unknown' && d.platform.architecture === 'unknown')
    || d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest';
}

/** The platforms an index offers, for the message when this machine's is missing. */
export function indexPlatforms(manifests: Descriptor[]): string[] {
  const seen = new Set<string>();
  for (const d of manifests) {
    if (!d.platform || isAttestation(d)) continue;
    seen.add(platformString(d.platform));
  }
  return [...seen];
}

// ---------------------------------------------------------------------------------------------
// Validation of what a registry sends

function isDescriptor(v: unknown): v is Descriptor {
  if (typeof v !== 'object' || v === null) return false;
  const d = v as Record<string, unknown>;
  return typeof d.mediaType === 'string' && typeof d.digest === 'string' && DIGEST_RE.test(d.digest)
    && typeof d.size === 'number' && Number.isSafeInteger(d.size) && d.size >= 0;
}

function digestOf(algorithm: string, bytes: Buffer): string {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
}

function oneLine(s: string, max = 200): string {
  const t = s.replace(/\s+/g, ' ').trim();
  return t.length > max ? `${t.slice(0, max)}...` : t;
}

// ---------------------------------------------------------------------------------------------
// The client

interface Token { value: string; expires: number }

interface EndpointState {
  ep: Endpoint;
  ping: Promise<void> | null;
  challenge: Challenge | null;
  creds: Credentials | null | undefined;
  tokens: Map<string, Token>;
  tokenFetches: Map<string, Promise<string>>;
}

interface Fetched { res: Response; ctl: AbortController; url: string }

export interface RegistryClientOptions {
  config?: NetlabConfig;
  platform?: Platform;
  env?: NodeJS.ProcessEnv;
  /** Bound on connecting and on receiving headers, and on a body's silence (default 30 s). */
  timeoutMs?: number;
  /** The fetch to use (default the global one); tests wrap it to refuse non-loopback hosts. */
  fetch?: typeof fetch;
}

export class RegistryClient {
  private readonly config: NetlabConfig;
  private readonly platform: Platform;
  private readonly env: NodeJS.ProcessEnv;
  private readonly timeoutMs: number;
  private readonly fetchImpl: typeof fetch;
  private readonly states = new Map<string, EndpointState>();

  constructor(o: RegistryClientOptions = {}) {
    this.env = o.env ?? process.env;
    this.config = o.config ?? loadConfig(this.env);
    this.platform = o.platform ?? currentPlatform();
    this.timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.fetchImpl = o.fetch ?? globalThis.fetch;
  }

  /** The endpoints getManifest tries for REF, in order. */
  endpoints(ref: ImageReference): Endpoint[] {
    return registryEndpoints(ref.registry, this.config);
  }

  async getManifest(ref: ImageReference): Promise<PulledManifest> {
    const eps = this.endpoints(ref);
    const skipped: string[] = [];
    for (const ep of eps) {
      try {
        return await this.manifestFrom(this.state(ep), ref);
      } catch (e) {
        // A mirror that lacks the image, refuses it or is down is skipped, as Docker does; bad
        // content from it is not, since that is worth knowing about rather than working around.
        const fallback = ep.mirror && e instanceof RegistryError && ['not-found', 'auth', 'unreachable', 'protocol'].includes(e.kind);
        if (!fallback) {
          if (skipped.length && e instanceof RegistryError) throw new RegistryError(`${e.message} (after ${skipped.join('; ')})`, e.kind, e);
          throw e;
        }
        skipped.push(`mirror ${ep.base}: ${e.kind}`);
      }
    }
    throw new RegistryError(`image ${ref.canonical}: no registry to pull from`, 'unreachable');
  }

  async fetchBlob(m: PulledManifest, d: Descriptor): Promise<Readable> {
    const what = `image ${m.ref.canonical}: blob ${d.digest}`;
    if (!isDescriptor(d)) throw new RegistryError(`${what}: not a valid descriptor (digest sha256:/sha512: hex, size a whole number)`, 'content');
    const st = this.stateFor(m.source, m.ref);
    await this.ensurePing(st, m.ref);
    const f = await this.send(st, m.ref, `${st.ep.base}/v2/${m.ref.repository}/blobs/${d.digest}`, {});
    if (f.res.status === 404) {
      const detail = await this.errorDetail(f);
      throw new RegistryError(`${what}: not found in ${st.ep.host}${detail}`, 'not-found');
    }
    if (!f.res.ok) {
      const detail = await this.errorDetail(f);
      throw new RegistryError(`${what}: ${st.ep.host} answered HTTP ${f.res.status}${detail}`, 'protocol');
    }
    const len = f.res.headers.get('content-length');
    if (len !== null && /^\d+$/.test(len) && Number(len) !== d.size) {
      f.ctl.abort();
      throw new RegistryError(`${what}: size mismatch (the registry sends ${len} bytes, the descriptor says ${d.size})`, 'content');
    }
    return this.verifying(f, d, what);
  }

  async fetchBlobBytes(m: PulledManifest, d: Descriptor, limit = 16 * 1024 * 1024): Promise<Buffer> {
    if (d.size > limit) throw new RegistryError(`image ${m.ref.canonical}: blob ${d.digest} is ${d.size} bytes, more than the ${limit} allowed for it`, 'content');
    const s = await this.fetchBlob(m, d);
    const chunks: Buffer[] = [];
    for await (const c of s) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }

  // -- endpoints and auth ----------------------------------------------------------------------

  private state(ep: Endpoint): EndpointState {
    let st = this.states.get(ep.base);
    if (!st) {
      st = { ep, ping: null, challenge: null, creds: undefined, tokens: new Map(), tokenFetches: new Map() };
      this.states.set(ep.base, st);
    }
    return st;
  }

  /** The state for a manifest's source, also when another client pulled the manifest. */
  private stateFor(source: string, ref: ImageReference): EndpointState {
    const known = this.states.get(source);
    if (known) return known;
    const ep = this.endpoints(ref).find((e) => e.base === source)
      ?? { base: source, host: new URL(source).host, authName: new URL(source).host, mirror: false };
    return this.state(ep);
  }

  private credentials(st: EndpointState): Credentials | null {
    if (st.creds === undefined) st.creds = findCredentials(st.ep.authName, this.env);
    return st.creds;
  }

  private ensurePing(st: EndpointState, ref: ImageReference): Promise<void> {
    if (!st.ping) {
      st.ping = this.ping(st, ref);
      // A failed ping is tried again next time: the registry may have come up since.
      st.ping.catch(() => { st.ping = null; });
    }
    return st.ping;
  }

  /** GET /v2/: 200 means no auth, 401 says which scheme and where tokens come from. */
  private async ping(st: EndpointState, ref: ImageReference): Promise<void> {
    const f = await this.fetchFollow(st, ref, `${st.ep.base}/v2/`, {}, null);
    await f.res.body?.cancel().catch(() => {});
    if (f.res.status === 200) { st.challenge = null; return; }
    if (f.res.status === 401) {
      const ch = pickChallenge(f.res.headers.get('www-authenticate'));
      if (!ch) throw new RegistryError(`image ${ref.canonical}: ${st.ep.host} asks for authentication with a scheme netlab does not speak (${oneLine(f.res.headers.get('www-authenticate') ?? 'no WWW-Authenticate header')})`, 'auth');
      st.challenge = ch;
      return;
    }
    throw new RegistryError(`image ${ref.canonical}: ${st.ep.host} does not answer as a registry (GET /v2/: HTTP ${f.res.status})`, f.res.status === 404 ? 'not-found' : 'protocol');
  }

  private async authorization(st: EndpointState, ref: ImageReference, scope: string): Promise<string | null> {
    const ch = st.challenge;
    if (!ch) return null;
    const creds = this.credentials(st);
    if (ch.scheme === 'basic') {
      return creds?.username !== undefined ? `Basic ${Buffer.from(`${creds.username}:${creds.password ?? ''}`).toString('base64')}` : null;
    }
    if (creds?.registryToken) return `Bearer ${creds.registryToken}`;
    return `Bearer ${await this.token(st, ref, scope)}`;
  }

  /** A bearer token for SCOPE, asked once and kept until it expires; parallel layer downloads
   *  share one request. */
  private token(st: EndpointState, ref: ImageReference, scope: string): Promise<string> {
    const t = st.tokens.get(scope);
    if (t && t.expires > Date.now()) return Promise.resolve(t.value);
    const pending = st.tokenFetches.get(scope);
    if (pending) return pending;
    const p = this.requestToken(st, ref, scope).finally(() => st.tokenFetches.delete(scope));
    st.tokenFetches.set(scope, p);
    return p;
  }

  private async requestToken(st: EndpointState, ref: ImageReference, scope: string): Promise<string> {
    const ch = st.challenge!;
    const realm = ch.params.realm;
    let url: URL;
    try {
      url = new URL(realm ?? '');
      if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error('not http');
    } catch {
      throw new RegistryError(`image ${ref.canonical}: ${st.ep.host} names no usable token realm (${oneLine(JSON.stringify(realm ?? null))})`, 'auth');
    }
    const creds = this.credentials(st);
    const headers: Record<string, string> = {};
    let init: RequestInit;
    if (creds?.identityToken) {
      // Docker's identity token is an OAuth2 refresh token: traded with a form POST.
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: 'netlab', scope });
      if (ch.params.service) form.set('service', ch.params.service);
      headers['content-type'] = 'application/x-www-form-urlencoded';
      init = { method: 'POST', headers, body: form.toString() };
    } else {
      if (ch.params.service) url.searchParams.set('service', ch.params.service);
      url.searchParams.set('scope', scope);
      if (creds?.username !== undefined) headers.authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password ?? ''}`).toString('base64')}`;
      init = { method: 'GET', headers };
    }
    const what = `image ${ref.canonical}: token server ${url.host}`;
    const f = await this.timedFetch(url.toString(), { ...init, redirect: 'follow' }, ref, url.host);
    if (f.res.status === 401 || f.res.status === 403) {
      const detail = await this.errorDetail(f);
      throw new RegistryError(`${what} refused ${creds ? `the credentials from ${creds.from}` : 'anonymous access (no credentials for it in the Docker config)'} (HTTP ${f.res.status}${detail ? `, ${detail.slice(2, -1)}` : ''})`, 'auth');
    }
    if (!f.res.ok) {
      const detail = await this.errorDetail(f);
      throw new RegistryError(`${what} answered HTTP ${f.res.status}${detail}`, 'auth');
    }
    const body = await this.readLimited(f, MAX_SMALL_BYTES, `${what}: the token answer`);
    let doc: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try { doc = JSON.parse(body.toString('utf8')) as typeof doc; } catch { throw new RegistryError(`${what}: the answer is not JSON`, 'auth'); }
    const value = typeof doc.token === 'string' && doc.token ? doc.token : typeof doc.access_token === 'string' && doc.access_token ? doc.access_token : null;
    if (!value) throw new RegistryError(`${what}: the answer has no token`, 'auth');
    // The spec's default lifetime is 60 s; a little is kept back for the request in flight.
    const life = typeof doc.expires_in === 'number' && doc.expires_in > 0 ? doc.expires_in : 60;
    st.tokens.set(scope, { value, expires: Date.now() + life * 900 });
    return value;
  }

  // -- HTTP ------------------------------------------------------------------------------------

  /** fetch with the header timeout; network failures become one-line 'unreachable' errors
   *  naming HOST and the errno. */
  private async timedFetch(url: string, init: RequestInit, ref: ImageReference, host: string): Promise<Fetched> {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(new Error('timeout')), this.timeoutMs);
    try {
      const res = await this.fetchImpl(url, { ...init, signal: ctl.signal });
      return { res, ctl, url };
    } catch (e) {
      if (ctl.signal.aborted) throw new RegistryError(`image ${ref.canonical}: registry ${host} unreachable: no answer within ${this.timeoutMs / 1000} s`, 'unreachable', e);
      throw new RegistryError(`image ${ref.canonical}: registry ${host} unreachable: ${networkReason(e)}`, 'unreachable', e);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Follows redirects itself: blob storage often lives on another host, which must not see
   *  the registry's Authorization header. */
  private async fetchFollow(st: EndpointState, ref: ImageReference, url: string, headers: Record<string, string>, auth: string | null): Promise<Fetched> {
    const origin = new URL(url).host;
    let current = url;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const u = new URL(current);
      const h: Record<string, string> = { ...headers };
      if (auth && u.host === origin) h.authorization = auth;
      const f = await this.timedFetch(current, { method: 'GET', headers: h, redirect: 'manual' }, ref, u.host);
      const loc = f.res.headers.get('location');
      if (![301, 302, 303, 307, 308].includes(f.res.status) || !loc) return f;
      await f.res.body?.cancel().catch(() => {});
      const next = new URL(loc, current);
      if (next.protocol !== 'http:' && next.protocol !== 'https:') throw new RegistryError(`image ${ref.canonical}: ${st.ep.host} redirects to ${next.protocol} URL`, 'protocol');
      current = next.toString();
    }
    throw new RegistryError(`image ${ref.canonical}: ${st.ep.host} redirects more than ${MAX_REDIRECTS} times`, 'protocol');
  }

  /** A request for the repository's pull scope: with the auth the ping asked for, and once more
   *  with a fresh token when the registry answers 401 anyway (expired, or a new challenge). */
  private async send(st: EndpointState, ref: ImageReference, url: string, headers: Record<string, string>): Promise<Fetched> {
    const scope = `repository:${ref.repository}:pull`;
    let auth = await this.authorization(st, ref, scope);
    let f = await this.fetchFollow(st, ref, url, headers, auth);
    if (f.res.status === 401) {
      const ch = pickChallenge(f.res.headers.get('www-authenticate'));
      if (ch) {
        st.challenge = ch;
        st.tokens.delete(scope);
        const again = await this.authorization(st, ref, scope);
        if (again && again !== auth) {
          await f.res.body?.cancel().catch(() => {});
          auth = again;
          f = await this.fetchFollow(st, ref, url, headers, auth);
        }
      }
    }
    if (f.res.status === 401 || f.res.status === 403) {
      const detail = await this.errorDetail(f);
      const creds = this.credentials(st);
      const how = creds ? `with the credentials from ${creds.from}` : auth ? 'anonymously' : 'without credentials (none for it in the Docker config)';
      throw new RegistryError(`image ${ref.canonical}: access denied by ${st.ep.host} ${how} (HTTP ${f.res.status}${detail ? `, ${detail.slice(2, -1)}` : ''})`, 'auth');
    }
    return f;
  }

  /** The registry's own error text (` (CODE: message)`), or '' when it sent none. */
  private async errorDetail(f: Fetched): Promise<string> {
    try {
      const body = await this.readLimited(f, 64 * 1024, 'error');
      const doc = JSON.parse(body.toString('utf8')) as { errors?: { code?: unknown; message?: unknown }[] };
      const e = doc.errors?.[0];
      if (!e) return '';
      return ` (${oneLine([e.code, e.message].filter((x) => typeof x === 'string' && x).join(': '))})`;
    } catch {
      return '';
    }
  }

  private async readLimited(f: Fetched, limit: number, what: string): Promise<Buffer> {
    const body = f.res.body;
    if (!body) return Buffer.alloc(0);
    const reader = body.getReader();
    const chunks: Buffer[] = [];
    let n = 0;
    let timer: NodeJS.Timeout | null = null;
    const arm = () => { if (timer) clearTimeout(timer); timer = setTimeout(() => f.ctl.abort(new Error('timeout')), this.timeoutMs); };
    try {
      for (;;) {
        arm();
        let r: ReadableStreamReadResult<Uint8Array>;
        try { r = await reader.read(); } catch (e) {
          throw new RegistryError(`${what}: ${f.ctl.signal.aborted ? `no data for ${this.timeoutMs / 1000} s` : networkReason(e)}`, 'unreachable', e);
        }
        if (r.done) break;
        n += r.value.length;
        if (n > limit) { f.ctl.abort(); throw new RegistryError(`${what} is larger than ${limit} bytes`, 'content'); }
        chunks.push(Buffer.from(r.value));
      }
    } finally {
      if (timer) clearTimeout(timer);
    }
    return Buffer.concat(chunks);
  }

  // -- manifests -------------------------------------------------------------------------------

  private async manifestFrom(st: EndpointState, ref: ImageReference): Promise<PulledManifest> {
    await this.ensurePing(st, ref);
    const top = await this.fetchManifest(st, ref, ref.digest ?? ref.tag ?? 'latest');
    if (ref.digest && top.digest !== ref.digest) {
      throw new RegistryError(`image ${ref.canonical}: digest mismatch: ${st.ep.host} sent a manifest whose digest is ${top.digest}, not ${ref.digest}`, 'content');
    }
    let index: PulledManifest['index'] = null;
    let chosen = top;
    if (INDEX_TYPES.has(top.mediaType)) {
      const manifests = (top.doc as { manifests?: unknown }).manifests;
      if (!Array.isArray(manifests) || !manifests.every(isDescriptor)) {
        throw new RegistryError(`image ${ref.canonical}: the index ${top.digest} has no valid manifests list`, 'content');
      }
      const d = selectPlatform(manifests, this.platform);
      if (!d) {
        const have = indexPlatforms(manifests);
        throw new RegistryError(`image ${ref.canonical}: no ${platformString(this.platform)} image in the index (it has ${have.length ? have.join(', ') : 'no platforms'})`, 'unsupported');
      }
      index = { digest: top.digest, mediaType: top.mediaType, bytes: top.bytes };
      chosen = await this.fetchManifest(st, ref, d.digest);
      if (chosen.digest !== d.digest || chosen.bytes.length !== d.size) {
        throw new RegistryError(`image ${ref.canonical}: digest mismatch: the index names ${d.digest} (${d.size} bytes), ${st.ep.host} sent ${chosen.digest} (${chosen.bytes.length} bytes)`, 'content');
      }
      if (!MANIFEST_TYPES.has(chosen.mediaType)) {
        throw new RegistryError(`image ${ref.canonical}: the index entry ${d.digest} for ${platformString(this.platform)} is ${chosen.mediaType}, not an image manifest`, 'unsupported');
      }
    }
    return {
      ref,
      manifest: validateManifest(ref, chosen.digest, chosen.doc),
      manifestDigest: chosen.digest,
      manifestMediaType: chosen.mediaType,
      manifestBytes: chosen.bytes,
      index,
      source: st.ep.base,
    };
  }

  private async fetchManifest(st: EndpointState, ref: ImageReference, reference: string): Promise<{ bytes: Buffer; digest: string; mediaType: string; doc: Record<string, unknown> }> {
    const f = await this.send(st, ref, `${st.ep.base}/v2/${ref.repository}/manifests/${reference}`, { accept: MANIFEST_ACCEPT });
    if (f.res.status === 404) {
      const detail = await this.errorDetail(f);
      throw new RegistryError(`image ${ref.canonical}: not found in ${st.ep.host}${reference.startsWith('sha256:') && reference !== ref.digest ? ` (manifest ${reference})` : ''}${detail}`, 'not-found');
    }
    if (!f.res.ok) {
      const detail = await this.errorDetail(f);
      throw new RegistryError(`image ${ref.canonical}: ${st.ep.host} answered HTTP ${f.res.status} for the manifest${detail}`, 'protocol');
    }
    const len = f.res.headers.get('content-length');
    if (len !== null && Number(len) > MAX_MANIFEST_BYTES) {
      f.ctl.abort();
      throw new RegistryError(`image ${ref.canonical}: the manifest is ${len} bytes, more than the ${MAX_MANIFEST_BYTES} netlab reads`, 'content');
    }
    const bytes = await this.readLimited(f, MAX_MANIFEST_BYTES, `image ${ref.canonical}: the manifest`);
    const digest = digestOf('sha256', bytes);
    // The registry's own claim is checked too: a proxy or cache that changed the bytes shows here
    // even when the reference is a tag.
    const claimed = f.res.headers.get('docker-content-digest');
    if (claimed && DIGEST_RE.test(claimed)) {
      const mine = claimed.startsWith('sha256:') ? digest : digestOf(claimed.split(':')[0]!, bytes);
      if (mine !== claimed) throw new RegistryError(`image ${ref.canonical}: digest mismatch: ${st.ep.host} says the manifest is ${claimed}, its bytes are ${mine}`, 'content');
    }
    let doc: unknown;
    try { doc = JSON.parse(bytes.toString('utf8')); } catch { doc = null; }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new RegistryError(`image ${ref.canonical}: the manifest ${digest} from ${st.ep.host} is not a JSON object`, 'content');
    const o = doc as Record<string, unknown>;
    const header = (f.res.headers.get('content-type') ?? '').split(';')[0]!.trim();
    // The body's own mediaType is covered by the digest; the header is only a hint, used when the
    // body has none (OCI made the field optional at first).
    let mediaType = typeof o.mediaType === 'string' ? o.mediaType : header;
    if (o.schemaVersion === 1 || mediaType === MEDIA_TYPES.dockerSchema1 || mediaType === MEDIA_TYPES.dockerSchema1Signed) {
      throw new RegistryError(`image ${ref.canonical}: ${st.ep.host} serves a Docker schema 1 manifest, a format retired in 2019 that netlab does not read; push the image again with a current Docker, buildah or skopeo`, 'unsupported');
    }
    if (!INDEX_TYPES.has(mediaType) && !MANIFEST_TYPES.has(mediaType)) {
      if (typeof o.mediaType !== 'string' && Array.isArray(o.manifests)) mediaType = MEDIA_TYPES.ociIndex;
      else if (typeof o.mediaType !== 'string' && typeof o.config === 'object') mediaType = MEDIA_TYPES.ociManifest;
      else throw new RegistryError(`image ${ref.canonical}: unsupported manifest media type ${JSON.stringify(mediaType || 'none')} from ${st.ep.host}`, 'unsupported');
    }
    return { bytes, digest, mediaType, doc: o };
  }

  /** The blob as a stream that errors, before it ends, when the bytes are not D's. */
  private verifying(f: Fetched, d: Descriptor, what: string): Readable {
    const algorithm = d.digest.split(':')[0]!;
    const want = d.digest.slice(algorithm.length + 1);
    const hash = createHash(algorithm);
    let n = 0;
    let timer: NodeJS.Timeout | null = null;
    const arm = () => { if (timer) clearTimeout(timer); timer = setTimeout(() => f.ctl.abort(new Error('timeout')), this.timeoutMs); };
    const timeoutMs = this.timeoutMs;
    const out = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        arm();
        n += chunk.length;
        if (n > d.size) { cb(new RegistryError(`${what}: size mismatch (more than the ${d.size} bytes the descriptor says)`, 'content')); return; }
        hash.update(chunk);
        cb(null, chunk);
      },
      flush(cb) {
        if (timer) clearTimeout(timer);
        if (n !== d.size) { cb(new RegistryError(`${what}: size mismatch (${n} bytes, the descriptor says ${d.size})`, 'content')); return; }
        const got = hash.digest('hex');
        if (got !== want) { cb(new RegistryError(`${what}: digest mismatch (the bytes are ${algorithm}:${got})`, 'content')); return; }
        cb();
      },
    });
    const src = f.res.body ? Readable.fromWeb(f.res.body as unknown as WebReadableStream<Uint8Array>) : Readable.from([]);
    arm();
    src.on('error', (e) => {
      out.destroy(new RegistryError(`${what}: ${f.ctl.signal.aborted ? `no data for ${timeoutMs / 1000} s` : networkReason(e)}`, 'unreachable', e));
    });
    // A consumer that stops early (or an error above) must not leave the connection open.
    out.on('close', () => {
      if (timer) clearTimeout(timer);
      if (!src.readableEnded) { src.destroy(); f.ctl.abort(); }
    });
    src.pipe(out);
    return out;
  }
}

function pickChallenge(header: string | null): Challenge | null {
  const all = parseWwwAuthenticate(header ?? '');
  return all.find((c) => c.scheme === 'bearer') ?? all.find((c) => c.scheme === 'basic') ?? null;
}

/** "connect ECONNREFUSED 127.0.0.1:5000" out of undici's "fetch failed" and its cause. */
function networkReason(e: unknown): string {
  let c: unknown = e;
  for (let i = 0; i < 4 && c && typeof c === 'object' && 'cause' in c && (c as { cause?: unknown }).cause; i++) c = (c as { cause: unknown }).cause;
  const agg = c as { errors?: unknown[] } | null;
  if (agg && Array.isArray(agg.errors) && agg.errors[0]) c = agg.errors[0];
  const err = c as { code?: unknown; message?: unknown } | null;
  const code = typeof err?.code === 'string' ? err.code : '';
  const message = typeof err?.message === 'string' && err.message ? oneLine(err.message) : String(e);
  const text = code && !message.includes(code) ? `${message} (${code})` : message;
  return /SSL|TLS|CERT/i.test(code + message) ? `${text}; a registry speaking plain HTTP must be listed in insecure-registries` : text;
}

function validateManifest(ref: ImageReference, digest: string, doc: Record<string, unknown>): ImageManifest {
  const bad = (why: string, kind: RegistryErrorKind = 'content'): never => { throw new RegistryError(`image ${ref.canonical}: manifest ${digest} ${why}`, kind); };
  if (doc.schemaVersion !== 2) bad(`has schemaVersion ${JSON.stringify(doc.schemaVersion)}, not 2`);
  if (!isDescriptor(doc.config)) bad('has no valid config descriptor');
  const config = doc.config as Descriptor;
  if (!CONFIG_TYPES.has(config.mediaType)) bad(`is not a container image: its config is ${config.mediaType}`, 'unsupported');
  if (!Array.isArray(doc.layers) || !doc.layers.every(isDescriptor)) bad('has no valid layers list');
  const layers = doc.layers as Descriptor[];
  for (const l of layers) {
    if (layerCompression(l.mediaType) === null) bad(`has layer ${l.digest} of unsupported media type ${l.mediaType}`, 'unsupported');
  }
  const m: ImageManifest = { schemaVersion: 2, config, layers };
  if (typeof doc.mediaType === 'string') m.mediaType = doc.mediaType;
  if (typeof doc.annotations === 'object' && doc.annotations !== null) m.annotations = doc.annotations as Record<string, string>;
  return m;
}
