// netlab's own topology format (the one documented in the README): YAML with positions, then the
// JSON Schema, then the semantic resolver. Every problem points into the user's own file. Other
// formats (containerlab, Compose) are siblings of this module, picked by topology/load.ts.
import type { Diagnostic, Lab, RawTopology } from '../types.js';
import { sortDiagnostics, type Locator } from '../source.js';
import { schemaDiagnostics } from '../schema.js';
import { resolveTopology } from '../resolve.js';
import type { ResolveEnv } from '../addrspace.js';

export const NETLAB_FORMAT = 'netlab';

/** Resolves a parsed netlab document (`value`, located by `locator`). */
export function readNetlab(value: unknown, locator: Locator, file: string, env?: ResolveEnv): { lab: Lab | null; diagnostics: Diagnostic[] } {
  const schemaErrs = schemaDiagnostics(value, locator);
  if (schemaErrs.length > 0) return { lab: null, diagnostics: sortDiagnostics(schemaErrs) };
  const r = resolveTopology(value as RawTopology, locator, file, env);
  return { lab: r.lab, diagnostics: sortDiagnostics(r.diagnostics) };
}
