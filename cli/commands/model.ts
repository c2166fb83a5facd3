// validate, plan and graph: commands that read a topology file and print what it means,
// without root and without touching the kernel. graph's renderers load only for graph: validate
// is the command run most often.
import { netemAvailable } from '../../controller/kernel/tc.js';
import { loadTopologyFile } from '../../topology/load.js';
import { formatDiagnostic } from '../../topology/source.js';
import { buildPlan, formatPlan } from '../../controller/plan.js';
import { envOffline } from '../../controller/conflicts.js';
import { UserError } from '../errors.js';
import type { Io } from '../io.js';
import { loadLab } from '../target.js';

export interface ValidateOptions { json?: boolean }
export interface PlanCommandOptions { json?: boolean; as?: string }
export type GraphFormat = 'dot' | 'mermaid' | 'json' | 'html';

export function validate(io: Io, files: string[], opts: ValidateOptions): void {
  const env = envOffline();
  const results = files.map((f) => ({ file: f, ...loadTopologyFile(f, env) }));
  const bad = results.filter((r) => !r.lab);
  if (opts.json) {
    io.out(JSON.stringify({ valid: bad.length === 0, files: results.map((r) => ({ file: r.file, valid: !!r.lab, diagnostics: r.diagnostics })) }, null, 2) + '\n');
  } else {
    for (const r of results) {
      if (r.lab) io.out(`${r.file}: ok (lab ${r.lab.name}: ${r.lab.nodes.length} nodes, ${r.lab.networks.length} networks, ${r.lab.links.length} links, ${r.lab.checks.length} checks)\n`);
      else for (const d of r.diagnostics) io.err(formatDiagnostic(d) + '\n');
    }
  }
  if (bad.length > 0) throw new UserError('', 1);
}

/** An unknown `--as` host is a usage error (PlanError, exit 2). */
export function plan(io: Io, file: string, opts: PlanCommandOptions): void {
  const p = buildPlan(loadLab(file), { netem: netemAvailable(), ...(opts.as !== undefined ? { as: opts.as } : {}) });
  io.out(opts.json ? JSON.stringify(p, null, 2) + '\n' : formatPlan(p) + '\n');
}

export async function graph(io: Io, file: string, opts: { format: GraphFormat }): Promise<void> {
  const lab = loadLab(file);
  if (opts.format === 'html') {
    const { standaloneHtml } = await import('../../web/server/html.js');
    io.out(await standaloneHtml(lab));
    return;
  }
  const { toDot, toJson, toMermaid } = await import('../../topology/graph.js');
  const text = opts.format === 'dot' ? toDot(lab) : opts.format === 'mermaid' ? toMermaid(lab) : toJson(lab);
  io.out(text.endsWith('\n') ? text : text + '\n');
}
