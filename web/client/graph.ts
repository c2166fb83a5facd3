// The force-directed lab graph (D3 v7, SVG). Built to stay usable at a few hundred nodes:
//  - keyed joins (by graph key): an update keeps every existing node's position and velocity,
//    only new nodes are placed (next to a neighbour), and the layout restarts only when nodes
//    or links were added or removed; a state change (link down, process exited) just restyles;
//  - the layout is O(N log N) per tick (Barnes-Hut many-body, quadtree collision), each tick
//    writes one transform per node and two coordinates pairs per link, and the simulation
//    stops when it cools (d3's alphaMin); the first layout of a lab runs without drawing for
//    a bounded time, so the first frame is already mostly settled;
//  - labels: node names always up to 60 nodes, above that on hover, for the selection and its
//    neighbours, or when zoomed in; interface labels (name and address at each cable end) for
//    every cable up to 30 nodes, above that only around the hovered or selected node;
//  - drag pins a node (double-click releases it); pinned and settled positions are kept per
//    lab in localStorage, so a reload draws the same picture at once;
//  - a click selects a node or a cable (the side panel shows it); an impaired cable carries a
//    short label of its impairment mid-cable and a dashed stroke (data-impaired).
import { drag, forceCollide, forceLink, forceManyBody, forceSimulation, forceX, forceY, select, symbol, symbolCircle, symbolSquare, zoom, zoomIdentity, type D3DragEvent, type Selection, type Simulation, type SimulationLinkDatum, type SimulationNodeDatum, type ZoomBehavior, type ZoomTransform } from 'd3';
import type { ViewLink, ViewNode, WebGraph } from '../server/types.js';

export type CheckMark = 'pass' | 'fail' | 'disagree';

export interface SimNode extends SimulationNodeDatum {
  id: string;
  data: ViewNode;
  r: number;
}

export interface SimLink extends SimulationLinkDatum<SimNode> {
  id: string;
  data: ViewLink;
  source: SimNode | string;
  target: SimNode | string;
}

export interface GraphCallbacks {
  onSelect(node: ViewNode | null): void;
  /** A cable was selected (clicked: true), or its data changed while selected (false); null:
   *  it went away. */
  onSelectLink(link: ViewLink | null, clicked: boolean): void;
  /** First frame drawn, and layout settled (for the status line and timing). */
  onDrawn(): void;
  onSettled(): void;
  /** Pixels at the bottom of the view covered by an overlay (the legend), kept clear by fit. */
  reservedBottom?(): number;
}

const DENSE_NODES = 60;
const ALL_IFACE_LABELS_NODES = 30;
const PRELAYOUT_BUDGET_MS = 700;

interface Layout { pos: Record<string, [number, number]>; pinned: Record<string, [number, number]>; }

function radius(n: ViewNode): number {
  switch (n.kind) {
    case 'container': return 8;
    case 'network': return 12;
    case 'host': return 11;
    case 'machine': return 14;
  }
}

function shapePath(n: ViewNode, r: number): string {
  switch (n.kind) {
    case 'container':
      return symbol(symbolCircle, Math.PI * r * r)()!;
    case 'network': {
      const w = r * 2.4, h = r * 1.4, c = 5;
      const x = -w / 2, y = -h / 2;
      return `M${x + c},${y}H${x + w - c}Q${x + w},${y} ${x + w},${y + c}V${y + h - c}Q${x + w},${y + h} ${x + w - c},${y + h}H${x + c}Q${x},${y + h} ${x},${y + h - c}V${y + c}Q${x},${y} ${x + c},${y}Z`;
    }
    case 'host':
      return symbol(symbolSquare, (r * 1.7) ** 2)()!;
    case 'machine': {
      const pts: string[] = [];
      for (let i = 0; i < 6; i++) {
        const a = (Math.PI / 3) * i + Math.PI / 6;
        pts.push(`${(r * Math.cos(a)).toFixed(2)},${(r * Math.sin(a)).toFixed(2)}`);
      }
      return `M${pts.join('L')}Z`;
    }
  }
}

export function legendShape(kind: ViewNode['kind']): string {
  return shapePath({ kind } as ViewNode, kind === 'container' ? 6 : kind === 'machine' ? 8 : 7);
}

const endId = (e: SimNode | string): string => (typeof e === 'string' ? e : e.id);

function endpointsOf(l: SimLink): [SimNode, SimNode] {
  return [l.source as SimNode, l.target as SimNode];
}

export class GraphView {
  private readonly svg: Selection<SVGSVGElement, unknown, null, undefined>;
  private readonly viewport: Selection<SVGGElement, unknown, null, undefined>;
  private readonly gLinks: Selection<SVGGElement, unknown, null, undefined>;
  private readonly gLabels: Selection<SVGGElement, unknown, null, undefined>;
  private readonly gCableLabels: Selection<SVGGElement, unknown, null, undefined>;
  private readonly gNodes: Selection<SVGGElement, unknown, null, undefined>;
  private readonly zoomer: ZoomBehavior<SVGSVGElement, unknown>;
  private readonly sim: Simulation<SimNode, SimLink>;
  private nodeSel: Selection<SVGGElement, SimNode, SVGGElement, unknown> | null = null;
  private linkSel: Selection<SVGGElement, SimLink, SVGGElement, unknown> | null = null;
  private labelSel: Selection<SVGTextElement, { link: SimLink; end: 'a' | 'b' }, SVGGElement, unknown> | null = null;
  private cableLabelSel: Selection<SVGTextElement, SimLink, SVGGElement, unknown> | null = null;
  private nodes = new Map<string, SimNode>();
  private links: SimLink[] = [];
  private lab: string | null = null;
  private layout: Layout = { pos: {}, pinned: {} };
  private selected: string | null = null;
  private selectedLink: string | null = null;
  private hovered: string | null = null;
  private results = new Map<string, CheckMark>();
  private transform: ZoomTransform = zoomIdentity;
  private drawn = false;
  private fitted = false;
  private readonly tooltip: HTMLElement;

  constructor(svgEl: SVGSVGElement, tooltip: HTMLElement, private readonly cb: GraphCallbacks) {
    this.tooltip = tooltip;
    this.svg = select(svgEl);
    this.viewport = this.svg.append('g').attr('class', 'viewport');
    this.gLinks = this.viewport.append('g').attr('class', 'links');
    this.gNodes = this.viewport.append('g').attr('class', 'nodes');
    this.gLabels = this.viewport.append('g').attr('class', 'ilabels');
    this.gCableLabels = this.viewport.append('g').attr('class', 'clabels');
    this.zoomer = zoom<SVGSVGElement, unknown>()
      .scaleExtent([0.05, 8])
      .on('zoom', (e: { transform: ZoomTransform }) => {
        this.transform = e.transform;
        this.viewport.attr('transform', e.transform.toString());
        this.svg.classed('zoomed', e.transform.k >= 1.8);
      });
    this.svg.call(this.zoomer).on('dblclick.zoom', null);
    this.svg.on('click', (e: MouseEvent) => {
      if (e.target === svgEl) this.select(null);
    });
    this.sim = forceSimulation<SimNode, SimLink>()
      // Room for the interface labels when every cable end is labelled (small graphs).
      .force('link', forceLink<SimNode, SimLink>().id((d) => d.id).distance((l) => {
        const roomy = this.nodes.size <= ALL_IFACE_LABELS_NODES ? 1.7 : 1;
        return roomy * (l.data.kind === 'attachment' ? 85 : l.data.kind === 'link' ? 120 : 95);
      }))
      .force('charge', forceManyBody<SimNode>().strength(() => (this.nodes.size <= ALL_IFACE_LABELS_NODES ? -600 : -260)).theta(0.9).distanceMax(900))
      .force('collide', forceCollide<SimNode>((d) => d.r + 12).iterations(1))
      .force('x', forceX<SimNode>(0).strength(0.03))
      .force('y', forceY<SimNode>(0).strength(0.03))
      .on('tick', () => this.tick())
      .on('end', () => this.settled())
      .stop();
  }

  /** Draws (or redraws) a lab's graph; keeps positions of nodes already drawn. */
  update(g: WebGraph): void {
    if (g.lab !== this.lab) this.reset(g.lab);
    const before = this.nodes;
    const next = new Map<string, SimNode>();
    let added = 0;
    for (const v of g.nodes) {
      let n = before.get(v.id);
      if (n) {
        n.data = v;
      } else {
        n = { id: v.id, data: v, r: radius(v) };
        added++;
      }
      next.set(v.id, n);
    }
    const removed = [...before.keys()].filter((k) => !next.has(k)).length;
    // Links keep their objects too (forceLink has replaced their ends by node objects).
    const oldLinks = new Map(this.links.map((l) => [l.id, l]));
    const oldLinkIds = this.links.map((l) => l.id).join('\u0000');
    const links: SimLink[] = g.links.filter((l) => next.has(l.source) && next.has(l.target)).map((l) => {
      const old = oldLinks.get(l.id);
      const sameEnds = old && (old.source as SimNode).id === l.source && (old.target as SimNode).id === l.target;
      if (old && sameEnds) { old.data = l; return old; }
      return { id: l.id, data: l, source: l.source, target: l.target };
    });
    const linksChanged = links.map((l) => l.id).join('\u0000') !== oldLinkIds || links.some((l) => typeof l.source === 'string');
    this.nodes = next;
    this.links = links;
    const structural = added > 0 || removed > 0 || linksChanged;

    // New nodes: at their remembered place, else next to a neighbour already placed.
    if (added > 0) {
      let unplaced = 0;
      for (const n of next.values()) {
        if (n.x !== undefined) continue;
        const saved = this.layout.pinned[n.id] ?? this.layout.pos[n.id];
        if (saved) {
          [n.x, n.y] = saved;
          if (this.layout.pinned[n.id]) { n.fx = saved[0]; n.fy = saved[1]; }
        } else {
          unplaced++;
        }
      }
      if (unplaced > 0 && unplaced < next.size) {
        for (const l of links) {
          const s = next.get(endId(l.source))!, t = next.get(endId(l.target))!;
          const [from, to] = s.x === undefined ? [t, s] : [s, t];
          if (from.x !== undefined && to.x === undefined) {
            to.x = from.x + (Math.random() - 0.5) * 40;
            to.y = from.y! + (Math.random() - 0.5) * 40;
          }
        }
      }
    }

    this.join();
    if (structural) {
      this.sim.nodes([...next.values()]);
      (this.sim.force('link') as ReturnType<typeof forceLink<SimNode, SimLink>>).links(links);
      const firstLayout = !this.drawn;
      const allKnown = [...next.values()].every((n) => this.layout.pos[n.id] || this.layout.pinned[n.id]);
      if (firstLayout) {
        this.sim.alpha(allKnown ? 0.05 : 1);
        // Lay out without drawing for a bounded time: the first frame is close to settled.
        const t0 = performance.now();
        while (this.sim.alpha() > this.sim.alphaMin() && performance.now() - t0 < PRELAYOUT_BUDGET_MS) this.sim.tick();
        this.tick();
        this.firstDraw();
        if (this.sim.alpha() > this.sim.alphaMin()) this.sim.restart();
        else this.settled();
      } else {
        this.sim.alpha(added > 0 ? 0.5 : 0.15).restart();
      }
    } else {
      this.tick();
      if (!this.drawn) this.firstDraw();
    }
    this.restyle();
    if (this.selected) this.cb.onSelect(next.get(this.selected)?.data ?? null);
    else if (this.selectedLink) {
      const l = links.find((x) => x.id === this.selectedLink);
      if (!l) this.selectedLink = null;
      this.cb.onSelectLink(l?.data ?? null, false);
    }
  }

  /** Clears the drawing (the lab went away). */
  clear(): void {
    this.reset(null);
    this.join();
    this.sim.nodes([]);
    this.svg.attr('data-nodes', 0).attr('data-links', 0);
  }

  setResults(results: Map<string, CheckMark>): void {
    this.results = results;
    this.restyle();
  }

  /** Highlights a path (node names of its hops); null clears it. */
  highlightPath(names: string[] | null): void {
    const ids = new Set((names ?? []).map((n) => `node:${n}`));
    if (names?.some((n) => n === 'host' || n === '@host')) ids.add('machine');
    const onPath = (l: SimLink) => {
      const [s, t] = endpointsOf(l);
      if (l.data.kind === 'link') return ids.has(s.id) && ids.has(t.id);
      return ids.has(s.id) || ids.has(t.id) ? ids.has(s.id) && (t.data.kind === 'network' || ids.has(t.id)) : false;
    };
    this.nodeSel?.classed('path', (d) => ids.has(d.id));
    this.linkSel?.classed('path', (d) => names !== null && onPath(d));
  }

  select(id: string | null): void {
    this.selected = id;
    this.selectedLink = null;
    this.nodeSel?.classed('selected', (d) => d.id === id);
    this.linkSel?.classed('selected', false);
    this.updateFocus();
    this.cb.onSelect(id ? this.nodes.get(id)?.data ?? null : null);
  }

  /** Selects a cable (its panel shows in the side panel). */
  selectLink(id: string): void {
    const l = this.links.find((x) => x.id === id);
    if (!l) return;
    this.selected = null;
    this.selectedLink = id;
    this.nodeSel?.classed('selected', false);
    this.linkSel?.classed('selected', (d) => d.id === id);
    this.updateFocus();
    this.cb.onSelectLink(l.data, true);
  }

  selectedId(): string | null {
    return this.selected;
  }

  selectedLinkId(): string | null {
    return this.selectedLink;
  }

  fit(animate = true): void {
    const el = this.svg.node()!;
    const w = el.clientWidth || 800, h = el.clientHeight || 600;
    const ns = [...this.nodes.values()].filter((n) => n.x !== undefined);
    if (ns.length === 0) return;
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const n of ns) {
      x0 = Math.min(x0, n.x! - n.r); y0 = Math.min(y0, n.y! - n.r);
      x1 = Math.max(x1, n.x! + n.r); y1 = Math.max(y1, n.y! + n.r + 24);
    }
    const pad = 40;
    const hh = Math.max(200, h - (this.cb.reservedBottom?.() ?? 0));
    const k = Math.min(1.5, (w - 2 * pad) / Math.max(1, x1 - x0), (hh - 2 * pad) / Math.max(1, y1 - y0));
    const t = zoomIdentity.translate(w / 2 - (k * (x0 + x1)) / 2, hh / 2 - (k * (y0 + y1)) / 2).scale(k);
    (animate ? this.svg.transition().duration(300) : this.svg).call(this.zoomer.transform as never, t);
  }

  unpinAll(): void {
    for (const n of this.nodes.values()) { n.fx = null; n.fy = null; }
    this.layout = { pos: {}, pinned: {} };
    this.save();
    this.nodeSel?.classed('pinned', false);
    this.sim.alpha(0.8).restart();
  }

  // ------------------------------------------------------------------ internals

  private reset(lab: string | null): void {
    this.sim.stop();
    this.lab = lab;
    this.nodes = new Map();
    this.links = [];
    this.selected = null;
    this.selectedLink = null;
    this.hovered = null;
    this.results = new Map();
    this.drawn = false;
    this.fitted = false;
    this.layout = lab ? this.load(lab) : { pos: {}, pinned: {} };
    document.body.dataset.graphState = 'loading';
  }

  private key(lab: string): string {
    return `netlab:layout:${lab}`;
  }

  private load(lab: string): Layout {
    try {
      const v = JSON.parse(localStorage.getItem(this.key(lab)) ?? 'null') as Layout | null;
      if (v && typeof v === 'object' && v.pos && v.pinned) return v;
    } catch { /* storage disabled or corrupt */ }
    return { pos: {}, pinned: {} };
  }

  private save(): void {
    if (!this.lab) return;
    const pos: Layout['pos'] = {};
    const pinned: Layout['pinned'] = {};
    for (const n of this.nodes.values()) {
      if (n.x === undefined) continue;
      const p: [number, number] = [Math.round(n.x * 10) / 10, Math.round(n.y! * 10) / 10];
      if (n.fx != null) pinned[n.id] = p;
      else pos[n.id] = p;
    }
    this.layout = { pos, pinned };
    try { localStorage.setItem(this.key(this.lab), JSON.stringify(this.layout)); } catch { /* quota or disabled */ }
  }

  private firstDraw(): void {
    this.drawn = true;
    if (!this.fitted) { this.fitted = true; this.fit(false); }
    document.body.dataset.graphState = 'drawn';
    this.cb.onDrawn();
  }

  private settled(): void {
    this.save();
    document.body.dataset.graphState = 'settled';
    this.cb.onSettled();
  }

  private dense(): boolean {
    return this.nodes.size > DENSE_NODES;
  }

  private join(): void {
    const nodes = [...this.nodes.values()];
    const dense = this.dense();
    this.svg.classed('dense', dense).attr('data-nodes', nodes.length).attr('data-links', this.links.length);

    this.linkSel = this.gLinks.selectAll<SVGGElement, SimLink>('g.link')
      .data(this.links, (d) => d.id)
      .join((enter) => {
        const g = enter.append('g').attr('class', 'link');
        g.append('line').attr('class', 'hit');
        g.append('line').attr('class', 'vis');
        g.on('mouseenter', (e: MouseEvent, d) => this.showTip(e, this.linkTip(d)))
          .on('mousemove', (e: MouseEvent) => this.moveTip(e))
          .on('mouseleave', () => this.hideTip())
          .on('click', (e: MouseEvent, d) => { e.stopPropagation(); this.selectLink(d.id); });
        return g;
      });
    this.linkSel.attr('data-id', (d) => d.id);

    const self = this;
    this.nodeSel = this.gNodes.selectAll<SVGGElement, SimNode>('g.node')
      .data(nodes, (d) => d.id)
      .join((enter) => {
        const g = enter.append('g').attr('class', 'node');
        g.append('circle').attr('class', 'ring');
        g.append('path').attr('class', 'shape');
        g.append('circle').attr('class', 'pin').attr('r', 2.2);
        const t = g.append('text').attr('class', 'label').attr('text-anchor', 'middle');
        t.append('tspan').attr('class', 'name');
        t.append('tspan').attr('class', 'detail').attr('x', 0).attr('dy', '1.15em');
        g.on('mouseenter', function (e: MouseEvent, d) {
          self.hovered = d.id;
          select(this).classed('hover', true);
          self.updateFocus();
          self.showTip(e, self.nodeTip(d));
        })
          .on('mousemove', (e: MouseEvent) => this.moveTip(e))
          .on('mouseleave', function () {
            self.hovered = null;
            select(this).classed('hover', false);
            self.updateFocus();
            self.hideTip();
          })
          .on('click', (e: MouseEvent, d) => { e.stopPropagation(); this.select(d.id); })
          .on('dblclick', (e: MouseEvent, d) => {
            e.stopPropagation();
            d.fx = null; d.fy = null;
            select(e.currentTarget as SVGGElement).classed('pinned', false);
            this.save();
            this.sim.alpha(0.2).restart();
          });
        // A press that does not move is a click: it must not pin.
        let moved = false;
        g.call(drag<SVGGElement, SimNode>()
          .on('start', () => { moved = false; })
          .on('drag', (e: D3DragEvent<SVGGElement, SimNode, SimNode>, d) => {
            if (!moved) {
              moved = true;
              if (!e.active) this.sim.alphaTarget(0.15).restart();
            }
            d.fx = e.x; d.fy = e.y;
          })
          .on('end', (e: D3DragEvent<SVGGElement, SimNode, SimNode>) => {
            if (!moved) return;
            if (!e.active) this.sim.alphaTarget(0);
            this.nodeSel?.classed('pinned', (n) => n.fx != null);
            this.save();
          }));
        return g;
      });
    this.nodeSel
      .attr('data-id', (d) => d.id)
      .attr('data-kind', (d) => d.data.kind)
      .attr('data-variant', (d) => d.data.variant)
      .classed('pinned', (d) => d.fx != null);
    this.nodeSel.select<SVGPathElement>('path.shape').attr('d', (d) => shapePath(d.data, d.r));
    this.nodeSel.select('circle.ring').attr('r', (d) => (d.data.kind === 'network' ? d.r * 1.45 : d.r + 4));
    this.nodeSel.select('circle.pin').attr('cx', (d) => d.r * 0.75).attr('cy', (d) => -d.r * 0.75);
    this.nodeSel.select('text.label').attr('y', (d) => (d.data.kind === 'network' ? d.r * 0.7 + 13 : d.r + 13));
    this.nodeSel.select('tspan.name').text((d) => d.data.name);
    // Networks show their subnet, containers the ports their image exposes; a host's address is
    // on its underlay cable's label already.
    this.nodeSel.select('tspan.detail').text((d) => (d.data.kind === 'network' ? d.data.detail : (d.data.ports ?? []).join(' ')));
    this.updateFocus();
  }

  /** Node and link styling from data: process state, link state, check marks, selection. */
  private restyle(): void {
    this.nodeSel
      ?.attr('data-state', (d) => d.data.process?.state ?? '')
      .attr('data-result', (d) => (d.data.kind === 'container' ? this.results.get(d.data.name) ?? null : null))
      .classed('selected', (d) => d.id === this.selected);
    this.linkSel
      ?.attr('data-state', (d) => d.data.state)
      .attr('data-kind', (d) => d.data.kind)
      .attr('data-impaired', (d) => (d.data.impairLabel ? 'true' : null))
      .classed('toggle', (d) => d.data.endpoint !== null)
      .classed('selected', (d) => d.id === this.selectedLink)
      .classed('pending', false);
    // The impairment's label on each impaired cable (a restyle: `netlab impair` changes no
    // structure).
    this.cableLabelSel = this.gCableLabels.selectAll<SVGTextElement, SimLink>('text.clabel')
      .data(this.links.filter((l) => l.data.impairLabel), (d) => d.id)
      .join('text')
      .attr('class', 'clabel')
      .attr('text-anchor', 'middle')
      .attr('data-link', (d) => d.id)
      .text((d) => d.data.impairLabel);
    this.placeCableLabels();
  }

  markPending(linkId: string): void {
    this.linkSel?.filter((d) => d.id === linkId).classed('pending', true);
  }

  /** Interface labels: every cable end when the graph is small, else those around the
   *  hovered or selected node; names of that node's neighbours in dense graphs. */
  private updateFocus(): void {
    const focus = new Set([this.hovered, this.selected].filter((x): x is string => x !== null));
    const all = this.nodes.size <= ALL_IFACE_LABELS_NODES;
    const shown = this.links.filter((l) => {
      if (all) return true;
      const [s, t] = endpointsOf(l);
      return focus.has(s.id) || focus.has(t.id);
    });
    const ends: { link: SimLink; end: 'a' | 'b' }[] = [];
    for (const l of shown) {
      if (l.data.a.iface || l.data.a.address) ends.push({ link: l, end: 'a' });
      if (l.data.kind === 'link' && (l.data.b.iface || l.data.b.address)) ends.push({ link: l, end: 'b' });
      if (l.data.kind === 'gateway' && l.data.b.address) ends.push({ link: l, end: 'b' });
    }
    this.labelSel = this.gLabels.selectAll<SVGTextElement, { link: SimLink; end: 'a' | 'b' }>('text.ilabel')
      .data(ends, (d) => `${d.link.id}/${d.end}`)
      .join('text')
      .attr('class', 'ilabel')
      .attr('text-anchor', 'middle')
      .text((d) => {
        const e = d.link.data[d.end];
        return [e.iface && e.iface !== 'gateway' ? e.iface : '', e.address ?? ''].filter(Boolean).join(' ');
      });
    if (this.dense()) {
      const near = new Set<string>();
      for (const l of this.links) {
        const [s, t] = endpointsOf(l);
        if (focus.has(s.id)) near.add(t.id);
        if (focus.has(t.id)) near.add(s.id);
      }
      this.nodeSel?.classed('near', (d) => near.has(d.id));
    }
    this.placeLabels();
  }

  private placeLabels(): void {
    this.labelSel?.each(function (d) {
      const [s, t] = endpointsOf(d.link);
      if (s.x === undefined || t.x === undefined) return;
      const [from, to] = d.end === 'a' ? [s, t] : [t, s];
      const dx = to.x! - from.x!, dy = to.y! - from.y!;
      const len = Math.hypot(dx, dy) || 1;
      // At the cable's end, clear of the node and its name; a gateway's address mid-cable.
      const along = d.link.data.kind === 'gateway' ? len * 0.5 : Math.min(len * 0.42, from.r + 40);
      // Offset sideways a little so the text does not sit on the line.
      const ox = (-dy / len) * 7, oy = (dx / len) * 7;
      this.setAttribute('x', (from.x! + (dx / len) * along + ox).toFixed(1));
      this.setAttribute('y', (from.y! + (dy / len) * along + oy + 3).toFixed(1));
    });
  }

  /** Mid-cable, on the other side of the line than the interface labels. */
  private placeCableLabels(): void {
    this.cableLabelSel?.each(function (d) {
      const [s, t] = endpointsOf(d);
      if (s.x === undefined || t.x === undefined) return;
      const dx = t.x! - s.x!, dy = t.y! - s.y!;
      const len = Math.hypot(dx, dy) || 1;
      this.setAttribute('x', ((s.x! + t.x!) / 2 + (dy / len) * 9).toFixed(1));
      this.setAttribute('y', ((s.y! + t.y!) / 2 - (dx / len) * 9 + 3).toFixed(1));
    });
  }

  private tick(): void {
    this.nodeSel?.attr('transform', (d) => `translate(${(d.x ?? 0).toFixed(1)},${(d.y ?? 0).toFixed(1)})`);
    this.linkSel?.each(function (d) {
      const [s, t] = endpointsOf(d);
      const x1 = (s.x ?? 0).toFixed(1), y1 = (s.y ?? 0).toFixed(1), x2 = (t.x ?? 0).toFixed(1), y2 = (t.y ?? 0).toFixed(1);
      for (const line of this.children) {
        line.setAttribute('x1', x1); line.setAttribute('y1', y1);
        line.setAttribute('x2', x2); line.setAttribute('y2', y2);
      }
    });
    this.placeLabels();
    this.placeCableLabels();
  }

  // ------------------------------------------------------------------ tooltips

  private nodeTip(d: SimNode): string {
    const n = d.data;
    const lines = [`${n.name} (${n.kind === 'network' ? `${n.variant} network` : n.kind === 'host' ? 'simulated host' : n.kind === 'machine' ? 'the machine' : 'container'})`];
    if (n.detail) lines.push(n.detail);
    if (n.ports?.length) lines.push(`exposes ${n.ports.join(' ')}`);
    if (n.process) lines.push(n.process.state === 'running' ? `running, pid ${n.process.pid}` : n.process.state === 'model' ? 'not up (model)' : n.process.exit ?? n.process.state);
    for (const f of n.interfaces) if (f.name !== 'lo') lines.push(`${f.name} ${f.addresses.join(' ')}${f.up ? '' : ' DOWN'}`);
    const r = this.results.get(n.name);
    if (r) lines.push(`checks: ${r === 'pass' ? 'all passed' : r === 'fail' ? 'some failed' : 'disagree with the prediction'}`);
    if (d.fx != null) lines.push('pinned (double-click to release)');
    return lines.join('\n');
  }

  private linkTip(d: SimLink): string {
    const l = d.data;
    const name = (id: string) => this.nodes.get(id)?.data.name ?? id;
    const end = (e: ViewLink['a']) => `${name(e.id)}${e.iface && e.iface !== 'gateway' ? ` ${e.iface}` : ''}${e.address ? ` ${e.address}` : ''}`;
    const lines = [`${end(l.a)}  —  ${end(l.b)}`, `${l.state}: ${l.why}`];
    for (const d of l.impair) if (d.text) lines.push(`${d.from} → ${d.to}: ${d.text}`);
    lines.push(l.endpoint ? 'click for its panel: set it down or up, impair it' : 'click for its panel');
    return lines.join('\n');
  }

  private showTip(e: MouseEvent, text: string): void {
    this.tooltip.textContent = text;
    this.tooltip.hidden = false;
    this.moveTip(e);
  }

  private moveTip(e: MouseEvent): void {
    const box = (this.svg.node()!.parentElement as HTMLElement).getBoundingClientRect();
    const x = e.clientX - box.left + 14, y = e.clientY - box.top + 14;
    this.tooltip.style.left = `${Math.min(x, box.width - 240)}px`;
    this.tooltip.style.top = `${Math.min(y, box.height - 60)}px`;
  }

  private hideTip(): void {
    this.tooltip.hidden = true;
  }
}
