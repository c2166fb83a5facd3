// web: the browser view of one lab or all of them, served until SIGINT/SIGTERM.
import * as fs from 'node:fs';
import type { Lab } from '../../topology/types.js';
import { readState } from '../../controller/state.js';
import { readListeners, socketOwner } from '../../controller/conflicts.js';
import { isLoopbackAddress } from '../../web/server/app.js';
import { startWebServer } from '../../web/server/serve.js';
import { UserError } from '../errors.js';
import type { Io } from '../io.js';
import { loadLab, targetOf } from '../target.js';

export interface WebOptions { port: number; host: string }

export async function web(io: Io, arg: string | undefined, opts: WebOptions): Promise<void> {
  let offline: Lab | null = null;
  let name: string | null = null;
  if (arg !== undefined) {
    const target = targetOf(arg);
    name = target.name;
    if (target.kind === 'file') offline = loadLab(target.file);
    else if (!readState(name) && !labNamespaces(name)) throw new UserError(`lab ${name} is not up: give its topology file to draw the model`);
  }
  let server: Awaited<ReturnType<typeof startWebServer>>;
  try {
    server = await startWebServer({ offline, defaultLab: name, port: opts.port, host: opts.host });
  } catch (e) {
    throw listenError(e as NodeJS.ErrnoException, opts.host, opts.port);
  }
  // After listening: a --host that cannot be listened on gets its one error line only.
  if (!isLoopbackAddress(opts.host)) {
    io.err(`netlab web: WARNING: listening on ${opts.host}, which is not a loopback address: anyone who can reach it and has the token can run probes and set links down${typeof process.getuid === 'function' && process.getuid() === 0 ? ' as root' : ''}. Every request needs the token.\n`);
  }
  io.out(`netlab web: ${name ? `lab ${name}` : 'all labs'}${offline && !readState(offline.name) ? ' (not up: drawn from the model)' : ''} at ${server.url}\n`);
  if (typeof process.getuid === 'function' && process.getuid() !== 0) io.err('netlab web: not root: the page shows the labs\' models, not the kernel\'s state, and cannot run probes or set links\n');
  await new Promise<void>((resolve) => {
    const stop = () => { process.off('SIGINT', stop); process.off('SIGTERM', stop); resolve(); };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await server.close();
}

/** A failed listen of `netlab web` as one line for the user (anything else is a bug). */
function listenError(e: NodeJS.ErrnoException, host: string, port: number): Error {
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  switch (e.code) {
    case 'EADDRINUSE': {
      const l = readListeners().find((x) => x.protocol === 'tcp' && x.port === port);
      const who = l ? socketOwner(l.inode) : null;
      return new UserError(`web: ${where} is already in use${who ? ` by ${who}` : ''}; choose another --port (0 takes any free one)`);
    }
    case 'EADDRNOTAVAIL': return new UserError(`web: --host ${host} is not an address of this machine; give one of its addresses, or 127.0.0.1`);
    case 'ENOTFOUND': case 'EAI_AGAIN': case 'EAI_FAIL': case 'EAI_NONAME': return new UserError(`web: --host ${host}: no such host name or address; give an address of this machine, e.g. 127.0.0.1`);
    case 'EACCES': return new UserError(`web: port ${port} needs root (ports below 1024 are privileged); choose another --port`);
    case 'EINVAL': return new UserError(`web: cannot listen on ${where}: invalid address`);
    default: return e;
  }
}

/** Whether any namespace of the lab exists (a lab without its state file). */
function labNamespaces(lab: string): boolean {
  try {
    return fs.readdirSync('/run/netns').some((n) => n.startsWith(`netlab.${lab}.`) || n.startsWith(`netlab.${lab}+`));
  } catch {
    return false;
  }
}
