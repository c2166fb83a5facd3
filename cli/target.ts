// The one place that decides what a command's LAB argument is (a lab name, or a topology file
// whose `name` is the lab), loads topology files for commands, and validates `--as HOST`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { STATE_ROOT } from '../runtime/paths.js';
import { parse as parseYaml } from 'yaml';
import { loadTopologyFile } from '../topology/load.js';
import type { ResolveEnv } from '../topology/addrspace.js';
import type { Lab } from '../topology/types.js';
import { requireHost } from '../controller/plan.js';
import { envOffline } from '../controller/conflicts.js';
import { UserError } from './errors.js';

/** A LAB argument: a topology file (and the lab name written in it), or a lab name. */
export type Target = { kind: 'file'; file: string; name: string } | { kind: 'lab'; name: string };

/** A path ending in .yml/.yaml, or one with a slash that exists, is a file; anything else must
 *  be a valid lab name. A file is read only for its `name` (not resolved). */
export function targetOf(arg: string): Target {
  if (/\.ya?ml$/.test(arg) || (arg.includes('/') && fs.existsSync(arg))) {
    let doc: unknown;
    try { doc = parseYaml(fs.readFileSync(arg, 'utf8')); } catch (e) { throw new UserError(`${arg}: ${(e as Error).message.split('\n')[0]}`); }
    const name = (doc as { name?: unknown } | null)?.name;
    if (typeof name !== 'string') throw new UserError(`${arg}: no lab name in this file`);
    return { kind: 'file', file: arg, name };
  }
  if (!/^[a-z][a-z0-9-]{0,31}$/.test(arg)) throw new UserError(`"${arg}" is neither a lab name nor a topology file`, 2);
  return { kind: 'lab', name: arg };
}

/** The lab name of a LAB argument. */
export function labNameOf(arg: string): string {
  return targetOf(arg).name;
}

/** Resolves a file on this machine: subnets present on the host must leave its routes alone and
 *  automatic ones avoid them (`up` also avoids the running labs' subnets: see envForUp). */
export function loadLab(file: string, env: ResolveEnv = envOffline()): Lab {
  const r = loadTopologyFile(file, env);
  if (!r.lab) {
    const n = r.diagnostics.length;
    throw new UserError(`${file}: ${n} problem${n === 1 ? '' : 's'}`, 1, r.diagnostics);
  }
  return r.lab;
}

/** `--as HOST` must name a host of the lab: anything else is a usage error (exit 2), raised
 *  before anything is built. */
export function validateAs(lab: Lab, as: string | undefined): void {
  if (as !== undefined) requireHost(lab, as);
}

/** The labs this machine has state for (their names, for shell completion): no kernel, no
 *  root needed to list them. */
export function labNamesForCompletion(): string[] {
  try {
    return fs.readdirSync(STATE_ROOT, { withFileTypes: true })
      .filter((d) => d.isDirectory() && fs.existsSync(path.join(STATE_ROOT, d.name, 'state.json')))
      .map((d) => d.name)
      .sort();
  } catch {
    return [];
  }
}
