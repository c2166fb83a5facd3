// exec and logs: a command run inside a running container, and a container's output.
import { requireRoot } from '../../controller/lab.js';
import { execInContainer, streamLogs } from '../../runtime/container.js';
import { ExitCode, UserError } from '../errors.js';
import type { Io } from '../io.js';
import { labNameOf } from '../target.js';
import { listStateLabs, readState } from '../../controller/state.js';
import { didYouMean } from '../../topology/source.js';

export interface ExecOptions { interactive?: boolean; tty?: boolean }

export async function exec(_io: Io, arg: string, node: string, command: string[], opts: ExecOptions): Promise<never> {
  requireRoot('exec');
  const { given, interactive, tty } = execArgs(command, opts);
  const argv = given.length > 0 ? given : interactive ? ['sh'] : [];
  if (argv.length === 0) throw new UserError('no command given; e.g. netlab exec LAB NODE -- ip addr, or -it for a shell', 2);
  const lab = labNameOf(arg);
  requireNode(lab, node);
  throw new ExitCode(await execInContainer(lab, node, argv, { tty, stdin: interactive }));
}

/** A lab that is not on this machine, or a node it does not have: one line, with the name it
 *  probably meant (the state files are the labs netlab knows). */
export function requireNode(lab: string, node: string): void {
  const st = readState(lab);
  if (!st) {
    const labs = listStateLabs();
    throw new UserError(`no such lab ${lab}${didYouMean(lab, labs)}${labs.length ? ` (labs: ${labs.join(', ')})` : ' (no lab is up)'}`);
  }
  const names = st.model.nodes.map((n) => n.name);
  if (!names.includes(node)) throw new UserError(`lab ${lab} has no node ${node}${didYouMean(node, names)} (nodes: ${names.join(', ')})`);
}

/** The documented form is `exec LAB NODE -i -- CMD`: with passThroughOptions, commander hands
 *  options written after the positional arguments to the command, so they are taken here, up
 *  to `--` or the first word that is not one of them (the command itself). */
export function execArgs(command: string[], opts: ExecOptions): { given: string[]; interactive: boolean; tty: boolean } {
  let interactive = !!opts.interactive, tty = !!opts.tty;
  let i = 0;
  for (; i < command.length; i++) {
    const a = command[i];
    if (a === '--') { i++; break; }
    if (a === '--interactive') interactive = true;
    else if (a === '--tty') tty = true;
    else if (/^-[it]+$/.test(a)) { if (a.includes('i')) interactive = true; if (a.includes('t')) tty = true; }
    else if (a.startsWith('-')) throw new UserError(`exec: unknown option ${a}; expected -i, -t or -it before -- COMMAND`, 2);
    else break;
  }
  return { given: command.slice(i), interactive, tty };
}

export async function logs(io: Io, arg: string, node: string, opts: { follow?: boolean }): Promise<void> {
  requireRoot('logs');
  let interrupted = false;
  const onInt = () => { interrupted = true; };
  process.on('SIGINT', onInt);
  try {
    requireNode(labNameOf(arg), node);
    await streamLogs(labNameOf(arg), node, (b) => io.out(b.toString()), { follow: opts.follow, stop: () => interrupted });
  } finally {
    process.off('SIGINT', onInt);
  }
}
