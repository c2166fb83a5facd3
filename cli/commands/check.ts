// check: the lab's connectivity checks, ad hoc ones or the full matrix, run in the lab and
// compared with the model's prediction (or the prediction alone, without root).
import * as fs from 'node:fs';
import type { Lab, LabCheck } from '../../topology/types.js';
import { nodesBuilt } from '../../controller/plan.js';
import { LabError, requireRoot } from '../../controller/lab.js';
import { modelOf, readState } from '../../controller/state.js';
import { hostSysctlGet } from '../../controller/kernel/sysctl.js';
import { KernelError } from '../../controller/kernel/errors.js';
import { adHocCheck, markDegraded, matrixChecks, runChecks, withContainerStates } from '../../checks/run.js';
import { formatMatrix, formatMatrixSummary, formatTable, toJUnit } from '../../checks/format.js';
import { UserError } from '../errors.js';
import type { Io } from '../io.js';
import { loadLab, targetOf } from '../target.js';

export interface CheckOptions {
  matrix?: boolean; summary?: boolean; predictOnly?: boolean; explain?: boolean; json?: boolean; junit?: string; timeout: number;
  /** Seconds: the wait of every check that has none of its own. */
  wait?: number;
  ping?: string[]; tcp?: string[]; http?: string[]; dns?: string[]; throughput?: string[]; expect?: 'reach' | 'fail';
}

export async function check(io: Io, arg: string, opts: CheckOptions): Promise<void> {
  const lab = checkModel(arg, !!opts.predictOnly, io);
  const adHoc: LabCheck[] = [];
  for (const kind of ['ping', 'tcp', 'http', 'dns', 'throughput'] as const) {
    for (const spec of opts[kind] ?? []) {
      try { adHoc.push(adHocCheck(lab, kind, spec, adHoc.length, opts.expect ?? null)); } catch (e) { throw new UserError((e as Error).message, 2); }
    }
  }
  const as = opts.predictOnly ? null : readState(lab.name)?.as ?? null;
  const checks = withWait(localChecks(lab, opts.matrix ? matrixChecks(lab, opts.timeout) : adHoc.length > 0 ? adHoc : lab.checks, as, io), opts.wait);
  if (opts.matrix && !opts.predictOnly) {
    // Every pair needs a neighbour entry, and the kernel's ARP table is one for all namespaces.
    // Only the initial namespace has the (machine-wide) thresholds: run in another one
    // (nsenter --net), there is nothing to read and no warning to give.
    let limit = Infinity;
    try { limit = Number(hostSysctlGet('net.ipv4.neigh.default.gc_thresh3')); } catch (e) { if (!(e instanceof KernelError && e.errno === 'ENOENT')) throw e; }
    if (checks.length > limit) io.err(`netlab: warning: the matrix needs ${checks.length} neighbour (ARP) entries but the kernel keeps at most ${limit} for the whole machine (net.ipv4.neigh.default.gc_thresh3); pairs may fail for that alone: raise it with sysctl -w net.ipv4.neigh.default.gc_thresh3=${2 ** Math.ceil(Math.log2(checks.length * 2))}\n`);
  }
  if (checks.length === 0) throw new UserError(`lab ${lab.name} has no checks; add a checks: section, use --matrix, or give --ping/--tcp/--http/--dns/--throughput`);
  const r = await runChecks(lab, checks, opts.matrix ? 'matrix' : 'checks', { predictOnly: opts.predictOnly });
  // A running lab with cables set down or impairments set at run time: checks that pass only
  // because of that are degraded (exit 3), so a pulled cable never looks green.
  const st = opts.predictOnly ? null : readState(lab.name);
  if (st && st.status === 'up' && (Object.keys(st.cables ?? {}).length > 0 || Object.keys(st.impairments ?? {}).length > 0 || lab.nodes.some((n) => n.exited))) markDegraded(r, checks, st.model);
  if (opts.junit) fs.writeFileSync(opts.junit, toJUnit(r));
  if (opts.json) io.out(JSON.stringify(r, null, 2) + '\n');
  else if (opts.matrix && opts.summary) io.out(formatMatrixSummary(r));
  else if (opts.matrix) io.out(formatMatrix(r, lab.nodes.map((n) => n.name)) + (opts.explain ? formatTable(r, { explain: true }) : ''));
  else io.out(formatTable(r, { explain: opts.explain }));
  if (r.disagreements > 0 && !opts.json) await explainDisagreements(io, lab, as);
  if (r.failed > 0) throw new UserError('', 1);
  if ((r.degraded ?? 0) > 0) throw new UserError('', 3);
}

/** Where the kernel and the model disagree: the routers whose kernel routes differ from the
 *  predicted ones (read back over netlink), the first few, one line each. */
async function explainDisagreements(io: Io, lab: Lab, as: string | null): Promise<void> {
  const { readRoutes } = await import('../../controller/routes.js');
  const { compareLab, differenceText } = await import('../../checks/routes.js');
  const differ = compareLab(lab, await readRoutes(lab, undefined, as)).filter((x) => !x.same);
  if (differ.length === 0) { io.err('netlab: every node\'s kernel routes are the predicted ones: the disagreement lies elsewhere (a firewall, a listener, a cable set down behind netlab\'s back)\n'); return; }
  for (const d of differ.slice(0, 5)) io.err(`netlab: route differs from the prediction: ${differenceText(d)}\n`);
  if (differ.length > 5) io.err(`netlab: ... and ${differ.length - 5} more (netlab routes ${lab.name})\n`);
}

/** `--wait SECONDS`: the wait of the checks that have none of their own (a check's `wait` in the
 *  file wins). */
export function withWait(checks: LabCheck[], seconds: number | undefined): LabCheck[] {
  if (seconds === undefined) return checks;
  const waitMs = Math.max(1, Math.round(seconds * 1000));
  return checks.map((c) => ((c.waitMs ?? null) === null ? { ...c, waitMs } : c));
}

/** With `up --as`, only checks from the nodes on this machine can run here; the others run on
 *  their own hosts' machines. A throughput check needs its receiver here too (it runs in the
 *  target's namespace). */
export function localChecks(lab: Lab, checks: LabCheck[], as: string | null, io: Io): LabCheck[] {
  if (as === null) return checks;
  const built = nodesBuilt(lab, as);
  const here = new Set(built.map((n) => n.name));
  const hasAddress = (a: string) => built.some((n) => n.interfaces.some((f) => f.ipv4?.address === a));
  const kept = checks.filter((c) => here.has(c.from) && (c.kind !== 'throughput' || here.has(c.target) || hasAddress(c.target)));
  if (kept.length < checks.length) {
    const split = checks.filter((c) => here.has(c.from) && !kept.includes(c)).length;
    const away = checks.length - kept.length - split;
    if (away > 0) io.err(`netlab: ${away} of ${checks.length} checks start on other hosts than ${as}; run them there\n`);
    if (split > 0) io.err(`netlab: ${split} of ${checks.length} checks are throughput checks whose receiver is not on ${as}: both ends must be on one machine; run them there\n`);
  }
  return kept;
}

/** The model checks run against: the running lab's (it records links set down), else the file's
 *  (prediction only). */
function checkModel(arg: string, predictOnly: boolean, io: Io): Lab {
  const target = targetOf(arg);
  const st = readState(target.name);
  if (st?.status === 'up') {
    if (!predictOnly) requireRoot('check');
    const running = withContainerStates(modelOf(st));
    if (target.kind !== 'file') return running;
    // `check FILE` on a running lab: the file's checks (an edited file's new ones), against the
    // lab as it runs; said when the file describes another lab than the one that is up.
    const file = loadLab(target.file);
    // What the file says, not what IPAM picked (automatic subnets go around the labs up).
    const shape = (l: Lab) => JSON.stringify({
      nodes: l.nodes.map((n) => [n.name, n.image, n.command, n.networkMode, n.host, n.interfaces.map((f) => [f.name, f.network, f.peer])]),
      networks: l.networks.map((n) => [n.name, n.driver]), links: l.links.map((x) => [x.a.node, x.a.iface, x.b.node, x.b.iface]), hosts: l.hosts.map((h) => h.name),
    });
    const missing = file.checks.find((c) => !running.nodes.some((n) => n.name === c.from));
    if (missing) throw new UserError(`check "${missing.label}" of ${target.file} starts from node ${missing.from}, which lab ${target.name} as it is up does not have: bring the edited file up first (netlab down ${target.name}, then up)`);
    if (shape(file) !== shape(st.model)) io.err(`netlab: ${target.file} differs from lab ${target.name} as it is up (nodes, networks or links changed since \`up\`): its checks run against the lab as it runs; \`netlab down ${target.name}\` and \`up\` again to build the file's\n`);
    return { ...running, checks: file.checks };
  }
  if (!predictOnly) throw new LabError(`lab ${target.name} is not up; bring it up first, or use --predict-only${target.kind === 'file' ? '' : ' with the topology file'}`);
  if (target.kind !== 'file') throw new UserError(`lab ${target.name} is not up: give its topology file to predict`);
  return loadLab(target.file);
}
