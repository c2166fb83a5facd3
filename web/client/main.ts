// The netlab web view: picks the lab, keeps its graph live (server-sent events), runs checks,
// sets cables down and up and impairs them (from the cable's panel), and shows details (a
// running node's usage polled every 2 s while it is selected and the page is visible). Served
// by `netlab web`, or standalone with the lab's data inline (`netlab graph FILE --format html`).
import type { LabSummary, ServerEvent, ViewCheckReport, ViewLink, ViewNode, ViewNodeStats, WebGraph } from '../server/types.js';
import { ApiError, HttpApi, StaticApi, embeddedData, takeToken, type Api, type ImpairValues } from './api.js';
import { CheckView, checkMarks } from './checks.js';
import { GraphView, legendShape } from './graph.js';
import { cableLocked, esc, renderCablePanel, renderNodePanel, renderNodeStats, setCableBusy, settleCableForm, showCableError, type CableActions } from './panel.js';

declare global {
  interface Window {
    /** Timings (ms since navigation start) for tests and the render benchmark. */
    __netlab: { drawnAt: number | null; settledAt: number | null; checksAt: number | null; graphs: number };
  }
}
window.__netlab = { drawnAt: null, settledAt: null, checksAt: null, graphs: 0 };

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

const data = embeddedData();
const api: Api = data ? new StaticApi(data) : new HttpApi(takeToken());

let lab: string | null = null;
let graph: WebGraph | null = null;
let labs: LabSummary[] = [];
let stopEvents: (() => void) | null = null;
let predictionsStale = true;
let lastReport: ViewCheckReport | null = null;

const select = $<HTMLSelectElement>('lab-select');
const runBtn = $<HTMLButtonElement>('run-checks');
const matrixBox = $<HTMLInputElement>('matrix-mode');
const nodeTab = $('tab-node');
const checksTab = $('tab-checks');

function message(text: string, error = false): void {
  const m = $('message');
  m.textContent = text;
  m.classList.toggle('error', error);
  m.title = text;
}

function showEmpty(text: string | null): void {
  const e = $('empty');
  e.hidden = text === null;
  e.textContent = text ?? '';
}

function setBadge(text: string, cls: string): void {
  const b = $('lab-status');
  b.textContent = text;
  b.className = `badge ${cls}`;
}

function setConnection(state: 'on' | 'off' | 'static'): void {
  const c = $('conn');
  c.className = `conn ${state}`;
  c.title = state === 'on' ? 'live updates connected' : state === 'off' ? 'live updates disconnected (reconnecting)' : 'standalone page: no live updates';
}

// ---------------------------------------------------------------- graph and panels

const view = new GraphView($('graph') as unknown as SVGSVGElement, $('tooltip'), {
  onSelect: () => renderSide(),
  onSelectLink: (_l, clicked) => {
    if (clicked) showTab('node');
    renderSide();
  },
  onDrawn: () => { window.__netlab.drawnAt ??= performance.now(); },
  onSettled: () => { window.__netlab.settledAt ??= performance.now(); },
  reservedBottom: () => $('legend').offsetHeight + 10,
});

const checkView = new CheckView(checksTab, {
  explain: (from, to) => (lab ? api.explainPair(lab, from, to) : Promise.resolve(null)),
  highlight: (names) => view.highlightPath(names),
});

const cableActions: CableActions = {
  toggle: (l) => void toggleLink(l),
  apply: (l, values) => void impair(l, values),
  clear: (l) => void impair(l, null),
};

/** The details tab: the selected cable's panel, the selected node's, or the lab's overview. */
function renderSide(): void {
  const linkId = view.selectedLinkId();
  const l = graph && linkId ? graph.links.find((x) => x.id === linkId) : undefined;
  if (graph && l) {
    renderCablePanel(nodeTab, graph, l, cableLocked(graph, l, api.standalone), cableActions);
  } else {
    const id = view.selectedId();
    renderNodePanel(nodeTab, graph, (id && graph?.nodes.find((n) => n.id === id)) || null, checkView.outcomes());
  }
  syncStats();
}

// ---------------------------------------------------------------- a node's usage, polled

const STATS_EVERY_MS = 2000;

interface StatsPoll { key: string; lab: string; node: string; timer: number | null; last: ViewNodeStats | null; error: string | null }
let statsPoll: StatsPoll | null = null;

/** The node whose usage is to be shown: a running container of a live lab, selected in the
 *  panel, the page visible; null: nothing to poll. */
function statsTarget(): { lab: string; node: string } | null {
  if (api.standalone || !lab || !graph?.live || document.visibilityState !== 'visible' || view.selectedLinkId()) return null;
  const id = view.selectedId();
  const n = id ? graph.nodes.find((x) => x.id === id) : undefined;
  return n && n.kind === 'container' && n.process?.state === 'running' ? { lab, node: n.name } : null;
}

/** Starts, keeps or stops the poll to match what the panel shows; refills its usage box (the
 *  panel's other parts are redrawn with every graph). */
function syncStats(): void {
  const t = statsTarget();
  const key = t ? `${t.lab}\u0000${t.node}` : null;
  if (statsPoll && statsPoll.key === key) { renderNodeStats(nodeTab, statsPoll.last, statsPoll.error); return; }
  if (statsPoll?.timer != null) clearTimeout(statsPoll.timer);
  statsPoll = null;
  if (!t || key === null) return;
  const p: StatsPoll = { key, ...t, timer: null, last: null, error: null };
  statsPoll = p;
  const tick = async () => {
    p.timer = null;
    try {
      p.last = await api.nodeStats(p.lab, p.node);
      p.error = null;
    } catch (e) {
      p.error = `stats: ${(e as Error).message}`;
    }
    if (statsPoll !== p) return; // the selection changed or the page was hidden meanwhile
    renderNodeStats(nodeTab, p.last, p.error);
    p.timer = window.setTimeout(() => void tick(), STATS_EVERY_MS);
  };
  void tick();
}

function showTab(tab: 'node' | 'checks'): void {
  document.querySelectorAll<HTMLButtonElement>('.tabs button').forEach((b) => b.classList.toggle('active', b.dataset.tab === tab));
  nodeTab.hidden = tab !== 'node';
  checksTab.hidden = tab !== 'checks';
  if (tab === 'checks' && predictionsStale) void loadPredictions();
  if (tab === 'node') view.highlightPath(null);
}

function applyGraph(g: WebGraph): void {
  const structureChanged = !graph || graph.lab !== g.lab || graph.nodes.length !== g.nodes.length || graph.links.length !== g.links.length;
  const stateChanged = !graph || JSON.stringify(graph.links.map((l) => l.state)) !== JSON.stringify(g.links.map((l) => l.state));
  graph = g;
  window.__netlab.graphs++;
  showEmpty(g.nodes.length ? null : `lab ${g.lab} has nothing to draw`);
  if (g.live) setBadge(g.status, g.status === 'up' ? 'up' : g.status);
  else if (g.status === 'offline') setBadge('model (not up)', 'offline');
  else setBadge(`${g.status} (model only: the server cannot read the kernel)`, 'offline');
  view.update(g);
  // A selected node or cable was redrawn by update() (its callbacks).
  if (!view.selectedId() && !view.selectedLinkId()) renderSide();
  if (structureChanged || stateChanged) {
    predictionsStale = true;
    if (!checksTab.hidden) void loadPredictions();
  }
  runBtn.disabled = false;
}

async function loadPredictions(): Promise<void> {
  if (!lab) return;
  predictionsStale = false;
  const want = lab;
  try {
    const p = await api.predictions(want);
    if (lab === want) checkView.setPredictions(p);
  } catch (e) {
    if (lab === want) message(`predictions: ${(e as Error).message}`, true);
  }
}

function markGone(name: string): void {
  if (name !== lab) return;
  graph = null;
  view.clear();
  renderSide();
  checkView.reset();
  setBadge('not up', 'gone');
  showEmpty(`lab ${name} is not up (any more). It shows again when it comes up.`);
  runBtn.disabled = true;
}

// ---------------------------------------------------------------- labs and events

function setLabs(next: LabSummary[]): void {
  labs = next;
  const names = new Set(next.map((l) => l.name));
  const options = [...next.map((l) => l.name)];
  if (lab && !names.has(lab)) options.push(lab);
  select.innerHTML = options.map((n) => {
    const l = next.find((x) => x.name === n);
    const note = l ? (l.live ? '' : ` (${l.status === 'offline' ? 'not up' : l.status})`) : ' (gone)';
    return `<option value="${esc(n)}">${esc(n)}${esc(note)}</option>`;
  }).join('');
  if (lab) select.value = lab;
  select.disabled = options.length === 0;
}

function onEvent(e: ServerEvent): void {
  switch (e.type) {
    case 'labs': {
      setLabs(e.labs);
      if (lab && !e.labs.some((l) => l.name === lab)) markGone(lab);
      else if (lab && !graph && e.labs.some((l) => l.name === lab)) void openLab(lab);
      else if (!lab && e.labs.length) void openLab(e.labs[0].name);
      break;
    }
    case 'graph':
      if (e.graph.lab === lab) applyGraph(e.graph);
      break;
    case 'gone':
      markGone(e.lab);
      break;
    case 'checks':
      if (e.report.lab === lab) showReport(e.report);
      break;
  }
}

async function openLab(name: string | null): Promise<void> {
  stopEvents?.();
  stopEvents = null;
  const changed = name !== lab;
  lab = name;
  if (changed) {
    graph = null;
    view.clear();
    checkView.reset();
    lastReport = null;
    predictionsStale = true;
  }
  setLabs(labs);
  if (!api.standalone) {
    const url = new URL(location.href);
    if (name) url.searchParams.set('lab', name); else url.searchParams.delete('lab');
    history.replaceState(null, '', url.pathname + url.search + url.hash);
  }
  if (!name) {
    showEmpty('No labs here yet. Bring one up (netlab up FILE) and it appears; or run netlab web FILE to draw a model.');
    setBadge('no lab', '');
    runBtn.disabled = true;
  } else {
    try {
      applyGraph(await api.graph(name));
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) markGone(name);
      else message((e as Error).message, true);
    }
  }
  if (api.standalone) { setConnection('static'); return; }
  stopEvents = api.events(name, { onEvent, onConnection: (open) => setConnection(open ? 'on' : 'off') });
  if (!checksTab.hidden) void loadPredictions();
}

// ---------------------------------------------------------------- actions

function showReport(r: ViewCheckReport): void {
  lastReport = r;
  checkView.setReport(r);
  const names = graph?.nodes.filter((n) => n.kind === 'container').map((n) => n.name) ?? [];
  view.setResults(checkMarks(r, names));
  renderSide();
  document.body.dataset.checks = r.observed ? 'observed' : 'predicted';
  window.__netlab.checksAt = performance.now();
}

async function runChecks(): Promise<void> {
  if (!lab) return;
  const matrix = matrixBox.checked;
  runBtn.disabled = true;
  showTab('checks');
  checkView.setRunning(true);
  message(`running ${matrix ? 'every pair' : 'the checks'} of ${lab}…`);
  try {
    const r = await api.runChecks(lab, matrix);
    checkView.setRunning(false);
    showReport(r);
    message(r.observed ? `${r.passed} passed, ${r.failed} failed, ${r.disagreements} disagreeing with the prediction` : `${r.outcomes.length} predicted (the lab is not up: nothing was run)`, r.failed > 0);
  } catch (e) {
    checkView.setRunning(false, (e as Error).message);
    message((e as Error).message, true);
  } finally {
    runBtn.disabled = false;
  }
}

/** The panel of cable `id` is on screen. */
const panelShows = (id: string) => nodeTab.dataset.cable === id;

async function toggleLink(l: ViewLink): Promise<void> {
  if (!lab || !graph) return;
  const locked = cableLocked(graph, l, api.standalone);
  if (locked || !l.endpoint) { message(locked ?? 'this cable cannot be set down from here', true); return; }
  const state = l.state === 'down' ? 'up' : 'down';
  view.markPending(l.id);
  message(`setting ${l.endpoint} ${state}…`);
  setCableBusy(nodeTab, true);
  showCableError(nodeTab, null);
  try {
    await api.setLink(lab, l.endpoint, state);
    message(`${l.endpoint} set ${state}`);
  } catch (e) {
    message((e as Error).message, true);
    if (panelShows(l.id)) showCableError(nodeTab, (e as Error).message);
    if (graph) view.update(graph);
  } finally {
    setCableBusy(nodeTab, false);
    renderSide();
  }
}

/** Sets the cable's impairment (values) or clears it (null), from its panel. */
async function impair(l: ViewLink, values: ImpairValues | null): Promise<void> {
  if (!lab || !graph) return;
  const locked = cableLocked(graph, l, api.standalone);
  if (locked || !l.endpoint) { message(locked ?? 'this cable cannot be impaired from here', true); return; }
  if (values && Object.keys(values).length === 0) { showCableError(nodeTab, 'nothing to set: fill in a field (e.g. rate 10mbit), or Clear'); return; }
  const endpoint = l.endpoint;
  message(values ? `impairing ${endpoint}…` : `clearing the impairment of ${endpoint}…`);
  setCableBusy(nodeTab, true);
  showCableError(nodeTab, null);
  try {
    const r = await api.setImpairment(lab, endpoint, values);
    message(`${r.interfaces.join(' ')}: ${r.impair || 'no impairment'}`);
    if (panelShows(l.id)) settleCableForm(nodeTab, r.impair);
  } catch (e) {
    message((e as Error).message, true);
    if (panelShows(l.id)) showCableError(nodeTab, (e as Error).message);
  } finally {
    setCableBusy(nodeTab, false);
    renderSide();
  }
}

// ---------------------------------------------------------------- legend and wiring

function legend(): void {
  const shape = (kind: ViewNode['kind'], attrs: string, extra = '') => `<svg width="18" height="16" viewBox="-9 -8 18 16"><g class="node" data-kind="${kind}" ${attrs}><path class="shape" d="${legendShape(kind)}"></path>${extra}</g></svg>`;
  const line = (state: string, attrs = '') => `<svg width="26" height="10" viewBox="0 0 26 10"><g class="link" data-state="${state}" ${attrs}><line class="vis" x1="1" y1="5" x2="25" y2="5"></line></g></svg>`;
  const ring = (r: string) => `<svg width="18" height="18" viewBox="-9 -9 18 18"><g class="node" data-kind="container" data-result="${r}"><circle class="ring" r="7"></circle><path class="shape" d="${legendShape('container')}" transform="scale(.7)"></path></g></svg>`;
  const item = (icon: string, text: string) => `<div class="item">${icon}<span>${text}</span></div>`;
  $('legend').innerHTML = [
    item(shape('container', 'data-state="running"'), 'container (running)'),
    item(shape('container', 'data-state="exited"'), 'container (exited)'),
    item(shape('container', 'data-state="model"'), 'container (model)'),
    item(shape('network', 'data-variant="bridge"'), 'bridge network'),
    item(shape('network', 'data-variant="overlay"'), 'overlay network'),
    item(shape('host', ''), 'simulated host'),
    item(shape('machine', ''), 'this machine'),
    item(shape('container', 'data-state="running" data-variant="none"'), 'network_mode none'),
    '<div class="sep"></div>',
    item(line('up'), 'cable up'),
    item(line('down'), 'cable down'),
    item(line('unknown'), 'not live'),
    item(line('up', 'data-impaired="true"'), 'impaired (rate, delay, loss…)'),
    item(ring('pass'), 'checks pass'),
    item(ring('fail'), 'a check fails'),
    item(ring('disagree'), 'kernel ≠ prediction'),
  ].join('');
}

document.querySelectorAll<HTMLButtonElement>('.tabs button').forEach((b) => b.addEventListener('click', () => showTab(b.dataset.tab as 'node' | 'checks')));
select.addEventListener('change', () => void openLab(select.value || null));
document.addEventListener('visibilitychange', () => syncStats());
runBtn.addEventListener('click', () => void runChecks());
$('fit').addEventListener('click', () => view.fit());
$('unpin').addEventListener('click', () => view.unpinAll());
if (api.standalone) {
  runBtn.textContent = 'Show predictions';
  runBtn.title = 'standalone page: checks are predicted from the model, not run';
}
legend();

(async () => {
  try {
    const r = await api.labs();
    setLabs(r.labs);
    const wanted = new URL(location.href).searchParams.get('lab');
    const first = [wanted, r.defaultLab, r.labs[0]?.name].find((x): x is string => !!x && (x === wanted || r.labs.some((l) => l.name === x))) ?? null;
    await openLab(first);
  } catch (e) {
    message((e as Error).message, true);
    showEmpty(`cannot reach netlab: ${(e as Error).message}`);
  }
})();
