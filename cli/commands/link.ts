// link: a cable of a running lab set down or up (both ends), or a simulated host's underlay.
import { setHostLink, setLink } from '../../controller/lab.js';
import { UserError } from '../errors.js';
import type { Io } from '../io.js';
import { labNameOf } from '../target.js';

export async function link(io: Io, arg: string, endpoint: string, state: 'up' | 'down', opts: { json?: boolean } = {}): Promise<void> {
  if (endpoint.startsWith('@')) {
    const name = labNameOf(arg);
    await setHostLink(name, endpoint.slice(1), state === 'up');
    io.out(opts.json ? JSON.stringify({ lab: name, endpoint, state }) + '\n' : `${name} ${endpoint} ${state}\n`);
    return;
  }
  const m = /^([^:]+):([^:]+)$/.exec(endpoint);
  if (!m) throw new UserError(`"${endpoint}" is not an endpoint; expected NODE:IFACE, e.g. web:eth0`, 2);
  const name = labNameOf(arg);
  await setLink(name, m[1], m[2], state === 'up');
  io.out(opts.json ? JSON.stringify({ lab: name, endpoint, state }) + '\n' : `${name} ${endpoint} ${state}\n`);
}
