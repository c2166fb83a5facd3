// Progress of image pulls: on a terminal one line per layer, redrawn in place (bytes, total,
// rate), as `docker pull` shows it; elsewhere (CI, pipes) one plain line per layer when it is in
// the store, and one per image. Sizes in the registry's own units (decimal MB).
import type { PullEvents } from '../runtime/images/pull.js';
import type { Descriptor } from '../runtime/images/registry.js';

export function fmtBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  if (n < 1e6) return `${(n / 1e3).toFixed(1)} kB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)} MB`;
  return `${(n / 1e9).toFixed(2)} GB`;
}

interface LayerLine { digest: string; size: number; got: number; t0: number; state: 'waiting' | 'pulling' | 'present' | 'stored' }

export function pullProgress(io: { err: (s: string) => void }, tty: boolean): PullEvents {
  let layers: LayerLine[] = [];
  let drawn = 0;
  let lastDraw = 0;
  let t0 = 0;
  const rate = (l: LayerLine) => {
    const s = (performance.now() - l.t0) / 1000;
    return s > 0 ? `${fmtBytes(Math.round(l.got / s))}/s` : '';
  };
  const text = (l: LayerLine) => {
    const id = l.digest.slice(7, 19);
    switch (l.state) {
      case 'waiting': return `${id}: waiting`;
      case 'present': return `${id}: already in the store`;
      case 'pulling': return `${id}: ${fmtBytes(l.got)} / ${fmtBytes(l.size)}  ${rate(l)}`;
      case 'stored': return `${id}: pulled ${fmtBytes(l.size)} in ${((performance.now() - l.t0) / 1000).toFixed(2)} s (${rate(l)})`;
    }
  };
  const draw = (force: boolean) => {
    const now = performance.now();
    if (!force && now - lastDraw < 100) return;
    lastDraw = now;
    io.err(`${drawn ? `\x1b[${drawn}A` : ''}${layers.map((l) => `\r\x1b[K${text(l)}\n`).join('')}`);
    drawn = layers.length;
  };
  return {
    start(ref: string, ds: Descriptor[]) {
      t0 = performance.now();
      layers = ds.map((d) => ({ digest: d.digest, size: d.size, got: 0, t0, state: 'waiting' }));
      drawn = 0;
      io.err(`pulling ${ref} (${ds.length} layers, ${fmtBytes(ds.reduce((s, d) => s + d.size, 0))})\n`);
      if (tty) draw(true);
    },
    bytes(_ref, i, n) {
      const l = layers[i];
      if (l.state === 'waiting') { l.state = 'pulling'; l.t0 = performance.now(); }
      l.got += n;
      if (tty) draw(false);
    },
    layerDone(_ref, i, how) {
      const l = layers[i];
      l.state = how;
      if (tty) draw(true);
      else io.err(`  ${text(l)}\n`);
    },
    done(ref, img) {
      io.err(`pulled ${ref} (${img.digest}) in ${((performance.now() - t0) / 1000).toFixed(2)} s\n`);
    },
  };
}
