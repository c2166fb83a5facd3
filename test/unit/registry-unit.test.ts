// The registry client's decisions that need no registry: the config file, Docker credentials,
// which base URLs a reference is fetched from (and over which scheme), the platform chosen from
// an index, and WWW-Authenticate parsing.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_MAX_LAYER_BYTES, loadConfig, parseByteSize, type NetlabConfig } from '../../runtime/images/config.js';
import { dockerConfigFile, findCredentials } from '../../runtime/images/auth.js';
import {
  currentPlatform, indexPlatforms, isInsecureRegistry, isLoopbackHost, layerCompression, MANIFEST_ACCEPT, parseWwwAuthenticate,
  registryEndpoints, selectPlatform, type Descriptor,
} from '../../runtime/images/registry.js';
import { ImageError } from '../../runtime/images/types.js';

let tmp: string;
beforeEach(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-regunit-')); });
afterEach(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

function cfg(over: Partial<NetlabConfig> = {}): NetlabConfig {
  return { file: null, registryMirrors: [], insecureRegistries: [], maxLayerBytes: DEFAULT_MAX_LAYER_BYTES, ...over };
}

function writeConfig(doc: unknown): NodeJS.ProcessEnv {
  const file = path.join(tmp, 'config.json');
  fs.writeFileSync(file, typeof doc === 'string' ? doc : JSON.stringify(doc));
  return { NETLAB_CONFIG: file };
}

describe('netlab config file', () => {
  it('absent file: the defaults, file null', () => {
    expect(loadConfig({ NETLAB_CONFIG: path.join(tmp, 'none.json') })).toEqual(cfg());
    expect(DEFAULT_MAX_LAYER_BYTES).toBe(20 * 1024 ** 3);
  });
  it('an empty file (NETLAB_CONFIG=/dev/null): the defaults', () => {
    expect(loadConfig({ NETLAB_CONFIG: '/dev/null' })).toEqual({ ...cfg(), file: '/dev/null' });
  });
  it("reads Docker's daemon.json keys and ignores the others", () => {
    const env = writeConfig({
      'registry-mirrors': ['https://mirror.example.com/', 'http://127.0.0.1:5001'],
      'insecure-registries': ['reg.lan:5000', 'http://other.lan', '10.0.0.0/8', 'fd00::/8'],
      'max-layer-size': '500MB',
      'log-driver': 'json-file', 'storage-driver': 'overlay2',
    });
    expect(loadConfig(env)).toEqual({
      file: env.NETLAB_CONFIG,
      registryMirrors: ['https://mirror.example.com', 'http://127.0.0.1:5001'],
      insecureRegistries: ['reg.lan:5000', 'other.lan', '10.0.0.0/8', 'fd00::/8'],
      maxLayerBytes: 500_000_000,
    });
  });
  it('sizes: numbers are bytes, SI and binary units, nothing else', () => {
    expect(parseByteSize(1234)).toBe(1234);
    expect(parseByteSize('20GiB')).toBe(20 * 1024 ** 3);
    expect(parseByteSize('20g')).toBe(20 * 1024 ** 3);
    expect(parseByteSize('1.5 KB')).toBe(1500);
    expect(parseByteSize('512')).toBe(512);
    for (const bad of [0, -1, 1.5, '20 parsecs', '', 'GiB', '-3MB', true, null]) expect(parseByteSize(bad)).toBeNull();
  });
  it.each([
    ['{ "registry-mirrors": [', /not valid JSON/],
    ['[]', /must be a JSON object/],
    [{ 'registry-mirrors': 'https://m' }, /registry-mirrors must be a list/],
    [{ 'registry-mirrors': ['mirror.example.com'] }, /registry-mirrors entry "mirror.example.com" is not a URL|must be an http/],
    [{ 'registry-mirrors': ['ftp://m.example'] }, /must be an http:\/\/ or https:\/\/ URL/],
    [{ 'registry-mirrors': ['https://u:p@m.example'] }, /must not contain credentials/],
    [{ 'registry-mirrors': ['https://m.example/v2/'] }, /must not have a path/],
    [{ 'insecure-registries': ['ftp://x'] }, /must not contain '::\/\/'|must not contain/],
    [{ 'insecure-registries': ['10.0.0.0/33'] }, /not a valid CIDR/],
    [{ 'insecure-registries': ['bad host'] }, /not a host\[:port\] or CIDR/],
    [{ 'insecure-registries': [5000] }, /not a host\[:port\] or CIDR string/],
    [{ 'max-layer-size': '20 parsecs' }, /max-layer-size "20 parsecs" is not a size/],
  ])('refuses %j naming the file, in one line', (doc, why) => {
    const env = writeConfig(doc);
    let err: unknown;
    try { loadConfig(env); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(ImageError);
    const msg = (err as Error).message;
    expect(msg.startsWith(`${env.NETLAB_CONFIG}: `)).toBe(true);
    expect(msg).toMatch(why);
    expect(msg).not.toContain('\n');
  });
});

describe('Docker credentials', () => {
  function dockerConfig(doc: unknown): NodeJS.ProcessEnv {
    fs.writeFileSync(path.join(tmp, 'config.json'), JSON.stringify(doc));
    return { DOCKER_CONFIG: tmp };
  }
  const b64 = (s: string) => Buffer.from(s).toString('base64');

  it('DOCKER_CONFIG, else ~/.docker', () => {
    expect(dockerConfigFile({ DOCKER_CONFIG: '/x' })).toBe('/x/config.json');
    expect(dockerConfigFile({ HOME: '/home/u' })).toBe('/home/u/.docker/config.json');
  });
  it('keys as docker login writes them, URLs or host:port; auth, username/password, identitytoken', () => {
    const env = dockerConfig({
      auths: {
        'https://index.docker.io/v1/': { auth: b64('hubuser:hub:pass') },
        'reg.example:5000': { auth: b64('a:b') },
        'https://other.example/v2/': { username: 'u', password: 'p' },
        'tok.example': { identitytoken: 'refresh-me' },
        'empty.example': {},
      },
      credsStore: 'desktop',
    });
    expect(findCredentials('docker.io', env)).toMatchObject({ username: 'hubuser', password: 'hub:pass' });
    expect(findCredentials('reg.example:5000', env)).toMatchObject({ username: 'a', password: 'b', from: `${tmp}/config.json (reg.example:5000)` });
    expect(findCredentials('other.example', env)).toMatchObject({ username: 'u', password: 'p' });
    expect(findCredentials('tok.example', env)).toMatchObject({ identityToken: 'refresh-me' });
    expect(findCredentials('tok.example', env)?.username).toBeUndefined();
    // host:port is the key: the same host on another port is another registry
    expect(findCredentials('reg.example', env)).toBeNull();
    expect(findCredentials('empty.example', env)).toBeNull();
    expect(findCredentials('nowhere.example', env)).toBeNull();
  });
  it('Docker Hub under any of its names', () => {
    const env = dockerConfig({ auths: { 'index.docker.io': { username: 'x', password: 'y' } } });
    expect(findCredentials('docker.io', env)).toMatchObject({ username: 'x' });
  });
  it('no file: no credentials; a broken one: an error naming it', () => {
    expect(findCredentials('docker.io', { DOCKER_CONFIG: path.join(tmp, 'nothing') })).toBeNull();
    fs.writeFileSync(path.join(tmp, 'config.json'), '{');
    expect(() => findCredentials('docker.io', { DOCKER_CONFIG: tmp })).toThrow(new RegExp(`^${tmp}/config.json: not valid JSON`));
    const env = dockerConfig({ auths: { 'r.example': { auth: b64('nocolon') } } });
    expect(() => findCredentials('r.example', env)).toThrow(/"auth" is not base64 of user:password/);
  });
});

describe('endpoints and schemes', () => {
  it('loopback registries over plain HTTP, as Docker does', () => {
    for (const h of ['127.0.0.1:5000', '127.1.2.3', 'localhost:5000', 'localhost', '[::1]:5000']) {
      expect(isLoopbackHost(h)).toBe(true);
      expect(registryEndpoints(h, cfg())[0]!.base).toBe(`http://${h}`);
    }
    for (const h of ['128.0.0.1:5000', 'reg.example', '[::2]:5000', 'localhost.example', '10.0.0.1']) {
      expect(isLoopbackHost(h)).toBe(false);
      expect(registryEndpoints(h, cfg())).toEqual([{ base: `https://${h}`, host: h, authName: h, mirror: false }]);
    }
  });
  it('insecure-registries: exact host[:port], or an address inside a CIDR', () => {
    const c = cfg({ insecureRegistries: ['reg.lan:5000', '10.1.0.0/16', 'fd00::/8'] });
    expect(registryEndpoints('reg.lan:5000', c)[0]!.base).toBe('http://reg.lan:5000');
    expect(registryEndpoints('reg.lan', c)[0]!.base).toBe('https://reg.lan');
    expect(registryEndpoints('reg.lan:5001', c)[0]!.base).toBe('https://reg.lan:5001');
    expect(isInsecureRegistry('10.1.200.3:443', c)).toBe(true);
    expect(isInsecureRegistry('10.2.0.1', c)).toBe(false);
    expect(isInsecureRegistry('[fd12::1]:5000', c)).toBe(true);
    expect(isInsecureRegistry('[fe80::1]:5000', c)).toBe(false);
  });
  it('docker.io: every mirror first, in order, then registry-1.docker.io; mirrors only for docker.io', () => {
    const c = cfg({ registryMirrors: ['https://m1.example', 'http://127.0.0.1:5001'] });
    expect(registryEndpoints('docker.io', c)).toEqual([
      { base: 'https://m1.example', host: 'm1.example', authName: 'm1.example', mirror: true },
      { base: 'http://127.0.0.1:5001', host: '127.0.0.1:5001', authName: '127.0.0.1:5001', mirror: true },
      { base: 'https://registry-1.docker.io', host: 'registry-1.docker.io', authName: 'docker.io', mirror: false },
    ]);
    expect(registryEndpoints('quay.io', c)).toEqual([{ base: 'https://quay.io', host: 'quay.io', authName: 'quay.io', mirror: false }]);
    expect(registryEndpoints('docker.io', cfg()).map((e) => e.base)).toEqual(['https://registry-1.docker.io']);
  });
  it('Accept lists the four manifest types', () => {
    expect(MANIFEST_ACCEPT.split(', ').sort()).toEqual([
      'application/vnd.docker.distribution.manifest.list.v2+json',
      'application/vnd.docker.distribution.manifest.v2+json',
      'application/vnd.oci.image.index.v1+json',
      'application/vnd.oci.image.manifest.v1+json',
    ]);
  });
  it('layer media types and their compression', () => {
    expect(layerCompression('application/vnd.oci.image.layer.v1.tar+gzip')).toBe('gzip');
    expect(layerCompression('application/vnd.oci.image.layer.v1.tar+zstd')).toBe('zstd');
    expect(layerCompression('application/vnd.oci.image.layer.v1.tar')).toBe('none');
    expect(layerCompression('application/vnd.docker.image.rootfs.diff.tar.gzip')).toBe('gzip');
    expect(layerCompression('application/vnd.docker.image.rootfs.foreign.diff.tar.gzip')).toBeNull();
    expect(layerCompression('application/vnd.oci.image.layer.v1.tar+gzip+encrypted')).toBeNull();
  });
});

describe('platform choice in an index', () => {
  const M = 'application/vnd.oci.image.manifest.v1+json';
  const e = (n: number, platform?: Descriptor['platform'], mediaType = M): Descriptor => ({ mediaType, digest: `sha256:${String(n).repeat(64).slice(0, 64)}`, size: 100 + n, ...(platform ? { platform } : {}) });
  // As `docker buildx` writes them: images, then an attestation manifest per image.
  const index: Descriptor[] = [
    e(1, { os: 'linux', architecture: 'amd64' }),
    e(2, { os: 'linux', architecture: 'arm64', variant: 'v8' }),
    e(3, { os: 'linux', architecture: 'arm', variant: 'v6' }),
    e(4, { os: 'linux', architecture: 'arm', variant: 'v7' }),
    e(5, { os: 'linux', architecture: 's390x' }),
    e(6, { os: 'windows', architecture: 'amd64' }),
    e(7, { os: 'unknown', architecture: 'unknown' }),
    e(8),
  ];
  it('the entry for the wanted os/architecture/variant', () => {
    expect(selectPlatform(index, { os: 'linux', architecture: 'amd64' })).toBe(index[0]);
    expect(selectPlatform(index, { os: 'linux', architecture: 'arm64', variant: 'v8' })).toBe(index[1]);
    expect(selectPlatform(index, { os: 'linux', architecture: 'arm', variant: 'v7' })).toBe(index[3]);
    expect(selectPlatform(index, { os: 'linux', architecture: 's390x' })).toBe(index[4]);
    expect(selectPlatform(index, { os: 'windows', architecture: 'amd64' })).toBe(index[5]);
  });
  it('arm64 without a variant is v8; arm v7 runs v6 when there is no v7; never a newer variant', () => {
    expect(selectPlatform([e(1, { os: 'linux', architecture: 'arm64' })], { os: 'linux', architecture: 'arm64', variant: 'v8' })?.size).toBe(101);
    expect(selectPlatform([index[2]!, index[4]!], { os: 'linux', architecture: 'arm', variant: 'v7' })).toBe(index[2]);
    expect(selectPlatform([index[3]!], { os: 'linux', architecture: 'arm', variant: 'v6' })).toBeNull();
  });
  it('attestations and entries without a platform never match; the list for the message leaves them out', () => {
    expect(selectPlatform(index, { os: 'unknown', architecture: 'unknown' })).toBeNull();
    expect(selectPlatform(index, { os: 'linux', architecture: 'riscv64' })).toBeNull();
    expect(indexPlatforms(index)).toEqual(['linux/amd64', 'linux/arm64/v8', 'linux/arm/v6', 'linux/arm/v7', 'linux/s390x', 'windows/amd64']);
  });
  it('a nested index entry is not an image for this platform', () => {
    expect(selectPlatform([e(1, { os: 'linux', architecture: 'amd64' }, 'application/vnd.oci.image.index.v1+json')], { os: 'linux', architecture: 'amd64' })).toBeNull();
  });
  it('this machine', () => {
    const p = currentPlatform();
    expect(p.os).toBe('linux');
    expect(p.architecture).toBe({ x64: 'amd64', arm64: 'arm64', arm: 'arm' }[process.arch as string] ?? p.architecture);
    if (process.arch === 'arm64') expect(p.variant).toBe('v8');
  });
});

describe('WWW-Authenticate', () => {
  it('Bearer with quoted params, as registries send it', () => {
    expect(parseWwwAuthenticate('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' } },
    ]);
  });
  it('several challenges, unquoted values, escapes, commas inside quotes, odd spacing', () => {
    expect(parseWwwAuthenticate('Basic realm="Registry Realm", Bearer realm="http://127.0.0.1:5002/token" , service=test,scope="repository:a/b:pull,push",error="insufficient_scope"')).toEqual([
      { scheme: 'basic', params: { realm: 'Registry Realm' } },
      { scheme: 'bearer', params: { realm: 'http://127.0.0.1:5002/token', service: 'test', scope: 'repository:a/b:pull,push', error: 'insufficient_scope' } },
    ]);
    expect(parseWwwAuthenticate('Basic realm="a \\"quoted\\" realm"')).toEqual([{ scheme: 'basic', params: { realm: 'a "quoted" realm' } }]);
    expect(parseWwwAuthenticate('BEARER REALM="x"')).toEqual([{ scheme: 'bearer', params: { realm: 'x' } }]);
  });
  it('nothing usable in empty or garbage headers', () => {
    expect(parseWwwAuthenticate('')).toEqual([]);
    expect(parseWwwAuthenticate('  ,  ')).toEqual([]);
    expect(parseWwwAuthenticate('Negotiate')).toEqual([{ scheme: 'negotiate', params: {} }]);
  });
});
