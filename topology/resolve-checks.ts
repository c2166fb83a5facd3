// The resolver's checks stage: `checks:` entries to LabCheck, each problem at its file:line:col.
// A dns check of a node's name gets its expected address later, from the built lab's /etc/hosts
// (the caller fills dnsFromHosts in).
import type { Expect, LabCheck, LabNode, RawCheck } from './types.js';
import { isIpv4 } from './ipam.js';
import { didYouMean, type PathSeg } from './source.js';
import { parsePercent, parseRate, RATE_HINT } from './rate.js';

/** The receiver's port and the sender's seconds of a throughput check that gives none. */
export const THROUGHPUT_PORT = 5201;
export const THROUGHPUT_SECONDS = 3;

/** The node whose interface has this address (a throughput check's receiver), or null. */
export function nodeWithAddress(nodes: readonly LabNode[], address: string): LabNode | null {
  return nodes.find((n) => n.interfaces.some((f) => f.ipv4?.address === address)) ?? null;
}

/** `nodes`: the resolved nodes (a throughput check's ends must have namespaces of their own, and
 *  an address it names must be one of theirs). */
export function resolveChecks(
  raw: RawCheck[], nodeNames: Set<string>, err: (p: PathSeg[], message: string, key?: boolean) => void, nodes: readonly LabNode[],
): { checks: LabCheck[]; dnsFromHosts: LabCheck[] } {
  const checks: LabCheck[] = [];
  const dnsFromHosts: LabCheck[] = [];
  raw.forEach((c: RawCheck, i) => {
    const kind = Object.keys(c)[0] as LabCheck['kind'];
    const body = (c as unknown as Record<string, Record<string, unknown>>)[kind];
    const p: PathSeg[] = ['checks', i, kind];
    const from = String(body.from);
    let ok = true;
    const needNode = (name: string, k: string) => {
      if (!nodeNames.has(name)) { err([...p, k], `node "${name}" is not defined${didYouMean(name, nodeNames)} (nodes: ${[...nodeNames].join(', ') || 'none'})`); ok = false; }
    };
    needNode(from, 'from');
    const expectRaw = body.expect as Expect | { status?: number; contains?: string; max_loss?: string; min?: string | number } | undefined;
    const lc: LabCheck = {
      index: i, kind, from, target: '', port: null, count: 1, timeoutMs: 2000, waitMs: null,
      expect: typeof expectRaw === 'string' ? expectRaw : expectRaw ? 'reach' : null,
      httpStatus: null, httpContains: null, dnsAddress: null, label: '',
    };
    if (typeof body.timeout === 'number') lc.timeoutMs = Math.round(body.timeout * 1000);
    // The schema holds it to 0 < wait <= 600 seconds; a fraction of a millisecond is still a wait.
    if (typeof body.wait === 'number') lc.waitMs = Math.max(1, Math.round(body.wait * 1000));
    if (kind === 'ping' || kind === 'tcp') {
      const to = String(body.to);
      if (/^[0-9.]+$/.test(to) && !isIpv4(to)) { err([...p, 'to'], `"${to}" is not a valid IPv4 address`); ok = false; }
      else if (!isIpv4(to)) needNode(to, 'to');
      lc.target = to;
      if (kind === 'ping') {
        lc.count = (body.count as number | undefined) ?? 1;
        if (expectRaw && typeof expectRaw === 'object') {
          lc.maxLossPercent = parsePercent(expectRaw.max_loss);
          if (lc.maxLossPercent === null) { err([...p, 'expect', 'max_loss'], `${JSON.stringify(expectRaw.max_loss)} is not a percentage; expected 0% to 100%, e.g. 5% or 0.5%`); ok = false; }
        }
      } else lc.port = body.port as number;
      lc.label = `${kind} ${from} -> ${to}${lc.port ? `:${lc.port}` : ''}`;
    } else if (kind === 'throughput') {
      const to = String(body.to);
      lc.target = to;
      lc.port = (body.port as number | undefined) ?? THROUGHPUT_PORT;
      lc.durationMs = Math.max(1, Math.round(((body.seconds as number | undefined) ?? THROUGHPUT_SECONDS) * 1000));
      // Both ends run in namespaces the lab made: the receiver in to's (the node, or the node
      // that has the address), the sender in from's. A host-mode node has none of its own.
      let receiver: string | null = null;
      if (/^[0-9.]+$/.test(to) && !isIpv4(to)) { err([...p, 'to'], `"${to}" is not a valid IPv4 address`); ok = false; }
      else if (isIpv4(to)) {
        const owner = nodeWithAddress(nodes, to);
        if (owner) receiver = owner.name;
        else { err([...p, 'to'], `no node of this lab has the address ${to}: the receiver runs in the namespace of the node that has it`); ok = false; }
      } else { needNode(to, 'to'); receiver = to; }
      for (const [k, name] of [['from', from], ['to', receiver]] as const) {
        const n = name === null ? undefined : nodes.find((x) => x.name === name);
        if (n && n.netns === null) { err([...p, k], `node "${n.name}" has network_mode host: a throughput check runs only between namespaces the lab made`); ok = false; }
      }
      if (expectRaw && typeof expectRaw === 'object') {
        lc.minBitsPerSecond = parseRate(expectRaw.min);
        if (lc.minBitsPerSecond === null) { err([...p, 'expect', 'min'], `${JSON.stringify(expectRaw.min)} is not a rate above 0; expected ${RATE_HINT}`); ok = false; }
      }
      lc.label = `throughput ${from} -> ${to}${lc.port !== THROUGHPUT_PORT ? `:${lc.port}` : ''}`;
    } else if (kind === 'http') {
      const url = String(body.url);
      let u: URL | null = null;
      try { u = new URL(url); } catch { /* reported below */ }
      if (!u || u.protocol !== 'http:') { err([...p, 'url'], `"${url}" is not an http:// URL; expected e.g. http://web/ or http://web:8080/path`); ok = false; }
      else if (!isIpv4(u.hostname)) {
        // URL hosts are case-folded by URL parsing; node names are matched the same way.
        const node = [...nodeNames].find((n) => n.toLowerCase() === u!.hostname);
        needNode(node ?? u.hostname, 'url');
      }
      lc.target = url;
      if (expectRaw && typeof expectRaw === 'object') {
        lc.httpStatus = expectRaw.status ?? null;
        lc.httpContains = expectRaw.contains ?? null;
      }
      lc.label = `http ${from} -> ${url}`;
    } else {
      const name = String(body.name);
      lc.target = name;
      if (body.address !== undefined) {
        if (!isIpv4(String(body.address))) { err([...p, 'address'], `"${body.address}" is not an IPv4 address`); ok = false; }
        else lc.dnsAddress = String(body.address);
      } else if (!nodeNames.has(name)) {
        err([...p, 'name'], `"${name}" is not a node of this lab${didYouMean(name, nodeNames)} (to check another name, give "address")`); ok = false;
      } else {
        // Filled in from the source's /etc/hosts once the lab is built (see below); a node it
        // does not list (no shared segment, or no address) has no name there: such a check fails.
        dnsFromHosts.push(lc);
      }
      lc.label = `dns ${from} resolves ${name}`;
    }
    if (ok) checks.push(lc);
  });

  return { checks, dnsFromHosts };
}
