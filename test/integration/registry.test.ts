// The registry client against a real registry: Debian's docker-registry (distribution 2.8) on
// loopback with images built by umoci and pushed by skopeo, in OCI and Docker v2s2 forms and as an
// index; bearer auth through the registry's `silly` controller and a token server of the test's
// own. Small loopback servers stand in only for what a real registry will not do: serve schema 1,
// redirect blobs to other storage, or tamper with bytes on the way. Every client here gets a
// fetch that refuses any non-loopback address, so no test can reach docker.io or anything else.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseImageReference } from '../../topology/image-ref.js';
import { defaultConfig, type NetlabConfig } from '../../runtime/images/config.js';
import { isLoopbackHost, MEDIA_TYPES, RegistryClient, RegistryError, type Platform, type PulledManifest } from '../../runtime/images/registry.js';
import { buildTestImages, type OciLayout } from '../helpers/oci-build.js';
import { childProcesses, closeServer, freePort, listen, startRegistry, type TestRegistry } from '../helpers/registry.js';

const AMD64: Platform = { os: 'linux', architecture: 'amd64' };
const ARM64: Platform = { os: 'linux', architecture: 'arm64', variant: 'v8' };

let tmp: string;
let layout: OciLayout;
let emptyDockerConfig: string;
const contacted: string[] = [];
const started: number[] = [];

/** The real fetch, refusing anything but loopback (and noting every host asked). */
const loopbackOnly: typeof fetch = (input, init) => {
  const url = new URL(input instanceof Request ? input.url : String(input));
  contacted.push(url.host);
  if (!isLoopbackHost(url.host)) return Promise.reject(new Error(`test guard: refused a request to non-loopback ${url.host}`));
  return fetch(input, init);
};

function client(o: { config?: Partial<NetlabConfig>; platform?: Platform; dockerConfig?: string; timeoutMs?: number } = {}): RegistryClient {
  return new RegistryClient({
    config: { ...defaultConfig(), ...o.config },
    platform: o.platform ?? AMD64,
    env: { DOCKER_CONFIG: o.dockerConfig ?? emptyDockerConfig },
    timeoutMs: o.timeoutMs ?? 10_000,
    fetch: loopbackOnly,
  });
}

async function registry(o: Parameters<typeof startRegistry>[0] = {}): Promise<TestRegistry> {
  const r = await startRegistry(o);
  started.push(...r.pids());
  return r;
}

async function failure(p: Promise<unknown>): Promise<RegistryError> {
  try { await p; } catch (e) {
    expect(e).toBeInstanceOf(RegistryError);
    expect((e as Error).message).not.toContain('\n');
    return e as RegistryError;
  }
  throw new Error('expected a failure');
}

function layoutBlob(digest: string): Buffer {
  return fs.readFileSync(path.join(layout.layout, 'blobs/sha256', digest.slice(7)));
}

/** Adds an OCI index to the layout under TAG, one entry per [tag, platform] (the tags' manifests). */
function addIndex(tag: string, entries: [string, Platform, Record<string, string>?][]): string {
  const manifests = entries.map(([t, platform, annotations]) => {
    const digest = layout.digest(t);
    return { mediaType: MEDIA_TYPES.ociManifest, digest, size: layoutBlob(digest).length, platform, ...(annotations ? { annotations } : {}) };
  });
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests }));
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  fs.writeFileSync(path.join(layout.layout, 'blobs/sha256', digest.slice(7)), bytes);
  const indexFile = path.join(layout.layout, 'index.json');
  const top = JSON.parse(fs.readFileSync(indexFile, 'utf8')) as { manifests: unknown[] };
  top.manifests.push({ mediaType: MEDIA_TYPES.ociIndex, digest, size: bytes.length, annotations: { 'org.opencontainers.image.ref.name': tag } });
  fs.writeFileSync(indexFile, JSON.stringify(top));
  return digest;
}

async function readAll(s: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

interface Seen { path: string; authorization: string | null }

/** A loopback HTTP server in front of TARGET: records each request, optionally sends blob GETs to
 *  REDIRECT (another host) and rewrites manifest bodies. */
async function startProxy(target: string, o: { redirectBlobsTo?: string; tamper?: (body: Buffer) => Buffer; dropDigestHeader?: boolean } = {}) {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    const p = req.url ?? '/';
    seen.push({ path: p, authorization: req.headers.authorization ?? null });
    if (o.redirectBlobsTo && /\/blobs\/sha256:/.test(p)) {
      res.writeHead(307, { location: `${o.redirectBlobsTo}/storage${p}` });
      res.end();
      return;
    }
    const headers: Record<string, string> = {};
    for (const h of ['accept', 'authorization']) if (req.headers[h]) headers[h] = String(req.headers[h]);
    fetch(`http://${target}${p}`, { headers, redirect: 'manual' }).then(async (up) => {
      let body = Buffer.from(await up.arrayBuffer());
      if (o.tamper && /\/manifests\//.test(p) && up.ok) body = o.tamper(body);
      const out: Record<string, string> = { 'content-length': String(body.length) };
      for (const h of ['content-type', 'www-authenticate', 'location', ...(o.dropDigestHeader ? [] : ['docker-content-digest'])]) {
        const v = up.headers.get(h);
        if (v) out[h] = v;
      }
      res.writeHead(up.status, out);
      res.end(body);
    }, () => { res.writeHead(502); res.end(); });
  });
  const port = await listen(server);
  return { host: `127.0.0.1:${port}`, seen, close: () => closeServer(server) };
}

/** Blob storage on another host: serves the registry's blob files, records who asked with what. */
async function startStorage(reg: TestRegistry) {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    seen.push({ path: req.url ?? '/', authorization: req.headers.authorization ?? null });
    const m = /\/blobs\/(sha256:[a-f0-9]{64})$/.exec(req.url ?? '');
    const file = m ? reg.blobPath(m[1]!) : '';
    if (!m || !fs.existsSync(file)) { res.writeHead(404); res.end(); return; }
    const data = fs.readFileSync(file);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(data.length) });
    res.end(data);
  });
  const port = await listen(server);
  return { base: `http://localhost:${port}`, seen, close: () => closeServer(server) };
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-registry-test-'));
  emptyDockerConfig = path.join(tmp, 'docker-empty');
  fs.mkdirSync(emptyDockerConfig);
  layout = buildTestImages(path.join(tmp, 'images'));
  addIndex('idx', [
    ['base', AMD64],
    ['multi', ARM64],
    ['whiteout', { os: 'unknown', architecture: 'unknown' }, { 'vnd.docker.reference.type': 'attestation-manifest' }],
  ]);
  addIndex('idx-other', [['base', ARM64], ['multi', { os: 'linux', architecture: 's390x' }], ['whiteout', { os: 'unknown', architecture: 'unknown' }]]);
});

afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
  // Every registry this file started was stopped and waited for.
  const alive = childProcesses().filter((p) => started.includes(Number(p.split(' ')[0])));
  expect(alive).toEqual([]);
  for (const pid of started) expect(fs.existsSync(`/proc/${pid}`)).toBe(false);
  expect(contacted.filter((h) => !isLoopbackHost(h))).toEqual([]);
});

describe('a registry without auth', () => {
  let reg: TestRegistry;
  const ref = (s: string) => parseImageReference(`${reg.host}/${s}`);

  beforeAll(async () => {
    reg = await registry();
    await reg.push(`oci:${layout.ref('base')}`, 'test/img:oci', 'oci');
    await reg.push(`oci:${layout.ref('base')}`, 'test/img:v2s2', 'v2s2');
    await reg.push(`oci:${layout.ref('opaque')}`, 'test/opaque:1', 'oci');
    await reg.push(`oci:${layout.ref('user')}`, 'test/user:1', 'oci');
    await reg.push(`oci:${layout.ref('idx')}`, 'test/idx:1', 'oci', { all: true });
    await reg.push(`oci:${layout.ref('idx-other')}`, 'test/idx:other', 'oci', { all: true });
  });
  afterAll(async () => { await reg?.stop(); expect(fs.existsSync(reg.dir)).toBe(false); });

  it('an OCI manifest, by tag and by digest, over plain HTTP to loopback', async () => {
    const m = await client().getManifest(ref('test/img:oci'));
    expect(m.manifestMediaType).toBe(MEDIA_TYPES.ociManifest);
    expect(m.manifestDigest).toBe(layout.digest('base'));
    expect(m.manifestBytes.equals(layoutBlob(layout.digest('base')))).toBe(true);
    expect(m.source).toBe(`http://${reg.host}`);
    expect(m.index).toBeNull();
    expect(m.manifest.config.mediaType).toBe(MEDIA_TYPES.ociConfig);
    expect(m.manifest.layers.map((l) => l.mediaType)).toEqual(['application/vnd.oci.image.layer.v1.tar+gzip']);
    const byDigest = await client().getManifest(ref(`test/img@${m.manifestDigest}`));
    expect(byDigest.manifestDigest).toBe(m.manifestDigest);
  });

  it('a Docker v2 schema 2 manifest', async () => {
    const m = await client().getManifest(ref('test/img:v2s2'));
    expect(m.manifestMediaType).toBe(MEDIA_TYPES.dockerManifest);
    expect(m.manifest.config.mediaType).toBe(MEDIA_TYPES.dockerConfig);
    expect(m.manifest.layers.map((l) => l.mediaType)).toEqual(['application/vnd.docker.image.rootfs.diff.tar.gzip']);
    expect(m.manifestDigest).toBe(`sha256:${createHash('sha256').update(m.manifestBytes).digest('hex')}`);
    const config = JSON.parse((await client().fetchBlobBytes(m, m.manifest.config)).toString()) as { rootfs: { diff_ids: string[] } };
    expect(config.rootfs.diff_ids).toHaveLength(1);
  });

  it("an index resolves to this platform's entry; attestations are never chosen", async () => {
    const amd = await client({ platform: AMD64 }).getManifest(ref('test/idx:1'));
    expect(amd.index?.mediaType).toBe(MEDIA_TYPES.ociIndex);
    expect(amd.manifestDigest).toBe(layout.digest('base'));
    expect(amd.index?.digest).toBe(`sha256:${createHash('sha256').update(amd.index!.bytes).digest('hex')}`);
    const arm = await client({ platform: ARM64 }).getManifest(ref('test/idx:1'));
    expect(arm.manifestDigest).toBe(layout.digest('multi'));
    // The client's own default is this machine's platform.
    if (process.arch === 'x64') {
      const mine = await new RegistryClient({ config: defaultConfig(), env: { DOCKER_CONFIG: emptyDockerConfig }, fetch: loopbackOnly }).getManifest(ref('test/idx:1'));
      expect(mine.manifestDigest).toBe(layout.digest('base'));
    }
  });

  it('an index without this platform is refused, listing what it has', async () => {
    const e = await failure(client({ platform: AMD64 }).getManifest(ref('test/idx:other')));
    expect(e.kind).toBe('unsupported');
    expect(e.message).toBe(`image ${reg.host}/test/idx:other: no linux/amd64 image in the index (it has linux/arm64/v8, linux/s390x)`);
  });

  it('blobs stream and verify', async () => {
    const c = client();
    const m = await c.getManifest(ref('test/img:oci'));
    const layer = m.manifest.layers[0]!;
    const bytes = await readAll(await c.fetchBlob(m, layer));
    expect(bytes.equals(layoutBlob(layer.digest))).toBe(true);
    expect(bytes.length).toBe(layer.size);
    // A limit below the blob's size is refused before anything is fetched.
    const e = await failure(c.fetchBlobBytes(m, layer, 100));
    expect(e.message).toContain(layer.digest);
  });

  it('a blob corrupted in the registry store fails before its stream ends, naming the digest', async () => {
    const c = client();
    const m = await c.getManifest(ref('test/opaque:1'));
    const layer = m.manifest.layers.at(-1)!; // the raw opaque layer: in no other image
    const file = reg.blobPath(layer.digest);
    const data = fs.readFileSync(file);
    data[data.length >> 1] ^= 0xff;
    fs.writeFileSync(file, data);
    const s = await c.fetchBlob(m, layer);
    let ended = false;
    s.on('end', () => { ended = true; });
    const e = await failure(readAll(s));
    expect(e.kind).toBe('content');
    expect(e.message).toMatch(new RegExp(`^image ${reg.host}/test/opaque:1: blob ${layer.digest}: digest mismatch`));
    expect(ended).toBe(false);

    // A truncated config: a size mismatch, also named by its digest.
    const u = await c.getManifest(ref('test/user:1'));
    const cfgFile = reg.blobPath(u.manifest.config.digest);
    fs.writeFileSync(cfgFile, fs.readFileSync(cfgFile).subarray(0, 10));
    const e2 = await failure(c.fetchBlobBytes(u, u.manifest.config));
    expect(e2.message).toMatch(new RegExp(`blob ${u.manifest.config.digest}: size mismatch`));
  });

  it('an unknown tag and an unknown repository: not found in the registry', async () => {
    const tag = await failure(client().getManifest(ref('test/img:nope')));
    expect(tag.kind).toBe('not-found');
    expect(tag.message).toBe(`image ${reg.host}/test/img:nope: not found in ${reg.host} (MANIFEST_UNKNOWN: manifest unknown)`);
    // distribution 2.8 answers MANIFEST_UNKNOWN for a repository it has never seen too; others
    // say NAME_UNKNOWN: the message carries whatever the registry said.
    const repo = await failure(client().getManifest(ref('test/nothing:1')));
    expect(repo.kind).toBe('not-found');
    expect(repo.message).toMatch(new RegExp(`^image ${reg.host}/test/nothing:1: not found in ${reg.host} \\((MANIFEST|NAME)_UNKNOWN: [a-z ]+\\)$`));
  });

  it('a manifest changed on the way is refused: against the registry digest header and against the reference', async () => {
    const addSpace = (b: Buffer) => Buffer.concat([b, Buffer.from(' ')]);
    const withHeader = await startProxy(reg.host, { tamper: addSpace });
    const noHeader = await startProxy(reg.host, { tamper: addSpace, dropDigestHeader: true });
    try {
      const d = layout.digest('base');
      const e1 = await failure(client().getManifest(parseImageReference(`${withHeader.host}/test/img:oci`)));
      expect(e1.message).toMatch(new RegExp(`digest mismatch: ${withHeader.host} says the manifest is ${d}, its bytes are sha256:`));
      const e2 = await failure(client().getManifest(parseImageReference(`${noHeader.host}/test/img@${d}`)));
      expect(e2.kind).toBe('content');
      expect(e2.message).toMatch(new RegExp(`digest mismatch: ${noHeader.host} sent a manifest whose digest is sha256:[a-f0-9]{64}, not ${d}`));
      // By tag without the header nothing can be checked: the bytes are what the registry says.
      const ok = await client().getManifest(parseImageReference(`${noHeader.host}/test/img:oci`));
      expect(ok.manifestDigest).not.toBe(d);
    } finally {
      await withHeader.close();
      await noHeader.close();
    }
  });

  it('a registry on a closed loopback port is named unreachable with the errno', async () => {
    const port = await freePort();
    const e = await failure(client().getManifest(parseImageReference(`127.0.0.1:${port}/test/img:1`)));
    expect(e.kind).toBe('unreachable');
    expect(e.message).toMatch(new RegExp(`^image 127.0.0.1:${port}/test/img:1: registry 127.0.0.1:${port} unreachable: .*ECONNREFUSED`));
  });

  it('a registry that accepts the connection and never answers: bounded by the timeout', async () => {
    const server = http.createServer(() => { /* never answers */ });
    const port = await listen(server);
    try {
      const t0 = Date.now();
      const e = await failure(client({ timeoutMs: 500 }).getManifest(parseImageReference(`127.0.0.1:${port}/x:1`)));
      expect(e.message).toBe(`image 127.0.0.1:${port}/x:1: registry 127.0.0.1:${port} unreachable: no answer within 0.5 s`);
      expect(Date.now() - t0).toBeLessThan(5000);
    } finally {
      await closeServer(server);
    }
  });

  it('a Docker schema 1 manifest is refused with a clear message', async () => {
    // distribution 2.8 refuses schema 1 pushes, so a small server serves one as old registries did.
    const server = http.createServer((req, res) => {
      if (req.url === '/v2/') { res.writeHead(200, { 'content-type': 'application/json' }); res.end('{}'); return; }
      if (req.url === '/v2/old/app/manifests/1') {
        res.writeHead(200, { 'content-type': MEDIA_TYPES.dockerSchema1Signed });
        res.end(JSON.stringify({ schemaVersion: 1, name: 'old/app', tag: '1', architecture: 'amd64', fsLayers: [], history: [], signatures: [] }));
        return;
      }
      res.writeHead(404); res.end();
    });
    const port = await listen(server);
    try {
      const e = await failure(client().getManifest(parseImageReference(`127.0.0.1:${port}/old/app:1`)));
      expect(e.kind).toBe('unsupported');
      expect(e.message).toMatch(new RegExp(`^image 127.0.0.1:${port}/old/app:1: 127.0.0.1:${port} serves a Docker schema 1 manifest`));
    } finally {
      await closeServer(server);
    }
  });
});

describe('bearer auth', () => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await registry({ auth: 'token' });
    await reg.push(`oci:${layout.ref('base')}`, 'test/img:1', 'oci');
    await reg.push(`oci:${layout.ref('multi')}`, 'test/multi:1', 'oci');
  });
  afterAll(async () => { await reg?.stop(); });

  it('the registry really demands a token', async () => {
    const r = await fetch(`http://${reg.host}/v2/test/img/manifests/1`, { headers: { accept: MEDIA_TYPES.ociManifest } });
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toMatch(/^Bearer realm="http:\/\/127\.0\.0\.1:\d+\/token",service="test-registry",scope="repository:test\/img:pull"/);
  });

  it('anonymous token flow: one token per scope, used for the manifest and every blob', async () => {
    const before = reg.tokenRequests();
    const c = client();
    const m = await c.getManifest(parseImageReference(`${reg.host}/test/img:1`));
    await c.fetchBlobBytes(m, m.manifest.config);
    await Promise.all(m.manifest.layers.map(async (l) => readAll(await c.fetchBlob(m, l))));
    expect(reg.tokenRequests() - before).toBe(1);
    const asked = reg.tokenLog().at(-1)!;
    expect(asked).toMatchObject({ authorization: null, scope: 'repository:test/img:pull', service: 'test-registry' });
    // Another repository is another scope: one more token; the first scope is still cached.
    const m2 = await c.getManifest(parseImageReference(`${reg.host}/test/multi:1`));
    await Promise.all(m2.manifest.layers.map(async (l) => readAll(await c.fetchBlob(m2, l))));
    await c.getManifest(parseImageReference(`${reg.host}/test/img:1`));
    expect(reg.tokenRequests() - before).toBe(2);
    expect(reg.tokenLog().at(-1)!.scope).toBe('repository:test/multi:pull');
  });

  it('the registry sees the token; redirected blobs are fetched without it from the other host', async () => {
    const storage = await startStorage(reg);
    const proxy = await startProxy(reg.host, { redirectBlobsTo: storage.base });
    try {
      const c = client();
      const m = await c.getManifest(parseImageReference(`${proxy.host}/test/img:1`));
      const layer = m.manifest.layers[0]!;
      const bytes = await readAll(await c.fetchBlob(m, layer));
      expect(bytes.equals(layoutBlob(layer.digest))).toBe(true);
      const token = reg.tokenLog().at(-1)!.token;
      const manifestReq = proxy.seen.find((s) => s.path === '/v2/test/img/manifests/1')!;
      expect(manifestReq.authorization).toBe(`Bearer ${token}`);
      expect(proxy.seen.find((s) => s.path.endsWith(`/blobs/${layer.digest}`))!.authorization).toBe(`Bearer ${token}`);
      expect(storage.seen).toEqual([{ path: `/storage/v2/test/img/blobs/${layer.digest}`, authorization: null }]);
    } finally {
      await proxy.close();
      await storage.close();
    }
  });
});

describe('bearer auth with credentials', () => {
  let reg: TestRegistry;
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const dockerConfig = (name: string, auth: string) => {
    const d = path.join(tmp, name);
    fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(d, 'config.json'), JSON.stringify({ auths: { [`http://${reg.host}`]: { auth } } }));
    return d;
  };
  beforeAll(async () => {
    reg = await registry({ auth: 'token', users: { alice: 's3cret' }, tokenField: 'access_token' });
    await reg.push(`oci:${layout.ref('base')}`, 'team/img:1', 'oci');
  });
  afterAll(async () => { await reg?.stop(); });

  it('Basic credentials from DOCKER_CONFIG go to the token server; an access_token answer works', async () => {
    const c = client({ dockerConfig: dockerConfig('docker-good', b64('alice:s3cret')) });
    const m = await c.getManifest(parseImageReference(`${reg.host}/team/img:1`));
    expect(m.manifestDigest).toBe(layout.digest('base'));
    expect(reg.tokenLog().at(-1)).toMatchObject({ authorization: `Basic ${b64('alice:s3cret')}`, scope: 'repository:team/img:pull' });
  });

  it('wrong or missing credentials: auth refused, naming where they came from', async () => {
    const file = path.join(tmp, 'docker-bad', 'config.json');
    const bad = await failure(client({ dockerConfig: dockerConfig('docker-bad', b64('alice:wrong')) }).getManifest(parseImageReference(`${reg.host}/team/img:1`)));
    expect(bad.kind).toBe('auth');
    expect(bad.message).toMatch(new RegExp(`^image ${reg.host}/team/img:1: token server 127\\.0\\.0\\.1:\\d+ refused the credentials from ${file} \\(http://${reg.host}\\) \\(HTTP 401, UNAUTHORIZED: bad credentials\\)$`));
    const none = await failure(client().getManifest(parseImageReference(`${reg.host}/team/img:1`)));
    expect(none.message).toMatch(/refused anonymous access \(no credentials for it in the Docker config\) \(HTTP 401/);
  });
});

describe('registry mirrors for docker.io', () => {
  let mirror: TestRegistry;
  let empty: TestRegistry;
  const hub = () => parseImageReference('netlab-mirror-test:1');
  beforeAll(async () => {
    mirror = await registry();
    empty = await registry();
    await mirror.push(`oci:${layout.ref('base')}`, 'library/netlab-mirror-test:1', 'oci');
  });
  afterAll(async () => { await mirror?.stop(); await empty?.stop(); });

  it('a mirror holding the image serves it', async () => {
    const m = await client({ config: { registryMirrors: [`http://${mirror.host}`] } }).getManifest(hub());
    expect(m.source).toBe(`http://${mirror.host}`);
    expect(m.manifestDigest).toBe(layout.digest('base'));
    expect(m.ref.canonical).toBe('docker.io/library/netlab-mirror-test:1');
  });

  it('an unreachable mirror and one without the image are skipped, in order; blobs come from the one that answered', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const start = contacted.length;
    const c = client({ config: { registryMirrors: [dead, `http://${empty.host}`, `http://${mirror.host}`] } });
    const m: PulledManifest = await c.getManifest(hub());
    expect(m.source).toBe(`http://${mirror.host}`);
    const asked = [...new Set(contacted.slice(start))];
    expect(asked).toEqual([new URL(dead).host, empty.host, mirror.host]);
    const layer = m.manifest.layers[0]!;
    expect((await readAll(await c.fetchBlob(m, layer))).equals(layoutBlob(layer.digest))).toBe(true);
    expect(contacted.slice(start).every((h) => isLoopbackHost(h))).toBe(true);
  });
});
