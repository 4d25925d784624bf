// flowmake graph page: a layered (Sugiyama-style) layout of the DAG, drawn as SVG.
// Inlined into the page by `flowmake graph --format html`; no network, no libraries.
//
// 1. layers: a target's layer is its depth (longest path from a source), computed by flowmake;
// 2. an edge that spans several layers gets a virtual point in each layer it crosses;
// 3. order within layers: barycenter sweeps, keeping the order with the fewest crossings;
//    then the instances of a matrix are made neighbours, to be framed as one group;
// 4. vertical positions: pulled toward neighbours, then the minimum gaps enforced;
// 5. edges: smooth curves through their virtual points.
(function () {
  "use strict";

  const data = JSON.parse(document.getElementById("flowmake-data").textContent);
  const SVG_NS = "http://www.w3.org/2000/svg";
  const NODE_H = 30, PAD_X = 14, GAP_X = 80, GAP_Y = 14, DUMMY_GAP = 6, MAX_LABEL = 48;
  // A matrix's frame: padding around its instances, and room for its name above them.
  const GROUP_PAD = 8, GROUP_GAP = GROUP_PAD + 16;
  const MARK = {failed: "✗ ", always: "↻ "};  // besides the colour, for who cannot see it
  const FONT = "12px system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif";

  const $ = (id) => document.getElementById(id);
  const nodesByName = new Map(data.nodes.map((n) => [n.name, n]));

  // -- measuring --------------------------------------------------------------------------

  const measureCtx = document.createElement("canvas").getContext("2d");
  measureCtx.font = FONT;
  function label(name) {
    return name.length > MAX_LABEL ? name.slice(0, MAX_LABEL - 1) + "…" : name;
  }
  function caption(node) {
    return (MARK[node.display] || "") + label(node.name);
  }
  function textWidth(text) {
    return Math.ceil(measureCtx.measureText(text).width);
  }

  // -- layout -----------------------------------------------------------------------------

  function buildLayers() {
    const layers = [];
    const vertex = new Map();
    for (const node of data.nodes) {
      const v = {name: node.name, layer: node.depth, w: textWidth(caption(node)) + 2 * PAD_X,
                 h: NODE_H, ups: [], downs: [], y: 0, pos: 0, group: node.matrix || null};
      vertex.set(node.name, v);
      (layers[v.layer] = layers[v.layer] || []).push(v);
    }
    const chains = [];
    for (const edge of data.edges) {
      const a = vertex.get(edge.from), b = vertex.get(edge.to);
      const chain = [a];
      for (let layer = a.layer + 1; layer < b.layer; layer++) {
        const d = {name: null, layer: layer, w: 0, h: DUMMY_GAP, ups: [], downs: [], y: 0, pos: 0,
                   group: null};
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
    return best.map(groupLayer);
  }

  function groupLayer(layer) {
    // A matrix's instances side by side, where their mean position was (a stable sort:
    // every member of a group has the same key; the group's name breaks ties).
    const mean = new Map();
    for (const v of layer) {
      if (!v.group) continue;
      const m = mean.get(v.group) || {sum: 0, n: 0};
      m.sum += v.pos; m.n += 1;
      mean.set(v.group, m);
    }
    const key = (v) => (v.group ? mean.get(v.group).sum / mean.get(v.group).n : v.pos);
    const sorted = layer.slice().sort((a, b) => key(a) - key(b) ||
      (a.group || "").localeCompare(b.group || "") || a.pos - b.pos);
    numberLayer(sorted);
    return sorted;
  }

  function sep(a, b) {
    // The least distance between the centres of two neighbours in a layer; a matrix's
    // frame keeps what is not in it at a distance.
    const framed = a.group !== b.group && (a.group || b.group);
    return (a.h + b.h) / 2 + GAP_Y + (framed ? GROUP_GAP : 0);
  }

  function place(layer, desired) {
    // The positions closest to `desired` that keep the order and the gaps: push down from
    // the top, push up from the bottom, and take the mean (both are feasible, so is it).
    const n = layer.length;
    const gap = (i) => sep(layer[i - 1], layer[i]);
    const fwd = desired.slice(), back = desired.slice();
    for (let i = 1; i < n; i++) fwd[i] = Math.max(fwd[i], fwd[i - 1] + gap(i));
    for (let i = n - 2; i >= 0; i--) back[i] = Math.min(back[i], back[i + 1] - gap(i + 1));
    layer.forEach((v, i) => { v.y = (fwd[i] + back[i]) / 2; });
  }

  function positions(layers) {
    for (const layer of layers) {  // start: stacked, centred on 0
      let y = 0;
      layer.forEach((v, i) => { if (i) y += sep(layer[i - 1], v); v.y = y; });
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
    let x = GROUP_PAD;  // room for a frame in the first column
    const columns = layers.map((layer) => {
      const width = Math.max(0, ...layer.map((v) => v.w));
      const column = {x: x, width: width};
      x += width + GAP_X;
      return column;
    });
    layers.forEach((layer, l) => layer.forEach((v) => { v.x = columns[l].x + columns[l].width / 2; }));
    const all = layers.flat();
    const top = Math.min(0, ...all.map((v) => v.y - v.h / 2 - (v.group ? GROUP_GAP : 0)));
    const bottom = Math.max(0, ...all.map((v) => v.y + v.h / 2 + (v.group ? GROUP_PAD : 0)));
    all.forEach((v) => { v.y -= top; });
    return {width: Math.max(0, x - GAP_X + GROUP_PAD), height: bottom - top};
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

  function drawGroups(layers) {
    // One dashed frame per matrix and layer, around its instances, named above them.
    const groupsG = $("groups");
    for (const layer of layers) {
      const members = new Map();
      for (const v of layer) if (v.group) (members.get(v.group) || members.set(v.group, []).get(v.group)).push(v);
      for (const [matrix, vs] of members) {
        const left = Math.min(...vs.map((v) => v.x - v.w / 2)) - GROUP_PAD;
        const right = Math.max(...vs.map((v) => v.x + v.w / 2)) + GROUP_PAD;
        const top = Math.min(...vs.map((v) => v.y - v.h / 2)) - GROUP_GAP;
        const bottom = Math.max(...vs.map((v) => v.y + v.h / 2)) + GROUP_PAD;
        const g = el("g", {class: "group"}, groupsG);
        g.dataset.matrix = matrix;
        el("title", {}, g).textContent = `matrix ${matrix}: ${vs.length} instances`;
        el("rect", {x: left, y: top, width: right - left, height: bottom - top, rx: 9, ry: 9}, g);
        el("text", {x: left + GROUP_PAD, y: top + 4}, g).textContent = `${matrix} ×${vs.length}`;
      }
    }
  }

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
      const g = el("g", {class: `node state-${node.state} show-${node.display}`,
                         transform: `translate(${v.x - v.w / 2},${v.y - v.h / 2})`,
                         tabindex: "0", role: "button"}, nodesG);
      g.dataset.name = node.name;
      g.dataset.state = node.state;
      g.dataset.display = node.display;
      if (node.matrix) g.dataset.matrix = node.matrix;
      const failed = node.last_failure ? `; failed in run ${node.last_failure.run_id}` : "";
      el("title", {}, g).textContent = `${node.name}: ${node.state}` +
        (node.reasons.length ? ` (${node.reasons.join("; ")})` : "") + failed;
      el("rect", {width: v.w, height: v.h, rx: 7, ry: 7}, g);
      el("text", {x: v.w / 2, y: v.h / 2}, g).textContent = caption(node);
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
      const at = node.last_built.built || (node.last_built.at && node.last_built.at * 1000);
      const when = at ? new Date(at).toLocaleString() : "?";
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
    $("d-state").textContent = node.display;
    $("d-state").className = `badge state-${node.display}`;
    $("d-kind").textContent = node.kind + (node.display !== node.state ? ` · ${node.state}` : "") +
      (node.matrix ? ` · matrix ${node.matrix}` : "");
    const failure = node.last_failure;
    $("d-failure-box").hidden = !failure;
    if (failure) {
      $("d-failure-run").textContent = `run ${failure.run_id}` +
        (failure.started ? `, ${new Date(failure.started).toLocaleString()}` : "") +
        `, after ${seconds(failure.duration)}` + (failure.truncated ? " · its last lines:" : ":");
      $("d-failure").textContent = failure.output || "(no output)";
    }
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
    for (const shown of ["fresh", "stale", "restorable", "failed", "always"]) {  // as drawn
      $(`count-${shown}`).textContent = data.nodes.filter((n) => n.display === shown).length;
    }
    $("empty").hidden = data.nodes.length > 0;
    const built = buildLayers();
    built.layers = orderLayers(built.layers);
    view.size = positions(built.layers);
    drawGroups(built.layers);
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
