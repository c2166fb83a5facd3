// Compiles a seccomp profile (Docker's JSON format, see profile.ts) into a classic BPF program for
// one container: the profile's includes/excludes are decided here for the container's capability
// set, architecture and kernel (as Docker does before handing rules to libseccomp), so the kernel
// only runs plain comparisons. No libseccomp: the program is small and its semantics are tested
// against an interpreter (unit) and against the kernel itself from inside containers (integration).
//
// Layout of the program:
//   arch check (a foreign ABI, e.g. i386 syscalls through int 0x80, kills the process),
//   x32 syscall numbers (bit 30) -> the default action,
//   numbers above the newest syscall this table knows -> ENOSYS (as runc does: a libc probing a
//     syscall newer than the profile falls back instead of failing with EPERM),
//   a binary search over the syscall numbers that have rules, each leaf testing its rules in
//   profile order (arguments compared as 64-bit values, two 32-bit halves),
//   the default action.
import { release } from 'node:os';
import { AARCH64, X86_64 } from './syscalls.js';
import type { SeccompAction, SeccompArg, SeccompProfile, SeccompRule } from './profile.js';
import { NetlabError } from '../../topology/errors.js';

export class SeccompError extends NetlabError {}

export interface SeccompTarget {
  /** Node's process.arch: 'x64' or 'arm64'. */
  arch: string;
  /** Capability names the container holds (CAP_...). */
  caps: ReadonlySet<string>;
  /** Kernel release (for includes.minKernel); default: this machine's. */
  kernel?: string;
}

interface ArchInfo { audit: number; goArch: string; table: Readonly<Record<string, number>> }

const ARCHES: Record<string, ArchInfo> = {
  x64: { audit: 0xc000003e, goArch: 'amd64', table: X86_64 },
  arm64: { audit: 0xc00000b7, goArch: 'arm64', table: AARCH64 },
};

// Classic BPF opcodes (linux/filter.h).
const BPF_LD_W_ABS = 0x20;
const BPF_JMP_JA = 0x05;
const BPF_JEQ_K = 0x15;
const BPF_JGT_K = 0x25;
const BPF_JGE_K = 0x35;
const BPF_ALU_AND_K = 0x54;
const BPF_RET_K = 0x06;

// struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6].
const OFF_NR = 0;
const OFF_ARCH = 4;
const argLo = (i: number) => 16 + 8 * i; // little-endian: both supported arches
const argHi = (i: number) => 16 + 8 * i + 4;

export const SECCOMP_RET = {
  KILL_PROCESS: 0x80000000,
  KILL_THREAD: 0x00000000,
  TRAP: 0x00030000,
  ERRNO: 0x00050000,
  TRACE: 0x7ff00000,
  LOG: 0x7ffc0000,
  ALLOW: 0x7fff0000,
} as const;
const ENOSYS = 38;
const X32_SYSCALL_BIT = 0x40000000;

export function actionValue(action: SeccompAction, errno: number | undefined): number {
  switch (action) {
    case 'SCMP_ACT_ALLOW': return SECCOMP_RET.ALLOW;
    case 'SCMP_ACT_ERRNO': return (SECCOMP_RET.ERRNO | ((errno ?? 1) & 0xffff)) >>> 0;
    case 'SCMP_ACT_KILL':
    case 'SCMP_ACT_KILL_THREAD': return SECCOMP_RET.KILL_THREAD;
    case 'SCMP_ACT_KILL_PROCESS': return SECCOMP_RET.KILL_PROCESS;
    case 'SCMP_ACT_TRAP': return SECCOMP_RET.TRAP;
    case 'SCMP_ACT_TRACE': return (SECCOMP_RET.TRACE | ((errno ?? ENOSYS) & 0xffff)) >>> 0;
    case 'SCMP_ACT_LOG': return SECCOMP_RET.LOG;
  }
  throw new SeccompError(`unknown seccomp action ${String(action)}`);
}

function kernelAtLeast(kernel: string, min: string): boolean {
  const v = (s: string) => s.split(/[.-]/).slice(0, 2).map((x) => Number.parseInt(x, 10) || 0);
  const [a, b] = v(kernel);
  const [c, d] = v(min);
  return a > c || (a === c && b >= d);
}

/** Whether a rule applies to this container (Docker's includes/excludes, decided statically). */
export function ruleApplies(rule: SeccompRule, t: Required<SeccompTarget>, goArch: string): boolean {
  const inc = rule.includes ?? {};
  const exc = rule.excludes ?? {};
  if (inc.arches?.length && !inc.arches.includes(goArch)) return false;
  if (inc.caps?.length && !inc.caps.every((c) => t.caps.has(c))) return false;
  if (inc.minKernel && !kernelAtLeast(t.kernel, inc.minKernel)) return false;
  if (exc.arches?.length && exc.arches.includes(goArch)) return false;
  if (exc.caps?.length && exc.caps.some((c) => t.caps.has(c))) return false;
  return true;
}

/** One syscall's rules after includes/excludes: tried in profile order, first match wins. */
interface Branch { args: SeccompArg[]; ret: number }

// ---------------------------------------------------------------- a tiny assembler with labels

type Insn =
  | { k: 'ld'; off: number }
  | { k: 'and'; imm: number }
  | { k: 'ret'; val: number }
  | { k: 'ja'; to: number }
  /** Conditional jump: true -> label `t`, false -> label `f` (labels, resolved later). */
  | { k: 'j'; op: 'jeq' | 'jgt' | 'jge'; imm: number; t: number; f: number }
  | { k: 'label'; id: number };

class Asm {
  readonly code: Insn[] = [];
  private next = 0;
  label(): number { return this.next++; }
  place(id: number): void { this.code.push({ k: 'label', id }); }
  emit(i: Insn): void { this.code.push(i); }

  /** Resolves labels. A conditional jump reaches at most 255 instructions ahead, so a far target
   *  goes through an unconditional `ja` (32-bit offset) placed right after the jump. */
  assemble(): Buffer {
    // First pass: expand far conditional jumps into jump-to-next + ja, iterating until stable.
    type Out = { op: number; jt: number; jf: number; k: number; tl?: number; fl?: number; jal?: number };
    let expand = new Set<number>(); // indexes of conditional jumps needing trampolines
    for (;;) {
      const pos = new Map<number, number>();
      let pc = 0;
      this.code.forEach((ins, i) => {
        if (ins.k === 'label') { pos.set(ins.id, pc); return; }
        pc += ins.k === 'j' && expand.has(i) ? 3 : 1;
      });
      const out: Out[] = [];
      const grow = new Set(expand);
      pc = 0;
      this.code.forEach((ins, i) => {
        switch (ins.k) {
          case 'label': return;
          case 'ld': out.push({ op: BPF_LD_W_ABS, jt: 0, jf: 0, k: ins.off }); pc++; return;
          case 'and': out.push({ op: BPF_ALU_AND_K, jt: 0, jf: 0, k: ins.imm >>> 0 }); pc++; return;
          case 'ret': out.push({ op: BPF_RET_K, jt: 0, jf: 0, k: ins.val >>> 0 }); pc++; return;
          case 'ja': out.push({ op: BPF_JMP_JA, jt: 0, jf: 0, k: pos.get(ins.to)! - (pc + 1) }); pc++; return;
          case 'j': {
            const op = ins.op === 'jeq' ? BPF_JEQ_K : ins.op === 'jgt' ? BPF_JGT_K : BPF_JGE_K;
            if (expand.has(i)) {
              // j cond, 0, 1 ; ja T ; ja F
              out.push({ op, jt: 0, jf: 1, k: ins.imm >>> 0 });
              out.push({ op: BPF_JMP_JA, jt: 0, jf: 0, k: pos.get(ins.t)! - (pc + 2) });
              out.push({ op: BPF_JMP_JA, jt: 0, jf: 0, k: pos.get(ins.f)! - (pc + 3) });
              pc += 3;
              return;
            }
            const jt = pos.get(ins.t)! - (pc + 1);
            const jf = pos.get(ins.f)! - (pc + 1);
            if (jt > 255 || jf > 255) grow.add(i);
            if (jt < 0 || jf < 0) throw new SeccompError('internal: backward jump in a seccomp program');
            out.push({ op, jt: Math.min(jt, 255), jf: Math.min(jf, 255), k: ins.imm >>> 0 });
            pc++;
            return;
          }
        }
      });
      if (grow.size === expand.size) {
        if (out.length > 4096) throw new SeccompError(`seccomp program too long (${out.length} instructions; the kernel takes 4096)`);
        const buf = Buffer.alloc(out.length * 8);
        out.forEach((o, i) => {
          buf.writeUInt16LE(o.op, i * 8);
          buf.writeUInt8(o.jt, i * 8 + 2);
          buf.writeUInt8(o.jf, i * 8 + 3);
          buf.writeUInt32LE(o.k >>> 0, i * 8 + 4);
        });
        return buf;
      }
      expand = grow;
    }
  }
}

const hi32 = (v: number) => Math.floor(v / 2 ** 32) >>> 0;
const lo32 = (v: number) => (v % 2 ** 32) >>> 0;

/** Emits the test of one argument condition: jumps to `pass` or `fail`. */
function emitArg(a: Asm, c: SeccompArg, pass: number, fail: number): void {
  if (!Number.isInteger(c.index) || c.index < 0 || c.index > 5) throw new SeccompError(`seccomp argument index ${c.index} is out of range 0-5`);
  const v = c.value;
  const vh = hi32(v), vl = lo32(v);
  const ld = (hi: boolean) => a.emit({ k: 'ld', off: hi ? argHi(c.index) : argLo(c.index) });
  const lo = a.label();
  switch (c.op) {
    case 'SCMP_CMP_EQ':
      ld(true); a.emit({ k: 'j', op: 'jeq', imm: vh, t: lo, f: fail });
      a.place(lo); ld(false); a.emit({ k: 'j', op: 'jeq', imm: vl, t: pass, f: fail });
      return;
    case 'SCMP_CMP_NE': {
      // Stricter than a plain 64-bit compare: when the value fits in 32 bits, an argument whose
      // low half equals it is refused whatever its high half, because the kernel truncates int
      // arguments (socket's domain) to 32 bits: AF_VSOCK | 1 << 32 must not pass as "not 40".
      if (vh === 0) {
        ld(false); a.emit({ k: 'j', op: 'jeq', imm: vl, t: fail, f: pass });
        return;
      }
      ld(true); a.emit({ k: 'j', op: 'jeq', imm: vh, t: lo, f: pass });
      a.place(lo); ld(false); a.emit({ k: 'j', op: 'jeq', imm: vl, t: fail, f: pass });
      return;
    }
    case 'SCMP_CMP_MASKED_EQ': {
      const m = c.value, want = c.valueTwo ?? 0;
      ld(true); a.emit({ k: 'and', imm: hi32(m) }); a.emit({ k: 'j', op: 'jeq', imm: hi32(want), t: lo, f: fail });
      a.place(lo); ld(false); a.emit({ k: 'and', imm: lo32(m) }); a.emit({ k: 'j', op: 'jeq', imm: lo32(want), t: pass, f: fail });
      return;
    }
    case 'SCMP_CMP_GT': case 'SCMP_CMP_GE': case 'SCMP_CMP_LT': case 'SCMP_CMP_LE': {
      // Unsigned 64-bit: decided by the high halves unless they are equal.
      const greater = c.op === 'SCMP_CMP_GT' || c.op === 'SCMP_CMP_GE';
      const [ifHiGreater, ifHiLess] = greater ? [pass, fail] : [fail, pass];
      const hiNotGreater = a.label();
      ld(true); a.emit({ k: 'j', op: 'jgt', imm: vh, t: ifHiGreater, f: hiNotGreater });
      a.place(hiNotGreater); a.emit({ k: 'j', op: 'jeq', imm: vh, t: lo, f: ifHiLess });
      a.place(lo); ld(false);
      if (c.op === 'SCMP_CMP_GT') a.emit({ k: 'j', op: 'jgt', imm: vl, t: pass, f: fail });
      else if (c.op === 'SCMP_CMP_GE') a.emit({ k: 'j', op: 'jge', imm: vl, t: pass, f: fail });
      else if (c.op === 'SCMP_CMP_LT') a.emit({ k: 'j', op: 'jge', imm: vl, t: fail, f: pass });
      else a.emit({ k: 'j', op: 'jgt', imm: vl, t: fail, f: pass });
      return;
    }
  }
  throw new SeccompError(`unknown seccomp comparison ${String(c.op)}`);
}

export interface CompiledFilter {
  program: Buffer;
  /** Syscall names of the profile that this architecture does not have (skipped, as libseccomp does). */
  unknown: string[];
  instructions: number;
}

export function compileProfile(profile: SeccompProfile, target: SeccompTarget): CompiledFilter {
  const arch = ARCHES[target.arch];
  if (!arch) throw new SeccompError(`no seccomp syscall table for architecture ${target.arch} (netlab has x64 and arm64); set security_opt: [seccomp=unconfined] on the node to run it without a filter`);
  const t: Required<SeccompTarget> = { kernel: release(), ...target };
  const defaultRet = actionValue(profile.defaultAction, profile.defaultErrnoRet);
  const bySyscall = new Map<number, Branch[]>();
  const unknown = new Set<string>();
  for (const rule of profile.syscalls) {
    if (!ruleApplies(rule, t, arch.goArch)) continue;
    const ret = actionValue(rule.action, rule.errnoRet);
    for (const name of rule.names) {
      const nr = arch.table[name];
      if (nr === undefined) { unknown.add(name); continue; }
      const list = bySyscall.get(nr) ?? [];
      list.push({ args: rule.args ?? [], ret });
      bySyscall.set(nr, list);
    }
  }
  const maxKnown = Math.max(...Object.values(arch.table));
  const a = new Asm();
  const killArch = a.label(), x32 = a.label(), dispatch = a.label(), tooNew = a.label(), fallback = a.label();
  a.emit({ k: 'ld', off: OFF_ARCH });
  a.emit({ k: 'j', op: 'jeq', imm: arch.audit, t: dispatch, f: killArch });
  a.place(killArch);
  a.emit({ k: 'ret', val: SECCOMP_RET.KILL_PROCESS });
  a.place(dispatch);
  a.emit({ k: 'ld', off: OFF_NR });
  const afterX32 = a.label();
  a.emit({ k: 'j', op: 'jge', imm: X32_SYSCALL_BIT, t: x32, f: afterX32 });
  a.place(afterX32);
  const search = a.label();
  a.emit({ k: 'j', op: 'jgt', imm: maxKnown, t: tooNew, f: search });
  a.place(search);
  const nrs = [...bySyscall.keys()].sort((x, y) => x - y);
  // Syscalls with the same rules (a group of one profile entry) share one block of tests.
  const blocks = new Map<string, { label: number; branches: Branch[] }>();
  const leaves = nrs.map((nr) => {
    const branches = bySyscall.get(nr)!;
    const key = JSON.stringify(branches);
    let b = blocks.get(key);
    if (!b) { b = { label: a.label(), branches }; blocks.set(key, b); }
    return { nr, label: b.label };
  });
  // Binary search on the accumulator (the syscall number); argument tests happen only in the
  // blocks below, which never need the number again.
  const tree = (lo: number, hi: number): void => {
    if (hi - lo <= 3) {
      for (let i = lo; i < hi; i++) {
        const nextTest = a.label();
        a.emit({ k: 'j', op: 'jeq', imm: leaves[i].nr, t: leaves[i].label, f: nextTest });
        a.place(nextTest);
      }
      a.emit({ k: 'ja', to: fallback });
      return;
    }
    const mid = (lo + hi) >> 1;
    const left = a.label(), right = a.label();
    a.emit({ k: 'j', op: 'jge', imm: leaves[mid].nr, t: right, f: left });
    a.place(left); tree(lo, mid);
    a.place(right); tree(mid, hi);
  };
  tree(0, leaves.length);
  for (const { label, branches } of blocks.values()) {
    a.place(label);
    for (const b of branches) {
      if (b.args.length === 0) { a.emit({ k: 'ret', val: b.ret }); break; }
      const next = a.label();
      for (const c of b.args) {
        const pass = a.label();
        emitArg(a, c, pass, next);
        a.place(pass);
      }
      a.emit({ k: 'ret', val: b.ret });
      a.place(next);
    }
    a.emit({ k: 'ja', to: fallback });
  }
  a.place(tooNew);
  a.emit({ k: 'ret', val: (SECCOMP_RET.ERRNO | ENOSYS) >>> 0 });
  a.place(x32);
  a.place(fallback);
  a.emit({ k: 'ret', val: defaultRet });
  const program = a.assemble();
  return { program, unknown: [...unknown].sort(), instructions: program.length / 8 };
}

/** Reads a Docker-format profile (security_opt seccomp=FILE), checking its shape. */
export function parseProfile(text: string, file: string): SeccompProfile {
  let doc: unknown;
  try { doc = JSON.parse(text); } catch (e) { throw new SeccompError(`${file}: not JSON (${(e as Error).message})`); }
  const p = doc as Partial<SeccompProfile>;
  if (!p || typeof p !== 'object' || typeof p.defaultAction !== 'string') throw new SeccompError(`${file}: not a seccomp profile (no defaultAction)`);
  actionValue(p.defaultAction, p.defaultErrnoRet);
  if (!Array.isArray(p.syscalls)) throw new SeccompError(`${file}: not a seccomp profile (no syscalls list)`);
  for (const [i, r] of p.syscalls.entries()) {
    // Old Docker profiles name one syscall per entry (`name`), newer ones list them (`names`).
    const raw = r as unknown as { names?: unknown; name?: unknown };
    const names = raw.names ?? (typeof raw.name === 'string' ? [raw.name] : undefined);
    if (!Array.isArray(names) || names.some((n) => typeof n !== 'string')) throw new SeccompError(`${file}: syscalls[${i}] has no names`);
    (r as SeccompRule).names = names as string[];
    actionValue(r.action, r.errnoRet);
    for (const c of r.args ?? []) {
      if (typeof c.value !== 'number' || typeof c.index !== 'number') throw new SeccompError(`${file}: syscalls[${i}] has an argument without index/value`);
    }
  }
  return p as SeccompProfile;
}
