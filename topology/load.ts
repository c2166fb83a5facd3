// The topology pipeline's front door: text or file in, a resolved Lab or every diagnostic out
// (YAML syntax, then the format's own schema and semantics), sorted by position. Picks the input
// format (today netlab's own, topology/formats/netlab.ts; containerlab and Compose readers are
// to come as siblings). Never throws on bad input.
import * as fs from 'node:fs';
import type { Diagnostic, Lab } from './types.js';
import { parseYamlSource, sortDiagnostics } from './source.js';
import { readNetlab } from './formats/netlab.js';
import type { ResolveEnv } from './addrspace.js';

export interface LoadResult {
  lab: Lab | null;
  diagnostics: Diagnostic[];
}

/** `env` is what this machine adds to the file: its routes (subnets on the host must leave them
 *  alone, automatic ones avoid them) and the subnets of running labs (avoided). */
export function loadTopologyText(text: string, file: string, env?: ResolveEnv): LoadResult {
  const parsed = parseYamlSource(text, file);
  if (parsed.diagnostics.length > 0) return { lab: null, diagnostics: sortDiagnostics(parsed.diagnostics) };
  if (parsed.value === null || typeof parsed.value !== 'object' || Array.isArray(parsed.value)) {
    return { lab: null, diagnostics: [parsed.locator.diag([], 'expected a map with at least "name" (and usually "networks" and "nodes"); found ' + (parsed.value === null ? 'an empty document' : Array.isArray(parsed.value) ? 'a list' : typeof parsed.value))] };
  }
  return readNetlab(parsed.value, parsed.locator, file, env);
}

/** Reads and resolves a topology file; an unreadable file is one diagnostic at 1:1. */
export function loadTopologyFile(file: string, env?: ResolveEnv): LoadResult {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { lab: null, diagnostics: [{ file, line: 1, col: 1, path: '', message: code === 'ENOENT' ? 'no such file' : `cannot read: ${(e as Error).message}` }] };
  }
  return loadTopologyText(text, file, env);
}
