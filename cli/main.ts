// The `netlab` command line: maps commands and flags to library calls. This is the one place
// that prints errors and decides exit codes: 0 success, 1 a failed check or invalid input,
// 2 usage errors (commander's own).
import { Argument, Command, CommanderError, Option } from 'commander';
import { loadTopologyFile } from '../topology/load.js';
import { formatDiagnostic } from '../topology/source.js';
import { toDot, toJson, toMermaid } from '../topology/graph.js';
import type { Diagnostic, Lab, LabCheck } from '../topology/types.js';
import { buildPlan, formatPlan, nodesBuilt, PlanError, type Plan } from '../controller/plan.js';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { parse as parseYaml } from 'yaml';
import { makeProgress } from './progress.js';
import { cleanup, down, LabError, requireRoot, setHostLink, setLink, status, up, type LabStatusReport } from '../controller/lab.js';
import { describeState, execInContainer, RuntimeError, streamLogs } from '../runtime/container.js';
import { AbortedError, ApplyError } from '../controller/apply.js';
import { ImageError } from '../runtime/image.js';
import { KernelError } from '../controller/kernel.js';
import { LockBusyError, readState } from '../controller/state.js';
import { ConflictError, envForUp, envOffline, holdClaims, readListeners, releaseClaims, socketOwner } from '../controller/conflicts.js';
import type { ResolveEnv } from '../topology/addrspace.js';
import { adHocCheck, formatMatrix, formatTable, matrixChecks, runChecks, toJUnit } from '../controller/checks.js';

/** An error meant for the user: printed as one line (or the listed diagnostics), exit code `code`. */
export class UserError extends Error {
  constructor(message: string, readonly code = 1, readonly diagnostics: Diagnostic[] = []) {
    super(message);
  }
}

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  /** Aborted once stdout or stderr turned out to be a closed pipe (its reason names which):
   *  `up` then rolls back instead of leaving a half-built lab. */
  closed?: AbortSignal;
}

/** Resolves a file on this machine: subnets present on the host must leave its routes alone and
 *  automatic ones avoid them (`up` also avoids the running labs' subnets: see envForUp). */
function loadOrThrow(file: string, env: ResolveEnv = envOffline()): Lab {
  const r = loadTopologyFile(file, env);
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
    .enablePositionalOptions()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .exitOverride();

  program
    .command('validate')
    .description('check topology files; prints every problem as file:line:col (no root needed)')
    .argument('<files...>', 'topology files')
    .option('--json', 'print the result as JSON')
    .action((files: string[], opts: { json?: boolean }) => {
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
    });

  program
    .command('plan')
    .description('print the ordered kernel objects and processes `up` would create, with their exact names (no root needed)')
    .argument('<file>', 'topology file')
    .option('--json', 'print the plan as JSON (byte-identical across runs)')
    .option('--as <host>', 'only the part of one host, built on that machine itself (see up --as)')
    .action((file: string, opts: { json?: boolean; as?: string }) => {
      const plan = planFor(loadOrThrow(file), opts.as);
      io.out(opts.json ? JSON.stringify(plan, null, 2) + '\n' : formatPlan(plan) + '\n');
    });

  program
    .command('graph')
    .description('print the lab graph (containers, networks, hosts, the machine) (no root needed)')
    .argument('<file>', 'topology file')
    .addOption(new Option('--format <format>', 'output format (html: a standalone page with the interactive graph and predicted reachability)').choices(['dot', 'mermaid', 'json', 'html']).default('dot'))
    .action(async (file: string, opts: { format: 'dot' | 'mermaid' | 'json' | 'html' }) => {
      const lab = loadOrThrow(file);
      if (opts.format === 'html') {
        const { standaloneHtml } = await import('../web/server/html.js');
        io.out(await standaloneHtml(lab));
        return;
      }
      const text = opts.format === 'dot' ? toDot(lab) : opts.format === 'mermaid' ? toMermaid(lab) : toJson(lab);
      io.out(text.endsWith('\n') ? text : text + '\n');
    });

  program
    .command('up')
    .description('build the lab in the kernel and start its containers (needs root)')
    .argument('<file>', 'topology file')
    .option('--check', 'run the lab\'s checks once it is up (exit 1 if any fails)')
    .option('--as <host>', 'this machine is that host of the lab: build only its part (its nodes, overlay bridges and VXLAN with forwarding entries to the other hosts\' addresses); run it on every host to form the lab')
    .action(async (file: string, opts: { check?: boolean; as?: string }) => {
      // The claim lock is held from reading the running labs (automatic subnets avoid theirs)
      // until up() has recorded this lab's state: two labs brought up at the same moment never
      // get the same automatic subnet.
      requireRoot('up');
      holdClaims();
      let lab: Lab;
      try {
        lab = loadOrThrow(file, envForUp());
        if (opts.as !== undefined) planFor(lab, opts.as); // an unknown host is a usage error, before anything else
        const progress = makeProgress(io, process.stderr.isTTY === true);
        const built = nodesBuilt(lab, opts.as);
        const model = lab;
        // The report is part of `up`: a signal or a closed pipe until it is written rolls back.
        // One write, so a reader that takes only the first line (`| head -1`) still gets all of
        // it in the pipe and the lab stays up.
        const report = (plan: Plan, ms: number) => {
          progress.done();
          let text = opts.as !== undefined
            ? `lab ${model.name} is up as host ${opts.as}: ${built.length} of ${model.nodes.length} nodes (${plan.steps.length} steps in ${fmtMs(ms)})\n`
            : `lab ${model.name} is up: ${model.nodes.length} nodes, ${model.networks.length} networks, ${model.links.length} links (${plan.steps.length} steps in ${fmtMs(ms)})\n`;
          for (const n of built) {
            const addrs = n.interfaces.map((f) => `${f.name} ${f.ipv4 ? `${f.ipv4.address}/${f.ipv4.prefixLen}` : '-'}`).join(', ');
            text += `  ${n.name.padEnd(16)} ${n.networkMode === 'bridge' ? (addrs || 'no interfaces') : `network_mode ${n.networkMode}`}\n`;
          }
          io.out(text);
        };
        await up(lab, { progress: progress.update, report, ...(io.closed ? { signal: io.closed } : {}), ...(opts.as !== undefined ? { as: opts.as } : {}) });
      } finally {
        releaseClaims();
      }
      if (opts.check) {
        const r = await runChecks(lab, localChecks(lab, lab.checks, opts.as ?? null, io), 'checks');
        io.out(formatTable(r));
        if (r.failed > 0) throw new UserError('', 1);
      }
    });

  const collect = (v: string, prev: string[] = []) => [...prev, v];
  program
    .command('check')
    .description('run connectivity checks (the lab\'s, ad hoc ones, or --matrix) and compare with the prediction')
    .argument('<lab>', 'lab name or topology file')
    .option('--matrix', 'ping between every ordered pair of nodes')
    .option('--predict-only', 'only predict from the model (no root; the lab need not be up)')
    .option('--explain', 'show the path (or where it stops) behind each prediction')
    .option('--json', 'print the results as JSON')
    .option('--junit <file>', 'also write JUnit XML for CI systems')
    .option('--timeout <ms>', 'per-probe timeout for --matrix', (v) => {
      if (!/^[0-9]+(\.[0-9]+)?$/.test(v) || !(Number(v) > 0)) throw new UserError(`--timeout ${v}: expected a positive number of milliseconds, e.g. 1000`, 2);
      return Number(v);
    }, 1000)
    .option('--ping <from:to>', 'ad hoc ping check (repeatable)', collect)
    .option('--tcp <from:to:port>', 'ad hoc tcp check (repeatable)', collect)
    .option('--http <from:url>', 'ad hoc http check (repeatable)', collect)
    .option('--dns <from:name>', 'ad hoc dns check (repeatable)', collect)
    .addOption(new Option('--expect <verdict>', 'expectation of the ad hoc checks (default: the prediction)').choices(['reach', 'fail']))
    .action(async (arg: string, opts: {
      matrix?: boolean; predictOnly?: boolean; explain?: boolean; json?: boolean; junit?: string; timeout: number;
      ping?: string[]; tcp?: string[]; http?: string[]; dns?: string[]; expect?: 'reach' | 'fail';
    }) => {
      const lab = checkModel(arg, !!opts.predictOnly);
      const adHoc: LabCheck[] = [];
      for (const kind of ['ping', 'tcp', 'http', 'dns'] as const) {
        for (const spec of opts[kind] ?? []) {
          try { adHoc.push(adHocCheck(lab, kind, spec, adHoc.length, opts.expect ?? null)); } catch (e) { throw new UserError((e as Error).message, 2); }
        }
      }
      const as = opts.predictOnly ? null : readState(lab.name)?.as ?? null;
      const checks = localChecks(lab, opts.matrix ? matrixChecks(lab, opts.timeout) : adHoc.length > 0 ? adHoc : lab.checks, as, io);
      if (opts.matrix && !opts.predictOnly) {
        // Every pair needs a neighbour entry, and the kernel's ARP table is one for all namespaces.
        // Only the initial namespace has the (machine-wide) thresholds: run in another one
        // (nsenter --net), there is nothing to read and no warning to give.
        let limit = Infinity;
        try { limit = Number(fs.readFileSync('/proc/sys/net/ipv4/neigh/default/gc_thresh3', 'utf8')); } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e; }
        if (checks.length > limit) io.err(`netlab: warning: the matrix needs ${checks.length} neighbour (ARP) entries but the kernel keeps at most ${limit} for the whole machine (net.ipv4.neigh.default.gc_thresh3); pairs may fail for that alone: raise it with sysctl -w net.ipv4.neigh.default.gc_thresh3=${2 ** Math.ceil(Math.log2(checks.length * 2))}\n`);
      }
      if (checks.length === 0) throw new UserError(`lab ${lab.name} has no checks; add a checks: section, use --matrix, or give --ping/--tcp/--http/--dns`);
      const r = await runChecks(lab, checks, opts.matrix ? 'matrix' : 'checks', { predictOnly: opts.predictOnly });
      if (opts.junit) fs.writeFileSync(opts.junit, toJUnit(r));
      if (opts.json) io.out(JSON.stringify(r, null, 2) + '\n');
      else if (opts.matrix) io.out(formatMatrix(r, lab.nodes.map((n) => n.name)) + (opts.explain ? formatTable(r, { explain: true }) : ''));
      else io.out(formatTable(r, { explain: opts.explain }));
      if (r.failed > 0) throw new UserError('', 1);
    });

  program
    .command('down')
    .description('remove every kernel object of a lab (needs root)')
    .argument('<lab>', 'lab name or topology file')
    .option('--as <host>', 'remove only this host\'s part (what `up --as` made here); the default when the lab was brought up that way')
    .action(async (arg: string, opts: { as?: string }) => {
      const name = labNameOf(arg);
      const r = await down(name, opts.as !== undefined ? { as: opts.as } : {});
      const ipt = r.iptablesRules ? `, ${r.iptablesRules} iptables rules` : '';
      const what = r.netns.length || r.rootLinks || r.nftTable || r.iptablesRules ? `removed ${r.netns.length} namespaces${r.rootLinks ? ', its links' : ''}${r.nftTable ? `, nft table ${r.nftTable}` : ''}${ipt}` : 'nothing was up';
      io.out(`lab ${name}${r.as ? ` (host ${r.as})` : ''} is down: ${what} (${fmtMs(r.ms)})\n`);
      for (const [node, exit] of Object.entries(r.exits)) io.out(`  ${node.padEnd(16)} ${exit}\n`);
      if (r.cgroupsLeft.length) io.err(`netlab: could not remove cgroups: ${r.cgroupsLeft.join(', ')}\n`);
    });

  program
    .command('status')
    .description('labs, nodes, interfaces, addresses and link state, read back from the kernel (needs root)')
    .argument('[lab]', 'lab name or topology file')
    .option('--json', 'print as JSON')
    .action(async (arg: string | undefined, opts: { json?: boolean }) => {
      const labs = await status(arg ? labNameOf(arg) : undefined);
      if (opts.json) { io.out(JSON.stringify(labs, null, 2) + '\n'); return; }
      if (labs.length === 0) { io.out('no labs are up\n'); return; }
      for (const l of labs) {
        io.out(`lab ${l.lab}: ${describeLab(l)}${l.as ? ` as host ${l.as}` : ''}${l.file ? ` (${l.file})` : ''}\n`);
        if (l.error) io.out(`  error: ${l.error}\n`);
        for (const n of l.nodes) {
          const ctr = describeState(n.container);
          if (n.error) { io.out(`  ${n.name.padEnd(16)} ${ctr}; ${n.error}\n`); continue; }
          if (!n.present) { io.out(`  ${n.name.padEnd(16)} ${ctr}; namespace ${n.netns} missing\n`); continue; }
          if (n.netns === null) { io.out(`  ${n.name.padEnd(16)} ${ctr}; host network\n`); continue; }
          const ifs = n.interfaces.filter((f) => f.name !== 'lo').map((f) => `${f.name}${f.up ? (f.operUp ? '' : ' (no carrier)') : ' DOWN'}${f.addresses.length ? ' ' + f.addresses.join(' ') : ''}`);
          io.out(`  ${n.name.padEnd(16)} ${ctr}; ${ifs.join(', ') || 'loopback only'}\n`);
        }
        io.out(formatHosts(l));
      }
    });

  program
    .command('cleanup')
    .description('remove every object carrying netlab\'s markers, even without state files (needs root)')
    .action(async () => {
      const r = await cleanup();
      if (r.labs.length === 0 && r.strayLinks.length === 0 && r.strayTables.length === 0) { io.out('nothing to clean up\n'); return; }
      for (const l of r.labs) io.out(`lab ${l.lab}: removed ${l.netns.length} namespaces${l.netns.length ? ` (${l.netns.join(', ')})` : ''}${l.rootLinks ? ', its links' : ''}${l.nftTable ? `, nft table ${l.nftTable}` : ''}\n`);
      if (r.strayLinks.length) io.out(`stray links: ${r.strayLinks.join(', ')}\n`);
      if (r.strayTables.length) io.out(`stray nft tables: ${r.strayTables.join(', ')}\n`);
    });

  program
    .command('link')
    .description('set a link down or up, both ends, like pulling a cable (needs root)')
    .argument('<lab>', 'lab name or topology file')
    .argument('<endpoint>', 'NODE:IFACE, or @HOST for a simulated host\'s underlay cable')
    .addArgument(new Argument('<state>', 'up or down').choices(['up', 'down']))
    .action(async (arg: string, endpoint: string, state: 'up' | 'down') => {
      if (endpoint.startsWith('@')) {
        await setHostLink(labNameOf(arg), endpoint.slice(1), state === 'up');
        io.out(`${labNameOf(arg)} ${endpoint} ${state}\n`);
        return;
      }
      const m = /^([^:]+):([^:]+)$/.exec(endpoint);
      if (!m) throw new UserError(`"${endpoint}" is not an endpoint; expected NODE:IFACE, e.g. web:eth0`, 2);
      await setLink(labNameOf(arg), m[1], m[2], state === 'up');
      io.out(`${labNameOf(arg)} ${endpoint} ${state}\n`);
    });

  program
    .command('exec')
    .description('run a command inside a running container (all its namespaces and its root); exits with its code (needs root)')
    .argument('<lab>', 'lab name or topology file')
    .argument('<node>', 'node name')
    .argument('[command...]', 'command and arguments (after --); default sh with -it')
    .option('-i, --interactive', 'keep standard input open')
    .option('-t, --tty', 'the command talks to your terminal (with -i: an interactive shell)')
    .passThroughOptions()
    .action(async (arg: string, node: string, command: string[], opts: { interactive?: boolean; tty?: boolean }) => {
      requireRoot('exec');
      const { given, interactive, tty } = execArgs(command, opts);
      opts = { interactive, tty };
      const argv = given.length > 0 ? given : opts.interactive ? ['sh'] : [];
      if (argv.length === 0) throw new UserError('no command given; e.g. netlab exec LAB NODE -- ip addr, or -it for a shell', 2);
      throw new ExitCode(await execInContainer(labNameOf(arg), node, argv, { tty: opts.tty, stdin: opts.interactive }));
    });

  program
    .command('logs')
    .description('print a container\'s output (stdout and stderr) (needs root)')
    .argument('<lab>', 'lab name or topology file')
    .argument('<node>', 'node name')
    .option('-f, --follow', 'keep printing new output until the container exits or Ctrl-C')
    .action(async (arg: string, node: string, opts: { follow?: boolean }) => {
      requireRoot('logs');
      let interrupted = false;
      const onInt = () => { interrupted = true; };
      process.on('SIGINT', onInt);
      try {
        await streamLogs(labNameOf(arg), node, (b) => io.out(b.toString()), { follow: opts.follow, stop: () => interrupted });
      } finally {
        process.off('SIGINT', onInt);
      }
    });

  program
    .command('web')
    .description('serve the lab graph and its checks in a browser, live (a topology file that is not up is drawn from its model)')
    .argument('[lab]', 'lab name or topology file (default: every lab, pick one in the page)')
    .option('--port <port>', 'TCP port (0: any free port)', (v) => {
      if (!/^\d+$/.test(v) || Number(v) > 65535) throw new UserError(`--port ${v}: expected a number from 0 to 65535`, 2);
      return Number(v);
    }, 8080)
    .option('--host <address>', 'address to listen on; anything but loopback exposes the API to the network (the token is then needed for every request)', '127.0.0.1')
    .action(async (arg: string | undefined, opts: { port: number; host: string }) => {
      const { startWebServer } = await import('../web/server/serve.js');
      const { isLoopbackAddress } = await import('../web/server/app.js');
      let offline: Lab | null = null;
      let name: string | null = null;
      if (arg !== undefined) {
        name = labNameOf(arg);
        const isFile = /\.ya?ml$/.test(arg) || (arg.includes('/') && fs.existsSync(arg));
        if (isFile) offline = loadOrThrow(arg);
        else if (!readState(name) && !labNamespaces(name)) throw new UserError(`lab ${name} is not up: give its topology file to draw the model`);
      }
      let server: Awaited<ReturnType<typeof startWebServer>>;
      try {
        server = await startWebServer({ offline, defaultLab: name, port: opts.port, host: opts.host });
      } catch (e) {
        throw listenError(e as NodeJS.ErrnoException, opts.host, opts.port);
      }
      // After listening: a --host that cannot be listened on gets its one error line only.
      if (!isLoopbackAddress(opts.host)) {
        io.err(`netlab web: WARNING: listening on ${opts.host}, which is not a loopback address: anyone who can reach it and has the token can run probes and set links down${typeof process.getuid === 'function' && process.getuid() === 0 ? ' as root' : ''}. Every request needs the token.\n`);
      }
      io.out(`netlab web: ${name ? `lab ${name}` : 'all labs'}${offline && !readState(offline.name) ? ' (not up: drawn from the model)' : ''} at ${server.url}\n`);
      if (typeof process.getuid === 'function' && process.getuid() !== 0) io.err('netlab web: not root: the page shows the labs\' models, not the kernel\'s state, and cannot run probes or set links\n');
      await new Promise<void>((resolve) => {
        const stop = () => { process.off('SIGINT', stop); process.off('SIGTERM', stop); resolve(); };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
      await server.close();
    });

  return program;
}

/** The documented form is `exec LAB NODE -i -- CMD`: with passThroughOptions, commander hands
 *  options written after the positional arguments to the command, so they are taken here, up
 *  to `--` or the first word that is not one of them (the command itself). */
export function execArgs(command: string[], opts: { interactive?: boolean; tty?: boolean }): { given: string[]; interactive: boolean; tty: boolean } {
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

/** A failed listen of `netlab web` as one line for the user (anything else is a bug). */
function listenError(e: NodeJS.ErrnoException, host: string, port: number): Error {
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  switch (e.code) {
    case 'EADDRINUSE': {
      const l = readListeners().find((x) => x.protocol === 'tcp' && x.port === port);
      const who = l ? socketOwner(l.inode) : null;
      return new UserError(`web: ${where} is already in use${who ? ` by ${who}` : ''}; choose another --port (0 takes any free one)`);
    }
    case 'EADDRNOTAVAIL': return new UserError(`web: --host ${host} is not an address of this machine; give one of its addresses, or 127.0.0.1`);
    case 'ENOTFOUND': case 'EAI_AGAIN': case 'EAI_FAIL': case 'EAI_NONAME': return new UserError(`web: --host ${host}: no such host name or address; give an address of this machine, e.g. 127.0.0.1`);
    case 'EACCES': return new UserError(`web: port ${port} needs root (ports below 1024 are privileged); choose another --port`);
    case 'EINVAL': return new UserError(`web: cannot listen on ${where}: invalid address`);
    default: return e;
  }
}

/** Whether any namespace of the lab exists (a lab without its state file). */
function labNamespaces(lab: string): boolean {
  try {
    return fs.readdirSync('/run/netns').some((n) => n.startsWith(`netlab.${lab}.`) || n.startsWith(`netlab.${lab}+`));
  } catch {
    return false;
  }
}

/** Not an error: the exit code of a command netlab ran for the user (exec). */
class ExitCode extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

/** The plan of a lab, or of one host's part of it (`--as`). */
function planFor(lab: Lab, as: string | undefined) {
  try {
    return buildPlan(lab, as !== undefined ? { as } : {});
  } catch (e) {
    if (e instanceof PlanError) throw new UserError(e.message, 2);
    throw e;
  }
}

/** With `up --as`, only checks from the nodes on this machine can run here; the others run on
 *  their own hosts' machines. */
function localChecks(lab: Lab, checks: LabCheck[], as: string | null, io: Io): LabCheck[] {
  if (as === null) return checks;
  const here = new Set(nodesBuilt(lab, as).map((n) => n.name));
  const kept = checks.filter((c) => here.has(c.from));
  if (kept.length < checks.length) io.err(`netlab: ${checks.length - kept.length} of ${checks.length} checks start on other hosts than ${as}; run them there\n`);
  return kept;
}

/** A lab's status word with what is happening to it: an up or down running now, or one that
 *  was interrupted (and `down` finishes). */
function describeLab(l: LabStatusReport): string {
  const down = `netlab down ${l.lab}${l.as ? ` --as ${l.as}` : ''}`;
  if (l.runningPid !== null) return `${l.status} (netlab pid ${l.runningPid} at work on it)`;
  if (!l.interrupted) {
    const missing = l.nodes.filter((n) => !n.present || n.error).length;
    return missing ? `${l.status}, ${missing} of ${l.nodes.length} nodes missing or unreadable` : l.status;
  }
  if (l.status === 'creating') return `creating, interrupted: half-built by an \`up\` that is gone; run \`${down}\``;
  if (l.status === 'deleting') return `deleting, interrupted: a \`down\` stopped half-way; run \`${down}\` to finish it`;
  if (l.status === 'failed') return `failed, rollback did not finish; run \`${down}\``;
  return `${l.status}; run \`${down}\` to remove it`;
}

/** The hosts section of `status`: each host, its underlay and its VXLAN tunnels. Hosts are
 *  written `@name` (node names cannot contain '@'). */
function formatHosts(l: LabStatusReport): string {
  let out = '';
  for (const h of l.hosts) {
    const where = h.role === 'simulated'
      ? `simulated (netns ${h.netns}${h.error ? `: ${h.error}` : h.present === false ? ', missing' : ''})${h.underlayUp === null ? '' : h.underlayUp ? ', underlay up' : ', underlay DOWN'}`
      : h.role;
    out += `  @${h.name.padEnd(15)} ${h.address} ${where}\n`;
    for (const t of h.tunnels) {
      if (!t.present) { out += `    ${t.network}: vxlan ${t.device} missing\n`; continue; }
      const remotes = t.remotes.map((r) => `${r.host ?? '?'} ${r.address} (${r.macs} MAC${r.macs === 1 ? '' : 's'})`).join(', ');
      out += `    ${t.network}: vxlan ${t.device} vni ${t.vni} local ${t.local ?? '-'} port ${t.port}${t.up ? '' : ' DOWN'}${t.learning ? ' learning' : ''} -> ${remotes || 'no remote endpoints'}\n`;
    }
  }
  return out;
}

function fmtMs(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/** The model checks run against: the running lab's (it records links set down), else the file's
 *  (prediction only). */
function checkModel(arg: string, predictOnly: boolean): Lab {
  const isFile = /\.ya?ml$/.test(arg) || (arg.includes('/') && fs.existsSync(arg));
  const name = labNameOf(arg);
  const st = readState(name);
  if (st?.status === 'up') {
    if (!predictOnly) requireRoot('check');
    return st.model;
  }
  if (!predictOnly) throw new LabError(`lab ${name} is not up; bring it up first, or use --predict-only${isFile ? '' : ' with the topology file'}`);
  if (!isFile) throw new UserError(`lab ${name} is not up: give its topology file to predict`);
  return loadOrThrow(arg);
}

/** A lab name given directly, or read from a topology file's `name`. */
function labNameOf(arg: string): string {
  if (/\.ya?ml$/.test(arg) || (arg.includes('/') && fs.existsSync(arg))) {
    let doc: unknown;
    try { doc = parseYaml(fs.readFileSync(arg, 'utf8')); } catch (e) { throw new UserError(`${arg}: ${(e as Error).message.split('\n')[0]}`); }
    const name = (doc as { name?: unknown } | null)?.name;
    if (typeof name !== 'string') throw new UserError(`${arg}: no lab name in this file`);
    return name;
  }
  if (!/^[a-z][a-z0-9-]{0,31}$/.test(arg)) throw new UserError(`"${arg}" is neither a lab name nor a topology file`, 2);
  return arg;
}

/** 128 + the signal's number, as a shell reports a process the signal ended; a closed pipe
 *  counts as SIGPIPE (141). */
function abortExitCode(reason: string): number {
  const n = os.constants.signals[reason as NodeJS.Signals] ?? (/EPIPE|closed/.test(reason) ? os.constants.signals.SIGPIPE : os.constants.signals.SIGINT);
  return 128 + n;
}

/** Runs the CLI and returns the exit code (never calls process.exit, so tests can call it). */
export async function main(argv: string[], io: Io = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) }): Promise<number> {
  try {
    await buildProgram(io).parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      return e.exitCode === 0 ? 0 : 2;
    }
    if (e instanceof ExitCode) return e.code;
    if (e instanceof RuntimeError || e instanceof ImageError) {
      io.err(`netlab: ${e.message}\n`);
      return 1;
    }
    if (e instanceof LabError) {
      io.err(`netlab: ${e.message}\n`);
      return e.exitCode;
    }
    if (e instanceof LockBusyError || e instanceof KernelError || e instanceof ConflictError) {
      io.err(`netlab: ${e.message}\n`);
      return 1;
    }
    if (e instanceof ApplyError || e instanceof AbortedError) {
      io.err(`netlab: ${e.message}\n`);
      return e instanceof AbortedError ? abortExitCode(e.signal) : 1;
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
