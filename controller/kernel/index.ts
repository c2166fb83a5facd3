// controller/kernel/: the only part of netlab that changes the kernel (netlink, the nft and
// iptables tools, /proc/sys, mounts). This file is its public interface: importers use this
// path and nothing behind it.
export { Kernel, NetnsHandle } from './kernel.js';
export { KernelError } from './errors.js';
export type { LinkEvent, LinkMonitor } from './monitor.js';
export type {
  AddrInfo, BridgeOptions, FdbEntry, LinkCounters, LinkInfo, LinkSetOptions, QdiscInfo, RouteInfo, RouteSpec, VethOptions, VxlanInfo, VxlanOptions,
} from './types.js';
export { nftApply, nftApplyIn, nftDeleteTable, nftListTables } from './nft.js';
export { netemAvailable, tbfFor, type QdiscSpec, type NetemSpec, type TbfSpec } from './tc.js';
export { iptablesRestore, iptablesSave } from './iptables.js';
export { hostSysctlGet, hostSysctlSet } from './sysctl.js';
export { ensureTmpfs, netnsMountsPrivate, releaseTmpfs } from './mounts.js';
