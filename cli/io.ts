// What every command writes to, and the small formatting they share.

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  /** Aborted once stdout or stderr turned out to be a closed pipe (its reason names which):
   *  `up` then rolls back instead of leaving a half-built lab. */
  closed?: AbortSignal;
}

export function fmtMs(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}
