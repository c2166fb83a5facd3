// `netlab exec` with the README's documented option forms (`exec LAB NODE -i -- CMD`, `-t`,
// `-it`), through the real CLI as root: standard input piped through `exec -i` into `cat` in a
// busybox node comes back byte for byte; without -i the command gets no input.
//
// Safety on a shared machine: the lab is named x<run>-<what><n> on a 10.X block nothing routes
// (freeOctets), nothing is sent anywhere, and only `down LAB` of this file's lab is used.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labId } from '../../topology/names.js';
import { addLeakProbe, cgroupProbe, containerProcessProbe, expectNoLeaks, snapshot, type Snapshot } from '../helpers/leaks.js';
import { CLI, REPO, forceRemoveLab, freeOctets, labLeftovers, netlabOk, prng, assertBuildFresh, downAndCheck } from '../helpers/netlab.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('test/integration/exec.test.ts skipped: it needs root (it starts a container)');

const RUN = randomBytes(3).toString('hex');
const rand = prng(Number(process.env.NETLAB_TEST_SEED ?? 0x65786563));

describe.skipIf(!isRoot)('netlab exec option forms', () => {
  const lab = `x${RUN}-exec0`;
  let tmp = '';
  let before: Snapshot;

  /** `netlab exec` with `input` on its standard input (a pipe). */
  const exec = (args: string[], input: string | Buffer) =>
    spawnSync(process.execPath, [CLI, 'exec', lab, 'n', ...args], { cwd: REPO, input, timeout: 30_000, maxBuffer: 1 << 24 });

  beforeAll(() => {
    assertBuildFresh();
    addLeakProbe(cgroupProbe((d) => d.includes(`/netlab/x${RUN}-`)));
    addLeakProbe(containerProcessProbe((g) => g.includes(`/netlab/x${RUN}-`)));
    before = snapshot();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-exec-'));
    const [o] = freeOctets(1, rand);
    const file = path.join(tmp, `${lab}.yml`);
    fs.writeFileSync(file, `name: ${lab}\nnetworks:\n  lan: { subnet: 10.${o}.0.0/24, gateway: false }\nnodes:\n  n: { networks: [lan] }\n`);
    netlabOk(['up', file]);
  });

  afterAll(async () => {
    const left = await downAndCheck(lab);
    if (labLeftovers(lab).length > 0) console.warn(`removing what is left of ${lab} without netlab: ${(await forceRemoveLab(lab)).join('; ')}`);
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    expect(left).toEqual([]);
    const id = labId(lab);
    await expectNoLeaks(before, { only: (probe, item) => probe === 'child processes' || item.includes(lab) || item.startsWith(`nl${id}`) || item === `ip netlab_${id}` });
  });

  it('-i -- cat: piped input comes back byte for byte (64 KiB with every byte value)', () => {
    const payload = Buffer.concat([Buffer.from(`run ${RUN}\n`), randomBytes(64 * 1024), Buffer.from(Array.from({ length: 256 }, (_, i) => i))]);
    const r = exec(['-i', '--', 'cat'], payload);
    expect(r.status, r.stderr.toString()).toBe(0);
    expect(Buffer.compare(r.stdout, payload)).toBe(0);
  });

  it('-it, -ti, --interactive and -i without -- work too; the command\'s exit code is exec\'s', () => {
    for (const form of [['-it', '--', 'cat'], ['-ti', '--', 'cat'], ['--interactive', '--', 'cat'], ['-i', 'cat']]) {
      const r = exec(form, `hello ${form.join(' ')}\n`);
      expect(r.status, `${form.join(' ')}: ${r.stderr.toString()}`).toBe(0);
      expect(r.stdout.toString(), form.join(' ')).toBe(`hello ${form.join(' ')}\n`);
    }
    const t = exec(['-t', '--', 'sh', '-c', 'echo "$TERM"; exit 3'], '');
    expect(t.status).toBe(3);
    const code = exec(['-i', '--', 'sh', '-c', 'read x; exit $x'], '7\n');
    expect(code.status).toBe(7);
  });

  it('without -i the command reads no input', () => {
    const r = exec(['--', 'cat'], 'not for cat\n');
    expect(r.status, r.stderr.toString()).toBe(0);
    expect(r.stdout.toString()).toBe('');
  });

  it('an unknown option is a usage error in one line', () => {
    const r = exec(['-x', '--', 'cat'], '');
    expect(r.status).toBe(2);
    expect(r.stderr.toString()).toBe('netlab: exec: unknown option -x; expected -i, -t or -it before -- COMMAND\n');
  });

  it('an unknown node or lab: one line naming it, with the name it probably meant, exit 1', () => {
    const node = spawnSync(process.execPath, [CLI, 'exec', lab, 'm', '--', 'true'], { cwd: REPO, encoding: 'utf8', timeout: 30_000 });
    expect(node.status).toBe(1);
    expect(node.stderr).toBe(`netlab: lab ${lab} has no node m; did you mean "n"? (nodes: n)\n`);
    const typo = `${lab.slice(0, -1)}9`;
    const other = spawnSync(process.execPath, [CLI, 'logs', typo, 'n'], { cwd: REPO, encoding: 'utf8', timeout: 30_000 });
    expect(other.status).toBe(1);
    expect(other.stderr).toMatch(new RegExp(`^netlab: no such lab ${typo}; did you mean "${lab}"\\? \\(labs: .*${lab}.*\\)\n$`));
  });
});
