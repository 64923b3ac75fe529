/// The page served at `/`: choose a video (analysed by a `/v1/analyze` job) or the webcam (frames over
/// `/v1/stream`); it plays with face boxes, track ids and the top expression drawn over it, beside per-track
/// timelines of the expression probabilities and valence/arousal that follow the playhead, with CSV/JSON
/// downloads. Embedded in the binary, no external resources: it works offline.
enum WebPage {
    static let html = #"""
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>affect serve</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font: 14px system-ui, sans-serif; margin: 16px; color: #222; }
#controls > * { margin-right: 8px; }
#stage { position: relative; display: inline-block; margin-top: 10px; background: #000; }
#video { display: block; max-width: 900px; max-height: 520px; }
#overlay { position: absolute; left: 0; top: 0; pointer-events: none; }
#timeline { display: block; margin-top: 10px; border: 1px solid #ccc; }
#status { color: #555; }
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
<canvas id="timeline" width="900" height="240"></canvas>
<script>
"use strict";
const $ = id => document.getElementById(id);
const video = $("video"), overlay = $("overlay"), timeline = $("timeline"), status = $("status");
const colours = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324", "#808000", "#000075"];
let result = null, frames = [], live = null;

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

// A video file: play it locally while the server analyses it, then draw the result.
$("file").onchange = async () => {
  const file = $("file").files[0];
  if (!file) return;
  stopLive();
  result = null; frames = []; draw();
  video.srcObject = null;
  video.src = URL.createObjectURL(file);
  try {
    status.textContent = "uploading…";
    const job = await (await call("/v1/analyze?tracks=all", { method: "POST", body: file })).json();
    let state = job;
    while (state.state === "queued" || state.state === "running") {
      status.textContent = state.state + (state.frames_total ? " " + Math.round(100 * state.frames_done / state.frames_total) + " %" : " " + state.frames_done + " frames");
      await new Promise(r => setTimeout(r, 500));
      state = await (await call("/v1/jobs/" + job.id)).json();
    }
    if (state.state !== "done") throw new Error("the job " + state.state + (state.error ? ": " + state.error : ""));
    const json = await (await call("/v1/jobs/" + job.id + "/result?format=json")).blob();
    const csv = await (await call("/v1/jobs/" + job.id + "/result?format=csv")).blob();
    result = JSON.parse(await json.text());
    $("json").href = URL.createObjectURL(json); $("csv").href = URL.createObjectURL(csv);
    $("json").style.display = $("csv").style.display = "inline";
    index();
    status.textContent = "done: " + result.tracks.length + " track" + (result.tracks.length === 1 ? "" : "s");
    draw();
  } catch (e) {
    status.textContent = "error: " + e.message;
  }
};

// Rows by frame: [{track, row}] for every frame some track covers.
function index() {
  frames = [];
  result.tracks.forEach((t, ti) => t.rows.forEach(r => {
    (frames[r.frame] = frames[r.frame] || { time: r.time, rows: [] }).rows.push({ track: t.track !== undefined ? t.track : ti, row: r });
  }));
}
function frameAt(time) {
  let best = null;
  for (const f of frames) if (f && f.time <= time + 1e-6) best = f;
  return best;
}
function label(row, labels) {
  if (!row.probabilities) return row.expression || "";
  const p = Math.max(...row.probabilities);
  return row.expression + " " + p.toFixed(2);
}

function draw() {
  const w = video.clientWidth, h = video.clientHeight;
  overlay.width = w; overlay.height = h;
  const g = overlay.getContext("2d");
  g.clearRect(0, 0, w, h);
  const sx = w / (video.videoWidth || w), sy = h / (video.videoHeight || h);
  const boxes = [];
  if (live) { for (const f of live.faces || []) boxes.push({ track: f.track, box: f.box, text: (f.expression || "") + " " + ((f.expressions || {})[f.expression] || 0).toFixed(2), va: f }); }
  else if (result) {
    const f = frameAt(video.currentTime);
    if (f) for (const { track, row } of f.rows) if (row.box) boxes.push({ track, box: row.box, text: label(row), va: row });
  }
  g.lineWidth = 2; g.font = "14px sans-serif";
  for (const b of boxes) {
    const c = colours[b.track % colours.length];
    const [x1, y1, x2, y2] = b.box;
    g.strokeStyle = c; g.strokeRect(x1 * sx, y1 * sy, (x2 - x1) * sx, (y2 - y1) * sy);
    g.fillStyle = c;
    const text = "track " + b.track + ": " + b.text;
    g.fillRect(x1 * sx, y1 * sy - 18, g.measureText(text).width + 8, 18);
    g.fillStyle = "#fff"; g.fillText(text, x1 * sx + 4, y1 * sy - 4);
    if (b.va.valence !== undefined) {
      g.fillStyle = c;
      g.fillRect(x1 * sx, y2 * sy + 4, (x2 - x1) * sx * (b.va.valence + 1) / 2, 5);
      g.fillRect(x1 * sx, y2 * sy + 12, (x2 - x1) * sx * (b.va.arousal + 1) / 2, 5);
    }
  }
  drawTimeline();
}

// Per-track small multiples: expression probabilities (and valence/arousal) over time, with the playhead.
function drawTimeline() {
  const g = timeline.getContext("2d");
  g.clearRect(0, 0, timeline.width, timeline.height);
  if (!result || !result.tracks.length) return;
  const tracks = result.tracks.slice(0, 4), labels = result.expression_model.labels;
  const duration = result.video.duration || 1, lane = timeline.height / tracks.length, left = 60, width = timeline.width - left - 10;
  g.font = "11px sans-serif";
  tracks.forEach((t, ti) => {
    const top = ti * lane + 4, height = lane - 12;
    g.fillStyle = "#333"; g.fillText("track " + (t.track !== undefined ? t.track : ti), 4, top + 12);
    g.strokeStyle = "#ddd"; g.strokeRect(left, top, width, height);
    labels.forEach((name, k) => {
      g.strokeStyle = colours[k % colours.length]; g.beginPath();
      t.rows.forEach((r, i) => {
        const x = left + width * r.time / duration, y = top + height * (1 - r.probabilities[k]);
        i ? g.lineTo(x, y) : g.moveTo(x, y);
      });
      g.stroke();
      if (ti === 0) { g.fillStyle = colours[k % colours.length]; g.fillText(name, left + 4 + k * 70, top + height + 8); }
    });
    if (t.rows.length && t.rows[0].valence !== undefined) {
      for (const [key, dash] of [["valence", [4, 2]], ["arousal", [1, 2]]]) {
        g.setLineDash(dash); g.strokeStyle = "#000"; g.beginPath();
        t.rows.forEach((r, i) => { const x = left + width * r.time / duration, y = top + height * (1 - (r[key] + 1) / 2); i ? g.lineTo(x, y) : g.moveTo(x, y); });
        g.stroke(); g.setLineDash([]);
      }
    }
  });
  const x = left + width * video.currentTime / duration;
  g.strokeStyle = "#000"; g.beginPath(); g.moveTo(x, 0); g.lineTo(x, timeline.height); g.stroke();
}

// The webcam: frames as JPEG over the WebSocket, each answered with its faces and track ids.
$("cam").onclick = async () => {
  stopLive();
  result = null; frames = [];
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
    video.src = ""; video.srcObject = stream; await video.play();
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/v1/stream");
    const grab = document.createElement("canvas");
    const send = () => {
      if (ws.readyState !== 1 || !video.videoWidth) return;
      grab.width = video.videoWidth; grab.height = video.videoHeight;
      grab.getContext("2d").drawImage(video, 0, 0);
      grab.toBlob(b => ws.readyState === 1 && ws.send(b), "image/jpeg", 0.85);
    };
    ws.onopen = () => { status.textContent = "streaming"; send(); };
    ws.onmessage = m => { const r = JSON.parse(m.data); if (!r.error) live = r; draw(); send(); };
    ws.onclose = () => { status.textContent = "stream closed"; };
    live = { faces: [], ws, stream };
  } catch (e) {
    status.textContent = "webcam: " + e.message;
  }
};
function stopLive() {
  if (!live) return;
  if (live.ws) live.ws.close();
  if (live.stream) live.stream.getTracks().forEach(t => t.stop());
  live = null;
}

video.addEventListener("timeupdate", draw);
video.addEventListener("seeked", draw);
video.addEventListener("loadedmetadata", draw);
(function tick() { if (!video.paused) draw(); requestAnimationFrame(tick); })();
</script>
</body></html>
"""#
}
