// impair: a running lab's cable gets impairments (rate, delay, jitter, loss, duplicate, corrupt,
// reorder, limit), replacing what it had, or --clear takes them away; values as tc writes them,
// checked as the topology's `impair:` is.
import { setImpairment } from '../../controller/lab.js';
import { NO_IMPAIRMENT, checkCombination, impairmentText, isEmptyImpairment, parseImpair } from '../../topology/impair.js';
import type { RawImpair } from '../../topology/types.js';
import { UserError } from '../errors.js';
import type { Io } from '../io.js';
import { labNameOf } from '../target.js';

export interface ImpairOptions {
  rate?: string; delay?: string; jitter?: string; loss?: string; duplicate?: string; corrupt?: string; reorder?: string; limit?: string;
  clear?: boolean;
  json?: boolean;
}

export async function impair(io: Io, arg: string, endpoint: string, opts: ImpairOptions): Promise<void> {
  const m = /^([^:]+):([^:]+)$/.exec(endpoint);
  if (!m) throw new UserError(`"${endpoint}" is not an endpoint; expected NODE:IFACE, e.g. r1:eth1`, 2);
  const raw: RawImpair = {};
  for (const k of ['rate', 'delay', 'jitter', 'loss', 'duplicate', 'corrupt', 'reorder'] as const) if (opts[k] !== undefined) raw[k] = opts[k];
  if (opts.limit !== undefined) {
    if (!/^\d+$/.test(opts.limit) || Number(opts.limit) < 1) throw new UserError(`--limit ${opts.limit}: expected a number of packets, 1 or more`, 2);
    raw.limit = Number(opts.limit);
  }
  const given = Object.keys(raw).length > 0;
  if (opts.clear && given) throw new UserError('--clear takes away every impairment: give it alone', 2);
  if (!opts.clear && !given) throw new UserError('nothing to set: give --rate, --delay, --jitter, --loss, --duplicate, --corrupt, --reorder or --limit, or --clear', 2);
  const problems: string[] = [];
  const err = (p: (string | number)[], msg: string) => problems.push(`--${String(p[p.length - 1])}: ${msg}`);
  const imp = parseImpair(raw, [], err, NO_IMPAIRMENT);
  checkCombination(imp, [], err);
  if (problems.length > 0) throw new UserError(problems[0], 2);
  const name = labNameOf(arg);
  const r = await setImpairment(name, m[1], m[2], opts.clear || isEmptyImpairment(imp) ? null : imp);
  if (opts.json) io.out(JSON.stringify({ lab: name, endpoint, interfaces: r.interfaces, impairment: opts.clear ? null : imp, text: opts.clear ? '' : impairmentText(imp), steps: r.steps }, null, 2) + '\n');
  else io.out(`${name} ${r.interfaces.join(' ')}: ${opts.clear ? 'no impairment' : impairmentText(imp)}\n`);
}
