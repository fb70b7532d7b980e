// The login form and the session: the access token lives in sessionStorage (gone when the tab
// closes), with its expiry time, so an expired session sends the user back to the form.

const KEY = 'primscene.session';
export const EXPIRED_MESSAGE = 'Your session has expired, log in again';

/** @returns {{token: string, username: string, expiresAt: number} | null} */
export function loadSession() {
  try {
    const session = JSON.parse(sessionStorage.getItem(KEY));
    return session && typeof session.token === 'string' ? session : null;
  } catch {
    return null;
  }
}

export function saveSession(session) {
  sessionStorage.setItem(KEY, JSON.stringify(session));
}

export function clearSession() {
  sessionStorage.removeItem(KEY);
}

export const isExpired = (session) => typeof session.expiresAt === 'number' && Date.now() >= session.expiresAt;

/**
 * Wire the login form. `onLoggedIn(session)` runs after a successful login.
 * Returns `show(message, kind)` to display the form with a message.
 */
export function setupLogin({ form, message, api, describeError, onLoggedIn }) {
  function show(text = '', kind = 'info') {
    message.textContent = text;
    message.dataset.kind = kind;
    message.hidden = !text;
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const username = form.elements.username.value.trim();
    const password = form.elements.password.value;
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    show('Logging in…');
    try {
      const token = await api.login(username, password);
      const session = { token: token.access_token, username, expiresAt: Date.now() + token.expires_in * 1000 };
      saveSession(session);
      form.reset();
      show();
      onLoggedIn(session);
    } catch (err) {
      show(describeError(err), 'error');
    } finally {
      button.disabled = false;
    }
  });
  return show;
}
