// The `host` image: the host's own filesystem, read-only, with private writable /tmp and /run, a
// private writable layer over /etc (the generated hosts, hostname and resolv.conf go there) and
// the account files kept read-only (a container must not even appear to change them). The idle
// command is bound in at /run/netlab-pause: netlab's checkout may lie under the private /tmp.
import { PAUSE_PATH } from './busybox.js';
import type { ImageSpec } from './types.js';

const PAUSE_IN_HOST_IMAGE = '/run/netlab-pause';

export function hostSpec(ref: string): ImageSpec {
  return {
    ref,
    digest: null,
    root: [
      { kind: 'bind-root', source: '/' },
      { kind: 'tmpfs', target: '/tmp', mode: '1777' },
      { kind: 'tmpfs', target: '/run', mode: '755' },
      { kind: 'bind-ro', source: PAUSE_PATH, target: PAUSE_IN_HOST_IMAGE },
      { kind: 'overlay-dir', target: '/etc' },
      ...['/etc/passwd', '/etc/shadow', '/etc/group', '/etc/gshadow'].map((f) => ({ kind: 'bind-ro' as const, source: f, target: f })),
    ],
    etcInUpper: '',
    config: { entrypoint: [], cmd: [PAUSE_IN_HOST_IMAGE], env: {}, workingDir: null, user: null, exposedPorts: [], stopSignal: null },
  };
}
