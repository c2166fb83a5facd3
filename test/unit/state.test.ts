// The lab lock (controller/state.ts) without root, in a private NETLAB_STATE_DIR: it belongs to
// a live process only, told by pid AND start time (field 22 of /proc/PID/stat) AND boot id, so
// a killed `up` (even a zombie not yet reaped), a reused pid or a lock from before a reboot
// never makes `down` say "busy". Real processes stand in for the holders.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

type State = typeof import('../../controller/state.js');
let st: State;
let dir = '';

/** Field 22 (start time) of /proc/PID/stat, as the lock records it. */
function startOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
}
const bootId = () => fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
const lockFile = (lab: string) => path.join(dir, lab, 'lock');

function writeLock(lab: string, text: string): void {
  fs.mkdirSync(path.join(dir, lab), { recursive: true });
  fs.writeFileSync(lockFile(lab), text);
}

const children: ChildProcess[] = [];
function sleeper(): ChildProcess {
  const c = spawn('sleep', ['30'], { stdio: 'ignore' });
  children.push(c);
  return c;
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-state-'));
  // STATE_ROOT is read when the module loads: set the directory first.
  process.env.NETLAB_STATE_DIR = dir;
  st = await import('../../controller/state.js');
  expect(st.STATE_ROOT).toBe(dir);
});

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  delete process.env.NETLAB_STATE_DIR;
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('lab lock', () => {
  it('records pid, start time and boot id; a second taker is refused while it is held; release removes it', () => {
    const release = st.lockLab('a');
    expect(fs.readFileSync(lockFile('a'), 'utf8')).toBe(`${process.pid} ${startOf(process.pid)} ${bootId()}\n`);
    expect(() => st.lockLab('a')).toThrow(st.LockBusyError);
    expect(() => st.lockLab('a')).toThrow(`lab a is busy: another netlab (pid ${process.pid})`);
    expect(st.lockHolder('a')?.pid).toBe(process.pid);
    release();
    expect(fs.existsSync(lockFile('a'))).toBe(false);
    expect(st.lockHolder('a')).toBeNull();
    // Nothing is left: no temporary or stale files, and no empty lab directory (it would list as a lab).
    expect(fs.existsSync(path.join(dir, 'a'))).toBe(false);
  });

  it('is a path, not an open descriptor: no child process can inherit it', () => {
    const release = st.lockLab('fd');
    const open = fs.readdirSync('/proc/self/fd').map((fd) => { try { return fs.readlinkSync(`/proc/self/fd/${fd}`); } catch { return ''; } });
    expect(open.filter((t) => t.startsWith(path.join(dir, 'fd')))).toEqual([]);
    release();
  });

  it('a live holder (pid and start time match) keeps it: busy, naming that pid', async () => {
    const c = sleeper();
    await new Promise((r) => c.once('spawn', r));
    writeLock('live', `${c.pid} ${startOf(c.pid!)} ${bootId()}\n`);
    expect(() => st.lockLab('live')).toThrow(`another netlab (pid ${c.pid})`);
    expect(st.lockHolder('live')?.pid).toBe(c.pid);
  });

  it('a reused pid (alive, another start time) does not hold it: taken over', async () => {
    const c = sleeper();
    await new Promise((r) => c.once('spawn', r));
    writeLock('reused', `${c.pid} ${startOf(c.pid!) + 1} ${bootId()}\n`);
    expect(st.lockHolder('reused')).toBeNull();
    const release = st.lockLab('reused');
    expect(fs.readFileSync(lockFile('reused'), 'utf8')).toMatch(new RegExp(`^${process.pid} `));
    release();
  });

  it('a lock from another boot does not hold it, even when pid and start time match now', () => {
    writeLock('boot', `${process.pid} ${startOf(process.pid)} 00000000-0000-0000-0000-000000000000\n`);
    const release = st.lockLab('boot');
    release();
  });

  it('a killed holder that is still a zombie (not reaped yet) does not hold it', () => {
    const c = spawn('true', [], { stdio: 'ignore' });
    children.push(c);
    // Block the event loop, so Node cannot reap the child: it stays a zombie meanwhile.
    const end = Date.now() + 5000;
    const isZombie = () => { try { const s = fs.readFileSync(`/proc/${c.pid}/stat`, 'utf8'); return s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3) === 'Z'; } catch { return false; } };
    while (!isZombie() && Date.now() < end) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    expect(isZombie(), 'the child should be a zombie now').toBe(true);
    const stat = fs.readFileSync(`/proc/${c.pid}/stat`, 'utf8');
    writeLock('zombie', `${c.pid} ${stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]} ${bootId()}\n`);
    const release = st.lockLab('zombie');
    release();
  });

  it('an older netlab\'s lock (a pid alone) is judged by the pid: dead is taken over, alive is busy', async () => {
    const c = sleeper();
    await new Promise((r) => c.once('spawn', r));
    writeLock('legacy', `${c.pid}`);
    expect(() => st.lockLab('legacy')).toThrow(`(pid ${c.pid})`);
    const gone = spawn('true', [], { stdio: 'ignore' });
    await new Promise((r) => gone.once('exit', r));
    writeLock('legacy', `${gone.pid}`);
    st.lockLab('legacy')();
  });

  it('files a taker killed mid-way left next to the lock (lock.PID.new, lock.PID.stale) are swept by the next taker; a live taker\'s are not', async () => {
    const gone = spawn('true', [], { stdio: 'ignore' });
    await new Promise((r) => gone.once('exit', r));
    const live = sleeper();
    await new Promise((r) => live.once('spawn', r));
    fs.mkdirSync(path.join(dir, 'sweep'), { recursive: true });
    for (const f of [`lock.${gone.pid}.new`, `lock.${gone.pid}.stale`, `lock.${live.pid}.new`]) fs.writeFileSync(path.join(dir, 'sweep', f), '1 2 3\n');
    const release = st.lockLab('sweep');
    expect(fs.readdirSync(path.join(dir, 'sweep')).sort()).toEqual(['lock', `lock.${live.pid}.new`]);
    release();
  });

  it('garbage in the lock file is taken over', () => {
    writeLock('junk', 'not a lock');
    st.lockLab('junk')();
  });
});

describe('state file', () => {
  it('readStateChecked tells a missing state (no error) from a damaged one (error naming the file)', () => {
    expect(st.readStateChecked('none')).toEqual({ state: null, error: null });
    fs.mkdirSync(path.join(dir, 'bad'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'bad', 'state.json'), '{"version": 1, "lab": ');
    const r = st.readStateChecked('bad');
    expect(r.state).toBeNull();
    expect(r.error).toContain(path.join(dir, 'bad', 'state.json'));
    expect(r.error).toContain('not valid JSON');
  });
});
