// The `netlab` command line: the commands, their arguments and options, and the one place that
// maps errors to output and exit codes. 0 success; a NetlabError prints one line (or its
// diagnostics, file:line:col) and exits with its exitCode (1 a failed check or invalid input,
// 2 a usage error, 128+N a signal); commander's own usage errors exit 2; anything else is a bug:
// "internal error" with the stack, exit 70.
// Each action imports its command's module when it runs, so `netlab --help` loads commander
// (and checks/wait.ts, constants only, for --wait's bound) only, and `validate` never loads the
// kernel, the runtime or the web server.
import { Argument, Command, CommanderError, Option } from 'commander';
import { NetlabError } from '../topology/errors.js';
import { UserError } from './errors.js';
import { MAX_WAIT_SECONDS } from '../checks/wait.js';
import type { Io } from './io.js';
import type { CheckOptions } from './commands/check.js';
import type { ExecOptions } from './commands/exec.js';
import type { GraphFormat, PlanCommandOptions, ValidateOptions } from './commands/model.js';
import type { UpOptions } from './commands/lifecycle.js';
import type { WebOptions } from './commands/web.js';
import type { RoutesOptions } from './commands/routes.js';
import type { ImpairOptions } from './commands/impair.js';
import type { CaptureCliOptions } from './commands/operate.js';
import type { StatsOptions } from './commands/stats.js';

export function buildProgram(io: Io, o: { completion?: boolean } = {}): Command {
  const program = new Command();
  program
    .name('netlab')
    .description('Network labs from a YAML topology, built with real kernel primitives (netns, veth, bridges, VXLAN) over netlink.')
    .version('0.1.0')
    .showHelpAfterError()
    .enablePositionalOptions()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .exitOverride();

  const model = () => import('./commands/model.js');
  const lifecycle = () => import('./commands/lifecycle.js');

  program
    .command('validate')
    .description('check topology files; prints every problem as file:line:col (no root needed)')
    .argument('<files...>', 'topology files')
    .option('--json', 'print the result as JSON')
    .action(async (files: string[], opts: ValidateOptions) => (await model()).validate(io, files, opts));

  program
    .command('plan')
    .description('print the ordered kernel objects and processes `up` would create, with their exact names (no root needed)')
    .argument('<file>', 'topology file')
    .option('--json', 'print the plan as JSON (byte-identical across runs)')
    .option('--as <host>', 'only the part of one host, built on that machine itself (see up --as)')
    .action(async (file: string, opts: PlanCommandOptions) => (await model()).plan(io, file, opts));

  program
    .command('graph')
    .description('print the lab graph (containers, networks, hosts, the machine) (no root needed)')
    .argument('<file>', 'topology file')
    .addOption(new Option('--format <format>', 'output format (html: a standalone page with the interactive graph and predicted reachability)').choices(['dot', 'mermaid', 'json', 'html']).default('dot'))
    .action(async (file: string, opts: { format: GraphFormat }) => (await model()).graph(io, file, opts));

  program
    .command('up')
    .description('build the lab in the kernel and start its containers (needs root)')
    .argument('<file>', 'topology file')
    .option('--check', 'run the lab\'s checks once it is up, each retried for its own `wait` (exit 1 if any fails)')
    .option('--as <host>', 'this machine is that host of the lab: build only its part (its nodes, overlay bridges and VXLAN with forwarding entries to the other hosts\' addresses); run it on every host to form the lab')
    .addOption(new Option('--pull <policy>', 'pull OCI images first: missing (those not in the store), always, never').choices(['missing', 'always', 'never']).default('missing'))
    .option('--json', 'print the result (and, with --check, the checks\' report) as JSON')
    .action(async (file: string, opts: UpOptions) => (await lifecycle()).up(io, file, opts));

  const collect = (v: string, prev: string[] = []) => [...prev, v];
  program
    .command('check')
    .description('run connectivity checks (the lab\'s, ad hoc ones, or --matrix) and compare with the prediction')
    .argument('<lab>', 'lab name or topology file')
    .option('--matrix', 'ping between every ordered pair of nodes')
    .option('--summary', 'with --matrix: counts and the pairs that disagree or fail only, no grid')
    .option('--predict-only', 'only predict from the model (no root; the lab need not be up)')
    .option('--explain', 'show the path (or where it stops) behind each prediction')
    .option('--json', 'print the results as JSON')
    .option('--junit <file>', 'also write JUnit XML for CI systems')
    .option('--timeout <ms>', 'per-probe timeout for --matrix', (v) => {
      if (!/^[0-9]+(\.[0-9]+)?$/.test(v) || !(Number(v) > 0)) throw new UserError(`--timeout ${v}: expected a positive number of milliseconds, e.g. 1000`, 2);
      return Number(v);
    }, 1000)
    .option('--wait <seconds>', `retry each check until it holds, for at most this many seconds (more than 0, at most ${MAX_WAIT_SECONDS}): ad hoc checks, --matrix, and the lab's checks without a wait of their own`, (v) => {
      if (!/^[0-9]+(\.[0-9]+)?$/.test(v) || !(Number(v) > 0) || Number(v) > MAX_WAIT_SECONDS) throw new UserError(`--wait ${v}: expected a number of seconds greater than 0 and at most ${MAX_WAIT_SECONDS}, e.g. 10`, 2);
      return Number(v);
    })
    .option('--ping <from:to>', 'ad hoc ping check (repeatable)', collect)
    .option('--tcp <from:to:port>', 'ad hoc tcp check (repeatable)', collect)
    .option('--http <from:url>', 'ad hoc http check (repeatable)', collect)
    .option('--dns <from:name>', 'ad hoc dns check (repeatable)', collect)
    .option('--throughput <from:to[:seconds]>', 'ad hoc throughput check: TCP for SECONDS (default 3) to netlab\'s receiver on port 5201 in TO (repeatable)', collect)
    .addOption(new Option('--expect <verdict>', 'expectation of the ad hoc checks (default: the prediction)').choices(['reach', 'fail']))
    .action(async (arg: string, opts: CheckOptions) => (await import('./commands/check.js')).check(io, arg, opts));

  program
    .command('down')
    .description('remove every kernel object of a lab (needs root)')
    .argument('<lab>', 'lab name or topology file')
    .option('--as <host>', 'remove only this host\'s part (what `up --as` made here); the default when the lab was brought up that way')
    .option('--json', 'print what was removed and how each container stopped as JSON')
    .action(async (arg: string, opts: { as?: string; json?: boolean }) => (await lifecycle()).down(io, arg, opts));

  program
    .command('status')
    .description('labs, nodes, interfaces, addresses and link state, read back from the kernel (needs root)')
    .argument('[lab]', 'lab name or topology file')
    .option('--json', 'print as JSON')
    .action(async (arg: string | undefined, opts: { json?: boolean }) => (await lifecycle()).status(io, arg, opts));

  program
    .command('stats')
    .description('CPU, memory, pids and traffic per node, like docker stats: two readings 500 ms apart, or --watch (needs root)')
    .argument('[lab]', 'lab name or topology file (default: every lab)')
    .option('--json', 'print as JSON (with --watch: one line per frame)')
    .option('--watch', 'refresh every second until Ctrl-C, CPU % over each second')
    .action(async (arg: string | undefined, opts: StatsOptions) => (await import('./commands/stats.js')).stats(io, arg, opts));

  program
    .command('cleanup')
    .description('remove every object carrying netlab\'s markers, even without state files (needs root)')
    .action(async () => (await lifecycle()).cleanup(io));

  program
    .command('link')
    .description('set a link down or up, both ends, like pulling a cable (needs root)')
    .argument('<lab>', 'lab name or topology file')
    .argument('<endpoint>', 'NODE:IFACE, or @HOST for a simulated host\'s underlay cable')
    .addArgument(new Argument('<state>', 'up or down').choices(['up', 'down']))
    .option('--json', 'print the result as JSON')
    .action(async (arg: string, endpoint: string, state: 'up' | 'down', opts: { json?: boolean }) => (await import('./commands/link.js')).link(io, arg, endpoint, state, opts));

  program
    .command('impair')
    .description('set a cable\'s impairments (both directions), replacing what it had, or --clear them (needs root)')
    .argument('<lab>', 'lab name or topology file')
    .argument('<endpoint>', 'NODE:IFACE of the cable (a link: both ends; a network attachment: that interface)')
    .option('--rate <rate>', 'rate limit, e.g. 10mbit, 512kbit, 100kbps (bytes/s)')
    .option('--delay <time>', 'added delay, e.g. 20ms (needs the sch_netem kernel module)')
    .option('--jitter <time>', 'delay variation (with --delay; needs sch_netem)')
    .option('--loss <percent>', 'random loss, e.g. 1% (nftables when the kernel has no netem)')
    .option('--duplicate <percent>', 'random duplication (needs sch_netem)')
    .option('--corrupt <percent>', 'random corruption (needs sch_netem)')
    .option('--reorder <percent>', 'packets sent ahead of the delayed ones (with --delay; needs sch_netem)')
    .option('--limit <packets>', 'queue length in packets')
    .option('--clear', 'take away every impairment of the cable')
    .option('--json', 'print the result as JSON')
    .action(async (arg: string, endpoint: string, opts: ImpairOptions) => (await import('./commands/impair.js')).impair(io, arg, endpoint, opts));

  program
    .command('routes')
    .description('each node\'s routing table as predicted next to the kernel\'s; exit 1 where they differ (needs root)')
    .argument('<lab>', 'lab name or topology file')
    .argument('[nodes...]', 'only these nodes (default: every node)')
    .option('--wait <seconds>', `re-read until every route agrees (routing protocols converging), for at most this many seconds (at most ${MAX_WAIT_SECONDS})`, (v) => {
      if (!/^[0-9]+(\.[0-9]+)?$/.test(v) || !(Number(v) > 0) || Number(v) > MAX_WAIT_SECONDS) throw new UserError(`--wait ${v}: expected a number of seconds greater than 0 and at most ${MAX_WAIT_SECONDS}, e.g. 10`, 2);
      return Number(v);
    })
    .option('--all', 'also list the connected routes that agree')
    .option('--json', 'print the tables as JSON')
    .action(async (arg: string, nodes: string[], opts: RoutesOptions) => (await import('./commands/routes.js')).routes(io, arg, nodes, opts));

  program
    .command('exec')
    .description('run a command inside a running container (all its namespaces and its root); exits with its code (needs root)')
    .argument('<lab>', 'lab name or topology file')
    .argument('<node>', 'node name')
    .argument('[command...]', 'command and arguments (after --); default sh with -it')
    .option('-i, --interactive', 'keep standard input open')
    .option('-t, --tty', 'the command talks to your terminal (with -i: an interactive shell)')
    .passThroughOptions()
    .action(async (arg: string, node: string, command: string[], opts: ExecOptions) => (await import('./commands/exec.js')).exec(io, arg, node, command, opts));

  program
    .command('logs')
    .description('print a container\'s output (stdout and stderr) (needs root)')
    .argument('<lab>', 'lab name or topology file')
    .argument('<node>', 'node name')
    .option('-f, --follow', 'keep printing new output until the container exits or Ctrl-C')
    .action(async (arg: string, node: string, opts: { follow?: boolean }) => (await import('./commands/exec.js')).logs(io, arg, node, opts));

  const operate = () => import('./commands/operate.js');
  program
    .command('inspect')
    .description('one node in detail: image, command, env, user, mounts, resources, process, interfaces and routes (needs root)')
    .argument('<lab>', 'lab name or topology file')
    .argument('<node>', 'node name')
    .option('--json', 'print as JSON')
    .action(async (arg: string, node: string, opts: { json?: boolean }) => (await operate()).inspect(io, arg, node, opts));

  program
    .command('cp')
    .description('copy files or directories between this machine and a running container (one side LAB:NODE:PATH) (needs root)')
    .argument('<src>', 'a path here, or LAB:NODE:PATH in the container')
    .argument('<dst>', 'LAB:NODE:PATH in the container, or a path here')
    .action(async (src: string, dst: string) => (await operate()).cp(io, src, dst));

  program
    .command('capture')
    .description('record the frames of a node\'s interface as pcap, to stdout or -w FILE, until -c COUNT or Ctrl-C (needs root)')
    .argument('<lab>', 'lab name or topology file')
    .argument('<endpoint>', 'NODE:IFACE')
    .option('-w, --write <file>', 'write the pcap to FILE instead of stdout')
    .option('-c, --count <packets>', 'stop after this many packets', (v) => {
      if (!/^\d+$/.test(v) || Number(v) < 1 || !Number.isSafeInteger(Number(v))) throw new UserError(`-c ${v}: expected a number of packets, 1 or more`, 2);
      return Number(v);
    })
    .option('--filter <expr>', 'only frames matching: icmp, tcp, udp, arp, host ADDR, port N, joined by and')
    .action(async (arg: string, endpoint: string, opts: CaptureCliOptions) => (await operate()).capture(io, arg, endpoint, opts));

  const image = program.command('image').description('the image store: pull, list, inspect, remove, load and build OCI images (needs root)');
  const images = () => import('./commands/image.js');
  image
    .command('pull')
    .description('pull an image from its registry into the store')
    .argument('<ref>', 'image reference: [registry/][user/]name[:tag][@sha256:digest]')
    .action(async (ref: string) => (await images()).pull(io, ref));
  image
    .command('ls')
    .description('list stored images: reference, digest, size, layers, labs using it')
    .option('--json', 'print as JSON')
    .action(async (opts: { json?: boolean }) => (await images()).ls(io, opts));
  image
    .command('inspect')
    .description('show an image\'s config (entrypoint, cmd, env, user, ports...) and layers')
    .argument('<ref>', 'image reference or digest')
    .option('--json', 'print as JSON')
    .action(async (ref: string, opts: { json?: boolean }) => (await images()).inspect(io, ref, opts));
  image
    .command('rm')
    .description('remove images (refused while a running lab uses one) and the layers nothing else uses')
    .argument('<refs...>', 'image references or digests')
    .action(async (refs: string[]) => (await images()).rm(io, refs));
  image
    .command('prune')
    .description('remove layers and blobs no stored image references, and leftovers of interrupted pulls')
    .action(async () => (await images()).prune(io));
  image
    .command('load')
    .description('load images from a docker save archive (legacy or OCI form), an OCI layout directory or an OCI layout tar')
    .argument('<file>', 'archive or directory')
    .option('--name <ref>', 'name the image (when the input names it only by a tag, or not at all)')
    .action(async (file: string, opts: { name?: string }) => (await images()).load(io, file, opts));
  image
    .command('build')
    .description('build the images a topology file declares under images: (Debian packages, with mmdebstrap) into the store')
    .argument('<file>', 'topology file')
    .option('--rebuild', 'build them even when the store has them')
    .action(async (file: string, opts: { rebuild?: boolean }) => (await images()).build(io, file, opts));

  program
    .command('web')
    .description('serve the lab graph and its checks in a browser, live (a topology file that is not up is drawn from its model)')
    .argument('[lab]', 'lab name or topology file (default: every lab, pick one in the page)')
    .option('--port <port>', 'TCP port (0: any free port)', (v) => {
      if (!/^\d+$/.test(v) || Number(v) > 65535) throw new UserError(`--port ${v}: expected a number from 0 to 65535`, 2);
      return Number(v);
    }, 8080)
    .option('--host <address>', 'address to listen on; anything but loopback exposes the API to the network (the token is then needed for every request)', '127.0.0.1')
    .action(async (arg: string | undefined, opts: WebOptions) => (await import('./commands/web.js')).web(io, arg, opts));

  // Shell completion through @bomb.sh/tab (its commander adapter reads the commands, their
  // options and argument choices from this program), loaded only when asked for: `completion
  // SHELL` prints the script, which calls the hidden `complete -- WORDS...` as the user types.
  if (o.completion ?? true) {
    const completer = async () => {
      const { default: tab } = await import('@bomb.sh/tab/commander');
      const root = tab(buildProgram(io, { completion: false }), { completionCommandName: 'completion' });
      const { labNamesForCompletion } = await import('./target.js');
      for (const cmd of root.commands.values()) {
        const lab = cmd.arguments.get('lab');
        if (lab) lab.handler = (complete) => { for (const l of labNamesForCompletion()) complete(l, 'lab'); };
      }
      return root;
    };
    program
      .command('completion')
      .description('print a shell completion script: source <(netlab completion bash), or zsh, fish, powershell')
      .addArgument(new Argument('<shell>', 'shell').choices(['bash', 'zsh', 'fish', 'powershell']))
      .action(async (shell: string) => { (await completer()).setup('netlab', 'netlab', shell); });
    program
      .command('complete', { hidden: true })
      .argument('[words...]')
      .allowUnknownOption()
      .helpOption(false)
      .action(async (words: string[]) => { (await completer()).parse(words); });
  }

  return program;
}

/** Runs the CLI and returns the exit code (never calls process.exit, so tests can call it). */
export async function main(argv: string[], io: Io = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) }): Promise<number> {
  try {
    await buildProgram(io).parseAsync(argv);
    return 0;
  } catch (e) {
    return reportError(e, io);
  }
}

/** The one mapping of an error to what the user sees and the exit code. */
export async function reportError(e: unknown, io: Io): Promise<number> {
  if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
  if (e instanceof NetlabError) {
    if (e.diagnostics.length > 0) {
      const { formatDiagnostic } = await import('../topology/source.js');
      for (const d of e.diagnostics) io.err(formatDiagnostic(d) + '\n');
    } else if (e.message) {
      io.err(`netlab: ${e.message}\n`);
    }
    return e.exitCode;
  }
  io.err(`netlab: internal error: ${(e as Error).stack ?? String(e)}\n`);
  return 70;
}
