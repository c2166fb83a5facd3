// Summary of a V8 CPU profile (.cpuprofile) of one `up()`: self time by category and the top
// functions. Categories: time in native functions called from JavaScript (for netlab these are
// syscalls: the netlink socket's send/poll in which the kernel does the rtnetlink work, koffi's
// setns/unshare/mount, fs calls, spawning nft), netlab's own JavaScript, the netlink package's
// JavaScript (message encoding/decoding), Node internals, GC, and idle (the event loop waiting:
// for a netlink reply, a child process, the kernel's deferred work).
import * as fs from 'node:fs';

interface CallFrame { functionName: string; url: string; lineNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; children?: number[] }
interface CpuProfile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

export interface ProfileSummary {
  totalMs: number;
  sampleCount: number;
  /** Self time (ms) per category. */
  categories: Record<string, number>;
  /** Native (syscall) self time split by the nearest netlab function that called it. */
  nativeByCaller: { caller: string; ms: number }[];
  top: { fn: string; where: string; ms: number }[];
}

export const CATEGORY_ORDER = [
  'native calls (syscalls: kernel work)',
  'netlab JavaScript (controller/, runtime/, topology/)',
  'netlink package JavaScript (encode/decode)',
  'Node.js internals (buffers, fs, child_process JS)',
  'garbage collection',
  'idle (waiting for the kernel / child processes)',
  'other (program, bench)',
];

/** Plumbing functions skipped when naming the caller of a native call. */
const GENERIC = new Set(['request', 'withIndexes', 'inNetns', 'returnHome', 'runStep', 'applyPlan', 'time']);

/** Names of the categories, for readers of a summary. */
export const CAT = {
  native: CATEGORY_ORDER[0], ours: CATEGORY_ORDER[1], netlink: CATEGORY_ORDER[2], node: CATEGORY_ORDER[3],
  gc: CATEGORY_ORDER[4], idle: CATEGORY_ORDER[5], other: CATEGORY_ORDER[6],
} as const;

function where(cf: CallFrame): string {
  const u = cf.url.replace(/^file:\/\//, '').replace(/^.*?\/(dist|node_modules)\//, '$1/');
  return u ? `${u}:${cf.lineNumber + 1}` : '(native)';
}

function category(cf: CallFrame): string {
  const f = cf.functionName;
  if (f === '(idle)') return CATEGORY_ORDER[5];
  if (f === '(garbage collector)') return CATEGORY_ORDER[4];
  if (f === '(program)' || f === '(root)') return CATEGORY_ORDER[6];
  if (!cf.url) return CATEGORY_ORDER[0];
  if (cf.url.includes('/node_modules/netlink/')) return CATEGORY_ORDER[2];
  if (cf.url.includes('/node_modules/koffi/')) return CATEGORY_ORDER[0];
  if (/\/dist\/(controller|runtime|topology)\//.test(cf.url)) return CATEGORY_ORDER[1];
  if (cf.url.startsWith('node:')) return CATEGORY_ORDER[3];
  return CATEGORY_ORDER[6];
}

export function summarizeProfile(file: string): ProfileSummary {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Samples under the inspector's own calls (starting/stopping the profiler) are not up()'s.
  const profiler = new Set<number>();
  for (const n of p.nodes) {
    for (let cur: number | undefined = n.id; cur !== undefined; cur = parent.get(cur)) {
      if (byId.get(cur)!.callFrame.url === 'node:inspector') { profiler.add(n.id); break; }
    }
  }
  const self = new Map<number, number>();
  let excluded = 0;
  p.samples.forEach((id, i) => {
    const d = p.timeDeltas[i] ?? 0;
    if (profiler.has(id)) excluded += d;
    else self.set(id, (self.get(id) ?? 0) + d);
  });

  const categories: Record<string, number> = Object.fromEntries(CATEGORY_ORDER.map((c) => [c, 0]));
  const fns = new Map<string, { fn: string; where: string; us: number }>();
  const nativeCallers = new Map<string, number>();
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    const cf = n.callFrame;
    const cat = category(cf);
    categories[cat] += us;
    const key = `${cf.functionName}@${where(cf)}`;
    const e = fns.get(key) ?? { fn: cf.functionName || '(anonymous)', where: where(cf), us: 0 };
    e.us += us;
    fns.set(key, e);
    if (cat === CATEGORY_ORDER[0]) {
      // Walk up to the two nearest named netlab functions (kernel.ts's method, the runtime's
      // helper and its caller), for "which call".
      const chain: string[] = [];
      for (let cur: number | undefined = id; cur !== undefined && chain.length < 2; cur = parent.get(cur)) {
        const c = byId.get(cur)!.callFrame;
        if (/\/dist\/(controller|runtime|topology)\//.test(c.url) && c.functionName && !GENERIC.has(c.functionName) && chain[0] !== c.functionName) chain.unshift(c.functionName);
      }
      // V8 names an addon's native functions unreliably; name them by who called them.
      const parentUrl = parent.has(id) ? byId.get(parent.get(id)!)!.callFrame.url : '';
      const native = parentUrl.includes('/node_modules/netlink/') ? 'netlink socket I/O'
        : /\/dist\/(controller|runtime)\//.test(parentUrl) ? 'native (koffi libc call, or an inlined library call)'
          : cf.functionName;
      const label = chain.length ? `${chain.join(' > ')} -> ${native}` : native;
      nativeCallers.set(label, (nativeCallers.get(label) ?? 0) + us);
    }
  }
  const ms = (us: number) => Math.round(us / 10) / 100;
  return {
    totalMs: ms(p.endTime - p.startTime - excluded),
    sampleCount: p.samples.length,
    categories: Object.fromEntries(Object.entries(categories).map(([k, v]) => [k, ms(v)])),
    nativeByCaller: [...nativeCallers].map(([caller, us]) => ({ caller, ms: ms(us) })).sort((a, b) => b.ms - a.ms).slice(0, 12),
    top: [...fns.values()].sort((a, b) => b.us - a.us).slice(0, 15).map((e) => ({ fn: e.fn, where: e.where, ms: ms(e.us) })),
  };
}
