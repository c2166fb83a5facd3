// Renders a bench run: the terminal table (stdout) and docs/performance.md (regenerated on every
// successful run, prose included: the "where the time goes" text is written from the numbers).
import type { PlanOp } from '../controller/plan.js';
import type { RunResult, SizeResult } from './run.js';
import { fmtMs, fmtStats, type Stats } from './util.js';

// ---------------------------------------------------------------- targets

export interface Target {
  name: string;
  goal: string;
  measured: string;
  status: 'PASS' | 'MISS' | 'n/a';
  note?: string;
}

const TARGET_N = 100;

export function targetsOf(r: RunResult): Target[] {
  const s = r.sizes.find((x) => x.n === TARGET_N);
  if (!s) {
    const na = (name: string, goal: string): Target => ({ name, goal, measured: `N=${TARGET_N} not measured`, status: 'n/a' });
    return [na(`star ${TARGET_N} up`, '<= 0.6 s'), na(`star ${TARGET_N} down`, '<= 0.4 s'), na(`star ${TARGET_N} vs Mininet`, '>= 8x faster')];
  }
  const up = s.netlab.up.median;
  const down = s.netlab.down.median;
  const t: Target[] = [
    { name: `star ${TARGET_N} up (median)`, goal: '<= 0.6 s', measured: fmtMs(up), status: up <= 600 ? 'PASS' : 'MISS' },
    { name: `star ${TARGET_N} down (median)`, goal: '<= 0.4 s', measured: fmtMs(down), status: down <= 400 ? 'PASS' : 'MISS' },
  ];
  const mn = s.mininet.runs?.median;
  if (mn === undefined) {
    t.push({ name: `star ${TARGET_N}: netlab up+down vs Mininet build+teardown`, goal: '>= 8x faster', measured: `Mininet not measured (${s.mininet.skipped ?? s.mininet.error})`, status: 'n/a' });
  } else {
    const x = mn / s.netlab.upDown.median;
    const cli = s.cli ? mn / (s.cli.upMs + s.cli.downMs) : null;
    t.push({
      name: `star ${TARGET_N}: netlab up+down vs Mininet build+teardown`, goal: '>= 8x faster',
      measured: `${x.toFixed(1)}x (${fmtMs(s.netlab.upDown.median)} vs ${fmtMs(mn)})`,
      status: x >= 8 ? 'PASS' : 'MISS',
      note: cli === null ? undefined : `CLI end to end, Node start-up included: ${cli.toFixed(1)}x (${fmtMs(s.cli!.upMs + s.cli!.downMs)})`,
    });
  }
  return t;
}

// ---------------------------------------------------------------- rows

function ratio(a: number | null | undefined, b: number | null | undefined): string {
  if (a === null || a === undefined || b === null || b === undefined || !b) return '-';
  const r = a / b;
  return r < 1 ? `${r.toFixed(2)} (${(1 / r).toFixed(1)}x faster)` : `${r.toFixed(2)} (${r.toFixed(1)}x slower)`;
}

function mib(kib: number | null | undefined): string {
  return kib ? `${(kib / 1024).toFixed(0)} MiB` : '-';
}

type Row = [string, ...string[]];

function resultRows(r: RunResult): Row[] {
  const col = (f: (s: SizeResult) => string): string[] => r.sizes.map(f);
  const mnCell = (s: SizeResult) => s.mininet.runs ? fmtStats(s.mininet.runs) : `skipped: ${s.mininet.skipped ?? s.mininet.error}`;
  return [
    ['netlab `up`, in-process', ...col((s) => fmtStats(s.netlab.up))],
    ['netlab `down`, in-process', ...col((s) => fmtStats(s.netlab.down))],
    ['netlab up + down', ...col((s) => fmtStats(s.netlab.upDown))],
    ['netlab `up` CPU: user / sys', ...col((s) => `${fmtMs(s.netlab.upUser.median)} / ${fmtMs(s.netlab.upSys.median)}`)],
    ['`node bin/netlab.js up FILE` (1 run)', ...col((s) => fmtMs(s.cli?.upMs))],
    ['`node bin/netlab.js down LAB` (1 run)', ...col((s) => fmtMs(s.cli?.downMs))],
    ['peak RSS, in-process (baseline → peak)', ...col((s) => `${mib(s.netlab.rssBaselineKiB)} → ${mib(s.netlab.rssPeakKiB)}`)],
    ['peak RSS, CLI `up`', ...col((s) => mib(s.cli?.upRssKiB))],
    ['`ip -batch` floor build (fastest variant)', ...col((s) => s.floor ? `${fmtStats(s.floor.best.buildStats)} [${s.floor.best.build.split(' ')[0]}]` : '-')],
    ['`ip -batch` floor teardown (fastest)', ...col((s) => s.floor ? `${fmtStats(s.floor.best.teardownStats)} [${s.floor.best.teardown.split(' + ')[1]}]` : '-')],
    ['Mininet `--test build` (build + teardown)', ...col(mnCell)],
    ['Mininet, its own "completed in"', ...col((s) => s.mininet.selfReported ? fmtStats(s.mininet.selfReported) : '-')],
    ['ratio netlab up / floor build', ...col((s) => ratio(s.netlab.up.median, s.floor?.best.buildStats.median))],
    ['ratio netlab down / floor teardown', ...col((s) => ratio(s.netlab.down.median, s.floor?.best.teardownStats.median))],
    ['ratio netlab up+down / Mininet', ...col((s) => ratio(s.netlab.upDown.median, s.mininet.runs?.median))],
    ['ratio CLI up+down / Mininet', ...col((s) => ratio(s.cli ? s.cli.upMs + s.cli.downMs : null, s.mininet.runs?.median))],
  ];
}

function mdTable(head: string[], rows: string[][]): string {
  const esc = (c: string) => c.replace(/\|/g, '\\|');
  return [`| ${head.map(esc).join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`)].join('\n');
}

function textTable(head: string[], rows: string[][]): string {
  const all = [head, ...rows];
  const w = head.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(w[i])).join('  ').trimEnd();
  return [line(head), w.map((x) => '-'.repeat(x)).join('  '), ...rows.map(line)].join('\n');
}

// ---------------------------------------------------------------- where the time goes

const OP_WHAT: Partial<Record<PlanOp, string>> = {
  'netns.add': 'unshare(CLONE_NEWNET) + bind mount + a netlink socket in the new namespace',
  'veth.add': 'RTM_NEWLINK of the pair (peer made in the node namespace, host end enslaved to the bridge) + alias/peer alias',
  'link.up': 'RTM_SETLINK IFF_UP (bridge ports: the bridge adds the port to its forwarding state)',
  'sysctl.set': 'setns in, open+write /proc/sys/..., setns back',
  'addr.add': 'RTM_NEWADDR (nodad) + an ifindex lookup the first time',
  'route.add': 'RTM_NEWROUTE',
  'bridge.add': 'RTM_NEWLINK type bridge + alias',
  'nft.apply': 'spawns `nft -f -` with the lab table',
};

const OP_FIX: Partial<Record<PlanOp, string>> = {
  'veth.add': 'send the veth creates back to back (several RTM_NEWLINK in flight; kernel.ts already bounds in-flight requests) instead of awaiting each step, and put the alias in the create message of the peer (IFLA_IFALIAS is honoured on the peer\'s ifinfomsg only via a follow-up SETLINK today: keep it but pipeline it)',
  'netns.add': 'create the namespaces of all nodes in one synchronous loop (unshare + bind mount) before any await, and open their netlink sockets lazily; the kernel part (copy_net_ns, ~0.45 ms each) stays',
  'sysctl.set': 'write the per-namespace disable_ipv6 sysctls in the same setns window as netns.add (one window instead of three per node), or disable IPv6 per link with IFLA_AF_SPEC/IFLA_INET6_ADDR_GEN_MODE=none in the create message',
  'link.up': 'set IFF_UP on the host end in the veth create message (it is allowed there; only the peer gives ENOTCONN) and pipeline the node-side SETLINKs',
  'addr.add': 'pipeline the RTM_NEWADDR of all nodes (one per namespace socket, no ordering between them)',
  'route.add': 'pipeline the RTM_NEWROUTE of all nodes',
  'nft.apply': 'keep: one process per lab; or talk nftables netlink directly (libnftables through koffi) to drop the spawn',
};

function opRows(s: SizeResult): { op: PlanOp; count: number; ms: number; share: number; perUs: number }[] {
  const up = s.netlab.up.median;
  return (Object.entries(s.netlab.opMs) as [PlanOp, Stats][])
    .map(([op, st]) => {
      // Step 1 is counted in "set-up" (its time includes up()'s own start), so one fewer here.
      const count = (s.netlab.counts[op] ?? 0) - (op === 'bridge.add' ? 1 : 0);
      return { op, count, ms: st.median, share: st.median / up, perUs: count ? (st.median * 1000) / count : 0 };
    })
    .filter((x) => x.count > 0)
    .sort((a, b) => b.ms - a.ms);
}

function pct(x: number): string {
  return `${Math.round(x * 100)}%`;
}

function whereTheTimeGoes(r: RunResult): string {
  const s = r.sizes.find((x) => x.n === r.options.profileSize) ?? r.sizes[0];
  if (!s) return '';
  const n = s.netlab;
  const ops = opRows(s);
  const out: string[] = [];
  out.push(`## Where the time goes (star ${s.n})`, '');
  out.push(`Measured in the same run: each plan step's wall time from \`up()\`'s progress callback (it fires after every step; medians over ${n.raw.length} runs), the process's CPU time split into user (JavaScript: ours, the netlink package's, Node's) and sys (the kernel, working inside our syscalls: rtnetlink requests are executed in the sending process's \`sendmsg\`), a V8 CPU profile of one more \`up()\`, and \`down()\`'s teardown re-enacted call by call.`, '');
  out.push(mdTable(['plan op', 'steps', 'median total', 'per step', 'share of up', 'what it does'], [
    ...ops.map((o) => [o.op, String(o.count), fmtMs(o.ms), `${Math.round(o.perUs)} µs`, pct(o.share), OP_WHAT[o.op] ?? '']),
    ['set-up + step 1', '1', fmtMs(n.pre.median), '', pct(n.pre.median / n.up.median), 'lock, state file, Kernel.open, buildPlan, the first bridge.add'],
    ['finish', '', fmtMs(n.post.median), '', pct(n.post.median / n.up.median), 'final state write (the model as JSON), sockets closed, unlock'],
  ]), '');
  const user = n.upUser.median;
  const sys = n.upSys.median;
  const wait = Math.max(0, n.up.median - user - sys);
  out.push(`CPU during \`up\` (median): user ${fmtMs(user)}, sys ${fmtMs(sys)}, wall ${fmtMs(n.up.median)} (not on our CPU: ~${fmtMs(wait)}; user + sys can exceed wall because libuv and V8 helper threads run beside the main thread). Loading and resolving the topology text is ${fmtMs(n.loadTopologyMs)} and \`buildPlan\` ${fmtMs(n.buildPlanMs)} (both before \`up\`, done by the CLI).`, '');
  const p = n.profile;
  let kernelShare = sys / Math.max(1, user + sys);
  if (p) {
    const cats = Object.entries(p.categories).filter(([, v]) => v > 0);
    const total = cats.reduce((a, [, v]) => a + v, 0);
    out.push(`V8 profile of one \`up()\` (${fmtMs(p.totalMs)} under the profiler, ${p.sampleCount} samples at 100 µs), self time by category:`, '');
    out.push(mdTable(['category', 'ms', 'share'], cats.map(([k, v]) => [k, v.toFixed(1), pct(v / total)])), '');
    out.push('Native time by the netlab function that made the call:', '');
    out.push(mdTable(['call', 'ms'], p.nativeByCaller.slice(0, 8).map((x) => [`\`${x.caller}\``, x.ms.toFixed(1)])), '');
    const nat = p.categories['native calls (syscalls: kernel work)'] ?? 0;
    kernelShare = nat / total;
  }
  if (n.downBreakdown) {
    out.push(`\`down\` (median ${fmtMs(n.down.median)}; CPU user ${fmtMs(n.downUser.median)}, sys ${fmtMs(n.downSys.median)}), its calls re-enacted one by one:`, '');
    out.push(mdTable(['call', 'ms'], Object.entries(n.downBreakdown).map(([k, v]) => [k, v.toFixed(1)])), '');
  }

  // The prose, from the numbers above.
  const top = ops.slice(0, 3);
  const jsShare = p ? (['netlab JavaScript (controller/, topology/)', 'netlink package JavaScript (encode/decode)', 'Node.js internals (buffers, fs, child_process JS)', 'garbage collection']
    .reduce((a, k) => a + (p.categories[k] ?? 0), 0) / Object.values(p.categories).reduce((a, b) => a + b, 0)) : null;
  const ours = p ? (p.categories['netlab JavaScript (controller/, topology/)'] ?? 0) / Object.values(p.categories).reduce((a, b) => a + b, 0) : null;
  const floor = r.sizes.find((x) => x.n === s.n)?.floor;
  out.push('**What dominates.** ' + [
    `At N=${s.n}, \`up\` runs ${n.steps} plan steps in ${fmtMs(n.up.median)} (${fmtMs(n.up.median / s.n)} per node).`,
    `${top.map((o) => `\`${o.op}\` ${pct(o.share)} (${o.count} × ${Math.round(o.perUs)} µs)`).join(', ')} of it.`,
    p ? `The profile puts ${pct(kernelShare)} of \`up\` in native calls, i.e. in the kernel doing the work inside our syscalls (netlink sends, unshare/mount/setns, /proc/sys writes, the nft spawn), and ${pct(jsShare!)} in JavaScript, of which netlab's own code is ${pct(ours!)} and the rest the netlink package's message encoding, Node internals and GC.`
      : `sys CPU is ${pct(kernelShare)} of the CPU time.`,
    kernelShare >= 0.6 ? '**The kernel dominates**: creating namespaces and veth pairs and attaching them to the bridge is where the time goes; our code is a small share.'
      : '**Our code is a large share**: the JavaScript side is worth optimising before the kernel side.',
    floor ? `For comparison the \`ip -batch\` floor builds the same star in ${fmtMs(floor.best.buildStats.median)} (${floor.best.build}), so netlab's \`up\` is ${(n.up.median / floor.best.buildStats.median).toFixed(2)}x the floor: ${n.up.median <= floor.best.buildStats.median ? 'faster, because the floor pays one `ip` process per namespace (iproute2 batch mode cannot switch namespaces) while netlab keeps one socket per namespace in one process' : 'the difference is the per-step await and the extra SETLINKs (alias, separate IFF_UP) netlab sends'}.` : '',
    n.downBreakdown ? (() => {
      const e = Object.entries(n.downBreakdown).sort((a, b) => b[1] - a[1]);
      return `\`down\` is dominated by ${e.slice(0, 2).map(([k, v]) => `${k.replace(/ \(.*\)$/, '')} (${fmtMs(v)})`).join(' and ')}; the kernel unregisters all of the lab's interfaces in one batch for the group delete, and the namespaces themselves are freed by the kernel in the background after the unmounts.`;
    })() : '',
  ].filter(Boolean).join(' '), '');

  const t = targetsOf(r);
  const missed = t.filter((x) => x.status === 'MISS');
  const fixes = top.filter((o) => OP_FIX[o.op]).slice(0, 3);
  out.push(missed.length > 0
    ? `**Missed target(s): ${missed.map((x) => x.name).join(', ')}.** Measured cause: the largest op types above. Concrete fixes (controller code, not changed by the bench):`
    : '**Next gains, if ever needed** (all targets pass; these are the largest op types above):', '');
  for (const o of fixes) out.push(`- \`${o.op}\` (${pct(o.share)} of up): ${OP_FIX[o.op]}.`);
  out.push('');
  return out.join('\n');
}

// ---------------------------------------------------------------- outputs

function machineLine(r: RunResult): string {
  const m = r.machine;
  return `${m.cpuModel}, ${m.nproc} CPUs, ${(m.memoryMiB / 1024).toFixed(1)} GiB, ${m.os}, kernel ${m.kernel.replace(/^Linux /, '')}, Node ${m.node}, iproute2 ${m.iproute2}, Mininet ${m.mininet ?? 'not installed'}`;
}

export function renderMarkdown(r: RunResult, resultsFile: string): string {
  const head = ['', ...r.sizes.map((s) => `N=${s.n}`)];
  const t = targetsOf(r);
  const busy = Math.max(...r.sizes.map((s) => s.netlab.busyBeforeMax));
  const o: string[] = [];
  o.push('# Performance', '');
  o.push(`<!-- Generated by \`npm run bench\` (bench/run.ts). Do not edit: the next run rewrites this file. -->`, '');
  o.push(`Run of ${r.date} (${r.startedAt.slice(11, 16)} UTC, run id \`${r.runId}\`, \`${r.command}\`), raw numbers in [\`${resultsFile}\`](../${resultsFile}).`, '');
  o.push(`Machine: ${machineLine(r)}.`, '');
  o.push('## Scenario and method', '');
  o.push([
    `- **star N**: N nodes on one bridge network whose host side is the gateway (address on the bridge, NAT, a default route in every node), topology text generated by \`bench/star.ts\`. Each node is a bare network namespace (no container process: the runtime is not in \`up\` yet).`,
    `- **netlab \`up\`/\`down\`, in-process**: \`controller/lab.ts\` called from a Node process of its own per size (what \`netlab up\` does minus Node start-up and topology loading), ${r.options.reps} runs each; median (min–max). Peak RSS is that process's VmHWM (\`process.resourceUsage().maxRSS\`).`,
    `- **CLI end to end**: \`node bin/netlab.js up FILE\` then \`node bin/netlab.js down LAB\`, once per size, wall time of each process. For scale: \`node -e 0\` takes ${fmtStats(r.nodeStartup.nodeEmptyMs)} and \`node bin/netlab.js --version\` ${fmtStats(r.nodeStartup.cliVersionMs)} here.`,
    `- **\`ip -batch\` floor**: the same namespaces, veths (peer made in its namespace), bridge, gateway address, node addresses, links up and default routes, from generated batch files (\`bench/floor.ts\`). iproute2 6.1's batch mode has no per-line \`-n\`, so each namespace's part needs one \`ip -n NS -batch\` process; three ways are measured (\`seq\`: one shell, one \`ip\` per namespace; \`exec\`: \`netns exec NS ip -batch\` lines inside the root batch; \`par2\`: two parallel lanes) and the fastest is the floor. IPv6 is silenced with \`addrgenmode none\` (netlab uses disable_ipv6 sysctls). Teardown: \`link del group G\` + \`netns del\` in one batch (as netlab does), or \`link del BRIDGE\` + \`netns del\`. No nft table (netlab adds one, ~${fmtMs(r.sizes[0]?.netlab.opMs['nft.apply']?.median)} for the spawn).`,
    `- **Mininet**: \`mn --switch lxbr --controller none --topo single,N --test build\` (Linux bridge, no Open vSwitch, build + teardown), wall time of the whole command (Python start-up included), ${r.options.mnReps} runs.`,
    `- Before every measured sample the bench waits until the CPUs are quiet (the kernel frees deleted namespaces in the background); the busiest pre-sample window of the netlab runs was ${pct(busy)} busy. Other sessions may share this machine: min–max shows the spread.`,
  ].join('\n'), '');
  o.push('## Results', '');
  o.push(mdTable(head, resultRows(r)), '');
  o.push('Ratios are netlab / peer: below 1 netlab is faster.', '');
  o.push('## Targets', '');
  o.push(mdTable(['target', 'goal', 'measured', 'result'], t.map((x) => [x.name, x.goal, `${x.measured}${x.note ? `; ${x.note}` : ''}`, `**${x.status}**`])), '');
  o.push('## `ip -batch` floor variants', '');
  const vnames = [...new Set(r.sizes.flatMap((s) => Object.keys(s.floor?.variants ?? {})))];
  o.push(mdTable(['variant', ...r.sizes.map((s) => `N=${s.n} build / teardown / gone after`)], vnames.map((v) => [v, ...r.sizes.map((s) => {
    const x = s.floor?.variants[v];
    return x ? `${fmtMs(x.build.median)} / ${fmtMs(x.teardown.median)} / +${fmtMs(x.settle.median)}` : '-';
  })])), '');
  o.push('"gone after": time from the end of the teardown command until its links and namespaces are no longer visible (netlab: ' + r.sizes.map((s) => `N=${s.n} +${fmtMs(s.netlab.settle.median)}`).join(', ') + ', polled the same way).', '');
  o.push(whereTheTimeGoes(r));
  o.push('## Running it', '');
  o.push([
    '```sh',
    'npm run bench                          # sizes 10,100,300; needs root',
    'npm run bench -- --sizes 10,100 --reps 3 --no-mininet',
    '```',
    '',
    '`bench/setup.sh` (run by the bench first; `--no-setup` skips it) installs Debian\'s `mininet` and `bridge-utils` if missing, with `--no-install-recommends` (no Open vSwitch). If Mininet cannot be installed, the bench prints why and leaves its column out. Mininet\'s own cleanup (`mn -c`, which `mn` also runs after an exception) deletes every `*-ethN` link on the machine: netlab\'s names (`nl...`, no `-`) cannot match, but do not run it while someone else\'s Mininet is up. The bench never runs `mn -c` itself.',
    '',
    'Everything the bench creates carries the run id and is removed in `finally`; a snapshot of namespaces, links, nft tables, netlab state, mounts under /run/netns and child processes taken at the start is compared with one at the end, and anything of the run still there fails it.',
  ].join('\n'), '');
  return o.join('\n');
}

export function renderTerminal(r: RunResult): string {
  const head = ['', ...r.sizes.map((s) => `N=${s.n}`)];
  const lines: string[] = ['', `netlab bench ${r.date} (run ${r.runId}) on ${machineLine(r)}`, ''];
  lines.push(textTable(head, resultRows(r).map((x) => x.map((c) => c.replace(/`/g, '')))));
  lines.push('', 'targets:');
  for (const t of targetsOf(r)) lines.push(`  ${t.status.padEnd(4)}  ${t.name}: ${t.measured} (goal ${t.goal})${t.note ? `; ${t.note}` : ''}`);
  const s = r.sizes.find((x) => x.n === r.options.profileSize);
  if (s) {
    lines.push('', `where the time goes in up, N=${s.n} (median ms per op type):`);
    for (const o of opRows(s)) lines.push(`  ${o.op.padEnd(11)} ${String(o.count).padStart(5)} x ${String(Math.round(o.perUs)).padStart(5)} us = ${o.ms.toFixed(1).padStart(7)} ms  ${pct(o.share)}`);
    if (s.netlab.profile) {
      lines.push('  profile (self time):');
      for (const [k, v] of Object.entries(s.netlab.profile.categories)) if (v > 0) lines.push(`    ${v.toFixed(1).padStart(7)} ms  ${k}`);
    }
  }
  if (r.error) lines.push('', `ERROR: ${r.error.split('\n')[0]}`);
  lines.push('');
  return lines.join('\n');
}
