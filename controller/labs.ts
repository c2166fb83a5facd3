// What the controller's modules share about labs on this machine: the user-facing LabError, the
// root check, and finding a lab's objects from its markers alone (netns names, link names and
// aliases), with or without a state file.
import { labOfNetns, NAME_PREFIX, ALIAS_PREFIX } from '../topology/names.js';
import { NetlabError } from '../topology/errors.js';
import { Kernel, type LinkInfo } from './kernel/index.js';
import { listStateLabs } from './state.js';

/** A failure to show the user as is (one line), with the exit code. */
export class LabError extends NetlabError {
  constructor(message: string, exitCode = 1) {
    super(message, { exitCode });
  }
}

export function requireRoot(command: string): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new LabError(`netlab ${command} needs root: it changes network namespaces, links and nftables (validate, plan and graph do not)`);
  }
}

/** Names of netns that belong to a lab (node and simulated host namespaces). */
export function labNetns(k: Kernel, lab: string): string[] {
  return k.netnsList().filter((n) => labOfNetns(n) === lab);
}

/** Labs that exist on this machine: with state, or with namespaces carrying the marker. */
export async function knownLabs(k?: Kernel): Promise<string[]> {
  const names = new Set(listStateLabs());
  const own = k ?? await Kernel.open();
  try {
    for (const n of own.netnsList()) {
      const l = labOfNetns(n);
      if (l) names.add(l);
    }
  } finally {
    if (!k) own.close();
  }
  return [...names].sort();
}

export function isNetlabLink(l: LinkInfo): boolean {
  return l.name.startsWith(NAME_PREFIX) && (l.alias?.startsWith(ALIAS_PREFIX) ?? false);
}
