// The dashboard's WebSocket: subscribes to every station, reconnects with capped exponential
// backoff and jitter, and correlates administration requests with their replies.
// A close with 4003 (token missing, invalid or expired) is final: retrying cannot fix it.
// Events: "state" (detail: {state: "connecting" | "open" | "closed" | "refused", retryInMs}) and
// "message" (detail: the parsed JSON object).

const MIN_DELAY_MS = 500;
const MAX_DELAY_MS = 10000;
const REQUEST_TIMEOUT_MS = 10000;
const CLOSE_BAD_TOKEN = 4003;

export function dashboardSocketUrl(location, token = "") {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const credential = token ? `&token=${encodeURIComponent(token)}` : "";
  return `${scheme}//${location.host}/ws?role=client&estacionId=all${credential}`;
}

export class LiveLink extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.state = "connecting";
    this.socket = null;
    this.failures = 0;
    this.nextRequestId = 1;
    this.pending = new Map();
  }

  start() {
    this.open();
  }

  open() {
    this.setState("connecting", 0);
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.failures = 0;
      this.setState("open", 0);
    });
    socket.addEventListener("message", (event) => this.receive(event.data));
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.failPending("connection lost");
      if (event.code === CLOSE_BAD_TOKEN) {
        this.setState("refused", 0);
        return;
      }
      const delay = Math.min(MAX_DELAY_MS, MIN_DELAY_MS * 2 ** this.failures);
      const jittered = Math.round(delay * (0.5 + Math.random() / 2));
      this.failures += 1;
      this.setState("closed", jittered);
      setTimeout(() => this.open(), jittered);
    });
  }

  setState(state, retryInMs) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, retryInMs } }));
  }

  receive(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return; // the server only sends JSON; a broken frame is not worth a crash
    }
    if (!message || typeof message !== "object") return;
    const waiter = message.request_id != null && this.pending.get(message.request_id);
    if (waiter && (message.type === "admin_result" || message.type === "error")) {
      this.pending.delete(message.request_id);
      clearTimeout(waiter.timer);
      waiter.resolve(message);
    }
    this.dispatchEvent(new CustomEvent("message", { detail: message }));
  }

  send(message) {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(message));
    return true;
  }

  // Send an administration message; resolves with the admin_result or error reply.
  request(message) {
    const requestId = this.nextRequestId++;
    return new Promise((resolve) => {
      if (!this.send({ ...message, request_id: requestId })) {
        resolve({ type: "error", code: "NOT_CONNECTED", message: "Not connected to the server" });
        return;
      }
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        resolve({ type: "error", code: "TIMEOUT", message: "The server did not answer" });
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(requestId, { resolve, timer });
    });
  }

  failPending(reason) {
    for (const [requestId, waiter] of this.pending) {
      clearTimeout(waiter.timer);
      waiter.resolve({ type: "error", code: "NOT_CONNECTED", message: reason, request_id: requestId });
    }
    this.pending.clear();
  }
}
