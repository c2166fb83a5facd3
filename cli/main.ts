// The `netlab` command line: maps commands and flags to library calls. This is the one place
// that prints errors and decides exit codes: 0 success, 1 a failed check or invalid input,
// 2 usage errors (commander's own).
import { Command, CommanderError, Option } from 'commander';
import { loadTopologyFile } from '../topology/load.js';
import { formatDiagnostic } from '../topology/source.js';
import { toDot, toJson, toMermaid } from '../topology/graph.js';
import type { Diagnostic, Lab } from '../topology/types.js';
import { buildPlan, formatPlan } from '../controller/plan.js';

/** An error meant for the user: printed as one line (or the listed diagnostics), exit code `code`. */
export class UserError extends Error {
  constructor(message: string, readonly code = 1, readonly diagnostics: Diagnostic[] = []) {
    super(message);
  }
}

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

function loadOrThrow(file: string): Lab {
  const r = loadTopologyFile(file);
  if (!r.lab) {
    const n = r.diagnostics.length;
    throw new UserError(`${file}: ${n} problem${n === 1 ? '' : 's'}`, 1, r.diagnostics);
  }
  return r.lab;
}

export function buildProgram(io: Io): Command {
  const program = new Command();
  program
    .name('netlab')
    .description('Network labs from a YAML topology, built with real kernel primitives (netns, veth, bridges, VXLAN) over netlink.')
    .version('0.1.0')
    .showHelpAfterError()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .exitOverride();

  program
    .command('validate')
    .description('check topology files; prints every problem as file:line:col (no root needed)')
    .argument('<files...>', 'topology files')
    .option('--json', 'print the result as JSON')
    .action((files: string[], opts: { json?: boolean }) => {
      const results = files.map((f) => ({ file: f, ...loadTopologyFile(f) }));
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
    });

  program
    .command('plan')
    .description('print the ordered kernel objects and processes `up` would create, with their exact names (no root needed)')
    .argument('<file>', 'topology file')
    .option('--json', 'print the plan as JSON (byte-identical across runs)')
    .action((file: string, opts: { json?: boolean }) => {
      const plan = buildPlan(loadOrThrow(file));
      io.out(opts.json ? JSON.stringify(plan, null, 2) + '\n' : formatPlan(plan) + '\n');
    });

  program
    .command('graph')
    .description('print the lab graph (containers, networks, hosts, the machine) (no root needed)')
    .argument('<file>', 'topology file')
    .addOption(new Option('--format <format>', 'output format').choices(['dot', 'mermaid', 'json']).default('dot'))
    .action((file: string, opts: { format: 'dot' | 'mermaid' | 'json' }) => {
      const lab = loadOrThrow(file);
      const text = opts.format === 'dot' ? toDot(lab) : opts.format === 'mermaid' ? toMermaid(lab) : toJson(lab);
      io.out(text.endsWith('\n') ? text : text + '\n');
    });

  return program;
}

/** Runs the CLI and returns the exit code (never calls process.exit, so tests can call it). */
export async function main(argv: string[], io: Io = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) }): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      return e.exitCode === 0 ? 0 : 2;
    }
    if (e instanceof UserError) {
      for (const d of e.diagnostics) io.err(formatDiagnostic(d) + '\n');
      if (e.message && e.diagnostics.length === 0) io.err(`netlab: ${e.message}\n`);
      return e.code;
    }
    io.err(`netlab: internal error: ${(e as Error).stack ?? String(e)}\n`);
    return 70;
  }
}
