// Checks that wait for convergence (`wait: SECONDS`, `netlab check --wait`): a check is tried
// again until what it observes is what it expects, or its time is up. All checks go together in
// rounds: the first round tries every check once (exactly what a check without a wait gets);
// each later round, after a pause, tries again only the checks that do not hold yet and still
// have time, all of them in one batch (one probe helper process per round, so 100 waiting
// checks cost about what one does). Pure scheduling: the clock and the observation are passed
// in, so it is tested without root or real time.

/** The largest `wait` (seconds) a check or `--wait` may give. */
export const MAX_WAIT_SECONDS = 600;
/** The pause before the first retry; each later pause is half as long again, up to RETRY_MAX_MS. */
export const RETRY_FIRST_MS = 200;
export const RETRY_GROWTH = 1.5;
export const RETRY_MAX_MS = 1000;
/** A retry starts only with at least this much of its wait left (it would be too short to
 *  tell anything), and the pause before a round is cut so that the check whose wait ends first
 *  still gets that much for its last try. */
export const LAST_TRY_MS = 100;

export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const realClock: Clock = {
  now: () => performance.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/** The pause before round `round` (2 is the first retry): 200, 300, 450, 675, then 1000 ms. */
export function retryPause(round: number): number {
  return Math.min(RETRY_MAX_MS, Math.round(RETRY_FIRST_MS * RETRY_GROWTH ** Math.max(0, round - 2)));
}

/** How long an item may be retried (null: never) and its own per-try timeout. */
export interface Waiting {
  waitMs: number | null;
  timeoutMs: number;
  /** How long a try takes beyond its timeout, whatever it observes (a ping's requests going
   *  out one by one, a throughput check's seconds of sending); default 0. A retry starts only
   *  with that much of the wait left (and LAST_TRY_MS more), and its timeout is what is left
   *  after it, so a retry still ends by the deadline. */
  busyMs?: number;
}

/** One try of one item in a round. */
export interface Try<T> {
  item: T;
  /** The item's index in the list given to untilHeld. */
  index: number;
  /** 1 for the first try. */
  attempt: number;
  /** The try's timeout: the item's own on the first try; on a retry, cut to what is left of
   *  its wait after its busy time (so a retry never runs past the deadline). */
  timeoutMs: number;
}

export interface Settled<R> {
  /** What the last try observed. */
  result: R;
  attempts: number;
  /** From the start of the first round to the start of the try that held; null: none held. */
  heldAfterMs: number | null;
}

/** Tries every item, then retries those that do not hold (and have a wait) in rounds until each
 *  holds or its wait is up. `observe` gets one round's tries and returns one result per try, in
 *  order. Bounded: no retry starts after an item's deadline (the first round's start plus its
 *  wait) or with less than its busy time plus LAST_TRY_MS of it left, and no pause runs past the
 *  last moment the item with the nearest deadline can still start its retry. */
export async function untilHeld<T, R>(items: readonly T[], o: {
  waiting: (item: T) => Waiting;
  observe: (tries: Try<T>[]) => Promise<R[]>;
  holds: (item: T, result: R) => boolean;
  clock?: Clock;
}): Promise<Settled<R>[]> {
  const clock = o.clock ?? realClock;
  const spec = items.map((t) => o.waiting(t));
  const out: Settled<R>[] = new Array(items.length);
  const t0 = clock.now();
  const deadline = spec.map((s) => (s.waitMs === null ? null : t0 + s.waitMs));
  const busy = spec.map((s) => Math.max(0, s.busyMs ?? 0));
  // The last moment a retry of item i can start and still end by its deadline.
  const lastStart = (i: number) => deadline[i]! - busy[i];
  let pending = items.map((_, i) => i);
  for (let round = 1; pending.length > 0; round++) {
    if (round > 1) {
      const now = clock.now();
      pending = pending.filter((i) => lastStart(i) - now > LAST_TRY_MS);
      if (pending.length === 0) break;
      const nearest = pending.reduce((m, i) => Math.min(m, lastStart(i)), Infinity);
      await clock.sleep(Math.max(0, Math.min(retryPause(round), nearest - LAST_TRY_MS - now)));
    }
    const start = clock.now();
    if (round > 1) pending = pending.filter((i) => lastStart(i) > start); // a timer that fired late
    if (pending.length === 0) break;
    const tries: Try<T>[] = pending.map((i) => ({
      item: items[i], index: i, attempt: round,
      timeoutMs: round === 1 ? spec[i].timeoutMs : Math.max(1, Math.min(spec[i].timeoutMs, Math.ceil(lastStart(i) - start))),
    }));
    const results = await o.observe(tries);
    if (results.length !== tries.length) throw new Error(`untilHeld: ${tries.length} tries but ${results.length} results`);
    const next: number[] = [];
    tries.forEach((t, k) => {
      const held = o.holds(t.item, results[k]);
      out[t.index] = { result: results[k], attempts: round, heldAfterMs: held ? Math.round(start - t0) : null };
      if (!held && deadline[t.index] !== null) next.push(t.index);
    });
    pending = next;
  }
  return out;
}
