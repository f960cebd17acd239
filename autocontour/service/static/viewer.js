// The slice viewer: a CT slice (a PNG the server windows) with contour outlines drawn on a
// canvas, paged with wheel and keys, played, in three orientations; neighbouring slices'
// images and contours are fetched ahead into LRU caches so paging never waits on the network.

import { api } from "./api.js";

/** A Map that forgets its least recently used entries beyond `max`. */
export class LruCache {
  constructor(max) { this.max = max; this.map = new Map(); }
  get(key) {
    const value = this.map.get(key);
    if (value !== undefined) { this.map.delete(key); this.map.set(key, value); }
    return value;
  }
  set(key, value) {
    this.map.delete(key);
    this.map.set(key, value);
    while (this.map.size > this.max) this.map.delete(this.map.keys().next().value);
  }
  delete(key) { this.map.delete(key); }
}

/** Loads URLs once into a cache; entries are { promise, value, done }. Prefetches go through a
 *  queue of at most `parallel` requests, so the slice on screen never waits behind them. */
class Loader {
  constructor(max, fetchOne, parallel = 4) {
    this.cache = new LruCache(max);
    this.fetchOne = fetchOne;
    this.parallel = parallel;
    this.queue = [];
    this.running = 0;
  }
  load(url) {
    let entry = this.cache.get(url);
    if (!entry) {
      entry = { done: false, value: undefined };
      entry.promise = this.fetchOne(url).then(
        (value) => { entry.value = value; entry.done = true; return value; },
        (error) => { this.cache.delete(url); throw error; });
      this.cache.set(url, entry);
    }
    return entry.promise;
  }
  ready(url) { const entry = this.cache.get(url); return entry ? entry.done : false; }
  value(url) { const entry = this.cache.get(url); return entry && entry.done ? entry.value : undefined; }
  /** Replace what waits to be prefetched by `urls` (nearest first). */
  prefetch(urls) {
    this.queue = urls.filter((u) => !this.cache.map.has(u));
    this.pump();
  }
  pump() {
    while (this.running < this.parallel && this.queue.length) {
      const url = this.queue.shift();
      if (this.cache.map.has(url)) continue;
      this.running += 1;
      this.load(url).catch(() => {}).finally(() => { this.running -= 1; this.pump(); });
    }
  }
}

function loadImage(url) {
  const image = new Image();
  image.src = url;
  return image.decode().then(() => image, () => {
    throw new Error("A slice image could not be loaded.");
  });
}

const AHEAD = 10;
const BEHIND = 4;

export class Viewer {
  /** `panes`: { main: canvas, ref: canvas }; `stage`: the focusable element around them;
   *  `onChange(state)`: called whenever the slice, view, window or playing state changes. */
  constructor({ stage, main, ref, onChange = () => {}, onError = () => {} }) {
    this.stage = stage;
    this.canvases = { main, ref };
    this.onChange = onChange;
    this.onError = onError;
    this.images = new Loader(160, loadImage); // a decoded 512x512 slice is 1 MB
    this.json = new Loader(400, (url) => api(url));
    this.meta = null;
    this.view = "axial";
    this.indices = {};
    this.window = 400;
    this.level = 40;
    this.opacity = 0.25;
    this.hidden = new Set();
    this.compare = "off";
    this.structures = [];
    this.playing = false;
    this.playMs = 250;
    this.direction = 1;
    this.inFlight = false;
    this.dirty = false;
    this.attachInput();
    new ResizeObserver(() => this.render()).observe(stage);
  }

  /** Show a result: its case's CT, the result's structures, the case's reference if any. */
  async open({ caseId, resultId, structures, hasReference }) {
    this.stop();
    this.caseId = caseId;
    this.resultId = resultId;
    this.structures = structures;
    this.colors = new Map(structures.map((s) => [s.name, s.color]));
    this.types = new Map(structures.map((s) => [s.name, s.type]));
    this.hasReference = hasReference;
    if (!hasReference) this.compare = "off";
    this.meta = await api(`/api/cases/${caseId}/image`);
    this.indices = {};
    for (const [name, v] of Object.entries(this.meta.views)) {
      this.indices[name] = Math.floor(v.count / 2);
    }
    this.changed();
  }

  get count() { return this.meta ? this.meta.views[this.view].count : 0; }
  get index() { return this.indices[this.view] ?? 0; }

  // --- state changes ------------------------------------------------------------------------
  setIndex(index) {
    if (!this.meta) return;
    const clamped = Math.max(0, Math.min(this.count - 1, Math.round(index)));
    if (clamped !== this.index) this.direction = clamped > this.index ? 1 : -1;
    this.indices[this.view] = clamped;
    this.changed();
  }
  page(delta) { this.setIndex(this.index + delta); }
  setView(view) { if (this.meta && this.meta.views[view]) { this.view = view; this.changed(); } }
  setWindow(width, level) {
    this.window = Math.max(1, Math.round(width));
    this.level = Math.round(level);
    this.changed();
  }
  setOpacity(value) { this.opacity = value; this.render(); }
  setHidden(names) { this.hidden = new Set(names); this.render(); }
  setCompare(mode) { this.compare = this.hasReference ? mode : "off"; this.changed(); }
  setPlayMs(ms) { this.playMs = Math.max(30, ms || 250); }

  changed() {
    this.onChange(this);
    this.render();
    this.prefetch();
  }

  // --- playing --------------------------------------------------------------------------------
  togglePlay() { if (this.playing) this.stop(); else this.play(); }
  play() {
    if (!this.meta || this.playing) return;
    this.playing = true;
    this.direction = 1;
    this.onChange(this);
    this.tick();
  }
  stop() {
    clearTimeout(this.timer);
    const was = this.playing;
    this.playing = false;
    if (was) this.onChange(this);
  }
  tick() {
    this.timer = setTimeout(async () => {
      if (!this.playing) return;
      const next = (this.index + 1) % this.count;
      try {
        await this.ready(this.view, next); // normally prefetched already: no wait
      } catch (error) {
        this.onError(error.message);
        this.stop();
        return;
      }
      if (!this.playing) return;
      this.setIndex(next);
      this.tick();
    }, this.playMs);
  }

  // --- what a slice needs ---------------------------------------------------------------------
  urls(view, index) {
    const image = `/api/cases/${this.caseId}/slices/${view}/${index}.png`
      + `?window=${this.window}&level=${this.level}`;
    const json = [`/api/results/${this.resultId}/contours/${view}/${index}`];
    if (this.compare !== "off") json.push(`/api/cases/${this.caseId}/reference/contours/${view}/${index}`);
    return { image, json };
  }
  ready(view, index) {
    const { image, json } = this.urls(view, index);
    return Promise.all([this.images.load(image), ...json.map((u) => this.json.load(u))]);
  }
  prefetch() {
    if (!this.meta) return;
    const order = [];
    const ahead = this.playing ? AHEAD * 2 : AHEAD;
    for (let step = 1; step <= ahead; step += 1) {
      order.push(this.index + this.direction * step);
      if (step <= BEHIND) order.push(this.index - this.direction * step);
    }
    const wrap = (i) => (this.playing ? (i + this.count) % this.count : i);
    const wanted = order.map(wrap).filter((i) => i >= 0 && i < this.count);
    const sets = wanted.map((i) => this.urls(this.view, i));
    this.images.prefetch(sets.map((s) => s.image));
    this.json.prefetch(sets.flatMap((s) => s.json));
  }

  // --- drawing --------------------------------------------------------------------------------
  /** Draw the current slice once its image and contours are in; at most one render waits at a
   *  time, and the newest state is drawn when it is done. */
  async render() {
    if (!this.meta) return;
    if (this.inFlight) { this.dirty = true; return; }
    this.inFlight = true;
    const view = this.view;
    const index = this.index;
    try {
      const [image, auto, reference] = await this.ready(view, index);
      this.draw(view, index, image, auto, reference);
      this.onError("");
    } catch (error) {
      this.onError(error.message);
    } finally {
      this.inFlight = false;
      if (this.dirty) { this.dirty = false; this.render(); }
    }
  }

  draw(view, index, image, auto, reference) {
    const side = this.compare === "side";
    const overlay = this.compare === "overlay";
    this.paint(this.canvases.main, view, index, image, [
      { data: auto, dashed: false, fill: true },
      overlay && reference ? { data: reference, dashed: true, fill: false } : null,
    ]);
    if (side && reference) {
      this.paint(this.canvases.ref, view, index, image, [{ data: reference, dashed: false, fill: true }]);
    }
  }

  paint(canvas, view, index, image, layers) {
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
    const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, width, height);
    const v = this.meta.views[view];
    const [rowMm, colMm] = v.pixel_mm;
    const scale = Math.min(width / (v.cols * colMm), height / (v.rows * rowMm));
    const px = colMm * scale;
    const py = rowMm * scale;
    const x0 = (width - v.cols * px) / 2;
    const y0 = (height - v.rows * py) / 2;
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(image, x0, y0, v.cols * px, v.rows * py);

    const drawn = [[], []];
    layers.filter(Boolean).forEach((layer, which) => {
      for (const structure of layer.data.structures) {
        if (this.hidden.has(structure.name) || !structure.polygons.length) continue;
        const path = new Path2D();
        for (const polygon of structure.polygons) {
          polygon.forEach(([col, row], i) => {
            const x = x0 + (col + 0.5) * px;
            const y = y0 + (row + 0.5) * py;
            if (i === 0) path.moveTo(x, y); else path.lineTo(x, y);
          });
          path.closePath();
        }
        const [r, g, b] = this.colors.get(structure.name) || [255, 255, 0];
        if (layer.fill && this.opacity > 0 && this.types.get(structure.name) !== "EXTERNAL") {
          ctx.fillStyle = `rgba(${r}, ${g}, ${b}, ${this.opacity})`;
          ctx.fill(path, "evenodd");
        }
        ctx.setLineDash(layer.dashed ? [5 * ratio, 4 * ratio] : []);
        ctx.lineWidth = (layer.dashed ? 2 : 1.5) * ratio;
        ctx.strokeStyle = `rgb(${r}, ${g}, ${b})`;
        ctx.stroke(path);
        drawn[which].push(structure.name);
      }
    });
    ctx.setLineDash([]);
    ctx.font = `${12 * ratio}px system-ui, sans-serif`;
    ctx.fillStyle = "#ddd";
    ctx.fillText(`W ${this.window}  L ${this.level}`, 8 * ratio, height - 8 * ratio);

    // for tests and assistive technology: what is on the canvas now
    canvas.dataset.view = view;
    canvas.dataset.slice = String(index);
    canvas.dataset.organs = drawn[0].join(",");
    canvas.dataset.reference = drawn[1].join(",");
    canvas.setAttribute("aria-label", `${view} slice ${index + 1} of ${v.count}, `
      + `window ${this.window} level ${this.level}, ${drawn[0].length} contours shown`);
  }

  // --- input ----------------------------------------------------------------------------------
  /** Keys the viewer answers; false when the key is not one of them. */
  key(event) {
    const steps = { ArrowUp: -1, ArrowDown: 1, PageUp: -10, PageDown: 10 };
    if (event.key in steps) this.page(steps[event.key]);
    else if (event.key === "Home") this.setIndex(0);
    else if (event.key === "End") this.setIndex(this.count - 1);
    else if (event.key === " ") this.togglePlay();
    else return false;
    return true;
  }

  attachInput() {
    const stage = this.stage;
    stage.addEventListener("keydown", (event) => {
      if (!event.altKey && !event.ctrlKey && !event.metaKey && this.key(event)) {
        event.preventDefault();
      }
    });
    stage.addEventListener("wheel", (event) => {
      if (!this.meta) return;
      event.preventDefault();
      this.page(Math.sign(event.deltaY));
    }, { passive: false });
    stage.addEventListener("contextmenu", (event) => event.preventDefault());
    stage.addEventListener("pointerdown", (event) => {
      stage.focus({ preventScroll: true });
      if (event.button !== 2 || !this.meta) return;
      event.preventDefault();
      stage.setPointerCapture(event.pointerId);
      const start = { x: event.clientX, y: event.clientY, window: this.window, level: this.level };
      const move = (e) => this.setWindow(start.window + (e.clientX - start.x) * 4,
                                         start.level - (e.clientY - start.y) * 2);
      const up = () => {
        stage.removeEventListener("pointermove", move);
        stage.removeEventListener("pointerup", up);
        stage.removeEventListener("pointercancel", up);
      };
      stage.addEventListener("pointermove", move);
      stage.addEventListener("pointerup", up);
      stage.addEventListener("pointercancel", up);
    });
  }
}
