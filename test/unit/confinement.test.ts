// The pure parts of a node's confinement: the seccomp compiler (its BPF program run by a classic
// BPF interpreter written here, against the profile's own semantics for every syscall of the
// table), the eBPF device program (run by a small eBPF interpreter against the rule list), the
// capability set arithmetic, and the topology keys (cap_add, cap_drop, security_opt, sysctls).
import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { compileProfile, parseProfile, ruleApplies, actionValue, SECCOMP_RET } from '../../runtime/seccomp/compile.js';
import { DEFAULT_PROFILE, CLONE_NAMESPACE_FLAGS, type SeccompProfile } from '../../runtime/seccomp/profile.js';
import { X86_64, AARCH64 } from '../../runtime/seccomp/syscalls.js';
import { DEFAULT_DEVICE_RULES, deviceAllowed, deviceProgram, v1AllowLines } from '../../runtime/devices.js';
import { capMask, DOCKER_DEFAULT_CAPS, effectiveCaps, sysctlProblem } from '../../topology/security.js';
import { loadTopologyFile } from '../../topology/load.js';

// ---------------------------------------------------------------- classic BPF interpreter

interface SeccompData { nr: number; arch: number; args: bigint[] }

/** Runs a seccomp program (struct sock_filter[]) on one syscall: the kernel's semantics for the
 *  opcodes a seccomp filter may use (ld abs, alu and, jumps, ret). */
function runSeccomp(prog: Buffer, d: SeccompData): number {
  const word = (off: number): number => {
    if (off === 0) return d.nr >>> 0;
    if (off === 4) return d.arch >>> 0;
    const i = (off - 16) >> 3;
    const v = d.args[i] ?? 0n;
    return Number(off % 8 === 0 ? v & 0xffffffffn : (v >> 32n) & 0xffffffffn);
  };
  let a = 0;
  for (let pc = 0, steps = 0; pc < prog.length / 8; steps++) {
    if (steps > 10000) throw new Error('loop');
    const code = prog.readUInt16LE(pc * 8), jt = prog[pc * 8 + 2], jf = prog[pc * 8 + 3], k = prog.readUInt32LE(pc * 8 + 4);
    switch (code) {
      case 0x20: a = word(k); pc++; break;
      case 0x54: a = (a & k) >>> 0; pc++; break;
      case 0x05: pc += 1 + k; break;
      case 0x15: pc += 1 + (a === k ? jt : jf); break;
      case 0x25: pc += 1 + (a > k ? jt : jf); break;
      case 0x35: pc += 1 + (a >= k ? jt : jf); break;
      case 0x06: return k;
      default: throw new Error(`opcode ${code.toString(16)} at ${pc}`);
    }
  }
  throw new Error('fell off the end');
}

/** What the profile means for one syscall, evaluated directly (first applicable rule whose
 *  arguments match, else the default). */
function expected(profile: SeccompProfile, table: Record<string, number>, goArch: string, caps: Set<string>, nr: number, args: bigint[]): number {
  for (const r of profile.syscalls) {
    if (!ruleApplies(r, { arch: 'x64', caps, kernel: '6.1.0' }, goArch)) continue;
    if (!r.names.some((n) => table[n] === nr)) continue;
    const ok = (r.args ?? []).every((c) => {
      const v = args[c.index] ?? 0n, want = BigInt(c.value);
      switch (c.op) {
        case 'SCMP_CMP_EQ': return v === want;
        case 'SCMP_CMP_NE': return v !== want && (want > 0xffffffffn || (v & 0xffffffffn) !== want);
        case 'SCMP_CMP_MASKED_EQ': return (v & want) === BigInt(c.valueTwo ?? 0);
        case 'SCMP_CMP_GT': return v > want;
        case 'SCMP_CMP_GE': return v >= want;
        case 'SCMP_CMP_LT': return v < want;
        case 'SCMP_CMP_LE': return v <= want;
      }
      return false;
    });
    if (ok) return actionValue(r.action, r.errnoRet);
  }
  return actionValue(profile.defaultAction, profile.defaultErrnoRet);
}

const X64 = 0xc000003e;
const EPERM = (SECCOMP_RET.ERRNO | 1) >>> 0;
const dockerCaps = (extra: string[] = []) => new Set([...DOCKER_DEFAULT_CAPS, 'NET_ADMIN', ...extra].map((c) => `CAP_${c}`));

describe('seccomp: Docker\'s default profile compiled to BPF', () => {
  const caps = dockerCaps();
  const { program, instructions } = compileProfile(DEFAULT_PROFILE, { arch: 'x64', caps, kernel: '6.1.0' });

  it('decides every syscall of the table as the profile says (default capabilities)', () => {
    expect(instructions).toBeGreaterThan(50);
    expect(instructions).toBeLessThan(4096);
    let allowed = 0;
    for (const nr of Object.values(X86_64)) {
      const got = runSeccomp(program, { nr, arch: X64, args: [] });
      expect(got, `syscall ${nr}`).toBe(expected(DEFAULT_PROFILE, X86_64 as Record<string, number>, 'amd64', caps, nr, []));
      if (got === SECCOMP_RET.ALLOW) allowed++;
    }
    expect(allowed).toBeGreaterThan(280);
  });

  it('keeps the dangerous ones out: keyctl, unshare, mount, bpf, ptrace of others, reboot, init_module', () => {
    for (const n of ['keyctl', 'add_key', 'unshare', 'mount', 'setns', 'bpf', 'reboot', 'init_module', 'kexec_load', 'open_by_handle_at', 'perf_event_open', 'userfaultfd']) {
      expect(runSeccomp(program, { nr: X86_64[n], arch: X64, args: [] }), n).toBe(EPERM);
    }
    expect(runSeccomp(program, { nr: X86_64.read, arch: X64, args: [] })).toBe(SECCOMP_RET.ALLOW);
    expect(runSeccomp(program, { nr: X86_64.clone3, arch: X64, args: [] })).toBe((SECCOMP_RET.ERRNO | 38) >>> 0);
  });

  it('checks arguments: socket(AF_VSOCK) refused even with high bits set, clone with namespace flags refused, personality only the safe values', () => {
    const sock = (d: bigint) => runSeccomp(program, { nr: X86_64.socket, arch: X64, args: [d, 1n, 0n] });
    expect(sock(2n)).toBe(SECCOMP_RET.ALLOW);
    expect(sock(40n)).toBe(EPERM);
    expect(sock(40n | (1n << 32n))).toBe(EPERM);
    const clone = (flags: number) => runSeccomp(program, { nr: X86_64.clone, arch: X64, args: [BigInt(flags)] });
    expect(clone(0x11 /* SIGCHLD */ | 0x01000000)).toBe(SECCOMP_RET.ALLOW);
    expect(clone(0x40000000 /* CLONE_NEWNET */)).toBe(EPERM);
    expect(clone(0x10000000 /* CLONE_NEWUSER */ | 0x11)).toBe(EPERM);
    const pers = (v: bigint) => runSeccomp(program, { nr: X86_64.personality, arch: X64, args: [v] });
    expect(pers(0n)).toBe(SECCOMP_RET.ALLOW);
    expect(pers(0xffffffffn)).toBe(SECCOMP_RET.ALLOW);
    expect(pers(0x0040000n /* ADDR_NO_RANDOMIZE */)).toBe(EPERM);
  });

  it('kills foreign ABIs, refuses x32 numbers, answers ENOSYS beyond the newest known syscall', () => {
    expect(runSeccomp(program, { nr: 3, arch: 0x40000003 /* i386 */, args: [] })).toBe(SECCOMP_RET.KILL_PROCESS);
    expect(runSeccomp(program, { nr: 0x40000000 + X86_64.read, arch: X64, args: [] })).toBe(EPERM);
    const max = Math.max(...Object.values(X86_64));
    expect(runSeccomp(program, { nr: max + 1, arch: X64, args: [] })).toBe((SECCOMP_RET.ERRNO | 38) >>> 0);
  });

  it('follows capabilities: CAP_SYS_ADMIN allows mount, unshare and clone3; CAP_SYS_PTRACE allows kcmp', () => {
    const admin = dockerCaps(['SYS_ADMIN', 'SYS_PTRACE']);
    const p = compileProfile(DEFAULT_PROFILE, { arch: 'x64', caps: admin, kernel: '6.1.0' }).program;
    for (const n of ['mount', 'unshare', 'clone3', 'setns', 'kcmp']) expect(runSeccomp(p, { nr: X86_64[n], arch: X64, args: [] }), n).toBe(SECCOMP_RET.ALLOW);
    expect(runSeccomp(p, { nr: X86_64.clone, arch: X64, args: [BigInt(CLONE_NAMESPACE_FLAGS)] })).toBe(SECCOMP_RET.ALLOW);
    for (const nr of Object.values(X86_64)) expect(runSeccomp(p, { nr, arch: X64, args: [] })).toBe(expected(DEFAULT_PROFILE, X86_64 as Record<string, number>, 'amd64', admin, nr, []));
  });

  it('compiles for arm64 too, with that table and arch', () => {
    const p = compileProfile(DEFAULT_PROFILE, { arch: 'arm64', caps, kernel: '6.1.0' }).program;
    const arm = 0xc00000b7;
    expect(runSeccomp(p, { nr: AARCH64.keyctl, arch: arm, args: [] })).toBe(EPERM);
    expect(runSeccomp(p, { nr: AARCH64.openat, arch: arm, args: [] })).toBe(SECCOMP_RET.ALLOW);
    expect(runSeccomp(p, { nr: AARCH64.openat, arch: X64, args: [] })).toBe(SECCOMP_RET.KILL_PROCESS);
  });

  it('takes a user profile in Docker\'s format, every comparison, far jumps included', () => {
    const many = Object.keys(X86_64).filter((n) => n !== 'getpid' && n !== 'write');
    const prof = parseProfile(JSON.stringify({
      defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 13,
      syscalls: [
        { names: ['write'], action: 'SCMP_ACT_ALLOW', args: [{ index: 2, value: 100, op: 'SCMP_CMP_LT' }] },
        { names: ['write'], action: 'SCMP_ACT_ERRNO', errnoRet: 27, args: [{ index: 2, value: 2 ** 33, op: 'SCMP_CMP_GE' }] },
        { name: 'getpid', action: 'SCMP_ACT_KILL_PROCESS' },
        { names: many, action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 5, op: 'SCMP_CMP_GT' }, { index: 1, value: 7, op: 'SCMP_CMP_LE' }] },
      ],
    }), 'user.json');
    const p = compileProfile(prof, { arch: 'x64', caps, kernel: '6.1.0' }).program;
    const run = (name: string, args: bigint[]) => runSeccomp(p, { nr: X86_64[name], arch: X64, args });
    expect(run('write', [1n, 0n, 99n])).toBe(SECCOMP_RET.ALLOW);
    expect(run('write', [1n, 0n, 100n])).toBe((SECCOMP_RET.ERRNO | 13) >>> 0);
    expect(run('write', [1n, 0n, 2n ** 33n])).toBe((SECCOMP_RET.ERRNO | 27) >>> 0);
    expect(run('write', [1n, 0n, 2n ** 33n - 1n])).toBe((SECCOMP_RET.ERRNO | 13) >>> 0);
    expect(run('getpid', [])).toBe(SECCOMP_RET.KILL_PROCESS);
    for (const [a0, a1] of [[6n, 7n], [6n, 8n], [5n, 0n], [2n ** 32n, 0n], [6n, 2n ** 32n]] as const) {
      for (const n of ['read', 'openat', 'mount']) {
        expect(run(n, [a0, a1]), `${n}(${a0}, ${a1})`).toBe(expected(prof, X86_64 as Record<string, number>, 'amd64', caps, X86_64[n], [a0, a1]));
      }
    }
    expect(() => parseProfile('{"syscalls": []}', 'x.json')).toThrow(/no defaultAction/);
    expect(() => parseProfile('{"defaultAction": "SCMP_ACT_NOPE", "syscalls": []}', 'x.json')).toThrow(/unknown seccomp action/);
  });
});

// ---------------------------------------------------------------- eBPF device program

/** Runs the device program on one access: the eBPF subset it uses (ldx w, mov, and, rsh, jne, exit). */
function runDeviceProgram(prog: Buffer, type: number, access: number, major: number, minor: number): number {
  const ctx = [((access << 16) | type) >>> 0, major, minor];
  const r = new Array<number>(11).fill(0);
  for (let pc = 0, steps = 0; ; steps++) {
    if (steps > 10000 || pc * 8 >= prog.length) throw new Error('ran off');
    const code = prog[pc * 8], dst = prog[pc * 8 + 1] & 0xf, src = prog[pc * 8 + 1] >> 4, off = prog.readInt16LE(pc * 8 + 2), imm = prog.readInt32LE(pc * 8 + 4);
    switch (code) {
      case 0x61: r[dst] = ctx[off / 4]; pc++; break;
      case 0xbc: r[dst] = r[src] >>> 0; pc++; break;
      case 0x54: r[dst] = (r[dst] & imm) >>> 0; pc++; break;
      case 0x74: r[dst] = r[dst] >>> imm; pc++; break;
      case 0x55: pc += 1 + (r[dst] !== (imm >>> 0) ? off : 0); break;
      case 0xb7: r[dst] = imm; pc++; break;
      case 0x95: return r[0];
      default: throw new Error(`opcode ${code.toString(16)}`);
    }
  }
}

describe('device rules: Docker\'s allow-list', () => {
  const prog = deviceProgram(DEFAULT_DEVICE_RULES);
  it('the eBPF program allows exactly what the rules allow', () => {
    const acc = { m: 1, r: 2, w: 4 } as const;
    for (const type of ['c', 'b'] as const) {
      for (const [major, minor] of [[1, 3], [1, 5], [1, 8], [1, 9], [1, 7], [5, 0], [5, 1], [5, 2], [136, 0], [136, 77], [10, 200], [7, 0], [8, 0], [4, 0], [1, 1], [252, 0], [10, 229]]) {
        for (const access of ['r', 'w', 'rw', 'm', 'rwm', 'mr']) {
          const bits = [...access].reduce((x, ch) => x | acc[ch as keyof typeof acc], 0);
          const want = deviceAllowed(DEFAULT_DEVICE_RULES, type, major, minor, access) ? 1 : 0;
          expect(runDeviceProgram(prog, type === 'b' ? 1 : 2, bits, major, minor), `${type} ${major}:${minor} ${access}`).toBe(want);
        }
      }
    }
    // The cases that matter: disks, loop devices, the console and /dev/mem can be made but not opened.
    expect(deviceAllowed(DEFAULT_DEVICE_RULES, 'b', 7, 0, 'r')).toBe(false);
    expect(deviceAllowed(DEFAULT_DEVICE_RULES, 'b', 7, 0, 'm')).toBe(true);
    expect(deviceAllowed(DEFAULT_DEVICE_RULES, 'c', 5, 1, 'rw')).toBe(false);
    expect(deviceAllowed(DEFAULT_DEVICE_RULES, 'c', 1, 1, 'r')).toBe(false);
    expect(deviceAllowed(DEFAULT_DEVICE_RULES, 'c', 1, 3, 'rw')).toBe(true);
  });
  it('cgroup v1 lines in the devices.allow syntax', () => {
    expect(v1AllowLines(DEFAULT_DEVICE_RULES).slice(0, 3)).toEqual(['c *:* m', 'b *:* m', 'c 1:3 rwm']);
    expect(v1AllowLines(DEFAULT_DEVICE_RULES)).toContain('c 136:* rwm');
  });
});

// ---------------------------------------------------------------- capabilities and topology keys

describe('capabilities, security options and sysctls', () => {
  const base = { privileged: false, networkMode: 'bridge' as const, capAdd: [], capDrop: [] };
  it('default set = Docker\'s + NET_ADMIN; host mode loses NET_ADMIN and NET_RAW unless added', () => {
    expect(effectiveCaps(base).sort()).toEqual([...DOCKER_DEFAULT_CAPS, 'NET_ADMIN'].sort());
    const host = effectiveCaps({ ...base, networkMode: 'host' });
    expect(host).not.toContain('NET_ADMIN');
    expect(host).not.toContain('NET_RAW');
    expect(effectiveCaps({ ...base, networkMode: 'host', capAdd: ['NET_RAW'] })).toContain('NET_RAW');
    expect(effectiveCaps({ ...base, capDrop: ['ALL'], capAdd: ['NET_BIND_SERVICE'] })).toEqual(['NET_BIND_SERVICE']);
    expect(effectiveCaps({ ...base, capDrop: ['MKNOD', 'NET_RAW'] })).not.toContain('MKNOD');
    expect(effectiveCaps({ ...base, privileged: true })).toContain('SYS_ADMIN');
    expect(capMask(['CHOWN', 'NET_ADMIN'])).toBe((1 + (1 << 12)).toString(16));
  });
  it('sysctls: namespaced ones only, net.* not in the host namespace', () => {
    expect(sysctlProblem('net.ipv4.ip_forward', 'bridge')).toBeNull();
    expect(sysctlProblem('kernel.shmmax', 'bridge')).toBeNull();
    expect(sysctlProblem('fs.mqueue.msg_max', 'host')).toBeNull();
    expect(sysctlProblem('net.ipv4.ip_forward', 'host')).toMatch(/host's own network stack/);
    expect(sysctlProblem('kernel.core_pattern', 'bridge')).toMatch(/not namespaced/);
    expect(sysctlProblem('vm.overcommit_memory', 'bridge')).toMatch(/not namespaced/);
    expect(sysctlProblem('net..x', 'bridge')).toMatch(/not a sysctl name/);
  });

  it('topology: cap_add/cap_drop/security_opt/sysctls resolve, and wrong values are located', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-conf-'));
    try {
      const good = path.join(dir, 'good.yml');
      fs.writeFileSync(good, [
        'name: conf', 'nodes:',
        '  a: { cap_add: [cap_sys_ptrace], cap_drop: [MKNOD], security_opt: [seccomp=unconfined, no-new-privileges], sysctls: { net.ipv4.ip_forward: 1 } }',
        '  b: { security_opt: ["seccomp=./prof.json"], sysctls: ["kernel.shmmax=65536"] }',
      ].join('\n'));
      const r = loadTopologyFile(good);
      expect(r.diagnostics).toEqual([]);
      const a = r.lab!.nodes.find((n) => n.name === 'a')!;
      expect(a.capAdd).toEqual(['SYS_PTRACE']);
      expect(a.capDrop).toEqual(['MKNOD']);
      expect(a.seccomp).toEqual({ mode: 'unconfined' });
      expect(a.sysctls).toEqual({ 'net.ipv4.ip_forward': '1' });
      const b = r.lab!.nodes.find((n) => n.name === 'b')!;
      expect(b.seccomp).toEqual({ mode: 'file', file: path.join(dir, 'prof.json') });
      expect(b.sysctls).toEqual({ 'kernel.shmmax': '65536' });

      const bad = path.join(dir, 'bad.yml');
      fs.writeFileSync(bad, [
        'name: conf', 'nodes:',
        '  a:',
        '    cap_add: [NET_ADMIN, SYS_WIZARD]',
        '    security_opt: [apparmor=unconfined]',
        '    sysctls: { kernel.core_pattern: "|/tmp/x" }',
        '  h:',
        '    network_mode: host',
        '    sysctls: ["net.ipv4.ip_forward=1"]',
      ].join('\n'));
      const d = loadTopologyFile(bad).diagnostics.map((x) => `${x.line}:${x.col} ${x.message}`);
      expect(d).toEqual([
        expect.stringMatching(/^4:26 "SYS_WIZARD" is not a Linux capability/),
        expect.stringMatching(/^5:20 security option apparmor is not supported/),
        expect.stringMatching(/^6:16 sysctl kernel.core_pattern is not namespaced/),
        expect.stringMatching(/^9:15 sysctl net.ipv4.ip_forward would change the host's own network stack/),
      ]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
