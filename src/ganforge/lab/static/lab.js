// ganforge lab: polls /api/state and draws it on canvases; every control posts to the API.
// Plain JavaScript, no library: the page works with no network.
"use strict";

const COLOURS = {
  p_data: "#111111", p_g: "#2ca02c", D: "#1f77b4", Dstar: "#ff7f0e",
  jsd: "#111111", v_d: "#1f77b4", v_dstar: "#ff7f0e", loss_d: "#d62728", loss_g: "#2ca02c",
  d_real: "#9467bd", d_fake: "#8c564b", real: "#111111", fake: "#2ca02c", zgrid: "#6a1b9a",
  drawn: "#e91e63",
};
const NAMES = {
  jsd: "JSD", v_d: "V(D, G)", v_dstar: "V(D*, G)", loss_d: "L_D", loss_g: "L_G",
  d_real: "D(x)", d_fake: "D(G(z))",
};
const LOG4 = Math.log(4), LOG2 = Math.log(2);

let state = null;        // the newest state from the server
let shownVersion = -1;   // the version drawn
let drawing = [];        // points clicked in draw mode
let mainMap = null;      // canvas pixel -> data coordinates of the main plot
const rate = [];         // times at which a new state arrived (for the status line)

const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------ the API

async function api(path, body) {
  const res = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body || {}),
  });
  const data = await res.json();
  if (!res.ok) throw new Error(data.error || res.statusText);
  return data;
}

function say(text, ok) {
  const m = $("message");
  m.textContent = text || "";
  m.className = ok ? "message ok" : "message";
}

async function act(path, body) {
  try {
    const s = await api(path, body);
    if (s && s.version !== undefined) receive(s);
    say("");
    return s;
  } catch (e) {
    say(e.message);
    return null;
  }
}

function receive(s) {
  if (state && s.version === state.version) return;
  state = s;
  rate.push(performance.now());
}

async function poll() {
  try {
    const res = await fetch("/api/state", { cache: "no-store" });
    receive(await res.json());
  } catch (e) {
    $("status").textContent = "server gone";
  }
  setTimeout(poll, state && state.playing ? 15 : 200);
}

function frame() {
  if (state && state.version !== shownVersion) {
    shownVersion = state.version;
    render(state);
  }
  requestAnimationFrame(frame);
}

// ------------------------------------------------------------------ plotting helpers

function axes(canvas, box, xr, yr) {
  // box: [left, top, width, height] in pixels; xr, yr: data ranges
  const [l, t, w, h] = box;
  return {
    x: (v) => l + ((v - xr[0]) / (xr[1] - xr[0])) * w,
    y: (v) => t + h - ((v - yr[0]) / (yr[1] - yr[0])) * h,
    inv: (px, py) => [xr[0] + ((px - l) / w) * (xr[1] - xr[0]), yr[0] + ((t + h - py) / h) * (yr[1] - yr[0])],
    box, xr, yr,
  };
}

function clear(ctx) {
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, ctx.canvas.width, ctx.canvas.height);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, ctx.canvas.width, ctx.canvas.height);
}

function ticks(lo, hi, n) {
  const span = hi - lo;
  const step0 = Math.pow(10, Math.floor(Math.log10(span / n)));
  const step = [1, 2, 5, 10].map((m) => m * step0).find((s) => span / s <= n) || step0 * 10;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(+v.toFixed(10));
  return out;
}

function frameAxes(ctx, a, xlabel, ylabel) {
  const [l, t, w, h] = a.box;
  ctx.strokeStyle = "#999"; ctx.lineWidth = 1; ctx.setLineDash([]);
  ctx.strokeRect(l, t, w, h);
  ctx.fillStyle = "#444"; ctx.font = "11px sans-serif";
  ctx.textAlign = "center"; ctx.textBaseline = "top";
  for (const v of ticks(a.xr[0], a.xr[1], 8)) {
    const px = a.x(v);
    ctx.beginPath(); ctx.moveTo(px, t + h); ctx.lineTo(px, t + h + 4); ctx.stroke();
    ctx.fillText(fmtTick(v), px, t + h + 5);
  }
  ctx.textAlign = "right"; ctx.textBaseline = "middle";
  for (const v of ticks(a.yr[0], a.yr[1], 5)) {
    const py = a.y(v);
    ctx.beginPath(); ctx.moveTo(l - 4, py); ctx.lineTo(l, py); ctx.stroke();
    ctx.fillText(fmtTick(v), l - 6, py);
  }
  if (xlabel) { ctx.textAlign = "center"; ctx.textBaseline = "bottom"; ctx.fillText(xlabel, l + w / 2, ctx.canvas.height - 1); }
  if (ylabel) {
    ctx.save(); ctx.translate(11, t + h / 2); ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "center"; ctx.textBaseline = "middle"; ctx.fillText(ylabel, 0, 0); ctx.restore();
  }
}

function fmtTick(v) {
  const a = Math.abs(v);
  if (a >= 1000) return (v / 1000).toFixed(a >= 10000 ? 0 : 1) + "k";
  return String(+v.toPrecision(3));
}

function line(ctx, a, xs, ys, colour, dash, width) {
  ctx.save();
  const [l, t, w, h] = a.box;
  ctx.beginPath(); ctx.rect(l, t, w, h); ctx.clip();
  ctx.strokeStyle = colour; ctx.lineWidth = width || 2; ctx.setLineDash(dash || []);
  ctx.beginPath();
  let on = false;
  for (let i = 0; i < xs.length; i++) {
    if (ys[i] === null || ys[i] === undefined || !isFinite(ys[i])) { on = false; continue; }
    const px = a.x(xs[i]), py = a.y(ys[i]);
    if (on) ctx.lineTo(px, py); else ctx.moveTo(px, py);
    on = true;
  }
  ctx.stroke();
  ctx.restore();
}

function dots(ctx, a, pts, colour, r) {
  ctx.fillStyle = colour;
  for (const p of pts) ctx.fillRect(a.x(p[0]) - r, a.y(p[1]) - r, 2 * r, 2 * r);
}

function legend(id, items) {
  $(id).innerHTML = items.map(([c, text, dash]) =>
    `<span><span class="key line" style="--c:${c}${dash ? ";background:repeating-linear-gradient(90deg," + c + " 0 5px,transparent 5px 8px)" : ""}"></span>${text}</span>`
  ).join("");
}

// blue (0) - white (1/2) - red (1), as matplotlib's coolwarm
function heatColour(v) {
  const lo = [59, 76, 192], mid = [221, 221, 221], hi = [180, 4, 38];
  const t = Math.min(1, Math.max(0, v));
  const [a, b, u] = t < 0.5 ? [lo, mid, t * 2] : [mid, hi, t * 2 - 1];
  return [0, 1, 2].map((i) => Math.round(a[i] + (b[i] - a[i]) * u));
}

function heatmap(ctx, a, grid) {
  const n = grid.length, m = grid[0].length;
  const img = ctx.createImageData(m, n);
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < m; c++) {
      const [R, G, B] = heatColour(grid[r][c] / 1000);  // thousandths
      const k = ((n - 1 - r) * m + c) * 4;  // row 0 is the lowest y
      img.data[k] = R; img.data[k + 1] = G; img.data[k + 2] = B; img.data[k + 3] = 255;
    }
  }
  const off = document.createElement("canvas");
  off.width = m; off.height = n;
  off.getContext("2d").putImageData(img, 0, 0);
  const [l, t, w, h] = a.box;
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(off, l, t, w, h);
}

function colourBar(ctx, x, y, w, h, label) {
  for (let i = 0; i < h; i++) {
    const [R, G, B] = heatColour(1 - i / h);
    ctx.fillStyle = `rgb(${R},${G},${B})`;
    ctx.fillRect(x, y + i, w, 1);
  }
  ctx.strokeStyle = "#999"; ctx.strokeRect(x, y, w, h);
  ctx.fillStyle = "#444"; ctx.font = "11px sans-serif"; ctx.textAlign = "left"; ctx.textBaseline = "middle";
  ctx.fillText("1", x + w + 3, y); ctx.fillText("0.5", x + w + 3, y + h / 2); ctx.fillText("0", x + w + 3, y + h);
  ctx.save(); ctx.translate(x + w + 26, y + h / 2); ctx.rotate(-Math.PI / 2);
  ctx.textAlign = "center"; ctx.fillText(label, 0, 0); ctx.restore();
}

function marked(canvas) {  // for tests and for the eye: how many frames this canvas has drawn
  canvas.dataset.frames = String(+(canvas.dataset.frames || 0) + 1);
}

// ------------------------------------------------------------------ the pictures

function draw1d(s) {
  const cv = $("main"), ctx = ctx2(cv, 640, 440);
  const ymax = Math.max(1.05, 2 * Math.max(...s.p_data));
  const a = axes(cv, [48, 14, cv.width - 62, cv.height - 48], [s.x[0], s.x[s.x.length - 1]], [0, ymax]);
  mainMap = a;
  ctx.save(); ctx.strokeStyle = "#ddd"; ctx.setLineDash([2, 3]);
  ctx.beginPath(); ctx.moveTo(a.x(s.x[0]), a.y(0.5)); ctx.lineTo(a.x(s.x[s.x.length - 1]), a.y(0.5)); ctx.stroke();
  ctx.restore();
  line(ctx, a, s.x, s.p_data, COLOURS.p_data, [2, 4], 2.5);
  line(ctx, a, s.x, s.p_g, COLOURS.p_g, [], 2);
  line(ctx, a, s.x, s.d, COLOURS.D, [8, 5], 2);
  line(ctx, a, s.x, s.d_star, COLOURS.Dstar, [10, 4, 2, 4], 2);
  frameAxes(ctx, a, "x", "density / probability");
  for (const p of drawing) {
    ctx.fillStyle = COLOURS.drawn;
    ctx.fillRect(a.x(p) - 3, a.y(0) - 10, 6, 10);
  }
  ctx.fillStyle = "#333"; ctx.font = "12px monospace"; ctx.textAlign = "left"; ctx.textBaseline = "top";
  ctx.fillText(`step ${s.step}   JSD ${fmt(s.jsd)}   V(D,G) ${fmt(s.v_d)}   V(D*,G) ${fmt(s.v_dstar)}`, 56, 18);
  marked(cv);
  $("main-title").textContent = "p_data, p_g, D and D* on the line (Goodfellow et al. 2014, Figure 1, live)";
  legend("legend-main", [
    [COLOURS.p_data, "p_data(x): the data's density", true],
    [COLOURS.p_g, "p_g(x): G's density (KDE of 2,000 samples)"],
    [COLOURS.D, "D(x): the learned discriminator", true],
    [COLOURS.Dstar, "D*(x) = p_data / (p_data + p_g)", true],
  ]);

  // z to x: evenly spaced quantiles of z (bottom line) joined to x = G(z) (top line)
  const c2 = $("second"), k2 = ctx2(c2, 640, 150);
  const b = axes(c2, [48, 20, c2.width - 62, c2.height - 48], a.xr, [0, 1]);
  k2.strokeStyle = "#000"; k2.lineWidth = 1;
  for (const yy of [0, 1]) { k2.beginPath(); k2.moveTo(b.x(a.xr[0]), b.y(yy)); k2.lineTo(b.x(a.xr[1]), b.y(yy)); k2.stroke(); }
  k2.strokeStyle = "#555"; k2.lineWidth = 0.8;
  for (let i = 0; i < s.z_at.length; i++) {
    k2.beginPath(); k2.moveTo(b.x(s.z_at[i]), b.y(0)); k2.lineTo(b.x(s.x_of_z[i]), b.y(1)); k2.stroke();
  }
  k2.fillStyle = "#333"; k2.font = "12px sans-serif"; k2.textAlign = "right"; k2.textBaseline = "middle";
  k2.fillText("x", b.box[0] - 6, b.y(1)); k2.fillText("z", b.box[0] - 6, b.y(0));
  k2.textAlign = "center"; k2.textBaseline = "top";
  k2.fillText("evenly spaced quantiles of z (below) mapped to x = G(z) (above): where lines crowd, p_g is high", c2.width / 2, b.y(0) + 8);
  marked(c2);
  $("second-title").textContent = "the mapping x = G(z)";
  legend("legend-second", []);
}

function ctx2(canvas, w, h) {
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  const ctx = canvas.getContext("2d");
  clear(ctx);
  return ctx;
}

function draw2d(s) {
  const [x0, x1, y0, y1] = s.extent;
  const cv = $("main"), ctx = ctx2(cv, 640, 560);
  const side = Math.min(cv.width - 110, cv.height - 40);
  const a = axes(cv, [44, 10, side, side], [x0, x1], [y0, y1]);
  mainMap = a;
  heatmap(ctx, a, s.heat);
  ctx.save(); ctx.beginPath(); ctx.rect(...a.box); ctx.clip();
  ctx.strokeStyle = COLOURS.zgrid; ctx.lineWidth = 1; ctx.globalAlpha = 0.75;
  for (const poly of s.z_lines) {
    ctx.beginPath();
    poly.forEach((p, i) => (i ? ctx.lineTo(a.x(p[0]), a.y(p[1])) : ctx.moveTo(a.x(p[0]), a.y(p[1]))));
    ctx.stroke();
  }
  ctx.globalAlpha = 1;
  dots(ctx, a, s.real, COLOURS.real, 1.5);
  dots(ctx, a, s.fake, COLOURS.fake, 1.5);
  ctx.strokeStyle = "#000"; ctx.lineWidth = 1.5;
  for (const c of s.centres) {
    const px = a.x(c[0]), py = a.y(c[1]);
    ctx.beginPath(); ctx.moveTo(px - 5, py - 5); ctx.lineTo(px + 5, py + 5); ctx.moveTo(px - 5, py + 5); ctx.lineTo(px + 5, py - 5); ctx.stroke();
  }
  ctx.fillStyle = COLOURS.drawn;
  for (const p of drawing) { ctx.beginPath(); ctx.arc(a.x(p[0]), a.y(p[1]), 5, 0, 2 * Math.PI); ctx.fill(); }
  ctx.restore();
  frameAxes(ctx, a, "x₁", "x₂");
  colourBar(ctx, a.box[0] + side + 12, a.box[1], 14, side, "D(x), the learned discriminator");
  marked(cv);
  $("main-title").textContent = "D(x) over the plane, the data, G's samples and the image of a grid of z";
  legend("legend-main", [
    ["#b40426", "D(x) near 1: D says real"], ["#3b4cc0", "D(x) near 0: D says fake"],
    [COLOURS.real, "real points"], [COLOURS.fake, "G(z): G's samples"],
    [COLOURS.zgrid, "G's image of a square grid of (z₁, z₂)"],
    ["#000", "× mode centres"],
  ]);

  const c2 = $("second"), k2 = ctx2(c2, 640, 330);
  const side2 = 300;
  const b = axes(c2, [44, 10, side2, side2], [x0, x1], [y0, y1]);
  heatmap(k2, b, s.heat_star);
  k2.save(); k2.beginPath(); k2.rect(...b.box); k2.clip();
  dots(k2, b, s.fake.slice(0, 300), COLOURS.fake, 1.2);
  k2.restore();
  frameAxes(k2, b, "", "");
  colourBar(k2, b.box[0] + side2 + 12, b.box[1], 14, side2, "D*_h = p_data,h / (p_data,h + p_g,h)");
  k2.fillStyle = "#333"; k2.font = "12px sans-serif"; k2.textAlign = "left"; k2.textBaseline = "top";
  const tx = b.box[0] + side2 + 70;
  const lines = [
    "D*: the best D for this G,", "with both densities smoothed", `by a Gaussian of std h = ${s.h.toFixed(2)}.`,
    "", "Compare with D above: where", "the two differ, D has not", "caught up with G.",
    "", `G's mass off the picture: ${(100 * s.off_grid).toFixed(1)} %`,
  ];
  lines.forEach((t, i) => k2.fillText(t, tx, 14 + 16 * i));
  marked(c2);
  $("second-title").textContent = "D*_h(x): the optimal discriminator for the current G";
  legend("legend-second", [[COLOURS.fake, "G(z)"]]);
}

function drawCurves(s) {
  const h = s.history;
  const steps = h.map((r) => r.step);
  const xr = [steps.length ? steps[0] : 0, Math.max(1, steps.length ? steps[steps.length - 1] : 1)];
  if (xr[1] <= xr[0]) xr[1] = xr[0] + 1;
  const series = (k) => h.map((r) => r[k]);
  const range = (keys, extra) => {
    let lo = Math.min(...extra), hi = Math.max(...extra);
    for (const k of keys) for (const v of series(k)) if (v !== null && isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    const pad = 0.05 * (hi - lo || 1);
    return [lo - pad, hi + pad];
  };
  const panel = (id, keys, extra, hlines, ylabel) => {
    const cv = $(id), ctx = cv.getContext("2d");
    clear(ctx);
    const a = axes(cv, [44, 8, cv.width - 54, cv.height - 36], xr, range(keys, extra));
    for (const [v, c, label] of hlines) {
      line(ctx, a, xr, [v, v], c, [3, 3], 1);
      if (label) {
        ctx.fillStyle = "#777"; ctx.font = "10px sans-serif"; ctx.textAlign = "right"; ctx.textBaseline = "bottom";
        ctx.fillText(label, a.box[0] + a.box[2] - 3, a.y(v) - 1);
      }
    }
    for (const k of keys) line(ctx, a, steps, series(k), COLOURS[k], [], 1.8);
    frameAxes(ctx, a, "step", ylabel);
    // the key, inside the plot's top-left corner: each curve's name in its colour
    ctx.font = "bold 11px sans-serif"; ctx.textAlign = "left"; ctx.textBaseline = "top";
    let x = a.box[0] + 6;
    for (const k of keys) {
      const w = ctx.measureText(NAMES[k]).width;
      ctx.fillStyle = "rgba(255, 255, 255, 0.85)";
      ctx.fillRect(x - 2, a.box[1] + 2, w + 4, 14);
      ctx.fillStyle = COLOURS[k];
      ctx.fillText(NAMES[k], x, a.box[1] + 3);
      x += w + 12;
    }
    marked(cv);
  };
  panel("curve-v", ["jsd", "v_d", "v_dstar"], [-LOG4, 0],
    [[-LOG4, "#999", "−log 4"], [LOG2, "#ccc", "log 2"], [0, "#ccc", ""]], "nats");
  panel("curve-loss", ["loss_d", "loss_g"], [0, LOG4], [[LOG4, "#bbb", "log 4"]], "");
  panel("curve-d", ["d_real", "d_fake"], [0, 1], [[0.5, "#bbb", "1/2"]], "");
}

function fmt(v, digits) {
  return v === null || v === undefined || !isFinite(v) ? "–" : v.toFixed(digits === undefined ? 4 : digits);
}

let shownDim = 0;

function render(s) {
  if (s.dim !== shownDim) {  // drawn points belong to one dimension
    shownDim = s.dim;
    drawing = []; $("n-drawn").textContent = "0"; $("use-drawing").disabled = true;
  }
  if (s.dim === 1) draw1d(s); else draw2d(s);
  drawCurves(s);
  $("jsd").textContent = fmt(s.jsd);
  $("v-d").textContent = fmt(s.v_d);
  $("v-dstar").textContent = fmt(s.v_dstar);
  $("loss-d").textContent = fmt(s.loss_d, 3);
  $("loss-g").textContent = fmt(s.loss_g, 3);
  $("d-real").textContent = fmt(s.d_real, 3);
  $("d-fake").textContent = fmt(s.d_fake, 3);
  $("modes").textContent = s.n_modes ? `${s.modes_captured} / ${s.n_modes}` : "– (no mixture)";
  $("hq").textContent = s.high_quality === undefined ? "–" : (100 * s.high_quality).toFixed(1) + " %";
  $("step").textContent = s.step;
  $("d-updates").textContent = s.d_updates;
  $("note-2d").hidden = s.dim !== 2;
  if (s.dim === 2) $("h").textContent = s.h.toFixed(2);
  if (s.stopped) say(s.stopped);
  const ws = s.warnings || [];
  $("warnings").innerHTML = ws.length
    ? ws.slice().reverse().map((w) => `<li><b>step ${w.step}: ${esc(w.title)}</b>: ${esc(w.seen)}. <i>Try: ${esc(w.advice)}</i></li>`).join("")
    : '<li class="none">none so far</li>';
  syncControls(s);
  const now = performance.now();
  while (rate.length && rate[0] < now - 2000) rate.shift();
  $("status").textContent = `${s.playing ? "playing" : "paused"} · ${(rate.length / 2).toFixed(0)} states/s`;
}

function esc(t) {
  return String(t).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
}

// ------------------------------------------------------------------ controls

function syncControls(s) {
  const dataSel = $("data");
  if (dataSel.options.length !== s.data_names.length + (s.data_names.includes(s.data) ? 0 : 1)) {
    const names = s.data_names.includes(s.data) ? s.data_names : [...s.data_names, s.data];
    dataSel.innerHTML = names.map((n) => `<option>${esc(n)}</option>`).join("");
  }
  const lossSel = $("loss");
  if (lossSel.options.length !== s.losses.length) lossSel.innerHTML = s.losses.map((n) => `<option>${n}</option>`).join("");
  for (const el of document.querySelectorAll("[data-key]")) {
    if (el === document.activeElement) continue;
    const key = el.dataset.key;
    const v = key === "data" ? s.data : s.config[key];
    if (v === undefined) continue;
    if (el.type === "checkbox") el.checked = !!v; else el.value = String(v);
  }
}

function controlValue(el) {
  if (el.type === "checkbox") return el.checked;
  if (el.type === "number" || el.dataset.key === "model.pack") return Number(el.value);
  return el.value;
}

function setup() {
  $("play").onclick = () => act("/api/play");
  $("pause").onclick = () => act("/api/pause");
  $("step-d").onclick = () => act("/api/step", { d: 1 });
  $("step-g").onclick = () => act("/api/step", { g: 1 });
  $("step-1").onclick = () => act("/api/step", { steps: 1 });
  $("reset").onclick = () => act("/api/reset");
  for (const el of document.querySelectorAll("[data-key]")) {
    el.addEventListener("change", () => {
      if (el.dataset.key === "data" && el.value === "drawn") {
        if (drawing.length) return act("/api/config", { points: drawing });
        $("draw").checked = true;
        return say("click the plot to place modes, then press 'Train on drawing'", true);
      }
      act("/api/config", { [el.dataset.key]: controlValue(el) });
    });
  }
  $("main").addEventListener("click", (ev) => {
    if (!$("draw").checked || !mainMap || !state) return;
    const r = ev.target.getBoundingClientRect();
    const px = (ev.clientX - r.left) * (ev.target.width / r.width);
    const py = (ev.clientY - r.top) * (ev.target.height / r.height);
    const [x, y] = mainMap.inv(px, py);
    drawing.push(state.dim === 1 ? +x.toFixed(3) : [+x.toFixed(3), +y.toFixed(3)]);
    $("n-drawn").textContent = drawing.length;
    $("use-drawing").disabled = false;
    render(state);
  });
  $("use-drawing").onclick = async () => {
    if (await act("/api/config", { points: drawing })) say(`training on ${drawing.length} drawn modes`, true);
  };
  $("clear-drawing").onclick = () => {
    drawing = []; $("n-drawn").textContent = "0"; $("use-drawing").disabled = true;
    if (state) render(state);
  };
  $("export").onclick = async () => {
    const r = await act("/api/export");
    if (r) $("exported").innerHTML = `wrote ${esc(r.config)} and ${esc(r.run)}<br>` +
      `ganforge train --config ${esc(r.config)}<br>ganforge theory ${esc(r.run)}<br>ganforge report ${esc(r.run)}`;
  };
  poll();
  requestAnimationFrame(frame);
}

setup();
