// flowmake graph page: a layered (Sugiyama-style) layout of the DAG, drawn as SVG.
// Inlined into the page by `flowmake graph --format html`; no network, no libraries.
//
// 1. layers: a target's layer is its depth (longest path from a source), computed by flowmake;
// 2. an edge that spans several layers gets a virtual point in each layer it crosses;
// 3. order within layers: barycenter sweeps, keeping the order with the fewest crossings;
// 4. vertical positions: pulled toward neighbours, then the minimum gaps enforced;
// 5. edges: smooth curves through their virtual points.
(function () {
  "use strict";

  const data = JSON.parse(document.getElementById("flowmake-data").textContent);
  const SVG_NS = "http://www.w3.org/2000/svg";
  const NODE_H = 30, PAD_X = 14, GAP_X = 80, GAP_Y = 14, DUMMY_GAP = 6, MAX_LABEL = 48;
  const FONT = "12px system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif";

  const $ = (id) => document.getElementById(id);
  const nodesByName = new Map(data.nodes.map((n) => [n.name, n]));

  // -- measuring --------------------------------------------------------------------------

  const measureCtx = document.createElement("canvas").getContext("2d");
  measureCtx.font = FONT;
  function label(name) {
    return name.length > MAX_LABEL ? name.slice(0, MAX_LABEL - 1) + "…" : name;
  }
  function textWidth(text) {
    return Math.ceil(measureCtx.measureText(text).width);
  }

  // -- layout -----------------------------------------------------------------------------

  function buildLayers() {
    const layers = [];
    const vertex = new Map();
    for (const node of data.nodes) {
      const v = {name: node.name, layer: node.depth, w: textWidth(label(node.name)) + 2 * PAD_X,
                 h: NODE_H, ups: [], downs: [], y: 0, pos: 0};
      vertex.set(node.name, v);
      (layers[v.layer] = layers[v.layer] || []).push(v);
    }
    const chains = [];
    for (const edge of data.edges) {
      const a = vertex.get(edge.from), b = vertex.get(edge.to);
      const chain = [a];
      for (let layer = a.layer + 1; layer < b.layer; layer++) {
        const d = {name: null, layer: layer, w: 0, h: DUMMY_GAP, ups: [], downs: [], y: 0, pos: 0};
        layers[layer].push(d);
        chain.push(d);
      }
      chain.push(b);
      for (let i = 1; i < chain.length; i++) {
        chain[i - 1].downs.push(chain[i]);
        chain[i].ups.push(chain[i - 1]);
      }
      chains.push({edge: edge, chain: chain});
    }
    for (let i = 0; i < layers.length; i++) layers[i] = layers[i] || [];
    return {layers: layers, vertex: vertex, chains: chains};
  }

  function numberLayer(layer) {
    layer.forEach((v, i) => { v.pos = i; });
  }

  function crossings(layers) {
    // Edges between adjacent layers cross when their ends are in opposite orders.
    let total = 0;
    for (let l = 0; l + 1 < layers.length; l++) {
      const ends = [];
      for (const v of layers[l]) for (const d of v.downs) ends.push([v.pos, d.pos]);
      ends.sort((p, q) => p[0] - q[0] || p[1] - q[1]);
      const tree = new Array(layers[l + 1].length + 1).fill(0);  // Fenwick tree over positions
      for (let i = ends.length - 1; i >= 0; i--) {
        for (let k = ends[i][1]; k > 0; k -= k & -k) total += tree[k];  // ends placed below
        for (let k = ends[i][1] + 1; k < tree.length; k += k & -k) tree[k] += 1;
      }
    }
    return total;
  }

  function barycenter(v, neighbours) {
    if (!neighbours.length) return v.pos;
    let sum = 0;
    for (const n of neighbours) sum += n.pos;
    return sum / neighbours.length;
  }

  function orderLayers(layers) {
    layers.forEach(numberLayer);
    let best = layers.map((l) => l.slice()), fewest = crossings(layers);
    for (let sweep = 0; sweep < 24 && fewest > 0; sweep++) {
      const down = sweep % 2 === 0;
      const range = down ? [...layers.keys()].slice(1) : [...layers.keys()].reverse().slice(1);
      for (const l of range) {
        const keyed = layers[l].map((v) => [barycenter(v, down ? v.ups : v.downs), v.pos, v]);
        keyed.sort((p, q) => p[0] - q[0] || p[1] - q[1]);
        layers[l] = keyed.map((k) => k[2]);
        numberLayer(layers[l]);
      }
      const now = crossings(layers);
      if (now < fewest) { fewest = now; best = layers.map((l) => l.slice()); }
    }
    best.forEach(numberLayer);
    return best;
  }

  function place(layer, desired) {
    // The positions closest to `desired` that keep the order and the gaps: push down from
    // the top, push up from the bottom, and take the mean (both are feasible, so is it).
    const n = layer.length;
    const sep = (i) => (layer[i - 1].h + layer[i].h) / 2 + GAP_Y;
    const fwd = desired.slice(), back = desired.slice();
    for (let i = 1; i < n; i++) fwd[i] = Math.max(fwd[i], fwd[i - 1] + sep(i));
    for (let i = n - 2; i >= 0; i--) back[i] = Math.min(back[i], back[i + 1] - sep(i + 1));
    layer.forEach((v, i) => { v.y = (fwd[i] + back[i]) / 2; });
  }

  function positions(layers) {
    for (const layer of layers) {  // start: stacked, centred on 0
      let y = 0;
      layer.forEach((v, i) => { if (i) y += (layer[i - 1].h + v.h) / 2 + GAP_Y; v.y = y; });
      const mid = y / 2;
      layer.forEach((v) => { v.y -= mid; });
    }
    for (let pass = 0; pass < 12; pass++) {
      const down = pass % 2 === 0;
      const order = down ? layers : layers.slice().reverse();
      for (const layer of order) {
        const desired = layer.map((v) => {
          const ns = (down ? v.ups : v.downs).concat(pass > 6 ? (down ? v.downs : v.ups) : []);
          return ns.length ? ns.reduce((s, n) => s + n.y, 0) / ns.length : v.y;
        });
        place(layer, desired);
      }
    }
    let x = 0;
    const columns = layers.map((layer) => {
      const width = Math.max(0, ...layer.map((v) => v.w));
      const column = {x: x, width: width};
      x += width + GAP_X;
      return column;
    });
    layers.forEach((layer, l) => layer.forEach((v) => { v.x = columns[l].x + columns[l].width / 2; }));
    const all = layers.flat();
    const top = Math.min(0, ...all.map((v) => v.y - v.h / 2));
    const bottom = Math.max(0, ...all.map((v) => v.y + v.h / 2));
    all.forEach((v) => { v.y -= top; });
    return {width: Math.max(0, x - GAP_X), height: bottom - top};
  }

  // -- drawing ----------------------------------------------------------------------------

  function el(name, attrs, parent) {
    const node = document.createElementNS(SVG_NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  }

  function edgePath(chain) {
    const pts = chain.map((v, i) => {
      if (!v.name) return [v.x, v.y];
      return [i === 0 ? v.x + v.w / 2 : v.x - v.w / 2, v.y];
    });
    let d = `M ${pts[0][0]} ${pts[0][1]}`;
    for (let i = 1; i < pts.length; i++) {
      const [x0, y0] = pts[i - 1], [x1, y1] = pts[i];
      const mx = (x0 + x1) / 2;
      d += ` C ${mx} ${y0} ${mx} ${y1} ${x1} ${y1}`;
    }
    return d;
  }

  const edgeEls = [];
  const nodeEls = new Map();

  function draw(layout) {
    const edgesG = $("edges"), nodesG = $("nodes");
    for (const {edge, chain} of layout.chains) {
      const path = el("path", {class: "edge", d: edgePath(chain)}, edgesG);
      path.dataset.from = edge.from;
      path.dataset.to = edge.to;
      edgeEls.push(path);
    }
    for (const node of data.nodes) {
      const v = layout.vertex.get(node.name);
      const g = el("g", {class: `node state-${node.state}`, transform: `translate(${v.x - v.w / 2},${v.y - v.h / 2})`,
                         tabindex: "0", role: "button"}, nodesG);
      g.dataset.name = node.name;
      g.dataset.state = node.state;
      el("title", {}, g).textContent = `${node.name}: ${node.state}` +
        (node.reasons.length ? ` (${node.reasons.join("; ")})` : "");
      el("rect", {width: v.w, height: v.h, rx: 7, ry: 7}, g);
      el("text", {x: v.w / 2, y: v.h / 2}, g).textContent = label(node.name);
      g.addEventListener("click", (ev) => { if (!view.dragged) select(node.name); ev.stopPropagation(); });
      g.addEventListener("keydown", (ev) => { if (ev.key === "Enter") select(node.name); });
      nodeEls.set(node.name, g);
    }
  }

  // -- pan and zoom -----------------------------------------------------------------------

  const view = {k: 1, x: 0, y: 0, dragged: false, size: {width: 0, height: 0}};

  function apply() {
    $("viewport").setAttribute("transform", `translate(${view.x},${view.y}) scale(${view.k})`);
  }

  function fit() {
    const box = $("canvas").getBoundingClientRect();
    const margin = 24, {width, height} = view.size;
    view.k = Math.min(1.5, (box.width - 2 * margin) / Math.max(width, 1),
                      (box.height - 2 * margin) / Math.max(height, 1));
    view.x = (box.width - width * view.k) / 2;
    view.y = (box.height - height * view.k) / 2;
    apply();
  }

  function centreOn(name) {
    const g = nodeEls.get(name), box = $("canvas").getBoundingClientRect();
    const r = g.getBBox(), m = g.transform.baseVal.consolidate().matrix;
    view.x = box.width / 2 - (m.e + r.width / 2) * view.k;
    view.y = box.height / 2 - (m.f + r.height / 2) * view.k;
    apply();
  }

  function enablePanZoom() {
    const svg = $("graph");
    let start = null;
    svg.addEventListener("mousedown", (ev) => {
      start = {x: ev.clientX, y: ev.clientY, vx: view.x, vy: view.y};
      view.dragged = false;
    });
    window.addEventListener("mousemove", (ev) => {
      if (!start) return;
      const dx = ev.clientX - start.x, dy = ev.clientY - start.y;
      if (Math.abs(dx) + Math.abs(dy) > 4) { view.dragged = true; svg.classList.add("panning"); }
      if (view.dragged) { view.x = start.vx + dx; view.y = start.vy + dy; apply(); }
    });
    window.addEventListener("mouseup", () => {
      start = null;
      svg.classList.remove("panning");
      setTimeout(() => { view.dragged = false; }, 0);
    });
    svg.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      const box = svg.getBoundingClientRect();
      const px = ev.clientX - box.left, py = ev.clientY - box.top;
      const k = Math.min(4, Math.max(0.05, view.k * Math.exp(-ev.deltaY * 0.0015)));
      view.x = px - (px - view.x) * (k / view.k);
      view.y = py - (py - view.y) * (k / view.k);
      view.k = k;
      apply();
    }, {passive: false});
    svg.addEventListener("click", () => { if (!view.dragged) select(null); });
  }

  // -- details ----------------------------------------------------------------------------

  function fillList(id, items, render) {
    const list = $(id);
    list.replaceChildren();
    if (!items.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "none";
      list.appendChild(li);
    }
    for (const item of items) {
      const li = document.createElement("li");
      render(li, item);
      list.appendChild(li);
    }
  }

  function fillPairs(id, pairs) {
    const dl = $(id);
    dl.replaceChildren();
    for (const [k, v] of pairs) {
      const dt = document.createElement("dt"), dd = document.createElement("dd");
      dt.textContent = k;
      dd.textContent = v;
      dl.append(dt, dd);
    }
  }

  function seconds(value) {
    return value == null ? "-" : `${Number(value).toFixed(2)}s`;
  }

  function durations(node) {
    const pairs = [];
    if (node.last_run) {
      pairs.push(["last run", `run ${node.last_run.run_id}: ${node.last_run.status}, ${seconds(node.last_run.duration)}`]);
    }
    if (node.last_built) {
      const when = node.last_built.at ? new Date(node.last_built.at * 1000).toLocaleString() : "?";
      pairs.push(["last built", `${when} (run ${node.last_built.run_id ?? "-"})`]);
      pairs.push(["took", seconds(node.last_built.duration)]);
    }
    if (!pairs.length) pairs.push(["last run", "never built"]);
    return pairs;
  }

  function link(li, name) {
    const a = document.createElement("a");
    a.textContent = name;
    a.addEventListener("click", () => { select(name); centreOn(name); });
    li.appendChild(a);
  }

  function select(name) {
    for (const g of nodeEls.values()) g.classList.toggle("selected", g.dataset.name === name);
    for (const e of edgeEls) e.classList.toggle("hot", name !== null && (e.dataset.from === name || e.dataset.to === name));
    const node = name === null ? null : nodesByName.get(name);
    const opened = $("details").hidden === Boolean(node);
    $("details").hidden = !node;
    if (opened) fit();  // the canvas changed width: keep the whole graph in view
    if (!node) {
      history.replaceState(null, "", location.pathname + location.search);
      return;
    }
    history.replaceState(null, "", "#" + encodeURIComponent(name));
    $("d-name").textContent = node.name;
    $("d-state").textContent = node.state;
    $("d-state").className = `badge state-${node.state}`;
    $("d-kind").textContent = node.kind + (node.matrix ? ` · matrix ${node.matrix}` : "");
    $("d-help").textContent = node.help || "";
    $("d-help").hidden = !node.help;
    fillList("d-reasons", node.reasons.length ? node.reasons : ["fresh: every part of the key matches its record"],
             (li, r) => { li.textContent = r; });
    fillPairs("d-durations", durations(node));
    $("d-action").textContent = node.action;
    const params = Object.entries(node.params || {});
    $("d-params-box").hidden = !params.length;
    fillPairs("d-params", params.map(([k, v]) => [k, JSON.stringify(v)]));
    fillList("d-inputs", node.inputs, (li, p) => { li.textContent = p; });
    fillList("d-outputs", node.outputs, (li, p) => { li.textContent = p; });
    fillList("d-upstream", node.upstream, link);
    fillList("d-downstream", node.downstream, link);
  }

  function search(query) {
    const q = query.trim().toLowerCase();
    let first = null;
    for (const [name, g] of nodeEls) {
      const hit = q !== "" && name.toLowerCase().includes(q);
      g.classList.toggle("match", hit);
      if (hit && first === null) first = name;
    }
    return first;
  }

  // -- start ------------------------------------------------------------------------------

  function main() {
    $("title").textContent = `flowmake graph · ${data.project} · ${data.nodes.length} targets`;
    for (const state of ["fresh", "stale", "restorable"]) $(`count-${state}`).textContent = data.counts[state] || 0;
    $("empty").hidden = data.nodes.length > 0;
    const built = buildLayers();
    built.layers = orderLayers(built.layers);
    view.size = positions(built.layers);
    draw(built);
    enablePanZoom();
    fit();
    window.addEventListener("resize", fit);
    $("fit").addEventListener("click", fit);
    $("close").addEventListener("click", () => select(null));
    document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") select(null); });
    $("search").addEventListener("input", (ev) => search(ev.target.value));
    $("search").addEventListener("keydown", (ev) => {
      if (ev.key !== "Enter") return;
      const first = search(ev.target.value);
      if (first !== null) { select(first); centreOn(first); }
    });
    const wanted = decodeURIComponent(location.hash.slice(1));
    if (nodesByName.has(wanted)) select(wanted);
    document.body.dataset.ready = "true";  // for tests and tools: layout done
  }

  main();
})();
