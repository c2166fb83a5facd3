// controller/kernel/: the only part of netlab that changes the kernel (netlink, the nft and
// iptables tools, /proc/sys, mounts). This file is its public interface: importers use this
// path and nothing behind it.
export { Kernel, NetnsHandle } from './kernel.js';
export { KernelError } from './errors.js';
export type { LinkEvent, LinkMonitor } from './monitor.js';
export type {
  AddrInfo, BridgeOptions, FdbEntry, LinkInfo, LinkSetOptions, RouteInfo, RouteSpec, VethOptions, VxlanInfo, VxlanOptions,
} from './types.js';
export { nftApply, nftDeleteTable, nftListTables } from './nft.js';
export { iptablesRestore, iptablesSave } from './iptables.js';
export { hostSysctlGet, hostSysctlSet } from './sysctl.js';
export { ensureTmpfs, netnsMountsPrivate, releaseTmpfs } from './mounts.js';
