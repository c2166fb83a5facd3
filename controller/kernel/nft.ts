// The one nft door: every nftables change netlab makes goes through `nft -f -` (a ruleset is
// applied atomically, and nft's netlink protocol is not worth re-implementing), run with no
// shell, its exit status checked and its stderr turned into a KernelError.
import { spawnSync } from 'node:child_process';
import { errnoFromText } from './libc.js';
import { errnoOf, KernelError } from './errors.js';

const NFT_FAMILIES = new Set(['ip', 'ip6', 'inet', 'arp', 'bridge', 'netdev']);

/** Runs nft in the namespace netlab runs in, or (netns) in a named network namespace through
 *  nsenter. NETLAB_NFT overrides the binary (tests use it to check the message shown when
 *  nftables is missing). */
function runNft(op: string, object: string, args: string[], input?: string, netns?: string): string {
  const bin = process.env.NETLAB_NFT || 'nft';
  const env = { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` };
  const [cmd, argv] = netns ? ['nsenter', [`--net=/run/netns/${netns}`, '--', bin, ...args]] : [bin, args];
  const res = spawnSync(cmd, argv, { input, encoding: 'utf8', env, stdio: ['pipe', 'pipe', 'pipe'] });
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

/** Equivalent to: `nft -f -` (the whole ruleset is one transaction: applied completely or not
 *  at all) */
export function nftApply(ruleset: string): void {
  const m = /\btable\s+(\w+)\s+([\w.-]+)/.exec(ruleset);
  runNft('nftApply', m ? `table ${m[1]} ${m[2]}` : 'ruleset', ['-f', '-'], ruleset);
}

/** Equivalent to: `ip netns exec NETNS nft -f -` (one transaction in that namespace) */
export function nftApplyIn(netns: string, ruleset: string): void {
  if (!/^[A-Za-z0-9_.+-]+$/.test(netns)) throw new KernelError('nftApplyIn', netns, netns, 'EINVAL', 'bad namespace name');
  const m = /\btable\s+(\w+)\s+([\w.-]+)/.exec(ruleset);
  runNft('nftApplyIn', m ? `table ${m[1]} ${m[2]} in ${netns}` : `ruleset in ${netns}`, ['-f', '-'], ruleset, netns);
}

/** Equivalent to: `nft delete table FAMILY NAME` (no error when it does not exist) */
export function nftDeleteTable(family: string, name: string): void {
  const object = `table ${family} ${name}`;
  if (!NFT_FAMILIES.has(family) || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
    throw new KernelError('nftDeleteTable', object, 'host', 'EINVAL', 'bad family or table name');
  }
  // Declaring the table first makes the delete succeed whether it existed or not, in one
  // transaction (nft 1.0.6 has no `destroy`).
  runNft('nftDeleteTable', object, ['-f', '-'], `table ${family} ${name}\ndelete table ${family} ${name}\n`);
}

/** Equivalent to: `nft list tables` */
export function nftListTables(): { family: string; name: string }[] {
  const out = runNft('nftListTables', 'tables', ['-j', 'list', 'tables']);
  try {
    const items = (JSON.parse(out) as { nftables?: { table?: { family: string; name: string } }[] }).nftables ?? [];
    return items.flatMap((i) => (i.table ? [{ family: i.table.family, name: i.table.name }] : []));
  } catch (e) {
    throw new KernelError('nftListTables', 'tables', 'host', 'EPROTO', `unparsable nft -j output: ${String(e)}`);
  }
}
