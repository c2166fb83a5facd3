// Image providers (runtime/images/): what each gives the runtime, without building anything.
import { describe, expect, it } from 'vitest';
import { ImageError, resolveImage } from '../../runtime/images/index.js';
import { hostSpec } from '../../runtime/images/host.js';

describe('image providers', () => {
  it('host: the host root read-only, private /tmp and /run, a writable layer over /etc, account files read-only, the idle command bound in', () => {
    const s = hostSpec('host');
    expect(s.root[0]).toEqual({ kind: 'bind-root', source: '/' });
    expect(s.root.filter((m) => m.kind === 'tmpfs').map((m) => (m as { target: string }).target)).toEqual(['/tmp', '/run']);
    expect(s.root).toContainEqual({ kind: 'overlay-dir', target: '/etc' });
    expect(s.root).toContainEqual({ kind: 'bind-ro', source: '/etc/shadow', target: '/etc/shadow' });
    // The pause binary is bound after /run's tmpfs (which would hide it) and is the default command.
    const pause = s.root.findIndex((m) => m.kind === 'bind-ro' && m.target === s.config.cmd[0]);
    expect(pause).toBeGreaterThan(s.root.findIndex((m) => m.kind === 'tmpfs' && m.target === '/run'));
    expect(s.etcInUpper).toBe('');
  });
  it('an OCI image not in the store is one clear error that says how to get it', () => {
    expect(() => resolveImage('alpine:3')).toThrow(ImageError);
    expect(() => resolveImage('alpine:3')).toThrow(/^image alpine:3 \(docker\.io\/library\/alpine:3\) is not in the image store: `netlab up` pulls it \(unless --pull never\), or run `netlab image pull alpine:3`$/);
  });
  it('an invalid reference is refused before the store is looked at', () => {
    expect(() => resolveImage('Alpine:3')).toThrow(/invalid image reference "Alpine:3"/);
  });
});
