// inspect, cp and capture: looking at one node of a running lab, copying files in and out of
// its container, and recording what crosses one of its interfaces.
import { inspectNode, labNode, type NodeInspect } from '../../controller/inspect.js';
import { requireRoot } from '../../controller/labs.js';
import { describeState } from '../../runtime/container.js';
import { capture as runCapture, parseFilter } from '../../runtime/capture.js';
import { copyIn, copyOut, parseCopyArgs } from '../../runtime/copy.js';
import { UserError } from '../errors.js';
import type { Io } from '../io.js';
import { labNameOf } from '../target.js';

export async function inspect(io: Io, arg: string, node: string, opts: { json?: boolean }): Promise<void> {
  const r = await inspectNode(labNameOf(arg), node);
  io.out(opts.json ? JSON.stringify(r, null, 2) + '\n' : formatInspect(r));
}

const words = (v: string[]) => v.map((a) => (/^[A-Za-z0-9_./:=@%+,-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');

function bytes(n: number): string {
  for (const [unit, size] of [['GiB', 1 << 30], ['MiB', 1 << 20], ['KiB', 1 << 10]] as const) if (n >= size && n % size === 0) return `${n / size} ${unit}`;
  return `${n} bytes`;
}

export function formatInspect(r: NodeInspect): string {
  const lines: string[] = [`lab ${r.lab} node ${r.node}: ${describeState(r.state)}`];
  const row = (k: string, v: string) => lines.push(`  ${k.padEnd(12)} ${v}`);
  const rows = (k: string, vs: string[]) => { if (vs.length === 0) row(k, '-'); else vs.forEach((v, i) => row(i === 0 ? k : '', v)); };
  row('image', `${r.image.reference}${r.image.digest ? ` (${r.image.digest})` : ''}`);
  row('command', r.argv ? words(r.argv) : '-');
  if (r.entrypoint) row('entrypoint', words(r.entrypoint));
  const u = r.user;
  row('user', `${u.configured ?? (u.uid === 0 ? 'root' : 'from the image')} (uid ${u.uid}, gid ${u.gid}${u.groups.length ? `, groups ${u.groups.join(',')}` : ''})`);
  row('working dir', r.workingDir);
  rows('env', Object.entries(r.env).map(([k, v]) => `${k}=${v}`));
  rows('volumes', r.mounts.volumes.map((v) => `${v.source} -> ${v.target}${v.readOnly ? ' (read-only)' : ''}`));
  rows('files', r.mounts.files.map((f) => `${f.source} -> ${f.target}`));
  const res = r.resources;
  const limits = [
    res.cpus !== null ? `cpus ${res.cpus}` : null, res.cpuShares !== null ? `cpu_shares ${res.cpuShares}` : null,
    res.memoryBytes !== null ? `memory ${bytes(res.memoryBytes)}` : null, res.pids !== null ? `pids ${res.pids}` : null,
  ].filter((x): x is string => x !== null);
  row('resources', limits.join(', ') || 'no limits');
  if (r.ports.length) rows('ports', r.ports.map((p) => `${p.hostIp}:${p.hostPort} -> ${p.containerPort}/${p.protocol}`));
  if (r.privileged) row('privileged', 'yes');
  if (r.capAdd.length || r.capDrop.length) row('caps', `${r.capAdd.map((c) => `+${c}`).concat(r.capDrop.map((c) => `-${c}`)).join(' ')}`);
  row('pid', r.state.pid !== null ? String(r.state.pid) : '-');
  if (r.networkMode !== 'bridge') row('network', `network_mode ${r.networkMode}`);
  if (r.error) row('error', r.error);
  rows('interfaces', r.interfaces.map((f) => `${f.name} ${f.up ? (f.operUp ? 'up' : 'up, no carrier') : 'DOWN'} mtu ${f.mtu}${f.mac ? ` ${f.mac}` : ''}${f.addresses.length ? ` ${f.addresses.join(' ')}` : ''}${f.impairment ? ` [${f.impairment}]` : ''}`));
  rows('routes', r.routes.map((x) => `${x.dst}${x.via ? ` via ${x.via}` : ''}${x.dev ? ` dev ${x.dev}` : ''}`));
  return lines.join('\n') + '\n';
}

export async function cp(io: Io, src: string, dst: string): Promise<void> {
  const a = parseCopyArgs(src, dst);
  if (typeof a === 'string') throw new UserError(a, 2);
  requireRoot('cp');
  const lab = labNameOf(a.lab);
  await labNode(lab, a.node);
  const warn = (l: string) => io.err(`netlab: ${l}\n`);
  if (a.direction === 'in') await copyIn(lab, a.node, a.host, a.path, warn);
  else await copyOut(lab, a.node, a.path, a.host, warn);
}

export interface CaptureCliOptions { write?: string; count?: number; filter?: string }

export async function capture(io: Io, arg: string, endpoint: string, opts: CaptureCliOptions): Promise<void> {
  const m = /^([^:]+):([^:]+)$/.exec(endpoint);
  if (!m) throw new UserError(`"${endpoint}" is not an interface; expected NODE:IFACE, e.g. web:eth0`, 2);
  const terms = parseFilter(opts.filter ?? '');
  requireRoot('capture');
  const lab = labNameOf(arg);
  const n = await labNode(lab, m[1]);
  if (n.netns !== null) {
    const names = ['lo', ...n.interfaces.map((f) => f.name)];
    if (!names.includes(m[2])) {
      const { didYouMean } = await import('../../topology/source.js');
      throw new UserError(`node ${n.name} of lab ${lab} has no interface ${m[2]}${didYouMean(m[2], names)} (interfaces: ${names.join(', ')})`);
    }
  }
  if (!opts.write && process.stdout.isTTY) throw new UserError('capture writes pcap, which is not for a terminal: give -w FILE, or pipe it (| tcpdump -r -)', 2);
  await runCapture({
    netns: n.netns, iface: m[2], count: opts.count ?? 0, terms,
    ...(opts.write !== undefined ? { file: opts.write } : {}),
    info: (l) => io.err(`${l}\n`),
  });
}
