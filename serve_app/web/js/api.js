// The HTTP API (/api/v1) as the web app uses it: a fetch() wrapper that adds the bearer token
// and turns error answers into ApiError (with the server's `detail` and `Retry-After`), and a
// reader of Server-Sent Events streams.

import { SseParser } from './sse.js';

export const API = '/api/v1';

export class ApiError extends Error {
  /**
   * @param {number} status  HTTP status, or 0 when the server could not be reached
   * @param {string} detail  what the server said went wrong
   * @param {number|null} retryAfter  seconds from the Retry-After header, if any
   */
  constructor(status, detail, retryAfter = null) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }
}

/** The `detail` of an error body: a sentence, or FastAPI's list of validation issues. */
function detailOf(body, response) {
  const detail = body && body.detail;
  if (typeof detail === 'string') return detail;
  if (Array.isArray(detail)) {
    return detail.map((issue) => [issue.loc?.slice(1).join('.'), issue.msg].filter(Boolean).join(': ')).join('; ');
  }
  return `${response.status} ${response.statusText || 'error'}`;
}

async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON (e.g. a proxy's HTML page): fall back to the status line
  }
  const header = response.headers.get('Retry-After');
  const retryAfter = header && /^\d+$/.test(header.trim()) ? Number(header) : null;
  return new ApiError(response.status, detailOf(body, response), retryAfter);
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
  });

export class Api {
  /**
   * @param {{token: () => string|null, onUnauthorized: (error: ApiError) => void}} options
   *   `token` gives the current access token; `onUnauthorized` is called when the server
   *   answers 401 to an authenticated request (the token expired or is invalid).
   */
  constructor({ token, onUnauthorized }) {
    this.token = token;
    this.onUnauthorized = onUnauthorized;
  }

  /** fetch() with the bearer token; resolves to the Response when it is 2xx, else throws ApiError. */
  async fetch(path, options = {}) {
    const headers = new Headers(options.headers || {});
    const token = this.token();
    if (token) headers.set('Authorization', `Bearer ${token}`);
    let response;
    try {
      response = await fetch(path, { ...options, headers });
    } catch (err) {
      if (err.name === 'AbortError') throw err;
      throw new ApiError(0, 'The server could not be reached; check your connection.');
    }
    if (response.ok) return response;
    const error = await errorFrom(response);
    if (response.status === 401 && token) this.onUnauthorized(error);
    throw error;
  }

  async json(path, options) {
    const response = await this.fetch(path, options);
    return response.status === 204 ? null : response.json();
  }

  async blob(path, options) {
    return (await this.fetch(path, options)).blob();
  }

  /** POST /auth/token: username and password → {access_token, expires_in, …}. */
  login(username, password) {
    const body = new URLSearchParams({ username, password });
    return this.json(`${API}/auth/token`, { method: 'POST', body });
  }

  /** POST /tasks with one file as the multipart field `image`; resolves to the queued task. */
  upload(file) {
    const body = new FormData();
    body.append('image', file, file.name);
    return this.json(`${API}/tasks`, { method: 'POST', body });
  }

  deleteTask(id) {
    return this.json(`${API}/tasks/${encodeURIComponent(id)}`, { method: 'DELETE' });
  }

  /**
   * Follow a Server-Sent Events stream until `signal` aborts, reconnecting (with a growing
   * delay) when the connection drops or the server ends it. Stops for good on 401 (handled by
   * onUnauthorized) or any other 4xx except 429.
   *
   * @param {string} path
   * @param {{onEvent: Function, onState?: Function, signal: AbortSignal}} handlers
   *   onEvent({type, data, id}) for each event; onState('connecting'|'live'|'reconnecting'|'closed').
   */
  async followEvents(path, { onEvent, onState = () => {}, signal }) {
    let retryMs = 1000;
    let failures = 0;
    let lastEventId = '';
    let connectedBefore = false;
    while (!signal.aborted) {
      onState(connectedBefore ? 'reconnecting' : 'connecting');
      try {
        const headers = { Accept: 'text/event-stream' };
        if (lastEventId) headers['Last-Event-ID'] = lastEventId;
        const response = await this.fetch(path, { headers, signal, cache: 'no-store' });
        onState('live', { reconnected: connectedBefore });
        connectedBefore = true;
        failures = 0;
        const parser = new SseParser(
          (event) => { lastEventId = event.id; onEvent(event); },
          (ms) => { retryMs = ms; },
        );
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          parser.push(value);
        }
        // The server ended the stream; an unfinished event at the end is dropped (as the standard says).
      } catch (err) {
        if (signal.aborted) break;
        if (err instanceof ApiError && err.status >= 400 && err.status < 500 && err.status !== 429) {
          onState('closed', { error: err });
          return;
        }
        failures += 1;
      }
      if (signal.aborted) break;
      onState('reconnecting');
      await sleep(Math.min(retryMs * 2 ** failures, 30_000), signal);
    }
    onState('closed');
  }
}

/** A sentence for the user about a failed request, naming the wait when the server asked for one. */
export function describeError(err) {
  if (!(err instanceof ApiError)) return `Something went wrong: ${err.message || err}`;
  if (err.retryAfter != null && (err.status === 429 || err.status === 503)) {
    const seconds = err.retryAfter === 1 ? '1 second' : `${err.retryAfter} seconds`;
    return `${err.detail} (the server asks to wait ${seconds} before trying again)`;
  }
  return err.detail;
}
