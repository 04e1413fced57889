// The zoo's browser demo: every panel calls TensorFlow Serving's REST API, as any client.
"use strict";

const SCORE_THRESHOLD = 0.5;  // Detections drawn at or above this score.

// --- The REST API -------------------------------------------------------------------------
async function predict(model, body) {
  const response = await fetch(`/v1/models/${encodeURIComponent(model)}:predict`, {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
  });
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
  return answer;
}

async function servedVersion(model) {
  try {
    const response = await fetch(`/v1/models/${encodeURIComponent(model)}`);
    if (!response.ok) return null;
    const versions = (await response.json()).model_version_status
      .filter((s) => s.state === "AVAILABLE").map((s) => Number(s.version));
    return versions.length ? Math.max(...versions) : null;
  } catch (e) {
    return null;
  }
}

function randomSeeds(n) {
  return Array.from({length: n}, () => Math.floor(Math.random() * 2147483647));
}

function setStatus(element, text, isError = false) {
  element.textContent = text;
  element.classList.toggle("error", isError);
}

// --- Canvas helpers -----------------------------------------------------------------------
// Strokes in white on black (the datasets' polarity), with pointer events (mouse, pen,
// touch). `onChange(final)` is called while drawing and once when the stroke ends.
function attachDrawing(canvas, lineWidth, target, onChange) {
  const ctx = target.getContext("2d");
  let last = null;
  const point = (event) => {
    const rect = canvas.getBoundingClientRect();
    return [(event.clientX - rect.left) * target.width / rect.width,
            (event.clientY - rect.top) * target.height / rect.height];
  };
  canvas.addEventListener("pointerdown", (event) => {
    canvas.setPointerCapture(event.pointerId);
    last = point(event);
    ctx.fillStyle = "#fff";
    ctx.beginPath();
    ctx.arc(last[0], last[1], lineWidth / 2, 0, 2 * Math.PI);
    ctx.fill();
    onChange(false);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!last) return;
    const next = point(event);
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = lineWidth;
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(last[0], last[1]);
    ctx.lineTo(next[0], next[1]);
    ctx.stroke();
    last = next;
    onChange(false);
  });
  const end = () => { if (last) { last = null; onChange(true); } };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
}

// The red channel of a canvas region as rows of [value] (uint8, one channel).
function grayRows(ctx, width, height) {
  const data = ctx.getImageData(0, 0, width, height).data;
  const rows = [];
  for (let y = 0; y < height; y++) {
    const row = [];
    for (let x = 0; x < width; x++) row.push([data[(y * width + x) * 4]]);
    rows.push(row);
  }
  return rows;
}

// A drawing -> a 28x28 MNIST-style image: the ink's bounding box scaled to fit 20x20
// (aspect kept), then shifted so its centre of mass is at the centre, as MNIST was made.
function toMnist(canvas) {
  const src = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
  let [x0, y0, x1, y1] = [canvas.width, canvas.height, -1, -1];
  for (let y = 0; y < canvas.height; y++) {
    for (let x = 0; x < canvas.width; x++) {
      if (src.data[(y * canvas.width + x) * 4] > 32) {
        x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
      }
    }
  }
  if (x1 < 0) return null;
  const w = x1 - x0 + 1, h = y1 - y0 + 1, scale = 20 / Math.max(w, h);
  const small = document.createElement("canvas");
  small.width = small.height = 28;
  const sctx = small.getContext("2d");
  sctx.fillStyle = "#000";
  sctx.fillRect(0, 0, 28, 28);
  sctx.imageSmoothingQuality = "high";
  const dw = w * scale, dh = h * scale;
  sctx.drawImage(canvas, x0, y0, w, h, (28 - dw) / 2, (28 - dh) / 2, dw, dh);
  // Centre of mass -> the centre.
  const pixels = sctx.getImageData(0, 0, 28, 28).data;
  let mass = 0, cx = 0, cy = 0;
  for (let y = 0; y < 28; y++) {
    for (let x = 0; x < 28; x++) {
      const v = pixels[(y * 28 + x) * 4];
      mass += v; cx += v * x; cy += v * y;
    }
  }
  const shifted = document.createElement("canvas");
  shifted.width = shifted.height = 28;
  const tctx = shifted.getContext("2d");
  tctx.fillStyle = "#000";
  tctx.fillRect(0, 0, 28, 28);
  tctx.drawImage(small, Math.round(13.5 - cx / mass), Math.round(13.5 - cy / mass));
  return grayRows(tctx, 28, 28);
}

// uint8 images [N][28][28][1] from the API -> a grid on `canvas`.
function drawGrid(canvas, images, cols) {
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const rowsCount = Math.ceil(images.length / cols);
  const cell = Math.floor(Math.min(canvas.width / cols, canvas.height / rowsCount));
  images.forEach((image, i) => {
    const tile = imageCanvas(image);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(tile, (i % cols) * cell, Math.floor(i / cols) * cell, cell, cell);
  });
}

// One uint8 image [H][W][1] -> a canvas of its size.
function imageCanvas(image) {
  const h = image.length, w = image[0].length;
  const tile = document.createElement("canvas");
  tile.width = w; tile.height = h;
  const tctx = tile.getContext("2d");
  const pixels = tctx.createImageData(w, h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = image[y][x][0], o = (y * w + x) * 4;
      pixels.data[o] = pixels.data[o + 1] = pixels.data[o + 2] = v;
      pixels.data[o + 3] = 255;
    }
  }
  tctx.putImageData(pixels, 0, 0);
  return tile;
}

async function showModel(section, model) {
  const version = await servedVersion(model);
  section.querySelector(".model").textContent = version === null ? `(${model}: not served)`
                                                                 : `(${model} v${version})`;
  return version !== null;
}

// --- Panel 1: draw a digit, classified live -----------------------------------------------
function setupClassify() {
  const section = document.getElementById("classify");
  const model = section.dataset.model;
  const canvas = document.getElementById("draw-canvas");
  const label = document.getElementById("draw-label");
  const bars = document.getElementById("draw-bars");
  const status = document.getElementById("draw-status");
  const ctx = canvas.getContext("2d");
  const clear = () => {
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    label.textContent = "–";
    bars.replaceChildren();
    setStatus(status, "");
  };
  let inFlight = false, pending = false;
  const classify = async () => {
    if (inFlight) { pending = true; return; }
    const image = toMnist(canvas);
    if (!image) return;
    inFlight = true;
    try {
      const answer = await predict(model, {instances: [image]});
      const row = answer.predictions[0];
      label.textContent = row.labels;
      const top = row.classes;
      bars.replaceChildren(...row.probabilities.map((p, digit) => {
        const item = document.createElement("li");
        item.className = digit === top ? "top" : "";
        item.innerHTML = `<span class="digit">${digit}</span><span class="bar"></span>` +
                         `<span>${(100 * p).toFixed(1)}%</span>`;
        item.querySelector(".bar").style.width = `${Math.max(1, 200 * p)}px`;
        return item;
      }));
      setStatus(status, "");
    } catch (error) {
      setStatus(status, error.message, true);
    } finally {
      inFlight = false;
      if (pending) { pending = false; classify(); }
    }
  };
  let lastLive = 0;
  attachDrawing(canvas, 22, canvas, (final) => {
    const now = performance.now();
    if (final || now - lastLive > 300) { lastLive = now; classify(); }
  });
  document.getElementById("draw-clear").addEventListener("click", clear);
  clear();
  showModel(section, model).then((ok) => { if (!ok) setStatus(status, "Model not served.", true); });
}

// --- Panel 2: generated digits ------------------------------------------------------------
function setupGenerate() {
  const section = document.getElementById("generate");
  const grid = document.getElementById("gen-grid");
  const status = document.getElementById("gen-status");
  const run = async (model, body, cols, what) => {
    setStatus(status, "Generating…");
    try {
      const answer = await predict(model, body);
      drawGrid(grid, answer.predictions, cols);
      grid.dataset.count = answer.predictions.length;
      setStatus(status, `${answer.predictions.length} ${what} from ${model}.`);
    } catch (error) {
      setStatus(status, error.message, true);
    }
  };
  document.getElementById("gen-button").addEventListener("click", () =>
    run(section.dataset.model, {signature_name: "generate", instances: randomSeeds(16)}, 4,
        "digits"));
  document.getElementById("cgen-button").addEventListener("click", () => {
    const digit = Number(document.getElementById("cgen-digit").value);
    const instances = randomSeeds(10).map((seed) => ({seed, labels: digit}));
    run(section.dataset.conditionalModel, {signature_name: "generate", instances}, 4,
        `${digit}s`);
  });
  showModel(section, section.dataset.model);
}

// --- Panel 3: digits on a canvas, boxes from the detector ---------------------------------
function setupDetect() {
  const section = document.getElementById("detect");
  const model = section.dataset.model;
  const view = document.getElementById("det-canvas");
  const result = document.getElementById("det-result");
  const ink = document.createElement("canvas");  // What the detector sees; `view` adds boxes.
  ink.width = view.width; ink.height = view.height;
  const SIZE = 128;  // The detector's training canvases are 128x128.
  const scale = view.width / SIZE;
  const inkCtx = ink.getContext("2d");
  const render = () => view.getContext("2d").drawImage(ink, 0, 0);
  const clear = () => {
    inkCtx.fillStyle = "#000";
    inkCtx.fillRect(0, 0, ink.width, ink.height);
    render();
    view.dataset.placed = 0;
    delete view.dataset.found;
    setStatus(result, "");
  };
  attachDrawing(view, 12, ink, () => render());

  document.getElementById("det-place").addEventListener("click", async () => {
    const count = 3 + Math.floor(Math.random() * 3);
    const digits = Array.from({length: count}, () => Math.floor(Math.random() * 10));
    const instances = randomSeeds(count).map((seed, i) => ({seed, labels: digits[i]}));
    try {
      const answer = await predict(section.dataset.digitsModel,
                                   {signature_name: "generate", instances});
      const placed = [];
      for (const image of answer.predictions) {
        for (let attempt = 0; attempt < 50; attempt++) {
          const size = 28 + Math.floor(Math.random() * 24);  // 1x-1.9x MNIST size
          const x = Math.floor(Math.random() * (SIZE - size));
          const y = Math.floor(Math.random() * (SIZE - size));
          if (placed.every((p) => x + size <= p.x || p.x + p.size <= x ||
                                  y + size <= p.y || p.y + p.size <= y)) {
            placed.push({x, y, size});
            inkCtx.globalCompositeOperation = "lighten";
            inkCtx.drawImage(imageCanvas(image), x * scale, y * scale, size * scale,
                             size * scale);
            inkCtx.globalCompositeOperation = "source-over";
            break;
          }
        }
      }
      render();
      view.dataset.placed = Number(view.dataset.placed || 0) + placed.length;
      setStatus(result, `Placed ${placed.length} generated digits (${digits.join(", ")}).`);
    } catch (error) {
      setStatus(result, error.message, true);
    }
  });

  document.getElementById("det-clear").addEventListener("click", clear);

  document.getElementById("det-button").addEventListener("click", async () => {
    const small = document.createElement("canvas");
    small.width = small.height = SIZE;
    const sctx = small.getContext("2d");
    sctx.imageSmoothingQuality = "high";
    sctx.drawImage(ink, 0, 0, SIZE, SIZE);
    setStatus(result, "Detecting…");
    try {
      const answer = await predict(model, {instances: [grayRows(sctx, SIZE, SIZE)]});
      const row = answer.predictions[0];
      render();
      const ctx = view.getContext("2d");
      ctx.lineWidth = 2;
      ctx.font = "bold 15px system-ui, sans-serif";
      const found = [];
      for (let i = 0; i < row.num_detections; i++) {
        const score = row.detection_scores[i];
        if (score < SCORE_THRESHOLD) continue;
        const [y0, x0, y1, x1] = row.detection_boxes[i].map((v) => v * view.width);
        const digit = Math.round(row.detection_classes[i]);
        found.push(digit);
        const colour = `hsl(${digit * 36}, 90%, 60%)`;
        ctx.strokeStyle = colour;
        ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
        // The label on a dark plate, inside the canvas, so that it reads on any pixels.
        const text = `${digit} ${score.toFixed(2)}`;
        const width = ctx.measureText(text).width + 6;
        const left = Math.min(Math.max(0, x0 - 1), view.width - width);
        const top = y0 >= 20 ? y0 - 20 : Math.min(y1 + 1, view.height - 20);
        ctx.fillStyle = "rgba(0, 0, 0, 0.75)";
        ctx.fillRect(left, top, width, 20);
        ctx.fillStyle = colour;
        ctx.fillText(text, left + 3, top + 15);
      }
      view.dataset.found = found.length;
      setStatus(result, `${found.length} digits found` +
                        (found.length ? `: ${found.join(", ")}.` : "."));
    } catch (error) {
      setStatus(result, error.message, true);
    }
  });
  clear();
  showModel(section, model);
}

setupClassify();
setupGenerate();
setupDetect();
