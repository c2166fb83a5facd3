// A real registry for tests: Debian's `docker-registry serve` (distribution 2.8) on 127.0.0.1 with
// a temporary store, optionally behind bearer auth (the registry's `silly` access controller plus
// a token server in this process that counts and records what it is asked), and `skopeo copy` to
// push test images into it. Test tools only; netlab itself uses neither at run time.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export interface TokenRequest { authorization: string | null; scope: string | null; service: string | null; token: string }

export interface TestRegistry {
  /** '127.0.0.1:PORT'. */
  host: string;
  dir: string;
  /** The registry's blob store, for corrupting blobs on purpose. */
  blobPath(digest: string): string;
  /** How many tokens the token server handed out (0 without auth). */
  tokenRequests(): number;
  tokenLog(): TokenRequest[];
  /** Pushes SRC (a skopeo source such as 'oci:LAYOUT:TAG') to REPO:TAG in this registry.
   *  Asynchronous because the token server lives in this process's event loop. */
  push(src: string, dest: string, format: 'oci' | 'v2s2', opts?: { all?: boolean }): Promise<void>;
  /** Pids of the processes it started (the registry). */
  pids(): number[];
  stop(): Promise<void>;
}

export interface RegistryOptions {
  auth?: 'token';
  /** Users the token server accepts (Basic); without it, anyone gets a token. */
  users?: Record<string, string>;
  /** Which field the token answer uses (both are in the spec). */
  tokenField?: 'token' | 'access_token';
}

export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export async function listen(server: http.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as net.AddressInfo).port;
}

export function closeServer(server: http.Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((r) => server.close(() => r()));
}

export { childProcesses } from './leaks.js';

function startTokenServer(o: RegistryOptions, log: TokenRequest[]): http.Server {
  let n = 0;
  return http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const authorization = req.headers.authorization ?? null;
    if (o.users) {
      const m = /^Basic (.+)$/.exec(authorization ?? '');
      const [user, pass] = m ? Buffer.from(m[1]!, 'base64').toString().split(/:(.*)/s) : [];
      if (!user || o.users[user] !== pass) {
        log.push({ authorization, scope: u.searchParams.get('scope'), service: u.searchParams.get('service'), token: '' });
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'bad credentials' }] }));
        return;
      }
    }
    const token = `tok-${++n}-${Math.random().toString(36).slice(2)}`;
    log.push({ authorization, scope: u.searchParams.get('scope'), service: u.searchParams.get('service'), token });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ [o.tokenField ?? 'token']: token, expires_in: 300 }));
  });
}

export async function startRegistry(o: RegistryOptions = {}): Promise<TestRegistry> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-registry-'));
  const log: TokenRequest[] = [];
  let tokenServer: http.Server | null = null;
  let child: ChildProcess | null = null;
  const stop = async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child!.once('exit', () => r()));
      child.kill('SIGTERM');
      const t = setTimeout(() => child?.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    if (tokenServer) await closeServer(tokenServer);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    let authConf = '';
    if (o.auth === 'token') {
      tokenServer = startTokenServer(o, log);
      const tport = await listen(tokenServer);
      authConf = `auth: {silly: {realm: "http://127.0.0.1:${tport}/token", service: test-registry}}\n`;
    }
    const port = await freePort();
    const host = `127.0.0.1:${port}`;
    fs.writeFileSync(path.join(dir, 'config.yml'), [
      'version: 0.1',
      'log: {level: warn, accesslog: {disabled: true}}',
      `storage: {filesystem: {rootdirectory: "${dir}/store"}, delete: {enabled: true}}`,
      `http: {addr: "${host}", secret: test-secret}`,
      authConf,
    ].join('\n'));
    const logFd = fs.openSync(path.join(dir, 'registry.log'), 'a');
    child = spawn('docker-registry', ['serve', path.join(dir, 'config.yml')], { stdio: ['ignore', logFd, logFd] });
    fs.closeSync(logFd);
    const proc = child;
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`docker-registry exited: ${fs.readFileSync(path.join(dir, 'registry.log'), 'utf8').slice(-2000)}`);
      try {
        const r = await fetch(`http://${host}/v2/`);
        await r.body?.cancel();
        if (r.status === 200 || r.status === 401) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error('docker-registry did not answer within 20 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    return {
      host,
      dir,
      blobPath: (digest) => {
        const hex = digest.replace(/^sha256:/, '');
        return path.join(dir, 'store/docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
      },
      tokenRequests: () => log.filter((l) => l.token).length,
      tokenLog: () => [...log],
      push: async (src, dest, format, opts = {}) => {
        const args = ['copy', '--quiet', '--dest-tls-verify=false'];
        if (o.users) {
          const [user, pass] = Object.entries(o.users)[0]!;
          args.push('--dest-creds', `${user}:${pass}`);
        } else {
          args.push('--dest-no-creds');
        }
        if (format === 'v2s2') args.push('--format', 'v2s2');
        else args.push('--format', 'oci');
        if (opts.all) args.push('--all');
        args.push(src, `docker://${host}/${dest}`);
        // skopeo reads no auth file of the machine's: it gets an empty one of its own.
        const authfile = path.join(dir, 'skopeo-auth.json');
        if (!fs.existsSync(authfile)) fs.writeFileSync(authfile, '{}');
        return new Promise<void>((resolve, reject) => {
          execFile('skopeo', [...args.slice(0, 1), '--authfile', authfile, ...args.slice(1)], { timeout: 60_000 }, (err, _out, stderr) => {
            if (err) reject(new Error(`skopeo copy ${src} ${dest}: ${stderr || err.message}`));
            else resolve();
          });
        });
      },
      pids: () => (proc.pid !== undefined ? [proc.pid] : []),
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
