// Reading a topology file's YAML while keeping source positions: every later check reports
// `file:line:col` by asking the Locator for the position of a key path. Also the one place
// that turns diagnostics into text and sorts them.
import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import type { Diagnostic } from './types.js';

export type PathSeg = string | number;

/** Finds the line:col of a path in the parsed document (of the key when asked, else of the value). */
export interface Locator {
  file: string;
  at(path: PathSeg[], opts?: { key?: boolean }): { line: number; col: number };
  diag(path: PathSeg[], message: string, opts?: { key?: boolean }): Diagnostic;
}

export function pathText(path: PathSeg[]): string {
  let s = '';
  for (const seg of path) {
    if (typeof seg === 'number') s += `[${seg}]`;
    else s += s ? `.${seg}` : seg;
  }
  return s || '(top level)';
}

function childOf(node: unknown, seg: PathSeg): { value: unknown; key: unknown } | null {
  if (isMap(node)) {
    for (const item of node.items) {
      if (!isPair(item)) continue;
      const k = isScalar(item.key) ? item.key.value : item.key;
      if (k === seg || (k !== null && k !== undefined && String(k) === String(seg))) {
        return { value: item.value, key: item.key };
      }
    }
    return null;
  }
  if (isSeq(node) && typeof seg === 'number') {
    const v = node.items[seg];
    return v === undefined ? null : { value: v, key: null };
  }
  return null;
}

function rangeStart(n: unknown): number | null {
  const r = (n as Node | null | undefined)?.range;
  return Array.isArray(r) ? r[0] : null;
}

export function makeLocator(file: string, doc: Document, lines: LineCounter): Locator {
  const at = (path: PathSeg[], opts: { key?: boolean } = {}) => {
    let node: unknown = doc.contents;
    let best = rangeStart(node) ?? 0;
    for (let i = 0; i < path.length; i++) {
      const c = childOf(node, path[i]);
      if (!c) break;
      const last = i === path.length - 1;
      const pos = last && opts.key ? rangeStart(c.key) ?? rangeStart(c.value) : rangeStart(c.value) ?? rangeStart(c.key);
      if (pos !== null) best = pos;
      node = c.value;
    }
    const p = lines.linePos(best);
    return { line: p.line, col: p.col };
  };
  return {
    file,
    at,
    diag(path, message, opts) {
      const { line, col } = at(path, opts);
      return { file, line, col, path: pathText(path), message };
    },
  };
}

export interface ParsedSource {
  value: unknown;
  locator: Locator;
  diagnostics: Diagnostic[];
}

/** Parses YAML text. Syntax errors become diagnostics; never throws on any input. */
export function parseYamlSource(text: string, file: string): ParsedSource {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false, merge: true });
  const locator = makeLocator(file, doc, lines);
  const diagnostics: Diagnostic[] = [];
  for (const e of [...doc.errors, ...doc.warnings]) {
    const pos = e.linePos?.[0] ?? lines.linePos(e.pos[0]);
    const firstLine = e.message.split('\n')[0];
    diagnostics.push({ file, line: pos.line, col: pos.col, path: '', message: `YAML ${doc.errors.includes(e as never) ? 'syntax error' : 'warning'}: ${firstLine}` });
  }
  let value: unknown = null;
  if (doc.errors.length === 0) {
    try {
      value = doc.toJS({ maxAliasCount: 1000 });
    } catch (e) {
      diagnostics.push({ file, line: 1, col: 1, path: '', message: `YAML error: ${(e as Error).message.split('\n')[0]}` });
    }
  }
  return { value, locator, diagnostics };
}

export function formatDiagnostic(d: Diagnostic): string {
  const where = d.path ? `${d.path}: ` : '';
  return `${d.file}:${d.line}:${d.col}: ${where}${d.message}`;
}

export function sortDiagnostics(ds: Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  return [...ds]
    .sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.col - b.col || a.message.localeCompare(b.message))
    .filter((d) => {
      const k = formatDiagnostic(d);
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
}

/** Edit distance counting insertions, deletions, substitutions and swaps of two neighbouring
 *  letters (optimal string alignment), for "did you mean" suggestions: `imgae` is one typo. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** The closest candidate when it is close enough to be a likely typo. */
export function suggest(word: string, candidates: Iterable<string>): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) { bestD = d; best = c; }
  }
  if (best === null) return null;
  return bestD <= Math.max(1, Math.floor(Math.max(word.length, best.length) / 3)) ? best : null;
}

export function didYouMean(word: string, candidates: Iterable<string>): string {
  const s = suggest(word, candidates);
  return s ? `; did you mean "${s}"?` : '';
}
