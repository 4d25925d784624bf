// flowmake report: draws one build from the JSON in #flowmake-data. No network access.
(function () {
  "use strict";

  const doc = JSON.parse(document.getElementById("flowmake-data").textContent);
  const $ = (id) => document.getElementById(id);
  const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  const esc = (text) => String(text).replace(/[&<>"']/g, (c) => ESC[c]);
  const STATUSES = ["built", "restored", "failed", "skipped", "accepted"];
  const SOURCE = { built: "built", restored: "restored from the cache", failed: "built (failed)",
    skipped: "not run", accepted: "accepted" };
  const t0 = doc.t0;
  const targets = doc.targets;

  function seconds(x) {
    if (x === null || x === undefined) return "–";
    if (x < 1) return Math.round(x * 1000) + " ms";
    if (x < 60) return x.toFixed(2) + " s";
    const m = Math.floor(x / 60);
    return m + " min " + Math.round(x - 60 * m) + " s";
  }

  function clock(t) {
    const d = new Date(t * 1000);
    const pad = (n, w) => String(n).padStart(w || 2, "0");
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) + "." +
      pad(d.getMilliseconds(), 3);
  }

  function describe(t) {
    const lines = [t.name, t.status + (t.error ? " (" + t.error + ")" : "")];
    if (t.started !== null) {
      lines.push(clock(t.started) + " → " + clock(t.finished) + "  (" + seconds(t.finished - t.started) + ")");
      lines.push("+" + seconds(t.started - t0) + " into the build");
    }
    if (t.reasons.length) lines.push("why: " + t.reasons.join("; "));
    return lines.join("\n");
  }

  // -- header ---------------------------------------------------------------------------
  function header() {
    const run = doc.run;
    $("title").innerHTML = esc(doc.project) + " · run " + run.run_id +
      ' <span class="result result-' + esc(run.result) + '">' + esc(run.result) + "</span>";
    const day = new Date(t0 * 1000).toLocaleDateString("en-CA");  // YYYY-MM-DD
    $("meta").innerHTML = "started " + esc(day + " " + clock(t0)) + " · took " + seconds(doc.took) +
      " · <code>" + esc(run.command) + "</code>";
    const counts = Object.entries(run.counts).map(([k, n]) =>
      '<span class="chip st-' + esc(k) + '"><i></i>' + esc(k) + " <b>" + n + "</b></span>");
    $("counts").innerHTML = counts.join("");
  }

  // -- timeline -------------------------------------------------------------------------
  const LEFT = 70, RIGHT = 20, TOP = 26, LANE = 22, GAP = 4;

  function niceStep(span, ticks) {
    const raw = span / ticks;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 5, 10]) if (m * mag >= raw) return m * mag;
    return 10 * mag;
  }

  function timeline() {
    const timed = targets.filter((t) => t.lane !== null);
    if (!timed.length) {
      $("timeline-scroll").hidden = true;
      $("timeline-empty").hidden = false;
      return;
    }
    const span = Math.max(doc.t1 - t0, 0.001);
    const width = Math.max(640, $("timeline-box").clientWidth - 2);
    const plot = width - LEFT - RIGHT;
    const x = (t) => LEFT + ((t - t0) / span) * plot;
    const height = TOP + doc.lanes * (LANE + GAP) + 6;
    const parts = ['<g class="axis">'];
    const step = niceStep(span, Math.max(2, Math.floor(plot / 110)));
    for (let s = 0; s <= span + 1e-9; s += step) {
      const px = x(t0 + s).toFixed(1);
      parts.push('<line x1="' + px + '" x2="' + px + '" y1="' + (TOP - 6) + '" y2="' + height + '"></line>');
      parts.push('<text x="' + px + '" y="' + (TOP - 10) + '">' + esc(seconds(s)) + "</text>");
    }
    parts.push("</g>");
    for (let lane = 0; lane < doc.lanes; lane++) {
      const y = TOP + lane * (LANE + GAP);
      parts.push('<rect class="lane-bg" x="' + LEFT + '" y="' + y + '" width="' + plot + '" height="' + LANE + '"></rect>');
      parts.push('<text class="lane-label" x="' + (LEFT - 8) + '" y="' + (y + LANE / 2) + '">slot ' + (lane + 1) + "</text>");
    }
    for (const t of timed) {
      const x0 = x(t.started), x1 = x(t.finished);
      const w = Math.max(x1 - x0, 1);
      const y = TOP + t.lane * (LANE + GAP);
      parts.push('<rect class="bar st-' + esc(t.status) + '" data-name="' + esc(t.name) +
        '" data-start="' + t.started + '" data-end="' + t.finished + '" x="' + x0.toFixed(2) +
        '" y="' + y + '" width="' + w.toFixed(2) + '" height="' + LANE + '" rx="3"><title>' +
        esc(describe(t)) + "</title></rect>");
      if (w > 7 * t.name.length + 10) {
        parts.push('<text class="bar-label" x="' + (x0 + 5).toFixed(2) + '" y="' + (y + LANE / 2) + '">' + esc(t.name) + "</text>");
      }
    }
    const svg = $("timeline");
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    svg.innerHTML = parts.join("");
    const note = doc.lanes === 1 ? "1 slot" : doc.lanes + " parallel slots";
    $("timeline-note").textContent = "· " + timed.length + " targets in " + note + " · hover a bar for its times, click it for its row";
    svg.addEventListener("click", (event) => {
      const bar = event.target.closest(".bar");
      if (bar) showRow(bar.dataset.name);
    });
  }

  // -- failures -------------------------------------------------------------------------
  function failures() {
    const failed = targets.filter((t) => t.status === "failed");
    if (!failed.length) return;
    $("failures-box").hidden = false;
    $("failures").innerHTML = failed.map((t) => {
      const cut = t.output_cut ? '<p class="muted">… ' + t.output_cut + " earlier lines not shown (`flowmake log " + esc(t.name) + "` has them)</p>" : "";
      const out = t.output ? cut + "<pre>" + esc(t.output) + "</pre>" : '<p class="muted">(no output)</p>';
      return '<article class="failure" data-name="' + esc(t.name) + '"><h3>' + esc(t.name) +
        '</h3><p><b>' + esc(t.error || "failed") + "</b> · after " + seconds(t.duration) + "</p>" + out + "</article>";
    }).join("");
  }

  // -- metrics: one chart per metric, its value over the builds --------------------------
  function number(x) {
    return Number.isInteger(x) ? String(x) : String(Number(x.toPrecision(6)));
  }

  function metricChart(m) {
    const pts = m.points;
    const W = 240, H = 70, P = 8;
    const values = pts.map((p) => p[1]);
    const lo = Math.min(...values), hi = Math.max(...values);
    const span = hi - lo || Math.abs(hi) || 1;
    const px = (i) => pts.length === 1 ? W / 2 : P + (i * (W - 2 * P)) / (pts.length - 1);
    const py = (v) => hi === lo ? H / 2 : H - P - ((v - lo) / span) * (H - 2 * P);
    const line = pts.map((p, i) => px(i).toFixed(1) + "," + py(p[1]).toFixed(1)).join(" ");
    const dots = pts.map((p, i) => '<circle cx="' + px(i).toFixed(1) + '" cy="' + py(p[1]).toFixed(1) +
      '" r="2.6"' + (i === pts.length - 1 ? ' class="now"' : "") + "><title>run " + p[0] + ": " +
      esc(number(p[1])) + "</title></circle>").join("");
    const last = values[values.length - 1];
    return '<figure class="metric" data-target="' + esc(m.target) + '" data-name="' + esc(m.name) +
      '"><figcaption><b>' + esc(m.name) + '</b> <span class="muted">' + esc(m.target) + " · " +
      esc(m.path) + '</span><span class="value">' + esc(number(last)) + "</span></figcaption>" +
      '<svg width="' + W + '" height="' + H + '" viewBox="0 0 ' + W + " " + H + '" role="img">' +
      '<polyline points="' + line + '"></polyline>' + dots + "</svg>" +
      '<p class="muted">runs ' + pts[0][0] + "–" + pts[pts.length - 1][0] + ", " + esc(number(lo)) + " to " +
      esc(number(hi)) + "</p></figure>";
  }

  function metrics() {
    const found = doc.metrics || [];
    if (!found.length) return;
    $("metrics-box").hidden = false;
    $("metrics").innerHTML = found.map(metricChart).join("");
  }

  // -- the table ------------------------------------------------------------------------
  function spark(t) {
    const h = t.history;
    const W = 110, H = 22, P = 3;
    if (!h.length) return "";
    const max = Math.max(...h.map((e) => e[1]), 1e-6);
    const px = (i) => h.length === 1 ? W / 2 : P + (i * (W - 2 * P)) / (h.length - 1);
    const py = (d) => h.length === 1 ? H / 2 : H - P - (d / max) * (H - 2 * P);
    const points = h.map((e, i) => px(i).toFixed(1) + "," + py(e[1]).toFixed(1)).join(" ");
    const dots = h.map((e, i) => {
      const cls = i === h.length - 1 ? "now" : (e[2] === "f" ? "f" : "");
      return cls ? '<circle class="' + cls + '" cx="' + px(i).toFixed(1) + '" cy="' + py(e[1]).toFixed(1) + '" r="2.2"></circle>' : "";
    }).join("");
    const tip = h.map((e) => "run " + e[0] + ": " + seconds(e[1]) + (e[2] === "f" ? " (failed)" : e[2] === "r" ? " (restored)" : "")).join("\n");
    return '<svg class="spark" width="' + W + '" height="' + H + '" viewBox="0 0 ' + W + " " + H +
      '"><title>' + esc(tip) + "</title><polyline points=\"" + points + '"></polyline>' + dots + "</svg>";
  }

  const rows = [];
  const sortKeys = {
    name: (t) => t.name, status: (t) => t.status, duration: (t) => t.duration,
    start: (t) => (t.started === null ? Infinity : t.started), source: (t) => SOURCE[t.status] || t.status,
    reasons: (t) => t.reasons.join("; "), trend: (t) => {
      const h = t.history; return h.length > 1 ? h[h.length - 1][1] - h[h.length - 2][1] : 0;
    },
  };

  function table() {
    const html = targets.map((t, i) =>
      '<tr data-name="' + esc(t.name) + '" data-index="' + i + '"><td class="name">' + esc(t.name) +
      '</td><td><span class="badge st-' + esc(t.status) + '">' + esc(t.status) + "</span>" +
      (t.error && t.status !== "failed" ? ' <span class="muted">' + esc(t.error) + "</span>" : "") +
      '</td><td class="num">' + seconds(t.duration) + '</td><td class="num">' +
      (t.started === null ? "–" : "+" + seconds(t.started - t0)) + "</td><td>" + esc(SOURCE[t.status] || t.status) +
      '</td><td class="reasons">' + esc(t.reasons.join("; ")) + '</td><td class="trend">' + spark(t) + "</td></tr>");
    const body = document.querySelector("#targets tbody");
    body.innerHTML = html.join("");
    for (const tr of body.rows) rows.push({ tr: tr, t: targets[+tr.dataset.index] });
    for (const th of document.querySelectorAll("#targets th")) {
      th.addEventListener("click", () => sortBy(th));
    }
    const select = $("status-filter");
    for (const s of STATUSES) {
      if (targets.some((t) => t.status === s)) select.add(new Option(s, s));
    }
    $("filter").addEventListener("input", filter);
    select.addEventListener("change", filter);
    filter();
  }

  function sortBy(th) {
    const key = th.dataset.key;
    const dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
    for (const other of document.querySelectorAll("#targets th")) other.removeAttribute("aria-sort");
    th.setAttribute("aria-sort", dir);
    const get = sortKeys[key];
    const sign = dir === "ascending" ? 1 : -1;
    const text = th.dataset.type === "text";
    rows.sort((a, b) => {
      const va = get(a.t), vb = get(b.t);
      const c = text ? String(va).localeCompare(String(vb)) : (va < vb ? -1 : va > vb ? 1 : 0);
      return c * sign || a.t.name.localeCompare(b.t.name);
    });
    const body = document.querySelector("#targets tbody");
    const frag = document.createDocumentFragment();
    for (const r of rows) frag.appendChild(r.tr);
    body.appendChild(frag);
  }

  function filter() {
    const words = $("filter").value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    const status = $("status-filter").value;
    let shown = 0;
    for (const r of rows) {
      const hay = (r.t.name + " " + r.t.status + " " + r.t.reasons.join(" ") + " " + (r.t.error || "")).toLowerCase();
      const ok = (!status || r.t.status === status) && words.every((w) => hay.includes(w));
      r.tr.hidden = !ok;
      if (ok) shown++;
    }
    $("shown").textContent = shown + " of " + rows.length + " targets";
    const run = doc.run.counts;
    const silent = ["fresh", "skipped"].filter((k) => run[k] > rows.filter((r) => r.t.status === k).length)
      .map((k) => (run[k] - rows.filter((r) => r.t.status === k).length) + " " + k);
    $("unlisted").textContent = silent.length ? "Not listed: " + silent.join(" and ") +
      " (only targets that ran have a line in the history)." : "";
  }

  function showRow(name) {
    const r = rows.find((row) => row.t.name === name);
    if (!r) return;
    if (r.tr.hidden) { $("filter").value = ""; $("status-filter").value = ""; filter(); }
    r.tr.classList.remove("flash");
    void r.tr.offsetWidth;  // restart the animation
    r.tr.classList.add("flash");
    r.tr.scrollIntoView({ block: "center" });
  }

  header();
  timeline();
  failures();
  metrics();
  table();
  document.body.dataset.ready = "true";
})();
