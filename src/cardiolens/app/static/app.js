// cardiolens web page: talks only to the JSON API of the server that served it (/api/...).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { record: null, models: [], view: null, attention: null, shift: false, tuned: {}, genAbort: null, busy: 0 };
const ECG_PINK = "#f3b5b5", ECG_PINK_LIGHT = "#fbe4e4";
const PLOT_CONFIG = { responsive: true, displaylogo: false, toImageButtonOptions: { format: "png", scale: 2 } };
// one colour per rhythm model (the CNN, the feature trees, their mean), whichever of them answered
const RHYTHM_COLOURS = ["#1f6feb", "#b42318", "#6e40c9"];
// beat classes of aami-ecg-trees: Okabe-Ito colours and a shape each, so colour is never the only cue;
// N beats get a faint ring only (they are most beats), which still carries their hover text
const BEAT_CLASS_MARKERS = {
  N: { symbol: "circle-open", color: "#8c959f", size: 14 },
  S: { symbol: "triangle-up", color: "#0072B2", size: 13 },
  V: { symbol: "diamond", color: "#D55E00", size: 13 },
  F: { symbol: "square", color: "#CC79A7", size: 12 },
};

// -- small helpers -----------------------------------------------------------------------------------
class ApiError extends Error {}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (typeof body.detail === "string") detail = body.detail;
      else if (Array.isArray(body.detail)) detail = body.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
    } catch (_) { /* not JSON: keep the status line */ }
    throw new ApiError(detail);
  }
  if (response.status === 204) return null;
  return response.json();
}

const postJSON = (path, body) => api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });

function say(id, text, kind = "") {
  const el = $(id);
  el.textContent = text || "";
  el.className = "message" + (kind ? " " + kind : "");
}

function status(text) { $("status").textContent = text; }

async function busy(label, work) {
  state.busy += 1;
  status(label + "…");
  try { return await work(); } finally {
    state.busy -= 1;
    if (!state.busy) status(state.record ? `record ${state.record.name} loaded` : "ready");
  }
}

function bump(el) { el.dataset.updates = String(Number(el.dataset.updates || 0) + 1); }

function esc(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

function fillSelect(select, options, selected) {
  select.innerHTML = "";
  for (const [value, label] of options) {
    const opt = document.createElement("option");
    opt.value = value; opt.textContent = label;
    if (value === selected) opt.selected = true;
    select.appendChild(opt);
  }
}

// ECG paper for mV leads (1 s / 0.2 s and 0.5 mV / 0.1 mV), a plain grid otherwise
function timeAxis(extra = {}) {
  return { title: { text: "time (s)" }, dtick: 1, gridcolor: ECG_PINK, zeroline: false,
           minor: { dtick: 0.2, showgrid: true, gridcolor: ECG_PINK_LIGHT }, ...extra };
}

function valueAxis(units, label, extra = {}) {
  const axis = { title: { text: `${label} (${units})` }, zeroline: false, ...extra };
  if (units === "mV") Object.assign(axis, { dtick: 0.5, gridcolor: ECG_PINK, minor: { dtick: 0.1, showgrid: true, gridcolor: ECG_PINK_LIGHT } });
  return axis;
}

// -- start -------------------------------------------------------------------------------------------
async function init() {
  try {
    const [models, examples, explain] = await Promise.all([api("/api/models"), api("/api/examples"), api("/api/explain")]);
    state.models = models;
    fillSelect($("example-select"), examples.map((e) => [e.name, `${e.name}: ${e.description}`]));
    const gpts = models.filter((m) => m.kind === "generative");
    for (const select of document.querySelectorAll(".gpt-select")) fillSelect(select, gpts.map((m) => [m.name, `${m.name} (${m.modality}, ${m.fs} Hz)`]));
    state.tuned = explain.tuned || {};
    fillSelect($("shift-model"), Object.entries(state.tuned).map(([name, parent]) => [name, `${name} (from ${parent})`]));
    for (const [key, why] of Object.entries(explain.sections)) {
      const el = $(`${key}-message`);
      if (el) el.textContent = why ? `Not available: ${why}.` : "";
    }
    status("ready");
  } catch (err) {
    status("the server did not answer");
    say("load-message", `Could not reach the server: ${err.message}`, "error");
  }
}

// -- 1. load -----------------------------------------------------------------------------------------
async function upload(event) {
  event.preventDefault();
  const files = $("file-input").files;
  if (!files.length) { say("load-message", "Choose the record's files first.", "error"); return; }
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  const fs = $("fs-input").value.trim();
  if (fs) form.append("fs", fs);
  if ($("fill-gaps").checked) form.append("fill_gaps", "true");
  say("load-message", "Uploading…");
  try {
    const info = await busy("uploading", () => api("/api/records", { method: "POST", body: form }));
    await setRecord(info);
  } catch (err) {
    say("load-message", err.message, "error");
  }
}

async function loadExample() {
  say("load-message", "Loading the example…");
  try {
    const info = await busy("loading example", () => api(`/api/examples/${encodeURIComponent($("example-select").value)}`, { method: "POST" }));
    await setRecord(info);
  } catch (err) {
    say("load-message", err.message, "error");
  }
}

function forget(record) {
  if (record) fetch(`/api/records/${record.id}`, { method: "DELETE", keepalive: true }).catch(() => {});
}

async function setRecord(info) {
  forget(state.record);
  state.record = info;
  state.attention = null;
  state.shift = false;
  say("load-message", `Loaded ${info.name}.`, "ok");
  const quality = info.quality && info.quality.leads ? info.quality.leads : [];
  const flags = quality.map((q) => q.problems && q.problems.length
    ? `<span class="flag bad">${esc(q.lead)}: ${esc(q.problems.join("; "))}</span>`
    : `<span class="flag ok">${esc(q.lead)}: ok${q.heart_rate_bpm ? `, ${Math.round(q.heart_rate_bpm)} bpm` : ""}</span>`).join(" ");
  const rows = [
    ["name", esc(info.name)], ["format", esc(info.format || "?")], ["sampling rate", `${info.fs} Hz`],
    ["leads", info.leads.map((l, i) => `${esc(l)} (${esc(info.units[i])}, ${info.modalities[i]})`).join(", ")],
    ["length", `${info.samples} samples, ${info.duration_s.toFixed(2)} s`], ["quality", flags || "–"],
  ];
  if (info.annotations) rows.push(["annotations", esc(Object.entries(info.annotations).map(([k, v]) => `${k}: ${v}`).join(", "))]);
  $("record-info").innerHTML = `<table>${rows.map(([k, v]) => `<tr><th>${k}</th><td>${v}</td></tr>`).join("")}</table>`;
  $("record-info").classList.remove("hidden");

  const leads = info.leads.map((l) => [l, l]);
  for (const select of document.querySelectorAll(".lead-select")) fillSelect(select, leads, info.default_lead);
  for (const id of ["analyse-button", "explain-button", "gen-button", "attr-button"]) $(id).disabled = false;
  $("shift-button").disabled = !Object.keys(state.tuned).length;
  $("report-link").href = `/api/records/${info.id}/report`;
  $("report-link").classList.remove("disabled");
  $("trees-report-link").classList.add("disabled");
  $("gen-csv").classList.add("disabled");
  for (const id of ["rhythm-plot", "hr-plot", "beats-plot", "attention-plot", "map-plot", "heads-plot", "similarity-plot", "attr-plot", "shift-plot", "shift-layers-plot", "gen-plot"]) Plotly.purge($(id));
  for (const id of ["analysis-message", "explain-message", "gen-message"]) say(id, "");
  for (const id of ["beats-message", "beat-classes-message", "rhythm-message", "attributions-message"]) $(id).textContent = "";
  $("analysis-summary").classList.add("hidden");
  syncModels();
  updateExplainReport();  // after syncModels: the link names the model chosen for this record's leads
  $("view-controls").classList.toggle("hidden", info.duration_s <= 60);
  $("view-start").value = 0;
  await showSignal(0, Math.min(info.duration_s, 60));
}

async function showSignal(start, duration) {
  const rec = state.record;
  if (!rec) return;
  try {
    const view = await busy("drawing", () => api(`/api/records/${rec.id}/signal?start=${start}&duration=${duration}`));
    state.view = view;
    drawRecord(view);
  } catch (err) {
    say("load-message", err.message, "error");
  }
}

function drawRecord(view) {
  const n = view.leads.length;
  const gap = 0.04, height = (1 - gap * (n - 1)) / n;
  const traces = [], layout = { margin: { l: 70, r: 20, t: 10, b: 45 }, showlegend: false, height: Math.max(220, 170 * n), xaxis: timeAxis({ anchor: `y${n > 1 ? n : ""}` }) };
  view.leads.forEach((lead, i) => {
    const axis = i ? `y${i + 1}` : "y";
    traces.push({ x: view.t, y: lead.values, type: "scatter", mode: "lines", line: { color: "#111", width: 1 }, name: lead.name, xaxis: "x", yaxis: axis });
    const top = 1 - i * (height + gap);
    layout[i ? `yaxis${i + 1}` : "yaxis"] = valueAxis(lead.units, lead.name, { domain: [top - height, top] });
  });
  const div = $("record-plot");
  Plotly.react(div, traces, layout, PLOT_CONFIG);
  $("view-note").textContent = view.note;
  bump(div);
  if (!div.dataset.zoomHook) {
    div.dataset.zoomHook = "1";
    div.on("plotly_relayout", debounce(onZoom, 250));
  }
}

async function onZoom(ev) {
  // a reduced view fetches every sample of the zoomed span, so zooming shows the real signal
  const view = state.view, rec = state.record;
  if (!view || !rec || !view.reduced || ev["xaxis.range[0]"] === undefined) return;
  const start = Math.max(0, ev["xaxis.range[0]"]), stop = Math.min(rec.duration_s, ev["xaxis.range[1]"]);
  if (!(stop > start)) return;
  try {
    const detail = await api(`/api/records/${rec.id}/signal?start=${start}&duration=${stop - start}`);
    state.view = detail;
    drawRecord(detail);
  } catch (err) {
    say("load-message", err.message, "error");
  }
}

// -- 2. analyse --------------------------------------------------------------------------------------
async function analyse() {
  const rec = state.record;
  const lead = $("analysis-lead").value;
  say("analysis-message", "Analysing…");
  try {
    const result = await busy("analysing", () => postJSON(`/api/records/${rec.id}/analysis`, { lead }));
    say("analysis-message", "");
    drawAnalysis(result);
    $("report-link").href = `/api/records/${rec.id}/report?lead=${encodeURIComponent(lead)}`;
    // the trees read an ECG lead: on a PPG lead they refuse (trees.ok false, its message names the ECG leads)
    const trees = result.rhythm_trees;
    const params = new URLSearchParams({ model: trees.model, ...(result.modality === "ECG" ? { lead: result.lead } : {}) });
    $("trees-report-link").href = `/api/records/${rec.id}/explain-report?${params}`;
    $("trees-report-link").classList.toggle("disabled", !trees.ok);
  } catch (err) {
    say("analysis-message", err.message, "error");
  }
}

function drawRhythm(models) {
  // the rhythm models that answered side by side (grouped bars, one trace each); the others say why not
  const ready = models.map((r, i) => [r, RHYTHM_COLOURS[i % RHYTHM_COLOURS.length]]).filter(([r]) => r.ok);
  const rdiv = $("rhythm-plot");
  if (ready.length) {
    const classes = [...new Set(ready.flatMap(([r]) => Object.keys(r.probabilities)))];
    const label = (c) => ready.map(([r]) => r.names[c]).find(Boolean) || c;
    Plotly.react(rdiv, ready.map(([r, colour]) => ({ type: "bar", name: r.model, x: classes.map(label),
      y: classes.map((c) => r.probabilities[c] ?? 0), marker: { color: colour } })),
      { margin: { l: 50, r: 10, t: 30, b: 60 }, barmode: "group", showlegend: true, legend: { orientation: "h", y: 1.18 },
        yaxis: { title: { text: "probability" }, range: [0, 1] }, height: 260 }, PLOT_CONFIG);
  } else {
    Plotly.purge(rdiv);
  }
  $("rhythm-message").textContent = models.map((r) => (!r.ok ? `${r.model} unavailable: ${r.message}`
    : r.members ? `${r.model}: the unweighted mean of ${r.members.join(" and ")}`
    : r.model + (r.preprocessing.length ? ": " + r.preprocessing.join("; ") : ""))).join("\n");
  bump(rdiv);
}

function mostLikely(rhythm) {
  const [best, p] = Object.entries(rhythm.probabilities).sort((a, b) => b[1] - a[1])[0];
  return `<b>${esc(rhythm.names[best] || best)}</b> (${(100 * p).toFixed(0)} %, ${esc(rhythm.model)})`;
}

// one marker trace per class that has beats (a legend entry each), limited to the beats in view
function beatClassTraces(classified, inView) {
  const beats = classified.beats, keep = inView(beats.times);
  return classified.classes.filter((c) => classified.counts[c] && BEAT_CLASS_MARKERS[c]).map((c) => {
    const mine = keep.filter((i) => beats.classes[i] === c), look = BEAT_CLASS_MARKERS[c];
    return { x: mine.map((i) => beats.times[i]), y: mine.map((i) => beats.values[i]), mode: "markers", meta: c,
      name: `${c} ${classified.names[c]} (${classified.counts[c]})`,
      marker: { symbol: look.symbol, size: look.size, color: look.color, line: { color: c === "N" ? look.color : "#111", width: 1 } },
      text: mine.map((i) => `${c} ${classified.names[c]}, confidence ${beats.confidence[i].toFixed(3)}`),
      hovertemplate: "%{text}<br>%{x:.3f} s<extra></extra>" };
  });
}

function drawAnalysis(result) {
  const rhythms = [result.rhythm, result.rhythm_trees, result.rhythm_mean].filter(Boolean), bm = result.beat_model, classified = result.beat_classes;
  const hr = result.heart_rate.median_bpm;
  const verdicts = rhythms.filter((r) => r.ok).map(mostLikely);
  const perClass = classified.ok ? `; beats: ${classified.classes.map((c) => `${esc(c)} ${classified.counts[c]}`).join(", ")} (${esc(classified.model)})` : "";
  $("analysis-summary").innerHTML = `<b>${result.beats.count}</b> beats in lead ${esc(result.lead)} (${esc(result.beats.method)}), median heart rate <b>${hr === null ? "–" : hr + " bpm"}</b>` +
    (verdicts.length ? `; most likely rhythm: ${verdicts.join(", ")}` : "") + perClass;
  $("analysis-summary").classList.remove("hidden");
  drawRhythm(rhythms);

  // heart rate and RR
  const hdiv = $("hr-plot");
  Plotly.react(hdiv, [
    { x: result.heart_rate.t, y: result.heart_rate.bpm, mode: "lines+markers", name: "heart rate (bpm)", line: { color: "#b42318" } },
    { x: result.rr.t, y: result.rr.seconds, mode: "lines+markers", name: "RR (s)", yaxis: "y2", line: { color: "#1f6feb" } },
  ], { margin: { l: 55, r: 55, t: 10, b: 45 }, height: 260, legend: { orientation: "h", y: 1.15 },
       xaxis: { title: { text: "time (s)" } }, yaxis: { title: { text: "bpm" } },
       yaxis2: { title: { text: "RR (s)" }, overlaying: "y", side: "right" } }, PLOT_CONFIG);
  bump(hdiv);

  // the lead with its beats (confidence colour when the beat model ran)
  const view = state.view;
  const index = view.leads.findIndex((l) => l.name === result.lead);
  const lead = view.leads[index];
  const lo = view.start, hi = view.stop;
  const traces = [{ x: view.t, y: lead.values, mode: "lines", line: { color: "#111", width: 1 }, name: result.lead }];
  const inView = (times) => times.map((t, i) => [t, i]).filter(([t]) => t >= lo && t <= hi).map(([, i]) => i);
  const modelBeats = bm.ok && bm.beats ? bm.beats : null;
  if (modelBeats && modelBeats.samples.length) {
    const keep = inView(modelBeats.times);
    traces.push({ x: keep.map((i) => modelBeats.times[i]), y: keep.map((i) => modelBeats.values[i]), mode: "markers", name: "beats (model)",
      marker: { size: 10, color: keep.map((i) => modelBeats.confidence[i]), colorscale: "RdYlGn", cmin: 0, cmax: 1,
                colorbar: { title: { text: "confidence" }, thickness: 12 }, line: { color: "#333", width: 1 } },
      text: keep.map((i) => `confidence ${modelBeats.confidence[i]}`) });
    $("beats-message").textContent = `Beats of ${bm.model}, coloured by its confidence.`;
  } else {
    const keep = inView(result.beats.times);
    traces.push({ x: keep.map((i) => result.beats.times[i]), y: keep.map((i) => result.beats.values[i]), mode: "markers", name: "beats (detector)",
      marker: { size: 9, color: "#1f6feb", symbol: "triangle-down" } });
    $("beats-message").textContent = `Beats from the ${result.beats.method} detector (no confidence: ` +
      (bm.available === false || !bm.ok ? `beat model unavailable: ${bm.message}` : "the beat model found none") + ").";
  }
  traces[0].showlegend = false;  // the lead's name is on its axis
  const classTraces = classified.ok ? beatClassTraces(classified, inView) : [];
  traces.push(...classTraces);
  $("beat-classes-message").textContent = classified.ok
    ? `Beat classes of ${classified.model} (AAMI: N normal, S supraventricular ectopic, V ventricular ectopic, F fusion); `
      + "hover a marker for its class and confidence. The first and last beat are not classified."
    : `${classified.model} unavailable: ${classified.message}`;
  const bdiv = $("beats-plot");
  Plotly.react(bdiv, traces, { margin: { l: 70, r: 20, t: classTraces.length ? 30 : 10, b: 45 }, height: 300,
    showlegend: classTraces.length > 0, legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
    xaxis: timeAxis({ range: [lo, hi] }), yaxis: valueAxis(lead.units, lead.name) }, PLOT_CONFIG);
  bump(bdiv);
}

// -- 3. explain --------------------------------------------------------------------------------------
function syncModels() {
  // pick the generative model of each lead's modality
  const rec = state.record;
  for (const [leadId, modelId] of [["explain-lead", "explain-model"], ["gen-lead", "gen-model"]]) {
    const i = rec.leads.indexOf($(leadId).value);
    const wanted = rec.modalities[i];
    const match = state.models.find((m) => m.kind === "generative" && m.modality === wanted);
    if (match) $(modelId).value = match.name;
  }
}

function attentionRequest() {
  const layer = $("layer-select").value;
  const head = Number($("head-slider").value);
  return {
    model: $("explain-model").value, lead: $("explain-lead").value, start: Number($("explain-start").value) || 0,
    layer: layer === "" ? null : Number(layer), head: head === 0 ? null : head - 1, token: Number($("token-slider").value),
  };
}

async function explain() {
  const rec = state.record;
  say("explain-message", "Running the model…");
  try {
    const body = attentionRequest();
    body.token = -1;
    const view = await busy("computing attention", () => postJSON(`/api/records/${rec.id}/attention`, body));
    // set the controls to the model's shape; the token starts at the last position
    fillSelect($("layer-select"), [["", "all (mean)"], ...Array.from({ length: view.layers }, (_, i) => [String(i), `layer ${i + 1}`])], body.layer === null ? "" : String(body.layer));
    const head = $("head-slider");
    head.max = String(view.heads); head.disabled = false;
    const token = $("token-slider");
    token.max = String(view.tokens - 1); token.value = String(view.token); token.disabled = false;
    state.attention = { key: [body.model, body.lead, body.start].join("|") };
    say("explain-message", "");
    drawAttention(view);
  } catch (err) {
    say("explain-message", err.message, "error");
  }
}

const refreshAttention = debounce(async () => {
  const rec = state.record;
  if (!rec) return;
  try {
    if (state.attention) drawAttention(await postJSON(`/api/records/${rec.id}/attention`, attentionRequest()));
    if (state.shift) drawShift(await postJSON(`/api/records/${rec.id}/attention-shift`, shiftRequest()));
  } catch (err) {
    say("explain-message", err.message, "error");
  }
}, 60);

// the shift uses the same lead, window, layer, head and token as the attention above
function shiftRequest() {
  const body = attentionRequest();
  body.model = $("shift-model").value;
  if (!state.attention) body.token = -1;
  return body;
}

async function compareShift() {
  const rec = state.record;
  $("shift-message").textContent = "Running both models…";
  try {
    const view = await busy("comparing attention", () => postJSON(`/api/records/${rec.id}/attention-shift`, shiftRequest()));
    state.shift = true;
    drawShift(view);
  } catch (err) {
    $("shift-message").textContent = err.message;
  }
}

function drawShift(view) {
  const which = `${view.layer === null ? "all layers" : "layer " + (view.layer + 1)}, ${view.head === null ? "all heads" : "head " + (view.head + 1)}`;
  $("shift-message").textContent = `Token ${view.token} (${view.token_time.toFixed(2)} s), ${which}: ${view.finetuned} against ${view.pretrained}; `
    + `total-variation distance ${view.tv_selected} (0: the same attention, 1: none shared). ` + view.notes.join("; ");
  const n = view.row_finetuned.length;
  const lead = state.record.leads.indexOf(view.lead);
  const div = $("shift-plot");
  Plotly.react(div, [
    { x: view.t, y: view.values, mode: "lines", line: { color: "#8c959f", width: 1 }, name: "window", hoverinfo: "skip" },
    { x: view.t.slice(0, n), y: view.row_pretrained, yaxis: "y2", mode: "lines", line: { color: "#1f6feb", width: 1.5 }, name: view.pretrained },
    { x: view.t.slice(0, n), y: view.row_finetuned, yaxis: "y2", mode: "lines", line: { color: "#b42318", width: 1.5 }, name: view.finetuned },
  ], { margin: { l: 70, r: 20, t: 30, b: 45 }, height: 340, legend: { orientation: "h", y: 1.12 },
       xaxis: timeAxis(), yaxis: valueAxis(state.record.units[lead], view.lead, { domain: [0.55, 1] }),
       yaxis2: { domain: [0, 0.45], title: { text: "attention" } } }, PLOT_CONFIG);
  bump(div);
  const ldiv = $("shift-layers-plot");
  Plotly.react(ldiv, [{ type: "bar", x: view.tv_distance.map((_, i) => `layer ${i + 1}`), y: view.tv_distance, marker: { color: "#b42318" } }],
    { margin: { l: 60, r: 10, t: 30, b: 45 }, height: 340, title: { text: "distance from the pretrained attention, per layer", font: { size: 13 } },
      yaxis: { title: { text: "total variation" }, range: [0, 1] } }, PLOT_CONFIG);
  bump(ldiv);
}

function drawAttention(view) {
  $("head-value").textContent = view.head === null ? "all" : `${view.head + 1} of ${view.heads}`;
  $("token-value").textContent = `${view.token} (${view.token_time.toFixed(2)} s)`;
  $("explain-notes").textContent = view.notes.join("; ");
  const lead = state.record.leads.indexOf(view.lead);
  const units = state.record.units[lead];
  const n = view.row.length;
  const peak = Math.max(...view.row, 1e-9);
  const which = `${view.layer === null ? "all layers" : "layer " + (view.layer + 1)}, ${view.head === null ? "all heads" : "head " + (view.head + 1)}`;
  const adiv = $("attention-plot");
  Plotly.react(adiv, [
    { x: view.t, y: view.values, mode: "lines", line: { color: "#8c959f", width: 1 }, name: "window", hoverinfo: "skip" },
    { x: view.t.slice(0, n), y: view.values.slice(0, n), mode: "markers", name: "attention",
      marker: { size: view.row.map((a) => 3 + 12 * Math.sqrt(a / peak)), color: view.row, colorscale: "Reds", cmin: 0, cmax: peak,
                colorbar: { title: { text: "attention" }, thickness: 12 } },
      text: view.row.map((a) => `attention ${a}`) },
    { x: [view.token_time], y: [view.values[view.token]], mode: "markers", name: "token", marker: { size: 14, color: "#1f6feb", symbol: "diamond" } },
  ], { margin: { l: 70, r: 20, t: 30, b: 45 }, height: 300, showlegend: false,
       title: { text: `${view.model}, ${which}: token ${view.token} attends to…`, font: { size: 13 } },
       xaxis: timeAxis(), yaxis: valueAxis(units, view.lead),
       shapes: [{ type: "line", x0: view.token_time, x1: view.token_time, yref: "paper", y0: 0, y1: 1, line: { color: "#1f6feb", dash: "dot" } }] }, PLOT_CONFIG);
  bump(adiv);

  const cell = view.map.seconds_per_cell;
  const axis = view.map.z.map((_, i) => view.start + i * cell);
  const mdiv = $("map-plot");
  Plotly.react(mdiv, [{ type: "heatmap", z: view.map.z, x: axis, y: axis, colorscale: "Reds", colorbar: { thickness: 12 } }],
    { margin: { l: 60, r: 10, t: 10, b: 45 }, height: 380, xaxis: { title: { text: "key (s)" } }, yaxis: { title: { text: "query (s)" }, autorange: "reversed" } }, PLOT_CONFIG);
  bump(mdiv);

  const hdiv = $("heads-plot");
  Plotly.react(hdiv, [{ type: "heatmap", z: view.distance, x: view.distance[0].map((_, h) => `head ${h + 1}`), y: view.distance.map((_, l) => `layer ${l + 1}`),
    colorscale: "Blues", colorbar: { title: { text: "s" }, thickness: 12 }, texttemplate: "%{z:.2f}" }],
    { margin: { l: 70, r: 10, t: 10, b: 45 }, height: 380, yaxis: { autorange: "reversed" } }, PLOT_CONFIG);
  bump(hdiv);

  const sdiv = $("similarity-plot");
  Plotly.react(sdiv, [{ type: "heatmap", z: view.similarity.z, x: view.t, y: view.similarity.layers, zmin: -1, zmax: 1,
    colorscale: "RdBu", reversescale: true, colorbar: { title: { text: "cosine" }, thickness: 12 } }],
    { margin: { l: 80, r: 10, t: 10, b: 45 }, height: 300, xaxis: { title: { text: "time (s)" } }, yaxis: { autorange: "reversed" },
      shapes: [{ type: "line", x0: view.token_time, x1: view.token_time, yref: "paper", y0: 0, y1: 1, line: { color: "#111", dash: "dot" } }] }, PLOT_CONFIG);
  bump(sdiv);
}

function explainParams() {
  return new URLSearchParams({ model: $("explain-model").value, lead: $("explain-lead").value, start: String(Number($("explain-start").value) || 0) });
}

function updateExplainReport() {
  const rec = state.record;
  if (!rec || !$("explain-model").value) return;
  $("explain-report-link").href = `/api/records/${rec.id}/explain-report?${explainParams()}`;
  $("explain-report-link").classList.remove("disabled");
}

async function computeAttributions() {
  const rec = state.record;
  const method = $("attr-method").value;
  $("attributions-message").textContent = `Computing ${method} attributions…`;
  try {
    const body = { model: $("explain-model").value, lead: $("explain-lead").value, start: Number($("explain-start").value) || 0, method };
    const result = await busy("computing attributions", () => postJSON(`/api/records/${rec.id}/attributions`, body));
    const lead = result.leads[0];
    const units = rec.units[rec.leads.indexOf(lead.name)] || "";
    const top = Math.max(...lead.values.map(Math.abs), 1e-12);
    const div = $("attr-plot");
    Plotly.react(div, [
      { x: result.t, y: lead.signal, mode: "lines", line: { color: "#8c959f", width: 1 }, name: lead.name, hoverinfo: "skip" },
      { x: result.t, y: lead.signal, mode: "markers", name: result.method,
        marker: { size: 5, color: lead.values, colorscale: "RdBu", reversescale: true, cmin: -top, cmax: top, colorbar: { title: { text: "attribution" }, thickness: 12 } } },
      { x: result.t, y: lead.values, yaxis: "y2", mode: "lines", line: { color: "#b42318", width: 1 }, name: "attribution" },
    ], { margin: { l: 70, r: 60, t: 10, b: 45 }, height: 380, showlegend: false, xaxis: timeAxis(),
         yaxis: valueAxis(units, lead.name, { domain: [0.4, 1] }), yaxis2: { domain: [0, 0.3], title: { text: result.method } } }, PLOT_CONFIG);
    bump(div);
    $("attributions-message").textContent = `${result.method} for ${result.model}'s output "${result.target}" (probability ${result.probability}), ${result.seconds} s. ` + result.notes.join("; ");
  } catch (err) {
    $("attributions-message").textContent = err.message;
  }
}

// -- 4. generate -------------------------------------------------------------------------------------
async function generate() {
  const rec = state.record;
  const topk = $("gen-topk").value.trim(), seed = $("gen-seed").value.trim();
  const body = {
    model: $("gen-model").value, lead: $("gen-lead").value, steps: Number($("gen-steps").value),
    temperature: Number($("gen-temperature").value), top_k: topk ? Number(topk) : null, seed: seed ? Number(seed) : null,
  };
  const abort = new AbortController();
  state.genAbort = abort;
  $("gen-button").disabled = true; $("gen-stop").disabled = false; $("gen-csv").classList.add("disabled");
  say("gen-message", "Generating…");
  $("gen-progress").textContent = "";
  const div = $("gen-plot");
  let received = 0;
  status("generating…");
  try {
    const response = await fetch(`/api/records/${rec.id}/generate`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), signal: abort.signal,
    });
    if (!response.ok) {
      let detail = `${response.status} ${response.statusText}`;
      try { const j = await response.json(); detail = typeof j.detail === "string" ? j.detail : j.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; "); } catch (_) { /* keep */ }
      throw new ApiError(detail);
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, cut); buffer = buffer.slice(cut + 1);
        if (!line.trim()) continue;
        const event = JSON.parse(line);
        if (event.type === "start") {
          Plotly.react(div, [
            { x: event.context.t, y: event.context.values, mode: "lines", line: { color: "#111", width: 1 }, name: "context (the stretch the model saw, at the recording's rate)" },
            { x: [], y: [], mode: "lines", line: { color: "#d62728", width: 1.3 }, name: `generated by ${event.model}` },
          ], { margin: { l: 70, r: 20, t: 10, b: 45 }, height: 300, legend: { orientation: "h", y: 1.12 },
               xaxis: timeAxis(), yaxis: valueAxis(event.units, event.lead),
               shapes: [{ type: "line", x0: event.end, x1: event.end, yref: "paper", y0: 0, y1: 1, line: { color: "#1f6feb", dash: "dot" } }] }, PLOT_CONFIG);
          $("gen-progress").textContent = `0 of ${event.steps} samples at ${event.model_fs} Hz` + (event.resampled ? ` (the lead is resampled from ${event.fs} Hz)` : "");
        } else if (event.type === "chunk") {
          Plotly.extendTraces(div, { x: [event.t], y: [event.values] }, [1]);
          received += event.values.length;
          div.dataset.generated = String(received);
          $("gen-progress").textContent = `${received} of ${body.steps} samples`;
          bump(div);
        } else if (event.type === "done") {
          $("gen-csv").href = `/api/records/${rec.id}/files/${event.csv}`;
          $("gen-csv").classList.remove("disabled");
          say("gen-message", event.summary.split(" -> ")[0], "ok");
          div.dataset.done = "1";
        } else if (event.type === "error") {
          say("gen-message", event.detail, "error");
        }
      }
    }
  } catch (err) {
    if (err.name === "AbortError") say("gen-message", `Stopped after ${received} samples.`);
    else say("gen-message", err.message, "error");
  } finally {
    state.genAbort = null;
    $("gen-button").disabled = false; $("gen-stop").disabled = true;
    status(`record ${rec.name} loaded`);
  }
}

// -- wiring ------------------------------------------------------------------------------------------
$("upload-form").addEventListener("submit", upload);
$("example-button").addEventListener("click", loadExample);
$("view-button").addEventListener("click", () => showSignal(Number($("view-start").value) || 0, Number($("view-duration").value) || 60));
$("analyse-button").addEventListener("click", analyse);
$("explain-button").addEventListener("click", explain);
$("explain-lead").addEventListener("change", () => { syncModels(); updateExplainReport(); });
for (const id of ["explain-model", "explain-start"]) $(id).addEventListener("change", updateExplainReport);
$("attr-button").addEventListener("click", computeAttributions);
$("shift-button").addEventListener("click", compareShift);
$("gen-lead").addEventListener("change", syncModels);
$("layer-select").addEventListener("change", refreshAttention);
$("head-slider").addEventListener("input", () => { $("head-value").textContent = Number($("head-slider").value) ? `${$("head-slider").value}` : "all"; refreshAttention(); });
$("token-slider").addEventListener("input", refreshAttention);
$("gen-button").addEventListener("click", generate);
$("gen-stop").addEventListener("click", () => state.genAbort && state.genAbort.abort());
window.addEventListener("pagehide", () => forget(state.record));
init();
