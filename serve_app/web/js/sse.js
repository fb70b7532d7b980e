// A small Server-Sent Events parser (the "text/event-stream" format of the HTML standard).
//
// Browsers' EventSource cannot send an Authorization header, so the app reads the stream with
// fetch() and feeds the decoded text to this parser, chunk by chunk. Chunks may split lines
// and events anywhere; the parser keeps what it has not finished.

export class SseParser {
  /**
   * @param {(event: {type: string, data: string, id: string}) => void} onEvent  one call per event
   * @param {(ms: number) => void} [onRetry]  the server asked for another reconnection delay
   */
  constructor(onEvent, onRetry = () => {}) {
    this.onEvent = onEvent;
    this.onRetry = onRetry;
    this.pending = '';     // text after the last complete line
    this.lastEventId = ''; // kept across events, as the standard says
    this.type = '';
    this.data = [];
  }

  /** Feed the next piece of decoded text. */
  push(chunk) {
    let text = this.pending + chunk;
    // Lines end in CRLF, LF or CR. A CR at the very end may be the first half of a CRLF whose LF
    // is in the next chunk: hold it back, or the LF would count as an extra, empty line.
    const heldCR = text.endsWith('\r');
    if (heldCR) text = text.slice(0, -1);
    const lines = text.split(/\r\n|\r|\n/);
    this.pending = lines.pop() + (heldCR ? '\r' : ''); // the unfinished last line
    for (const line of lines) this.line(line);
  }

  line(line) {
    if (line === '') return this.dispatch(); // a blank line ends an event
    if (line.startsWith(':')) return;        // a comment, e.g. a keep-alive
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1); // one optional space after the colon
    if (field === 'event') this.type = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'id' && !value.includes('\0')) this.lastEventId = value;
    else if (field === 'retry' && /^\d+$/.test(value)) this.onRetry(Number(value));
    // Any other field is ignored.
  }

  dispatch() {
    const { type, data } = this;
    this.type = '';
    this.data = [];
    if (data.length === 0) return; // an event without data is not delivered
    this.onEvent({ type: type || 'message', data: data.join('\n'), id: this.lastEventId });
  }
}
