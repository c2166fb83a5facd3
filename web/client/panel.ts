// The side panel's node tab: the selected node's process, interfaces, addresses and routes,
// and the checks that start or end at it.
import type { ViewNode, ViewOutcome, WebGraph } from '../server/types.js';

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
      <p class="hint">Click a node for its interfaces, addresses, routes and process. ${graph.live ? 'Click a cable to set it down or up. ' : ''}Drag a node to pin it; double-click to release.</p>`;
    return;
  }
  const parts: string[] = [`<h2>${esc(n.name)}</h2><div class="sub">${esc(kindText(n))}${n.detail ? ` · ${esc(n.detail)}` : ''}</div>`];
  if (n.process) {
    const p = n.process;
    const state = p.state === 'running' ? `running, pid <span class="mono">${p.pid}</span>` : p.state === 'model' ? 'not up (drawn from the model)' : p.state === 'exited' ? `exited${p.exit ? ` (${esc(p.exit)})` : ''}${p.oomKilled ? ', OOM-killed' : ''}` : 'not started';
    parts.push(`<h3>Process</h3><div class="proc proc-${p.state.replace(' ', '-')}" data-process="${esc(p.state)}">${state}</div>`);
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
