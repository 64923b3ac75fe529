/// The page served at `/`: choose a video (analysed by a `/v1/analyze` job) or the webcam (frames over
/// `/v1/stream`); it plays with face boxes, track ids and the top expression drawn over it, beside per-track
/// timelines of the expression probabilities and valence/arousal that follow the playhead and a table of the
/// current frame's numbers, with CSV/JSON downloads; with the webcam, the microphone's audio goes over the same
/// stream as 16 kHz PCM chunks when the server has an audio model. Embedded in the binary, no external resources: it works
/// offline. Tests/AffectServerTests/WebPageBrowserTests.swift drives it in headless Chromium.
enum WebPage {
    static let html = #"""
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>affect serve</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font: 14px system-ui, sans-serif; margin: 16px; color: #222; }
#controls > * { margin-right: 8px; }
#stage { position: relative; display: inline-block; margin-top: 10px; background: #000; vertical-align: top; }
#video { display: block; max-width: 900px; max-height: 520px; }
#overlay { position: absolute; left: 0; top: 0; pointer-events: none; }
#timeline { display: block; margin-top: 10px; border: 1px solid #ccc; }
#status { color: #555; }
#transcript { margin-top: 8px; color: #333; max-width: 900px; }
#readout { border-collapse: collapse; margin-top: 10px; font-variant-numeric: tabular-nums; }
#readout td, #readout th { border: 1px solid #ddd; padding: 2px 6px; text-align: right; }
#readout th:first-child, #readout td:first-child { text-align: left; }
a.dl { display: none; }
</style></head>
<body>
<h1>affect</h1>
<div id="controls">
  <input type="file" id="file" accept="video/*">
  <button id="cam">Webcam</button>
  <input id="token" placeholder="token (if the server needs one)" size="28">
  <span id="status">Choose a video or the webcam.</span>
  <a id="csv" class="dl" download="analysis.csv">CSV</a>
  <a id="json" class="dl" download="analysis.json">JSON</a>
</div>
<div id="stage"><video id="video" controls muted playsinline></video><canvas id="overlay"></canvas></div>
<table id="readout"></table>
<canvas id="timeline" width="900" height="0"></canvas>
<div id="more"></div>
<div id="transcript"></div>
<script>
"use strict";
const $ = id => document.getElementById(id);
const video = $("video"), overlay = $("overlay"), timeline = $("timeline"), status = $("status");
const colours = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324", "#808000", "#000075"];
const lanePixels = 110, axisPixels = 16, legendPixels = 22, maxLanes = 8;
// The analysis shown: its job, its JSON result, and its rows by frame (sorted by time, for the playhead).
let job = null, result = null, frames = [];
// The webcam: {ws, stream, reply (the last answer), sent, answered, error, audio}; `audio` (the microphone, when
// the server has an audio model): {ctx, sent, samples: [cumulative samples per chunk sent], answered, reply, error, text}.
let live = null;
// Bumped by every new video or webcam start, so an older job's late answers are ignored.
let generation = 0;
// What the overlay shows now: [{track, box, text, colour}] in the video's pixels (the browser test reads it).
let drawn = [];
// The timeline's time axis: [{time, x, label}] (the browser test reads it).
let ticks = [];

function headers() {
  const t = $("token").value.trim();
  return t ? { "Authorization": "Bearer " + t } : {};
}
async function call(path, options = {}) {
  const r = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
  if (!r.ok) {
    let m = r.status + " " + r.statusText;
    try { m = (await r.json()).error || m; } catch (e) {}
    throw new Error(m);
  }
  return r;
}
function setDownloads(csv, json) {
  for (const [id, blob] of [["csv", csv], ["json", json]]) {
    const a = $(id);
    if (a.href) URL.revokeObjectURL(a.href);
    if (blob) { a.href = URL.createObjectURL(blob); a.style.display = "inline"; }
    else { a.removeAttribute("href"); a.style.display = "none"; }
  }
}
function setSource(file) {
  if (video.src) URL.revokeObjectURL(video.src);
  video.srcObject = null;
  if (file) video.src = URL.createObjectURL(file); else { video.removeAttribute("src"); video.load(); }
}

// A video file: play it locally while the server analyses it, then draw the result.
$("file").onchange = async () => {
  const file = $("file").files[0];
  if (!file) return;
  stopLive();
  const mine = ++generation;
  job = null; result = null; frames = []; setDownloads(null, null);
  setSource(file);
  draw();
  try {
    status.textContent = "uploading…";
    job = await (await call("/v1/analyze?tracks=all", { method: "POST", body: file })).json();
    let state = job;
    while (state.state === "queued" || state.state === "running") {
      if (mine !== generation) return;
      status.textContent = state.state + (state.frames_total ? " " + Math.round(100 * state.frames_done / state.frames_total) + " %" : " " + state.frames_done + " frames");
      await new Promise(r => setTimeout(r, 300));
      state = await (await call("/v1/jobs/" + job.id)).json();
    }
    if (state.state !== "done") throw new Error("the job " + state.state + (state.error ? ": " + state.error : ""));
    const json = await (await call("/v1/jobs/" + job.id + "/result?format=json")).blob();
    const csv = await (await call("/v1/jobs/" + job.id + "/result?format=csv")).blob();
    if (mine !== generation) return;
    result = JSON.parse(await json.text());
    setDownloads(csv, json);
    index();
    const n = result.tracks.length;
    status.textContent = "done: " + n + " track" + (n === 1 ? "" : "s") + (n ? "" : " (no face found)");
    draw();
  } catch (e) {
    if (mine === generation) status.textContent = "error: " + e.message;
  }
};

// Rows by frame, sorted by time: [{frame, time, rows: [{track, row}]}] for every frame some track covers.
function index() {
  const byFrame = new Map();
  result.tracks.forEach((t, ti) => t.rows.forEach(r => {
    if (!byFrame.has(r.frame)) byFrame.set(r.frame, { frame: r.frame, time: r.time, rows: [] });
    byFrame.get(r.frame).rows.push({ track: trackId(t, ti), row: r });
  }));
  frames = [...byFrame.values()].sort((a, b) => a.time - b.time);
}
function trackId(t, ti) { return t.track !== undefined ? t.track : ti; }
// The last analysed frame at or before `time` (binary search: long videos have many frames).
function frameAt(time) {
  let lo = 0, hi = frames.length - 1, best = null;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (frames[mid].time <= time + 1e-6) { best = frames[mid]; lo = mid + 1; } else hi = mid - 1;
  }
  return best;
}
// The top class and its probability: an EXPR head's when one ran (row.expr), else the expression model's.
function topProbability(row) {
  const p = row.expr || row.probabilities || [];
  return p.length ? Math.max(...p) : 0;
}
function colour(track) { return colours[((track % colours.length) + colours.length) % colours.length]; }

function draw() {
  const w = video.clientWidth, h = video.clientHeight;
  overlay.width = w; overlay.height = h;
  const g = overlay.getContext("2d");
  g.clearRect(0, 0, w, h);
  let sw = video.videoWidth || w, sh = video.videoHeight || h;
  const boxes = [];
  if (live && live.reply) {
    sw = live.reply.width || sw; sh = live.reply.height || sh;
    for (const f of live.reply.faces || []) {
      boxes.push({ track: f.track, box: f.box, text: f.expression + " " + ((f.expressions || {})[f.expression] || 0).toFixed(2), va: f });
    }
  } else if (result) {
    const f = frameAt(video.currentTime);
    if (f) for (const { track, row } of f.rows) if (row.box) boxes.push({ track, box: row.box, text: row.expression + " " + topProbability(row).toFixed(2), va: row });
  }
  const sx = w / sw, sy = h / sh;
  g.lineWidth = 2; g.font = "14px sans-serif";
  for (const b of boxes) {
    const c = colour(b.track);
    const [x1, y1, x2, y2] = b.box;
    g.strokeStyle = c; g.strokeRect(x1 * sx, y1 * sy, (x2 - x1) * sx, (y2 - y1) * sy);
    const text = "track " + b.track + ": " + b.text;
    // The label above the box, or inside it when the box touches the top.
    const ly = y1 * sy >= 18 ? y1 * sy - 18 : y1 * sy;
    g.fillStyle = c; g.fillRect(x1 * sx, ly, g.measureText(text).width + 8, 18);
    g.fillStyle = "#fff"; g.fillText(text, x1 * sx + 4, ly + 14);
    if (b.va.valence !== undefined && b.va.valence !== null) {
      // Valence and arousal as bars under the box: empty at -1, full at +1.
      g.fillStyle = c;
      g.fillRect(x1 * sx, y2 * sy + 4, (x2 - x1) * sx * (b.va.valence + 1) / 2, 5);
      g.fillRect(x1 * sx, y2 * sy + 12, (x2 - x1) * sx * (b.va.arousal + 1) / 2, 5);
    }
  }
  drawn = boxes.map(b => ({ track: b.track, box: b.box, text: "track " + b.track + ": " + b.text, colour: colour(b.track) }));
  drawReadout();
  drawTimeline();
}

// The current frame's numbers, one row per face: track, time, each class's probability, valence/arousal.
function drawReadout() {
  const table = $("readout");
  table.textContent = "";
  let labels, faces, time;
  if (live && live.reply) {
    const r = live.reply;
    labels = (r.faces && r.faces.length) ? Object.keys(r.faces[0].expressions).sort() : [];
    faces = (r.faces || []).map(f => ({ track: f.track, p: labels.map(k => f.expressions[k]), va: f }));
    time = null;
  } else if (result) {
    const f = frameAt(video.currentTime);
    labels = result.expression_model.labels;
    faces = f ? f.rows.map(({ track, row }) => ({ track, p: row.probabilities, va: row, frame: row.frame })) : [];
    time = f ? f.time : null;
  } else return;
  if (!faces.length) return;
  const hasVA = faces.some(f => f.va.valence !== undefined && f.va.valence !== null);
  const head = table.insertRow();
  for (const name of ["track", "frame", "time"].concat(labels, hasVA ? ["valence", "arousal"] : [])) {
    const th = document.createElement("th"); th.textContent = name; head.appendChild(th);
  }
  for (const f of faces) {
    const tr = table.insertRow();
    tr.dataset.track = f.track;
    const cells = [String(f.track), f.frame === undefined ? "" : String(f.frame), time === null ? "" : time.toFixed(3)]
      .concat(f.p.map(v => v.toFixed(3)), hasVA ? [f.va.valence, f.va.arousal].map(v => v === undefined || v === null ? "" : v.toFixed(3)) : []);
    for (const c of cells) tr.insertCell().textContent = c;
  }
}

// Per-track small multiples: expression probabilities (and valence/arousal) over time, with the playhead.
function drawTimeline() {
  const tracks = result && !live ? result.tracks.slice(0, maxLanes) : [];
  const height = tracks.length ? tracks.length * lanePixels + axisPixels + legendPixels : 0;
  if (timeline.height !== height) timeline.height = height;
  const rest = result && !live ? result.tracks.length - tracks.length : 0;
  $("more").textContent = rest > 0 ? "+" + rest + " more track" + (rest === 1 ? "" : "s") + " in the CSV/JSON (the timeline draws the first " + maxLanes + ")." : "";
  const g = timeline.getContext("2d");
  g.clearRect(0, 0, timeline.width, timeline.height);
  ticks = [];
  if (!tracks.length) return;
  const labels = result.expression_model.labels;
  const duration = result.video.duration || 1, left = 60, width = timeline.width - left - 10;
  const xAt = t => left + width * Math.min(Math.max(t / duration, 0), 1);
  ticks = timeTicks(duration, width).map(t => ({ time: t.time, x: xAt(t.time), label: t.label }));
  g.font = "11px sans-serif";
  tracks.forEach((t, ti) => {
    const top = ti * lanePixels + 4, h = lanePixels - 8;
    g.fillStyle = colour(trackId(t, ti)); g.fillText("track " + trackId(t, ti), 4, top + 12);
    g.strokeStyle = "#ddd"; g.strokeRect(left, top, width, h);
    // Faint ticks along the lane's bottom edge, under the curves.
    g.fillStyle = "#bbb";
    for (const k of ticks) g.fillRect(Math.round(k.x), top + h - 4, 1, 4);
    labels.forEach((name, k) => {
      g.strokeStyle = colours[k % colours.length]; g.beginPath();
      t.rows.forEach((r, i) => {
        const x = xAt(r.time), y = top + h * (1 - r.probabilities[k]);
        i ? g.lineTo(x, y) : g.moveTo(x, y);
      });
      g.stroke();
    });
    if (t.rows.length && t.rows[0].valence !== undefined) {
      for (const [key, dash] of [["valence", [4, 2]], ["arousal", [1, 2]]]) {
        g.setLineDash(dash); g.strokeStyle = "#000"; g.beginPath();
        t.rows.forEach((r, i) => { const x = xAt(r.time), y = top + h * (1 - (r[key] + 1) / 2); i ? g.lineTo(x, y) : g.moveTo(x, y); });
        g.stroke(); g.setLineDash([]);
      }
    }
  });
  // The time axis under the lanes: a mark and the time in seconds (m:ss past a minute) at each tick.
  const axisTop = tracks.length * lanePixels;
  g.fillStyle = "#555"; g.textAlign = "center";
  for (const k of ticks) {
    g.fillRect(Math.round(k.x), axisTop, 1, 4);
    // Centred under its mark, but kept inside the canvas (the last tick sits at the right edge).
    const half = g.measureText(k.label).width / 2;
    g.fillText(k.label, Math.min(k.x, timeline.width - half - 1), axisTop + 14);
  }
  g.textAlign = "start";
  // The legend under the axis.
  let x = left;
  const legend = labels.map((name, k) => [name, colours[k % colours.length]]);
  if (tracks.some(t => t.rows.length && t.rows[0].valence !== undefined)) legend.push(["valence - -", "#000"], ["arousal ···", "#000"]);
  for (const [name, c] of legend) { g.fillStyle = c; g.fillText(name, x, timeline.height - 7); x += g.measureText(name).width + 14; }
  const px = xAt(video.currentTime);
  g.strokeStyle = "#000"; g.beginPath(); g.moveTo(px, 0); g.lineTo(px, axisTop); g.stroke();
}

// Tick times for a `duration`-second axis `width` pixels wide: the smallest round step that leaves at least
// 60 pixels between labels, from 0 to the end.
function timeTicks(duration, width) {
  const steps = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 18000, 36000];
  const most = Math.max(1, Math.floor(width / 60));
  const step = steps.find(s => duration / s <= most) || duration / most;
  const out = [];
  for (let i = 0; i * step <= duration + 1e-9; i++) out.push({ time: i * step, label: timeLabel(i * step, step) });
  return out;
}
function timeLabel(t, step) {
  if (step >= 60) { const m = Math.floor(t / 60), s = Math.round(t - 60 * m); return m + ":" + String(s).padStart(2, "0"); }
  return (step < 1 ? t.toFixed(1) : t.toFixed(0)) + " s";
}

// The webcam: frames as JPEG over the WebSocket, one in flight at a time, each answered with its faces and
// track ids. Browsers cannot set headers on a WebSocket, so the token goes as a subprotocol.
function hex(s) { return Array.from(new TextEncoder().encode(s), b => b.toString(16).padStart(2, "0")).join(""); }
$("cam").onclick = async () => {
  if (live) { stopLive(); status.textContent = "webcam stopped"; draw(); return; }
  const mine = ++generation;
  job = null; result = null; frames = []; setDownloads(null, null);
  $("transcript").textContent = "";
  try {
    // The microphone too when the server has an audio model (its chunks would only be refused otherwise); a
    // refused microphone still leaves the camera.
    let audioModel = null;
    try { audioModel = ((await (await call("/v1/models")).json()).models.find(m => m.kind === "audio") || {}).name || null; } catch (e) {}
    const video640 = { width: 640, height: 480 };
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia(audioModel ? { video: video640, audio: { channelCount: 1 } } : { video: video640 });
    } catch (e) {
      if (!audioModel) throw e;
      stream = await navigator.mediaDevices.getUserMedia({ video: video640 });
    }
    if (mine !== generation) { stream.getTracks().forEach(t => t.stop()); return; }
    setSource(null);
    video.srcObject = stream; await video.play();
    const t = $("token").value.trim();
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/v1/stream",
                             t ? ["affect", "affect.token." + hex(t)] : ["affect"]);
    const state = { ws, stream, reply: null, sent: 0, answered: 0, error: null, audio: null };
    live = state;
    $("cam").textContent = "Stop webcam";
    const grab = document.createElement("canvas");
    const send = () => {
      if (live !== state || ws.readyState !== WebSocket.OPEN || !video.videoWidth) return;
      grab.width = video.videoWidth; grab.height = video.videoHeight;
      grab.getContext("2d").drawImage(video, 0, 0);
      grab.toBlob(b => { if (b && live === state && ws.readyState === WebSocket.OPEN) { ws.send(b); state.sent++; } }, "image/jpeg", 0.85);
    };
    ws.onopen = () => { status.textContent = "streaming"; send(); startAudio(state); };
    ws.onmessage = m => {
      if (live !== state) return;
      const r = JSON.parse(m.data);
      // A PCM chunk's answer: the audio model's result for the 20 ms frames the chunk completed.
      if (r.chunk !== undefined) { audioAnswer(state, r); return; }
      state.answered++;
      if (r.error) { state.error = r.error; status.textContent = "frame " + r.frame + ": " + r.error; }
      else { state.reply = r; status.textContent = "streaming: frame " + r.frame + ", " + r.faces.length + " face" + (r.faces.length === 1 ? "" : "s"); }
      draw();
      // Busy server: wait as asked before the next frame.
      if (r.retry_after) setTimeout(send, 1000 * r.retry_after); else send();
    };
    ws.onerror = () => { if (live === state) status.textContent = "the stream failed (is the token right?)"; };
    ws.onclose = e => { if (live === state) { status.textContent = "stream closed" + (e.reason ? ": " + e.reason : ""); stopLive(); } };
  } catch (e) {
    if (mine === generation) status.textContent = "webcam: " + e.message;
  }
};
// The microphone as 16 kHz mono 16-bit PCM, one `S16L` chunk a second over the stream (the AudioContext
// resamples whatever the device gives to 16 kHz).
function startAudio(state) {
  const tracks = state.stream.getAudioTracks();
  if (!tracks.length || live !== state) return;
  const ctx = new AudioContext({ sampleRate: 16000 });
  const source = ctx.createMediaStreamSource(new MediaStream(tracks));
  // A ScriptProcessor needs no separate module file (the page stays one embedded document); 4096 samples = 256 ms.
  const node = ctx.createScriptProcessor(4096, 1, 1);
  const audio = { ctx, sent: 0, samples: [], answered: 0, reply: null, error: null, text: "" };
  state.audio = audio;
  let pending = [], count = 0, total = 0;
  node.onaudioprocess = e => {
    if (live !== state || state.ws.readyState !== WebSocket.OPEN) return;
    const x = e.inputBuffer.getChannelData(0), s = new Int16Array(x.length);
    for (let i = 0; i < x.length; i++) s[i] = Math.max(-32768, Math.min(32767, Math.round(x[i] * 32768)));
    pending.push(s); count += s.length;
    if (count < ctx.sampleRate) return;
    state.ws.send(new Blob([new TextEncoder().encode("S16L"), ...pending]));
    total += count; audio.samples.push(total); audio.sent++;
    pending = []; count = 0;
  };
  source.connect(node);
  // Connected to the output so that it runs; it writes nothing there, so it plays silence.
  node.connect(ctx.destination);
}
function audioAnswer(state, r) {
  const a = state.audio;
  if (!a) return;
  a.answered++;
  if (r.error) { a.error = r.error; status.textContent = "audio chunk " + r.chunk + ": " + r.error; return; }
  a.reply = r;
  if (r.text) { a.text += r.text; $("transcript").textContent = "heard: " + a.text; }
}
function stopLive() {
  if (!live) return;
  const l = live;
  live = null;
  if (l.audio) l.audio.ctx.close();
  l.ws.close();
  l.stream.getTracks().forEach(t => t.stop());
  video.srcObject = null;
  $("cam").textContent = "Webcam";
}

video.addEventListener("timeupdate", draw);
video.addEventListener("seeked", draw);
video.addEventListener("loadedmetadata", draw);
window.addEventListener("resize", draw);
(function tick() { if (!video.paused) draw(); requestAnimationFrame(tick); })();
</script>
</body></html>
"""#
}
