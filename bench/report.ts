// Renders a bench run: the terminal table (stdout) and docs/performance.md (regenerated on every
// successful run, prose included: the "where the time goes" text is written from the numbers).
import type { PlanOp } from '../controller/plan.js';
import type { Mode, NetlabResult, RunResult, SizeResult } from './run.js';
import { fmtMs, fmtStats, type Stats } from './util.js';
import { CAT } from './profile.js';

export const MODE_LABEL: Record<Mode, string> = {
  containers: 'containers (`netlab up`)',
  bare: 'bare namespaces (`containers: false`)',
};

// ---------------------------------------------------------------- targets

export interface Target {
  name: string;
  goal: string;
  measured: string;
  status: 'PASS' | 'MISS' | 'n/a';
  note?: string;
}

const TARGET_N = 100;
const MODES: Mode[] = ['containers', 'bare'];

export function targetsOf(r: RunResult): Target[] {
  const s = r.sizes.find((x) => x.n === TARGET_N);
  const out: Target[] = [];
  for (const mode of MODES) {
    const tag = `[${mode}]`;
    if (!s) {
      for (const [name, goal] of [['up', '<= 0.6 s'], ['down', '<= 0.4 s'], ['vs Mininet', '>= 8x faster']]) {
        out.push({ name: `${tag} star ${TARGET_N} ${name}`, goal, measured: `N=${TARGET_N} not measured`, status: 'n/a' });
      }
      continue;
    }
    const m = s.netlab[mode];
    out.push({ name: `${tag} star ${TARGET_N} up (median)`, goal: '<= 0.6 s', measured: fmtMs(m.up.median), status: m.up.median <= 600 ? 'PASS' : 'MISS' });
    out.push({ name: `${tag} star ${TARGET_N} down (median)`, goal: '<= 0.4 s', measured: fmtMs(m.down.median), status: m.down.median <= 400 ? 'PASS' : 'MISS' });
    const mn = s.mininet.runs?.median;
    if (mn === undefined) {
      out.push({ name: `${tag} star ${TARGET_N} up+down vs Mininet build+teardown`, goal: '>= 8x faster', measured: `Mininet not measured (${s.mininet.skipped ?? s.mininet.error})`, status: 'n/a' });
    } else {
      const x = mn / m.upDown.median;
      const cli = mode === 'containers' && s.cli ? mn / (s.cli.upMs + s.cli.downMs) : null;
      out.push({
        name: `${tag} star ${TARGET_N} up+down vs Mininet build+teardown`, goal: '>= 8x faster',
        measured: `${x.toFixed(1)}x (${fmtMs(m.upDown.median)} vs ${fmtMs(mn)})`,
        status: x >= 8 ? 'PASS' : 'MISS',
        note: cli === null ? undefined : `CLI end to end, Node start-up included: ${cli.toFixed(1)}x (${fmtMs(s.cli!.upMs + s.cli!.downMs)})`,
      });
    }
  }
  return out;
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
  const c = (s: SizeResult) => s.netlab.containers;
  const b = (s: SizeResult) => s.netlab.bare;
  return [
    ['netlab `up`, containers (= `netlab up`)', ...col((s) => fmtStats(c(s).up))],
    ['netlab `down`, containers', ...col((s) => fmtStats(c(s).down))],
    ['netlab up + down, containers', ...col((s) => fmtStats(c(s).upDown))],
    ['netlab `up`, bare namespaces', ...col((s) => fmtStats(b(s).up))],
    ['netlab `down`, bare namespaces', ...col((s) => fmtStats(b(s).down))],
    ['netlab up + down, bare namespaces', ...col((s) => fmtStats(b(s).upDown))],
    ['`up` CPU user / sys: containers; bare', ...col((s) => `${fmtMs(c(s).upUser.median)} / ${fmtMs(c(s).upSys.median)}; ${fmtMs(b(s).upUser.median)} / ${fmtMs(b(s).upSys.median)}`)],
    ['`node bin/netlab.js up FILE` (1 run)', ...col((s) => s.cli ? fmtMs(s.cli.upMs) : s.cliError ? 'failed (see cliError in the JSON)' : '-')],
    ['`node bin/netlab.js down LAB` (1 run)', ...col((s) => fmtMs(s.cli?.downMs))],
    ['peak RSS, in-process: containers; bare', ...col((s) => `${mib(c(s).rssPeakKiB)}; ${mib(b(s).rssPeakKiB)} (idle ${mib(b(s).rssBaselineKiB)})`)],
    ['peak RSS, CLI `up`', ...col((s) => mib(s.cli?.upRssKiB))],
    ['`ip -batch` floor build (fastest variant)', ...col((s) => s.floor ? `${fmtStats(s.floor.best.buildStats)} [${s.floor.best.build.split(' ')[0]}]` : '-')],
    ['`ip -batch` floor teardown (fastest)', ...col((s) => s.floor ? `${fmtStats(s.floor.best.teardownStats)} [${s.floor.best.teardown.split(' + ')[1]}]` : '-')],
    ['Mininet `--test build` (build + teardown)', ...col(mnCell)],
    ['Mininet, its own "completed in"', ...col((s) => s.mininet.selfReported ? fmtStats(s.mininet.selfReported) : '-')],
    ['ratio up / floor build: bare; containers', ...col((s) => `${ratio(b(s).up.median, s.floor?.best.buildStats.median)}; ${ratio(c(s).up.median, s.floor?.best.buildStats.median)}`)],
    ['ratio down / floor teardown: bare', ...col((s) => ratio(b(s).down.median, s.floor?.best.teardownStats.median))],
    ['ratio up+down / Mininet: containers', ...col((s) => ratio(c(s).upDown.median, s.mininet.runs?.median))],
    ['ratio up+down / Mininet: bare', ...col((s) => ratio(b(s).upDown.median, s.mininet.runs?.median))],
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
  'veth.add': 'RTM_NEWLINK of the pair (peer made in the node namespace, host end enslaved to the bridge) + alias/peer alias SETLINKs',
  'link.up': 'RTM_SETLINK IFF_UP (bridge ports: the bridge adds the port to its forwarding state)',
  'sysctl.set': 'setns in, open+write /proc/sys/..., setns back',
  'addr.add': 'RTM_NEWADDR (nodad) + an ifindex lookup the first time',
  'route.add': 'RTM_NEWROUTE',
  'bridge.add': 'RTM_NEWLINK type bridge + alias',
  'nft.apply': 'spawns `nft -f -` with the lab table',
  'container.start': 'runtime: per-node files and cgroups (prepareNode), then one shim supervisor clones and execs every container',
};

const OP_FIX: Partial<Record<PlanOp, string>> = {
  'veth.add': 'send the veth creates back to back (several RTM_NEWLINK in flight; kernel.ts already bounds in-flight requests) instead of awaiting each plan step, and pipeline the alias SETLINKs the same way',
  'netns.add': 'create the namespaces of all nodes in one synchronous loop (unshare + bind mount) and open their netlink sockets in the same window; the kernel part (copy_net_ns, ~0.45 ms each) stays',
  'sysctl.set': 'write the per-namespace disable_ipv6 sysctls in the same setns window as netns.add (one window instead of three per node), or disable IPv6 per link with IFLA_AF_SPEC / IFLA_INET6_ADDR_GEN_MODE in the create message',
  'link.up': 'set IFF_UP on the host end in the veth create message (allowed there; only the peer gives ENOTCONN) and pipeline the node-side SETLINKs',
  'addr.add': 'pipeline the RTM_NEWADDR of all nodes (one per namespace socket, no ordering between them)',
  'route.add': 'pipeline the RTM_NEWROUTE of all nodes',
  'nft.apply': 'keep: one process per lab',
};

function fsNote(r: RunResult): string {
  const f = r.fsCost;
  if (!f) return '';
  return `; the same pattern alone, 100 nodes of 4 recursive mkdirs + 7 small files, takes ${fmtMs(f.beside.createMs)} beside /run/netlab (${f.stateFs})${f.tmpfs ? ` and ${fmtMs(f.tmpfs.createMs)} on a tmpfs` : ''}`;
}

/** Fixes for what the V8 profile names (native time by netlab caller), as of the runtime code
 *  this bench was written against (runtime/container.ts, runtime/image.ts). */
const PROFILE_FIX: { match: RegExp; fix: (ms: number, r: RunResult) => string }[] = [
  {
    match: /busyboxImage|resolveImage|findStaticBusybox/,
    fix: (ms) => `\`checkRuntime()\` (runtime/container.ts) calls \`resolveImage()\` once per node, and \`busyboxImage()\` reads and SHA-256-hashes the whole busybox binary every time (${fmtMs(ms)} of native time in this profile, in the "set-up" row): resolve each distinct image once (\`new Set(lab.nodes.map((n) => n.image))\`) and memoize the hash per process by (path, size, mtime)`,
  },
  {
    match: /prepareNode/,
    fix: (ms, r) => `\`prepareNode()\` makes several directories (recursive mkdirs) and writes several small files per node under /run/netlab (${fmtMs(ms)} of native time here${fsNote(r)}). Fold hosts/hostname/resolv.conf/argv/env into the one spec file (the shim can write the /etc files into the upper layer), make each directory once without \`recursive\`, and/or keep \`/run/netlab/<lab>/containers\` on a tmpfs that netlab mounts itself`,
  },
  {
    match: /createContainerGroups/,
    fix: (ms) => `cgroup creation (${fmtMs(ms)}): on cgroup v1 it is one mkdir per controller hierarchy per node; let the shim create them in the child before exec, in parallel with the other containers`,
  },
];

interface OpRow { op: PlanOp; count: number; ms: number; share: number; perUs: number }

function opRows(m: NetlabResult): OpRow[] {
  const up = m.up.median;
  return (Object.entries(m.opMs) as [PlanOp, Stats][])
    .map(([op, st]) => {
      // Step 1 is counted in "set-up" (its time includes up()'s own start), so one fewer here.
      const count = (m.counts[op] ?? 0) - (op === 'bridge.add' ? 1 : 0);
      return { op, count, ms: st.median, share: st.median / up, perUs: count ? (st.median * 1000) / count : 0 };
    })
    .filter((x) => x.count > 0)
    .sort((a, b) => b.ms - a.ms);
}

function pct(x: number): string {
  return `${Math.round(x * 100)}%`;
}

function profileShares(m: NetlabResult): { total: number; native: number; js: number; ours: number; idle: number } | null {
  const p = m.profile;
  if (!p) return null;
  const total = Object.values(p.categories).reduce((a, b) => a + b, 0) || 1;
  const c = (k: string) => p.categories[k] ?? 0;
  return { total, native: c(CAT.native) / total, js: (c(CAT.ours) + c(CAT.netlink) + c(CAT.node) + c(CAT.gc)) / total, ours: c(CAT.ours) / total, idle: c(CAT.idle) / total };
}

function modeSection(r: RunResult, s: SizeResult, mode: Mode): string {
  const m = s.netlab[mode];
  const ops = opRows(m);
  const out: string[] = [];
  out.push(`### ${MODE_LABEL[mode]}: \`up\` ${fmtMs(m.up.median)}, \`down\` ${fmtMs(m.down.median)}`, '');
  out.push(mdTable(['plan op', 'steps', 'median total', 'per step', 'share of up', 'what it does'], [
    ...ops.map((o) => [o.op, String(o.count), fmtMs(o.ms), `${Math.round(o.perUs)} µs`, pct(o.share), OP_WHAT[o.op] ?? '']),
    ['set-up + step 1', '1', fmtMs(m.pre.median), '', pct(m.pre.median / m.up.median), `lock, state file, Kernel.open, ${mode === 'containers' ? 'checkRuntime (image resolution), ' : ''}buildPlan, the first bridge.add`],
    ['finish', '', fmtMs(m.post.median), '', pct(m.post.median / m.up.median), 'final state write (the model as JSON), sockets closed, unlock'],
  ]), '');
  const user = m.upUser.median;
  const sys = m.upSys.median;
  out.push(`CPU of the netlab process during \`up\` (median): user ${fmtMs(user)}, sys ${fmtMs(sys)}, wall ${fmtMs(m.up.median)}${mode === 'containers' ? ' (the shim and the containers are other processes: their CPU is not in these numbers)' : ''}.`, '');
  const p = m.profile;
  if (p) {
    const cats = Object.entries(p.categories).filter(([, v]) => v > 0);
    const total = cats.reduce((a, [, v]) => a + v, 0);
    out.push(`V8 profile of one more \`up()\` (${fmtMs(p.totalMs)} under the profiler, ${p.sampleCount} samples at 100 µs), self time by category, then native time by the netlab functions that made the call:`, '');
    out.push(mdTable(['category', 'ms', 'share'], cats.map(([k, v]) => [k, v.toFixed(1), pct(v / total)])), '');
    out.push(mdTable(['caller -> native call', 'ms'], p.nativeByCaller.slice(0, 10).map((x) => [`\`${x.caller}\``, x.ms.toFixed(1)])), '');
  }
  if (m.downBreakdown) {
    out.push(`\`down\` (median ${fmtMs(m.down.median)}; CPU user ${fmtMs(m.downUser.median)}, sys ${fmtMs(m.downSys.median)}), its calls re-enacted one by one (3 runs, median per call):`, '');
    out.push(mdTable(['call', 'ms'], Object.entries(m.downBreakdown).map(([k, v]) => [k, v.toFixed(1)])), '');
  }
  return out.join('\n');
}

function whereTheTimeGoes(r: RunResult): string {
  const s = r.sizes.find((x) => x.n === r.options.profileSize) ?? r.sizes[0];
  if (!s) return '';
  const out: string[] = [];
  out.push(`## Where the time goes (star ${s.n})`, '');
  out.push(`Measured in the same run, for both ways of calling \`up\`: each plan step's wall time from \`up()\`'s progress callback (it fires after every step; medians over ${s.netlab.bare.raw.length} runs), the process's CPU time (user: JavaScript, ours and the libraries'; sys: the kernel working inside our syscalls, e.g. rtnetlink requests run in the sender's \`sendmsg\`), a V8 CPU profile of one more \`up()\` (native = time inside calls into C++/the kernel, idle = the event loop waiting for a reply or another process), and \`down()\`'s teardown re-enacted call by call with the same functions.`, '');

  // The prose, from the numbers.
  const c = s.netlab.containers;
  const b = s.netlab.bare;
  const cOps = opRows(c);
  const bOps = opRows(b);
  const bp = profileShares(b);
  const cp = profileShares(c);
  const floor = s.floor;
  const cs = cOps.find((o) => o.op === 'container.start');
  const para: string[] = [];
  para.push(`**Bare namespaces.** \`up\` runs ${b.steps} plan steps in ${fmtMs(b.up.median)} (${fmtMs(b.up.median / s.n)} per node): ${bOps.slice(0, 3).map((o) => `\`${o.op}\` ${pct(o.share)} (${o.count} × ${Math.round(o.perUs)} µs)`).join(', ')}.`);
  if (bp) para.push(`The profile puts ${pct(bp.native)} of it in native calls (the kernel creating namespaces and veths, enslaving ports, /proc/sys writes, the nft spawn) and ${pct(bp.js)} in JavaScript, of which netlab's own code is ${pct(bp.ours)}. ${bp.native >= 0.6 ? '**The kernel dominates; our code is a small share.**' : '**Our code is a large share.**'}`);
  if (floor) para.push(`The \`ip -batch\` floor builds the same star in ${fmtMs(floor.best.buildStats.median)} (variant \`${floor.best.build.split(' + ')[0]}\`): netlab is ${(b.up.median / floor.best.buildStats.median).toFixed(2)}x the floor${b.up.median <= floor.best.buildStats.median ? ', faster because the floor needs one `ip` process per namespace (batch mode cannot switch namespaces) while netlab keeps one socket per namespace in one process' : ''}.`);
  out.push(para.join(' '), '');
  const para2: string[] = [];
  para2.push(`**Containers (what \`netlab up\` does).** \`up\` takes ${fmtMs(c.up.median)}, ${(c.up.median / b.up.median).toFixed(1)}x the bare build.`);
  if (cs) para2.push(`\`container.start\` alone is ${fmtMs(cs.ms)} (${pct(cs.share)}) and the set-up row ${fmtMs(c.pre.median)} (bare: ${fmtMs(b.pre.median)}); the kernel work of the lab itself is the same as above.`);
  if (cp && c.profile) {
    const top = c.profile.nativeByCaller.slice(0, 4).map((x) => `\`${x.caller}\` ${fmtMs(x.ms)}`).join(', ');
    para2.push(`In the profile, the largest native calls are ${top}; idle (waiting for the shim to start the containers, a separate process) is ${pct(cp.idle)}. So with containers **the runtime's per-node file-system work and the container starts dominate**, not netlink.`);
  }
  out.push(para2.join(' '), '');
  const downPara: string[] = [];
  for (const mode of MODES) {
    const m = s.netlab[mode];
    if (!m.downBreakdown) continue;
    const e = Object.entries(m.downBreakdown).sort((x, y) => y[1] - x[1]);
    downPara.push(`\`down\` (${mode === 'bare' ? 'bare' : 'containers'}) ${fmtMs(m.down.median)}: mostly ${e.slice(0, 2).map(([k, v]) => `${k.replace(/ \(.*\)$/, '')} (${fmtMs(v)})`).join(' and ')}.`);
  }
  if (downPara.length) out.push(downPara.join(' ') + ' The group delete unregisters all of the lab\'s host-side interfaces (and their peers) in one kernel batch; the namespaces themselves are freed by the kernel in the background after the unmounts.', '');

  // Misses and fixes.
  const t = targetsOf(r);
  const missed = t.filter((x) => x.status === 'MISS');
  const measured = t.some((x) => x.status !== 'n/a');
  out.push(!measured ? `Targets not measured (N=${TARGET_N} is not among the sizes). The largest costs and how to cut them:` : missed.length > 0
    ? `**Missed: ${missed.map((x) => `${x.name} (${x.measured})`).join('; ')}.** Measured causes and concrete fixes (controller/runtime code, which the bench does not change):`
    : '**All targets pass.** The largest remaining costs and how to cut them, if ever needed:', '');
  const fixes: string[] = [];
  if (c.profile) {
    for (const f of PROFILE_FIX) {
      const ms = c.profile.nativeByCaller.filter((x) => f.match.test(x.caller)).reduce((a, x) => a + x.ms, 0);
      if (ms >= 5) fixes.push(`- ${f.fix(ms, r)}.`);
    }
    if (cs && cp) fixes.push(`- The shim (runtime/shim.c, \`supervise\`) starts the containers one after another: it clones one, then blocks on its close-on-exec pipe until that child has exec'd, and only then clones the next. That wait is the idle time of the profile (${pct(cp.idle)} of the profiled \`up\`, ~${fmtMs((c.profile!.categories[CAT.idle] ?? 0) / s.n)} per container: mounts of the overlay, /proc, /sys, /dev, pivot_root, exec). Clone every child first and then read their pipes (${r.machine.nproc} cores here), writing the pid files afterwards.`);
  }
  // down's share matters when its own target or the up+down comparison with Mininet is missed.
  const downMiss = missed.some((x) => x.name.startsWith('[containers]') && (x.name.includes(' down (') || x.name.includes('up+down')));
  if (c.downBreakdown && downMiss) {
    const stop = Object.entries(c.downBreakdown).find(([k]) => k.startsWith('stopContainers'));
    const after = Object.entries(c.downBreakdown).find(([k]) => k.startsWith('removeState'));
    if (stop) fixes.push(`- \`down\`: \`stopContainers\` takes ${fmtMs(stop[1])} (signals, polling /proc until every container has exited, rmdir of each node's cgroups).`);
    const f = r.fsCost;
    if (after && after[1] >= 50) fixes.push(`- \`down\`: removing the state directory takes ${fmtMs(after[1])} (\`rm -r\` of every container's files${f ? `; the 100-node pattern's \`rm -r\` alone: ${fmtMs(f.beside.rmMs)} beside /run/netlab${f.tmpfs ? `, ${fmtMs(f.tmpfs.rmMs)} on a tmpfs` : ''}` : ''}): keep the containers' directories on a tmpfs, or rename the directory to a trash name under the lock and delete it after \`down\` returns.`);
  }
  for (const o of bOps.filter((x) => OP_FIX[x.op]).slice(0, 2)) fixes.push(`- Bare-namespace part, \`${o.op}\` (${pct(o.share)} of its up): ${OP_FIX[o.op]}.`);
  out.push(fixes.join('\n'), '');

  for (const mode of MODES) out.push(modeSection(r, s, mode));
  return out.join('\n');
}

// ---------------------------------------------------------------- outputs

function machineLine(r: RunResult): string {
  const m = r.machine;
  return `${m.cpuModel}, ${m.nproc} CPUs, ${(m.memoryMiB / 1024).toFixed(1)} GiB, ${m.os}, kernel ${m.kernel.replace(/^Linux /, '')}, Node ${m.node}, iproute2 ${m.iproute2}, Mininet ${m.mininet ?? 'not installed'}; /run/netlab on ${m.stateFs}`;
}

export function renderMarkdown(r: RunResult, resultsFile: string): string {
  const head = ['', ...r.sizes.map((s) => `N=${s.n}`)];
  const t = targetsOf(r);
  const busy = Math.max(...r.sizes.flatMap((s) => MODES.map((m) => s.netlab[m].busyBeforeMax)));
  const o: string[] = [];
  o.push('# Performance', '');
  o.push(`<!-- Generated by \`npm run bench\` (bench/run.ts). Do not edit: the next run rewrites this file. -->`, '');
  o.push(`Run of ${r.date} (${r.startedAt.slice(11, 16)} UTC, run id \`${r.runId}\`, \`${r.command}\`), raw numbers in [\`${resultsFile}\`](../${resultsFile}).`, '');
  o.push(`Machine: ${machineLine(r)}.`, '');
  o.push(`Code: commit \`${r.code.commit}\`${r.code.dirty.length ? ` plus uncommitted changes in ${r.code.dirty.length} file(s) outside bench/ (${r.code.dirty.slice(0, 6).map((f) => `\`${f}\``).join(', ')}${r.code.dirty.length > 6 ? ', ...' : ''})` : ', clean work tree'}.`, '');
  o.push('## Scenario and method', '');
  o.push([
    `- **star N**: N nodes on one bridge network whose host side is the gateway (address on the bridge, NAT, a default route in every node), topology text generated by \`bench/star.ts\`.`,
    `- **netlab \`up\`/\`down\`, in-process**: \`controller/lab.ts\` called from a Node process of its own per size and mode (what \`netlab up\` does minus Node start-up and topology loading), ${r.options.reps} runs each; median (min–max). Two modes: **containers**, \`up(lab)\`, a busybox container per node as \`netlab up\` does; and **bare namespaces**, \`up(lab, { containers: false })\`, the same kernel objects without processes (what the floor builds). Peak RSS is that process's VmHWM (\`process.resourceUsage().maxRSS\`).`,
    `- **CLI end to end**: \`node bin/netlab.js up FILE\` then \`node bin/netlab.js down LAB\` (containers), once per size, wall time of each process. For scale: \`node -e 0\` takes ${fmtStats(r.nodeStartup.nodeEmptyMs)} and \`node bin/netlab.js --version\` ${fmtStats(r.nodeStartup.cliVersionMs)} here.`,
    `- **\`ip -batch\` floor**: the same namespaces, veths (peer made in its namespace), bridge, gateway address, node addresses, links up and default routes, no processes, from generated batch files (\`bench/floor.ts\`). iproute2 6.1's batch mode has no per-line \`-n\`, so each namespace's part needs one \`ip -n NS -batch\` process; three ways are measured (\`seq\`: one shell, one \`ip\` per namespace; \`exec\`: \`netns exec NS ip -batch\` lines inside the root batch; \`par2\`: two parallel lanes) and the fastest is the floor. IPv6 is silenced with \`addrgenmode none\` (netlab uses disable_ipv6 sysctls). Teardown: \`link del group G\` + \`netns del\` in one batch (as netlab does), or \`link del BRIDGE\` + \`netns del\`. No nft table (netlab's costs ~${fmtMs(r.sizes[0]?.netlab.bare.opMs['nft.apply']?.median)}, one spawn).`,
    `- **Mininet**: \`mn --switch lxbr --controller none --topo single,N --test build\` (Linux bridge, no Open vSwitch; a shell process per host, build + teardown), wall time of the whole command (Python start-up included), ${r.options.mnReps} runs. It compares best with netlab's containers mode (a process per node) and with up + down.`,
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
  o.push('"gone after": time from the end of the teardown command until its links and namespaces are no longer visible, polled with `ip` (netlab bare, polled through netlink: ' + r.sizes.map((s) => `N=${s.n} +${fmtMs(s.netlab.bare.settle.median)}`).join(', ') + ').', '');
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
    'Everything the bench creates carries the run id and is removed in `finally`; a snapshot of namespaces, links, nft tables, netlab state, mounts, cgroups and processes taken at the start is compared with one at the end, and anything of the run still there fails it.',
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
    for (const mode of MODES) {
      const m = s.netlab[mode];
      lines.push('', `where the time goes in up, N=${s.n}, ${mode} (median ms per op type):`);
      for (const o of opRows(m)) lines.push(`  ${o.op.padEnd(15)} ${String(o.count).padStart(5)} x ${String(Math.round(o.perUs)).padStart(6)} us = ${o.ms.toFixed(1).padStart(7)} ms  ${pct(o.share)}`);
      lines.push(`  ${'set-up+step 1'.padEnd(15)} ${m.pre.median.toFixed(1).padStart(26)} ms  ${pct(m.pre.median / m.up.median)}`);
      if (m.profile) {
        lines.push('  profile (self time):');
        for (const [k, v] of Object.entries(m.profile.categories)) if (v > 0) lines.push(`    ${v.toFixed(1).padStart(7)} ms  ${k}`);
        lines.push('  native time by caller:');
        for (const x of m.profile.nativeByCaller.slice(0, 6)) lines.push(`    ${x.ms.toFixed(1).padStart(7)} ms  ${x.caller}`);
      }
    }
  }
  if (r.error) lines.push('', `ERROR: ${r.error.split('\n')[0]}`);
  lines.push('');
  return lines.join('\n');
}
