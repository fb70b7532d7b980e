// The result view of one task: its image with the oriented boxes drawn over it in an inline SVG,
// the scene with its top-k, filters (classes, confidence threshold), downloads and delete.

import { API, ApiError, describeError } from './api.js';
import { el, saveBlob, svg } from './dom.js';

const LABEL_PX = 13; // labels keep this size on screen, however large the image
const PALETTE = ['#e6194b', '#3cb44b', '#4363d8', '#f58231', '#911eb4', '#42d4f4', '#f032e6', '#9a6324', '#800000', '#469990'];

/**
 * The four corners of a primitive in image pixels. `x, y` (centre) and `width, height` are
 * normalised to the image; `rotation` is in radians, clockwise in image coordinates (y down),
 * as in Ultralytics' xywhr.
 */
export function corners(primitive, imageWidth, imageHeight) {
  const cx = primitive.x * imageWidth;
  const cy = primitive.y * imageHeight;
  const halfW = (primitive.width * imageWidth) / 2;
  const halfH = (primitive.height * imageHeight) / 2;
  const cos = Math.cos(primitive.rotation);
  const sin = Math.sin(primitive.rotation);
  return [[-halfW, -halfH], [halfW, -halfH], [halfW, halfH], [-halfW, halfH]].map(([dx, dy]) => [
    cx + dx * cos - dy * sin,
    cy + dx * sin + dy * cos,
  ]);
}

const round = (n) => Math.round(n * 100) / 100;

export class ResultView {
  /** @param {{api, tasks, root: HTMLElement, onClose: () => void, onDelete: (id) => void}} parts */
  constructor({ api, tasks, root, onClose, onDelete }) {
    Object.assign(this, { api, tasks, root, onClose, onDelete });
    const $ = (selector) => root.querySelector(selector);
    this.title = $('#result-title');
    this.status = $('#result-status');
    this.scene = $('#result-scene');
    this.figure = $('#result-figure');
    this.toggles = $('#class-toggles');
    this.filters = $('#result-filters');
    this.threshold = $('#threshold');
    this.thresholdValue = $('#threshold-value');
    this.shown = $('#shown-count');
    this.downloadJson = $('#download-json');
    this.downloadPng = $('#download-png');
    this.classColours = new Map(); // class name → colour, stable across results
    this.id = null;
    this.seq = 0; // each show() and update() gets a number; answers for an older one are dropped
    this.imageUrl = null;
    this.result = null;

    $('#result-close').addEventListener('click', () => this.onClose());
    $('#delete-task').addEventListener('click', () => this.id && this.onDelete(this.id));
    this.threshold.addEventListener('input', () => this.applyFilters());
    this.toggles.addEventListener('change', () => this.applyFilters());
    this.downloadJson.addEventListener('click', () => this.saveJson());
    this.downloadPng.addEventListener('click', () => this.savePng());
    new ResizeObserver(() => this.layoutLabels()).observe(this.figure);
    tasks.subscribe((id, task) => {
      if (id !== this.id) return;
      if (task === null) this.onClose();
      else if (!this.result && this.imageUrl) this.update(task);
    });
  }

  /** Colours follow the detector's class list (GET /models), so a class keeps its colour. */
  setClasses(names) {
    names.forEach((name, index) => this.classColours.set(name, PALETTE[index % PALETTE.length]));
  }

  colour(name) {
    if (!this.classColours.has(name)) this.classColours.set(name, PALETTE[this.classColours.size % PALETTE.length]);
    return this.classColours.get(name);
  }

  async show(id) {
    const seq = ++this.seq;
    this.reset();
    this.id = id;
    this.root.hidden = false;
    this.title.textContent = this.tasks.name(id);
    this.say('Loading…');
    let task = this.tasks.get(id);
    try {
      if (!task) task = await this.api.json(`${API}/tasks/${encodeURIComponent(id)}`);
      const image = await this.api.blob(`${API}/tasks/${encodeURIComponent(id)}/input`);
      if (seq !== this.seq) return;
      this.imageUrl = URL.createObjectURL(image);
    } catch (err) {
      if (seq !== this.seq) return;
      this.say(err instanceof ApiError && err.status === 404 ? 'This task no longer exists.' : describeError(err), 'error');
      return;
    }
    this.title.focus({ preventScroll: true });
    this.root.scrollIntoView({ block: 'start' });
    await this.update(this.tasks.get(id) || task);
  }

  /** Show the task's state; draw its result once it has succeeded. */
  async update(task) {
    // Updates may overlap (running, then succeeded): only the latest one may draw.
    const seq = ++this.seq;
    const current = () => seq === this.seq;
    this.root.dataset.status = task.status;
    if (task.status === 'failed') {
      this.say(`This task failed: ${task.error || 'no reason given'}`, 'error');
      await this.draw(null, current);
      return;
    }
    if (task.status !== 'succeeded') {
      const attempt = task.attempts ? ` (attempt ${task.attempts} of ${task.max_attempts})` : '';
      this.say(`Waiting for the result: the task is ${task.status}${attempt}…`);
      await this.draw(null, current);
      return;
    }
    try {
      const result = await this.tasks.result(task.id);
      if (!current()) return;
      this.result = result;
      this.say('');
      await this.draw(result, current);
    } catch (err) {
      if (current()) this.say(describeError(err), 'error');
    }
  }

  reset() {
    if (this.imageUrl) URL.revokeObjectURL(this.imageUrl);
    this.imageUrl = null;
    this.result = null;
    this.id = null;
    this.figure.replaceChildren();
    this.scene.replaceChildren();
    this.toggles.replaceChildren();
    this.filters.hidden = true;
    this.threshold.value = '0';
    this.thresholdValue.textContent = '0.00';
    this.downloadJson.disabled = true;
    this.downloadPng.disabled = true;
    delete this.root.dataset.status;
  }

  hide() {
    this.seq += 1;
    this.reset();
    this.root.hidden = true;
  }

  say(text, kind = 'info') {
    this.status.textContent = text;
    this.status.dataset.kind = kind;
    this.status.hidden = !text;
  }

  /** The image, and with a result its boxes, scene and filters. */
  async draw(result, current) {
    let width;
    let height;
    if (result) {
      ({ width, height } = result.image);
    } else {
      const probe = new Image();
      probe.src = this.imageUrl;
      try {
        await probe.decode();
      } catch {
        // the browser cannot show this format (the server accepted it): no picture
      }
      if (!current()) return;
      width = probe.naturalWidth || 1;
      height = probe.naturalHeight || 1;
    }
    const picture = svg('svg', {
      id: 'result-svg', viewBox: `0 0 ${width} ${height}`, role: 'img',
      'aria-label': result ? `${result.primitives.length} primitives found` : 'The uploaded image',
    },
    svg('image', { href: this.imageUrl, x: 0, y: 0, width, height, preserveAspectRatio: 'none' }),
    );
    picture.style.aspectRatio = `${width} / ${height}`;
    if (result) {
      for (const primitive of result.primitives) picture.append(this.shape(primitive, width, height));
    }
    this.figure.replaceChildren(picture);
    if (!result) return;
    this.layoutLabels();
    this.showScene(result.scene);
    this.showToggles(result.primitives);
    this.downloadJson.disabled = false;
    this.downloadPng.disabled = false;
    this.applyFilters();
  }

  /** One primitive: its rotated box as a polygon, and a label "class 0.97" by its top corner. */
  shape(primitive, width, height) {
    const points = corners(primitive, width, height);
    const colour = this.colour(primitive.class_name);
    const data = { class: primitive.class_name, confidence: String(primitive.confidence) };
    const [topX, topY] = points.reduce((best, point) => (point[1] < best[1] ? point : best));
    return svg('g', { class: 'primitive', 'data-class': data.class, 'data-confidence': data.confidence },
      svg('polygon', {
        points: points.map(([x, y]) => `${round(x)},${round(y)}`).join(' '),
        stroke: colour, 'data-class': data.class, 'data-confidence': data.confidence,
      }),
      svg('text', { fill: colour, 'data-x': round(topX), 'data-y': round(topY) },
        `${primitive.class_name} ${primitive.confidence.toFixed(2)}`),
    );
  }

  /**
   * Size the labels for the picture's size on screen (the SVG scales with the page), then place
   * each above its box's top corner, or below it when that would leave the image.
   */
  layoutLabels() {
    const picture = this.figure.querySelector('svg');
    const onScreen = picture?.getBoundingClientRect().width;
    if (!onScreen) return; // not shown (yet)
    const width = picture.viewBox.baseVal.width;
    const scale = width / onScreen; // image pixels per screen pixel
    const size = LABEL_PX * scale;
    picture.style.setProperty('--label-size', `${size}px`);
    picture.style.setProperty('--label-halo', `${3 * scale}px`);
    for (const label of picture.querySelectorAll('text')) {
      const x = Number(label.dataset.x);
      const y = Number(label.dataset.y);
      const above = y - size * 0.3;
      label.setAttribute('y', round(above - size < 0 ? y + size * 1.1 : above));
      label.setAttribute('x', round(Math.max(0, Math.min(x, width - label.getComputedTextLength()))));
    }
  }

  showScene(scene) {
    this.scene.replaceChildren(
      el('p', { class: 'scene-name' }, 'Scene: ', el('strong', {}, scene.class_name), ` (${scene.confidence.toFixed(2)})`),
      el('ol', { class: 'top-k', 'aria-label': 'Most likely scenes' },
        ...scene.top_k.map((entry) => el('li', {},
          el('span', { class: 'top-k-name' }, entry.class_name),
          el('meter', { min: 0, max: 1, value: entry.confidence }),
          el('span', { class: 'top-k-score' }, entry.confidence.toFixed(2)),
        )),
      ),
    );
  }

  showToggles(primitives) {
    const counts = new Map();
    for (const primitive of primitives) counts.set(primitive.class_name, (counts.get(primitive.class_name) || 0) + 1);
    const boxes = [...counts].sort().map(([name, count]) => {
      const swatch = el('span', { class: 'swatch' });
      swatch.style.background = this.colour(name);
      return el('label', { class: 'toggle' },
        el('input', { type: 'checkbox', name: 'class', value: name, checked: true }), swatch, ` ${name} (${count})`);
    });
    this.toggles.replaceChildren(...boxes);
    this.filters.hidden = primitives.length === 0;
  }

  /** Hide the boxes of unticked classes and those under the confidence threshold. */
  applyFilters() {
    const threshold = Number(this.threshold.value);
    this.thresholdValue.textContent = threshold.toFixed(2);
    const hiddenClasses = new Set(
      [...this.toggles.querySelectorAll('input[type=checkbox]')].filter((box) => !box.checked).map((box) => box.value),
    );
    const shapes = [...this.figure.querySelectorAll('g.primitive')];
    let shown = 0;
    for (const shape of shapes) {
      const visible = !hiddenClasses.has(shape.dataset.class) && Number(shape.dataset.confidence) >= threshold;
      shape.style.display = visible ? '' : 'none';
      shown += visible ? 1 : 0;
    }
    this.shown.textContent = this.result ? `${shown} of ${shapes.length} primitives shown` : '';
  }

  fileStem() {
    return `primscene-${this.id}`;
  }

  saveJson() {
    if (!this.result) return;
    saveBlob(new Blob([JSON.stringify(this.result, null, 2)], { type: 'application/json' }), `${this.fileStem()}.json`);
  }

  async savePng() {
    const id = this.id;
    this.downloadPng.disabled = true;
    try {
      const image = await this.api.blob(`${API}/tasks/${encodeURIComponent(id)}/result.png`);
      saveBlob(image, `primscene-${id}.png`);
    } catch (err) {
      if (id === this.id) this.say(`The annotated image could not be downloaded: ${describeError(err)}`, 'error');
    } finally {
      if (id === this.id) this.downloadPng.disabled = false;
    }
  }
}
