// `netlab web`: the express app on a real socket, with the real data source, a fresh token,
// and the URL to open.
import * as http from 'node:http';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { Lab } from '../../topology/types.js';
import { createWebApp, isLoopbackAddress } from './app.js';
import { LiveSource } from './live.js';
import type { LabSource } from './source.js';

/** dist/web: the bundle (app.js, app.css) and index.html, next to the compiled server. */
export const STATIC_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface WebServerOptions {
  /** A topology file's lab, drawn from its model while it is not up. */
  offline?: Lab | null;
  /** Lab the page shows first. */
  defaultLab?: string | null;
  port: number;
  host: string;
  /** Defaults to the live source (state files, kernel, netlink). */
  source?: LabSource;
  /** Defaults to a random one. */
  token?: string;
}

export interface WebServer {
  url: string;
  token: string;
  host: string;
  port: number;
  loopback: boolean;
  close(): Promise<void>;
}

function urlHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

export async function startWebServer(o: WebServerOptions): Promise<WebServer> {
  const token = o.token ?? randomBytes(24).toString('base64url');
  const source = o.source ?? await LiveSource.create({ offline: o.offline ?? null });
  const web = createWebApp(source, { token, host: o.host, defaultLab: o.defaultLab ?? o.offline?.name ?? null, staticDir: STATIC_DIR });
  const server = http.createServer(web.app);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.port, o.host, () => { server.off('error', reject); resolve(); });
    });
  } catch (e) {
    web.close();
    await source.close();
    throw e;
  }
  const port = (server.address() as { port: number }).port;
  const labPart = o.defaultLab ?? o.offline?.name;
  return {
    url: `http://${urlHost(o.host)}:${port}/?token=${token}${labPart ? `&lab=${encodeURIComponent(labPart)}` : ''}`,
    token,
    host: o.host,
    port,
    loopback: isLoopbackAddress(o.host),
    async close() {
      web.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await source.close();
    },
  };
}
