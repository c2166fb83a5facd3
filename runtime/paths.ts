// Where netlab keeps a machine's runtime data: one directory per lab under /run/netlab (or
// NETLAB_STATE_DIR). Defined here, at the runtime's layer, so the runtime (a lab's containers
// live in <lab>/containers) and the controller above it (the lab's state file, its lock) agree on
// one place without the runtime importing the controller.
import * as path from 'node:path';

export const STATE_ROOT = process.env.NETLAB_STATE_DIR || '/run/netlab';
/** A NETLAB_STATE_DIR the user set is used as it is; only the default gets netlab's tmpfs. */
export const STATE_ROOT_IS_DEFAULT = !process.env.NETLAB_STATE_DIR;

export function labDir(lab: string): string {
  return path.join(STATE_ROOT, lab);
}
