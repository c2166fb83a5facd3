// Live progress of `netlab up` per phase: on a terminal one line rewritten in place (phase,
// steps done, elapsed time); elsewhere (CI, pipes) one plain line per finished phase.
export interface Progress {
  update: (phase: string, done: number, total: number) => void;
  done: () => void;
}

export function makeProgress(io: { err: (s: string) => void }, tty: boolean): Progress {
  const t0 = performance.now();
  let phaseT0 = t0;
  let current = '';
  let lastDraw = 0;
  let count = 0;
  const secs = (ms: number) => `${(ms / 1000).toFixed(2)}s`;
  const finishPhase = (now: number) => {
    if (!current) return;
    const line = `${current}: ${count} steps in ${secs(now - phaseT0)}`;
    io.err(tty ? `\r\x1b[K${line}\n` : `${line}\n`);
  };
  return {
    update(phase, done, total) {
      const now = performance.now();
      if (phase !== current) {
        finishPhase(now);
        current = phase;
        phaseT0 = now;
        count = 0;
      }
      count++;
      if (tty && (now - lastDraw > 50 || done === total)) {
        lastDraw = now;
        io.err(`\r\x1b[K[${phase}] ${done}/${total} steps, ${secs(now - t0)}`);
      }
    },
    done() {
      finishPhase(performance.now());
      current = '';
    },
  };
}
