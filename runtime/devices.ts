// Device rules of a container: which device nodes it may create (mknod) and open. Docker's default
// list (moby oci/defaults.go): mknod of any node is allowed (images carry device nodes), but only
// null, zero, full, random, urandom, tty, ptmx, the container's own ptys and /dev/net/tun may be
// read or written. Everything else (disks, loop devices, the console, zram, /dev/mem...) is denied
// even to a root process holding CAP_MKNOD. Two enforcement paths, pure here and applied by the
// runtime: cgroup v1's `devices` controller (devices.deny / devices.allow lines), and on the
// unified hierarchy (cgroup v2, and the v2 tree of hybrid machines like this project's) an eBPF
// program of type BPF_PROG_TYPE_CGROUP_DEVICE attached to the container's cgroup. The runtime
// uses the eBPF program wherever a unified tree exists (the kernel asks it first), v1's rules
// only where there is none.

export interface DeviceRule {
  type: 'c' | 'b';
  /** null: any. */
  major: number | null;
  minor: number | null;
  access: string; // subset of "rwm"
}

export const DEFAULT_DEVICE_RULES: readonly DeviceRule[] = [
  { type: 'c', major: null, minor: null, access: 'm' },
  { type: 'b', major: null, minor: null, access: 'm' },
  { type: 'c', major: 1, minor: 3, access: 'rwm' }, // null
  { type: 'c', major: 1, minor: 8, access: 'rwm' }, // random
  { type: 'c', major: 1, minor: 7, access: 'rwm' }, // full
  { type: 'c', major: 5, minor: 0, access: 'rwm' }, // tty
  { type: 'c', major: 1, minor: 5, access: 'rwm' }, // zero
  { type: 'c', major: 1, minor: 9, access: 'rwm' }, // urandom
  { type: 'c', major: 136, minor: null, access: 'rwm' }, // pts/*
  { type: 'c', major: 5, minor: 2, access: 'rwm' }, // ptmx
  { type: 'c', major: 10, minor: 200, access: 'rwm' }, // net/tun
];

/** cgroup v1: write "a" to devices.deny, then each of these to devices.allow. */
export function v1AllowLines(rules: readonly DeviceRule[]): string[] {
  return rules.map((r) => `${r.type} ${r.major ?? '*'}:${r.minor ?? '*'} ${r.access}`);
}

// struct bpf_cgroup_dev_ctx { __u32 access_type; /* (access << 16) | type */ __u32 major; __u32 minor; }
const BPF_DEVCG_DEV_BLOCK = 1;
const BPF_DEVCG_DEV_CHAR = 2;
const BPF_DEVCG_ACC_MKNOD = 1;
const BPF_DEVCG_ACC_READ = 2;
const BPF_DEVCG_ACC_WRITE = 4;

// eBPF opcodes used (linux/bpf.h): 8-byte instructions {code, dst:4|src:4, off:s16, imm:s32}.
const LDX_MEM_W = 0x61; // dst = *(u32 *)(src + off)
const ALU32_MOV_X = 0xbc; // dst = (u32)src
const ALU32_AND_K = 0x54;
const ALU32_RSH_K = 0x74;
const JMP_JNE_K = 0x55; // if dst != imm goto pc + off
const ALU64_MOV_K = 0xb7;
const JMP_EXIT = 0x95;

function insn(code: number, dst: number, src: number, off: number, imm: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(code, 0);
  b.writeUInt8(((src & 0xf) << 4) | (dst & 0xf), 1);
  b.writeInt16LE(off, 2);
  b.writeInt32LE(imm | 0, 4);
  return b;
}

function accessBits(access: string): number {
  return (access.includes('m') ? BPF_DEVCG_ACC_MKNOD : 0) | (access.includes('r') ? BPF_DEVCG_ACC_READ : 0) | (access.includes('w') ? BPF_DEVCG_ACC_WRITE : 0);
}

/** The eBPF device program (as runc generates it): returns 1 (allow) when some rule matches the
 *  device type, major, minor and holds every requested access bit; 0 (deny) otherwise. */
export function deviceProgram(rules: readonly DeviceRule[]): Buffer {
  // r2 = type, r3 = access, r4 = major, r5 = minor (r1 = the context).
  const head = [
    insn(LDX_MEM_W, 2, 1, 0, 0),
    insn(ALU32_AND_K, 2, 0, 0, 0xffff),
    insn(LDX_MEM_W, 3, 1, 0, 0),
    insn(ALU32_RSH_K, 3, 0, 0, 16),
    insn(LDX_MEM_W, 4, 1, 4, 0),
    insn(LDX_MEM_W, 5, 1, 8, 0),
  ];
  const blocks: Buffer[][] = [];
  for (const r of rules) {
    const body: Buffer[] = [];
    const checks: ((skip: number) => Buffer)[] = [];
    checks.push((skip) => insn(JMP_JNE_K, 2, 0, skip, r.type === 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR));
    // Requested access must be a subset of the rule's: (access & ~allowed) == 0.
    const denied = ~accessBits(r.access) & 0x7;
    const accessPair = denied !== 0;
    if (r.major !== null) checks.push((skip) => insn(JMP_JNE_K, 4, 0, skip, r.major!));
    if (r.minor !== null) checks.push((skip) => insn(JMP_JNE_K, 5, 0, skip, r.minor!));
    // Count the instructions of the block to compute skip distances (to the next block).
    const n = checks.length + (accessPair ? 3 : 0) + 2;
    let pc = 0;
    for (const c of checks) { body.push(c(n - pc - 1)); pc++; }
    if (accessPair) {
      body.push(insn(ALU32_MOV_X, 6, 3, 0, 0)); pc++;
      body.push(insn(ALU32_AND_K, 6, 0, 0, denied)); pc++;
      body.push(insn(JMP_JNE_K, 6, 0, n - pc - 1, 0)); pc++;
    }
    body.push(insn(ALU64_MOV_K, 0, 0, 0, 1));
    body.push(insn(JMP_EXIT, 0, 0, 0, 0));
    blocks.push(body);
  }
  const tail = [insn(ALU64_MOV_K, 0, 0, 0, 0), insn(JMP_EXIT, 0, 0, 0, 0)];
  return Buffer.concat([...head, ...blocks.flat(), ...tail]);
}

/** Evaluates deviceProgram's semantics directly (what the program must compute; for tests and
 *  for explaining a refusal). */
export function deviceAllowed(rules: readonly DeviceRule[], type: 'c' | 'b', major: number, minor: number, access: string): boolean {
  const want = accessBits(access);
  return rules.some((r) => r.type === type && (r.major === null || r.major === major) && (r.minor === null || r.minor === minor) && (want & ~accessBits(r.access)) === 0);
}
