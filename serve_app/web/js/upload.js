// Uploading: drag-and-drop onto the drop zone or the file picker, one or many images. Each file
// gets a line in the upload log: accepted (with its task), or refused with the server's reason.

import { describeError } from './api.js';
import { el, shortId } from './dom.js';

const MAX_LOG_LINES = 30;

/**
 * @param {{api, dropzone: HTMLElement, input: HTMLInputElement, log: HTMLElement,
 *          onUploaded: (task, filename: string) => void}} parts
 */
export function setupUpload({ api, dropzone, input, log, onUploaded }) {
  let queue = Promise.resolve(); // files go up one after another, in the order they came

  function addFiles(files) {
    for (const file of files) {
      const line = el('li', { class: 'upload', dataset: { state: 'waiting' } });
      log.prepend(line);
      while (log.children.length > MAX_LOG_LINES) log.lastElementChild.remove();
      queue = queue.then(() => send(file, line));
    }
  }

  async function send(file, line) {
    setLine(line, 'sending', `${file.name}: uploading…`);
    try {
      const task = await api.upload(file);
      setLine(line, 'accepted', `${file.name}: accepted (task ${shortId(task.id)}).`);
      line.dataset.taskId = task.id;
      onUploaded(task, file.name);
    } catch (err) {
      setLine(line, 'refused', `${file.name}: refused — ${describeError(err)}`);
      line.dataset.status = String(err.status ?? '');
      if (err.retryAfter != null) offerRetry(file, line, err.retryAfter);
    }
  }

  /** After a 429/503, a Retry button that becomes usable once the server's wait is over. */
  function offerRetry(file, line, seconds) {
    const button = el('button', { type: 'button', class: 'small', disabled: true }, `Retry in ${seconds} s`);
    line.append(' ', button);
    const timer = setInterval(() => {
      seconds -= 1;
      if (seconds > 0) {
        button.textContent = `Retry in ${seconds} s`;
        return;
      }
      clearInterval(timer);
      button.textContent = 'Retry';
      button.disabled = false;
    }, 1000);
    button.addEventListener('click', () => {
      queue = queue.then(() => send(file, line));
    });
  }

  function setLine(line, state, text) {
    line.dataset.state = state;
    line.replaceChildren(text);
  }

  input.addEventListener('change', () => {
    addFiles([...input.files]);
    input.value = ''; // choosing the same file again fires `change` again
  });

  // The drop zone: highlight while something is dragged over it, take the files on drop.
  dropzone.addEventListener('dragover', (event) => {
    event.preventDefault();
    event.dataTransfer.dropEffect = 'copy';
    dropzone.classList.add('dragging');
  });
  dropzone.addEventListener('dragleave', (event) => {
    if (!dropzone.contains(event.relatedTarget)) dropzone.classList.remove('dragging');
  });
  dropzone.addEventListener('drop', (event) => {
    event.preventDefault();
    dropzone.classList.remove('dragging');
    addFiles([...(event.dataTransfer?.files || [])]);
  });
  // A file dropped next to the zone must not make the browser navigate away to it.
  for (const type of ['dragover', 'drop']) window.addEventListener(type, (event) => event.preventDefault());
  // Keyboard users open the picker from the zone.
  dropzone.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault();
      input.click();
    }
  });

  return { clear: () => log.replaceChildren() };
}
