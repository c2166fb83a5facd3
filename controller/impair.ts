// `netlab impair`: a running lab's cable gets new impairments (or none): both ends of a link, or
// a node's interface on a network (both directions), re-planned with the same steps `up` uses
// (plan.ts impairSteps: qdiscs, and the node's nft loss table on a kernel without netem) and
// applied at once; recorded in the state (modelOf applies it), so status, checks and the web
// view see the lab as it now runs.
import type { Impairment } from '../topology/types.js';
import { Kernel, netemAvailable, nftApply, nftApplyIn } from './kernel/index.js';
import { applyPlan, type KernelApi } from './apply.js';
import { hostLossSteps, impairSteps, nodesBuilt, type PlanStep } from './plan.js';
import { lockLab, modelOf, readState, writeState } from './state.js';
import { LabError, requireRoot } from './labs.js';

export interface ImpairResult {
  /** "NODE:IFACE" of every interface that changed. */
  interfaces: string[];
  /** How each one is done: the qdiscs and nft tables written. */
  steps: string[];
}

/** Sets (impair) or clears (null) the impairment of the cable at NODE:IFACE. */
export async function setImpairment(labName: string, node: string, iface: string, impair: Impairment | null): Promise<ImpairResult> {
  requireRoot('impair');
  const release = lockLab(labName);
  try {
    const st = readState(labName);
    if (!st || st.status !== 'up') throw new LabError(`lab ${labName} is not up`);
    // A copy: modelOf gives the state's own model when nothing was changed at run time yet,
    // and that one must stay as `up` resolved it.
    const lab = structuredClone(modelOf(st));
    const nd = lab.nodes.find((n) => n.name === node);
    if (!nd) throw new LabError(`lab ${labName} has no node ${node} (nodes: ${lab.nodes.map((n) => n.name).join(', ')})`);
    const f = nd.interfaces.find((i) => i.name === iface);
    if (!f || !nd.netns) throw new LabError(`node ${node} has no interface ${iface} (interfaces: ${nd.interfaces.map((i) => i.name).join(', ') || 'none'})`);
    if (st.as && nd.host !== st.as) throw new LabError(`node ${node} is on host ${nd.host ?? 'none'}, not on this machine (host ${st.as}); run this on that host's machine`);
    // Both ends of a link carry it (each end's egress is one direction).
    const ends = [{ node: nd, iface: f }];
    if (f.peer) {
      const pn = lab.nodes.find((n) => n.name === f.peer!.node)!;
      ends.push({ node: pn, iface: pn.interfaces.find((i) => i.name === f.peer!.iface)! });
    }
    const changed: Record<string, Impairment | null> = {};
    for (const e of ends) {
      if (impair) e.iface.impair = impair;
      else delete e.iface.impair;
      changed[`${e.node.name}:${e.iface.name}`] = impair;
    }
    const netem = netemAvailable();
    const steps: PlanStep[] = [];
    for (const e of ends) for (const s of impairSteps(lab, e.node, netem, st.as ?? null, true)) steps.push({ phase: 'interfaces', ...s });
    if (f.kind === 'network') for (const s of hostLossSteps(lab, nodesBuilt(lab, st.as), netem, st.as ?? null, true)) steps.push({ phase: 'interfaces', ...s });
    const kernel = await Kernel.open();
    try {
      const api: KernelApi = { netnsAdd: () => { throw new Error('impair makes no namespace'); }, ns: (n) => kernel.ns(n), nftApply, nftApplyIn, iptablesAccept: () => {} };
      await applyPlan({ lab: lab.name, id: lab.id, group: lab.group, steps, counts: {} }, api);
    } finally {
      kernel.close();
    }
    st.impairments = { ...st.impairments, ...changed };
    writeState(st);
    return { interfaces: Object.keys(changed), steps: steps.map((s) => `${s.op} ${'dev' in s ? s.dev : ''} ${s.reason}`.replace(/ +/g, ' ')) };
  } finally {
    release();
  }
}
