// Executes a Plan against the kernel interface, step by step in plan order, reporting progress
// per phase and naming the step (node, object, errno) when one fails. Talks only to the
// KernelApi interface below, which controller/kernel/ implements and tests fake.
import * as os from 'node:os';
import { NetlabError } from '../topology/errors.js';
import type { Plan, PlanStep } from './plan.js';
import { kernelRoute } from './routes.js';
import type { QdiscSpec } from './kernel/tc.js';

/** What apply needs from one namespace's handle (a subset of kernel/kernel.ts's NetnsHandle). */
export interface NsApi {
  linkAddBridge(name: string, o: { mtu?: number; alias?: string; group?: number; up?: boolean }): Promise<void>;
  linkAddVeth(name: string, peerName: string, peerNetns: string | null, o: {
    mtu?: number; master?: string; mac?: string; peerMac?: string; alias?: string; peerAlias?: string;
    group?: number; peerGroup?: number; up?: boolean; peerUp?: boolean;
  }): Promise<void>;
  linkAddVxlan(name: string, o: { vni: number; local?: string; dev?: string; port?: number; mtu?: number; master?: string; learning?: boolean; proxy?: boolean; group?: number; alias?: string }): Promise<void>;
  linkSet(name: string, o: { up?: boolean }): Promise<void>;
  addrAdd(dev: string, cidr: string, o?: { nodad?: boolean }): Promise<void>;
  routeAdd(r: { dst: string; via?: string; dev?: string; metric?: number; nexthops?: { via: string; dev?: string }[] }): Promise<void>;
  neighAdd(dev: string, ip: string, mac: string): Promise<void>;
  fdbAppend(dev: string, mac: string, dstIp: string): Promise<void>;
  sysctlSet(key: string, value: string): void;
  qdiscReplace(dev: string, q: QdiscSpec): Promise<void>;
  qdiscDelete(dev: string): Promise<void>;
}

export interface KernelApi {
  netnsAdd(name: string): unknown;
  ns(name: string | null): NsApi;
  nftApply(ruleset: string): void;
  /** `nft -f -` in a named network namespace. */
  nftApplyIn(netns: string, ruleset: string): void;
  /** Accept rules for the lab's interfaces where the host's iptables filter would drop them. */
  iptablesAccept(lab: string): void;
}

/** A step failed: which step, why, and the kernel's own error as the cause. */
export class ApplyError extends NetlabError {
  constructor(readonly step: PlanStep, readonly index: number, cause: unknown) {
    super(`step ${index + 1} (${step.op}: ${step.reason}) failed: ${(cause as Error)?.message ?? String(cause)}`, { cause });
  }

  /** Once the caller's rollback removed everything, the user is told so. */
  rolledBack(): this {
    this.message += ROLLED_BACK;
    return this;
  }
}

/** Stopped by a signal or a closed pipe (`signal` names which); exits as a shell reports a
 *  process that signal ended, 128 + its number (a closed pipe counts as SIGPIPE, 141). */
export class AbortedError extends NetlabError {
  constructor(readonly signal: string) {
    super(`interrupted by ${signal}`, { exitCode: abortExitCode(signal) });
  }

  rolledBack(): this {
    this.message += ROLLED_BACK;
    return this;
  }
}

const ROLLED_BACK = '; everything it made was removed';

function abortExitCode(reason: string): number {
  const n = os.constants.signals[reason as NodeJS.Signals] ?? (/EPIPE|closed/.test(reason) ? os.constants.signals.SIGPIPE : os.constants.signals.SIGINT);
  return 128 + n;
}

export interface ApplyHooks {
  /** Called after each step with the count done. */
  progress?: (done: number, total: number, step: PlanStep) => void;
  /** Checked before each step: return a signal name to stop (the caller rolls back). */
  aborted?: () => string | null;
  /** Runs a run of consecutive container.start steps at once (the runtime starts a lab's
   *  containers under one supervisor); absent: such steps are an error. */
  startContainers?: (steps: Extract<PlanStep, { op: 'container.start' }>[]) => Promise<void>;
}

async function runStep(k: KernelApi, s: PlanStep, hooks: ApplyHooks): Promise<void> {
  switch (s.op) {
    case 'netns.add':
      k.netnsAdd(s.netns);
      return;
    case 'sysctl.set':
      k.ns(s.netns).sysctlSet(s.key, s.value);
      return;
    case 'bridge.add':
      return k.ns(s.netns).linkAddBridge(s.name, { mtu: s.mtu, alias: s.alias, group: s.group });
    case 'veth.add':
      return k.ns(s.netns).linkAddVeth(s.name, s.peerName, s.peerNetns, {
        mtu: s.mtu, master: s.master ?? undefined, mac: s.mac ?? undefined, peerMac: s.peerMac ?? undefined,
        alias: s.alias, peerAlias: s.peerAlias, group: s.group, peerGroup: s.group,
      });
    case 'vxlan.add':
      return k.ns(s.netns).linkAddVxlan(s.name, { vni: s.vni, local: s.local, dev: s.dev ?? undefined, port: s.port, mtu: s.mtu, master: s.master, learning: false, proxy: true, group: s.group, alias: s.alias });
    case 'addr.add':
      // No duplicate address detection wait: the model already guarantees uniqueness.
      return k.ns(s.netns).addrAdd(s.dev, s.address, { nodad: true });
    case 'link.up':
      return k.ns(s.netns).linkSet(s.dev, { up: true });
    case 'route.add':
      return k.ns(s.netns).routeAdd(kernelRoute(s));
    case 'fdb.append':
      return k.ns(s.netns).fdbAppend(s.dev, s.mac, s.dst);
    case 'neigh.add':
      return k.ns(s.netns).neighAdd(s.dev, s.ip, s.mac);
    case 'nft.apply':
      k.nftApply(s.ruleset);
      return;
    case 'qdisc.set':
      return k.ns(s.netns).qdiscReplace(s.dev, s.qdisc);
    case 'qdisc.clear':
      return k.ns(s.netns).qdiscDelete(s.dev);
    case 'nft.netns':
      k.nftApplyIn(s.netns, s.ruleset);
      return;
    case 'iptables.accept':
      k.iptablesAccept(s.lab);
      return;
    case 'container.start':
      // applyPlan hands runs of these to hooks.startContainers; here only without a runtime.
      throw new Error('no container runtime available');
    default: {
      // Every op of PlanStep is handled above: a new one fails to compile here until it is.
      const unhandled: never = s;
      throw new Error(`unknown plan step ${(unhandled as PlanStep).op}`);
    }
  }
}

/** Applies the plan's steps in order; throws ApplyError or AbortedError, leaving rollback to the caller. */
export async function applyPlan(plan: Plan, k: KernelApi, hooks: ApplyHooks = {}): Promise<void> {
  const total = plan.steps.length;
  for (let i = 0; i < total; i++) {
    const sig = hooks.aborted?.();
    if (sig) throw new AbortedError(sig);
    const s = plan.steps[i];
    if (s.op === 'container.start' && hooks.startContainers) {
      let j = i;
      while (j < total && plan.steps[j].op === 'container.start') j++;
      const batch = plan.steps.slice(i, j) as Extract<PlanStep, { op: 'container.start' }>[];
      try {
        await hooks.startContainers(batch);
      } catch (e) {
        throw new ApplyError(s, i, e);
      }
      for (let k2 = i; k2 < j; k2++) hooks.progress?.(k2 + 1, total, plan.steps[k2]);
      i = j - 1;
      continue;
    }
    try {
      await runStep(k, s, hooks);
    } catch (e) {
      throw new ApplyError(s, i, e);
    }
    hooks.progress?.(i + 1, total, s);
  }
}
