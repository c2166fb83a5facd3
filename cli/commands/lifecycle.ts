// up, down, status and cleanup: bringing labs into the kernel and out of it, and reading back
// what is there.
import type { Lab } from '../../topology/types.js';
import { nodesBuilt, type Plan } from '../../controller/plan.js';
import { cleanup as cleanupAll, down as downLab, requireRoot, status as statusOf, up as upLab, type LabStatusReport } from '../../controller/lab.js';
import { envForUp, holdClaims, releaseClaims } from '../../controller/conflicts.js';
import { describeState } from '../../runtime/container.js';
import { UserError } from '../errors.js';
import { fmtMs, type Io } from '../io.js';
import { makeProgress } from '../progress.js';
import { labNameOf, loadLab, validateAs } from '../target.js';

export interface UpOptions { check?: boolean; as?: string; pull?: 'missing' | 'always' | 'never'; json?: boolean }

export async function up(io: Io, file: string, opts: UpOptions): Promise<void> {
  // The claim lock is held from reading the running labs (automatic subnets avoid theirs)
  // until up() has recorded this lab's state: two labs brought up at the same moment never
  // get the same automatic subnet.
  requireRoot('up');
  holdClaims();
  let lab: Lab;
  let upJson: Record<string, unknown> = {};
  try {
    lab = loadLab(file, envForUp(opts.as));
    validateAs(lab, opts.as); // an unknown host is a usage error, before anything else
    // Images first, as a phase of its own, before any kernel object: a pull may take minutes,
    // so the claim lock is not held through it (the file is read again after, as other labs
    // may have come up meanwhile).
    let used = new Set(nodesBuilt(lab, opts.as).map((n) => n.image));
    // Images the file declares (`images:`) are built, never pulled: their own phase, first.
    const recipes = (lab.images ?? []).filter((i) => used.has(i.ref));
    if (recipes.length > 0) {
      const [{ ensureBuilt, needsBuild }, { buildProgress }] = await Promise.all([import('../../runtime/images/build.js'), import('./image.js')]);
      if (needsBuild(recipes)) {
        releaseClaims();
        await ensureBuilt(recipes, { events: buildProgress(io, process.stderr.isTTY === true) });
        holdClaims();
        lab = loadLab(file, envForUp(opts.as));
        used = new Set(nodesBuilt(lab, opts.as).map((n) => n.image));
      }
    }
    const builtRefs = new Set((lab.images ?? []).map((i) => i.ref));
    const wanted = [...used].filter((i) => !builtRefs.has(i));
    if (wanted.some((i) => i !== 'busybox' && i !== 'host')) {
      const [{ ensureImages, needsPull }, { pullProgress }] = await Promise.all([import('../../runtime/images/pull.js'), import('../pull-progress.js')]);
      if (needsPull(wanted, opts.pull ?? 'missing')) {
        releaseClaims();
        await ensureImages(wanted, opts.pull ?? 'missing', { events: pullProgress(io, process.stderr.isTTY === true) });
        holdClaims();
        lab = loadLab(file, envForUp(opts.as));
      }
    }
    const progress = makeProgress(io, process.stderr.isTTY === true);
    const built = nodesBuilt(lab, opts.as);
    const model = lab;
    // The report is part of `up`: a signal or a closed pipe until it is written rolls back.
    // One write, so a reader that takes only the first line (`| head -1`) still gets all of
    // it in the pipe and the lab stays up.
    const report = (plan: Plan, ms: number) => {
      progress.done();
      if (opts.json) {
        // With --check, the checks' report joins it as one document at the end.
        upJson = {
          lab: model.name, status: 'up', ...(opts.as !== undefined ? { as: opts.as } : {}), steps: plan.steps.length, ms: Math.round(ms),
          nodes: built.map((n) => ({ name: n.name, networkMode: n.networkMode, interfaces: n.interfaces.map((f) => ({ name: f.name, address: f.ipv4 ? `${f.ipv4.address}/${f.ipv4.prefixLen}` : null })) })),
        };
        if (!opts.check) io.out(JSON.stringify(upJson, null, 2) + '\n');
        return;
      }
      let text = opts.as !== undefined
        ? `lab ${model.name} is up as host ${opts.as}: ${built.length} of ${model.nodes.length} nodes (${plan.steps.length} steps in ${fmtMs(ms)})\n`
        : `lab ${model.name} is up: ${model.nodes.length} nodes, ${model.networks.length} networks, ${model.links.length} links (${plan.steps.length} steps in ${fmtMs(ms)})\n`;
      for (const n of built) {
        const addrs = n.interfaces.map((f) => `${f.name} ${f.ipv4 ? `${f.ipv4.address}/${f.ipv4.prefixLen}` : '-'}`).join(', ');
        text += `  ${n.name.padEnd(16)} ${n.networkMode === 'bridge' ? (addrs || 'no interfaces') : `network_mode ${n.networkMode}`}\n`;
      }
      io.out(text);
    };
    await upLab(lab, { progress: progress.update, report, ...(io.closed ? { signal: io.closed } : {}), ...(opts.as !== undefined ? { as: opts.as } : {}) });
  } finally {
    releaseClaims();
  }
  if (opts.check) {
    const { localChecks } = await import('./check.js');
    const [{ formatTable }, { runChecks }] = await Promise.all([import('../../checks/format.js'), import('../../checks/run.js')]);
    const r = await runChecks(lab, localChecks(lab, lab.checks, opts.as ?? null, io), 'checks');
    if (opts.json) io.out(JSON.stringify({ ...upJson, checks: r }, null, 2) + '\n');
    else io.out(formatTable(r));
    if (r.failed > 0) throw new UserError('', 1);
  }
}

export async function down(io: Io, arg: string, opts: { as?: string; json?: boolean }): Promise<void> {
  const name = labNameOf(arg);
  const r = await downLab(name, opts.as !== undefined ? { as: opts.as } : {});
  if (opts.json) {
    io.out(JSON.stringify({ ...r, status: 'down', ms: Math.round(r.ms) }, null, 2) + '\n');
    if (r.cgroupsLeft.length) io.err(`netlab: could not remove cgroups: ${r.cgroupsLeft.join(', ')}\n`);
    return;
  }
  const ipt = r.iptablesRules ? `, ${r.iptablesRules} iptables rules` : '';
  const what = r.netns.length || r.rootLinks || r.nftTable || r.iptablesRules ? `removed ${r.netns.length} namespaces${r.rootLinks ? ', its links' : ''}${r.nftTable ? `, nft table ${r.nftTable}` : ''}${ipt}` : 'nothing was up';
  io.out(`lab ${name}${r.as ? ` (host ${r.as})` : ''} is down: ${what} (${fmtMs(r.ms)})\n`);
  for (const [node, exit] of Object.entries(r.exits)) io.out(`  ${node.padEnd(16)} ${exit}\n`);
  if (r.cgroupsLeft.length) io.err(`netlab: could not remove cgroups: ${r.cgroupsLeft.join(', ')}\n`);
}

export async function status(io: Io, arg: string | undefined, opts: { json?: boolean }): Promise<void> {
  const labs = await statusOf(arg ? labNameOf(arg) : undefined);
  if (opts.json) { io.out(JSON.stringify(labs, null, 2) + '\n'); return; }
  if (labs.length === 0) { io.out('no labs are up\n'); return; }
  for (const l of labs) {
    io.out(`lab ${l.lab}: ${describeLab(l)}${l.as ? ` as host ${l.as}` : ''}${l.file ? ` (${l.file})` : ''}\n`);
    if (l.error) io.out(`  error: ${l.error}\n`);
    for (const n of l.nodes) {
      const ctr = describeState(n.container) + (n.image && n.image.image !== 'busybox' ? `, ${n.image.image}${n.image.exposedPorts.length ? ` exposes ${n.image.exposedPorts.join(' ')}` : ''}` : '');
      if (n.error) { io.out(`  ${n.name.padEnd(16)} ${ctr}; ${n.error}\n`); continue; }
      if (!n.present) { io.out(`  ${n.name.padEnd(16)} ${ctr}; namespace ${n.netns} missing\n`); continue; }
      if (n.netns === null) { io.out(`  ${n.name.padEnd(16)} ${ctr}; host network\n`); continue; }
      const ifs = n.interfaces.filter((f) => f.name !== 'lo').map((f) => `${f.name}${f.up ? (f.operUp ? '' : ' (no carrier)') : ' DOWN'}${f.addresses.length ? ' ' + f.addresses.join(' ') : ''}${f.impairment ? ` [${f.impairment}]` : ''}`);
      io.out(`  ${n.name.padEnd(16)} ${ctr}; ${ifs.join(', ') || 'loopback only'}\n`);
    }
    io.out(formatHosts(l));
  }
}

export async function cleanup(io: Io): Promise<void> {
  const r = await cleanupAll();
  if (r.labs.length === 0 && r.strayLinks.length === 0 && r.strayTables.length === 0) { io.out('nothing to clean up\n'); return; }
  for (const l of r.labs) io.out(`lab ${l.lab}: removed ${l.netns.length} namespaces${l.netns.length ? ` (${l.netns.join(', ')})` : ''}${l.rootLinks ? ', its links' : ''}${l.nftTable ? `, nft table ${l.nftTable}` : ''}\n`);
  if (r.strayLinks.length) io.out(`stray links: ${r.strayLinks.join(', ')}\n`);
  if (r.strayTables.length) io.out(`stray nft tables: ${r.strayTables.join(', ')}\n`);
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
