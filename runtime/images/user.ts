// A container's user, resolved the way Docker (runc's libcontainer/user) does, in the image's
// own /etc/passwd and /etc/group, before anything is built: `name`, `uid`, `name:group`,
// `uid:gid` and the mixed forms; a name the image does not know is an error at `up`, not a
// container that dies at start. The shim gets numbers only (uid:gid:supplementary groups).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ImageSpec } from './types.js';
import { lgetxattr } from './fsops.js';
import { NetlabError } from '../../topology/errors.js';

export class UserError extends NetlabError {}

export interface ResolvedUser {
  uid: number;
  gid: number;
  groups: number[];
  /** The account's home directory (HOME when the image sets none), null when unknown. */
  home: string | null;
}

const MAX_LINKS = 8;

/** A file of the image's root as a container would see it (the topmost layer that has it; a
 *  whiteout or an opaque directory above hides the lower ones), or null. */
export function readImageFile(spec: ImageSpec, file: string, depth = 0): string | null {
  const rel = path.posix.normalize(file).replace(/^\/+/, '');
  const roots = spec.root.flatMap((m) => (m.kind === 'overlay-root' ? m.layers : m.kind === 'bind-root' ? [m.source] : []));
  const parts = rel.split('/');
  const layerCount = roots.length;
  for (const layer of roots) {
    let opaque = false;
    // A whiteout (char device 0/0) of the file or of any parent ends the search: it is deleted.
    let hidden = false;
    for (let i = 1; i <= parts.length; i++) {
      const st = fs.lstatSync(path.join(layer, ...parts.slice(0, i)), { throwIfNoEntry: false });
      if (!st) break;
      if (st.isCharacterDevice() && st.rdev === 0) { hidden = true; break; }
      if (i === parts.length) {
        if (st.isSymbolicLink() && depth < MAX_LINKS) {
          const target = fs.readlinkSync(path.join(layer, rel));
          return readImageFile(spec, target.startsWith('/') ? target : path.posix.join(path.posix.dirname(`/${rel}`), target), depth + 1);
        }
        return st.isFile() ? fs.readFileSync(path.join(layer, rel), 'utf8') : null;
      }
      if (!st.isDirectory()) break;
      // An opaque directory (overlayfs: trusted.overlay.opaque=y) hides what lower layers have under it.
      if (layerCount > 1 && lgetxattr(path.join(layer, ...parts.slice(0, i)), 'trusted.overlay.opaque')?.toString() === 'y') opaque = true;
    }
    if (hidden || opaque) return null;
  }
  return null;
}

interface Passwd { name: string; uid: number; gid: number; home: string }
interface Group { name: string; gid: number; members: string[] }

function parsePasswd(text: string | null): Passwd[] {
  return (text ?? '').split('\n').flatMap((l) => {
    const f = l.split(':');
    if (f.length < 4 || l.startsWith('#') || !/^\d+$/.test(f[2]) || !/^\d+$/.test(f[3])) return [];
    return [{ name: f[0], uid: Number(f[2]), gid: Number(f[3]), home: f[5] ?? '' }];
  });
}

function parseGroup(text: string | null): Group[] {
  return (text ?? '').split('\n').flatMap((l) => {
    const f = l.split(':');
    if (f.length < 3 || l.startsWith('#') || !/^\d+$/.test(f[2])) return [];
    return [{ name: f[0], gid: Number(f[2]), members: (f[3] ?? '').split(',').filter(Boolean) }];
  });
}

const ID_MAX = 2 ** 31 - 1;

/** Resolves USER (as written in the topology or the image config) in the image's account files. */
export function resolveUser(spec: ImageSpec, user: string, what: string): ResolvedUser {
  const [u, g, extra] = user.split(':');
  if (extra !== undefined || u === '' || g === '') throw new UserError(`${what}: user ${JSON.stringify(user)}: expected USER, UID, USER:GROUP or UID:GID`);
  const passwd = parsePasswd(readImageFile(spec, '/etc/passwd'));
  const groups = parseGroup(readImageFile(spec, '/etc/group'));
  const numeric = (s: string) => /^\d+$/.test(s) && Number(s) <= ID_MAX;
  let account: Passwd | undefined;
  let uid: number;
  if (numeric(u)) {
    uid = Number(u);
    account = passwd.find((p) => p.uid === uid);
  } else {
    account = passwd.find((p) => p.name === u);
    if (!account) throw new UserError(`${what}: user ${u} is not in the image's /etc/passwd${passwd.length ? '' : ' (the image has none)'}`);
    uid = account.uid;
  }
  let gid = account?.gid ?? 0;
  if (g !== undefined) {
    if (numeric(g)) gid = Number(g);
    else {
      const grp = groups.find((x) => x.name === g);
      if (!grp) throw new UserError(`${what}: group ${g} is not in the image's /etc/group`);
      gid = grp.gid;
    }
  }
  // Supplementary groups: those that list the account as a member (as login and runc do).
  const supplementary = account ? groups.filter((x) => x.members.includes(account!.name)).map((x) => x.gid).filter((x) => x !== gid) : [];
  return { uid, gid, groups: [...new Set(supplementary)], home: account?.home || null };
}

/** The shim's form: `uid:gid` or `uid:gid:g1,g2`. */
export function shimUser(r: ResolvedUser): string {
  return `${r.uid}:${r.gid}${r.groups.length ? `:${r.groups.join(',')}` : ''}`;
}
