// Structural validation of a topology against the shipped JSON Schema
// (schema/netlab.schema.json, also what editors use for autocompletion), with Ajv's errors
// turned into one located, actionable diagnostic each: the key, what was found, what is allowed.
import { createRequire } from 'node:module';
import type { Ajv as AjvClass, ErrorObject, Options as AjvOptions, ValidateFunction } from 'ajv';
import type { Diagnostic } from './types.js';
import { didYouMean, type Locator, type PathSeg } from './source.js';

const require = createRequire(import.meta.url);
// Resolved relative to this file both from sources (topology/) and from dist/topology/.
export const SCHEMA_PATH = (() => {
  for (const p of ['../schema/netlab.schema.json', '../../schema/netlab.schema.json']) {
    try { return require.resolve(p); } catch { /* try the next */ }
  }
  throw new Error('netlab: schema/netlab.schema.json not found next to the sources');
})();
export const schema = require(SCHEMA_PATH) as Record<string, unknown>;

/** Ajv's options for the validator, both the one compiled at build time and the fallback. */
export const AJV_OPTIONS: AjvOptions = { allErrors: true, strict: false, verbose: true };
/** The validator `npm run build` writes next to dist/topology/schema.js (schema/compile.mjs):
 *  Ajv's standalone code for the schema, the same code Ajv would generate at run time. */
export const PRECOMPILED = 'schema-validate.cjs';

// Loading Ajv and compiling the schema took ~110 ms of every `up`, `plan` and `validate` (Ajv
// 30-40 ms to load, 70 ms to compile); the precompiled validator loads in ~4 ms. Run from the
// sources (vitest) there is none, and Ajv compiles the same schema with the same options.
// On first use only: commands that read no topology (down, status, exec) load neither.
let validateFn: ValidateFunction | null = null;
function validator(): ValidateFunction {
  if (validateFn) return validateFn;
  try {
    validateFn = require(`./${PRECOMPILED}`) as ValidateFunction;
  } catch (e) {
    // Only its own absence means "from the sources"; anything else wrong with it is a bug.
    if ((e as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND' || !String((e as Error).message).includes(PRECOMPILED)) throw e;
    const { Ajv } = require('ajv') as { Ajv: typeof AjvClass };
    validateFn = new Ajv(AJV_OPTIONS).compile(schema);
  }
  return validateFn;
}

function decodePointer(p: string): PathSeg[] {
  if (!p) return [];
  return p.split('/').slice(1).map((s) => {
    const t = s.replace(/~1/g, '/').replace(/~0/g, '~');
    return /^\d+$/.test(t) ? Number(t) : t;
  });
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return 'nothing (null)';
  if (Array.isArray(v)) return `a list (${v.length} items)`;
  if (typeof v === 'object') return 'a map';
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  return `${typeof v} ${String(v)}`;
}

function typeName(t: unknown): string {
  const map: Record<string, string> = { object: 'a map', array: 'a list', string: 'a string', integer: 'an integer', number: 'a number', boolean: 'true or false', null: 'nothing' };
  const ts = Array.isArray(t) ? t : [t];
  return ts.map((x) => map[String(x)] ?? String(x)).join(' or ');
}

function toDiagnostic(e: ErrorObject, loc: Locator): Diagnostic | null {
  const path = decodePointer(e.instancePath);
  const ps = (e.parentSchema ?? {}) as Record<string, unknown>;
  const hint = typeof ps['x-hint'] === 'string' ? (ps['x-hint'] as string) : null;
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = String((e.params as { additionalProperty: string }).additionalProperty);
      const allowed = Object.keys((ps.properties as Record<string, unknown>) ?? {});
      const where = path.length ? '' : ' at the top level';
      return loc.diag([...path, key], `unknown key "${key}"${where}${didYouMean(key, allowed)} (allowed: ${allowed.join(', ')})`, { key: true });
    }
    case 'required': {
      const key = String((e.params as { missingProperty: string }).missingProperty);
      return loc.diag(path, `missing required key "${key}"`, { key: true });
    }
    case 'type':
      return loc.diag(path, `expected ${typeName((e.params as { type: unknown }).type)}, found ${describe(e.data)}`);
    case 'enum': {
      const allowed = (e.params as { allowedValues: unknown[] }).allowedValues.map(String);
      return loc.diag(path, `${describe(e.data)} is not allowed; expected one of ${allowed.join(', ')}${didYouMean(String(e.data), allowed)}`);
    }
    case 'pattern': {
      const what = hint ?? `a string matching ${(e.params as { pattern: string }).pattern}`;
      if (e.propertyName !== undefined) {
        return loc.diag([...path, e.propertyName], `name "${e.propertyName}" is not allowed; expected ${what}`, { key: true });
      }
      return loc.diag(path, `${describe(e.data)} is not allowed; expected ${what}`);
    }
    case 'propertyNames':
      return null; // reported by the nested pattern error, which names the key
    case 'minItems':
    case 'maxItems': {
      const lim = (e.params as { limit: number }).limit;
      const same = ps.minItems === ps.maxItems;
      const exp = same ? `exactly ${lim}` : e.keyword === 'minItems' ? `at least ${lim}` : `at most ${lim}`;
      return loc.diag(path, `expected ${exp} items, found ${Array.isArray(e.data) ? e.data.length : '?'}`);
    }
    case 'minProperties':
    case 'maxProperties': {
      const keys = e.data && typeof e.data === 'object' ? Object.keys(e.data) : [];
      const what = hint ?? `${e.keyword === 'minProperties' ? 'at least' : 'at most'} ${(e.params as { limit: number }).limit} keys`;
      return loc.diag(path, `expected ${what}, found ${keys.length ? keys.join(', ') : 'none'}`);
    }
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum': {
      const p = e.params as { comparison: string; limit: number };
      return loc.diag(path, `${describe(e.data)} is out of range; expected a value ${p.comparison} ${p.limit}`);
    }
    case 'minLength':
      return loc.diag(path, `expected a non-empty string, found ${describe(e.data)}`);
    default:
      return loc.diag(path, e.message ?? `invalid (${e.keyword})`);
  }
}

/** Validates the parsed YAML value against the schema; [] when it conforms. */
export function schemaDiagnostics(value: unknown, loc: Locator): Diagnostic[] {
  const validate = validator();
  if (validate(value)) return [];
  const out: Diagnostic[] = [];
  for (const e of validate.errors ?? []) {
    const d = toDiagnostic(e, loc);
    if (d) out.push(d);
  }
  return out;
}
