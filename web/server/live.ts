// The real data source of the web view: labs from the state files under /run/netlab (and the
// netlab.* namespaces), each lab's view merged from its model and the kernel (controller/lab.ts
// status()), checks and link up/down through the controller. Change notifications come from
// the kernel and the file system, never from polling:
//  - netlink link notifications (RTNLGRP_LINK) from every namespace of every lab, and from the
//    machine's own namespace filtered by the lab's IFLA_GROUP (controller/kernel.ts
//    monitorLinks); a monitor's socket pins its namespace, so it is closed as soon as the
//    namespace's file leaves /run/netns;
//  - inotify (fs.watch) on /run/netlab (labs appearing and disappearing), on each lab's folder
//    (state.json rewritten: status, links set down), on each container's folder (its `pid` and
//    `exit` files: started, exited) and on /run/netns (namespaces made and deleted).
// Only the labs someone is looking at (setInterest) are monitored at the netlink and container
// level, so a page open on one lab never holds another lab's namespaces.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ensureTmpfs, releaseTmpfs, Kernel, type LinkEvent, type LinkMonitor } from '../../controller/kernel/index.js';
import { knownLabs, LabError, setLink as controllerSetLink, status as controllerStatus } from '../../controller/lab.js';
import { holdStateRoot, labDir, listStateLabs, LockBusyError, readState, releaseStateRoot, STATE_ROOT, STATE_ROOT_IS_DEFAULT } from '../../controller/state.js';
import { matrixChecks, runChecks, type CheckReport } from '../../controller/checks.js';
import { containersDir } from '../../runtime/container.js';
import { labGroup, labOfNetns } from '../../topology/names.js';
import type { Lab } from '../../topology/types.js';
import { SourceError, type LabSource, type SourceEvent } from './source.js';
import { predictedMatrixReport } from './predict.js';
import type { LabSummary, WebGraph } from './types.js';
import { labView } from './view.js';

const NETNS_DIR = '/run/netns';

export interface LiveSourceOptions {
  /** A topology file's lab to show (drawn from the model while it is not up). */
  offline?: Lab | null;
  /** Read the kernel and watch netlink (default: when running as root). */
  kernel?: boolean;
}

export class LiveSource implements LabSource {
  private readonly listeners = new Set<(e: SourceEvent) => void>();
  private readonly watchers = new Map<string, fs.FSWatcher>();
  private readonly monitors = new Map<string | null, LinkMonitor>();
  private groups = new Map<number, string>();
  private interest = new Set<string>();
  private closed = false;

  private unhold: () => void = () => {};

  private constructor(private readonly offline: Lab | null, private readonly kernel: Kernel | null) {}

  static async create(o: LiveSourceOptions = {}): Promise<LiveSource> {
    const useKernel = o.kernel ?? (process.getuid?.() === 0);
    // Kernel.open also starts the libuv pool in this namespace, before any setns window.
    const kernel = useKernel ? await Kernel.open() : null;
    // `up` mounts a tmpfs over an empty state folder that is not on one; done later, it would
    // hide the folder this source watches (inotify sees the covered directory), so as root it
    // is done first, exactly as `up` would.
    let unhold = () => {};
    if (kernel) {
      try { if (STATE_ROOT_IS_DEFAULT) ensureTmpfs(STATE_ROOT); } catch { /* then `up` tries, as usual */ }
      // While this source watches the folder, `down` of the last lab must not unmount it.
      unhold = holdStateRoot();
    }
    const s = new LiveSource(o.offline ?? null, kernel);
    s.unhold = unhold;
    s.start();
    return s;
  }

  // ---------------------------------------------------------------- LabSource

  async labs(): Promise<LabSummary[]> {
    const names = new Set(this.kernel ? await knownLabs(this.kernel) : listStateLabs());
    if (this.offline) names.add(this.offline.name);
    const out: LabSummary[] = [];
    for (const name of [...names].sort()) {
      const st = readState(name);
      if (st) out.push({ name, status: st.status, live: st.status === 'up', file: st.file, nodes: st.model.nodes.length });
      else if (this.offline?.name === name) out.push({ name, status: 'offline', live: false, file: this.offline.file, nodes: this.offline.nodes.length });
    }
    this.groups = new Map(out.map((l) => [labGroup(l.name), l.name]));
    return out;
  }

  async graph(lab: string): Promise<WebGraph | null> {
    const st = readState(lab);
    if (st) {
      let report = null;
      if (this.kernel && st.status !== 'deleting') {
        try {
          report = (await controllerStatus(lab))[0] ?? null;
        } catch {
          // Namespaces coming or going under us (up/down running): draw the model; the event
          // that follows their change reads the kernel again.
          report = null;
        }
      }
      return labView(st.model, report, st.status);
    }
    if (this.offline?.name === lab) return labView(this.offline, null, 'offline');
    return null;
  }

  async model(lab: string): Promise<{ lab: Lab; live: boolean } | null> {
    const st = readState(lab);
    if (st) return { lab: st.model, live: st.status === 'up' };
    if (this.offline?.name === lab) return { lab: this.offline, live: false };
    return null;
  }

  async runChecks(lab: string, matrix: boolean): Promise<CheckReport> {
    const m = await this.model(lab);
    if (!m) throw new SourceError(`no lab ${lab}`, 404);
    // Observing needs root (probes run in the lab's namespaces) and a running lab.
    const predictOnly = !m.live || !this.kernel;
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

  subscribe(listener: (e: SourceEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  setInterest(labs: Iterable<string>): void {
    const next = new Set(labs);
    for (const lab of this.interest) {
      if (next.has(lab)) continue;
      for (const n of [...this.monitors.keys()]) if (n !== null && labOfNetns(n) === lab) this.detach(n);
      const dir = containersDir(lab);
      for (const d of [...this.watchers.keys()]) if (d === dir || d.startsWith(dir + path.sep)) this.unwatch(d);
    }
    const added = [...next].filter((l) => !this.interest.has(l));
    this.interest = next;
    if (next.size === 0) {
      this.monitors.get(null)?.close();
      this.monitors.delete(null);
      return;
    }
    this.attach(null);
    for (const lab of added) {
      this.watchContainers(lab);
      this.reconcileMonitors(lab);
    }
  }

  info(): Record<string, unknown> {
    return {
      kernel: this.kernel !== null,
      monitors: [...this.monitors.keys()].map((n) => n ?? 'host').sort(),
      watches: [...this.watchers.keys()].sort(),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
    for (const m of this.monitors.values()) m.close();
    this.monitors.clear();
    this.kernel?.close();
    this.listeners.clear();
    this.unhold();
    if (this.kernel) releaseStateRoot(releaseTmpfs);
  }

  // ---------------------------------------------------------------- watching

  private emit(e: SourceEvent): void {
    if (this.closed) return;
    for (const l of this.listeners) l(e);
  }

  private refreshGroups(): void {
    const names = new Set(listStateLabs());
    if (this.offline) names.add(this.offline.name);
    this.groups = new Map([...names].map((n) => [labGroup(n), n]));
  }

  private start(): void {
    this.refreshGroups();
    this.watchTop(STATE_ROOT, (name) => this.onStateRoot(name));
    for (const lab of listStateLabs()) this.watchLab(lab);
    if (this.kernel) this.watchTop(NETNS_DIR, (name) => this.onNetns(name));
  }

  /** Watches a top-level folder; while it does not exist, watches its parent for it. */
  private watchTop(dir: string, onName: (name: string) => void): void {
    if (this.watch(dir, onName)) return;
    const parent = path.dirname(dir);
    this.watch(parent, (name) => {
      if (name !== path.basename(dir) || !fs.existsSync(dir) || this.watchers.has(dir)) return;
      this.unwatch(parent);
      this.watchTop(dir, onName);
      for (const n of safeReaddir(dir)) onName(n);
    });
  }

  /** fs.watch of one folder; false when it does not exist (or cannot be watched). */
  private watch(dir: string, onName: (name: string) => void): boolean {
    if (this.closed) return false;
    if (this.watchers.has(dir)) return true;
    let w: fs.FSWatcher;
    try {
      w = fs.watch(dir, { persistent: false }, (_event, filename) => {
        if (filename) onName(filename.toString());
      });
    } catch {
      return false;
    }
    w.on('error', () => this.unwatch(dir)); // the folder went away
    this.watchers.set(dir, w);
    return true;
  }

  private unwatch(dir: string): void {
    this.watchers.get(dir)?.close();
    this.watchers.delete(dir);
  }

  private onStateRoot(name: string): void {
    if (fs.existsSync(labDir(name))) this.watchLab(name);
    else this.unwatchLab(name);
    this.refreshGroups();
    this.emit({ type: 'labs' });
    this.emit({ type: 'lab', lab: name });
  }

  private watchLab(lab: string): void {
    const ok = this.watch(labDir(lab), (name) => {
      if (name === 'state.json') {
        this.emit({ type: 'labs' });
        this.emit({ type: 'lab', lab });
        this.reconcileMonitors(lab);
      } else if (name === 'containers') {
        this.watchContainers(lab);
      }
    });
    if (ok) this.watchContainers(lab);
  }

  private watchContainers(lab: string): void {
    if (!this.interest.has(lab)) return;
    const dir = containersDir(lab);
    const ok = this.watch(dir, (node) => {
      if (fs.existsSync(path.join(dir, node))) this.watchNode(lab, node);
      this.emit({ type: 'lab', lab });
    });
    if (!ok) return;
    for (const node of safeReaddir(dir)) this.watchNode(lab, node);
  }

  private watchNode(lab: string, node: string): void {
    const dir = path.join(containersDir(lab), node);
    try { if (!fs.statSync(dir).isDirectory()) return; } catch { return; }
    this.watch(dir, (name) => {
      if (name === 'exit' || name === 'pid') this.emit({ type: 'lab', lab });
    });
  }

  private unwatchLab(lab: string): void {
    const dir = labDir(lab);
    for (const d of [...this.watchers.keys()]) if (d === dir || d.startsWith(dir + path.sep)) this.unwatch(d);
  }

  private onNetns(name: string): void {
    const lab = labOfNetns(name);
    if (!lab) return;
    if (!fs.existsSync(path.join(NETNS_DIR, name))) this.detach(name);
    else if (this.interest.has(lab)) this.attach(name);
    this.emit({ type: 'lab', lab });
  }

  /** Monitors the namespaces of a lab that exist and are not monitored yet, and stops
   *  monitoring those that are gone (a namespace's file is made before it is mounted, so the
   *  first try can fail; the state file's next write brings us here again). */
  private reconcileMonitors(lab: string): void {
    if (!this.kernel) return;
    const present = new Set(this.kernel.netnsList().filter((n) => labOfNetns(n) === lab));
    for (const n of [...this.monitors.keys()]) if (n !== null && labOfNetns(n) === lab && !present.has(n)) this.detach(n);
    if (!this.interest.has(lab)) return;
    for (const n of present) this.attach(n);
  }

  private attach(netns: string | null): void {
    if (!this.kernel || this.closed || this.monitors.has(netns)) return;
    try {
      this.monitors.set(netns, this.kernel.monitorLinks(netns, (e) => this.onLink(e)));
    } catch {
      // Not a namespace (yet): its file exists before the bind mount.
    }
  }

  private detach(netns: string): void {
    this.monitors.get(netns)?.close();
    this.monitors.delete(netns);
  }

  private onLink(e: LinkEvent): void {
    if (e.netns !== null) {
      const lab = labOfNetns(e.netns);
      if (lab) this.emit({ type: 'lab', lab });
      return;
    }
    // The machine's namespace: bridges and host-side veth ends carry their lab's group.
    if (e.type === 'lost') {
      for (const lab of new Set(this.groups.values())) this.emit({ type: 'lab', lab });
      return;
    }
    const lab = this.groups.get(e.link.group);
    if (lab) this.emit({ type: 'lab', lab });
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}
