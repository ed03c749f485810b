// The imgsearch page. It speaks only the JSON API (the imgsearch.v1 messages
// in protobuf's JSON mapping) and learns what the server offers from
// /v1/capabilities, so it works against older and newer gateways alike.
// Every text from the server goes in with textContent, never as HTML.

const $ = (sel) => document.querySelector(sel);
const PAGE = 24;
const RERANK_CANDIDATES = 96; // re-ranked pages come from this many best hits
const KEY_STORE = "imgsearch.key";

const state = {
  caps: null,
  key: sessionStorage.getItem(KEY_STORE) || "",
  query: null, // {text}|{image, preview}|{pointId, label}
  offset: 0,
  pageToken: "",
  done: true,
  loading: false,
  seq: 0, // a newer search makes older answers stale
  shown: 0,
  fieldOf: [], // filter condition index -> form field name, for error messages
  blobs: [],
};

// ---- talking to the gateway -----------------------------------------------------------
class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status; // HTTP status
    this.code = code; // gRPC code name
  }
}

function headers(json) {
  const h = {};
  if (json) h["content-type"] = "application/json";
  if (state.key) h.authorization = "Bearer " + state.key;
  return h;
}

async function call(path, body) {
  let response;
  try {
    response = await fetch(path, body === undefined
      ? { headers: headers(false) }
      : { method: "POST", headers: headers(true), body: JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, "NETWORK", "the server cannot be reached");
  }
  if (response.ok) return response;
  let code = "UNKNOWN", message = response.statusText;
  try {
    const err = await response.json();
    code = err.status || code;
    message = err.message || message;
  } catch (e) { /* not our JSON: keep the HTTP status text */ }
  throw new ApiError(response.status, code, message);
}

const callJson = async (path, body) => (await call(path, body)).json();

async function blobUrl(path) {
  const url = URL.createObjectURL(await (await call(path)).blob());
  state.blobs.push(url);
  return url;
}

// Values of a payload map are imgsearch.v1.Value messages: one kind set.
function plain(value) {
  if (!value || typeof value !== "object") return value;
  if ("stringListValue" in value) return (value.stringListValue.values || []).join(", ");
  if ("geoValue" in value) return `${value.geoValue.lat}, ${value.geoValue.lon}`;
  const kinds = Object.keys(value);
  return kinds.length ? value[kinds[0]] : "";
}

// ---- errors a person understands ------------------------------------------------------
function explain(err) {
  switch (err.code) {
    case "UNAVAILABLE": return ["The embedder is not reachable right now. Try again in a moment.", err.message];
    case "DEADLINE_EXCEEDED": return ["The search took too long. Try again, or narrow it with filters.", err.message];
    case "UNAUTHENTICATED": return ["Your API key was not accepted.", err.message];
    case "PERMISSION_DENIED": return ["This key may not do that.", err.message];
    case "RESOURCE_EXHAUSTED": return ["Too much at once: the image is too large or the server is busy.", err.message];
    case "NOT_FOUND": return ["That image is not in the index (any more).", err.message];
    case "FAILED_PRECONDITION": return ["The index cannot answer this search.", err.message];
    case "INVALID_ARGUMENT": return ["The search could not run: " + err.message, ""];
    case "NETWORK": return ["The server cannot be reached. Is it still running?", ""];
    default: return ["Something went wrong on the server; its log has the details.", err.message];
  }
}

function showProblem(err) {
  const box = $("#problem");
  box.replaceChildren();
  if (!err) { box.hidden = true; return; }
  const [summary, detail] = explain(err);
  const p = document.createElement("p");
  p.textContent = summary;
  box.append(p);
  if (detail) {
    const d = document.createElement("small");
    d.textContent = detail;
    box.append(d);
  }
  box.dataset.code = err.code;
  box.hidden = false;
}

// A bad filter names its condition ("must[2] (...): ..."): show it beside its field.
function markFilterError(err) {
  const m = /must\[(\d+)\]/.exec(err.message || "");
  const field = m && state.fieldOf[Number(m[1])];
  if (!field) return false;
  // "must[1] (geo radius on 'location'): latitude 95 outside ..." -> the reason.
  fieldError(field, err.message.replace(/^must\[\d+\]\s*(\([^)]*\):\s*)?/, ""));
  return true;
}

function fieldError(field, message) {
  const holder = document.querySelector(`[data-field="${field}"]`);
  holder.classList.add("bad");
  holder.querySelector(".err").textContent = message;
  $("#filters").hidden = false;
  $("#toggle-filters").setAttribute("aria-expanded", "true");
}

function clearFieldErrors() {
  for (const el of document.querySelectorAll("[data-field]")) {
    el.classList.remove("bad");
    el.querySelector(".err").textContent = "";
  }
}

// ---- filters: the same conditions as the CLI's --filter ---------------------------------
class FilterProblem extends Error {
  constructor(field, message) { super(message); this.field = field; }
}

function utc(local) { return local ? (local.length === 16 ? local + ":00Z" : local + "Z") : ""; }

function buildFilter() {
  const must = [], fieldOf = [];
  const add = (field, condition) => { must.push(condition); fieldOf.push(field); };
  const val = (id) => $(id).value.trim();
  const list = (text) => text.split(",").map((s) => s.trim()).filter(Boolean);

  const cameras = list(val("#f-camera"));
  if (cameras.length) {
    const ints = cameras.every((c) => /^-?\d+$/.test(c)); // as the CLI: 7 is an integer
    if (cameras.length === 1) {
      add("camera", { match: ints ? { key: "camera_id", integer: cameras[0] } : { key: "camera_id", keyword: cameras[0] } });
    } else {
      add("camera", { matchAny: ints ? { key: "camera_id", integers: cameras } : { key: "camera_id", keywords: cameras } });
    }
  }
  const from = utc(val("#f-from")), to = utc(val("#f-to"));
  if (from) add("from", { datetimeRange: { key: "timestamp", gte: from } });
  if (to) add("to", { datetimeRange: { key: "timestamp", lte: to } });
  const tags = list(val("#f-tags"));
  if (tags.length) add("tags", { matchAny: { key: "tags", keywords: tags } });
  const lat = val("#f-lat"), lon = val("#f-lon"), radius = val("#f-radius");
  if (lat || lon || radius) {
    const nums = [lat, lon, radius].map(Number);
    if (!lat || !lon || !radius || nums.some((n) => !Number.isFinite(n))) {
      throw new FilterProblem("place", "give latitude, longitude and a radius in km, as numbers");
    }
    add("place", { geoRadius: { key: "location", center: { lat: nums[0], lon: nums[1] }, radiusM: nums[2] * 1000 } });
  }
  const caption = val("#f-caption");
  if (caption) add("caption", { text: { key: "caption", text: caption } });
  state.fieldOf = fieldOf;
  return must.length ? { must } : null;
}

// ---- searching ----------------------------------------------------------------------------
function supports(field) { return state.caps.searchRequestFields.includes(field); }

function request() {
  const q = state.query;
  const body = { k: PAGE, mode: q.text !== undefined ? $("#mode").value : "SEARCH_MODE_VECTOR" };
  if (q.text !== undefined) body.text = q.text;
  else if (q.image !== undefined) body.image = q.image;
  else body.pointId = q.pointId;
  const filter = buildFilter();
  if (filter) body.filter = filter;
  if (rerankOn() && q.text !== undefined) body.rerank = { enabled: true, candidates: RERANK_CANDIDATES };
  const view = $("#view").value;
  if (view.startsWith("time-") && supports("order")) {
    body.order = view === "time-asc" ? "SEARCH_ORDER_TIME_ASC" : "SEARCH_ORDER_TIME_DESC";
  } else if (view.startsWith("group-") && supports("group")) {
    body.group = { by: view.slice("group-".length) };
    body.mode = "SEARCH_MODE_VECTOR"; // events are grouped from vector hits
  } else if (supports("pageToken") && !body.rerank) {
    body.order = "SEARCH_ORDER_RELEVANCE"; // asks for a cursor instead of offsets
  }
  // A cursor continues the very same request; offsets are for older gateways.
  if (state.pageToken) body.pageToken = state.pageToken;
  else if (state.offset) body.offset = state.offset;
  return body;
}

function rerankOn() {
  return Boolean(state.caps.rerank && supports("rerank") && $("#rerank").checked);
}

async function search(query) {
  state.query = query;
  state.offset = 0;
  state.pageToken = "";
  state.done = false;
  state.shown = 0;
  state.seq += 1; // an answer still on its way to an older search is dropped
  state.loading = false;
  for (const url of state.blobs) URL.revokeObjectURL(url);
  state.blobs = [];
  $("#results").replaceChildren();
  $("#empty").hidden = true;
  showProblem(null);
  clearFieldErrors();
  syncUrl();
  await more();
}

async function more() {
  if (state.loading || state.done || !state.query) return;
  const seq = state.seq;
  let body;
  try {
    body = request();
  } catch (e) {
    if (e instanceof FilterProblem) { fieldError(e.field, e.message); state.done = true; return; }
    throw e;
  }
  state.loading = true;
  $("#status").textContent = state.shown ? "loading more…" : "searching…";
  try {
    const answer = await callJson("/v1/search", body);
    if (seq !== state.seq) return;
    const hits = answer.hits || [];
    const groups = answer.groups || [];
    if (groups.length) renderGroups(hits, groups); else renderHits(hits);
    state.offset += PAGE;
    state.pageToken = answer.nextPageToken || "";
    // With a cursor the server says when it is done; with offsets, a short page does.
    state.done = body.order || body.group || body.pageToken ? !state.pageToken : hits.length < PAGE;
    if (body.rerank) state.done = state.done || state.offset + PAGE > RERANK_CANDIDATES;
    state.shown += hits.length;
    $("#status").textContent = describe(answer, groups.length > 0);
    if (!state.shown) $("#status").textContent = "No images match." + (body.filter ? " Try fewer filters." : "");
  } catch (e) {
    if (seq !== state.seq) return;
    state.done = true;
    $("#status").textContent = "";
    if (e.code === "UNAUTHENTICATED") { askKey("That key was not accepted."); }
    if (!(e.code === "INVALID_ARGUMENT" && markFilterError(e))) showProblem(e);
  } finally {
    if (seq === state.seq) state.loading = false;
    $("#more").hidden = state.done;
  }
  if (!state.done && nearBottom()) more();
}

function describe(answer, grouped) {
  const q = state.query;
  const what = q.text !== undefined ? `“${q.text}”` : q.image !== undefined ? "this image" : `more like ${q.label || "this"}`;
  const unit = grouped ? "event" : "result";
  let line = `${state.shown} ${unit}${state.shown === 1 ? "" : "s"} for ${what}${state.done ? "" : " (scroll for more)"} · ${answer.model || ""}`;
  if (answer.reranked) line += ` · re-ranked by ${answer.rerankModel}`;
  if (answer.rerankNote) line += ` · ${answer.rerankNote}`;
  return line;
}

function nearBottom() {
  return $("#sentinel").getBoundingClientRect().top < window.innerHeight + 400;
}

// ---- results --------------------------------------------------------------------------------
function card(hit, extra) {
  const el = document.createElement("article");
  el.className = "card";
  el.tabIndex = 0;
  el.dataset.id = hit.id;
  el.dataset.score = hit.score;
  el.setAttribute("role", "button");
  const img = document.createElement("img");
  img.alt = hit.caption || "image";
  img.decoding = "async";
  thumbnail(img, hit.id);
  const caption = document.createElement("p");
  caption.className = "caption";
  caption.textContent = hit.caption || (hit.payload && plain(hit.payload.caption_pending) ? "(caption pending)" : "");
  const meta = document.createElement("p");
  meta.className = "meta";
  const score = document.createElement("span");
  score.className = "score";
  score.textContent = Number(hit.score).toFixed(3);
  if (hit.rerankScore !== undefined && hit.rerankScore !== null) {
    score.textContent += ` · match ${Number(hit.rerankScore).toFixed(2)}`;
    score.title = "vector score · image-text match probability (re-rank)";
  }
  const when = document.createElement("span");
  when.textContent = shortTime(hit.payload && plain(hit.payload.timestamp));
  meta.append(score, when);
  el.append(img, caption, meta);
  if (extra) el.append(extra);
  el.addEventListener("click", () => openDetail(hit));
  el.addEventListener("keydown", (e) => {
    if (e.key !== "Enter") return;
    e.preventDefault(); // else the same Enter would press the dialog's close button
    openDetail(hit);
  });
  el.hit = hit;
  return el;
}

async function thumbnail(img, id) {
  try {
    img.src = await blobUrl(`/v1/thumbnails/${encodeURIComponent(id)}`);
  } catch (e) {
    img.classList.add("missing");
    img.alt = "no thumbnail";
  }
}

function shortTime(stamp) {
  if (!stamp) return "";
  return String(stamp).replace("T", " ").replace(/(:\d\d)(\.\d+)?Z$/, "$1Z").slice(0, 16);
}

function renderHits(hits) {
  $("#results").append(...hits.map((h) => card(h)));
}

// One card per group (event): its best hit, the group's size and time span.
// hits[i] is the best hit of groups[i] (gateway.proto, SearchResponse.groups).
function renderGroups(hits, groups) {
  groups.forEach((g, i) => {
    if (!hits[i]) return;
    const info = document.createElement("p");
    info.className = "group";
    const size = Number(g.size || (g.hitIds || []).length || 1);
    // Which group: the camera's id, else the best hit's file name (a video's
    // key is a sha256, a near-duplicate cluster's its representative's id).
    const which = $("#view").value === "group-camera" ? g.key : (hits[i].uri || "").split("/").pop();
    const span = g.start && g.end && g.end !== g.start ? ` · ${shortTime(g.start)} – ${shortTime(g.end)}` : "";
    info.textContent = `${size} image${size === 1 ? "" : "s"}${which ? " · " + which : ""}${span}`;
    const el = card(hits[i], info);
    el.classList.add("grouped");
    el.dataset.groupSize = size;
    $("#results").append(el);
  });
}

// ---- the detail view ----------------------------------------------------------------------
const VIDEO_OFFSET_KEYS = ["frame_offset_s"]; // set by the gateway on video frames

async function openDetail(hit) {
  const dlg = $("#detail");
  dlg.dataset.id = hit.id;
  $("#detail-title").textContent = hit.caption || hit.uri;
  const img = $("#detail-img");
  img.removeAttribute("src");
  img.alt = hit.caption || "image";
  const meta = $("#detail-meta");
  meta.replaceChildren();
  const rows = [["id", hit.id], ["score", Number(hit.score).toFixed(4)], ["file", hit.uri]];
  for (const [k, v] of Object.entries(hit.payload || {}).sort()) rows.push([k, plain(v)]);
  for (const [k, v] of rows) {
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = k;
    dd.textContent = String(v);
    meta.append(dt, dd);
  }
  const offsetKey = VIDEO_OFFSET_KEYS.find((k) => hit.payload && k in hit.payload);
  $("#detail-video").hidden = !offsetKey;
  if (!dlg.open) dlg.showModal();
  const frame = $("#detail-frame");
  frame.hidden = true;
  frame.removeAttribute("src");
  img.hidden = false;
  if (offsetKey) {
    // A video frame: the thumbnail at once, then the video itself paused at
    // that second when the server may serve the file (range requests keep
    // that cheap; with keys the file must come through fetch, so only the link).
    const seconds = Number(plain(hit.payload[offsetKey]));
    $("#detail-video-link span").textContent = `${seconds.toFixed(1)} s`;
    img.src = await blobUrl(`/v1/thumbnails/${encodeURIComponent(hit.id)}`).catch(() => "");
    media(`/v1/points/${encodeURIComponent(hit.id)}/original`).then((url) => {
      $("#detail-video-link").href = `${url}#t=${seconds}`;
      if (!state.caps.authRequired && dlg.dataset.id === hit.id) {
        frame.src = `${url}#t=${seconds}`;
        frame.hidden = false;
        img.hidden = true;
      }
    }).catch(() => { $("#detail-video").hidden = true; });
    return;
  }
  // The original when the server can read it, else the thumbnail.
  try {
    img.src = await blobUrl(`/v1/points/${encodeURIComponent(hit.id)}/original`);
  } catch (e) {
    img.src = await blobUrl(`/v1/thumbnails/${encodeURIComponent(hit.id)}`).catch(() => "");
  }
}

// Without keys the browser can fetch the file itself (range requests for a
// long video); with keys it must carry the header, so it is fetched here.
async function media(path) {
  if (state.caps.authRequired) return blobUrl(path);
  const r = await fetch(path, { method: "HEAD" });
  if (!r.ok) throw new ApiError(r.status, "NOT_FOUND", "the original is not served");
  return path;
}

function moreLikeThis() {
  const dlg = $("#detail");
  const id = dlg.dataset.id;
  dlg.close();
  $("#q").value = "";
  clearImage();
  search({ pointId: id, label: id.slice(0, 8) });
}

// ---- search by image --------------------------------------------------------------------------
async function searchByImage(file) {
  if (!file || !file.type.startsWith("image/")) {
    showProblem(new ApiError(400, "INVALID_ARGUMENT", "that is not an image file"));
    return;
  }
  const bytes = new Uint8Array(await file.arrayBuffer());
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  const preview = URL.createObjectURL(file);
  $("#imagechip-img").src = preview;
  $("#imagechip").hidden = false;
  $("#q").value = "";
  search({ image: btoa(binary) });
}

function clearImage() {
  $("#imagechip").hidden = true;
  $("#imagechip-img").removeAttribute("src");
}

// ---- keyboard: / focuses the box, arrows walk the grid, Enter opens ---------------------------
function moveFocus(key) {
  const cards = [...document.querySelectorAll("#results .card")];
  const i = cards.indexOf(document.activeElement);
  if (i < 0) { if (cards.length) cards[0].focus(); return; }
  const top = cards[i].offsetTop;
  const perRow = cards.filter((c) => c.offsetTop === cards[0].offsetTop).length || 1;
  const step = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -perRow, ArrowDown: perRow }[key];
  const next = cards[Math.max(0, Math.min(cards.length - 1, i + step))];
  next.focus();
  next.scrollIntoView({ block: "nearest" });
  if (next === cards[cards.length - 1] || top !== next.offsetTop) more();
}

function onKey(e) {
  const typing = e.target.closest("input, select, textarea");
  if (e.key === "/" && !typing && !$("#detail").open) {
    e.preventDefault();
    $("#q").focus();
    $("#q").select();
  } else if (e.key.startsWith("Arrow") && !typing && !$("#detail").open && $("#results .card")) {
    e.preventDefault();
    moveFocus(e.key);
  } else if (e.key === "ArrowDown" && e.target === $("#q")) {
    e.preventDefault();
    moveFocus(e.key);
  }
}

// ---- the API key --------------------------------------------------------------------------------
function askKey(message) {
  $("#key-error").textContent = message || "";
  const dlg = $("#keydlg");
  if (!dlg.open) dlg.showModal();
  $("#key").focus();
}

async function submitKey(e) {
  e.preventDefault();
  state.key = $("#key").value.trim();
  try {
    await loadStats();
  } catch (err) {
    state.key = "";
    $("#key-error").textContent = err.code === "UNAUTHENTICATED" ? "That key was not accepted." : explain(err)[0];
    return;
  }
  sessionStorage.setItem(KEY_STORE, state.key);
  $("#keydlg").close();
  $("#signout").hidden = false;
  startFromUrl();
}

async function loadStats() {
  const s = await callJson("/v1/stats");
  $("#stats").textContent = `${Number(s.count)} images · ${s.model}`;
}

// ---- the address bar keeps the text query, so a search can be shared or reloaded --------------
function syncUrl() {
  const url = new URL(location.href);
  if (state.query.text !== undefined) url.searchParams.set("q", state.query.text);
  else url.searchParams.delete("q");
  history.replaceState(null, "", url);
}

function startFromUrl() {
  const q = new URL(location.href).searchParams.get("q");
  if (q) { $("#q").value = q; search({ text: q }); } else { $("#empty").hidden = false; }
}

// ---- wiring -------------------------------------------------------------------------------------
function wire() {
  $("#search").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("#q").value.trim();
    if (text) { clearImage(); search({ text }); return; }
    if (state.query) search(state.query); // filters or mode changed: same query again
    else $("#q").focus();
  });
  $("#toggle-filters").addEventListener("click", () => {
    const f = $("#filters");
    f.hidden = !f.hidden;
    $("#toggle-filters").setAttribute("aria-expanded", String(!f.hidden));
  });
  $("#clear-filters").addEventListener("click", () => {
    for (const input of $("#filters").querySelectorAll("input")) input.value = "";
    clearFieldErrors();
    if (state.query) search(state.query);
  });
  for (const id of ["#mode", "#view", "#rerank"]) {
    $(id).addEventListener("change", () => { if (state.query) search(state.query); });
  }
  $("#file").addEventListener("change", (e) => searchByImage(e.target.files[0]));
  $("#imagechip-clear").addEventListener("click", () => { clearImage(); state.query = null; $("#results").replaceChildren(); });
  $("#detail-more").addEventListener("click", moreLikeThis);
  $("#more").addEventListener("click", () => more());
  $("#keyform").addEventListener("submit", submitKey);
  $("#keydlg").addEventListener("cancel", (e) => e.preventDefault()); // no key, no page
  $("#signout").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORE);
    state.key = "";
    location.reload();
  });
  document.addEventListener("keydown", onKey);
  document.addEventListener("paste", (e) => {
    const file = [...(e.clipboardData?.files || [])].find((f) => f.type.startsWith("image/"));
    if (file) { e.preventDefault(); searchByImage(file); }
  });
  let depth = 0;
  document.addEventListener("dragenter", (e) => { e.preventDefault(); depth += 1; $("#dropveil").hidden = false; });
  document.addEventListener("dragleave", () => { depth -= 1; if (depth <= 0) { depth = 0; $("#dropveil").hidden = true; } });
  document.addEventListener("dragover", (e) => e.preventDefault());
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    depth = 0;
    $("#dropveil").hidden = true;
    searchByImage(e.dataTransfer.files[0]);
  });
  new IntersectionObserver((entries) => {
    if (entries.some((en) => en.isIntersecting)) more();
  }, { rootMargin: "400px" }).observe($("#sentinel"));
}

async function main() {
  wire();
  try {
    state.caps = await callJson("/v1/capabilities");
  } catch (e) {
    showProblem(e);
    return;
  }
  $("#rerank-wrap").hidden = !(state.caps.rerank && supports("rerank"));
  $("#view-wrap").hidden = !(supports("order") || supports("group"));
  for (const opt of $("#view").options) {
    if (opt.value.startsWith("time-")) opt.hidden = opt.disabled = !supports("order");
    if (opt.value.startsWith("group-")) opt.hidden = opt.disabled = !supports("group");
  }
  if (state.caps.authRequired && !state.key) { askKey(); return; }
  $("#signout").hidden = !state.caps.authRequired;
  try {
    await loadStats();
  } catch (e) {
    if (e.code === "UNAUTHENTICATED") { state.key = ""; askKey("That key was not accepted."); return; }
    showProblem(e);
  }
  startFromUrl();
}

main();
