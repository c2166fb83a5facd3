// The one module through which netlab changes the kernel. It owns: named network namespaces
// (/run/netns, created without spawning `ip`), one rtnetlink socket per namespace, links
// (bridge, veth, vxlan), addresses, routes, neighbours and FDB entries, per-netns sysctls, and
// the nftables calls (done by running a tool, because nft applies a ruleset atomically and its
// netlink protocol is not worth re-implementing), and iptables-save/-restore (only to add and
// remove accept rules where Docker's iptables filter would drop a lab). Everything else in netlab
// goes through this interface, so tests, dry runs and error reporting have one seam.
//
// Why it is shaped like this (measured, see /work/shared/docs/kernel-notes.md):
// - A netlink socket is bound to the netns of the thread that created it, so each namespace gets
//   its own socket, made on the main thread during a short synchronous setns window. Nothing is
//   awaited, spawned or started inside such a window, or it would run in the wrong namespace.
// - The libuv thread pool copies the netns of the thread that starts it, so open() starts it in
//   the home namespace before any window is ever opened.
// - Sockets and fds pin a namespace (and its veths): netnsDel closes ours before unmounting.
// - The `netlink` package reports failures as a bare Error('Request rejected: EEXIST'); every
//   failure is converted to KernelError, which names the operation, object and namespace.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as util from 'node:util';
import { isIPv4, isIPv6 } from 'node:net';
import { spawnSync } from 'node:child_process';
import * as koffi from 'koffi';
import { AttrStream, FlagsNew, createRtNetlink, ifla, rt } from 'netlink';
import type { NetlinkMessage, RtNetlinkSocket, StreamData } from 'netlink';
import { NetlabError } from '../topology/errors.js';

// ---------------------------------------------------------------- libc

const CLONE_NEWNET = 0x40000000;
const MS_BIND = 0x1000;
const MS_REC = 0x4000;
const MS_SHARED = 1 << 20;
const MNT_DETACH = 2;
const NETNS_RUN_DIR = '/run/netns';

const libc = koffi.load('libc.so.6');
const c_setns = libc.func('int setns(int fd, int nstype)') as (fd: number, nstype: number) => number;
const c_unshare = libc.func('int unshare(int flags)') as (flags: number) => number;
const c_mount = libc.func(
  'int mount(const char *src, const char *tgt, const char *fstype, unsigned long flags, const char *data)',
) as (src: string | null, tgt: string, fstype: string | null, flags: number, data: string | null) => number;
const c_umount2 = libc.func('int umount2(const char *tgt, int flags)') as (tgt: string, flags: number) => number;
const c_gettid = libc.func('int gettid()') as () => number;
const c_strerror = libc.func('const char *strerror(int errnum)') as (errnum: number) => string;
const c_if_nametoindex = libc.func('unsigned int if_nametoindex(const char *ifname)') as (name: string) => number;
const c_getsockname = libc.func('int getsockname(int fd, _Out_ uint8_t *addr, _Inout_ uint32_t *len)') as (fd: number, addr: Buffer, len: number[]) => number;
const c_setsockopt = libc.func('int setsockopt(int fd, int level, int name, const void *value, uint32_t len)') as (fd: number, level: number, name: number, value: Buffer, len: number) => number;

const ERRNO_NUMBERS = os.constants.errno as Record<string, number>;

function errnoName(n: number): string {
  try {
    return util.getSystemErrorName(-n);
  } catch {
    return `E${n}`;
  }
}

/** Human text of an errno name, from libc so it matches what `ip` prints. */
function errnoText(name: string): string {
  const n = ERRNO_NUMBERS[name];
  return n === undefined ? 'unknown error' : c_strerror(n);
}

let textToErrno: Map<string, string> | null = null;
/** errno name for a strerror text found in a tool's stderr (nft prints only the text). */
function errnoFromText(stderr: string): string | null {
  if (!textToErrno) {
    textToErrno = new Map();
    for (const [name, n] of Object.entries(ERRNO_NUMBERS)) {
      if (!textToErrno.has(c_strerror(n))) textToErrno.set(c_strerror(n), name);
    }
  }
  let best: [string, string] | null = null;
  for (const [text, name] of textToErrno) {
    if (stderr.includes(text) && (!best || text.length > best[0].length)) best = [text, name];
  }
  return best ? best[1] : null;
}

// ---------------------------------------------------------------- errors

/** Every kernel failure: which operation, on which object, in which namespace, and the errno. */
export class KernelError extends NetlabError {
  override readonly name = 'KernelError';
  constructor(
    /** Operation, e.g. 'linkAdd'. */
    readonly op: string,
    /** Object operated on, e.g. an interface or netns name. */
    readonly object: string,
    /** Namespace name, or 'host' for the namespace netlab runs in. */
    readonly netns: string,
    /** errno name, e.g. 'EEXIST' ('ENOPKG' when a needed tool is not installed). */
    readonly errno: string,
    /** Extra context (a tool's stderr, the veth peer), appended to the message. */
    readonly detail?: string,
    options?: { cause?: unknown },
  ) {
    super(`${op} ${object} in netns ${netns}: ${errno} (${errnoText(errno)})${detail ? `: ${detail}` : ''}`, options);
  }
}

/** errno name carried by anything the netlink package, koffi or node:fs throws. */
function errnoOf(e: unknown): string {
  if (e instanceof KernelError) return e.errno;
  const err = e as { code?: unknown; errno?: unknown; message?: unknown };
  if (typeof err?.code === 'string' && /^E[A-Z0-9]+$/.test(err.code)) return err.code;
  const m = typeof err?.message === 'string' ? /Request rejected: (\S+)/.exec(err.message) : null;
  if (m) return /^\d+$/.test(m[1]) ? errnoName(Number(m[1])) : m[1];
  if (typeof err?.errno === 'number') return errnoName(Math.abs(err.errno));
  return 'EPROTO';
}

function toKernelError(e: unknown, op: string, object: string, netns: string, detail?: string): KernelError {
  if (e instanceof KernelError) return e;
  const errno = errnoOf(e);
  // Keep the package's own text when it is not an errno (e.g. a parse failure) so it is not lost.
  const own = errno === 'EPROTO' && e instanceof Error ? e.message : undefined;
  return new KernelError(op, object, netns, errno, [detail, own].filter(Boolean).join('; ') || undefined, { cause: e });
}

function sysFail(op: string, object: string, netns: string, detail?: string): KernelError {
  return new KernelError(op, object, netns, errnoName(koffi.errno()), detail);
}

// ---------------------------------------------------------------- encoding helpers

const NEW = { flags: FlagsNew.CREATE | FlagsNew.EXCL };
const AF_INET = 2;
const AF_BRIDGE = 7;
const AF_INET6 = 10;
const RT_TABLE_MAIN = 254;
const NUD_PERMANENT = 0x80;
const NTF_SELF = 0x02;
const IF_OPER_UNKNOWN = 0;
const IF_OPER_UP = 6;
/** IFLA_EXT_MASK = RTEXT_FILTER_SKIP_STATS: link replies without counters are half the size. */
const SKIP_STATS = Buffer.from([8, 0, 0, 0]);
/** Receive-buffer bytes each unread reply may take (skb truesize, measured: an ACK ~0.8 KiB, an
 *  error ACK echoes the request, a GETLINK reply 3-4 KiB). Replies are only read when the event
 *  loop turns, and an overflowing buffer does not just lose replies: netlink@0.3.0 then throws
 *  from its native poll callback (null syscall name) and the whole process aborts. So requests
 *  wait for budget instead, and callers may fire thousands of operations at once. */
const ACK_COST = 2048;
const GETLINK_COST = 8192;
/** Asked for; the kernel caps it at net.core.rmem_max (208 KiB by default) and doubles it. */
const RCVBUF_WANTED = 1 << 20;

function toBuf(d: StreamData): Buffer {
  const s = new AttrStream();
  s.emit(d);
  return Buffer.concat(s.bufs);
}

function linkinfo(kind: string, data?: StreamData): Buffer {
  return toBuf(ifla.formatInfo(data ? { kind, data: toBuf(data) } : { kind }));
}

function be16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function upHeader(up: boolean | undefined): rt.Link {
  return up ? { flags: { up: true }, change: { up: true } } : {};
}

interface ParsedIp { family: 4 | 6; bytes: Buffer }

function parseIp(s: string): ParsedIp | null {
  if (isIPv4(s)) return { family: 4, bytes: Buffer.from(s.split('.').map(Number)) };
  if (!isIPv6(s)) return null;
  let text = s.split('%')[0];
  if (text.includes('.')) {
    const cut = text.lastIndexOf(':');
    const v4 = Buffer.from(text.slice(cut + 1).split('.').map(Number));
    text = `${text.slice(0, cut + 1)}${v4.readUInt16BE(0).toString(16)}:${v4.readUInt16BE(2).toString(16)}`;
  }
  const [head, tail] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = tail === undefined ? null : tail ? tail.split(':') : [];
  const groups = t === null ? h : [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const bytes = Buffer.alloc(16);
  groups.forEach((g, i) => bytes.writeUInt16BE(parseInt(g, 16), i * 2));
  return { family: 6, bytes };
}

/** Dotted quad or RFC 5952 text, as inet_ntop (and so `ip`) prints it. */
function formatIp(b: Buffer): string {
  if (b.length === 4) return [...b].join('.');
  if (b.length !== 16) return b.toString('hex');
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push(b.readUInt16BE(i));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

interface ParsedCidr extends ParsedIp { len: number }

function parseCidr(s: string): ParsedCidr | null {
  const [addr, lenText, ...rest] = (s === 'default' ? '0.0.0.0/0' : s).split('/');
  const ip = parseIp(addr);
  if (!ip || rest.length) return null;
  const max = ip.family === 4 ? 32 : 128;
  const len = lenText === undefined ? max : /^\d+$/.test(lenText) ? Number(lenText) : NaN;
  return len >= 0 && len <= max ? { ...ip, len } : null;
}

function parseMac(s: string): Buffer | null {
  return /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(s) ? Buffer.from(s.replace(/:/g, ''), 'hex') : null;
}

function formatMac(b: Buffer | undefined): string | null {
  return b && b.length ? [...b].map((x) => x.toString(16).padStart(2, '0')).join(':') : null;
}

// ---------------------------------------------------------------- public types

/** One network interface as rtnetlink reports it. */
export interface LinkInfo {
  index: number;
  name: string;
  /** IFLA_INFO_KIND ('bridge', 'veth', 'vxlan'...), null for physical devices and lo. */
  kind: string | null;
  /** Administratively up (IFF_UP). */
  up: boolean;
  /** RFC 2863 operstate UP, or UNKNOWN with carrier (as lo reports it). */
  operUp: boolean;
  mtu: number;
  mac: string | null;
  /** ifindex of the bridge this link is a port of. */
  master: number | null;
  alias: string | null;
  group: number;
  /** VXLAN settings (kind 'vxlan' only). */
  vxlan?: VxlanInfo;
}

/** What `ip -d link show` prints about a VXLAN device. */
export interface VxlanInfo {
  vni: number;
  /** Tunnel source address, null when not set. */
  local: string | null;
  /** UDP destination port. */
  port: number;
  learning: boolean;
  proxy: boolean;
  /** ifindex of the underlay device it is bound to, null when unbound. */
  link: number | null;
}

/** One bridge forwarding entry (`bridge fdb show`). */
export interface FdbEntry {
  dev: string;
  mac: string;
  /** Remote tunnel endpoint (VXLAN entries), else null. */
  dst: string | null;
  permanent: boolean;
}

export interface AddrInfo {
  dev: string;
  index: number;
  family: 4 | 6;
  address: string;
  prefixLen: number;
}

export interface RouteSpec {
  /** CIDR; '0.0.0.0/0', '::/0' or 'default' for the default route. */
  dst: string;
  via?: string;
  dev?: string;
}

export interface RouteInfo {
  dst: string;
  via: string | null;
  dev: string | null;
  table: number;
  /** Lowercase iproute2 name ('kernel', 'boot', 'static'...) or the number. */
  protocol: string;
}

export interface BridgeOptions {
  mtu?: number;
  mac?: string;
  alias?: string;
  group?: number;
  up?: boolean;
}

export interface VethOptions {
  /** Applied to both ends: a pair with different MTUs drops large frames one way only. */
  mtu?: number;
  /** Bridge (in this namespace) to enslave this end to. */
  master?: string;
  mac?: string;
  peerMac?: string;
  alias?: string;
  peerAlias?: string;
  group?: number;
  peerGroup?: number;
  up?: boolean;
  peerUp?: boolean;
}

export interface VxlanOptions {
  vni: number;
  /** Source address of the tunnel (IPv4 or IPv6). */
  local?: string;
  /** Underlay device the tunnel is bound to. */
  dev?: string;
  /** UDP destination port; default 4789 (IANA), not the kernel's historical 8472. */
  port?: number;
  mtu?: number;
  master?: string;
  /** Learn remote MACs from received frames; default true, as iproute2. */
  learning?: boolean;
  /** Answer ARP requests from the device's neighbour table (ARP suppression, as Docker's overlay). */
  proxy?: boolean;
  group?: number;
  alias?: string;
  up?: boolean;
}

export interface LinkSetOptions {
  up?: boolean;
  mtu?: number;
  mac?: string;
  /** Bridge to enslave to; null releases the link from its bridge. */
  master?: string | null;
  /** '' clears the alias. */
  alias?: string;
  group?: number;
}

/** A link notification from monitorLinks: a link added or changed ('new': RTM_NEWLINK, which
 *  also reports up/down and carrier changes), removed ('del'), or notifications lost ('lost'). */
export type LinkEvent =
  | { netns: string | null; type: 'new' | 'del'; link: LinkInfo }
  | { netns: string | null; type: 'lost'; link: null; error: KernelError };

export interface LinkMonitor {
  readonly netns: string | null;
  /** Closes the socket (and so releases the namespace). Idempotent. */
  close(): void;
}

// ---------------------------------------------------------------- kernel

const HANDLE_TOKEN = Symbol('NetnsHandle');

/** Entry point: owns the home-namespace fd and one NetnsHandle per namespace touched. */
export class Kernel {
  private readonly handles = new Map<string | null, NetnsHandle>();
  private closed = false;

  private constructor(private readonly homeFd: number) {}

  // (no iproute2 equivalent) start-up: libuv pool started here, /run/netns shared as iproute2 does
  static async open(): Promise<Kernel> {
    // Starts every libuv pool thread now, in the home netns; threads started later inside a
    // setns window would do all their file and DNS work in a lab namespace.
    await fs.promises.stat('/');
    let homeFd: number;
    try {
      homeFd = fs.openSync('/proc/thread-self/ns/net', 'r');
    } catch (e) {
      throw toKernelError(e, 'open', '/proc/thread-self/ns/net', 'host');
    }
    try {
      ensureNetnsDir();
    } catch (e) {
      fs.closeSync(homeFd);
      throw e;
    }
    return new Kernel(homeFd);
  }

  // ip netns add NAME
  netnsAdd(name: string): NetnsHandle {
    this.assertOpen();
    checkNetnsName(name, 'netnsAdd');
    const file = path.join(NETNS_RUN_DIR, name);
    try {
      fs.closeSync(fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0));
    } catch (e) {
      throw toKernelError(e, 'netnsAdd', name, 'host');
    }
    let mounted = false;
    let fd = -1;
    let sock: RtNetlinkSocket | undefined;
    try {
      if (c_unshare(CLONE_NEWNET) < 0) throw sysFail('netnsAdd', name, 'host', 'unshare(CLONE_NEWNET)');
      try {
        // /proc/self/ns/net is the thread-group leader's; this thread's own entry is the new one.
        if (c_mount(`/proc/self/task/${c_gettid()}/ns/net`, file, 'none', MS_BIND, null) < 0) {
          throw sysFail('netnsAdd', name, 'host', 'bind mount');
        }
        mounted = true;
        fd = fs.openSync('/proc/thread-self/ns/net', 'r');
        sock = createRtNetlink();
      } finally {
        this.returnHome();
      }
    } catch (e) {
      sock?.socket.close();
      if (fd >= 0) fs.closeSync(fd);
      if (mounted) c_umount2(file, MNT_DETACH);
      try { fs.unlinkSync(file); } catch { /* best effort: the error below is the one that matters */ }
      throw toKernelError(e, 'netnsAdd', name, 'host');
    }
    // A handle left from a namespace of the same name deleted behind our back would pin it.
    this.handles.get(name)?.dispose();
    const h = new NetnsHandle(HANDLE_TOKEN, this, name, fd, sock);
    this.handles.set(name, h);
    return h;
  }

  // ip netns del NAME
  netnsDel(name: string): void {
    this.assertOpen();
    checkNetnsName(name, 'netnsDel');
    // Our socket and fd would keep the namespace (and every veth in it) alive after the unmount.
    this.handles.get(name)?.dispose();
    this.handles.delete(name);
    const file = path.join(NETNS_RUN_DIR, name);
    if (c_umount2(file, MNT_DETACH) < 0) {
      const errno = errnoName(koffi.errno());
      // EINVAL: not a mount point (half-made or already unmounted); ENOENT: gone already.
      if (errno !== 'EINVAL' && errno !== 'ENOENT') throw new KernelError('netnsDel', name, 'host', errno, 'umount');
    }
    try {
      fs.unlinkSync(file);
    } catch (e) {
      if (errnoOf(e) !== 'ENOENT') throw toKernelError(e, 'netnsDel', name, 'host');
    }
  }

  // ip netns list
  netnsList(): string[] {
    try {
      return fs.readdirSync(NETNS_RUN_DIR).sort();
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return [];
      throw toKernelError(e, 'netnsList', NETNS_RUN_DIR, 'host');
    }
  }

  // ip -n NAME ... (null: the namespace netlab runs in)
  ns(name: string | null): NetnsHandle {
    this.assertOpen();
    const cached = this.handles.get(name);
    if (cached) return cached;
    let h: NetnsHandle;
    if (name === null) {
      h = new NetnsHandle(HANDLE_TOKEN, this, null, this.homeFd, createRtNetlink());
    } else {
      checkNetnsName(name, 'netnsOpen');
      let fd: number;
      try {
        fd = fs.openSync(path.join(NETNS_RUN_DIR, name), 'r');
      } catch (e) {
        throw toKernelError(e, 'netnsOpen', name, 'host');
      }
      let sock: RtNetlinkSocket;
      try {
        sock = this.socketIn(fd, 'netnsOpen', name);
      } catch (e) {
        fs.closeSync(fd);
        throw e;
      }
      h = new NetnsHandle(HANDLE_TOKEN, this, name, fd, sock);
    }
    this.handles.set(name, h);
    return h;
  }

  // nft -f -   (same as the module-level nftApply; here so a Kernel is the whole kernel API)
  nftApply(ruleset: string): void {
    nftApply(ruleset);
  }

  // ip -n NAME monitor link   (null: the namespace netlab runs in)
  /** Subscribes to link notifications (RTNLGRP_LINK) inside a namespace: a socket made in a
   *  synchronous setns window, as the handles' are, joined to the multicast group. Each
   *  RTM_NEWLINK/RTM_DELLINK is parsed with its type (the package's own 'message' event drops
   *  it, so new and deleted links would look alike) and passed to onEvent; a receive error
   *  (ENOBUFS: the kernel dropped notifications) is passed as a 'lost' event, after which the
   *  caller should re-read what it shows. The socket pins the namespace: close() the monitor
   *  when the namespace goes away (the caller watches /run/netns). It does not keep the event
   *  loop alive, and is not tracked by close(). */
  monitorLinks(netns: string | null, onEvent: (e: LinkEvent) => void): LinkMonitor {
    this.assertOpen();
    const label = netns ?? 'host';
    let sock: RtNetlinkSocket;
    if (netns === null) {
      sock = createRtNetlink();
    } else {
      checkNetnsName(netns, 'monitorLinks');
      let fd: number;
      try {
        fd = fs.openSync(path.join(NETNS_RUN_DIR, netns), 'r');
      } catch (e) {
        throw toKernelError(e, 'monitorLinks', netns, 'host');
      }
      try {
        sock = this.socketIn(fd, 'monitorLinks', netns);
      } finally {
        // The socket alone keeps the namespace; the fd is not needed any more.
        fs.closeSync(fd);
      }
    }
    let closed = false;
    try {
      sock.addMembership(rt.MulticastGroups.LINK);
    } catch (e) {
      sock.socket.close();
      throw toKernelError(e, 'monitorLinks', 'RTNLGRP_LINK', label);
    }
    hardenMonitorSocket(sock);
    sock.socket.on('message', (msgs: NetlinkMessage[]) => {
      for (const m of msgs) {
        if (closed) return;
        if (m.type !== rt.MessageType.NEWLINK && m.type !== rt.MessageType.DELLINK) continue;
        let parsed: rt.Message;
        try { parsed = rt.parseMessage(m.type, m.data); } catch { continue; }
        if (parsed.kind !== 'link') continue;
        onEvent({ netns, type: m.type === rt.MessageType.NEWLINK ? 'new' : 'del', link: toLinkInfo(parsed) });
      }
    });
    sock.socket.on('error', (e: Error) => {
      if (!closed) onEvent({ netns, type: 'lost', link: null, error: toKernelError(e, 'monitorLinks', 'recvmsg', label) });
    });
    return {
      netns,
      close: () => {
        if (closed) return;
        closed = true;
        sock.socket.close();
      },
    };
  }

  // (no iproute2 equivalent) closes every socket and fd this Kernel holds
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const h of this.handles.values()) h.dispose();
    this.handles.clear();
    fs.closeSync(this.homeFd);
  }

  /** @internal rtnetlink socket bound to netns `fd` (a socket belongs to the netns of the
   *  thread that creates it). */
  socketIn(fd: number, op: string, object: string): RtNetlinkSocket {
    try {
      return this.inNetns(fd, op, object, () => createRtNetlink());
    } catch (e) {
      throw toKernelError(e, op, object, 'host', 'rtnetlink socket');
    }
  }

  /** @internal Runs a synchronous fn with the calling thread in netns `fd`. */
  inNetns<T>(fd: number, op: string, object: string, fn: () => T extends PromiseLike<unknown> ? never : T): T {
    if (fd === this.homeFd) return fn();
    if (c_setns(fd, CLONE_NEWNET) < 0) throw sysFail(op, object, 'host', 'setns');
    try {
      const r = fn();
      if (r && typeof (r as { then?: unknown }).then === 'function') {
        throw new Error('inNetns: fn must be synchronous');
      }
      return r;
    } finally {
      this.returnHome();
    }
  }

  private returnHome(): void {
    if (c_setns(this.homeFd, CLONE_NEWNET) < 0) {
      // The main thread would keep working in a lab namespace: nothing after this is safe.
      this.closed = true;
      throw sysFail('setns', 'home', 'host', 'could not return to the home namespace; Kernel closed');
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new KernelError('kernel', 'Kernel', 'host', 'EBADF', 'Kernel is closed');
  }
}

const AF_NETLINK = 16;
const SOL_SOCKET = 1;
const SO_RCVBUFFORCE = 33;
const SOL_NETLINK = 270;
const NETLINK_NO_ENOBUFS = 5;
/** Receive buffer of a monitor socket: a burst of notifications (a 300-node lab coming up
 *  makes thousands in the host's namespace) is read only when the event loop turns. */
const MONITOR_RCVBUF = 8 << 20;

/** fd of the package's netlink socket bound at `port` (the package does not expose it):
 *  the socket fd of this process whose getsockname is that netlink address. */
function netlinkFd(port: number): number | null {
  let names: string[];
  try { names = fs.readdirSync('/proc/self/fd'); } catch { return null; }
  for (const name of names) {
    try {
      if (!fs.readlinkSync(`/proc/self/fd/${name}`).startsWith('socket:')) continue;
    } catch {
      continue;
    }
    const addr = Buffer.alloc(16);
    const len = [addr.length];
    if (c_getsockname(Number(name), addr, len) !== 0) continue;
    if (addr.readUInt16LE(0) === AF_NETLINK && addr.readUInt32LE(4) === port) return Number(name);
  }
  return null;
}

/** A monitor socket must never overflow into an error: when notifications outrun the reader,
 *  the kernel flags ENOBUFS on the socket, and netlink@0.3.0 turns that poll error into an
 *  exception it cannot deliver (a null syscall name), which aborts the whole process. So the
 *  buffer is made large (SO_RCVBUFFORCE, as root) and NETLINK_NO_ENOBUFS is set: on overflow
 *  notifications are dropped quietly instead. */
function hardenMonitorSocket(sock: RtNetlinkSocket): void {
  const fd = netlinkFd(sock.socket.address().port);
  if (fd === null) {
    try { sock.socket.setRecvBufferSize(RCVBUF_WANTED); } catch { /* capped by rmem_max */ }
    return;
  }
  const int = (v: number) => { const b = Buffer.alloc(4); b.writeInt32LE(v); return b; };
  if (c_setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, int(MONITOR_RCVBUF), 4) !== 0) {
    try { sock.socket.setRecvBufferSize(RCVBUF_WANTED); } catch { /* capped by rmem_max */ }
  }
  c_setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, int(1), 4);
}

function checkNetnsName(name: string, op: string): void {
  if (!name || name === '.' || name === '..' || name.includes('/') || Buffer.byteLength(name) > 255) {
    throw new KernelError(op, JSON.stringify(name), 'host', 'EINVAL', 'not a valid netns name');
  }
}

/** Same as iproute2: /run/netns is a shared bind mount so netns mounts propagate to every
 *  mount namespace (containers, `ip netns exec`) instead of being stuck in ours. */
function ensureNetnsDir(): void {
  try {
    fs.mkdirSync(NETNS_RUN_DIR, { recursive: true, mode: 0o755 });
  } catch (e) {
    throw toKernelError(e, 'open', NETNS_RUN_DIR, 'host');
  }
  if (c_mount('none', NETNS_RUN_DIR, 'none', MS_SHARED | MS_REC, null) === 0) return;
  if (errnoName(koffi.errno()) !== 'EINVAL') throw sysFail('open', NETNS_RUN_DIR, 'host', 'mount --make-rshared');
  if (c_mount(NETNS_RUN_DIR, NETNS_RUN_DIR, 'none', MS_BIND | MS_REC, null) < 0) {
    throw sysFail('open', NETNS_RUN_DIR, 'host', 'mount --rbind');
  }
  if (c_mount('none', NETNS_RUN_DIR, 'none', MS_SHARED | MS_REC, null) < 0) {
    throw sysFail('open', NETNS_RUN_DIR, 'host', 'mount --make-rshared');
  }
}

/** Whether namespaces mounted under /run/netns by this process are seen by the rest of the
 *  machine. Not under `ip netns exec`: it gives its process a private mount namespace where
 *  /run/netns is a slave of the machine's, so a netns mounted there vanishes for everyone
 *  else (the next netlab run finds an empty file). `nsenter --net=...` keeps the mounts
 *  shared. A container with its own mount namespace (PID 1 in it too) is consistent in
 *  itself and fine. Returns why not, or null when they are. */
export function netnsMountsPrivate(): string | null {
  const ns = (pid: string) => { try { return fs.readlinkSync(`/proc/${pid}/ns/mnt`); } catch { return null; } };
  // (Under `ip netns exec`, /proc/1/ns is not readable: then only the mount itself decides.)
  const own = ns('self'), init = ns('1');
  if (own !== null && own === init) return null;
  let lines: string[];
  try {
    lines = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
  } catch {
    return null;
  }
  // The last mount on /run/netns is the one in effect; optional fields sit between the
  // mount options and the ' - ' separator.
  const entry = lines.filter((l) => l.split(' ')[4] === NETNS_RUN_DIR).pop();
  if (!entry) return null;
  const optional = entry.split(' - ')[0].split(' ').slice(6);
  if (optional.some((f) => f.startsWith('master:'))) {
    return `netlab runs in a private mount namespace where ${NETNS_RUN_DIR} only receives mounts, as under \`ip netns exec\`: the namespaces it makes would not be seen outside it. Enter only the network namespace instead, e.g. \`nsenter --net=/run/netns/NAME netlab ...\``;
  }
  return null;
}

/** Operations inside one namespace, through that namespace's own rtnetlink socket. */
export class NetnsHandle {
  /** 'host' or the netns name, as used in KernelError. */
  readonly label: string;
  /** ifindex by name. Indexes are never reused soon (cyclic allocation), so a stale entry
   *  yields ENODEV, on which the operation is retried once with fresh lookups. */
  private readonly index = new Map<string, number>();
  /** Receive-buffer bytes the replies still to be read may take, and the most allowed. */
  private used = 0;
  private readonly budget: number;
  private readonly waiting: { cost: number; go: () => void }[] = [];
  /** Dumps get their own socket, one at a time: the kernel allows one dump per socket, and
   *  the package mis-groups a dump's parts when another request's ACK arrives between them. */
  private dumpSock: RtNetlinkSocket | null = null;
  private dumpChain: Promise<unknown> = Promise.resolve();
  private failure!: Promise<never>;
  private fail!: (e: unknown) => void;
  private disposed = false;

  constructor(
    token: symbol,
    private readonly kernel: Kernel,
    /** Netns name; null for the namespace netlab runs in. */
    readonly name: string | null,
    private readonly fd: number,
    private readonly sock: RtNetlinkSocket,
  ) {
    if (token !== HANDLE_TOKEN) throw new TypeError('use Kernel.ns() or Kernel.netnsAdd()');
    this.label = name ?? 'host';
    try {
      sock.socket.setRecvBufferSize(RCVBUF_WANTED);
    } catch {
      // keep the default size; the budget below follows whatever the socket has
    }
    this.budget = Math.max(GETLINK_COST, Math.floor(sock.socket.getRecvBufferSize() / 2));
    this.armFailure();
    this.watch(sock);
  }

  // ip link add NAME type bridge
  async linkAddBridge(name: string, o: BridgeOptions = {}): Promise<void> {
    const address = this.mac(o.mac, 'linkAdd', name);
    await this.request('linkAdd', name, () =>
      this.sock.newLink(upHeader(o.up), {
        ifname: name, mtu: o.mtu, address, group: o.group, linkinfo: linkinfo('bridge'),
      }, NEW));
    // IFLA_IFALIAS is ignored by the kernel on create (rtnl_create_link does not read it).
    if (o.alias !== undefined) await this.setByName('linkAdd', name, {}, { ifalias: o.alias });
  }

  // ip link add NAME type veth peer name PEER netns PEERNS
  async linkAddVeth(name: string, peerName: string, peerNetns: string | null, o: VethOptions = {}): Promise<void> {
    const peer = this.kernel.ns(peerNetns);
    const detail = `peer ${peerName} in netns ${peer.label}`;
    const address = this.mac(o.mac, 'linkAdd', name);
    const peerAddress = this.mac(o.peerMac, 'linkAdd', peerName);
    await this.withIndexes('linkAdd', name, o.master === undefined ? [] : [o.master], ([master]) => {
      // Peer made directly in its namespace (IFLA_NET_NS_FD in VETH_INFO_PEER): no move later.
      const peerMsg = Buffer.concat([
        rt.formatLink({}),
        toBuf(ifla.formatLinkAttrs({
          ifname: peerName, mtu: o.mtu, address: peerAddress, group: o.peerGroup,
          netNsFd: peer === this ? undefined : peer.fd,
        })),
      ]);
      return this.sock.newLink(upHeader(o.up), {
        ifname: name, mtu: o.mtu, address, group: o.group, master,
        linkinfo: linkinfo('veth', ifla.formatVethInfo({ peer: peerMsg })),
      }, NEW);
    }, detail);
    const after: Promise<unknown>[] = [];
    if (o.alias !== undefined) after.push(this.setByName('linkAdd', name, {}, { ifalias: o.alias }));
    // IFF_UP on the peer inside the create request fails with ENOTCONN: set it through the
    // socket of the peer's own namespace once the pair exists.
    if (o.peerUp || o.peerAlias !== undefined) {
      after.push(peer.setByName('linkAdd', peerName, upHeader(o.peerUp), { ifalias: o.peerAlias }));
    }
    await Promise.all(after);
  }

  // ip link add NAME type vxlan id VNI [local ADDR] [dev DEV] dstport PORT [nolearning]
  async linkAddVxlan(name: string, o: VxlanOptions): Promise<void> {
    const local = o.local === undefined ? undefined : parseIp(o.local);
    if (o.local !== undefined && !local) throw this.invalid('linkAdd', name, `bad local address ${o.local}`);
    if (!Number.isInteger(o.vni) || o.vni < 0 || o.vni >= 1 << 24) throw this.invalid('linkAdd', name, `bad VNI ${o.vni}`);
    const deps = [o.dev, o.master].filter((x): x is string => x !== undefined);
    await this.withIndexes('linkAdd', name, deps, (ix) => {
      const dev = o.dev === undefined ? undefined : ix[0];
      const master = o.master === undefined ? undefined : ix[ix.length - 1];
      const data = ifla.formatVxlan({
        id: o.vni,
        port: be16(o.port ?? 4789),
        learning: o.learning === false ? 0 : 1,
        proxy: o.proxy ? 1 : undefined,
        link: dev,
        local: local?.family === 4 ? local.bytes : undefined,
        local6: local?.family === 6 ? local.bytes : undefined,
      });
      return this.sock.newLink(upHeader(o.up), {
        ifname: name, mtu: o.mtu, group: o.group, master, linkinfo: linkinfo('vxlan', data),
      }, NEW);
    });
    if (o.alias !== undefined) await this.setByName('linkAdd', name, {}, { ifalias: o.alias });
  }

  // ip link set NAME [up|down] [mtu N] [address MAC] [master BR|nomaster] [alias TEXT] [group G]
  async linkSet(name: string, o: LinkSetOptions): Promise<void> {
    const address = this.mac(o.mac, 'linkSet', name);
    const hdr: rt.Link = o.up === undefined ? {} : { flags: o.up ? { up: true } : {}, change: { up: true } };
    const masterName = typeof o.master === 'string' ? [o.master] : [];
    await this.withIndexes('linkSet', name, masterName, ([master]) =>
      this.sock.setLink({ ...hdr, index: 0 }, {
        ifname: name, mtu: o.mtu, address, group: o.group, ifalias: o.alias,
        master: o.master === null ? 0 : master,
      }));
  }

  // ip link del NAME
  async linkDel(name: string): Promise<void> {
    this.index.delete(name);
    await this.request('linkDel', name, () => this.sock.delLink({ index: 0 }, { ifname: name }));
  }

  // ip link del group G  (one message, one unregister batch: ~0.8 ms a link instead of ~22 ms);
  // returns false when the group had no link here, so teardown can be repeated.
  async linkDelGroup(group: number): Promise<boolean> {
    if (!Number.isInteger(group) || group <= 0) throw this.invalid('linkDelGroup', `group ${group}`, 'group 0 is every link');
    this.index.clear();
    try {
      await this.request('linkDelGroup', `group ${group}`, () => this.sock.delLink({ index: 0 }, { group }));
      return true;
    } catch (e) {
      if (e instanceof KernelError && e.errno === 'ENODEV') return false;
      throw e;
    }
  }

  // ip -d link show
  async linkList(): Promise<LinkInfo[]> {
    const msgs = await this.dump('linkList', 'links', (s) => s.getLinks({}, { extMask: SKIP_STATS }));
    return msgs.map(toLinkInfo);
  }

  // bridge fdb show  (every entry of every bridge port and VXLAN device here)
  async fdbList(): Promise<FdbEntry[]> {
    const [msgs, names] = await Promise.all([
      this.dump('fdbList', 'fdb', (s) => s.getNeighbors({ family: AF_BRIDGE })),
      this.namesByIndex('fdbList'),
    ]);
    return msgs.flatMap((m) => {
      const mac = formatMac(m.attrs.lladdr);
      if (!mac) return [];
      return [{
        dev: names.get(m.data.ifindex ?? 0) ?? String(m.data.ifindex ?? 0), mac,
        dst: m.attrs.dst ? formatIp(m.attrs.dst) : null, permanent: m.data.state?.permanent === true,
      }];
    });
  }

  // ip -d link show NAME (null when there is no such link)
  async linkGet(name: string): Promise<LinkInfo | null> {
    try {
      const [m] = await this.request('linkGet', name, () => this.sock.getLink({}, { ifname: name, extMask: SKIP_STATS }), undefined, GETLINK_COST);
      return m ? toLinkInfo(m) : null;
    } catch (e) {
      if (e instanceof KernelError && e.errno === 'ENODEV') return null;
      throw e;
    }
  }

  // ip addr add CIDR dev DEV [nodad]
  async addrAdd(dev: string, cidr: string, o: { nodad?: boolean } = {}): Promise<void> {
    const c = parseCidr(cidr);
    if (!c || !cidr.includes('/')) throw this.invalid('addrAdd', dev, `bad address ${cidr} (want ADDR/LEN)`);
    await this.withIndexes('addrAdd', dev, [dev], ([index]) =>
      this.sock.newAddress(
        { family: c.family === 4 ? AF_INET : AF_INET6, prefixlen: c.len, index, ...(o.nodad ? { flags: { nodad: true } } : {}) },
        c.family === 4 ? { local: c.bytes, address: c.bytes } : { address: c.bytes },
        NEW,
      ), cidr);
  }

  // ip addr show
  async addrList(): Promise<AddrInfo[]> {
    const [msgs, names] = await Promise.all([
      this.dump('addrList', 'addresses', (s) => s.getAddresses()),
      this.namesByIndex('addrList'),
    ]);
    const out: AddrInfo[] = [];
    for (const m of msgs) {
      const family = m.data.family === AF_INET ? 4 : m.data.family === AF_INET6 ? 6 : null;
      const raw = family === 4 ? (m.attrs.local ?? m.attrs.address) : m.attrs.address;
      if (!family || !raw) continue;
      const index = m.data.index ?? 0;
      out.push({ dev: names.get(index) ?? String(index), index, family, address: formatIp(raw), prefixLen: m.data.prefixlen ?? 0 });
    }
    return out;
  }

  // ip route add DST [via GW] [dev DEV]
  async routeAdd(r: RouteSpec): Promise<void> {
    await this.routeChange('routeAdd', r);
  }

  // ip route del DST [via GW] [dev DEV]
  async routeDel(r: RouteSpec): Promise<void> {
    await this.routeChange('routeDel', r);
  }

  // ip route show table main  (family 6: ip -6 route show table main)
  async routeList(family: 4 | 6 = 4): Promise<RouteInfo[]> {
    const [msgs, names] = await Promise.all([
      this.dump('routeList', 'routes', (s) => s.getRoutes({ family: family === 4 ? AF_INET : AF_INET6 })),
      this.namesByIndex('routeList'),
    ]);
    const out: RouteInfo[] = [];
    for (const m of msgs) {
      const table = m.attrs.table ?? m.data.table ?? 0;
      if (table !== RT_TABLE_MAIN) continue;
      const dst = m.attrs.dst ? formatIp(m.attrs.dst) : family === 4 ? '0.0.0.0' : '::';
      const oif = m.attrs.oif;
      const proto = m.data.protocol ?? 0;
      out.push({
        dst: `${dst}/${m.data.dstLen ?? 0}`,
        via: m.attrs.gateway ? formatIp(m.attrs.gateway) : null,
        dev: oif === undefined ? null : (names.get(oif) ?? String(oif)),
        table,
        protocol: typeof proto === 'string' ? proto.toLowerCase() : String(proto),
      });
    }
    return out;
  }

  // ip neigh add IP lladdr MAC dev DEV nud permanent
  async neighAdd(dev: string, ip: string, mac: string): Promise<void> {
    const addr = parseIp(ip);
    if (!addr) throw this.invalid('neighAdd', dev, `bad address ${ip}`);
    const lladdr = this.mac(mac, 'neighAdd', dev)!;
    await this.withIndexes('neighAdd', dev, [dev], ([ifindex]) =>
      this.sock.newNeighbor(
        { family: addr.family === 4 ? AF_INET : AF_INET6, ifindex, state: { permanent: true } },
        { dst: addr.bytes, lladdr },
        NEW,
      ), ip);
  }

  // bridge fdb append MAC dev DEV dst IP  (00:00:00:00:00:00: flood BUM traffic to IP)
  async fdbAppend(dev: string, mac: string, dstIp: string): Promise<void> {
    const addr = parseIp(dstIp);
    if (!addr) throw this.invalid('fdbAppend', dev, `bad address ${dstIp}`);
    const lladdr = this.mac(mac, 'fdbAppend', dev)!;
    await this.withIndexes('fdbAppend', dev, [dev], ([ifindex]) =>
      this.sock.newNeighbor(
        { family: AF_BRIDGE, ifindex, state: { permanent: true }, flags: { self: true } },
        { lladdr, dst: addr.bytes },
        { flags: FlagsNew.CREATE | FlagsNew.APPEND },
      ), `${mac} dst ${dstIp}`);
  }

  // sysctl -w KEY=VALUE  (ip netns exec NAME sysctl -w KEY=VALUE)
  sysctlSet(key: string, value: string): void {
    if (!/^[A-Za-z0-9_.\/-]+$/.test(key) || key.includes('..')) throw this.invalid('sysctlSet', key, 'bad key');
    // sysctl's own rule: with a '/' in the key, '/' separates and '.' is literal (eth0.10).
    const file = path.join('/proc/sys', key.includes('/') ? key : key.replace(/\./g, '/'));
    // /proc/sys/net resolves to the netns of the opening thread, so the open is the one call
    // that has to happen inside the window.
    try {
      this.kernel.inNetns(this.fd, 'sysctlSet', key, () => fs.writeFileSync(file, value));
    } catch (e) {
      throw toKernelError(e, 'sysctlSet', key, this.label, `= ${value}`);
    }
  }

  // ---------------------------------------------------------------- internals

  /** @internal (Kernel.netnsDel/close) Closes the sockets and fd that pin the netns and fails
   *  requests still waiting. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.fail(new KernelError('close', 'socket', this.label, 'ECANCELED', 'namespace handle closed'));
    this.sock.socket.close();
    this.dumpSock?.socket.close();
    if (this.name !== null) fs.closeSync(this.fd);
  }

  /** A socket error reported through recvmsg fails the requests whose replies it lost (the
   *  package would otherwise throw it as an unhandled 'error' event). */
  private watch(sock: RtNetlinkSocket): void {
    sock.socket.on('error', (e) => {
      const f = this.fail;
      this.armFailure();
      f(e);
    });
  }

  /** Runs one dump on the dump socket, after the previous dump has finished. */
  private dump<T>(op: string, object: string, send: (s: RtNetlinkSocket) => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      if (this.disposed) throw new KernelError(op, object, this.label, 'EBADF', 'namespace handle closed');
      if (!this.dumpSock) {
        this.dumpSock = this.kernel.socketIn(this.fd, op, this.label);
        this.watch(this.dumpSock);
      }
      try {
        return await Promise.race([send(this.dumpSock), this.failure]);
      } catch (e) {
        throw toKernelError(e, op, object, this.label);
      }
    };
    const p = this.dumpChain.then(run, run);
    this.dumpChain = p.catch(() => undefined);
    return p;
  }

  private armFailure(): void {
    this.failure = new Promise<never>((_, reject) => { this.fail = reject; });
    this.failure.catch(() => { /* observed through request() */ });
  }

  /** Sends one request once its reply fits the receive-buffer budget, and turns any failure
   *  into a KernelError. */
  private async request<T>(op: string, object: string, send: () => Promise<T>, detail?: string, cost = ACK_COST): Promise<T> {
    if (this.used + cost > this.budget || this.waiting.length) {
      await new Promise<void>((go) => this.waiting.push({ cost, go }));
    } else {
      this.used += cost;
    }
    try {
      if (this.disposed) throw new KernelError(op, object, this.label, 'EBADF', 'namespace handle closed');
      return await Promise.race([send(), this.failure]);
    } catch (e) {
      throw toKernelError(e, op, object, this.label, detail);
    } finally {
      this.used -= cost;
      while (this.waiting.length && this.used + this.waiting[0].cost <= this.budget) {
        const next = this.waiting.shift()!;
        this.used += next.cost;
        next.go();
      }
    }
  }

  /** ifindex of a link here: if_nametoindex (an ioctl) in a setns window, ~10x cheaper than a
   *  GETLINK round trip and with no reply to buffer. */
  private resolveIndex(op: string, name: string): number {
    const cached = this.index.get(name);
    if (cached !== undefined) return cached;
    const index = this.kernel.inNetns(this.fd, op, name, () => c_if_nametoindex(name));
    if (!index) throw new KernelError(op, name, this.label, errnoName(koffi.errno() || ERRNO_NUMBERS.ENODEV));
    this.index.set(name, index);
    return index;
  }

  /** Resolves names to ifindexes, runs send, and retries once on ENODEV if a cached index
   *  may have been stale (the link was deleted and re-made behind our back). */
  private async withIndexes<T>(op: string, object: string, names: string[], send: (ix: number[]) => Promise<T>, detail?: string): Promise<T> {
    const cached = names.some((n) => this.index.has(n));
    const ix = names.map((n) => this.resolveIndex(op, n));
    try {
      return await this.request(op, object, () => send(ix), detail);
    } catch (e) {
      if (!cached || !(e instanceof KernelError) || e.errno !== 'ENODEV') throw e;
      for (const n of names) this.index.delete(n);
      const fresh = names.map((n) => this.resolveIndex(op, n));
      return this.request(op, object, () => send(fresh), detail);
    }
  }

  /** SETLINK addressed by name (ifindex 0 + IFLA_IFNAME): no lookup round trip needed. */
  private async setByName(op: string, name: string, hdr: rt.Link, attrs: ifla.LinkAttrs): Promise<void> {
    await this.request(op, name, () => this.sock.setLink({ ...hdr, index: 0 }, { ...attrs, ifname: name }));
  }

  private async routeChange(op: 'routeAdd' | 'routeDel', r: RouteSpec): Promise<void> {
    const dst = parseCidr(r.dst);
    if (!dst) throw this.invalid(op, r.dst, 'bad destination');
    const via = r.via === undefined ? undefined : parseIp(r.via);
    if (r.via !== undefined && (!via || via.family !== dst.family)) throw this.invalid(op, r.dst, `bad gateway ${r.via}`);
    const family = dst.family === 4 ? AF_INET : AF_INET6;
    // As iproute2: a delete matches any scope/type/protocol; an add is a static unicast route
    // ('proto boot'), link-scoped when there is no gateway.
    const hdr: rt.Route = op === 'routeAdd'
      ? { family, dstLen: dst.len, table: RT_TABLE_MAIN, protocol: 'BOOT', scope: via ? 'UNIVERSE' : 'LINK', type: 'UNICAST' }
      : { family, dstLen: dst.len, table: RT_TABLE_MAIN, scope: 'NOWHERE' };
    const object = `${r.dst}${r.via ? ` via ${r.via}` : ''}${r.dev ? ` dev ${r.dev}` : ''}`;
    await this.withIndexes(op, object, r.dev === undefined ? [] : [r.dev], ([oif]) => {
      const attrs: rt.RouteAttrs = { dst: dst.len ? dst.bytes : undefined, gateway: via?.bytes, oif };
      return op === 'routeAdd' ? this.sock.newRoute(hdr, attrs, NEW) : this.sock.delRoute(hdr, attrs);
    });
  }

  private async namesByIndex(op: string): Promise<Map<number, string>> {
    const msgs = await this.dump(op, 'links', (s) => s.getLinks({}, { extMask: SKIP_STATS }));
    return new Map(msgs.map((m) => [m.data.index ?? 0, m.attrs.ifname ?? '']));
  }

  private mac(s: string | undefined, op: string, object: string): Buffer | undefined {
    if (s === undefined) return undefined;
    const b = parseMac(s);
    if (!b) throw this.invalid(op, object, `bad MAC ${s}`);
    return b;
  }

  private invalid(op: string, object: string, why: string): KernelError {
    return new KernelError(op, object, this.label, 'EINVAL', why);
  }
}

function toLinkInfo(m: rt.LinkMessage): LinkInfo {
  const a = m.attrs;
  const flags = m.data.flags ?? {};
  let kind: string | null = null;
  let vxlan: VxlanInfo | undefined;
  if (a.linkinfo) {
    try {
      const info = ifla.parseInfo(a.linkinfo);
      kind = info.kind ?? null;
      if (kind === 'vxlan' && info.data) {
        const v = ifla.parseVxlan(info.data);
        const local = v.local ?? v.local6;
        vxlan = {
          vni: v.id ?? 0, local: local ? formatIp(local) : null, port: v.port ? v.port.readUInt16BE(0) : 0,
          learning: v.learning === 1, proxy: v.proxy === 1, link: v.link ? v.link : null,
        };
      }
    } catch {
      kind = null;
    }
  }
  const up = flags.up === true;
  return {
    index: m.data.index ?? 0,
    name: a.ifname ?? '',
    kind,
    up,
    operUp: a.operstate === IF_OPER_UP || (a.operstate === IF_OPER_UNKNOWN && up && flags.lowerUp === true),
    mtu: a.mtu ?? 0,
    mac: formatMac(a.address),
    master: a.master ? a.master : null,
    alias: a.ifalias ? a.ifalias : null,
    group: a.group ?? 0,
    ...(vxlan ? { vxlan } : {}),
  };
}

// ---------------------------------------------------------------- nftables

const NFT_FAMILIES = new Set(['ip', 'ip6', 'inet', 'arp', 'bridge', 'netdev']);

/** Runs nft in the namespace netlab runs in. NETLAB_NFT overrides the binary (tests use it to
 *  check the message shown when nftables is missing). */
function runNft(op: string, object: string, args: string[], input?: string): string {
  const bin = process.env.NETLAB_NFT || 'nft';
  const env = { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` };
  const res = spawnSync(bin, args, { input, encoding: 'utf8', env, stdio: ['pipe', 'pipe', 'pipe'] });
  if (res.error) {
    const errno = errnoOf(res.error);
    if (errno === 'ENOENT') {
      throw new KernelError(op, object, 'host', 'ENOPKG', `${bin} not found: install the nftables package (apt-get install nftables)`);
    }
    throw new KernelError(op, object, 'host', errno, `running ${bin}`, { cause: res.error });
  }
  if (res.status !== 0) {
    const stderr = (res.stderr ?? '').trim();
    // nft prints only strerror text ("Could not process rule: File exists"); a parse error has none.
    throw new KernelError(op, object, 'host', errnoFromText(stderr) ?? 'EINVAL',
      `nft exited with ${res.status ?? res.signal}: ${stderr.split('\n').slice(0, 6).join(' | ')}`);
  }
  return res.stdout ?? '';
}

// nft -f -   (the whole ruleset is one transaction: applied completely or not at all)
/** Makes `dir` a tmpfs unless it already lives on one: netlab's state and container layers are
 *  runtime data (gone at reboot, like the kernel objects they describe), and on a disk they
 *  cost ~1 ms per file. Only an empty or missing directory is mounted over, so existing state
 *  is never hidden. Returns true when it mounted. (mount -t tmpfs -o mode=755 tmpfs DIR) */
export function ensureTmpfs(dir: string): boolean {
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const real = fs.realpathSync(dir);
  if (mountOf(real).fstype === 'tmpfs' || fs.readdirSync(real).length > 0) return false;
  if (c_mount('tmpfs', real, 'tmpfs', 0, 'mode=755') < 0) throw sysFail('mount', real, 'host', 'tmpfs');
  return true;
}

/** The mount that holds `path` (the longest mount point above it), from /proc/self/mountinfo. */
function mountOf(path: string): { mountPoint: string; fstype: string } {
  let best = { mountPoint: '', fstype: '' };
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (sep < 0) continue;
    const mp = f[4].replace(/\\040/g, ' ');
    const under = path === mp || path.startsWith(mp === '/' ? '/' : `${mp}/`);
    if (under && mp.length > best.mountPoint.length) best = { mountPoint: mp, fstype: f[sep + 1] };
  }
  return best;
}

/** Undoes ensureTmpfs: unmounts `dir` when it is itself a tmpfs mount point (not when it merely
 *  lies on one, as under a tmpfs /run). A busy mount stays. Returns true when it unmounted.
 *  (umount DIR) */
export function releaseTmpfs(dir: string): boolean {
  let real: string;
  try { real = fs.realpathSync(dir); } catch { return false; }
  const m = mountOf(real);
  return m.mountPoint === real && m.fstype === 'tmpfs' && c_umount2(real, 0) === 0;
}

export function nftApply(ruleset: string): void {
  const m = /\btable\s+(\w+)\s+([\w.-]+)/.exec(ruleset);
  runNft('nftApply', m ? `table ${m[1]} ${m[2]}` : 'ruleset', ['-f', '-'], ruleset);
}

// nft delete table FAMILY NAME   (no error when it does not exist)
export function nftDeleteTable(family: string, name: string): void {
  const object = `table ${family} ${name}`;
  if (!NFT_FAMILIES.has(family) || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
    throw new KernelError('nftDeleteTable', object, 'host', 'EINVAL', 'bad family or table name');
  }
  // Declaring the table first makes the delete succeed whether it existed or not, in one
  // transaction (nft 1.0.6 has no `destroy`).
  runNft('nftDeleteTable', object, ['-f', '-'], `table ${family} ${name}\ndelete table ${family} ${name}\n`);
}

// nft list tables
export function nftListTables(): { family: string; name: string }[] {
  const out = runNft('nftListTables', 'tables', ['-j', 'list', 'tables']);
  try {
    const items = (JSON.parse(out) as { nftables?: { table?: { family: string; name: string } }[] }).nftables ?? [];
    return items.flatMap((i) => (i.table ? [{ family: i.table.family, name: i.table.name }] : []));
  } catch (e) {
    throw new KernelError('nftListTables', 'tables', 'host', 'EPROTO', `unparsable nft -j output: ${String(e)}`);
  }
}

// ---------------------------------------------------------------- iptables

/** iptables-save/-restore of the namespace netlab runs in. NETLAB_IPTABLES overrides the
 *  `iptables` part of both names (tests point it at a missing file). */
function iptablesBin(tool: 'save' | 'restore'): string {
  return `${process.env.NETLAB_IPTABLES || 'iptables'}-${tool}`;
}

/** `iptables-save -t TABLE`, or null when there is nothing to look at: iptables is not
 *  installed (then no Docker either), or this kernel or backend has no such table to read. */
export function iptablesSave(table: string): string | null {
  const bin = iptablesBin('save');
  const env = { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` };
  const res = spawnSync(bin, ['-t', table], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'pipe'] });
  if (res.error) {
    if (errnoOf(res.error) === 'ENOENT') return null;
    throw new KernelError('iptablesSave', `table ${table}`, 'host', errnoOf(res.error), `running ${bin}`, { cause: res.error });
  }
  return res.status === 0 ? res.stdout : null;
}

// iptables-restore -w 10 --noflush   (one transaction on the tables named in the input)
export function iptablesRestore(input: string): void {
  const bin = iptablesBin('restore');
  const env = { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` };
  const res = spawnSync(bin, ['-w', '10', '--noflush'], { input, encoding: 'utf8', env, stdio: ['pipe', 'pipe', 'pipe'] });
  const object = input.split('\n').find((l) => l.startsWith('-')) ?? 'rules';
  if (res.error) throw new KernelError('iptablesRestore', object, 'host', errnoOf(res.error) === 'ENOENT' ? 'ENOPKG' : errnoOf(res.error), `running ${bin}`, { cause: res.error });
  if (res.status !== 0) {
    const stderr = (res.stderr ?? '').trim();
    throw new KernelError('iptablesRestore', object, 'host', errnoFromText(stderr) ?? 'EINVAL', `${bin} exited with ${res.status ?? res.signal}: ${stderr.split('\n').slice(0, 4).join(' | ')}`);
  }
}
