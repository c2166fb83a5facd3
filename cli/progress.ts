// Live progress of `netlab up` per phase: on a terminal one line rewritten in place (phase,
// steps done, elapsed time); elsewhere (CI, pipes) one plain line per finished phase. The time
// between two reports belongs to the phase of the step just finished (a batch of container
// starts reports all its steps at once, at its end).
export interface Progress {
  update: (phase: string, done: number, total: number) => void;
  done: () => void;
}

export function makeProgress(io: { err: (s: string) => void }, tty: boolean): Progress {
  const t0 = performance.now();
  let last = t0;
  let current = '';
  let spent = 0;
  let count = 0;
  let lastDraw = 0;
  const secs = (ms: number) => `${(ms / 1000).toFixed(2)}s`;
  const finishPhase = () => {
    if (!current) return;
    const line = `${current}: ${count} steps in ${secs(spent)}`;
    io.err(tty ? `\r\x1b[K${line}\n` : `${line}\n`);
  };
  return {
    update(phase, done, total) {
      const now = performance.now();
      if (phase !== current) {
        finishPhase();
        current = phase;
        spent = 0;
        count = 0;
      }
      spent += now - last;
      last = now;
      count++;
      if (tty && (now - lastDraw > 50 || done === total)) {
        lastDraw = now;
        io.err(`\r\x1b[K[${phase}] ${done}/${total} steps, ${secs(now - t0)}`);
      }
    },
    done() {
      finishPhase();
      current = '';
    },
  };
}
