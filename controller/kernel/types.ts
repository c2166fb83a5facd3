// The data types of controller/kernel/'s interface: what rtnetlink reports (links, addresses,
// routes, FDB entries) and the options of the operations that make them.

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

/** A link's traffic counters (IFLA_STATS64, as `ip -s link show` prints them). */
export interface LinkCounters {
  index: number;
  name: string;
  rxBytes: number;
  txBytes: number;
  rxPackets: number;
  txPackets: number;
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
  /** RTA_PRIORITY ('metric' in iproute2); absent: 0. */
  metric?: number;
  /** Several next hops of one route (RTA_MULTIPATH), instead of via/dev. */
  nexthops?: { via: string; dev?: string }[];
}

export interface RouteInfo {
  dst: string;
  via: string | null;
  dev: string | null;
  /** RTA_PRIORITY (0 when absent). */
  metric: number;
  /** A multipath route's next hops (null for a single-path route). */
  nexthops: { via: string | null; dev: string | null; dead: boolean }[] | null;
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

export interface QdiscInfo {
  dev: string;
  kind: string;
  handle: number;
  /** tbf and netem options, decoded (null for other kinds). */
  spec: import('./tc.js').QdiscSpec | null;
}
