// The side panel's details tab: the selected node's process, its usage (CPU, memory, pids,
// traffic: polled while it runs), interfaces, addresses and routes, and the checks that start
// or end at it; or the selected cable: its ends, state and impairment
// per direction, with the buttons that set it down or up and the form that impairs it.
import type { ViewLink, ViewNode, ViewNodeStats, ViewOutcome, WebGraph } from '../server/types.js';
import type { ImpairValues } from './api.js';

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function kindText(n: ViewNode): string {
  switch (n.kind) {
    case 'container': return n.variant === 'bridge' ? 'container' : `container, network_mode ${n.variant}`;
    case 'network': return `${n.variant} network`;
    case 'host': return 'simulated host';
    case 'machine': return 'the machine netlab runs on';
  }
}

export function renderNodePanel(el: HTMLElement, graph: WebGraph | null, n: ViewNode | null, outcomes: ViewOutcome[]): void {
  delete el.dataset.cable;
  if (!graph) { el.innerHTML = '<p class="hint">No lab selected.</p>'; return; }
  if (!n) {
    const c = graph.nodes.filter((x) => x.kind === 'container');
    const running = c.filter((x) => x.process?.state === 'running').length;
    const down = graph.links.filter((l) => l.state === 'down').length;
    el.innerHTML = `
      <h2>${esc(graph.lab)}</h2>
      <div class="sub">${graph.live ? 'live from the kernel' : 'model only (not up)'}${graph.file ? ` · ${esc(graph.file)}` : ''}</div>
      <table>
        <tr><th>containers</th><td>${c.length}${graph.live ? ` (${running} running)` : ''}</td></tr>
        <tr><th>networks</th><td>${graph.nodes.filter((x) => x.kind === 'network').length}</td></tr>
        <tr><th>cables</th><td>${graph.links.length}${down ? ` (${down} down)` : ''}</td></tr>
        <tr><th>checks</th><td>${graph.checks.length}</td></tr>
      </table>
      <p class="hint">Click a node for its interfaces, addresses, routes and process, a cable for its state and impairment${graph.live ? ' (and to set it down, up or impaired)' : ''}. Drag a node to pin it; double-click to release.</p>`;
    return;
  }
  const parts: string[] = [`<h2>${esc(n.name)}</h2><div class="sub">${esc(kindText(n))}${n.detail ? ` · ${esc(n.detail)}` : ''}</div>`];
  if (n.process) {
    const p = n.process;
    const state = p.state === 'running' ? `running, pid <span class="mono">${p.pid}</span>` : p.state === 'model' ? 'not up (drawn from the model)' : p.state === 'exited' ? `exited${p.exit ? ` (${esc(p.exit)})` : ''}${p.oomKilled ? ', OOM-killed' : ''}` : 'not started';
    parts.push(`<h3>Process</h3><div class="proc proc-${p.state.replace(' ', '-')}" data-process="${esc(p.state)}">${state}</div>`);
    if (graph.live && p.state === 'running') parts.push('<h3>Usage</h3><div class="node-stats" data-node-stats><p class="hint">reading…</p></div>');
  }
  if (n.interfaces.length) {
    const rows = n.interfaces.map((f) => {
      const st = f.missing ? 'down' : !f.up ? 'down' : f.carrier === false ? 'down' : f.carrier === null ? 'unknown' : 'up';
      const stText = f.missing ? 'missing' : !f.up ? 'down' : f.carrier === false ? 'no carrier' : f.carrier === null ? (f.up ? 'up (model)' : 'down') : 'up';
      const where = f.network ? `net ${esc(f.network)}` : f.peer ? `to ${esc(f.peer)}` : '';
      return `<tr data-iface="${esc(f.name)}"><td class="mono">${esc(f.name)}</td><td><span class="dot ${st}"></span>${stText}</td><td class="mono">${f.addresses.map(esc).join('<br>') || '–'}</td><td>${where}${f.mac ? `<br><span class="mono hint">${esc(f.mac)}</span>` : ''}${f.mtu ? `<br><span class="hint">mtu ${f.mtu}</span>` : ''}</td></tr>`;
    }).join('');
    parts.push(`<h3>Interfaces</h3><table><tr><th>name</th><th>state</th><th>addresses</th><th>on</th></tr>${rows}</table>`);
  } else if (n.kind === 'container') {
    parts.push('<h3>Interfaces</h3><p class="hint">none (loopback only or the host\'s stack)</p>');
  }
  if (n.routes.length) {
    const rows = n.routes.map((r) => `<tr><td class="mono">${esc(r.dst)}</td><td class="mono">${esc(r.via ?? '')}</td><td class="mono">${esc(r.dev ?? '')}</td></tr>`).join('');
    parts.push(`<h3>Routes</h3><table><tr><th>destination</th><th>via</th><th>dev</th></tr>${rows}</table>`);
  }
  const mine = outcomes.filter((o) => o.from === n.name || o.target === n.name).slice(0, 50);
  if (mine.length) {
    const rows = mine.map((o) => `<tr><td>${esc(o.label)}</td><td>${o.observed ?? `${o.predicted} (pred)`}</td><td>${o.observed === null ? '' : o.pass ? '✓' : '✗'}${o.disagree ? ' ≠' : ''}</td></tr>`).join('');
    parts.push(`<h3>Checks</h3><table>${rows}</table>`);
  }
  el.innerHTML = parts.join('');
}

// ---------------------------------------------------------------- the cable panel

export interface CableActions {
  /** Set the cable down or up. */
  toggle(l: ViewLink): void;
  /** Set its impairment to these values (both directions). */
  apply(l: ViewLink, values: ImpairValues): void;
  /** Take its impairment away. */
  clear(l: ViewLink): void;
}

const FIELDS = [
  { key: 'rate', hint: '10mbit', more: false },
  { key: 'delay', hint: '20ms', more: false },
  { key: 'jitter', hint: '5ms', more: false },
  { key: 'loss', hint: '1%', more: false },
  { key: 'duplicate', hint: '1%', more: true },
  { key: 'corrupt', hint: '0.1%', more: true },
  { key: 'reorder', hint: '25%', more: true },
  { key: 'limit', hint: '1000', more: true },
] as const;

/** The form's values from tc's words (`rate 10mbit delay 20ms loss 1%`). */
export function valuesOfText(text: string): ImpairValues {
  const w = text.split(' ').filter(Boolean);
  const out: ImpairValues = {};
  for (let k = 0; k + 1 < w.length; k += 2) {
    const f = FIELDS.find((x) => x.key === w[k]);
    if (f) out[f.key] = w[k + 1];
  }
  return out;
}

function kindOf(l: ViewLink): string {
  switch (l.kind) {
    case 'attachment': return 'network attachment';
    case 'link': return 'point-to-point link';
    case 'gateway': return 'the network\'s gateway on this machine';
    case 'underlay': return 'underlay';
    case 'overlay': return 'overlay (VXLAN)';
    case 'host-mode': return 'network_mode host';
    default: return l.kind;
  }
}

/** Why this cable cannot be changed from here, or null when it can. */
export function cableLocked(graph: WebGraph, l: ViewLink, standalone: boolean): string | null {
  if (standalone) return 'standalone page: serve the lab with netlab web to change cables';
  if (!l.endpoint) return `${kindOf(l)} cables cannot be set down or impaired from here`;
  if (!graph.live) return `lab ${graph.lab} is not up: cables can be changed only in a running lab`;
  return null;
}

function cableInfo(graph: WebGraph, l: ViewLink): string {
  const name = (id: string) => graph.nodes.find((n) => n.id === id)?.name ?? id;
  const end = (e: ViewLink['a']) => `${esc(name(e.id))}${e.iface && e.iface !== 'gateway' ? ` <span class="mono">${esc(e.iface)}</span>` : ''}`;
  const addr = (e: ViewLink['a']) => (e.address ? `<span class="mono">${esc(e.address)}</span>` : '–');
  const parts = [
    `<h2>${end(l.a)} — ${end(l.b)}</h2><div class="sub">${esc(kindOf(l))}${l.endpoint ? ` · <span class="mono">${esc(l.endpoint)}</span>` : ''}</div>`,
    `<table><tr><th>state</th><td data-cable-state="${esc(l.state)}"><span class="dot ${esc(l.state)}"></span>${esc(l.state)}: ${esc(l.why)}</td></tr>`
      + `<tr><th>${esc(name(l.a.id))}</th><td>${addr(l.a)}</td></tr><tr><th>${esc(name(l.b.id))}</th><td>${addr(l.b)}</td></tr></table>`,
  ];
  if (l.impair.length) {
    const rows = l.impair.map((d, i) => {
      const kernel = d.kernel === null ? '' : `<br><span class="hint" data-kernel>kernel: <span class="mono">${esc(d.kernel || 'none')}</span></span>`;
      return `<tr data-dir="${i}"><td>${esc(d.from)} → ${esc(d.to)}</td><td><span class="mono" data-impair>${d.text ? esc(d.text) : '<span class="hint">none</span>'}</span>${kernel}</td></tr>`;
    }).join('');
    parts.push(`<h3>Impairment</h3><table><tr><th>direction</th><th>${graph.live ? 'as the lab runs' : 'in the model'}</th></tr>${rows}</table>`);
  }
  return parts.join('');
}

function formHtml(): string {
  const field = (f: (typeof FIELDS)[number]) => `<label>${f.key} <input name="${f.key}" placeholder="${esc(f.hint)}" autocomplete="off" spellcheck="false"></label>`;
  return `<h3>Set impairment</h3>
    <form class="impair-form" novalidate>
      <div class="fields">${FIELDS.filter((f) => !f.more).map(field).join('')}</div>
      <details><summary>more</summary><div class="fields">${FIELDS.filter((f) => f.more).map(field).join('')}</div></details>
      <div class="buttons"><button type="submit" class="primary" data-action="apply">Apply</button> <button type="button" data-action="clear">Clear</button></div>
      <div class="form-error" role="alert" hidden></div>
      <p class="hint">Both directions; Apply replaces what the cable had. tc's units: rates in bit, kbit, mbit, gbit (kbps, mbps: bytes per second), times in us, ms, s, percentages. Delay, jitter, duplicate, corrupt and reorder need the kernel's sch_netem.</p>
    </form>`;
}

function fillForm(form: HTMLFormElement, text: string): void {
  const v = valuesOfText(text);
  for (const f of FIELDS) (form.elements.namedItem(f.key) as HTMLInputElement).value = v[f.key] ?? '';
  form.dataset.text = text;
  delete form.dataset.dirty;
}

/** The cable each panel shows now (its buttons act on the latest data). */
const shown = new WeakMap<HTMLElement, ViewLink>();

/**
 * Shows a cable in `el`. Called again for the same cable (its data changed: the live view), it
 * replaces the information and the toggle button only: what is typed in the form stays, and
 * the form follows the cable's impairment only while nothing is typed in it.
 */
export function renderCablePanel(el: HTMLElement, graph: WebGraph, l: ViewLink, locked: string | null, actions: CableActions): void {
  const current = l.impair[0]?.text ?? '';
  const same = el.dataset.cable === l.id && el.querySelector('.cable-info');
  if (!same) {
    el.dataset.cable = l.id;
    el.innerHTML = `<div class="cable-info"></div>
      <div class="cable-actions">
        <div class="buttons"><button type="button" data-action="toggle"></button></div>
        ${l.impair.length ? formHtml() : ''}
        <p class="hint cable-locked" hidden></p>
      </div>`;
    const form = el.querySelector<HTMLFormElement>('form.impair-form');
    const latest = () => shown.get(el)!;
    el.querySelector<HTMLButtonElement>('[data-action=toggle]')!.addEventListener('click', () => actions.toggle(latest()));
    if (form) {
      fillForm(form, current);
      form.addEventListener('input', () => { form.dataset.dirty = '1'; });
      form.addEventListener('submit', (e) => {
        e.preventDefault();
        const values: ImpairValues = {};
        for (const f of FIELDS) {
          const v = (form.elements.namedItem(f.key) as HTMLInputElement).value.trim();
          if (v) values[f.key] = v;
        }
        actions.apply(latest(), values);
      });
      form.querySelector<HTMLButtonElement>('[data-action=clear]')!.addEventListener('click', () => actions.clear(latest()));
    }
  }
  shown.set(el, l);
  el.querySelector('.cable-info')!.innerHTML = cableInfo(graph, l);
  const toggle = el.querySelector<HTMLButtonElement>('[data-action=toggle]')!;
  toggle.textContent = l.state === 'down' ? 'Set up' : 'Set down';
  const form = el.querySelector<HTMLFormElement>('form.impair-form');
  if (form && !form.dataset.dirty && form.dataset.text !== current) fillForm(form, current);
  const note = el.querySelector<HTMLElement>('.cable-locked')!;
  note.hidden = locked === null;
  note.textContent = locked ?? '';
  const off = locked !== null || el.classList.contains('busy');
  toggle.disabled = off;
  if (form) for (const b of form.querySelectorAll<HTMLButtonElement | HTMLInputElement>('button, input')) b.disabled = off;
}

/** A request from the cable's panel is under way (buttons off until the next render), or over. */
export function setCableBusy(el: HTMLElement, busy: boolean): void {
  el.classList.toggle('busy', busy);
  if (busy) for (const b of el.querySelectorAll<HTMLButtonElement>('.cable-actions button')) b.disabled = true;
}

/** The refusal of the last request from the panel (null: none), shown under the form. */
export function showCableError(el: HTMLElement, error: string | null): void {
  const e = el.querySelector<HTMLElement>('.form-error');
  if (!e) return;
  e.hidden = error === null;
  e.textContent = error ?? '';
}

/** After an accepted Apply or Clear: the form shows what is set now, and is no longer dirty. */
export function settleCableForm(el: HTMLElement, text: string): void {
  const form = el.querySelector<HTMLFormElement>('form.impair-form');
  if (form) fillForm(form, text);
}

// ---------------------------------------------------------------- a node's usage

/** Bytes in binary units, as netlab stats prints memory ("1.50KiB", "64.0MiB"). */
export function binaryBytes(n: number): string { return scaled(n, 1024, ['B', 'KiB', 'MiB', 'GiB', 'TiB']); }
/** Bytes in decimal units, as netlab stats prints traffic ("1.50kB", "23.4MB"). */
export function decimalBytes(n: number): string { return scaled(n, 1000, ['B', 'kB', 'MB', 'GB', 'TB']); }

function scaled(n: number, base: number, units: string[]): string {
  let i = 0;
  let v = n;
  while (v >= base && i < units.length - 1) { v /= base; i++; }
  if (i === 0) return `${n}${units[0]}`;
  return `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)}${units[i]}`;
}

/** Fills the node panel's usage box (if it shows one) with the latest stats, or a problem. */
export function renderNodeStats(el: HTMLElement, s: ViewNodeStats | null, error: string | null = null): void {
  const box = el.querySelector<HTMLElement>('[data-node-stats]');
  if (!box) return;
  if (error !== null) { box.innerHTML = `<p class="hint">${esc(error)}</p>`; return; }
  if (!s) { box.innerHTML = '<p class="hint">reading…</p>'; return; }
  const cpu = s.cpu.percent === null ? '–' : `${s.cpu.percent.toFixed(2)}%`;
  const time = s.cpu.usage_seconds === null ? '' : ` <span class="hint">(${s.cpu.usage_seconds.toFixed(2)}s in all)</span>`;
  const mem = s.memory.bytes === null ? '–' : `${binaryBytes(s.memory.bytes)} / ${s.memory.limit === null ? 'no limit' : binaryBytes(s.memory.limit)}`;
  const net = s.net.map((f) => `<tr data-stats-iface="${esc(f.iface)}"><td class="mono">${esc(f.iface)}</td><td>${decimalBytes(f.rx_bytes)}</td><td>${decimalBytes(f.tx_bytes)}</td></tr>`).join('');
  box.innerHTML = `<table>
      <tr><th>CPU</th><td data-stat="cpu">${cpu}${time}</td></tr>
      <tr><th>memory</th><td data-stat="memory">${mem}</td></tr>
      <tr><th>pids</th><td data-stat="pids">${s.pids ?? '–'}</td></tr>
    </table>${net ? `<table><tr><th>interface</th><th>received</th><th>sent</th></tr>${net}</table>` : ''}`;
}
