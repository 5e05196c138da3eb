// Browser DICOM viewer: the body of a gr.HTML js_on_load (element, props, server, watch are Gradio's).
// The page gets the case's stack list in props.value (JSON); each frame's values come once from server.frame
// (studyapp.dicom.browser.frame_payload) and are windowed here on a canvas, with the same arithmetic as
// studyapp.dicom.display (PS3.3 C.11.2 VOI LUT Functions, MONOCHROME1 / INVERSE after the VOI).
// Mouse: left-drag window/level (right = wider, down = higher center), wheel slice, right/middle-drag pan,
// ctrl-wheel zoom, double-click fit. Keys (viewer focused): 1-5 presets, I invert, R reset, arrows slice,
// M ruler, F findings. Ruler tool: left-drag measures in mm from the spacing the server names, else in pixels.
// Hanging protocol (props.value.stacks: every series, then coronal and sagittal reformats of CT series): with
// several stacks the stage shows them side by side as tiles labelled with the series and the study date; the
// selected tile is the live viewport (window/level, wheel, ...), the wheel on another tile moves through it, a click
// (or Enter on it) enlarges a tile to the whole stage; Enter, Escape or the Tiles button goes back.
// Findings (props.value.findings, only sent to readers of an arm that shows them): boxes and masks drawn over
// the image, listed by their sentence; clicking a sentence shows its image and highlights its box or mask.
const root = element.querySelector(".sv-root");
root.innerHTML = `<div class="sv-bar"><select class="sv-series" aria-label="Series"></select>
  <span class="sv-presets"></span><button class="sv-invert" aria-pressed="false" title="I">Invert</button>
  <button class="sv-ruler" aria-pressed="false" title="M">Ruler</button><button class="sv-reset" title="R">Reset</button>
  <button class="sv-layout" aria-pressed="false" title="Enter" hidden>Tiles</button>
  <button class="sv-show-findings" aria-pressed="true" title="F" hidden>Findings</button>
  <span class="sv-progress" hidden><progress></progress> <span></span></span>
  <span class="sv-help">drag W/L · wheel slice · right-drag pan · ctrl-wheel zoom · dbl-click fit</span></div>
  <div class="sv-stage"><div class="sv-cell sv-main"><canvas class="sv-canvas"></canvas><canvas class="sv-overlay"></canvas>
  <div class="sv-info"></div><div class="sv-label"></div><div class="sv-message" role="status"></div></div></div>
  <div class="sv-status" role="status"><span class="sv-notes"></span><span class="sv-notice"></span><span class="sv-measure"></span>
  <span class="sv-renderer"></span></div>
  <ol class="sv-findings" hidden></ol>`;
const $ = (selector) => root.querySelector(selector);
let canvas = $(".sv-canvas"); // the image (WebGL2, else canvas 2D)
const overlay = $(".sv-overlay"); // ruler and text on top; takes the pointer
const context = overlay.getContext("2d");
let renderer = null;
let rendererNote = "";
try {
  renderer = createGLRenderer(canvas);
} catch (error) {
  console.info(`study viewer: ${error.message}`); // the rasteriser's full name (a long ANGLE string), off the image
  rendererNote = `WebGL2 not used: ${error.message.replace(/ \(.*\)$/, "")}; `;
}
if (!renderer) {
  if (!rendererNote) rendererNote = "no WebGL2 in this browser; ";
  const fresh = document.createElement("canvas"); // a canvas that had a WebGL context cannot give a 2D one
  fresh.className = "sv-canvas";
  canvas.replaceWith(fresh);
  canvas = fresh;
  renderer = create2DRenderer(canvas);
  rendererNote += "drawing with canvas 2D (slower window/level)";
}

const state = { manifest: { case: null, stacks: [], findings: [] }, highlight: null, showFindings: true,
  layout: "single", tileSlices: [], seriesLoading: new Set(),
  stack: 0, slice: 0, frame: null, window: null, invert: false,
  zoom: 1, panX: 0, panY: 0, ruler: null, rulerMode: false, status: "empty", error: "", loadedAt: 0 };
const frames = new Map(); // "stack:slice" -> decoded frame, or a Promise of it
const views = new Map(); // case id -> the view the reader left it at (this page only)
// latencies: input event -> its frame painted; work: the viewer taking the event up (its redraw scheduled) -> painted
const stats = { lastLatencyMs: null, latencies: [], stepLatencies: [], work: [], stepWork: [], firstImageAt: null,
  manifestAt: null, allLoadedAt: null, maxInFlight: 0, tileReadyAt: {} };
let pendingEventTime = null;
let drawScheduled = false;

// -- frames: binary bodies (studyapp.dicom.browser.pack) from the server function "pixels", a few requests in flight,
// each loading request up to BATCH slices ----------------------------------------------------------------------
// Body: uint32 LE header length N, N bytes of JSON, then 8-aligned little-endian arrays (typed arrays here use
// the platform's byte order, little-endian on every browser platform), viewed without copying.
const IN_FLIGHT = { axial: 4, reformat: 2 }; // requests at once per lane; a reformat waits for its volume
const waiting = new Map(); // "stack:slice" -> { stack, slice, lane, resolve, reject }
const inFlight = { axial: 0, reformat: 0 };
let generation = 0; // bumped when another case is shown: answers for the old one are dropped
const loaded = new Map(); // stack -> number of slices loaded (the progress shown)

function pixelsUrl() {
  const config = window.gradio_config || {};
  const component = (config.components || []).find((c) => ((c.props || {}).server_fns || []).includes("pixels"));
  if (!component) throw new Error("the page has no image server function");
  return [`${config.root || ""}${config.api_prefix || "/gradio_api"}/component_server/`, component.id];
}

function decodeBody(buffer) {
  const size = new DataView(buffer).getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, size)));
  const base = 4 + size;
  const types = { "|u1": Uint8Array, "<u2": Uint16Array, "<f8": Float64Array };
  const array = (name) => {
    const entry = header.arrays[name];
    return entry ? new types[entry.dtype](buffer, base + entry.offset, entry.length) : null;
  };
  const frame = { ...header, arrays: undefined, bytes: buffer.byteLength };
  if (header.kind === "colour") {
    frame.rgb = array("values");
    return frame;
  }
  frame.values = array("values");
  frame.modality = array("modality");
  frame.storedLut = array("stored_lut");
  frame.presetList = [["as stored", null], ...Object.entries(header.presets)];
  return frame;
}

async function post(body) {
  const [url, componentId] = pixelsUrl();
  const response = await fetch(url, { method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ data: body, component_id: componentId, fn_name: "pixels", session_hash: "study-viewer" }) });
  if (!response.ok) {
    let message = `the server answered ${response.status}`;
    try { const answer = await response.json(); message = answer.error || answer.detail || message; } catch (e) { /* */ }
    throw new Error(message);
  }
  return response.arrayBuffer();
}

async function requestFrame(caseId, stack, slice) {
  return decodeBody(await post({ case: caseId, stack, slice }));
}

// Several slices in one request (studyapp.dicom.browser.pack_batch): uint32 count, then per slice uint32 status,
// uint32 length and the body (8-byte padded); a slice that cannot be shown comes back as an Error of its own.
async function requestFrames(caseId, stack, slices) {
  const buffer = await post({ case: caseId, stack, slices });
  const view = new DataView(buffer);
  const out = [];
  for (let k = 0, at = 4; k < view.getUint32(0, true); k++) {
    const status = view.getUint32(at, true), size = view.getUint32(at + 4, true);
    const body = buffer.slice(at + 8, at + 8 + size); // its own buffer: the arrays stay 8-byte aligned
    if (status === 200) out.push(decodeBody(body));
    else {
      let message = `the server answered ${status}`;
      try { message = JSON.parse(new TextDecoder().decode(body)).error || message; } catch (e) { /* */ }
      out.push(new Error(message));
    }
    at += 8 + size + ((8 - (size % 8)) % 8);
  }
  return out;
}

const BATCH = 8; // slices per loading request once the slice on screen is in (studyapp.ui.viewer.BATCH)
function pump() { // start the waiting requests nearest the slice on screen, up to the lane's limit
  for (const lane of ["axial", "reformat"]) {
    // a reformat needs its whole series decoded on the server: asked for once the slices are in
    const axialLeft = inFlight.axial > 0 || [...waiting.values()].some((item) => item.lane === "axial");
    if (lane === "reformat" && axialLeft) break;
    while (inFlight[lane] < IN_FLIGHT[lane]) {
      let best = null, bestDistance = Infinity;
      for (const item of waiting.values()) {
        if (item.lane !== lane) continue;
        const distance = (item.stack === state.stack ? 0 : 1e6) + Math.abs(item.slice - state.slice);
        if (distance < bestDistance) { best = item; bestDistance = distance; }
      }
      if (!best) break;
      let group = [best]; // the slice on screen alone, so that it comes first; the others a few at a time
      if (lane === "axial" && bestDistance > 0) {
        const near = [...waiting.values()].filter((item) => item !== best && item.lane === "axial"
          && item.stack === best.stack).sort((a, b) => Math.abs(a.slice - state.slice) - Math.abs(b.slice - state.slice));
        group = group.concat(near.slice(0, BATCH - 1));
      }
      group.forEach((item) => waiting.delete(`${item.stack}:${item.slice}`));
      inFlight[lane]++;
      stats.maxInFlight = Math.max(stats.maxInFlight, inFlight.axial); // slice requests at once
      const mine = generation;
      const asked = group.length > 1 ? requestFrames(state.manifest.case, best.stack, group.map((item) => item.slice))
        : requestFrame(state.manifest.case, best.stack, best.slice).then((frame) => [frame]);
      const settle = (item, result) => {
        const key = `${item.stack}:${item.slice}`;
        if (result instanceof Error) {
          frames.delete(key); // asked again when the reader comes back to it
          item.reject(result);
          return;
        }
        frames.set(key, result);
        loaded.set(item.stack, (loaded.get(item.stack) || 0) + 1);
        item.resolve(result);
      };
      asked.then((results) => {
        if (mine !== generation) return;
        group.forEach((item, k) => settle(item, results[k]));
        showProgress();
      }, (error) => {
        if (mine !== generation) return;
        group.forEach((item) => settle(item, error));
      }).finally(() => { inFlight[lane]--; pump(); });
    }
  }
}

function fetchFrame(stack, slice) {
  const key = `${stack}:${slice}`;
  if (!frames.has(key)) {
    const item = { stack, slice, lane: state.manifest.stacks[stack].plane ? "reformat" : "axial" };
    const promise = new Promise((resolve, reject) => { item.resolve = resolve; item.reject = reject; });
    promise.catch(() => {}); // a prefetched slice that fails is shown when the reader goes there
    frames.set(key, promise);
    waiting.set(key, item);
    pump();
  }
  return Promise.resolve(frames.get(key));
}

function loadSeries(stack) { // every slice of an axial series, nearest the one on screen first (pump's order)
  const count = state.manifest.stacks[stack].slices;
  if (state.manifest.stacks[stack].plane) return;
  for (let s = 0; s < count; s++) fetchFrame(stack, s);
}

function showProgress() {
  const stack = state.manifest.stacks[state.stack];
  const progress = $(".sv-progress");
  if (!stack || stack.plane || stack.slices < 2) { progress.hidden = true; return; }
  const done = loaded.get(state.stack) || 0;
  progress.hidden = done >= stack.slices;
  progress.querySelector("progress").max = stack.slices;
  progress.querySelector("progress").value = done;
  progress.querySelector("span").textContent = `Loading ${done}/${stack.slices}`;
  root.dataset.loaded = String(done);
  if (done >= stack.slices && stats.allLoadedAt === null) stats.allLoadedAt = performance.now();
}

// Display value (0..255, before inversion) of one modality value x for window (c, w), as pydicom's
// apply_windowing followed by display.display_values' scaling of the VOI output range to 0..255.
function voi(x, c, w, fn) {
  if (fn === "SIGMOID") return 255 / (1 + Math.exp((-4 * (x - c)) / w));
  if (fn === "LINEAR") { c -= 0.5; w -= 1; }
  if (x <= c - w / 2) return 0;
  if (x > c + w / 2) return 255;
  return ((x - c) / w + 0.5) * 255;
}

function displayTable(frame) { // grey value per table index for the current window and inversion
  const n = frame.storedLut.length;
  const table = new Uint8Array(n);
  const invert = frame.invert !== state.invert; // file inversion, flipped by the reader's I
  for (let i = 0; i < n; i++) {
    let v;
    if (state.window === null) {
      v = state.invert ? 255 - frame.storedLut[i] : frame.storedLut[i];
    } else {
      v = voi(frame.modality[i], state.window[0], state.window[1], frame.voi_function);
      if (invert) v = 255 - v;
      v = Math.round(Math.min(255, Math.max(0, v)));
    }
    table[i] = v;
  }
  return table;
}

const BAND = 16; // CSS pixels kept free above and below the fitted image for the corner text (never on the image)
function fitScale() {
  const frame = state.frame;
  return Math.min(canvas.width / frame.columns, Math.max(1, canvas.height - 2 * BAND * devicePixelRatio) / frame.rows);
}

function transform() { // image pixel -> canvas pixel: x * s + ox
  const s = fitScale() * state.zoom;
  const ox = (canvas.width - state.frame.columns * s) / 2 + state.panX;
  const oy = (canvas.height - state.frame.rows * s) / 2 + state.panY;
  return { s, ox, oy };
}

function toImage(event) {
  const box = canvas.getBoundingClientRect();
  const ratio = canvas.width / box.width;
  const { s, ox, oy } = transform();
  return { x: ((event.clientX - box.left) * ratio - ox) / s, y: ((event.clientY - box.top) * ratio - oy) / s };
}

function rulerText() {
  const r = state.ruler;
  const dx = r.x1 - r.x0, dy = r.y1 - r.y0;
  const spacing = state.frame.spacing || {};
  if (!spacing.source) return `${Math.hypot(dx, dy).toFixed(1)} px (uncalibrated: no pixel spacing)`;
  const mm = Math.hypot(dx * spacing.column_mm, dy * spacing.row_mm);
  return `${mm.toFixed(1)} mm (${spacing.source})`;
}

const FINDING_COLOUR = "#22c55e";
const HIGHLIGHT_COLOUR = "#f43f5e";
const maskCanvases = new Map(); // "finding:slice index" -> canvas with the mask in colour

function maskCanvas(index, item, colour) {
  const key = `${index}:${item.stack}:${item.slice}:${colour}`;
  if (!maskCanvases.has(key)) {
    const finding = state.manifest.findings[index];
    const c = document.createElement("canvas");
    c.width = finding.columns;
    c.height = finding.rows;
    const g = c.getContext("2d");
    const data = g.createImageData(finding.columns, finding.rows);
    const pixels = new Uint32Array(data.data.buffer);
    const r = parseInt(colour.slice(1, 3), 16), gr = parseInt(colour.slice(3, 5), 16), b = parseInt(colour.slice(5, 7), 16);
    const on = (0xff << 24) | (b << 16) | (gr << 8) | r;
    let p = 0;
    item.rle.forEach((run, i) => {
      if (i % 2 === 1) pixels.fill(on, p, p + run);
      p += run;
    });
    g.putImageData(data, 0, 0);
    maskCanvases.set(key, c);
  }
  return maskCanvases.get(key);
}

// Findings on the image on screen, with the problems that keep some from being drawn.
function drawFindings(s, ox, oy) {
  const problems = [];
  const frame = state.frame;
  (state.manifest.findings || []).forEach((finding, index) => {
    const colour = index === state.highlight ? HIGHLIGHT_COLOUR : FINDING_COLOUR;
    if (finding.kind === "box") {
      if (finding.stack !== state.stack || finding.slice !== state.slice) return;
      const [x0, y0, x1, y1] = finding.xyxy;
      context.strokeStyle = colour;
      context.lineWidth = (index === state.highlight ? 3 : 2) * devicePixelRatio;
      context.strokeRect(x0 * frame.columns * s + ox, y0 * frame.rows * s + oy,
        (x1 - x0) * frame.columns * s, (y1 - y0) * frame.rows * s);
      return;
    }
    const item = finding.slices.find((m) => m.stack === state.stack && m.slice === state.slice);
    if (!item) return;
    if (finding.rows !== frame.rows || finding.columns !== frame.columns) {
      problems.push(`Finding ${index + 1}: its mask grid (${finding.columns} x ${finding.rows}) does not match ` +
        `the image (${frame.columns} x ${frame.rows}); not drawn.`);
      return;
    }
    context.save();
    context.globalAlpha = index === state.highlight ? 0.55 : 0.3;
    context.imageSmoothingEnabled = false;
    context.setTransform(s, 0, 0, s, ox, oy);
    context.drawImage(maskCanvas(index, item, colour), 0, 0);
    context.restore();
  });
  setText($(".sv-notice"), problems.join(" "));
}

function showFindingList() {
  const list = $(".sv-findings");
  const items = state.manifest.findings || [];
  list.textContent = "";
  list.hidden = items.length === 0;
  $(".sv-show-findings").hidden = items.length === 0;
  items.forEach((finding, index) => {
    const entry = document.createElement("li");
    const button = document.createElement("button");
    button.className = "sv-finding";
    button.textContent = finding.sentence;
    button.title = finding.kind === "box" ? "box" : "mask";
    button.addEventListener("click", () => highlight(index));
    entry.appendChild(button);
    list.appendChild(entry);
  });
}

function highlight(index) {
  const finding = state.manifest.findings[index];
  state.highlight = index;
  state.showFindings = true;
  const at = finding.kind === "box" ? finding : finding.slices[0];
  $(".sv-findings").querySelectorAll(".sv-finding").forEach((b, i) => b.setAttribute("aria-current", String(i === index)));
  if (at.stack !== state.stack || at.slice !== state.slice) showSlice(at.stack, at.slice);
  else schedule(false);
}

let overlayDrawn = null; // what the overlay canvas shows (findings, ruler, placement): redrawn only when it changes
function composite() { // the frame on screen, then the findings and the ruler
  const box = overlay.getBoundingClientRect();
  const width = Math.max(1, Math.round(box.width * devicePixelRatio));
  const height = Math.max(1, Math.round(box.height * devicePixelRatio));
  for (const c of [canvas, overlay]) {
    if (c.width !== width || c.height !== height) { c.width = width; c.height = height; overlayDrawn = null; }
  }
  if (!state.frame) {
    if (overlayDrawn !== "") context.clearRect(0, 0, overlay.width, overlay.height);
    overlayDrawn = "";
    renderer.clear();
    return;
  }
  const { s, ox, oy } = transform();
  renderer.draw(s, ox, oy, state.invert);
  const shown = JSON.stringify([s, ox, oy, state.manifest.case, state.stack, state.slice, state.frame.columns,
    state.frame.rows, state.highlight, state.showFindings, state.ruler, (state.manifest.findings || []).length]);
  if (shown === overlayDrawn) return; // a window/level step: the overlay stays as it is
  overlayDrawn = shown;
  context.clearRect(0, 0, overlay.width, overlay.height);
  if (state.showFindings) drawFindings(s, ox, oy);
  else setText($(".sv-notice"), "");
  if (state.ruler) {
    const r = state.ruler;
    context.strokeStyle = "#facc15";
    context.lineWidth = 2 * devicePixelRatio;
    context.beginPath();
    context.moveTo(r.x0 * s + ox, r.y0 * s + oy);
    context.lineTo(r.x1 * s + ox, r.y1 * s + oy);
    context.stroke();
    context.fillStyle = "#facc15";
    context.font = `${12 * devicePixelRatio}px system-ui, sans-serif`;
    const text = rulerText(), margin = 4 * devicePixelRatio;
    const width = context.measureText(text).width, height = 12 * devicePixelRatio;
    const x = Math.min(Math.max(margin, r.x1 * s + ox + 6), overlay.width - width - margin); // kept in the viewport
    const y = Math.min(Math.max(height + margin, r.y1 * s + oy - 6), overlay.height - margin);
    context.shadowColor = "#000";
    context.shadowBlur = 2 * devicePixelRatio;
    context.fillText(text, x, y);
    context.shadowBlur = 0;
  }
}

function stackLabel(index) {
  const date = state.manifest.study_date;
  return `${state.manifest.stacks[index].label}${date ? ` · ${date}` : ""}`;
}

function tileLabel(index) {
  const count = state.manifest.stacks[index].slices;
  return count > 1 ? `${stackLabel(index)} · ${state.tileSlices[index] + 1}/${count}` : stackLabel(index);
}

function buildTiles() { // one tile per stack besides the live viewport, in stack order
  const stage = $(".sv-stage");
  stage.querySelectorAll(".sv-tile").forEach((tile) => tile.remove());
  state.tileSlices = state.manifest.stacks.map((stack) => (stack.slices > 1 ? Math.floor(stack.slices / 2) : 0));
  state.layout = state.manifest.stacks.length > 1 ? "tiles" : "single";
  state.manifest.stacks.forEach((stack, index) => {
    const tile = document.createElement("div");
    tile.className = "sv-cell sv-tile";
    tile.tabIndex = 0;
    tile.setAttribute("role", "button");
    tile.dataset.stack = String(index);
    tile.style.order = String(index);
    tile.innerHTML = '<canvas class="sv-thumb"></canvas><div class="sv-label"></div><div class="sv-tile-message"></div>';
    tile.addEventListener("click", () => enlarge(index));
    tile.addEventListener("keydown", (event) => {
      if (event.key !== "Enter") return;
      event.preventDefault();
      event.stopPropagation();
      enlarge(index);
    });
    tile.addEventListener("wheel", (event) => {
      event.preventDefault();
      if (!event.deltaY) return;
      state.tileSlices[index] = Math.max(0, Math.min(stack.slices - 1, state.tileSlices[index] + Math.sign(event.deltaY)));
      drawTile(index);
    }, { passive: false });
    stage.appendChild(tile);
  });
}

async function drawTile(index) { // the tile's slice at the file's VOI, on a canvas of the frame's own size
  const tile = $(`.sv-tile[data-stack="${index}"]`);
  if (!tile) return;
  const slice = state.tileSlices[index];
  tile.querySelector(".sv-label").textContent = tileLabel(index);
  let frame = frames.get(`${index}:${slice}`);
  if (!frame || frame instanceof Promise) {
    if (state.manifest.stacks[index].plane) { // built on the server once its series is decoded
      tile.querySelector(".sv-tile-message").textContent = "Loading the series…";
      tile.dataset.status = "loading";
    }
    try {
      frame = await fetchFrame(index, slice);
    } catch (error) {
      tile.querySelector(".sv-tile-message").textContent = error.message || String(error);
      tile.dataset.status = "error";
      return;
    }
  }
  if (state.tileSlices[index] !== slice || !tile.isConnected) return;
  tile.querySelector(".sv-tile-message").textContent = "";
  const c = tile.querySelector(".sv-thumb");
  c.width = frame.columns;
  c.height = frame.rows;
  const g = c.getContext("2d");
  const image = g.createImageData(frame.columns, frame.rows);
  const out = image.data;
  for (let i = 0, n = frame.rows * frame.columns; i < n; i++) {
    if (frame.kind === "colour") {
      out[4 * i] = frame.rgb[3 * i]; out[4 * i + 1] = frame.rgb[3 * i + 1]; out[4 * i + 2] = frame.rgb[3 * i + 2];
    } else {
      out[4 * i] = out[4 * i + 1] = out[4 * i + 2] = frame.storedLut[frame.values[i]];
    }
    out[4 * i + 3] = 255;
  }
  g.putImageData(image, 0, 0);
  tile.dataset.status = "ready";
  if (stats.tileReadyAt[index] === undefined) stats.tileReadyAt[index] = performance.now();
}

function showLayout() {
  const stage = $(".sv-stage");
  stage.dataset.layout = state.layout;
  root.dataset.layout = state.layout;
  // 1 + n: the live tile large on the left, the other stacks in a column beside it
  const others = state.manifest.stacks.length - 1;
  $(".sv-main").style.gridRow = state.layout === "tiles" && others > 0 ? `1 / span ${others}` : "";
  stage.querySelectorAll(".sv-tile").forEach((tile) => { tile.hidden = Number(tile.dataset.stack) === state.stack; });
  $(".sv-layout").hidden = state.manifest.stacks.length < 2;
  $(".sv-layout").setAttribute("aria-pressed", String(state.layout === "tiles"));
  schedule(false);
}

function enlarge(index) {
  state.layout = "single";
  if (index !== state.stack) {
    state.tileSlices[state.stack] = state.slice;
    const slice = state.tileSlices[index];
    showSlice(index, slice);
  }
  showLayout();
  root.focus({ preventScroll: true });
}

function toTiles() {
  if (state.manifest.stacks.length < 2) return;
  state.layout = state.layout === "tiles" ? "single" : "tiles";
  state.tileSlices[state.stack] = state.slice;
  state.manifest.stacks.forEach((_, i) => { if (i !== state.stack) drawTile(i); });
  showLayout();
}

// DOM writes only when the value changes: an unchanged text or attribute written again still makes the browser
// lay out the page for the next frame, which a window/level drag would pay on every step.
function setText(node, text) { if (node.textContent !== text) node.textContent = text; }
function setData(name, value) { if (root.dataset[name] !== value) root.dataset[name] = value; }
function setPressed(selector, pressed) {
  const node = $(selector), value = String(pressed);
  if (node.getAttribute("aria-pressed") !== value) node.setAttribute("aria-pressed", value);
}

function showInfo() { // one short line in the band below the image; notices and measurements in the status area
  const stack = state.manifest.stacks[state.stack];
  const frame = state.frame;
  const parts = [];
  if (stack && stack.slices > 1) parts.push(`Slice ${state.slice + 1}/${stack.slices}`);
  if (frame && frame.kind === "grayscale") {
    const [c, w] = state.window || frame.window;
    parts.push(`C ${Math.round(c)} W ${Math.round(w)}${state.window ? "" : " (as stored)"}`);
  }
  if (frame) parts.push(`Zoom ${Math.round(fitScale() * state.zoom * 100 / devicePixelRatio)}%`);
  setText($(".sv-info"), parts.join(" · "));
  setText($(".sv-renderer"), rendererNote ? `${rendererNote}.` : "");
  setText($(".sv-measure"), state.ruler ? `Ruler ${rulerText()}` : "");
  const series = $(".sv-series");
  if (series.value !== String(state.stack)) series.value = String(state.stack); // follows the live tile
  setText($(".sv-main .sv-label"), stack && state.manifest.stacks.length > 1 ? stackLabel(state.stack) : "");
  setText($(".sv-message"), state.error);
  setData("status", state.status);
  setData("renderer", renderer ? renderer.kind : "");
  setData("slice", String(state.slice + 1));
  const current = frame && frame.kind === "grayscale" ? (state.window || frame.window) : null;
  setData("center", current ? String(current[0]) : "");
  setData("width", current ? String(current[1]) : "");
  setPressed(".sv-invert", state.invert);
  setPressed(".sv-ruler", state.rulerMode);
  setPressed(".sv-show-findings", state.showFindings);
  setData("highlight", state.highlight === null ? "" : String(state.highlight));
}

function draw(repaint) {
  if (state.frame && repaint && state.frame.kind === "grayscale") renderer.setLut(displayTable(state.frame));
  composite();
  showInfo();
  if (state.frame && stats.firstImageAt === null) stats.firstImageAt = performance.now(); // painted
  if (pendingEventTime !== null) {
    const { time, handled, kind } = pendingEventTime;
    pendingEventTime = null;
    setTimeout(() => { // a task queued in the animation frame runs once that frame is rendered
      const now = performance.now();
      stats.lastLatencyMs = now - time;
      (kind === "step" ? stats.stepLatencies : stats.latencies).push(stats.lastLatencyMs);
      (kind === "step" ? stats.stepWork : stats.work).push(now - handled);
    }, 0);
  }
}

let repaintWanted = false;
function schedule(repaint, eventTime, kind = "drag") {
  repaintWanted = repaintWanted || repaint;
  if (eventTime !== undefined && pendingEventTime === null) {
    pendingEventTime = { time: eventTime, handled: performance.now(), kind };
  }
  if (drawScheduled) return;
  drawScheduled = true;
  requestAnimationFrame(() => {
    drawScheduled = false;
    const repaintNow = repaintWanted;
    repaintWanted = false;
    draw(repaintNow);
  });
}

function fail(message) {
  state.status = "error";
  state.error = message;
  showInfo();
}

function showPresets() {
  const frame = state.frame;
  const holder = $(".sv-presets");
  holder.textContent = "";
  if (!frame || frame.kind !== "grayscale") return;
  frame.presetList.slice(0, 5).forEach(([name, window], i) => {
    const button = document.createElement("button");
    button.textContent = `${i + 1} ${name}`;
    button.addEventListener("click", () => { setWindow(window); root.focus(); });
    holder.appendChild(button);
  });
}

async function showSlice(stack, slice, eventTime) {
  const stacks = state.manifest.stacks;
  if (!stacks[stack]) return;
  slice = Math.max(0, Math.min(stacks[stack].slices - 1, slice));
  const stackChanged = stack !== state.stack;
  state.stack = stack;
  state.slice = slice;
  if (state.tileSlices.length && stackChanged) showLayout();
  const caseId = state.manifest.case;
  const key = `${stack}:${slice}`;
  let frame = frames.get(key);
  if (!frame || frame instanceof Promise) {
    state.status = "loading";
    showInfo();
    try {
      frame = await fetchFrame(stack, slice);
      stats.frameAt = performance.now();
    } catch (error) {
      if (state.manifest.case === caseId && state.stack === stack && state.slice === slice) {
        state.frame = null;
        composite();
        fail(`${error.message || error} The server-rendered view below still works.`);
      }
      return;
    }
    if (state.manifest.case !== caseId || state.stack !== stack || state.slice !== slice) return;
  }
  const newStack = !state.frame || state.frame.rows !== frame.rows || state.frame.columns !== frame.columns;
  const hadPresets = state.frame && state.frame.kind === frame.kind;
  try {
    renderer.setFrame(frame);
  } catch (error) {
    state.frame = null;
    composite();
    fail(`Cannot display this image: ${error.message}. The server-rendered view below still works.`);
    return;
  }
  state.frame = frame;
  if (newStack && !state.keepView) { state.zoom = 1; state.panX = 0; state.panY = 0; state.ruler = null; }
  state.keepView = false;
  state.status = "ready";
  state.error = "";
  if (!hadPresets) showPresets();
  schedule(true, eventTime, "step");
  if (!state.seriesLoading.has(stack)) { // the rest of the series, once its first slice is on screen
    state.seriesLoading.add(stack);
    loadSeries(stack);
  }
  showProgress();
}

function showNotes() { // what the server says about the case (e.g. a series that is not reformatted, and why)
  $(".sv-notes").textContent = state.manifest.notes.join(" ");
}

function setWindow(window) {
  state.window = window ? [window[0], window[1]] : null;
  schedule(true);
}

function reset() {
  state.window = null; state.invert = false; state.zoom = 1; state.panX = 0; state.panY = 0; state.ruler = null;
  schedule(true);
}

function load(manifestText) {
  let manifest;
  try { manifest = JSON.parse(manifestText || "{}"); } catch (error) { manifest = { case: null, stacks: [] }; }
  if (manifest.case === state.manifest.case && JSON.stringify(manifest) === JSON.stringify(state.manifest)) return;
  if (state.manifest.case !== null) {
    const { stack, slice, window, invert, zoom, panX, panY } = state;
    views.set(state.manifest.case, { stack, slice, window, invert, zoom, panX, panY });
  }
  state.manifest = { case: manifest.case ?? null, stacks: manifest.stacks || [], findings: manifest.findings || [],
    study_date: manifest.study_date || null, notes: manifest.notes || [] };
  maskCanvases.clear();
  state.highlight = null;
  state.showFindings = true;
  showFindingList();
  frames.clear();
  state.seriesLoading = new Set();
  waiting.clear();
  loaded.clear();
  generation++;
  Object.assign(state, { frame: null, window: null, invert: false, zoom: 1, panX: 0, panY: 0, ruler: null,
    error: "", status: "empty" });
  const left = views.get(state.manifest.case);
  stats.firstImageAt = null;
  stats.allLoadedAt = null;
  stats.tileReadyAt = {};
  stats.manifestAt = performance.now();
  const select = $(".sv-series");
  select.textContent = "";
  state.manifest.stacks.forEach((stack, i) => select.add(new Option(`${stack.label} (${stack.slices})`, String(i))));
  select.hidden = state.manifest.stacks.length < 2;
  showPresets();
  buildTiles();
  showLayout();
  composite();
  if (state.manifest.case === null) { showInfo(); return; }
  showNotes();
  if (!state.manifest.stacks.length) { fail("This case has no images."); return; }
  if (left && state.manifest.stacks[left.stack]) {
    Object.assign(state, left, { keepView: true });
    showSlice(left.stack, left.slice);
  } else {
    const first = state.manifest.stacks[0];
    showSlice(0, first.slices > 1 ? Math.floor(first.slices / 2) : 0);
  }
  state.manifest.stacks.forEach((_, i) => { if (i !== state.stack) drawTile(i); }); // after the slice on screen
}

// -- input ------------------------------------------------------------------------------------------------------
let drag = null;
overlay.addEventListener("contextmenu", (event) => event.preventDefault());
overlay.addEventListener("pointerdown", (event) => {
  if (!state.frame) return;
  root.focus({ preventScroll: true });
  overlay.setPointerCapture(event.pointerId);
  const kind = event.button === 0 ? (state.rulerMode ? "ruler" : "window") : "pan";
  drag = { kind, x: event.clientX, y: event.clientY, panX: state.panX, panY: state.panY,
    window: (state.window || state.frame.window || [0, 1]).slice() };
  if (kind === "ruler") {
    const p = toImage(event);
    state.ruler = { x0: p.x, y0: p.y, x1: p.x, y1: p.y };
  }
  event.preventDefault();
});
overlay.addEventListener("pointermove", (event) => {
  if (!drag || !state.frame) return;
  const dx = event.clientX - drag.x, dy = event.clientY - drag.y;
  if (drag.kind === "window" && state.frame.kind === "grayscale") {
    const k = state.frame.wl_per_pixel;
    const least = state.frame.voi_function === "LINEAR" ? 1 : 1e-3; // C.11.2.1.2.1: LINEAR needs width >= 1
    state.window = [drag.window[0] + dy * k, Math.max(least, drag.window[1] + dx * k)];
    schedule(true, event.timeStamp);
  } else if (drag.kind === "pan") {
    const ratio = canvas.width / canvas.getBoundingClientRect().width;
    state.panX = drag.panX + dx * ratio;
    state.panY = drag.panY + dy * ratio;
    schedule(false, event.timeStamp);
  } else if (drag.kind === "ruler") {
    const p = toImage(event);
    Object.assign(state.ruler, { x1: p.x, y1: p.y });
    schedule(false, event.timeStamp);
  }
});
const endDrag = () => { drag = null; };
overlay.addEventListener("pointerup", endDrag);
overlay.addEventListener("pointercancel", endDrag);
overlay.addEventListener("dblclick", () => { state.zoom = 1; state.panX = 0; state.panY = 0; schedule(false); });
overlay.addEventListener("wheel", (event) => {
  if (!state.frame) return;
  event.preventDefault();
  root.focus({ preventScroll: true });
  if (event.ctrlKey) { // zoom about the pointer
    const box = canvas.getBoundingClientRect();
    const ratio = canvas.width / box.width;
    const px = (event.clientX - box.left) * ratio, py = (event.clientY - box.top) * ratio;
    const before = transform();
    const factor = Math.exp(-event.deltaY * 0.002);
    state.zoom = Math.min(32, Math.max(0.1, state.zoom * factor));
    const s = fitScale() * state.zoom;
    const ix = (px - before.ox) / before.s, iy = (py - before.oy) / before.s;
    state.panX += px - (ix * s + (canvas.width - state.frame.columns * s) / 2 + state.panX);
    state.panY += py - (iy * s + (canvas.height - state.frame.rows * s) / 2 + state.panY);
    schedule(false, event.timeStamp);
  } else if (event.deltaY) {
    showSlice(state.stack, state.slice + Math.sign(event.deltaY), event.timeStamp);
  }
}, { passive: false });
root.addEventListener("keydown", (event) => {
  if (event.target.tagName === "SELECT" || event.ctrlKey || event.metaKey || event.altKey) return;
  const key = event.key;
  const frame = state.frame;
  if (key >= "1" && key <= "5" && frame && frame.kind === "grayscale") {
    const preset = frame.presetList[Number(key) - 1];
    if (preset) setWindow(preset[1]);
  } else if (key === "i" || key === "I") { state.invert = !state.invert; schedule(true); }
  else if (key === "r" || key === "R") reset();
  else if (key === "m" || key === "M") { state.rulerMode = !state.rulerMode; showInfo(); }
  else if (key === "f" || key === "F") { state.showFindings = !state.showFindings; schedule(false); }
  else if (key === "Enter") toTiles();
  else if (key === "Escape" && state.layout === "single" && state.manifest.stacks.length > 1) toTiles();
  else if (key === "ArrowUp" || key === "ArrowLeft") showSlice(state.stack, state.slice - 1, event.timeStamp);
  else if (key === "ArrowDown" || key === "ArrowRight") showSlice(state.stack, state.slice + 1, event.timeStamp);
  else return;
  event.preventDefault();
});
$(".sv-series").addEventListener("change", (event) => {
  const stack = Number(event.target.value);
  const count = state.manifest.stacks[stack].slices;
  showSlice(stack, count > 1 ? Math.floor(count / 2) : 0);
});
$(".sv-invert").addEventListener("click", () => { state.invert = !state.invert; schedule(true); });
$(".sv-ruler").addEventListener("click", () => { state.rulerMode = !state.rulerMode; showInfo(); });
$(".sv-reset").addEventListener("click", reset);
$(".sv-layout").addEventListener("click", () => { toTiles(); root.focus(); });
$(".sv-show-findings").addEventListener("click", () => { state.showFindings = !state.showFindings; schedule(false); });
new ResizeObserver(() => schedule(false)).observe($(".sv-main"));

if (!renderer || !context) {
  fail("This browser cannot draw on a canvas; use the server-rendered view below.");
} else {
  // for tests and bench/viewer.py: state, timings and the full-resolution grey values
  root.studyViewer = {
    state, stats, renderer: renderer.kind,
    transform: () => (state.frame ? transform() : null),
    overlayPixel(x, y) { return Array.from(context.getImageData(Math.round(x), Math.round(y), 1, 1).data); },
    greys(step = 1) {
      const { width, height, data } = renderer.greys(step, state.invert);
      const out = [];
      for (let y = 0; y < height; y += step) {
        for (let x = 0; x < width; x += step) out.push(data[(y * width + x) * 4]);
      }
      return { width, height, step, values: out };
    },
  };
  watch("value", () => load(props.value));
  load(props.value);
}
