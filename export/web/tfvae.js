// The tfvae decoder in the browser: LiteRT.js runs model/decoder_*.tflite (fixed batch, float32
// in and out) on the CPU through WebAssembly (XNNPACK). model/manifest.json, written by
// `tfvae export`, holds the decoders' measured errors, the prior, the principal directions of the
// training codes and a few training images with their codes. window.tfvae exposes the same calls
// the page uses (decode, showCode, drawSamples, interpolate) for scripts and tests.
import {loadLiteRt, loadAndCompile, Tensor} from '@litertjs/core';

const $ = (id) => document.getElementById(id);
const STEPS = 8;        // interpolation: images on the line, both ends included
const RANGE = 3;        // sliders and pad: +- 3 standard deviations
const state = {manifest: null, programs: {}, variant: null, times: [], seed: 0, explore: null, a: 0, b: 1};
let ready;
const readyPromise = new Promise((resolve, reject) => { ready = {resolve, reject}; });

function fail(message) {
  const status = $('status');
  status.textContent = message;
  status.className = 'error';
  ready.reject(new Error(message));
}

// ---------------------------------------------------------------- seeded draws (mulberry32, Box-Muller)
function generator(seed) {
  let a = (seed >>> 0) ^ 0x9e3779b9;
  return () => {
    a = (a + 0x6D2B79F5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(next) {
  let u = 0;
  while (u === 0) u = next();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
}

/** n codes from the prior (a mixture of diagonal Gaussians; per class: component = label; with
 * component_class, the class of each component: a component of the label's, by weight). */
export function drawPrior(n, seed, labels) {
  const p = state.manifest.prior, d = state.manifest.latent_dim, next = generator(seed);
  const total = p.weights.reduce((s, w) => s + w, 0);
  const codes = [];
  for (let i = 0; i < n; i++) {
    let k = 0;
    if (p.component_class && labels) {
      const mine = [];
      p.component_class.forEach((c, j) => { if (c === labels[i]) mine.push(j); });
      let u = next() * mine.reduce((s, j) => s + p.weights[j], 0), t = 0;
      while (t < mine.length - 1 && u >= p.weights[mine[t]]) { u -= p.weights[mine[t]]; t++; }
      k = mine[t];
    } else if (p.per_class && labels) {
      k = labels[i];
    } else if (p.weights.length > 1) {
      let u = next() * total;
      while (k < p.weights.length - 1 && u >= p.weights[k]) { u -= p.weights[k]; k++; }
    }
    const z = new Array(d);
    for (let j = 0; j < d; j++) z[j] = p.loc[k][j] + p.scale[k][j] * gaussian(next);
    codes.push(z);
  }
  return codes;
}

// ---------------------------------------------------------------- the decoder
function conditional() { return Boolean(state.manifest.labels); }

function classes() { return state.manifest.labels ? state.manifest.labels.classes : []; }

function className(label) {
  const info = state.manifest.labels;
  if (!info) return '';
  return info.names && info.names[label] !== undefined ? info.names[label] : String(label);
}

/** Pixel means (Float32Array, count x H x W x C) of up to `batch` codes, and the batch's latency. */
export async function decode(codes, labels) {
  const m = state.manifest, batch = m.batch, d = m.latent_dim;
  if (codes.length > batch) throw new Error(`decode takes at most ${batch} codes at a time`);
  const z = new Float32Array(batch * d);
  codes.forEach((code, i) => z.set(code, i * d));
  const inputs = {z: new Tensor(z, [batch, d])};
  if (conditional()) {
    const y = new Int32Array(batch).fill(classes()[0]);
    (labels || []).forEach((label, i) => { y[i] = label; });
    inputs.label = new Tensor(y, [batch]);
  }
  const program = state.programs[state.variant];
  const t0 = performance.now();
  const out = await program.run(inputs);
  const ms = performance.now() - t0;
  const images = out.images || Object.values(out)[0];
  const [h, w, c] = m.image_shape;
  const pixels = images.toTypedArray().slice(0, codes.length * h * w * c);
  Object.values(inputs).forEach((t) => t.delete());
  Object.values(out).forEach((t) => t.delete());
  state.times.push(ms);
  if (state.times.length > 20) state.times.shift();
  showStatus();
  return {pixels, ms};
}

// ---------------------------------------------------------------- drawing
/** Paints `count` images into a canvas in `columns` columns, one canvas pixel per image pixel. */
function paint(canvas, pixels, count, columns, gap = 1) {
  const [h, w, c] = state.manifest.image_shape;
  const rows = Math.ceil(count / columns);
  canvas.width = columns * w + (columns - 1) * gap;
  canvas.height = rows * h + (rows - 1) * gap;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  ctx.fillStyle = '#fff';  // the gaps between images
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const image = ctx.createImageData(w, h);
  for (let n = 0; n < count; n++) {
    for (let p = 0; p < h * w; p++) {
      for (let ch = 0; ch < 3; ch++) {
        const v = pixels[(n * h * w + p) * c + (c === 1 ? 0 : ch)];
        image.data[p * 4 + ch] = Math.round(Math.min(1, Math.max(0, v)) * 255);
      }
      image.data[p * 4 + 3] = 255;
    }
    ctx.putImageData(image, (n % columns) * (w + gap), Math.floor(n / columns) * (h + gap));
  }
}

function selectedLabel() {
  const v = $('label').value;
  return v === '' || v === 'all' ? null : Number(v);
}

/** The grid: `batch` prior samples for a seed (a row per class where the class is 'every class'). */
export async function drawSamples(seed) {
  const m = state.manifest;
  state.seed = seed;
  $('seed').value = String(seed);
  let labels = null;
  if (conditional()) {
    const chosen = selectedLabel();
    labels = Array.from({length: m.batch}, (_, i) => chosen === null ? classes()[i % classes().length] : chosen);
  }
  const codes = drawPrior(m.batch, seed, labels);
  const {pixels, ms} = await decode(codes, labels);
  paint($('grid'), pixels, m.batch, Math.round(Math.sqrt(m.batch)));
  return {codes, labels, ms};
}

// ---------------------------------------------------------------- exploring
function coefficients(z) {
  const dir = state.manifest.directions;
  return dir.axes.map((axis, k) => axis.reduce((s, a, j) => s + a * (z[j] - dir.mean[j]), 0) / dir.std[k]);
}

function currentLabel(fallback) {
  const chosen = selectedLabel();
  return chosen === null ? (fallback === null || fallback === undefined ? classes()[0] : fallback) : chosen;
}

async function renderExplore() {
  const e = state.explore;
  const label = conditional() ? currentLabel(e.label) : null;
  const {pixels, ms} = await decode([e.z], label === null ? null : [label]);
  paint($('explore-image'), pixels, 1, 1);
  $('explore-z').textContent = 'z = (' + e.z.map((v) => v.toFixed(2)).join(', ') + ')' +
    (label === null ? '' : ` · class ${className(label)}`);
  if (state.manifest.latent_dim === 2) drawPad();
  return {pixels, ms};
}

/** Shows the image of code z (and label) in the explorer; sliders (or the pad) move from there. */
export async function showCode(z, label) {
  const start = Array.from(z, Number);
  state.explore = {start, z: start.slice(), t0: coefficients(start), t: coefficients(start),
                   label: label === undefined ? null : label};
  buildSliders();
  return renderExplore();
}

function buildSliders() {
  const box = $('sliders');
  const m = state.manifest;
  if (m.latent_dim === 2) return;
  box.textContent = '';
  const dir = m.directions;
  dir.axes.forEach((_, k) => {
    const row = document.createElement('div');
    row.className = 'slider';
    const name = document.createElement('span');
    name.textContent = `PC${k + 1}`;
    name.title = dir.explained ? `${(100 * dir.explained[k]).toFixed(1)}% of the codes' variance` : 'a prior axis';
    const input = document.createElement('input');
    input.type = 'range';
    input.min = String(-RANGE);
    input.max = String(RANGE);
    input.step = '0.05';
    input.value = String(Math.max(-RANGE, Math.min(RANGE, state.explore.t[k])));
    input.setAttribute('aria-label', `principal direction ${k + 1}`);
    const value = document.createElement('span');
    value.textContent = state.explore.t[k].toFixed(2);
    input.addEventListener('input', () => {
      const e = state.explore;
      e.t[k] = Number(input.value);
      value.textContent = e.t[k].toFixed(2);
      e.z = e.start.map((v, j) => v + dir.axes.reduce((s, axis, q) => s + (e.t[q] - e.t0[q]) * dir.std[q] * axis[j], 0));
      renderExplore();
    });
    row.append(name, input, value);
    box.append(row);
  });
}

// the pad (2-d codes): the pointer's position is z; it spans the prior's +- 3 standard deviations
function padRange() { return state.manifest.pad; }

const MANIFOLD = 12;  // the pad's background: the decoded images of a 12 x 12 grid of codes

/** Decodes the pad's grid of codes (its cell centres, top row first) into its background. */
async function padBackground() {
  const m = state.manifest, codes = [];
  for (let i = 0; i < MANIFOLD; i++) {
    for (let j = 0; j < MANIFOLD; j++) {
      codes.push(padCode((j + 0.5) / MANIFOLD, (i + 0.5) / MANIFOLD));
    }
  }
  const [h, w, c] = m.image_shape;
  const pixels = new Float32Array(codes.length * h * w * c);
  for (let i = 0; i < codes.length; i += m.batch) {
    const part = codes.slice(i, i + m.batch);
    const labels = conditional() ? part.map(() => currentLabel(null)) : null;
    pixels.set((await decode(part, labels)).pixels, i * h * w * c);
  }
  const canvas = document.createElement('canvas');
  paint(canvas, pixels, codes.length, MANIFOLD, 0);
  state.padImage = canvas;
}

function drawPad() {
  const pad = $('pad'), ctx = pad.getContext('2d'), r = padRange(), s = pad.width;
  const toPx = (z) => [(z[0] - r[0][0]) / (r[0][1] - r[0][0]) * s, (1 - (z[1] - r[1][0]) / (r[1][1] - r[1][0])) * s];
  ctx.clearRect(0, 0, s, s);
  if (state.padImage) {
    ctx.imageSmoothingEnabled = true;
    ctx.globalAlpha = 0.7;
    ctx.drawImage(state.padImage, 0, 0, s, s);
    ctx.globalAlpha = 1;
  }
  ctx.strokeStyle = 'rgba(120, 130, 145, 0.35)';
  for (let i = 1; i < 6; i++) {
    ctx.beginPath(); ctx.moveTo(i * s / 6, 0); ctx.lineTo(i * s / 6, s); ctx.stroke();
    ctx.beginPath(); ctx.moveTo(0, i * s / 6); ctx.lineTo(s, i * s / 6); ctx.stroke();
  }
  ctx.fillStyle = '#f2a33a';
  for (const c of state.manifest.codes) {
    const [x, y] = toPx(c.z);
    ctx.beginPath(); ctx.arc(x, y, 3, 0, 2 * Math.PI); ctx.fill();
  }
  if (state.explore) {
    const [x, y] = toPx(state.explore.z);
    ctx.fillStyle = '#2f6fde';
    ctx.beginPath(); ctx.arc(x, y, 6, 0, 2 * Math.PI); ctx.fill();
  }
}

/** The code under a point of the pad (fractions of its width and height from the top left). */
export function padCode(fx, fy) {
  const r = padRange();
  return [r[0][0] + fx * (r[0][1] - r[0][0]), r[1][1] - fy * (r[1][1] - r[1][0])];
}

function setupPad() {
  const pad = $('pad');
  $('pad-box').hidden = false;
  let busy = false, pending = null;
  const move = async (event) => {
    const rect = pad.getBoundingClientRect();
    const fx = Math.min(1, Math.max(0, (event.clientX - rect.left) / rect.width));
    const fy = Math.min(1, Math.max(0, (event.clientY - rect.top) / rect.height));
    pending = padCode(fx, fy);
    if (busy) return;
    busy = true;
    while (pending) {
      const z = pending;
      pending = null;
      state.explore.z = z;
      await renderExplore();
    }
    busy = false;
  };
  pad.addEventListener('pointerdown', (event) => { pad.setPointerCapture(event.pointerId); move(event); });
  pad.addEventListener('pointermove', (event) => { if (event.buttons || event.pointerType === 'mouse') move(event); });
}

// ---------------------------------------------------------------- interpolating
/** STEPS images on the line between the codes of shipped images a and b. */
export async function interpolate(a, b) {
  const codes = state.manifest.codes;
  state.a = a;
  state.b = b;
  const za = codes[a].z, zb = codes[b].z;
  const line = Array.from({length: STEPS}, (_, i) => za.map((v, j) => v + (zb[j] - v) * i / (STEPS - 1)));
  let labels = null;
  if (conditional()) {
    const label = currentLabel(codes[a].label);
    labels = line.map(() => label);
  }
  const {pixels, ms} = await decode(line, labels);
  paint($('interp'), pixels, STEPS, STEPS / 2);  // two rows: A ... then ... B
  document.querySelectorAll('#interp-thumbs button').forEach((el, i) => {
    el.className = i === a ? 'a' : (i === b ? 'b' : '');
  });
  $('interp-note').textContent = `from image ${a + 1} to image ${b + 1}, ${STEPS} steps` +
    (labels ? ` · class ${className(labels[0])}` : '');
  return {codes: line, labels, pixels, ms};
}

function thumbnails(box, onPick) {
  state.manifest.codes.forEach((c, i) => {
    const button = document.createElement('button');
    button.type = 'button';
    const label = c.class === null || c.class === undefined ? `image ${i + 1}` : className(c.class) || `class ${c.class}`;
    button.title = label;
    button.setAttribute('aria-label', label);
    if (c.image) {
      const img = document.createElement('img');
      img.src = c.image;
      img.alt = label;
      button.append(img);
    } else {
      button.textContent = String(i + 1);
    }
    button.addEventListener('click', () => onPick(i));
    box.append(button);
  });
}

// ---------------------------------------------------------------- status
function kb(bytes) { return bytes >= 1e6 ? `${(bytes / 1e6).toFixed(2)} MB` : `${Math.round(bytes / 1e3)} KB`; }

function showStatus() {
  const m = state.manifest, d = m.decoders.find((x) => x.variant === state.variant);
  const sorted = state.times.slice().sort((x, y) => x - y);
  const median = sorted.length ? sorted[Math.floor(sorted.length / 2)] : null;
  const quality = d.max_abs_error !== undefined ? `, max error ${d.max_abs_error.toExponential(1)} against the Keras decoder` : '';
  $('status').className = '';
  $('status').textContent = `LiteRT.js ${m.runtime.version} on the CPU (WebAssembly, XNNPACK) · decoder ` +
    `${variantName(state.variant)} (${kb(d.bytes)}, batch ${m.batch}${quality})` +
    (median === null ? '' : ` · ${median.toFixed(2)} ms per batch (median of the last ${sorted.length})`) +
    ` · ready in ${Math.round(state.loadMs)} ms`;
}

function variantName(v) { return v === 'none' ? 'float32' : v; }

// ---------------------------------------------------------------- start
async function start() {
  if (location.protocol === 'file:') {
    return fail('This page loads its decoder with fetch(), which browsers refuse from a file: serve the folder ' +
                '(python -m http.server 8000 in web/, then open http://localhost:8000/).');
  }
  let m;
  try {
    const response = await fetch('model/manifest.json');
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    m = await response.json();
  } catch (e) {
    return fail(`Cannot read model/manifest.json (${e.message}): serve the export's web/ folder as it was written.`);
  }
  state.manifest = m;
  try {
    await loadLiteRt(m.runtime.wasm);
    for (const d of m.decoders) {
      state.programs[d.variant] = await loadAndCompile(d.file, {accelerator: 'wasm'});
    }
  } catch (e) {
    return fail(`LiteRT.js could not start (${e.message || e}).` +
                (m.runtime.cdn ? ' This page loads it from the jsDelivr CDN: it needs a network.' : ''));
  }
  state.variant = m.chosen;
  state.loadMs = performance.now();

  const [h, w, c] = m.image_shape;
  $('title').textContent = `${m.name}: a ${m.model} decoder in the browser`;
  $('about').textContent = `${h}x${w}x${c} images from ${m.latent_dim}-dimensional codes · prior ${m.prior.description}` +
    (m.labels ? ` · conditioned on ${m.labels.classes.length} classes` : '') + ` · export version ${m.version}`;
  document.title = `${m.name} · tfvae`;
  const variant = $('variant');
  for (const d of m.decoders) {
    const option = document.createElement('option');
    option.value = d.variant;
    option.textContent = variantName(d.variant) + (d.variant === m.chosen ? ' (smallest within the error target)' : '') +
      ` · ${kb(d.bytes)}`;
    variant.append(option);
  }
  variant.value = m.chosen;
  variant.addEventListener('change', async () => { state.variant = variant.value; state.times = []; await redrawAll(); });
  if (m.labels) {
    $('label-box').hidden = false;
    const select = $('label');
    const all = document.createElement('option');
    all.value = 'all';
    all.textContent = 'every class';
    select.append(all);
    for (const label of m.labels.classes) {
      const option = document.createElement('option');
      option.value = String(label);
      option.textContent = className(label);
      select.append(option);
    }
    select.addEventListener('change', redrawAll);
  }
  if (m.prior.fitted) {
    $('samples').querySelector('h2').textContent = 'Samples from a Gaussian fitted to the codes';
    $('prior-note').textContent = `An autoencoder has no prior: codes are drawn from ${m.prior.description}. ` +
      'Click the grid for the next seed.';
  } else {
    $('prior-note').textContent = `z ~ ${m.prior.description}; the same seed gives the same grid. Click it for the next seed.`;
  }
  $('draw').addEventListener('click', () => drawSamples(Number($('seed').value) || 0));
  $('seed').addEventListener('change', () => drawSamples(Number($('seed').value) || 0));
  $('grid').addEventListener('click', () => drawSamples(state.seed + 1));

  const from = m.directions.from;
  if (m.latent_dim === 2) {
    $('explore-note').textContent = 'Point at the pad (or drag a finger): the point is z, decoded live; behind it, ' +
      'the decoded 12 x 12 grid of codes (the manifold). Orange dots are the training images below; a thumbnail jumps to its code.';
    setupPad();
  } else {
    $('explore-note').textContent = `Start from a training image, then move along the ${m.directions.axes.length} ` +
      `principal directions of ${from} (in standard deviations).`;
  }
  thumbnails($('explore-starts'), (i) => showCode(m.codes[i].z, m.codes[i].label));
  thumbnails($('interp-thumbs'), (i) => {
    if (state.picking === 'b') { state.picking = 'a'; interpolate(state.a, i); } else { state.picking = 'b'; interpolate(i, state.b); }
  });
  $('footer').textContent = `Decoder and page written by tfvae export; the runtime is LiteRT.js ${m.runtime.version}` +
    (m.runtime.cdn ? ' from the jsDelivr CDN.' : ', served from this folder.') + (m.codes_note ? ` Note: ${m.codes_note}.` : '');
  await redrawAll(true);
  ready.resolve(window.tfvae);
}

async function redrawAll(first) {
  const m = state.manifest;
  if (m.latent_dim === 2) await padBackground();
  await drawSamples(state.seed);
  if (first || !state.explore) await showCode(m.codes[0].z, m.codes[0].label);
  else await renderExplore();
  await interpolate(state.a, Math.min(state.b, m.codes.length - 1));
}

window.tfvae = {ready: readyPromise, decode, drawPrior, drawSamples, showCode, interpolate, padCode,
                get manifest() { return state.manifest; }, get variant() { return state.variant; },
                get code() { return state.explore ? state.explore.z.slice() : null; },
                get start() { return state.explore ? state.explore.start.slice() : null; },
                setVariant: async (v) => { state.variant = v; state.times = []; await redrawAll(); },
                get loadMs() { return state.loadMs; }, get times() { return state.times.slice(); }};
start().catch((e) => fail(`The page failed: ${e.message || e}`));
