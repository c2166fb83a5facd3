// A container's user resolved in the image's own account files (runtime/images/user.ts), as
// Docker resolves it: names, numbers, groups, supplementary groups, HOME; the topmost layer that
// has a file wins, a symlinked /etc/passwd is followed inside the image.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readImageFile, resolveUser, shimUser } from '../../runtime/images/user.js';
import type { ImageSpec } from '../../runtime/images/types.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-user-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function layer(name: string, files: Record<string, string>): string {
  const dir = path.join(tmp, name);
  for (const [f, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    if (text.startsWith('->')) fs.symlinkSync(text.slice(2), path.join(dir, f));
    else fs.writeFileSync(path.join(dir, f), text);
  }
  return dir;
}

const spec = (layers: string[]): ImageSpec => ({
  ref: 'test', digest: null, root: [{ kind: 'overlay-root', layers }], etcInUpper: 'etc',
  config: { entrypoint: [], cmd: ['x'], env: {}, workingDir: null, user: null, exposedPorts: [], stopSignal: null },
});

const bottom = layer('bottom', {
  'etc/passwd': 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n# comment\nbroken line\n',
  'etc/group': 'root:x:0:\napp:x:1000:\nstaff:x:50:app,other\nwheel:x:10:other\n',
});
const top = layer('top', { 'etc/passwd': 'root:x:0:0:root:/root:/bin/sh\nsvc:x:200:300:svc:/srv:/bin/false\n' });
const linked = layer('linked', { 'etc/passwd': '->/usr/lib/passwd', 'usr/lib/passwd': 'root:x:0:0::/:/bin/sh\nlinked:x:7:7::/l:/bin/sh\n' });

describe('resolveUser', () => {
  const img = spec([bottom]);
  it('a name gives its uid, primary gid, the groups that list it, and its home', () => {
    const u = resolveUser(img, 'app', 'node n');
    expect(u).toEqual({ uid: 1000, gid: 1000, groups: [50], home: '/home/app' });
    expect(shimUser(u)).toBe('1000:1000:50');
  });
  it('name:group, uid:gid and the mixed forms', () => {
    expect(resolveUser(img, 'app:wheel', 'n')).toMatchObject({ uid: 1000, gid: 10, groups: [50] });
    expect(resolveUser(img, '1000:5', 'n')).toMatchObject({ uid: 1000, gid: 5, groups: [50] });
    expect(resolveUser(img, '0:staff', 'n')).toMatchObject({ uid: 0, gid: 50, groups: [] });
    expect(shimUser(resolveUser(img, 'root', 'n'))).toBe('0:0');
  });
  it('a uid the image does not list is used as it is, with gid 0 and no home, as Docker does', () => {
    expect(resolveUser(img, '4242', 'n')).toEqual({ uid: 4242, gid: 0, groups: [], home: null });
  });
  it('unknown names and malformed users are one-line errors naming the node', () => {
    expect(() => resolveUser(img, 'nobody-here', 'node n (image x)')).toThrow("node n (image x): user nobody-here is not in the image's /etc/passwd");
    expect(() => resolveUser(img, 'app:nogroup', 'node n')).toThrow("node n: group nogroup is not in the image's /etc/group");
    expect(() => resolveUser(img, 'a:b:c', 'node n')).toThrow(/expected USER, UID, USER:GROUP or UID:GID/);
    expect(() => resolveUser(img, ':5', 'node n')).toThrow(/expected USER/);
    expect(() => resolveUser(spec([path.join(tmp, 'empty')]), 'app', 'node n')).toThrow(/\(the image has none\)/);
  });
  it('the topmost layer with the file wins (overlay order: top first)', () => {
    const both = spec([top, bottom]);
    expect(() => resolveUser(both, 'app', 'n')).toThrow(/user app is not/);
    expect(resolveUser(both, 'svc', 'n')).toMatchObject({ uid: 200, gid: 300, home: '/srv' });
    // /etc/group comes from the bottom layer: the top one has none.
    expect(readImageFile(both, '/etc/group')).toContain('staff:x:50');
  });
  it('a symlinked /etc/passwd is followed inside the image, never on the host', () => {
    expect(resolveUser(spec([linked]), 'linked', 'n')).toMatchObject({ uid: 7, gid: 7 });
    const escape = layer('escape', { 'etc/passwd': '->../../../../../../etc/shadow' });
    // Resolved against the image root: /etc/shadow of the image, which it does not have.
    expect(readImageFile(spec([escape]), '/etc/passwd')).toBeNull();
  });
});
