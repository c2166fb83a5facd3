// Link notifications (`ip monitor link`): a socket joined to RTNLGRP_LINK in one namespace,
// hardened so a burst of notifications can never abort the process, and each RTM_NEWLINK /
// RTM_DELLINK parsed into a LinkEvent. Kernel.monitorLinks makes the socket (it has to be
// made inside the namespace) and hands it here.
import * as fs from 'node:fs';
import { rt } from 'netlink';
import type { NetlinkMessage, RtNetlinkSocket } from 'netlink';
import { c_getsockname, c_setsockopt } from './libc.js';
import { KernelError, toKernelError } from './errors.js';
import { RCVBUF_WANTED, toLinkInfo } from './codec.js';
import type { LinkInfo } from './types.js';

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

/** Turns a fresh rtnetlink socket of namespace `netns` into a link monitor: joins
 *  RTNLGRP_LINK and passes each notification to onEvent until close(). Closes the socket when
 *  joining fails. */
export function startLinkMonitor(sock: RtNetlinkSocket, netns: string | null, onEvent: (e: LinkEvent) => void): LinkMonitor {
  const label = netns ?? 'host';
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
