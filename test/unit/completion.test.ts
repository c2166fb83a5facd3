// Shell completion (@bomb.sh/tab over the commander program), through the real CLI without
// root: the scripts for each shell, commands and options completed from the program itself, lab
// names from the state directory (NETLAB_STATE_DIR of the test's own).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const CLI = path.join(ROOT, 'bin/netlab.js');

describe('netlab completion', () => {
  let state = '';
  const run = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, NETLAB_STATE_DIR: state } });

  beforeAll(() => {
    state = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-compl-'));
    for (const lab of ['ospf', 'bgp']) {
      fs.mkdirSync(path.join(state, lab));
      fs.writeFileSync(path.join(state, lab, 'state.json'), '{}');
    }
    fs.mkdirSync(path.join(state, 'not-a-lab')); // no state.json: not listed
  });
  afterAll(() => { if (state) fs.rmSync(state, { recursive: true, force: true }); });

  it('prints a script for bash, zsh, fish and powershell, and refuses another shell', () => {
    expect(run(['completion', 'bash']).stdout).toMatch(/^# bash completion for netlab\n/);
    expect(run(['completion', 'zsh']).stdout).toMatch(/#compdef netlab/);
    expect(run(['completion', 'fish']).stdout).toMatch(/complete -c netlab/);
    expect(run(['completion', 'powershell']).status).toBe(0);
    const bad = run(['completion', 'tcsh']);
    expect(bad.status).toBe(2);
  });

  it('completes commands, options and the labs on this machine', () => {
    const words = (args: string[]) => run(['complete', '--', ...args]).stdout.split('\n').filter((l) => l && !l.startsWith(':')).map((l) => l.split('\t')[0]);
    expect(words(['im'])).toEqual(['impair', 'image']);
    expect(words(['down', ''])).toEqual(['bgp', 'ospf']);
    expect(words(['up', '--'])).toEqual(expect.arrayContaining(['--check', '--as', '--pull']));
    // The hidden helper is not in the help.
    expect(run(['--help']).stdout).not.toMatch(/^\s+complete\b/m);
    expect(run(['--help']).stdout).toMatch(/^\s+completion <shell>/m);
  });
});
