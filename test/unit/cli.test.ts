// Odd command-line values get one clear line and the right exit code, without root: the CLI's
// main() is called in-process with captured output. Also the exec option forms and `validate`
// against this machine's own routes (read the way netlab reads them).
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main, reportError } from '../../cli/main.js';
import { execArgs } from '../../cli/commands/exec.js';
import { ExitCode, UserError } from '../../cli/errors.js';
import { readMachineNet } from '../../controller/conflicts.js';
import { AbortedError, ApplyError } from '../../controller/apply.js';
import { KernelError } from '../../controller/kernel/index.js';
import { PlanError } from '../../controller/plan.js';
import { ImageError } from '../../runtime/images/index.js';
import { IpamError } from '../../topology/ipam.js';
import { SourceError } from '../../web/server/source.js';
import type { Diagnostic } from '../../topology/types.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-cli-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function run(args: string[], timeoutMs = 15_000): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  const code = await Promise.race([
    main(['node', 'netlab', ...args], { out: (s) => { out += s; }, err: (s) => { err += s; } }),
    new Promise<number>((_, reject) => setTimeout(() => reject(new Error(`netlab ${args.join(' ')} did not return within ${timeoutMs} ms`)), timeoutMs)),
  ]);
  return { code, out, err };
}

const oneLine = (s: string) => s.trimEnd().split('\n');

describe('check: odd flag values', () => {
  it('--tcp with a port above 65535 is refused (it used to wrap to port 80)', async () => {
    const r = await run(['check', 'labs/bridge.yml', '--predict-only', '--tcp', 'client1:web:65616']);
    expect(r.code).toBe(2);
    expect(oneLine(r.err)).toEqual(['netlab: --tcp client1:web:65616: port 65616 is out of range; expected 1-65535']);
    expect((await run(['check', 'labs/bridge.yml', '--predict-only', '--tcp', 'client1:web:0'])).code).toBe(2);
    expect((await run(['check', 'labs/bridge.yml', '--predict-only', '--tcp', 'client1:web:80'])).code).toBe(0);
  });

  it('--timeout must be a positive number', async () => {
    for (const bad of ['-5', '0', 'abc', '']) {
      const r = await run(['check', 'labs/bridge.yml', '--predict-only', '--matrix', `--timeout=${bad}`]);
      expect(r.code, bad).toBe(2);
      expect(oneLine(r.err), bad).toEqual([`netlab: --timeout ${bad}: expected a positive number of milliseconds, e.g. 1000`]);
    }
    expect((await run(['check', 'labs/bridge.yml', '--predict-only', '--matrix', '--timeout', '250'])).code).toBe(0);
  });

  it('--wait must be a number of seconds above 0 and at most 600', async () => {
    for (const bad of ['0', '-1', '601', '600.5', 'abc', '10s', '', '1e3']) {
      const r = await run(['check', 'labs/bridge.yml', '--predict-only', `--wait=${bad}`]);
      expect(r.code, bad).toBe(2);
      expect(oneLine(r.err), bad).toEqual([`netlab: --wait ${bad}: expected a number of seconds greater than 0 and at most 600, e.g. 10`]);
    }
    for (const good of ['600', '0.5', '10']) expect((await run(['check', 'labs/bridge.yml', '--predict-only', '--wait', good])).code, good).toBe(0);
  });

  it('--wait gives the ad hoc checks, the matrix and the lab\'s checks without a wait of their own that wait; a check\'s own wait wins', async () => {
    const waits = async (args: string[]) => {
      const r = await run(['check', ...args, '--predict-only', '--json']);
      expect(r.code, r.err).toBe(0);
      return (JSON.parse(r.out) as { outcomes: { label: string; waitMs: number | null; attempts: number }[] }).outcomes;
    };
    expect((await waits(['labs/bridge.yml', '--wait', '2.5'])).map((x) => x.waitMs)).toEqual([2500, 2500, 2500, 2500, 2500, 2500]);
    expect((await waits(['labs/bridge.yml'])).map((x) => x.waitMs)).toEqual([null, null, null, null, null, null]);
    expect((await waits(['labs/bridge.yml', '--ping', 'client1:web', '--wait', '3'])).map((x) => [x.label, x.waitMs])).toEqual([['ping client1 -> web', 3000]]);
    const m = await waits(['labs/bridge.yml', '--matrix', '--wait', '1']);
    expect(m).toHaveLength(12);
    expect(m.every((x) => x.waitMs === 1000 && x.attempts === 0)).toBe(true);
    const file = path.join(tmp, 'own-wait.yml');
    fs.writeFileSync(file, 'name: ownwait\nnetworks: { lan: {} }\nnodes:\n  a: { networks: [lan] }\n  b: { networks: [lan] }\nchecks:\n  - ping: { from: a, to: b, wait: 7 }\n  - ping: { from: b, to: a }\n');
    expect((await waits([file, '--wait', '2'])).map((x) => x.waitMs)).toEqual([7000, 2000]);
  });
});

describe('web: listen failures are one line, exit 1', () => {
  it('a port in use', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const r = await run(['web', 'labs/bridge.yml', '--port', String(port)]);
      expect(r.code).toBe(1);
      expect(oneLine(r.err)).toHaveLength(1);
      expect(r.err).toMatch(new RegExp(`^netlab: web: 127\\.0\\.0\\.1:${port} is already in use( by pid ${process.pid} \\([^)]*\\))?; choose another --port`));
    } finally {
      server.close();
    }
  });

  it('an unknown host name and an address that is not the machine\'s', async () => {
    const unknown = await run(['web', 'labs/bridge.yml', '--port', '0', '--host', 'no-such-host.invalid']);
    expect(unknown.code).toBe(1);
    expect(oneLine(unknown.err)).toEqual(['netlab: web: --host no-such-host.invalid: no such host name or address; give an address of this machine, e.g. 127.0.0.1']);
    const foreign = await run(['web', 'labs/bridge.yml', '--port', '0', '--host', '198.18.255.254']);
    expect(foreign.code).toBe(1);
    expect(oneLine(foreign.err)).toEqual(['netlab: web: --host 198.18.255.254 is not an address of this machine; give one of its addresses, or 127.0.0.1']);
  });
});

describe('error mapping', () => {
  async function mapped(e: unknown): Promise<{ code: number; err: string }> {
    let err = '';
    const code = await reportError(e, { out: () => { throw new Error('errors go to stderr'); }, err: (s) => { err += s; } });
    return { code, err };
  }

  it('an error of any layer meant for the user is one line with its own exit code', async () => {
    expect(await mapped(new ImageError('image "alpine:3" is not available'))).toEqual({ code: 1, err: 'netlab: image "alpine:3" is not available\n' });
    expect(await mapped(new KernelError('linkAdd', 'br0', 'host', 'EEXIST'))).toEqual({ code: 1, err: 'netlab: linkAdd br0 in netns host: EEXIST (File exists)\n' });
    expect(await mapped(new PlanError('lab x has no host y'))).toEqual({ code: 2, err: 'netlab: lab x has no host y\n' });
    // These two never reached the user before: they ended as "internal error", exit 70.
    expect(await mapped(new IpamError('no free subnet'))).toEqual({ code: 1, err: 'netlab: no free subnet\n' });
    expect(await mapped(new SourceError('lab x is not up', 409))).toEqual({ code: 1, err: 'netlab: lab x is not up\n' });
  });

  it('an interrupted up exits as the signal would; a closed pipe as SIGPIPE', async () => {
    expect((await mapped(new AbortedError('SIGINT'))).code).toBe(130);
    expect((await mapped(new AbortedError('SIGHUP'))).code).toBe(129);
    expect((await mapped(new AbortedError('SIGQUIT'))).code).toBe(131);
    expect((await mapped(new AbortedError('SIGTERM'))).code).toBe(143);
    expect(await mapped(new AbortedError('a closed stdout (EPIPE)').rolledBack())).toEqual({ code: 141, err: 'netlab: interrupted by a closed stdout (EPIPE); everything it made was removed\n' });
    const step = { phase: 'links', op: 'link.add', reason: 'cable a-b' } as unknown as ConstructorParameters<typeof ApplyError>[0];
    expect(await mapped(new ApplyError(step, 2, new Error('EBUSY')).rolledBack())).toEqual({ code: 1, err: 'netlab: step 3 (link.add: cable a-b) failed: EBUSY; everything it made was removed\n' });
  });

  it('diagnostics are printed instead of the message; an empty message prints nothing', async () => {
    const d: Diagnostic = { file: 'lab.yml', line: 4, col: 5, path: 'nodes.a.imag', message: 'unknown key "imag"' };
    const r = await mapped(new UserError('lab.yml: 1 problem', 1, [d]));
    expect(r.code).toBe(1);
    expect(r.err).toBe('lab.yml:4:5: nodes.a.imag: unknown key "imag"\n');
    expect(await mapped(new UserError('', 1))).toEqual({ code: 1, err: '' });
    expect(await mapped(new ExitCode(3))).toEqual({ code: 3, err: '' });
  });

  it('anything else is a bug: internal error with the stack, exit 70', async () => {
    const r = await mapped(new TypeError('x is undefined'));
    expect(r.code).toBe(70);
    expect(r.err).toMatch(/^netlab: internal error: TypeError: x is undefined\n\s+at /);
  });
});

describe('exec option forms', () => {
  it('-i, -t, -it, -ti and the long forms before -- or the command', () => {
    expect(execArgs(['-i', '--', 'cat'], {})).toEqual({ given: ['cat'], interactive: true, tty: false });
    expect(execArgs(['-t', '--', 'sh'], {})).toEqual({ given: ['sh'], interactive: false, tty: true });
    expect(execArgs(['-it'], {})).toEqual({ given: [], interactive: true, tty: true });
    expect(execArgs(['-ti', 'sh', '-c', 'x'], {})).toEqual({ given: ['sh', '-c', 'x'], interactive: true, tty: true });
    expect(execArgs(['--interactive', '--tty', '--', 'cat', '-n'], {})).toEqual({ given: ['cat', '-n'], interactive: true, tty: true });
    // Options after the command belong to the command.
    expect(execArgs(['ls', '-i'], {})).toEqual({ given: ['ls', '-i'], interactive: false, tty: false });
    expect(execArgs(['--', '-i'], { interactive: true })).toEqual({ given: ['-i'], interactive: true, tty: false });
  });

  it('an unknown option before the command is a usage error', () => {
    expect(() => execArgs(['-x', '--', 'cat'], {})).toThrow('exec: unknown option -x; expected -i, -t or -it before -- COMMAND');
  });
});

describe('validate against this machine', () => {
  const route = readMachineNet().routes[0];
  it.skipIf(!route)(`a bridge network over the machine's own route (${route?.dst} on ${route?.dev}) is refused at file:line:col; an internal one is not`, async () => {
    const file = path.join(tmp, 'uplink.yml');
    fs.writeFileSync(file, `name: uplink\nnetworks:\n  lan:\n    subnet: ${route.dst}\nnodes:\n  a: { networks: [lan] }\n`);
    const r = await run(['validate', file]);
    expect(r.code).toBe(1);
    const lines = oneLine(r.err);
    expect(lines).toHaveLength(1);
    // The route's own address on that device is found first when there is one.
    expect(lines[0]).toMatch(new RegExp(`^${file}:4:13: networks\\.lan\\.subnet: subnet of network lan ${route.dst} (overlaps this machine's route ${route.dst} on ${route.dev}|contains this machine's address \\S+ on \\S+); bringing it up would cut the machine off`));
    fs.writeFileSync(file, `name: uplink\nnetworks:\n  lan:\n    subnet: ${route.dst}\n    gateway: false\nnodes:\n  a: { networks: [lan] }\n`);
    expect((await run(['validate', file])).code).toBe(0);
  });
});
