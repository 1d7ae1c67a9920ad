// vidrec's page: send a file or a stream URL as a job, follow its events (Server-Sent Events read
// through fetch, so a bearer token can go with them), and draw them in step with the video.
"use strict";

const $ = (id) => document.getElementById(id);
const COLOURS = ["#e63946", "#2a9d8f", "#e9c46a", "#457b9d", "#f4a261", "#8d5fd3", "#6a994e"];
let job = null;          // {id, abort}
let topk = [];           // "topk" events, in time order
let people = [];         // "people" events, in time order
let segments = [];
let spotted = [];        // "event" events (a spot job): marks on the timeline
let duration = 0;        // seconds the timeline spans

function headers() {
  const token = $("token").value || localStorage.getItem("vidrec-token") || "";
  return token ? { Authorization: `Bearer ${token}` } : {};
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

async function detail(response) {
  try { return (await response.json()).detail || response.statusText; } catch { return response.statusText; }
}

async function loadModels() {
  const response = await fetch("/v1/models", { headers: headers() });
  if (response.status === 401) { $("token-box").hidden = false; $("models").textContent = "token needed"; return; }
  const info = await response.json();
  $("models").textContent = info.models.map((m) => m.name).join(", ");
  $("model").innerHTML = "";
  for (const m of info.models) {
    const option = document.createElement("option");
    option.value = option.textContent = m.name;
    $("model").appendChild(option);
  }
}

function latest(events, t) {  // the last event at or before time t
  let best = null;
  for (const e of events) { if (e.time <= t + 1e-3) best = e; else break; }
  return best;
}

function colour(label) {
  let h = 0;
  for (const c of label) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return COLOURS[h % COLOURS.length];
}

function render() {
  const video = $("video");
  const live = !video.src;  // a stream URL: no local video, show the newest
  const t = live ? Infinity : video.currentTime;
  const scores = live ? topk[topk.length - 1] : latest(topk, t);
  const look = live ? people[people.length - 1] : latest(people, t);
  $("topk").innerHTML = "";
  const shown = scores ? scores.predictions : [];
  if (look) for (const p of look.tracks) if (p.action) shown.push({ label: `#${p.id} ${p.action.label}`, score: p.action.score });
  for (const p of shown.slice(0, 6)) {
    const li = document.createElement("li");
    li.textContent = `${p.label} ${p.score.toFixed(2)}`;
    $("topk").appendChild(li);
  }
  drawBoxes(look);
  if (duration > 0 && !live) $("cursor").style.left = `${(100 * video.currentTime) / duration}%`;
}

function drawBoxes(look) {
  const video = $("video"), canvas = $("boxes");
  canvas.width = video.clientWidth; canvas.height = video.clientHeight;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!look || !video.videoWidth) return;
  // the picture inside the element (letterboxed to keep its aspect ratio)
  const scale = Math.min(canvas.width / video.videoWidth, canvas.height / video.videoHeight);
  const dx = (canvas.width - video.videoWidth * scale) / 2, dy = (canvas.height - video.videoHeight * scale) / 2;
  ctx.lineWidth = 2; ctx.font = "12px system-ui";
  for (const p of look.tracks) {
    const [x1, y1, x2, y2] = p.box.map((v) => v * scale);
    ctx.strokeStyle = ctx.fillStyle = COLOURS[p.id % COLOURS.length];
    ctx.strokeRect(dx + x1, dy + y1, x2 - x1, y2 - y1);
    const text = `${p.id} ${p.action ? p.action.label : ""}`;
    const top = dy + y1 >= 16 ? dy + y1 - 16 : dy + y1;  // above the box, or inside it at the top edge
    ctx.fillRect(dx + x1, top, ctx.measureText(text).width + 6, 16);
    ctx.fillStyle = "#000"; ctx.fillText(text, dx + x1 + 3, top + 12);
  }
}

function drawTimeline() {
  const bar = $("timeline");
  bar.querySelectorAll(".segment, .event").forEach((el) => el.remove());
  const end = Math.max(duration, ...segments.map((s) => s.end), ...spotted.map((e) => e.time), 1);
  const lanes = [];  // each lane's last end: a segment takes the first lane free at its start
  for (const s of [...segments].sort((a, b) => a.start - b.start)) {
    let lane = lanes.findIndex((last) => last <= s.start);
    if (lane < 0) { lane = lanes.length; lanes.push(0); }
    lanes[lane] = s.end;
    const el = document.createElement("button");
    el.type = "button";
    el.className = "segment";
    el.style.left = `${(100 * s.start) / end}%`;
    el.style.width = `${Math.max((100 * (s.end - s.start)) / end, 0.5)}%`;
    el.style.background = colour(s.label);
    el.style.top = `${0.3 + 2.1 * lane}em`;
    el.textContent = (s.track != null ? `#${s.track} ` : "") + s.label;
    el.title = `${el.textContent}: ${s.start}-${s.end} s, peak ${s.peak}`;
    el.onclick = () => { if ($("video").src) { $("video").currentTime = s.start; $("video").play(); } };
    bar.appendChild(el);
  }
  for (const e of spotted) {  // an event is a moment: a mark at its time, its label beside it
    const el = document.createElement("button");
    el.type = "button";
    el.className = "event";
    el.style.left = `${(100 * e.time) / end}%`;
    el.style.borderColor = colour(e.label);
    el.textContent = e.label;
    el.title = `${e.label} at ${e.time} s (${e.confidence.toFixed(2)})`;
    el.onclick = () => { if ($("video").src) { $("video").currentTime = Math.max(0, e.time - 2); $("video").play(); } };
    bar.appendChild(el);
  }
  bar.style.height = `${Math.max(lanes.length, 1) * 2.1 + 0.3}em`;
}

function showResult(result) {
  $("final").hidden = false;
  const list = $("final-list");
  list.innerHTML = "";
  const rows = result.overall || result.predictions || [...(result.people || [])].sort((a, b) => b.looks - a.looks).map((p) => ({ label: `person ${p.id} (${p.first.toFixed(1)}-${p.last.toFixed(1)} s, seen ${p.seen.toFixed(1)} s): ${p.action ? p.action.label : "no action"}`, score: p.action ? p.action.score : 0 }))
    .concat(result.segments && !result.predictions && !result.people ? result.segments.map((s) => ({ label: `${s.label} ${s.start}-${s.end} s`, score: s.peak })) : [])
    .concat(typeof result.events === "number" ? spotted.map((e) => ({ label: `${e.label} at ${e.time} s`, score: e.confidence })) : []);
  for (const p of rows) {
    const li = document.createElement("li");
    li.textContent = `${p.label} ${p.score.toFixed(2)}`;
    list.appendChild(li);
  }
  $("files").innerHTML = "";
  for (const [name, file] of Object.entries(result.files || {})) {
    const a = document.createElement("a");
    a.href = "#"; a.textContent = `${name} (${file}) `;
    a.onclick = async (e) => {
      e.preventDefault();
      const response = await fetch(`/v1/jobs/${job.id}/files/${file}`, { headers: headers() });
      window.open(URL.createObjectURL(await response.blob()));
    };
    $("files").appendChild(a);
  }
  if (result.time) duration = Math.max(duration, result.time);
  drawTimeline();
}

function handle(type, event) {
  if (type === "topk") topk.push(event);
  else if (type === "people") people.push(event);
  else if (type === "segment") { segments.push(event); drawTimeline(); }
  else if (type === "event") { spotted.push(event); drawTimeline(); $("status").textContent = `${spotted.length} events`; }
  else if (type === "result") showResult(event);
  else if (type === "end") {
    $("status").textContent = `job ${event.status}`;
    if (event.error) showError(event.error);
    $("cancel").disabled = true; $("start").disabled = false;
  }
  if (type === "topk" || type === "people") $("status").textContent = `analysed ${event.time.toFixed(1)} s`;
  render();
}

async function follow(id, abort) {  // Server-Sent Events over fetch
  const response = await fetch(`/v1/jobs/${id}/events`, { headers: headers(), signal: abort.signal });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
      let type = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) type = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) handle(type, JSON.parse(data));
    }
  }
}

async function start(e) {
  e.preventDefault();
  showError("");
  if ($("token").value) localStorage.setItem("vidrec-token", $("token").value);
  const file = $("file").files[0], source = $("source").value.trim();
  if (!file && !source) { showError("Choose a video file or paste a stream URL."); return; }
  topk = []; people = []; segments = []; spotted = []; duration = 0;
  $("final").hidden = true; drawTimeline();
  const video = $("video");
  if (file) { video.src = URL.createObjectURL(file); } else { video.removeAttribute("src"); video.load(); }
  const form = new FormData();
  form.append("kind", $("kind").value);
  if ($("model").value) form.append("model", $("model").value);
  if (file) form.append("file", file); else form.append("source", source);
  if ($("kind").value === "highlights") form.append("labels", $("labels").value);
  if ($("kind").value === "stream") {  // the page's live view: what happens now, twice a second
    form.append("every", "0.5"); form.append("window", "2");
  }
  $("start").disabled = true; $("status").textContent = "uploading...";
  const response = await fetch("/v1/jobs", { method: "POST", body: form, headers: headers() });
  if (!response.ok) {
    showError(`${response.status}: ${await detail(response)}`);
    $("start").disabled = false; $("status").textContent = "";
    return;
  }
  const created = await response.json();
  job = { id: created.id, abort: new AbortController() };
  $("status").textContent = `job ${created.id} ${created.status}`;
  $("cancel").disabled = false;
  if (file) video.play().catch(() => {});
  follow(job.id, job.abort).catch((err) => { if (err.name !== "AbortError") showError(String(err)); });
}

$("form").addEventListener("submit", start);
$("cancel").addEventListener("click", async () => {
  if (!job) return;
  await fetch(`/v1/jobs/${job.id}`, { method: "DELETE", headers: headers() });
});
$("kind").addEventListener("change", () => { $("labels-box").hidden = $("kind").value !== "highlights"; });
$("video").addEventListener("timeupdate", render);
$("video").addEventListener("loadedmetadata", () => { duration = $("video").duration || duration; drawTimeline(); render(); });
window.addEventListener("resize", render);
loadModels().catch((err) => showError(String(err)));
