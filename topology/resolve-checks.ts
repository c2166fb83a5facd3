// The resolver's checks stage: `checks:` entries to LabCheck, each problem at its file:line:col.
// A dns check of a node's name gets its expected address later, from the built lab's /etc/hosts
// (the caller fills dnsFromHosts in).
import type { Expect, LabCheck, RawCheck } from './types.js';
import { isIpv4 } from './ipam.js';
import { didYouMean, type PathSeg } from './source.js';

export function resolveChecks(
  raw: RawCheck[], nodeNames: Set<string>, err: (p: PathSeg[], message: string, key?: boolean) => void,
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
    const expectRaw = body.expect as Expect | { status?: number; contains?: string } | undefined;
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
      if (kind === 'ping') lc.count = (body.count as number | undefined) ?? 1;
      else lc.port = body.port as number;
      lc.label = `${kind} ${from} -> ${to}${lc.port ? `:${lc.port}` : ''}`;
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
