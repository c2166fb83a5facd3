// What the web server needs from the machine, as one interface: the labs, a lab's model and
// view, running checks, setting a link up or down, a node's usage counters, and change
// notifications. The real one
// (live.ts) reads state files and the kernel; tests inject a fake, so the API is tested
// without root.
import type { Impairment, Lab } from '../../topology/types.js';
import type { CheckReport } from '../../checks/run.js';
import type { NodeReading } from '../../controller/stats.js';
import type { LabSummary, WebGraph } from './types.js';
import { NetlabError } from '../../topology/errors.js';

/** Something about the machine changed: the set of labs, or one lab (its model, kernel links,
 *  container processes). The server debounces and re-reads. */
export type SourceEvent = { type: 'labs' } | { type: 'lab'; lab: string };

/** A failure the API reports with an HTTP status (404 unknown, 409 not up / busy...). */
export class SourceError extends NetlabError {
  constructor(message: string, readonly status: number) {
    super(message);
  }
}

export interface LabSource {
  /** Every lab there is to show, sorted by name. */
  labs(): Promise<LabSummary[]>;
  /** The lab's view (live when it is up), or null when there is no such lab. */
  graph(lab: string): Promise<WebGraph | null>;
  /** The lab's model (the running lab's state when up, else its topology file's), or null. */
  model(lab: string): Promise<{ lab: Lab; live: boolean } | null>;
  /** Runs the lab's declared checks, or the all-pairs ping matrix; predicts only when the lab
   *  is not up. */
  runChecks(lab: string, matrix: boolean): Promise<CheckReport>;
  /** Sets a cable down or up (both ends), as `netlab link`. */
  setLink(lab: string, node: string, iface: string, up: boolean): Promise<void>;
  /** Sets (or, with null, clears) the impairment of the cable at node:iface in a running lab
   *  (both directions), as `netlab impair`; resolves to the interfaces changed ("r1:eth1"). */
  setImpairment(lab: string, node: string, iface: string, impair: Impairment | null): Promise<string[]>;
  /** One reading of a node's counters (CPU time, memory, pids, traffic), as `netlab stats`
   *  reads them; null when the lab has no such node built on this machine. Throws a
   *  SourceError 409 when the lab is not up. */
  readStats(lab: string, node: string): Promise<NodeReading | null>;
  /** The labs someone is looking at: only those need kernel and container notifications
   *  ('labs' events come regardless). */
  setInterest(labs: Iterable<string>): void;
  /** Calls `listener` on every change; returns the unsubscribe function. */
  subscribe(listener: (e: SourceEvent) => void): () => void;
  /** Diagnostics for GET /api/health (e.g. the namespaces monitored). */
  info(): Record<string, unknown>;
  close(): Promise<void>;
}
