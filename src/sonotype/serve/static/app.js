// sonotype web page: pick or drop a file, POST it to /v1/classify, draw the answer.
// Plain JS, no dependencies, nothing loaded from outside this server.
"use strict";

const PALETTE = ["#2e6bd8", "#e4572e", "#17a398", "#f3a712", "#8e44ad", "#c0392b", "#2c3e50",
  "#27ae60", "#d35400", "#7f8c8d", "#1abc9c", "#e84393", "#6c5ce7", "#00838f", "#795548"];
const FRIENDLY = {
  payload_too_large: "The file is too large for this server.",
  audio_too_long: "The recording is too long for this server.",
  unsupported_audio: "This file is not in an audio format the server can read.",
  invalid_audio: "The audio could not be used (corrupt, truncated or too short).",
  empty_body: "The file is empty.",
  invalid_parameter: "A setting is not valid.",
  internal_error: "The server failed to classify this file.",
};

const $ = (id) => document.getElementById(id);
let labels = [];
let limits = null;

function colour(label) {
  const i = labels.indexOf(label);
  return PALETTE[(i < 0 ? labels.length : i) % PALETTE.length];
}

function setState(state, text) {
  document.body.dataset.state = state;
  $("status").textContent = text || "";
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = false;
  setState("error", "");
}

async function loadModel() {
  try {
    const r = await fetch("/v1/model");
    const m = await r.json();
    labels = m.labels || [];
    limits = m.limits || null;
    $("model-id").textContent = m.model_id || "?";
    const ul = $("labels");
    ul.innerHTML = "";
    for (const l of labels) {
      const li = document.createElement("li");
      li.textContent = l;
      li.style.background = colour(l);
      ul.appendChild(li);
    }
    if (limits) {
      $("limits").textContent = `WAV, FLAC, OGG, MP3, AIFF or AU · up to ${limits.max_upload_mb} MB` +
        ` and ${limits.max_duration_s} s`;
    }
  } catch (e) {
    showError("Cannot reach the server to read the model description: " + e);
  }
}

async function classify(file) {
  $("error").hidden = true;
  $("result").hidden = true;
  if (limits && file.size > limits.max_upload_mb * 1e6) {
    showError(`${FRIENDLY.payload_too_large}\n${file.name} is ${(file.size / 1e6).toFixed(2)} MB; ` +
      `the limit is ${limits.max_upload_mb} MB.`);
    return;
  }
  setState("busy", `Classifying ${file.name} …`);
  const params = new URLSearchParams({ envelope: "800" });
  const w = $("window").value, h = $("hop").value;
  if (w) params.set("window", w);
  if (h) params.set("hop", h);
  const form = new FormData();
  form.append("file", file, file.name);
  let resp, data;
  try {
    resp = await fetch("/v1/classify?" + params, { method: "POST", body: form });
  } catch (e) {
    showError("The request did not reach the server: " + e);
    return;
  }
  try {
    data = await resp.json();
  } catch (e) {
    showError(`The server answered ${resp.status} without a readable message.`);
    return;
  }
  if (!resp.ok) {
    const head = FRIENDLY[data.error] || `The server refused the file (${resp.status}).`;
    showError(`${head}\n${data.detail || ""}\n(request id ${data.request_id || "?"})`);
    return;
  }
  render(file.name, data);
  setState("done", `Done in ${(performance.now() - started).toFixed(0)} ms.`);
}

let started = 0;


function render(name, d) {
  $("result").hidden = false;
  $("result-file").textContent = name;
  $("top-label").textContent = d.label;
  $("top-label").style.color = colour(d.label);
  $("top-prob").textContent = `${(100 * (d.probabilities[d.label] || 0)).toFixed(1)} %`;
  const nseg = (d.segments || []).length;
  $("result-meta").textContent = `${d.duration.toFixed(2)} s · ${nseg} segment${nseg === 1 ? "" : "s"} · ` +
    `model ${d.model_id} · request ${d.request_id}`;
  drawProbs(d.probabilities, d.label);
  drawWave(d.waveform, d.duration, d.segments || []);
  drawTimeline(d.segments || [], d.duration);
}

function drawProbs(probs, best) {
  const ol = $("probs");
  ol.innerHTML = "";
  const items = Object.entries(probs).sort((a, b) => b[1] - a[1]);
  for (const [label, p] of items) {
    const li = document.createElement("li");
    if (label === best) li.className = "best";
    li.dataset.label = label;
    li.innerHTML = '<span class="name"></span><span class="track"><span class="bar"></span></span>' +
      '<span class="val"></span>';
    li.querySelector(".name").textContent = label;
    const bar = li.querySelector(".bar");
    bar.style.width = `${(100 * p).toFixed(1)}%`;
    bar.style.background = colour(label);
    li.querySelector(".val").textContent = `${(100 * p).toFixed(1)} %`;
    ol.appendChild(li);
  }
}

function drawWave(wave, duration, segments) {
  const c = $("waveform");
  const dpr = window.devicePixelRatio || 1;
  c.width = Math.max(1, Math.round(c.clientWidth * dpr));
  c.height = Math.round(140 * dpr);
  const g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  // Segment backgrounds, tinted with their label's colour.
  for (const [i, s] of segments.entries()) {
    const end = i + 1 < segments.length ? Math.min(s.end, segments[i + 1].start) : s.end;
    g.fillStyle = colour(s.label) + "22";
    g.fillRect(c.width * s.start / duration, 0, c.width * (Math.min(end, duration) - s.start) / duration, c.height);
  }
  if (!wave || !wave.min || !wave.min.length) return;
  const n = wave.min.length, mid = c.height / 2;
  let peak = 1e-6;
  for (let i = 0; i < n; i++) peak = Math.max(peak, Math.abs(wave.min[i]), Math.abs(wave.max[i]));
  const scale = (0.95 * mid) / peak;
  g.fillStyle = "#344054";
  const bw = c.width / n;
  for (let i = 0; i < n; i++) {
    const top = mid - wave.max[i] * scale, bot = mid - wave.min[i] * scale;
    g.fillRect(i * bw, top, Math.max(1, bw - 0.3), Math.max(1, bot - top));
  }
  g.fillStyle = "#98a2b3";
  g.fillRect(0, mid, c.width, 1);
}

function drawTimeline(segments, duration) {
  const t = $("timeline");
  t.innerHTML = "";
  segments.forEach((s, i) => {
    const end = i + 1 < segments.length ? Math.min(s.end, segments[i + 1].start) : Math.min(s.end, duration);
    const div = document.createElement("div");
    div.className = "seg";
    div.style.left = `${(100 * s.start / duration).toFixed(3)}%`;
    div.style.width = `${(100 * Math.max(0, end - s.start) / duration).toFixed(3)}%`;
    div.style.background = colour(s.label);
    const p = s.probabilities ? s.probabilities[s.label] : undefined;
    div.title = `${s.start.toFixed(2)}–${s.end.toFixed(2)} s: ${s.label}` +
      (p === undefined ? "" : ` (${(100 * p).toFixed(0)} %)`);
    div.textContent = s.label;
    t.appendChild(div);
  });
  const axis = $("axis");
  axis.innerHTML = "";
  for (let k = 0; k <= 4; k++) {
    const span = document.createElement("span");
    span.textContent = `${(duration * k / 4).toFixed(duration < 4 ? 2 : 1)} s`;
    axis.appendChild(span);
  }
}

function onFiles(files) {
  if (!files || !files.length) return;
  started = performance.now();
  classify(files[0]);
}

const drop = $("drop");
for (const ev of ["dragenter", "dragover"]) {
  drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
}
for (const ev of ["dragleave", "drop"]) {
  drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.remove("over"); });
}
drop.addEventListener("drop", (e) => onFiles(e.dataTransfer.files));
$("file").addEventListener("change", (e) => { onFiles(e.target.files); e.target.value = ""; });
// A drop outside the zone would make the browser navigate away to the file.
window.addEventListener("dragover", (e) => e.preventDefault());
window.addEventListener("drop", (e) => e.preventDefault());

// ---------------------------------------------------------------- Listen: the microphone, live
// getUserMedia -> AudioWorklet (pcm-worklet.js) -> binary float32 messages on /v1/stream at the
// context's rate; one JSON message per window comes back and is drawn on a rolling timeline.
const LIVE_SPAN_S = 30; // the rolling timeline shows the last 30 s
const live = { ws: null, ctx: null, media: null, node: null, segments: [] };
window.sonotypeLive = live.segments; // every window answered, for scripts and tests

function setLive(state, text) {
  document.body.dataset.live = state;
  $("listen-btn").textContent = state === "listening" ? "Stop" : "Listen";
  $("status").textContent = text || "";
}

async function startListen() {
  $("error").hidden = true;
  live.segments.length = 0;
  $("live-timeline").innerHTML = "";
  $("live-label").textContent = "…";
  $("live-prob").textContent = "";
  $("live").hidden = false;
  setLive("starting", "Asking for the microphone …");
  try {
    // the context and the worklet first: capture starts with getUserMedia, no sample is lost waiting
    live.ctx = new AudioContext();
    await live.ctx.audioWorklet.addModule("/static/pcm-worklet.js");
    const params = new URLSearchParams({ sr: String(live.ctx.sampleRate) });
    const w = $("live-window").value, h = $("live-hop").value;
    if (w) params.set("window", w);
    if (h) params.set("hop", h);
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    live.ws = new WebSocket(`${proto}//${location.host}/v1/stream?${params}`);
    live.ws.binaryType = "arraybuffer";
    await new Promise((ok, fail) => {
      live.ws.onopen = ok;
      live.ws.onerror = () => fail(new Error("the WebSocket /v1/stream could not be opened"));
    });
    live.ws.onmessage = (e) => onLiveWindow(JSON.parse(e.data));
    live.ws.onclose = (e) => onLiveClose(e);
    const ctx = live.ctx;
    live.node = new AudioWorkletNode(ctx, "pcm-tap", { numberOfOutputs: 1 });
    live.node.port.onmessage = (e) => { if (live.ws && live.ws.readyState === WebSocket.OPEN) live.ws.send(e.data); };
    const media = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 1 },
    });
    if (live.ctx !== ctx) { // the server closed the stream meanwhile (its reason is shown already)
      media.getTracks().forEach((t) => t.stop());
      return;
    }
    live.media = media;
    const src = live.ctx.createMediaStreamSource(live.media);
    const mute = live.ctx.createGain();
    mute.gain.value = 0; // the worklet must be pulled by the graph, but nothing is played back
    src.connect(live.node);
    live.node.connect(mute);
    mute.connect(live.ctx.destination);
    await ctx.resume();
    if (live.ctx === ctx) setLive("listening", `Listening at ${ctx.sampleRate} Hz …`);
  } catch (e) {
    stopAudio();
    if (live.ws) live.ws.close();
    setLive("error", "");
    showError("Listening could not start: " + (e && e.message ? e.message : e));
  }
}

function stopAudio() {
  if (live.media) live.media.getTracks().forEach((t) => t.stop());
  if (live.node) live.node.port.postMessage("flush");
  if (live.ctx) live.ctx.close();
  live.media = live.ctx = live.node = null;
}

function stopListen() {
  stopAudio();
  // the last block the worklet flushes arrives just before; then 'end' flushes the partial window
  setTimeout(() => { if (live.ws && live.ws.readyState === WebSocket.OPEN) live.ws.send("end"); }, 50);
  setLive("stopping", "Stopping …");
}

function onLiveWindow(seg) {
  live.segments.push(seg);
  $("live-label").textContent = seg.label;
  $("live-label").style.color = colour(seg.label);
  $("live-prob").textContent = `${(100 * (seg.probabilities[seg.label] || 0)).toFixed(1)} %`;
  $("live-meta").textContent = `${seg.start.toFixed(1)}–${seg.end.toFixed(1)} s · ${live.segments.length} windows`;
  drawLiveTimeline();
}

function drawLiveTimeline() {
  const segs = live.segments;
  const now = segs.length ? segs[segs.length - 1].end : 0;
  const t0 = Math.max(0, now - LIVE_SPAN_S);
  const t = $("live-timeline");
  t.innerHTML = "";
  segs.forEach((s, i) => {
    if (s.end <= t0) return;
    const end = i + 1 < segs.length ? Math.min(s.end, segs[i + 1].start) : s.end;
    const a = Math.max(s.start, t0);
    const div = document.createElement("div");
    div.className = "seg";
    div.dataset.start = s.start;
    div.dataset.label = s.label;
    div.style.left = `${(100 * (a - t0) / LIVE_SPAN_S).toFixed(3)}%`;
    div.style.width = `${(100 * Math.max(0, end - a) / LIVE_SPAN_S).toFixed(3)}%`;
    div.style.background = colour(s.label);
    div.title = `${s.start.toFixed(2)}–${s.end.toFixed(2)} s: ${s.label}`;
    div.textContent = s.label;
    t.appendChild(div);
  });
  const axis = $("live-axis");
  axis.innerHTML = "";
  for (let k = 0; k <= 3; k++) {
    const span = document.createElement("span");
    span.textContent = `${(t0 + LIVE_SPAN_S * k / 3).toFixed(0)} s`;
    axis.appendChild(span);
  }
}

function onLiveClose(e) {
  stopAudio();
  live.ws = null;
  if (e.code === 1000) {
    setLive("stopped", `Stopped: ${live.segments.length} windows.`);
  } else {
    setLive("error", "");
    showError(`The live stream was closed (${e.code}): ${e.reason || "connection lost"}`);
  }
}

$("listen-btn").addEventListener("click", () => {
  const st = document.body.dataset.live;
  if (st === "listening") stopListen();
  else if (st !== "starting" && st !== "stopping") startListen();
});

loadModel();
