// The real data source of the web view: labs from the state files under /run/netlab (and the
// netlab.* namespaces), each lab's view merged from its model and the kernel (controller/lab.ts
// status()), checks and link up/down through the controller. Change notifications come from
// controller/watch.ts (netlink link monitors and inotify watches, never polling); only the
// labs someone is looking at (setInterest) are monitored at the netlink and container level.
import { LabError, setImpairment as controllerSetImpairment, setLink as controllerSetLink, status as controllerStatus } from '../../controller/lab.js';
import { LockBusyError, modelOf, readState } from '../../controller/state.js';
import { matrixChecks, runChecks, type CheckReport } from '../../checks/run.js';
import { LabWatcher } from '../../controller/watch.js';
import { readStats as controllerReadStats, type NodeReading } from '../../controller/stats.js';
import type { Impairment, Lab } from '../../topology/types.js';
import { NetlabError } from '../../topology/errors.js';
import { SourceError, type LabSource, type SourceEvent } from './source.js';
import { predictedMatrixReport } from './predict.js';
import type { LabSummary, WebGraph } from './types.js';
import { labView } from './view.js';

export interface LiveSourceOptions {
  /** A topology file's lab to show (drawn from the model while it is not up). */
  offline?: Lab | null;
  /** Read the kernel and watch netlink (default: when running as root). */
  kernel?: boolean;
}

export class LiveSource implements LabSource {
  private readonly listeners = new Set<(e: SourceEvent) => void>();
  private closed = false;

  private constructor(private readonly offline: Lab | null, private readonly watch: LabWatcher) {
    watch.subscribe((e) => this.emit(e));
  }

  static async create(o: LiveSourceOptions = {}): Promise<LiveSource> {
    const offline = o.offline ?? null;
    const watch = await LabWatcher.open({ kernel: o.kernel, extraLab: offline?.name ?? null });
    return new LiveSource(offline, watch);
  }

  // ---------------------------------------------------------------- LabSource

  async labs(): Promise<LabSummary[]> {
    const names = new Set(await this.watch.knownLabs());
    if (this.offline) names.add(this.offline.name);
    const out: LabSummary[] = [];
    for (const name of [...names].sort()) {
      const st = readState(name);
      if (st) out.push({ name, status: st.status, live: st.status === 'up', file: st.file, nodes: st.model.nodes.length });
      else if (this.offline?.name === name) out.push({ name, status: 'offline', live: false, file: this.offline.file, nodes: this.offline.nodes.length });
    }
    this.watch.setLabs(out.map((l) => l.name));
    return out;
  }

  async graph(lab: string): Promise<WebGraph | null> {
    const st = readState(lab);
    if (st) {
      let report = null;
      if (this.watch.kernel && st.status !== 'deleting') {
        try {
          report = (await controllerStatus(lab))[0] ?? null;
        } catch {
          // Namespaces coming or going under us (up/down running): draw the model; the event
          // that follows their change reads the kernel again.
          report = null;
        }
      }
      return labView(modelOf(st), report, st.status);
    }
    if (this.offline?.name === lab) return labView(this.offline, null, 'offline');
    return null;
  }

  async model(lab: string): Promise<{ lab: Lab; live: boolean } | null> {
    const st = readState(lab);
    if (st) return { lab: modelOf(st), live: st.status === 'up' };
    if (this.offline?.name === lab) return { lab: this.offline, live: false };
    return null;
  }

  async runChecks(lab: string, matrix: boolean): Promise<CheckReport> {
    const m = await this.model(lab);
    if (!m) throw new SourceError(`no lab ${lab}`, 404);
    // Observing needs root (probes run in the lab's namespaces) and a running lab.
    const predictOnly = !m.live || !this.watch.kernel;
    if (matrix && predictOnly) return predictedMatrixReport(m.lab);
    const checks = matrix ? matrixChecks(m.lab) : m.lab.checks;
    return runChecks(m.lab, checks, matrix ? 'matrix' : 'checks', { predictOnly });
  }

  async setLink(lab: string, node: string, iface: string, up: boolean): Promise<void> {
    try {
      await controllerSetLink(lab, node, iface, up);
    } catch (e) {
      if (e instanceof LockBusyError) throw new SourceError(e.message, 409);
      if (e instanceof LabError) {
        const m = e.message;
        throw new SourceError(m, /needs root/.test(m) ? 403 : /has no (node|interface)/.test(m) ? 404 : 409);
      }
      throw e;
    }
  }

  async setImpairment(lab: string, node: string, iface: string, impair: Impairment | null): Promise<string[]> {
    try {
      return (await controllerSetImpairment(lab, node, iface, impair)).interfaces;
    } catch (e) {
      if (e instanceof LockBusyError) throw new SourceError(firstLine(e.message), 409);
      if (e instanceof LabError) {
        const m = firstLine(e.message);
        throw new SourceError(m, /needs root/.test(m) ? 403 : /has no (node|interface)/.test(m) ? 404 : 409);
      }
      // What this kernel cannot do (sch_netem missing: nothing was built or changed), or a
      // kernel refusal while applying: the lab as it is cannot take it.
      if (e instanceof NetlabError) throw new SourceError(firstLine(e.message), 409);
      throw e;
    }
  }

  async readStats(lab: string, node: string): Promise<NodeReading | null> {
    try {
      return (await controllerReadStats(lab, undefined, node))[0]?.nodes[0] ?? null;
    } catch (e) {
      if (e instanceof LabError) {
        const m = firstLine(e.message);
        throw new SourceError(m, /needs root/.test(m) ? 403 : 409);
      }
      throw e;
    }
  }

  subscribe(listener: (e: SourceEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  setInterest(labs: Iterable<string>): void {
    this.watch.setInterest(labs);
  }

  info(): Record<string, unknown> {
    return { kernel: this.watch.kernel, ...this.watch.info() };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.watch.close();
    this.listeners.clear();
  }

  private emit(e: SourceEvent): void {
    if (this.closed) return;
    for (const l of this.listeners) l(e);
  }
}

const firstLine = (m: string): string => m.split('\n')[0];
