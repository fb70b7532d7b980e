// The live task list. It follows the caller's event stream (GET /api/v1/events): a `task`
// event carries a task as GET /tasks/{id} returns it, a `deleted` event the id of a task that is
// gone. When a task succeeds its result is fetched once, for the scene name. No polling.

import { API, ApiError, describeError } from './api.js';
import { el, formatTime, shortId } from './dom.js';

const RESULT_FETCHES = 4; // results fetched at once, e.g. for a first list full of finished tasks

const STATE_TEXT = {
  connecting: 'connecting…',
  live: 'live',
  reconnecting: 'reconnecting…',
  closed: 'not updating',
};

export class TaskList {
  /**
   * @param {{api, list: HTMLElement, empty: HTMLElement, state: HTMLElement,
   *          onOpen: (id) => void, onDelete: (id) => void}} parts
   */
  constructor({ api, list, empty, state, onOpen, onDelete }) {
    Object.assign(this, { api, list, empty, state, onOpen, onDelete });
    this.tasks = new Map();    // id → task
    this.rows = new Map();     // id → <li>
    this.results = new Map();  // id → Promise of its result
    this.names = new Map();    // id → file name, for uploads made in this tab
    this.listeners = new Set();
    this.fetching = 0;
    this.waiting = [];         // result fetches waiting for a free slot
    this.controller = null;
  }

  /** Follow the event stream until stop(). */
  start() {
    this.stop();
    this.controller = new AbortController();
    this.api.followEvents(`${API}/events`, {
      signal: this.controller.signal,
      onEvent: (event) => this.onEvent(event),
      onState: (state, info) => {
        this.state.textContent = STATE_TEXT[state] || state;
        this.state.dataset.state = state;
        if (info?.error && info.error.status !== 401) this.state.textContent = `not updating: ${describeError(info.error)}`;
        if (info?.reconnected) this.reconcile();
      },
    });
  }

  stop() {
    this.controller?.abort();
    this.controller = null;
  }

  /** Forget everything (log out). */
  clear() {
    this.stop();
    this.tasks.clear();
    this.rows.clear();
    this.results.clear();
    this.names.clear();
    this.waiting = [];
    this.list.replaceChildren();
    this.empty.hidden = false;
  }

  /** Call `fn(id, task|null)` whenever a task changes or (null) disappears. */
  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  get(id) {
    return this.tasks.get(id) || null;
  }

  name(id) {
    return this.names.get(id) || `Task ${shortId(id)}`;
  }

  onEvent(event) {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return; // not ours to understand
    }
    if (event.type === 'task') this.upsert(data);
    else if (event.type === 'deleted') this.remove(data.id);
  }

  /** A task we just uploaded: show it at once (its events follow). */
  added(task, filename) {
    if (filename) this.names.set(task.id, filename);
    // Its events may have come first (a newer state, which upsert keeps): name that row too.
    const known = this.tasks.get(task.id);
    if (known) this.render(known);
    this.upsert(task);
  }

  upsert(task) {
    const known = this.tasks.get(task.id);
    // Events and our own answers may cross: never go back to an older state of a task.
    if (known && (task.attempts < known.attempts || (task.attempts === known.attempts && finished(known) && !finished(task)))) return;
    this.tasks.set(task.id, task);
    if (task.status === 'succeeded') this.loadResult(task.id);
    this.render(task);
    for (const fn of this.listeners) fn(task.id, task);
  }

  remove(id) {
    this.tasks.delete(id);
    this.results.delete(id);
    this.rows.get(id)?.remove();
    this.rows.delete(id);
    this.empty.hidden = this.tasks.size > 0;
    for (const fn of this.listeners) fn(id, null);
  }

  /**
   * After a reconnection the stream announces the current tasks again, but not those deleted
   * while we were away: drop the ones the list no longer has.
   */
  async reconcile() {
    const before = new Set(this.tasks.keys());
    try {
      const page = await this.api.json(`${API}/tasks?limit=100`);
      const present = new Set(page.items.map((task) => task.id));
      for (const id of before) if (!present.has(id) && this.tasks.has(id)) this.remove(id);
    } catch {
      // the next event or reconnection will do
    }
  }

  /** The result of a succeeded task, fetched once (a Promise). */
  result(id) {
    if (!this.results.has(id)) {
      const promise = this.throttled(() => this.api.json(`${API}/tasks/${encodeURIComponent(id)}/result`));
      promise.catch(() => this.results.delete(id)); // try again next time
      this.results.set(id, promise);
    }
    return this.results.get(id);
  }

  loadResult(id) {
    this.result(id)
      .then(() => {
        const task = this.tasks.get(id);
        if (task) this.render(task);
      })
      .catch((err) => {
        if (!(err instanceof ApiError && err.status === 404)) console.warn('result of', id, err);
      });
  }

  /** Run `fn` when fewer than RESULT_FETCHES are running. */
  throttled(fn) {
    return new Promise((resolve, reject) => {
      const run = () => {
        this.fetching += 1;
        fn().then(resolve, reject).finally(() => {
          this.fetching -= 1;
          this.waiting.shift()?.();
        });
      };
      if (this.fetching < RESULT_FETCHES) run();
      else this.waiting.push(run);
    });
  }

  render(task) {
    let row = this.rows.get(task.id);
    if (!row) {
      row = el('li', { class: 'task', dataset: { id: task.id } });
      this.rows.set(task.id, row);
      this.insert(row, task);
    }
    row.dataset.status = task.status;
    const scene = el('span', { class: 'task-scene' });
    if (task.status === 'succeeded') {
      scene.textContent = '…';
      this.sceneText(task.id).then((text) => { scene.textContent = text; });
    }
    const attempts = task.attempts > 1 ? ` · attempt ${task.attempts} of ${task.max_attempts}` : '';
    const parts = [
      el('button', { type: 'button', class: 'task-open', title: 'Show this task', onclick: () => this.onOpen(task.id) },
        el('span', { class: 'task-name' }, this.name(task.id)),
        el('span', { class: `badge status-${task.status}` }, task.status),
        scene,
      ),
      el('span', { class: 'task-meta' }, `${formatTime(task.created_at)}${attempts}`),
      el('button', { type: 'button', class: 'task-delete small danger', title: 'Delete this task', onclick: () => this.onDelete(task.id) }, 'Delete'),
    ];
    // A queued task may carry the error of its previous attempt; a failed one, why it failed.
    if (task.error) parts.push(el('span', { class: 'task-error' }, task.error));
    row.replaceChildren(...parts);
    this.empty.hidden = true;
  }

  async sceneText(id) {
    try {
      const result = await this.result(id);
      return `${result.scene.class_name} ${result.scene.confidence.toFixed(2)}`;
    } catch {
      return '';
    }
  }

  /** Keep the list newest first. */
  insert(row, task) {
    const newer = (other) => (this.tasks.get(other.dataset.id)?.created_at || '') > task.created_at;
    const before = [...this.list.children].find((other) => !newer(other));
    this.list.insertBefore(row, before || null);
  }
}

const finished = (task) => task.status === 'succeeded' || task.status === 'failed';
