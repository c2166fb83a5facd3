// The side panel's check tab: the declared checks as a table (expected, predicted, observed,
// result, disagreements marked) and every ordered pair as a heat map on a canvas (cheap at
// 300 x 300): each cell's upper-left half is the prediction, its lower-right half what was
// observed; an amber frame and "!" mark a disagreement. Clicking a row or a cell explains it
// and highlights the predicted path on the graph.
import type { Predictions, ViewCheckReport, ViewOutcome } from '../server/types.js';
import type { PairExplanation } from './api.js';
import type { CheckMark } from './graph.js';
import { esc } from './panel.js';

const C = { reach: '#22c55e', fail: '#e2e8f0', self: '#ffffff', disagree: '#f59e0b', grid: '#ffffff', text: '#334155' };

export interface CheckViewDeps {
  explain(from: string, to: string): Promise<PairExplanation | null>;
  highlight(names: string[] | null): void;
}

/** A node named by a check's target (node name, or the host of an http URL), or null. */
function targetNode(o: ViewOutcome, nodes: Set<string>): string | null {
  if (nodes.has(o.target)) return o.target;
  try {
    const h = new URL(o.target).hostname;
    for (const n of nodes) if (n.toLowerCase() === h) return n;
  } catch { /* not a URL */ }
  return null;
}

/** How each container fares in a report: disagreement beats failure beats pass. Reports that
 *  only predict mark whether the prediction meets the check's expectation. */
export function checkMarks(r: ViewCheckReport, nodeNames: string[]): Map<string, CheckMark> {
  const nodes = new Set(nodeNames);
  const rank: Record<CheckMark, number> = { pass: 0, fail: 1, disagree: 2 };
  const out = new Map<string, CheckMark>();
  for (const o of r.outcomes) {
    const mark: CheckMark = o.disagree ? 'disagree' : (r.observed ? o.pass : o.expected === o.predicted) ? 'pass' : 'fail';
    for (const n of [o.from, targetNode(o, nodes)]) {
      if (!n || !nodes.has(n)) continue;
      const cur = out.get(n);
      if (!cur || rank[mark] > rank[cur]) out.set(n, mark);
    }
  }
  return out;
}

export class CheckView {
  private predictions: Predictions | null = null;
  private report: ViewCheckReport | null = null;
  private matrixReport: ViewCheckReport | null = null;
  private selected: string | null = null;
  private running = false;
  private error: string | null = null;

  constructor(private readonly el: HTMLElement, private readonly deps: CheckViewDeps) {}

  reset(): void {
    this.predictions = null;
    this.report = null;
    this.matrixReport = null;
    this.selected = null;
    this.error = null;
    this.render();
  }

  setPredictions(p: Predictions | null): void {
    this.predictions = p;
    this.render();
  }

  setReport(r: ViewCheckReport): void {
    if (r.mode === 'matrix') this.matrixReport = r;
    else this.report = r;
    this.render();
  }

  setRunning(running: boolean, error: string | null = null): void {
    this.running = running;
    this.error = error;
    this.render();
  }

  /** Outcomes of the latest reports (for the node panel). */
  outcomes(): ViewOutcome[] {
    return [...(this.report?.outcomes ?? []), ...(this.matrixReport?.outcomes ?? [])];
  }

  render(): void {
    const parts: string[] = [];
    if (this.running) parts.push('<p class="summary">Running checks…</p>');
    if (this.error) parts.push(`<p class="summary bad">${esc(this.error)}</p>`);
    parts.push('<h3>Declared checks</h3>');
    const r = this.report ?? this.predictions?.checks ?? null;
    if (!r) {
      parts.push('<p class="hint">Loading predictions…</p>');
    } else if (r.outcomes.length === 0) {
      parts.push('<p class="hint">This lab declares no checks; use “all pairs”.</p>');
    } else {
      parts.push(this.summary(r));
      const rows = r.outcomes.map((o, i) => {
        const cls = ['check', r.observed ? (o.pass ? 'pass' : 'fail') : o.expected === o.predicted ? 'pass' : 'fail', o.disagree ? 'disagree' : '', this.selected === `c${i}` ? 'selected' : ''].join(' ');
        const result = r.observed ? (o.pass ? 'ok' : 'FAIL') : o.expected === o.predicted ? 'ok (pred)' : 'FAIL (pred)';
        return `<tr class="${cls}" data-row="c${i}" data-label="${esc(o.label)}"><td>${esc(o.label)}</td><td class="${o.expected}">${o.expected}${o.expectedFrom === 'prediction' ? '*' : ''}</td><td class="${o.predicted}">${o.predicted}</td><td class="${o.observed ?? ''}">${o.observed ?? '–'}</td><td class="result">${result}</td></tr>`;
      }).join('');
      parts.push(`<table class="checks"><tr><th>check</th><th>expect</th><th>predicted</th><th>observed</th><th>result</th></tr>${rows}</table><p class="hint">* expectation taken from the prediction</p>`);
    }
    parts.push('<h3>All pairs (ping)</h3>');
    parts.push(this.matrixReport ? this.summary(this.matrixReport) : '<p class="hint">Predicted; run checks with “all pairs” to observe.</p>');
    parts.push(`<div class="matrix-legend"><span><i class="swatch" style="background:${C.reach}"></i>reach</span><span><i class="swatch" style="background:${C.fail}"></i>no reach</span><span><i class="swatch" style="background:linear-gradient(135deg, ${C.reach} 50%, ${C.fail} 50%)"></i>predicted ╲ observed</span><span><i class="swatch" style="border:2px solid ${C.disagree}"></i>! disagrees</span></div>`);
    parts.push('<div class="matrix-wrap"><canvas id="matrix"></canvas></div><div id="cell-info" class="hint"></div><pre class="explain" id="explain" hidden></pre>');
    this.el.innerHTML = parts.join('');
    this.el.querySelectorAll<HTMLTableRowElement>('tr.check').forEach((tr) => tr.addEventListener('click', () => {
      const i = Number(tr.dataset.row!.slice(1));
      const o = r!.outcomes[i];
      this.selected = tr.dataset.row!;
      this.el.querySelectorAll('tr.check').forEach((x) => x.classList.toggle('selected', x === tr));
      void this.explainOutcome(o);
    }));
    this.drawMatrix();
  }

  private summary(r: ViewCheckReport): string {
    if (!r.observed) {
      const reach = r.outcomes.filter((o) => o.predicted === 'reach').length;
      return `<p class="summary">${r.outcomes.length} predicted (${reach} reach), not run</p>`;
    }
    const ok = r.failed === 0 && r.disagreements === 0;
    return `<p class="summary ${ok ? 'ok' : 'bad'}" data-summary="${r.mode}">${r.passed} passed, ${r.failed} failed; ${r.disagreements} disagreement${r.disagreements === 1 ? '' : 's'} with the prediction (${(r.ms / 1000).toFixed(2)} s)</p>`;
  }

  private async explainOutcome(o: ViewOutcome): Promise<void> {
    const pre = this.el.querySelector<HTMLPreElement>('#explain')!;
    pre.hidden = false;
    pre.textContent = `${o.explanation || o.reason}${o.observed ? `\nobserved: ${o.observed}${o.detail ? ` (${o.detail})` : ''}` : ''}`;
    const nodes = this.predictions?.nodes ?? [];
    const to = targetNode(o, new Set(nodes));
    if (to && o.kind !== 'dns') {
      const p = await this.deps.explain(o.from, to).catch(() => null);
      this.deps.highlight(p ? [...new Set([...p.path, ...p.reply].map((h) => h.node))] : null);
    } else {
      this.deps.highlight([o.from]);
    }
  }

  /** (predicted, observed|null, disagree) per ordered pair, from the matrix report or the predictions. */
  private cells(): { nodes: string[]; get(i: number, j: number): { p: number; o: number | null; d: boolean; detail: string } } | null {
    const p = this.predictions;
    const m = this.matrixReport;
    const nodes = p?.nodes ?? (m ? [...new Set(m.outcomes.flatMap((o) => [o.from, o.target]))] : null);
    if (!nodes) return null;
    const n = nodes.length;
    const byPair = new Map<string, ViewOutcome>();
    for (const o of m?.outcomes ?? []) byPair.set(`${o.from}\u0000${o.target}`, o);
    return {
      nodes,
      get: (i, j) => {
        if (i === j) return { p: -1, o: null, d: false, detail: '' };
        const o = byPair.get(`${nodes[i]}\u0000${nodes[j]}`);
        const pred = o ? (o.predicted === 'reach' ? 1 : 0) : p ? p.matrix[i * n + j] : -1;
        const obs = o?.observed ? (o.observed === 'reach' ? 1 : 0) : null;
        return { p: pred, o: obs, d: o?.disagree ?? false, detail: o?.detail ?? '' };
      },
    };
  }

  private drawMatrix(): void {
    const canvas = this.el.querySelector<HTMLCanvasElement>('#matrix');
    const cells = this.cells();
    if (!canvas || !cells) return;
    const n = cells.nodes.length;
    const cs = Math.max(3, Math.min(18, Math.floor(320 / Math.max(1, n))));
    const labels = cs >= 10;
    const margin = labels ? Math.min(90, 8 + 6.2 * Math.max(...cells.nodes.map((x) => x.length))) : 4;
    const size = margin + n * cs + 2;
    const dpr = window.devicePixelRatio || 1;
    canvas.width = size * dpr;
    canvas.height = size * dpr;
    canvas.style.width = `${size}px`;
    canvas.style.height = `${size}px`;
    canvas.dataset.cells = String(n * n);
    const ctx = canvas.getContext('2d')!;
    ctx.scale(dpr, dpr);
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, size, size);
    let disagreements = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        const c = cells.get(i, j);
        const x = margin + j * cs, y = margin + i * cs;
        if (c.p < 0) { ctx.fillStyle = '#f8fafc'; ctx.fillRect(x, y, cs, cs); continue; }
        const pc = c.p === 1 ? C.reach : C.fail;
        if (c.o === null) {
          ctx.fillStyle = pc;
          ctx.globalAlpha = 0.75;
          ctx.fillRect(x, y, cs, cs);
          ctx.globalAlpha = 1;
        } else {
          ctx.fillStyle = pc;
          ctx.beginPath(); ctx.moveTo(x, y); ctx.lineTo(x + cs, y); ctx.lineTo(x, y + cs); ctx.closePath(); ctx.fill();
          ctx.fillStyle = c.o === 1 ? C.reach : C.fail;
          ctx.beginPath(); ctx.moveTo(x + cs, y); ctx.lineTo(x + cs, y + cs); ctx.lineTo(x, y + cs); ctx.closePath(); ctx.fill();
        }
        if (c.d) {
          disagreements++;
          ctx.strokeStyle = C.disagree;
          ctx.lineWidth = Math.max(1, cs / 6);
          ctx.strokeRect(x + 0.5, y + 0.5, cs - 1, cs - 1);
          if (cs >= 10) { ctx.fillStyle = '#92400e'; ctx.font = `bold ${cs - 4}px sans-serif`; ctx.textAlign = 'center'; ctx.textBaseline = 'middle'; ctx.fillText('!', x + cs / 2, y + cs / 2 + 1); }
        }
        if (cs >= 6) { ctx.strokeStyle = C.grid; ctx.lineWidth = 1; ctx.strokeRect(x, y, cs, cs); }
      }
    }
    canvas.dataset.disagreements = String(disagreements);
    if (labels) {
      ctx.fillStyle = C.text;
      ctx.font = '10px sans-serif';
      ctx.textBaseline = 'middle';
      ctx.textAlign = 'right';
      cells.nodes.forEach((name, i) => ctx.fillText(name, margin - 4, margin + i * cs + cs / 2, margin - 6));
      ctx.save();
      ctx.textAlign = 'left';
      cells.nodes.forEach((name, j) => {
        ctx.save();
        ctx.translate(margin + j * cs + cs / 2, margin - 4);
        ctx.rotate(-Math.PI / 2);
        ctx.fillText(name, 0, 0, margin - 6);
        ctx.restore();
      });
      ctx.restore();
    }
    const info = this.el.querySelector<HTMLElement>('#cell-info')!;
    const at = (e: MouseEvent): [number, number] | null => {
      const b = canvas.getBoundingClientRect();
      const j = Math.floor((e.clientX - b.left - margin) / cs), i = Math.floor((e.clientY - b.top - margin) / cs);
      return i >= 0 && j >= 0 && i < n && j < n && i !== j ? [i, j] : null;
    };
    const describe = (i: number, j: number) => {
      const c = cells.get(i, j);
      const v = (x: number | null) => (x === null ? 'not run' : x === 1 ? 'reach' : 'no reach');
      return `${cells.nodes[i]} → ${cells.nodes[j]}: predicted ${v(c.p)}, observed ${v(c.o)}${c.d ? ' — DISAGREES' : ''}${c.detail ? ` (${c.detail})` : ''}`;
    };
    canvas.onmousemove = (e) => { const p = at(e); info.textContent = p ? describe(...p) : ''; };
    canvas.onclick = async (e) => {
      const p = at(e);
      if (!p) return;
      const [i, j] = p;
      const x = await this.deps.explain(cells.nodes[i], cells.nodes[j]).catch(() => null);
      const pre = this.el.querySelector<HTMLPreElement>('#explain')!;
      pre.hidden = false;
      pre.textContent = `${describe(i, j)}\n${x?.explanation ?? ''}`;
      this.deps.highlight(x ? [...new Set([...x.path, ...x.reply].map((h) => h.node))] : null);
    };
  }
}
