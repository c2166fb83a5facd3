// The Kernel (one per process: the home-namespace fd and every namespace handle) and the
// NetnsHandle of one network namespace: named namespaces under /run/netns (made without
// spawning `ip`), one rtnetlink socket per namespace, links (bridge, veth, vxlan), addresses,
// routes, neighbours, FDB entries and per-netns sysctls. The rest of controller/kernel/ holds
// the pieces (libc, errors, codec, monitor, nft, iptables, sysctl, mounts); index.ts is the
// only way in for the rest of netlab, so tests, dry runs and error reporting have one seam.
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
import * as path from 'node:path';
import { FlagsNew, createRtNetlink, ifla, rt } from 'netlink';
import type { RtNetlinkSocket } from 'netlink';
import {
  CLONE_NEWNET, MNT_DETACH, MS_BIND, ERRNO_NUMBERS, c_gettid, c_if_nametoindex, c_mount, c_setns, c_umount2, c_unshare,
  errnoName, lastErrno,
} from './libc.js';
import { KernelError, errnoOf, sysFail, toKernelError } from './errors.js';
import {
  ACK_COST, AF_BRIDGE, AF_INET, AF_INET6, GETLINK_COST, NEW, RCVBUF_WANTED, RT_TABLE_MAIN, SKIP_STATS,
  be16, decodeMultipath, encodeMultipath, formatIp, formatMac, linkinfo, parseCidr, parseIp, parseMac, toBuf, toLinkCounters, toLinkInfo, upHeader,
} from './codec.js';
import { startLinkMonitor, type LinkEvent, type LinkMonitor } from './monitor.js';
import { NETNS_RUN_DIR, checkNetnsName, ensureNetnsDir } from './mounts.js';
import { nftApply } from './nft.js';
import { sysctlPath, validSysctlKey } from './sysctl.js';
import { NETLAB_QDISC_HANDLE, TC_H_ROOT, decodeQdisc, encodeNetem, encodeTbf, type QdiscSpec } from './tc.js';
import type {
  AddrInfo, BridgeOptions, FdbEntry, LinkCounters, LinkInfo, LinkSetOptions, QdiscInfo, RouteInfo, RouteSpec, VethOptions, VxlanOptions,
} from './types.js';

const HANDLE_TOKEN = Symbol('NetnsHandle');

/** Entry point: owns the home-namespace fd and one NetnsHandle per namespace touched. */
export class Kernel {
  private readonly handles = new Map<string | null, NetnsHandle>();
  private closed = false;

  private constructor(private readonly homeFd: number) {}

  /** Equivalent to: `mount --make-rshared /run/netns` (as `ip netns add` does first). Also starts
   *  the libuv pool in the home namespace and opens its fd. */
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

  /** Equivalent to: `ip netns add NAME` */
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

  /** Equivalent to: `ip netns del NAME` */
  netnsDel(name: string): void {
    this.assertOpen();
    checkNetnsName(name, 'netnsDel');
    // Our socket and fd would keep the namespace (and every veth in it) alive after the unmount.
    this.handles.get(name)?.dispose();
    this.handles.delete(name);
    const file = path.join(NETNS_RUN_DIR, name);
    if (c_umount2(file, MNT_DETACH) < 0) {
      const errno = errnoName(lastErrno());
      // EINVAL: not a mount point (half-made or already unmounted); ENOENT: gone already.
      if (errno !== 'EINVAL' && errno !== 'ENOENT') throw new KernelError('netnsDel', name, 'host', errno, 'umount');
    }
    try {
      fs.unlinkSync(file);
    } catch (e) {
      if (errnoOf(e) !== 'ENOENT') throw toKernelError(e, 'netnsDel', name, 'host');
    }
  }

  /** Equivalent to: `ip netns list` */
  netnsList(): string[] {
    try {
      return fs.readdirSync(NETNS_RUN_DIR).sort();
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return [];
      throw toKernelError(e, 'netnsList', NETNS_RUN_DIR, 'host');
    }
  }

  /** Equivalent to: `ip -n NAME ...` (null: the namespace netlab runs in) */
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

  /** Equivalent to: `nft -f -` (the same as nft.ts's nftApply; here so a Kernel is the whole
   *  kernel API) */
  nftApply(ruleset: string): void {
    nftApply(ruleset);
  }

  /** Equivalent to: `ip -n NAME monitor link` (null: the namespace netlab runs in).
   *  Subscribes to link notifications (RTNLGRP_LINK) inside a namespace: a socket made in a
   *  synchronous setns window, as the handles' are, joined to the multicast group. Each
   *  RTM_NEWLINK/RTM_DELLINK is parsed with its type (the package's own 'message' event drops
   *  it, so new and deleted links would look alike) and passed to onEvent; a receive error
   *  (ENOBUFS: the kernel dropped notifications) is passed as a 'lost' event, after which the
   *  caller should re-read what it shows. The socket pins the namespace: close() the monitor
   *  when the namespace goes away (the caller watches /run/netns). It does not keep the event
   *  loop alive, and is not tracked by close(). */
  monitorLinks(netns: string | null, onEvent: (e: LinkEvent) => void): LinkMonitor {
    this.assertOpen();
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
    return startLinkMonitor(sock, netns, onEvent);
  }

  /** Equivalent to: nothing in iproute2; closes every socket and fd this Kernel holds. */
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

  /** Equivalent to: `ip link add NAME type bridge` */
  async linkAddBridge(name: string, o: BridgeOptions = {}): Promise<void> {
    const address = this.mac(o.mac, 'linkAdd', name);
    await this.request('linkAdd', name, () =>
      this.sock.newLink(upHeader(o.up), {
        ifname: name, mtu: o.mtu, address, group: o.group, linkinfo: linkinfo('bridge'),
      }, NEW));
    // IFLA_IFALIAS is ignored by the kernel on create (rtnl_create_link does not read it).
    if (o.alias !== undefined) await this.setByName('linkAdd', name, {}, { ifalias: o.alias });
  }

  /** Equivalent to: `ip link add NAME type veth peer name PEER netns PEERNS` */
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

  /** Equivalent to: `ip link add NAME type vxlan id VNI [local ADDR] [dev DEV] dstport PORT [nolearning]` */
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

  /** Equivalent to: `ip link set NAME [up|down] [mtu N] [address MAC] [master BR|nomaster] [alias TEXT] [group G]` */
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

  /** Equivalent to: `ip link del NAME` */
  async linkDel(name: string): Promise<void> {
    this.index.delete(name);
    await this.request('linkDel', name, () => this.sock.delLink({ index: 0 }, { ifname: name }));
  }

  /** Equivalent to: `ip link del group G` (one message, one unregister batch: ~0.8 ms a link
   *  instead of ~22 ms); returns false when the group had no link here, so teardown can be
   *  repeated. */
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

  /** Equivalent to: `ip -d link show` */
  async linkList(): Promise<LinkInfo[]> {
    const msgs = await this.dump('linkList', 'links', (s) => s.getLinks({}, { extMask: SKIP_STATS }));
    return msgs.map(toLinkInfo);
  }

  /** Equivalent to: `ip -s link show`: every link's traffic counters (IFLA_STATS64). linkList
   *  asks the kernel to leave them out (RTEXT_FILTER_SKIP_STATS: half the reply); this dump asks
   *  for them. */
  async linkStats(): Promise<LinkCounters[]> {
    const msgs = await this.dump('linkStats', 'links', (s) => s.getLinks({}));
    return msgs.map(toLinkCounters);
  }

  /** Equivalent to: `bridge fdb show` (every entry of every bridge port and VXLAN device here) */
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

  /** Equivalent to: `ip -d link show NAME` (null when there is no such link) */
  async linkGet(name: string): Promise<LinkInfo | null> {
    try {
      const [m] = await this.request('linkGet', name, () => this.sock.getLink({}, { ifname: name, extMask: SKIP_STATS }), undefined, GETLINK_COST);
      return m ? toLinkInfo(m) : null;
    } catch (e) {
      if (e instanceof KernelError && e.errno === 'ENODEV') return null;
      throw e;
    }
  }

  /** Equivalent to: `ip addr add CIDR dev DEV [nodad]` */
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

  /** Equivalent to: `ip addr show` */
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

  /** Equivalent to: `ip route add DST [via GW] [dev DEV] [metric M]`, or with `nexthops`:
   *  `ip route add DST [metric M] nexthop via A [dev D] nexthop via B ...` */
  async routeAdd(r: RouteSpec): Promise<void> {
    await this.routeChange('routeAdd', r);
  }

  /** Equivalent to: `ip route del DST [via GW] [dev DEV]` */
  async routeDel(r: RouteSpec): Promise<void> {
    await this.routeChange('routeDel', r);
  }

  /** Equivalent to: `ip route show table main` (family 6: `ip -6 route show table main`) */
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
      const name = (ix: number) => names.get(ix) ?? String(ix);
      out.push({
        dst: `${dst}/${m.data.dstLen ?? 0}`,
        via: m.attrs.gateway ? formatIp(m.attrs.gateway) : null,
        dev: oif === undefined ? null : name(oif),
        metric: m.attrs.priority ?? 0,
        nexthops: m.attrs.multipath
          ? decodeMultipath(m.attrs.multipath).map((h) => ({ via: h.gateway ? formatIp(h.gateway) : null, dev: h.ifindex ? name(h.ifindex) : null, dead: h.dead }))
          : null,
        table,
        protocol: typeof proto === 'string' ? proto.toLowerCase() : String(proto),
      });
    }
    return out;
  }

  /** Equivalent to: `tc qdisc replace dev DEV root handle 1: tbf|netem ...` (netlab's one root
   *  qdisc of the device: created, or replaced in one message) */
  async qdiscReplace(dev: string, q: QdiscSpec): Promise<void> {
    const options = q.kind === 'tbf' ? encodeTbf(q) : encodeNetem(q);
    await this.withIndexes('qdiscReplace', `${dev} ${q.kind}`, [dev], ([ifindex]) =>
      this.sock.newQdisc({ family: 0, ifindex, handle: NETLAB_QDISC_HANDLE, parent: TC_H_ROOT }, { kind: q.kind, options }, { flags: FlagsNew.CREATE | FlagsNew.REPLACE }));
  }

  /** Equivalent to: `tc qdisc del dev DEV root` (nothing to delete is fine: the device keeps
   *  its default qdisc) */
  async qdiscDelete(dev: string): Promise<void> {
    try {
      await this.withIndexes('qdiscDelete', dev, [dev], ([ifindex]) => this.sock.delQdisc({ family: 0, ifindex, parent: TC_H_ROOT }));
    } catch (e) {
      // The kernel answers ENOENT (or EINVAL for a noqueue device) when only the default is there.
      if (!(e instanceof KernelError && (e.errno === 'ENOENT' || e.errno === 'EINVAL'))) throw e;
    }
  }

  /** Equivalent to: `tc -j qdisc show` (root qdiscs only; tbf and netem options decoded) */
  async qdiscList(): Promise<QdiscInfo[]> {
    const [msgs, names] = await Promise.all([
      this.dump('qdiscList', 'qdiscs', (s) => s.getQdiscs({ family: 0 })),
      this.namesByIndex('qdiscList'),
    ]);
    const out: QdiscInfo[] = [];
    for (const m of msgs) {
      if ((m.data.parent ?? 0) !== TC_H_ROOT) continue;
      const kind = m.attrs.kind ?? '';
      const ix = m.data.ifindex ?? 0;
      out.push({ dev: names.get(ix) ?? String(ix), kind, handle: m.data.handle ?? 0, spec: decodeQdisc(kind, m.attrs.options) });
    }
    return out;
  }

  /** Equivalent to: `ip neigh add IP lladdr MAC dev DEV nud permanent` */
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

  /** Equivalent to: `bridge fdb append MAC dev DEV dst IP` (00:00:00:00:00:00: flood BUM
   *  traffic to IP) */
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

  /** Equivalent to: `ip netns exec NAME sysctl -w KEY=VALUE` */
  sysctlSet(key: string, value: string): void {
    if (!validSysctlKey(key)) throw this.invalid('sysctlSet', key, 'bad key');
    const file = sysctlPath(key);
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
    if (!index) throw new KernelError(op, name, this.label, errnoName(lastErrno() || ERRNO_NUMBERS.ENODEV));
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
    const hops = (r.nexthops ?? []).map((h) => {
      const gw = parseIp(h.via);
      if (!gw || gw.family !== dst.family) throw this.invalid(op, r.dst, `bad next hop ${h.via}`);
      return { gateway: gw.bytes, dev: h.dev };
    });
    const hdr: rt.Route = op === 'routeAdd'
      ? { family, dstLen: dst.len, table: RT_TABLE_MAIN, protocol: 'BOOT', scope: via || hops.length > 0 ? 'UNIVERSE' : 'LINK', type: 'UNICAST' }
      : { family, dstLen: dst.len, table: RT_TABLE_MAIN, scope: 'NOWHERE' };
    const metric = r.metric ? ` metric ${r.metric}` : '';
    const object = hops.length > 0
      ? `${r.dst}${metric}${r.nexthops!.map((h) => ` nexthop via ${h.via}${h.dev ? ` dev ${h.dev}` : ''}`).join('')}`
      : `${r.dst}${r.via ? ` via ${r.via}` : ''}${r.dev ? ` dev ${r.dev}` : ''}${metric}`;
    const devs = hops.length > 0 ? hops.flatMap((h) => (h.dev === undefined ? [] : [h.dev])) : r.dev === undefined ? [] : [r.dev];
    await this.withIndexes(op, object, devs, (ix) => {
      const attrs: rt.RouteAttrs = { dst: dst.len ? dst.bytes : undefined, priority: r.metric || undefined };
      if (hops.length > 0) {
        let k = 0;
        attrs.multipath = encodeMultipath(hops.map((h) => ({ gateway: h.gateway, ifindex: h.dev === undefined ? 0 : ix[k++] })));
      } else {
        attrs.gateway = via?.bytes;
        attrs.oif = ix[0];
      }
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

