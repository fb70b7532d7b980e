// Start-up and wiring: log-in form or app, the live task list, uploads, the result view, and
// `#/tasks/{id}` in the address bar for the task on show (so Back closes it).

import { API, Api, ApiError, describeError } from './api.js';
import { EXPIRED_MESSAGE, clearSession, isExpired, loadSession, setupLogin } from './auth.js';
import { ResultView } from './result.js';
import { TaskList } from './tasks.js';
import { setupUpload } from './upload.js';

const $ = (selector) => document.querySelector(selector);

let session = loadSession();
let expiryTimer = null;

const api = new Api({
  token: () => session?.token ?? null,
  onUnauthorized: () => logOut(EXPIRED_MESSAGE),
});

const showLogin = setupLogin({
  form: $('#login-form'),
  message: $('#login-message'),
  api,
  describeError,
  onLoggedIn: (started) => {
    session = started;
    enter();
  },
});

const tasks = new TaskList({
  api,
  list: $('#task-list'),
  empty: $('#tasks-empty'),
  state: $('#stream-state'),
  onOpen: (id) => { location.hash = `#/tasks/${id}`; },
  onDelete: (id) => deleteTask(id),
});

const result = new ResultView({
  api,
  tasks,
  root: $('#result-view'),
  onClose: () => closeResult(),
  onDelete: (id) => deleteTask(id),
});

const uploads = setupUpload({
  api,
  dropzone: $('#dropzone'),
  input: $('#file-input'),
  log: $('#upload-log'),
  onUploaded: (task, filename) => tasks.added(task, filename),
});

async function deleteTask(id) {
  if (!confirm(`Delete “${tasks.name(id)}” with its image and result?`)) return;
  try {
    await api.deleteTask(id);
    tasks.remove(id); // the stream's `deleted` event follows; removing twice is harmless
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) tasks.remove(id); // already gone
    else alert(`The task could not be deleted: ${describeError(err)}`);
  }
}

/** The task named in the address bar, if any. */
function route() {
  if (!session) return;
  const match = /^#\/tasks\/([0-9a-f-]{36})$/i.exec(location.hash);
  document.body.classList.toggle('showing-result', Boolean(match));
  if (match) {
    if (match[1] !== result.id) result.show(match[1]);
  } else {
    result.hide();
  }
}

function closeResult() {
  history.pushState(null, '', location.pathname + location.search);
  route();
}

/** Show the app for the current session. */
function enter() {
  $('#login-view').hidden = true;
  $('#app-view').hidden = false;
  $('#user-box').hidden = false;
  $('#user-name').textContent = session.username;
  clearTimeout(expiryTimer);
  if (typeof session.expiresAt === 'number') {
    // setTimeout holds at most ~24 days; tokens live far less.
    expiryTimer = setTimeout(() => logOut(EXPIRED_MESSAGE), Math.max(0, session.expiresAt - Date.now()));
  }
  tasks.start();
  api.json(`${API}/models`)
    .then((models) => result.setClasses(models.find((m) => m.kind === 'detector')?.classes || []))
    .catch(() => {}); // colours then follow the order classes appear in
  route();
}

/** Back to the login form, forgetting the session (and showing why, if given). */
function logOut(message = '') {
  clearTimeout(expiryTimer);
  const wasIn = session !== null;
  session = null;
  clearSession();
  tasks.clear();
  result.hide();
  uploads.clear();
  document.body.classList.remove('showing-result');
  $('#app-view').hidden = true;
  $('#user-box').hidden = true;
  $('#login-view').hidden = false;
  if (wasIn || message) showLogin(message, message ? 'warning' : 'info');
  $('#login-form').elements.username.focus();
}

$('#logout').addEventListener('click', () => logOut());
window.addEventListener('hashchange', route);

if (session && !isExpired(session)) enter();
else logOut(session ? EXPIRED_MESSAGE : '');
