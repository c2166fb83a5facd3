// Name resolution for dns checks, done by netlab rather than by a tool inside the image (most
// images have no ping or nslookup): the node's own files decide, as its C library would. This
// module owns reading them through the container's root (/etc/nsswitch.conf's `hosts:` order,
// /etc/hosts, /etc/resolv.conf), the glibc-like rules for each (hosts matching, the search list
// with ndots, timeout and attempts, the fallback between sources), and the wording of the
// result. The network part, one A query sent from inside the node's namespace, is the probe
// helper's (a `dns` probe, checks/probe.ts). IPv4 only: checks compare IPv4 addresses.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isIpv4 } from '../topology/ipam.js';
import type { ProbeResult } from './probe.js';

// ---------------------------------------------------------------- /etc/hosts

/** The first IPv4 address /etc/hosts gives NAME (canonical name or alias, case-insensitive),
 *  as glibc's files source does for an A lookup; null when no line names it. */
export function hostsLookup(text: string, name: string): string | null {
  const want = name.toLowerCase();
  for (const raw of text.split('\n')) {
    const [address, ...names] = raw.replace(/#.*/, '').trim().split(/\s+/);
    if (!address || !isIpv4(address)) continue; // IPv6 lines (::1 localhost) answer no A lookup
    if (names.some((n) => n.toLowerCase() === want)) return address;
  }
  return null;
}

// ---------------------------------------------------------------- /etc/nsswitch.conf

export type NssStatus = 'success' | 'notfound' | 'unavail' | 'tryagain';
export interface NssSource {
  name: 'files' | 'dns';
  /** What to do after this source ends in a status; absent: return on success, else continue. */
  actions: Partial<Record<NssStatus, 'return' | 'continue'>>;
}

const STATUSES: NssStatus[] = ['success', 'notfound', 'unavail', 'tryagain'];

/** The `hosts:` sources netlab can follow (files and dns, with their [STATUS=action] items), in
 *  order. Other sources (myhostname, resolve, mdns4...) need services a lab node does not have
 *  and are passed over, their actions with them. No file or no `hosts:` line: files then dns,
 *  which is what musl does (it reads no nsswitch.conf) and what images that have one say. */
export function parseNsswitch(text: string | null): NssSource[] {
  const line = text?.split('\n').map((l) => l.replace(/#.*/, '').trim()).find((l) => /^hosts\s*:/i.test(l));
  if (line === undefined) return [{ name: 'files', actions: {} }, { name: 'dns', actions: {} }];
  const out: NssSource[] = [];
  let last: NssSource | null = null;
  // Items are words or bracketed action lists ("[!UNAVAIL=return]", "[NOTFOUND=return SUCCESS=continue]").
  for (const m of line.replace(/^hosts\s*:/i, '').matchAll(/\[([^\]]*)\]|([^\s[]+)/g)) {
    if (m[2] !== undefined) {
      const name = m[2].toLowerCase();
      last = name === 'files' || name === 'dns' ? { name, actions: {} } : null;
      if (last) out.push(last);
      continue;
    }
    if (!last) continue;
    for (const item of m[1].trim().split(/\s+/)) {
      const a = /^(!?)(\w+)=(\w+)$/.exec(item);
      if (!a) continue;
      const status = a[2].toLowerCase() as NssStatus;
      const action = a[3].toLowerCase();
      if (!STATUSES.includes(status) || (action !== 'return' && action !== 'continue')) continue;
      for (const s of a[1] ? STATUSES.filter((x) => x !== status) : [status]) last.actions[s] = action;
    }
  }
  return out;
}

// ---------------------------------------------------------------- /etc/resolv.conf

export interface ResolvConf {
  /** IPv4 nameservers, at most 3 (glibc's MAXNS); none listed: 127.0.0.1, as glibc. */
  nameservers: string[];
  search: string[];
  ndots: number;
  timeoutMs: number;
  attempts: number;
}

/** resolv.conf as glibc reads it: the last `search` or `domain` line wins, options take glibc's
 *  defaults (ndots 1, timeout 5 s, attempts 2) and caps (15, 30 s, 5). IPv6 nameservers are
 *  left out: the query goes over IPv4. */
export function parseResolvConf(text: string | null): ResolvConf {
  const c: ResolvConf = { nameservers: [], search: [], ndots: 1, timeoutMs: 5000, attempts: 2 };
  for (const raw of (text ?? '').split('\n')) {
    const [key, ...args] = raw.replace(/[#;].*/, '').trim().split(/\s+/);
    if (key === 'nameserver' && args[0] && isIpv4(args[0]) && c.nameservers.length < 3) c.nameservers.push(args[0]);
    else if (key === 'search') c.search = args.filter(Boolean).slice(0, 32);
    else if (key === 'domain' && args[0]) c.search = [args[0]];
    else if (key === 'options') {
      for (const o of args) {
        const m = /^(ndots|timeout|attempts):(\d+)$/.exec(o);
        if (!m) continue;
        const n = Number(m[2]);
        if (m[1] === 'ndots') c.ndots = Math.min(n, 15);
        else if (m[1] === 'timeout') c.timeoutMs = Math.min(Math.max(n, 1), 30) * 1000;
        else c.attempts = Math.min(Math.max(n, 1), 5);
      }
    }
  }
  if (c.nameservers.length === 0) c.nameservers.push('127.0.0.1');
  return c;
}

/** The names a stub resolver asks for NAME, in order (glibc's res_nsearch): a trailing dot
 *  means exactly that name; a name with at least ndots dots is tried as given first, then with
 *  each search domain; one with fewer gets the search domains first and itself last. */
export function queryNames(name: string, c: Pick<ResolvConf, 'search' | 'ndots'>): string[] {
  if (name.endsWith('.')) return [name.slice(0, -1)];
  const dots = name.split('.').length - 1;
  const out: string[] = [];
  if (dots >= c.ndots) out.push(name);
  for (const d of c.search) {
    const full = `${name}.${d.replace(/\.$/, '')}`;
    if (full.length <= 253) out.push(full);
  }
  if (dots < c.ndots) out.push(name);
  return [...new Set(out)];
}

// ---------------------------------------------------------------- resolving

/** The node's files; null for one that is not there. */
export interface NodeFiles { hosts: string | null; resolv: string | null; nsswitch: string | null }

/** One A query: the name, the servers, per-try time, rounds, and the whole time allowed. */
export type DnsQuery = (q: { name: string; servers: string[]; tryMs: number; attempts: number; timeoutMs: number }) => Promise<ProbeResult>;

export interface Resolution {
  /** The address the name resolves to (the first one), or null. */
  address: string | null;
  /** Where it came from, or why there is none ("not in /etc/hosts; DNS: NXDOMAIN ..."). */
  detail: string;
}

const CONTINUE_ON: ReadonlySet<string> = new Set(['nxdomain', 'nodata', 'servfail']);

function dnsWords(r: ProbeResult, servers: string[], ms: number): string {
  const from = r.info ? ` from ${r.info}` : '';
  switch (r.error) {
    case 'nxdomain': return `NXDOMAIN${from}`;
    case 'nodata': return `no A record${from}`;
    case 'servfail': return `SERVFAIL${from}`;
    case 'refused': return `REFUSED${from}`;
    case 'notimp': return `NOTIMP${from}`;
    case 'truncated': return `truncated answer${from} (netlab does not retry over TCP)`;
    case 'timeout': return `timed out after ${ms} ms (${servers.join(', ')})`;
    default: return r.info ?? r.error ?? 'failed';
  }
}

/** The DNS source: every name of the search list in turn, each query within what is left of
 *  the time. As glibc: an answer ends it; NXDOMAIN, no A record or SERVFAIL go on to the next
 *  name; anything else (a timeout, no server reachable) ends the search there. Unsuccessful,
 *  it reports "no A record" if any name had one without an A, else SERVFAIL if any server said
 *  so, else the last result. */
async function viaDns(name: string, conf: ResolvConf, query: DnsQuery, deadline: number): Promise<{ status: NssStatus; address: string | null; why: string }> {
  const names = queryNames(name, conf);
  const tried: { name: string; r: ProbeResult; ms: number }[] = [];
  for (const n of names) {
    const left = Math.floor(deadline - performance.now());
    if (left <= 0) break;
    const r = await query({ name: n, servers: conf.nameservers, tryMs: conf.timeoutMs, attempts: conf.attempts, timeoutMs: left });
    if (r.ok && r.addresses?.length) return { status: 'success', address: r.addresses[0], why: `${n} via DNS` };
    tried.push({ name: n, r, ms: left });
    if (!CONTINUE_ON.has(r.error ?? '')) break;
  }
  if (tried.length === 0) return { status: 'tryagain', address: null, why: `DNS ${name}: no time left to ask` };
  const pick = tried.find((t) => t.r.error === 'nodata') ?? tried.find((t) => t.r.error === 'servfail') ?? tried[tried.length - 1];
  const status: NssStatus = pick.r.error === 'nxdomain' || pick.r.error === 'nodata' ? 'notfound' : pick.r.error === 'error' ? 'unavail' : 'tryagain';
  const asked = tried.length > 1 ? ` (asked ${tried.map((t) => t.name).join(', ')})` : '';
  return { status, address: null, why: `DNS ${pick.name}: ${dnsWords(pick.r, conf.nameservers, pick.ms)}${asked}` };
}

/** Resolves NAME from the node's files, following its nsswitch order, DNS queries through
 *  `query`, all within timeoutMs. */
export async function resolveName(name: string, files: NodeFiles, query: DnsQuery, timeoutMs: number): Promise<Resolution> {
  const deadline = performance.now() + timeoutMs;
  // No resolver takes a name with spaces or control characters; nor does the probe's line format.
  if (!/^[\x21-\x7e]{1,253}$/.test(name)) return { address: null, detail: `${JSON.stringify(name)} is not a host name` };
  const sources = parseNsswitch(files.nsswitch);
  if (sources.length === 0) return { address: null, detail: 'nsswitch.conf lists neither files nor dns for hosts' };
  const why: string[] = [];
  for (const s of sources) {
    let status: NssStatus;
    if (s.name === 'files') {
      const a = files.hosts === null ? null : hostsLookup(files.hosts, name);
      if (a) return { address: a, detail: 'from /etc/hosts' };
      status = files.hosts === null ? 'unavail' : 'notfound';
      why.push(files.hosts === null ? 'no /etc/hosts' : 'not in /etc/hosts');
    } else {
      const r = await viaDns(name, parseResolvConf(files.resolv), query, deadline);
      if (r.address) return { address: r.address, detail: r.why };
      status = r.status;
      why.push(r.why);
    }
    if ((s.actions[status] ?? 'continue') === 'return') break;
  }
  return { address: null, detail: why.join('; ') };
}

// ---------------------------------------------------------------- reading the node's files

const FILE_MAX = 1 << 20;

/** FILE as a process whose root is ROOT sees it: symbolic links are followed inside ROOT (an
 *  absolute target starts again at ROOT, `..` stops at it), never into the machine's own tree,
 *  which a plain read of ROOT/FILE would do for a link like /etc/resolv.conf ->
 *  /run/resolv.conf. Only a regular file is read (a FIFO would block), at most 1 MiB. Null when
 *  it is not there or not a file. */
export function readInRoot(root: string, file: string): string | null {
  let rest = file.split('/').filter(Boolean);
  let at: string[] = [];
  for (let links = 0; rest.length > 0;) {
    const part = rest.shift()!;
    if (part === '.') continue;
    if (part === '..') { at.pop(); continue; }
    const p = path.join(root, ...at, part);
    let st: fs.Stats;
    try { st = fs.lstatSync(p); } catch { return null; }
    if (st.isSymbolicLink()) {
      if (++links > 40) return null; // glibc's and the kernel's limit: a loop ends here
      const target = fs.readlinkSync(p);
      if (target.startsWith('/')) at = [];
      rest = [...target.split('/').filter(Boolean), ...rest];
      continue;
    }
    at.push(part);
  }
  let fd: number;
  try {
    fd = fs.openSync(path.join(root, ...at), fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW);
  } catch {
    return null;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) return null;
    const buf = Buffer.alloc(Math.min(st.size, FILE_MAX));
    let n = 0;
    for (let got; n < buf.length && (got = fs.readSync(fd, buf, n, buf.length - n, null)) > 0;) n += got;
    return buf.subarray(0, n).toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}

/** The files that decide a running container's name resolution, read through its root. */
export function containerFiles(pid: number): NodeFiles {
  const root = `/proc/${pid}/root`;
  return { hosts: readInRoot(root, '/etc/hosts'), resolv: readInRoot(root, '/etc/resolv.conf'), nsswitch: readInRoot(root, '/etc/nsswitch.conf') };
}
