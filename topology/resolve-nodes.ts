// The resolver's node stage, the parts that stand alone: a node's security settings (cap_add,
// cap_drop, security_opt, sysctls), checked with Docker's names and rules.
import * as path from 'node:path';
import type { RawNode } from './types.js';
import type { PathSeg } from './source.js';
import { canonicalCap, parseSecurityOpt, sysctlProblem, type SeccompSetting } from './security.js';

export /** cap_add, cap_drop, security_opt and sysctls of one node, checked (Docker's names and rules). */
function resolveSecurity(
  n: RawNode, mode: 'bridge' | 'none' | 'host', p: PathSeg[], baseDir: string,
  err: (path: PathSeg[], message: string, atKey?: boolean) => void,
): { capAdd: string[]; capDrop: string[]; seccomp: SeccompSetting; sysctls: Record<string, string> } {
  const caps = (key: 'cap_add' | 'cap_drop') => {
    const out: string[] = [];
    (n[key] ?? []).forEach((c, i) => {
      const k = canonicalCap(c);
      if (k === null) err([...p, key, i], `"${c}" is not a Linux capability; expected a name like NET_ADMIN or CAP_SYS_PTRACE, or ALL`);
      else if (!out.includes(k)) out.push(k);
    });
    return out;
  };
  const capAdd = caps('cap_add');
  const capDrop = caps('cap_drop');
  let seccomp: SeccompSetting = { mode: 'default' };
  (n.security_opt ?? []).forEach((o, i) => {
    const r = parseSecurityOpt(o, (f) => path.resolve(baseDir, f));
    if (typeof r === 'string' && r !== 'ok') err([...p, 'security_opt', i], r);
    else if (typeof r === 'object') seccomp = r.seccomp;
  });
  const sysctls: Record<string, string> = {};
  const entries: [string, string, PathSeg[]][] = Array.isArray(n.sysctls)
    ? n.sysctls.map((kv, i) => {
      const eq = kv.indexOf('=');
      return [eq > 0 ? kv.slice(0, eq) : kv, eq > 0 ? kv.slice(eq + 1) : '', [...p, 'sysctls', i]];
    })
    : Object.entries(n.sysctls ?? {}).map(([k, v]) => [k, String(v), [...p, 'sysctls', k]]);
  for (const [k, v, at] of entries) {
    const problem = sysctlProblem(k, mode);
    if (problem) err(at, problem, !Array.isArray(n.sysctls));
    else if (v === '' || /[\n\t\0]/.test(v)) err(at, `sysctl ${k} needs a value without tabs or newlines (KEY=VALUE)`);
    else sysctls[k] = v;
  }
  return { capAdd, capDrop, seccomp, sysctls };
}
