// Runs a command for real under a second kernel: Debian's own (linux-image-amd64, which has
// sch_netem and boots cgroup v2) in a QEMU VM, because this machine's kernel has no netem and
// runs cgroups v1. The guest's root is the HOST'S root filesystem, shared read-only over
// virtio-9p, with a tmpfs overlay on top (writes stay in the VM and vanish with it) and fresh
// tmpfs on /run and /tmp, so the same paths (the work tree, node, dist/, /usr/sbin/nft) work
// inside. The VM has no network device at all (-nic none, -nodefaults): no packet can leave it.
//
// Boot: a small initramfs (cached, keyed by a hash of everything that goes into it) holds a
// static busybox, an /init script and the kernel modules asked for (with their dependencies from
// modules.dep, decompressed if the tree has .ko.xz/.ko.zst/.ko.gz). /init loads them, mounts the
// 9p root, switch_roots into it and runs the command as root in the same cwd as on the host; its
// output (stdout and stderr, not a tty) goes to the serial console between markers that are
// unique to the run, followed by its exit code, then the VM powers off. A tiny per-run cpio
// (the command, its cwd and environment) is appended to the cached one.
//
// Software emulation (-accel tcg: KVM does not work in this nested setup): everything inside is
// several times slower than on the host. Measure delays as differences.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';

export const QEMU = 'qemu-system-x86_64';
export const BUSYBOX = '/bin/busybox';
export const CACHE_DIR = process.env.NETLAB_VM_CACHE || '/var/cache/netlab-vm';

/** Modules the guest needs for its own root: virtio PCI, the 9p filesystem over virtio, overlay
 *  (the writable layer over the read-only root), virtio-rng (entropy at once for node). */
export const BOOT_MODULES = ['virtio_pci', '9pnet_virtio', '9p', 'overlay', 'virtio_rng'];

/** Modules netlab uses: links, bridges, overlays, qdiscs (netem, tbf, htb, ingress + u32 +
 *  mirred into an ifb), nftables with NAT and numgen, VXLAN. Anything else the guest needs is
 *  loaded on demand by the kernel through the host's /sbin/modprobe (kmod), which the guest sees. */
export const NETLAB_MODULES = [
  'veth', 'bridge', 'vxlan', 'ifb', 'overlay',
  'sch_netem', 'sch_tbf', 'sch_htb', 'sch_ingress', 'cls_u32', 'act_mirred',
  'nf_tables', 'nft_numgen', 'nft_chain_nat', 'nf_nat', 'nft_nat', 'nft_masq', 'nft_ct', 'nft_fib_inet', 'nft_reject_inet',
];

export interface VmOptions {
  /** Kills the VM (and rejects with VmTimeoutError) after this long, boot included. */
  timeoutMs: number;
  /** Kernel modules to load before the command runs (dependencies are added). */
  modules: string[];
  memoryMb?: number;
  cpus?: number;
  /** Working directory inside the guest (default: the caller's cwd; it must exist on the host). */
  cwd?: string;
  /** Environment of the command, on top of PATH, HOME=/root, LANG=C.UTF-8 and NO_COLOR=1. */
  env?: Record<string, string>;
  /** Files to put into the guest before the command runs: absolute guest path -> content. For
   *  paths the guest does not see from the host (it has its own /tmp and /run). */
  files?: Record<string, string | Buffer>;
  /** Called with every chunk of the serial console as it arrives (boot log included). */
  onConsole?: (chunk: string) => void;
}

export interface VmResult {
  /** The command's exit code (128+N when a signal N killed it). */
  code: number;
  /** Its stdout and stderr, interleaved as written. */
  output: string;
  /** From starting QEMU to the command starting in the guest. */
  bootMs: number;
  /** From starting QEMU to QEMU's exit. */
  totalMs: number;
  /** The whole serial console, boot messages included (for diagnosis). */
  console: string;
}

export class VmError extends Error {
  constructor(message: string, readonly console: string) {
    super(`${message}\n--- serial console ---\n${console.slice(-8000)}`);
    this.name = 'VmError';
  }
}
export class VmTimeoutError extends VmError {
  override name = 'VmTimeoutError';
}

// ---------------------------------------------------------------- what the host has

export interface GuestKernel {
  version: string;
  vmlinuz: string;
  modulesDir: string;
}

/** The newest kernel under /boot that is not the running one and has a module tree with
 *  sch_netem (Debian's linux-image-amd64), or NETLAB_VM_KERNEL=VERSION. */
export function findGuestKernel(): GuestKernel | null {
  const want = process.env.NETLAB_VM_KERNEL;
  let versions: string[];
  try {
    versions = fs.readdirSync('/boot').filter((f) => f.startsWith('vmlinuz-')).map((f) => f.slice('vmlinuz-'.length));
  } catch { return null; }
  if (want) versions = versions.filter((v) => v === want);
  const ok = versions.filter((v) => {
    const dep = path.join('/usr/lib/modules', v, 'modules.dep');
    try { return /\/sch_netem\.ko/.test(fs.readFileSync(dep, 'utf8')); } catch { return false; }
  });
  ok.sort((a, b) => b.localeCompare(a, 'en', { numeric: true }));
  const v = ok.find((x) => x !== os.release()) ?? ok[0];
  return v ? { version: v, vmlinuz: path.join('/boot', `vmlinuz-${v}`), modulesDir: path.join('/usr/lib/modules', v) } : null;
}

/** Why runInVm cannot work here (one line naming what to install), or null when it can. */
export function vmUnavailableReason(): string | null {
  if (process.getuid?.() !== 0) return 'it needs root (the guest reads the whole host root over 9p and loads modules)';
  const q = spawnSync(QEMU, ['--version'], { encoding: 'utf8' });
  if (q.error || q.status !== 0) return `${QEMU} is missing (apt-get install qemu-system-x86, or ./setup.sh)`;
  if (!findGuestKernel()) return 'no second kernel with sch_netem under /boot and /usr/lib/modules (apt-get install linux-image-amd64, or ./setup.sh)';
  if (!isStaticElf(BUSYBOX)) return `${BUSYBOX} is missing or not static (apt-get install busybox-static)`;
  return null;
}

/** A 64-bit little-endian ELF executable without a PT_INTERP program header (no loader needed:
 *  it runs in the initramfs, where there are no shared libraries). */
export function isStaticElf(file: string): boolean {
  let b: Buffer;
  try { b = fs.readFileSync(file); } catch { return false; }
  if (b.length < 64 || b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 2 || b[5] !== 1) return false;
  const phoff = Number(b.readBigUInt64LE(32));
  const phentsize = b.readUInt16LE(54);
  const phnum = b.readUInt16LE(56);
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (at + 4 > b.length) return false;
    if (b.readUInt32LE(at) === 3 /* PT_INTERP */) return false;
  }
  return true;
}

// ---------------------------------------------------------------- modules

interface ModuleTree {
  /** Normalised name (dashes as underscores) -> path relative to the tree and its dependencies. */
  deps: Map<string, { file: string; deps: string[] }>;
  builtin: Set<string>;
  /** modules.softdep: module -> what modprobe loads before it (names or aliases). */
  softPre: Map<string, string[]>;
  /** modules.alias, exact (wildcard-free) aliases only: alias -> modules. */
  aliases: Map<string, string[]>;
}

const modName = (file: string): string => path.basename(file).replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');

export function readModuleTree(modulesDir: string): ModuleTree {
  const deps = new Map<string, { file: string; deps: string[] }>();
  for (const line of fs.readFileSync(path.join(modulesDir, 'modules.dep'), 'utf8').split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const file = line.slice(0, colon).trim();
    const d = line.slice(colon + 1).trim().split(/\s+/).filter(Boolean).map(modName);
    deps.set(modName(file), { file, deps: d });
  }
  let builtin = new Set<string>();
  try {
    builtin = new Set(fs.readFileSync(path.join(modulesDir, 'modules.builtin'), 'utf8').split('\n').filter(Boolean).map(modName));
  } catch { /* no list: nothing is taken as built in */ }
  const softPre = new Map<string, string[]>();
  try {
    for (const line of fs.readFileSync(path.join(modulesDir, 'modules.softdep'), 'utf8').split('\n')) {
      // softdep MODULE pre: A B post: C   (modprobe.d(5))
      const m = /^softdep\s+(\S+)\s+(.*)$/.exec(line.trim());
      if (!m) continue;
      const pre = /(?:^|\s)pre:\s*(.*?)(?:\s+post:.*)?$/.exec(m[2]!);
      if (!pre) continue;
      const name = modName(m[1]!);
      softPre.set(name, [...(softPre.get(name) ?? []), ...pre[1]!.split(/\s+/).filter(Boolean)]);
    }
  } catch { /* no soft dependencies */ }
  const aliases = new Map<string, string[]>();
  try {
    for (const line of fs.readFileSync(path.join(modulesDir, 'modules.alias'), 'utf8').split('\n')) {
      const m = /^alias\s+(\S+)\s+(\S+)$/.exec(line.trim());
      if (!m || /[*?[]/.test(m[1]!)) continue;
      const a = m[1]!.replace(/-/g, '_');
      aliases.set(a, [...(aliases.get(a) ?? []), modName(m[2]!)]);
    }
  } catch { /* no aliases */ }
  return { deps, builtin, softPre, aliases };
}

/** A soft dependency's name as a module: itself, or what its alias names (the generic
 *  implementation first: an accelerated one can refuse the emulated CPU); null when it is built
 *  in or unknown (modprobe, too, goes on without it). */
function resolveSoft(tree: ModuleTree, name: string): string | null {
  const n = name.replace(/-/g, '_');
  if (tree.deps.has(n)) return n;
  if (tree.builtin.has(n)) return null;
  const targets = (tree.aliases.get(n) ?? []).filter((t) => tree.deps.has(t) || tree.builtin.has(t));
  if (targets.some((t) => tree.builtin.has(t))) return null;
  return targets.find((t) => t.endsWith('_generic')) ?? targets[0] ?? null;
}

/** The modules to insmod, dependencies first, each once; built-in ones left out. Throws naming
 *  a module the tree has neither as a file nor built in. */
export function moduleLoadOrder(tree: ModuleTree, wanted: string[]): string[] {
  const order: string[] = [];
  const seen = new Set<string>();
  const visit = (name: string, chain: string[]): void => {
    const n = name.replace(/-/g, '_');
    if (seen.has(n)) return;
    const m = tree.deps.get(n);
    if (!m) {
      if (tree.builtin.has(n)) { seen.add(n); return; }
      throw new Error(`kernel module ${name} is neither in modules.dep nor built in${chain.length ? ` (needed by ${chain.join(' <- ')})` : ''}`);
    }
    seen.add(n);
    for (const soft of tree.softPre.get(n) ?? []) {
      const r = resolveSoft(tree, soft);
      if (r) visit(r, [n, ...chain]);
    }
    for (const d of m.deps) visit(d, [n, ...chain]);
    order.push(n);
  };
  for (const w of wanted) visit(w, []);
  return order;
}

function readModule(modulesDir: string, file: string): Buffer {
  const full = path.join(modulesDir, file);
  if (file.endsWith('.ko')) return fs.readFileSync(full);
  if (file.endsWith('.gz')) return zlib.gunzipSync(fs.readFileSync(full));
  const tool = file.endsWith('.xz') ? 'xz' : file.endsWith('.zst') ? 'zstd' : null;
  if (!tool) throw new Error(`unknown module compression: ${file}`);
  const r = spawnSync(tool, ['-dc', full], { maxBuffer: 1 << 30 });
  if (r.error || r.status !== 0) throw new Error(`${tool} -dc ${full} failed: ${r.error?.message ?? r.stderr.toString()}`);
  return r.stdout;
}

// ---------------------------------------------------------------- cpio (newc), as the kernel unpacks it

interface CpioEntry { name: string; mode: number; data?: Buffer; rdev?: [number, number] }

export function cpioNewc(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  const pad = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);
  let ino = 1;
  const push = (e: CpioEntry) => {
    const data = e.data ?? Buffer.alloc(0);
    const name = Buffer.from(`${e.name}\0`);
    const f = [ino++, e.mode, 0, 0, 1, 0, data.length, 0, 0, e.rdev?.[0] ?? 0, e.rdev?.[1] ?? 0, name.length, 0];
    const header = Buffer.from(`070701${f.map((x) => x.toString(16).padStart(8, '0')).join('')}`, 'ascii');
    parts.push(header, name, pad(header.length + name.length), data, pad(data.length));
  };
  entries.forEach(push);
  push({ name: 'TRAILER!!!', mode: 0 });
  return Buffer.concat(parts);
}

const DIR = 0o040755;
const FILE = 0o100644;
const EXE = 0o100755;
const CHR = 0o020600;

// ---------------------------------------------------------------- the guest's scripts

// /init in the initramfs (busybox sh, PID 1). Loads the modules, mounts the host's root over 9p
// read-only with a tmpfs overlay on top, fresh tmpfs on /run and /tmp, cgroup2 on
// /sys/fs/cgroup, and switch_roots into it, where stage2 runs the command.
const INIT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
fail() { echo "netlab-vm: $*"; echo "@@netlab-vm:boot-failed@@"; poweroff -f; }
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /etc/netlab-vm/modules); do insmod /lib/modules/$m.ko || fail "insmod $m failed"; done
mkdir -p /mnt/host /mnt/rw /newroot
mount -t 9p -o ro,trans=virtio,version=9p2000.L,msize=512000,cache=loose hostroot /mnt/host || fail "cannot mount the host root over 9p"
mount -t tmpfs -o mode=0755 rw /mnt/rw
mkdir /mnt/rw/upper /mnt/rw/work
mount -t overlay -o lowerdir=/mnt/host,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work,index=off,xino=off,redirect_dir=off,metacopy=off root /newroot || fail "cannot mount the overlay root"
for d in proc sys dev; do mount --move /$d /newroot/$d || fail "cannot move /$d"; done
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /newroot/run
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /newroot/tmp
mount -t cgroup2 -o nsdelegate cgroup2 /newroot/sys/fs/cgroup || fail "cannot mount cgroup2"
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /newroot/dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev shm /newroot/dev/shm
mkdir -p /newroot/run/netlab-vm /newroot/run/lock
cp /bin/busybox /etc/netlab-vm/stage2 /job/job.env /job/cmd.sh /newroot/run/netlab-vm/ || fail "cannot copy the job"
if [ -d /job/files ]; then cp -R /job/files/. /newroot/ || fail "cannot copy the job's files"; fi
exec switch_root /newroot /run/netlab-vm/busybox sh /run/netlab-vm/stage2
`;

// PID 1 in the switched root. The command's output goes through cat, so it is not a tty (as
// under a test runner) and carriage returns are not added to it.
const STAGE2 = `B=/run/netlab-vm/busybox
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
$B hostname netlab-vm
$B ip link set lo up
. /run/netlab-vm/job.env
echo 1 > /proc/sys/kernel/printk
$B stty -onlcr </dev/console
echo "@@netlab-vm:$NONCE:begin@@"
{ /bin/sh /run/netlab-vm/cmd.sh </dev/null; echo $? > /run/netlab-vm/rc; } 2>&1 | $B cat
echo "@@netlab-vm:$NONCE:end:$($B cat /run/netlab-vm/rc)@@"
$B sync
$B poweroff -f
`;

/** Single-quoted for sh. */
export const shq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

// ---------------------------------------------------------------- the cache

/** Writes FILE in the cache atomically (concurrent runs may build the same one), then removes
 *  the cache's other files with the same prefix that nothing has used for a week (older kernel
 *  packages, other module sets). */
function cachePut(file: string, data: Buffer): void {
  fs.mkdirSync(CACHE_DIR, { recursive: true });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
  const prefix = path.basename(file).split('-')[0]!;
  const weekAgo = Date.now() - 7 * 24 * 3600_000;
  for (const f of fs.readdirSync(CACHE_DIR)) {
    const full = path.join(CACHE_DIR, f);
    if (full === file || !f.startsWith(`${prefix}-`)) continue;
    try { if (fs.statSync(full).atimeMs < weekAgo && fs.statSync(full).mtimeMs < weekAgo) fs.rmSync(full, { force: true }); } catch { /* gone */ }
  }
}

/** Marks a cached file as used (relatime does not always update atime). */
function cacheHit(file: string): boolean {
  try { const now = new Date(); fs.utimesSync(file, now, fs.statSync(file).mtime); return true; } catch { return false; }
}

// ---------------------------------------------------------------- the cached initramfs

/** Builds (once per distinct input) the initramfs with busybox, /init and the modules; returns its path. */
export function baseInitramfs(kernel: GuestKernel, modules: string[]): string {
  const tree = readModuleTree(kernel.modulesDir);
  const order = moduleLoadOrder(tree, [...BOOT_MODULES, ...modules]);
  const busybox = fs.readFileSync(BUSYBOX);
  const h = createHash('sha256');
  h.update(`netlab-vm-initramfs v1\0${kernel.version}\0${INIT}\0${STAGE2}\0`);
  h.update(busybox);
  for (const m of order) {
    const file = tree.deps.get(m)!.file;
    const st = fs.statSync(path.join(kernel.modulesDir, file));
    h.update(`${m}\0${file}\0${st.size}\0${st.mtimeMs}\0`);
  }
  const out = path.join(CACHE_DIR, `initramfs-${kernel.version}-${h.digest('hex').slice(0, 16)}.cpio.gz`);
  if (cacheHit(out)) return out;
  const entries: CpioEntry[] = [
    ...['bin', 'dev', 'proc', 'sys', 'etc', 'etc/netlab-vm', 'lib', 'lib/modules', 'job', 'tmp'].map((name) => ({ name, mode: DIR })),
    { name: 'dev/console', mode: CHR, rdev: [5, 1] },
    { name: 'bin/busybox', mode: EXE, data: busybox },
    { name: 'init', mode: EXE, data: Buffer.from(INIT) },
    { name: 'etc/netlab-vm/stage2', mode: FILE, data: Buffer.from(STAGE2) },
    { name: 'etc/netlab-vm/modules', mode: FILE, data: Buffer.from(`${order.join('\n')}\n`) },
    ...order.map((m) => ({ name: `lib/modules/${m}.ko`, mode: FILE, data: readModule(kernel.modulesDir, tree.deps.get(m)!.file) })),
  ];
  cachePut(out, zlib.gzipSync(cpioNewc(entries), { level: 6 }));
  return out;
}

// ---------------------------------------------------------------- the kernel, uncompressed

/** The kernel as an uncompressed ELF (cached), which QEMU boots through its PVH entry point:
 *  that skips the bzImage's own decompressor, several seconds under emulation. Falls back to
 *  the bzImage when its payload is not xz (Debian's is) or xz is missing. */
export function bootableKernel(kernel: GuestKernel): string {
  const st = fs.statSync(kernel.vmlinuz);
  const out = path.join(CACHE_DIR, `vmlinux-${kernel.version}-${st.size}-${Math.floor(st.mtimeMs)}`);
  if (cacheHit(out)) return out;
  const image = fs.readFileSync(kernel.vmlinuz);
  const at = image.indexOf(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]));
  if (at < 0) return kernel.vmlinuz;
  const r = spawnSync('xz', ['-dc', '--single-stream'], { input: image.subarray(at), maxBuffer: 1 << 30 });
  if (r.error || r.status !== 0 || r.stdout.subarray(0, 4).toString('latin1') !== '\x7fELF') return kernel.vmlinuz;
  // PVH needs the Xen ELF note XEN_ELFNOTE_PHYS32_ENTRY (type 18) that CONFIG_PVH adds.
  if (!r.stdout.includes(Buffer.from('Xen\0'))) return kernel.vmlinuz;
  cachePut(out, r.stdout);
  return out;
}

// ---------------------------------------------------------------- running

/** Runs COMMAND (argv, no shell) as root inside a fresh VM and resolves with its exit code and
 *  output. Rejects with VmTimeoutError when the VM runs past timeoutMs (it is killed), and with
 *  VmError when the guest fails to boot. */
export async function runInVm(command: string[], opts: VmOptions): Promise<VmResult> {
  if (command.length === 0) throw new Error('runInVm: empty command');
  const why = vmUnavailableReason();
  if (why) throw new Error(`runInVm: ${why}`);
  const kernel = findGuestKernel()!;
  const base = baseInitramfs(kernel, opts.modules);
  const cwd = opts.cwd ?? process.cwd();
  const nonce = randomBytes(8).toString('hex');
  const env: Record<string, string> = { HOME: '/root', LANG: 'C.UTF-8', NO_COLOR: '1', ...opts.env };
  for (const k of Object.keys(env)) if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`runInVm: bad environment name ${k}`);
  const cmdSh = [
    `cd ${shq(cwd)} || exit 125`,
    ...Object.entries(env).map(([k, v]) => `export ${k}=${shq(v)}`),
    `exec ${command.map(shq).join(' ')}`,
  ].join('\n');
  const job = cpioNewc([
    { name: 'job', mode: DIR },
    { name: 'job/job.env', mode: FILE, data: Buffer.from(`NONCE=${nonce}\n`) },
    { name: 'job/cmd.sh', mode: FILE, data: Buffer.from(`${cmdSh}\n`) },
    ...jobFiles(opts.files ?? {}),
  ]);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'netlab-vm-'));
  try {
    const initrd = path.join(tmp, 'initrd');
    // The kernel unpacks concatenated archives in turn, compressed or not; an uncompressed one
    // must start on a 4-byte boundary (zeros in between are skipped).
    const gz = fs.readFileSync(base);
    fs.writeFileSync(initrd, Buffer.concat([gz, Buffer.alloc((4 - (gz.length % 4)) % 4), job]));
    return await boot(kernel, initrd, nonce, opts, () => fs.rmSync(tmp, { recursive: true, force: true }));
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** job/files/<path> entries, with every parent directory (cpio needs them before their files). */
function jobFiles(files: Record<string, string | Buffer>): CpioEntry[] {
  const dirs = new Set<string>();
  const out: CpioEntry[] = [];
  for (const [p, content] of Object.entries(files)) {
    const norm = path.posix.normalize(p);
    if (!path.posix.isAbsolute(norm) || norm === '/' || norm.split('/').includes('..')) throw new Error(`runInVm: files: not an absolute file path: ${p}`);
    const parts = norm.split('/').filter(Boolean);
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
    out.push({ name: `job/files/${parts.join('/')}`, mode: FILE, data: Buffer.isBuffer(content) ? content : Buffer.from(content) });
  }
  return [{ name: 'job/files', mode: DIR }, ...[...dirs].sort().map((d) => ({ name: `job/files/${d}`, mode: DIR })), ...out];
}

/** Whether the guest sees PATH as it is on the host (it has its own /tmp, /run, /proc, /sys, /dev). */
export function guestSeesHostPath(p: string): boolean {
  const abs = path.resolve(p);
  return !['/tmp', '/run', '/var/run', '/proc', '/sys', '/dev'].some((d) => abs === d || abs.startsWith(`${d}/`));
}

/** QEMU processes still running: killed if this process exits first (a test runner that gives
 *  up on a worker must not leave a VM behind). */
const live = new Set<ChildProcess>();
let exitHook = false;

/** ONLOADED runs once QEMU has read the initrd (at the guest's first console output), so the
 *  temporary file is gone even if this process is then killed outright. */
function boot(kernel: GuestKernel, initrd: string, nonce: string, opts: VmOptions, onLoaded: () => void): Promise<VmResult> {
  const args = [
    '-accel', 'tcg', '-cpu', 'max', '-m', String(opts.memoryMb ?? 1024), '-smp', String(opts.cpus ?? 1),
    '-nodefaults', '-no-user-config', '-display', 'none', '-monitor', 'none', '-serial', 'stdio',
    '-nic', 'none', '-no-reboot',
    '-kernel', bootableKernel(kernel), '-initrd', initrd,
    '-append', `console=ttyS0 ${process.env.NETLAB_VM_VERBOSE ? '' : 'quiet '}panic=-1 rdinit=/init`,
    '-fsdev', 'local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap',
    '-device', 'virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot',
    '-device', 'virtio-rng-pci',
  ];
  const beginRe = new RegExp(`@@netlab-vm:${nonce}:begin@@\\r?\\n`);
  const endRe = new RegExp(`@@netlab-vm:${nonce}:end:(\\d+)@@\\r?\\n`);
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const qemu = spawn(QEMU, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(qemu);
    if (!exitHook) {
      exitHook = true;
      process.on('exit', () => { for (const q of live) q.kill('SIGKILL'); });
    }
    let consoleText = '';
    let stderr = '';
    let bootMs = -1;
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; qemu.kill('SIGKILL'); }, opts.timeoutMs);
    qemu.stdout.setEncoding('utf8');
    let loaded = false;
    qemu.stdout.on('data', (chunk: string) => {
      if (!loaded) { loaded = true; onLoaded(); }
      consoleText += chunk;
      opts.onConsole?.(chunk);
      if (bootMs < 0 && beginRe.test(consoleText)) bootMs = performance.now() - t0;
    });
    qemu.stderr.setEncoding('utf8');
    qemu.stderr.on('data', (c: string) => { stderr += c; });
    qemu.on('error', (e) => { clearTimeout(timer); live.delete(qemu); reject(e); });
    qemu.on('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(qemu);
      const totalMs = performance.now() - t0;
      const all = consoleText + (stderr ? `\n--- qemu stderr ---\n${stderr}` : '');
      if (timedOut) return reject(new VmTimeoutError(`VM killed after ${opts.timeoutMs} ms (timeoutMs)`, all));
      const b = beginRe.exec(consoleText);
      const start = b ? b.index + b[0].length : -1;
      const m = b ? endRe.exec(consoleText.slice(start)) : null;
      if (!b || !m) return reject(new VmError(`VM ended (qemu ${code ?? signal}) before the command ${b ? 'finished' : 'started'}`, all));
      const output = consoleText.slice(start, start + m.index);
      resolve({ code: Number(m[1]), output, bootMs, totalMs, console: consoleText });
    });
  });
}

/** `node SCRIPT ARGS...` inside the VM with the host's node binary, cwd the work tree (or
 *  opts.cwd). Modules: netlab's set unless given. */
export function runNodeInVm(script: string, args: string[] = [], opts: Partial<VmOptions> & { timeoutMs: number }): Promise<VmResult> {
  const abs = path.resolve(script);
  // A script under the host's /tmp or /run is not where the guest looks: it goes in with the job.
  const files = guestSeesHostPath(abs) ? opts.files : { ...opts.files, [abs]: fs.readFileSync(abs) };
  return runInVm([process.execPath, abs, ...args], { modules: NETLAB_MODULES, ...opts, files });
}

/** `vitest run FILE` inside the VM (the work tree's own vitest), for test files whose every test
 *  needs the second kernel. VITEST_IN_VM=1 tells such a file that it is the guest side. */
export function runVitestInVm(repo: string, testFile: string, opts: Partial<VmOptions> & { timeoutMs: number }): Promise<VmResult> {
  const vitest = path.join(repo, 'node_modules/vitest/vitest.mjs');
  return runInVm([process.execPath, vitest, 'run', '--root', repo, testFile], {
    modules: NETLAB_MODULES, cwd: repo, ...opts, env: { VITEST_IN_VM: '1', CI: '1', ...opts.env },
  });
}
