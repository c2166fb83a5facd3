// Mininet as a peer: `mn --switch lxbr --controller none --topo single,N --test build` builds N
// hosts on one Linux bridge (no Open vSwitch, no controller) and tears them down; the whole
// command's wall time is measured (Python start-up included, as a user would see it). Mininet
// prints its own "completed in X seconds", which is kept too.
//
// Mininet cleans up after itself, and on an exception `mn` runs its cleanup (the same as
// `mn -c`), which deletes every `*-ethN` link on the machine and kills every Mininet process:
// netlab's names (`nl...`) cannot match, but another user's Mininet would be hit. The bench never
// runs `mn -c` itself; if a run leaves the bridge or its ports behind it deletes only those.
import { ipLinkNames, sh, timeCmd } from './util.js';

export interface MininetAvailability {
  ok: boolean;
  why: string | null;
  version: string | null;
}

export function mininetAvailable(): MininetAvailability {
  const version = sh('mn', ['--version'], true);
  if (!version) {
    const policy = sh('apt-cache', ['policy', 'mininet']);
    const cand = /Candidate:\s*(\S+)/.exec(policy)?.[1];
    return {
      ok: false, version: null,
      why: `\`mn\` is not installed (${cand && cand !== '(none)' ? `apt candidate ${cand}: run bench/setup.sh as root` : 'no apt candidate for mininet on this machine'})`,
    };
  }
  if (!sh('sh', ['-c', 'command -v brctl'])) return { ok: false, version, why: 'brctl (bridge-utils) is missing: Mininet\'s lxbr switch needs it; run bench/setup.sh' };
  return { ok: true, why: null, version };
}

/** Links Mininet's single,N makes in the root namespace: the bridge s1 and its ports s1-ethK. */
export function mininetLinks(): string[] {
  return ipLinkNames().filter((n) => n === 's1' || /^s1-eth\d+$/.test(n));
}

export interface MininetRun {
  ms: number;
  /** Mininet's own "completed in X seconds". */
  selfReportedMs: number | null;
}

export async function runMininet(n: number): Promise<MininetRun> {
  const left = mininetLinks();
  if (left.length > 0) throw new Error(`Mininet's bridge s1 already exists (${left.slice(0, 3).join(', ')}...): another Mininet is running; not touching it`);
  const r = await timeCmd('mn', ['--switch', 'lxbr', '--controller', 'none', '--topo', `single,${n}`, '--test', 'build'], { timeoutMs: 600_000, cwd: '/tmp' });
  const text = r.stdout + r.stderr;
  if (r.code !== 0 || !/\*\*\* Done/.test(text)) {
    throw new Error(`mn exited ${r.code ?? r.signal}: ${text.trim().split('\n').slice(-4).join(' | ')}`);
  }
  const m = /completed in ([\d.]+) seconds/.exec(text);
  return { ms: r.ms, selfReportedMs: m ? Number(m[1]) * 1000 : null };
}

/** Deletes the bridge and ports of a Mininet run of ours that failed half-way. */
export async function mininetCleanup(): Promise<void> {
  for (const l of mininetLinks().sort((a, b) => b.length - a.length)) {
    await timeCmd('ip', ['link', 'del', l]);
  }
}
