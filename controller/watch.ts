// Change notifications of the labs on this machine, from the kernel and the file system, never
// from polling (the web view's live source uses them):
//  - netlink link notifications (RTNLGRP_LINK) from every namespace of every lab of interest,
//    and from the machine's own namespace filtered by the lab's IFLA_GROUP (controller/kernel/
//    monitor.ts); a monitor's socket pins its namespace, so it is closed as soon as the
//    namespace's file leaves /run/netns;
//  - inotify (fs.watch) on the state root (labs appearing and disappearing), on each lab's
//    folder (state.json rewritten: status, links set down), on each container's folder (its
//    `pid` and `exit` files: started, exited) and on /run/netns (namespaces made and deleted).
// Only the labs someone is looking at (setInterest) are monitored at the netlink and container
// level, so a page open on one lab never holds another lab's namespaces. This module owns the
// Kernel it opens for that, so callers above controller/ never touch the kernel module.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ensureTmpfs, releaseTmpfs, Kernel, type LinkEvent, type LinkMonitor } from './kernel/index.js';
import { knownLabs } from './lab.js';
import { holdStateRoot, labDir, listStateLabs, releaseStateRoot, STATE_ROOT, STATE_ROOT_IS_DEFAULT } from './state.js';
import { containersDir } from '../runtime/container.js';
import { labGroup, labOfNetns } from '../topology/names.js';

const NETNS_DIR = '/run/netns';

/** Something about the list of labs changed, or about one lab. */
export type WatchEvent = { type: 'labs' } | { type: 'lab'; lab: string };

export interface LabWatcherOptions {
  /** Read the kernel and watch netlink (default: when running as root). */
  kernel?: boolean;
  /** A lab that has no state file but is shown anyway (a topology file's, while not up): its
   *  host-side links are attributed to it by group. */
  extraLab?: string | null;
}

export class LabWatcher {
  private readonly listeners = new Set<(e: WatchEvent) => void>();
  private readonly watchers = new Map<string, fs.FSWatcher>();
  private readonly monitors = new Map<string | null, LinkMonitor>();
  private groups = new Map<number, string>();
  private interest = new Set<string>();
  private closed = false;

  private unhold: () => void = () => {};

  private constructor(private readonly extraLab: string | null, private readonly k: Kernel | null) {}

  static async open(o: LabWatcherOptions = {}): Promise<LabWatcher> {
    const useKernel = o.kernel ?? (process.getuid?.() === 0);
    // Kernel.open also starts the libuv pool in this namespace, before any setns window.
    const kernel = useKernel ? await Kernel.open() : null;
    // `up` mounts a tmpfs over an empty state folder that is not on one; done later, it would
    // hide the folder this watcher watches (inotify sees the covered directory), so as root it
    // is done first, exactly as `up` would.
    let unhold = () => {};
    if (kernel) {
      try { if (STATE_ROOT_IS_DEFAULT) ensureTmpfs(STATE_ROOT); } catch { /* then `up` tries, as usual */ }
      // While this watcher watches the folder, `down` of the last lab must not unmount it.
      unhold = holdStateRoot();
    }
    const w = new LabWatcher(o.extraLab ?? null, kernel);
    w.unhold = unhold;
    w.start();
    return w;
  }

  /** Whether the kernel is read and watched (root), or only the state files. */
  get kernel(): boolean {
    return this.k !== null;
  }

  /** Labs with a state file or a namespace on this machine. */
  async knownLabs(): Promise<string[]> {
    return this.k ? knownLabs(this.k) : listStateLabs();
  }

  /** The labs whose IFLA_GROUP marks host-side links as theirs (the ones shown). */
  setLabs(names: Iterable<string>): void {
    this.groups = new Map([...names].map((n) => [labGroup(n), n]));
  }

  subscribe(listener: (e: WatchEvent) => void): () => void {
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

  /** The namespaces monitored and the folders watched, for diagnostics. */
  info(): { monitors: string[]; watches: string[] } {
    return {
      monitors: [...this.monitors.keys()].map((n) => n ?? 'host').sort(),
      watches: [...this.watchers.keys()].sort(),
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
    for (const m of this.monitors.values()) m.close();
    this.monitors.clear();
    this.k?.close();
    this.listeners.clear();
    this.unhold();
    if (this.k) releaseStateRoot(releaseTmpfs);
  }

  // ---------------------------------------------------------------- watching

  private emit(e: WatchEvent): void {
    if (this.closed) return;
    for (const l of this.listeners) l(e);
  }

  private refreshGroups(): void {
    const names = new Set(listStateLabs());
    if (this.extraLab) names.add(this.extraLab);
    this.setLabs(names);
  }

  private start(): void {
    this.refreshGroups();
    this.watchTop(STATE_ROOT, (name) => this.onStateRoot(name));
    for (const lab of listStateLabs()) this.watchLab(lab);
    if (this.k) this.watchTop(NETNS_DIR, (name) => this.onNetns(name));
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
    if (!this.k) return;
    const present = new Set(this.k.netnsList().filter((n) => labOfNetns(n) === lab));
    for (const n of [...this.monitors.keys()]) if (n !== null && labOfNetns(n) === lab && !present.has(n)) this.detach(n);
    if (!this.interest.has(lab)) return;
    for (const n of present) this.attach(n);
  }

  private attach(netns: string | null): void {
    if (!this.k || this.closed || this.monitors.has(netns)) return;
    try {
      this.monitors.set(netns, this.k.monitorLinks(netns, (e) => this.onLink(e)));
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
