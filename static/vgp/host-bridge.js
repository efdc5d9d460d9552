/*
 * Vanilla Game Platform — host bridge, loaded by the play page.
 *
 * The game runs in <iframe sandbox="allow-scripts">: an opaque origin with no
 * cookies and no network. Its SDK posts requests here; this page, which is
 * trusted and same-origin, forwards them with a short-lived token scoped to the
 * game and the player, and posts the answers back. The token never enters the
 * frame. Chat, streams and conversation turns share one WebSocket
 * (/ws/inference/), with plain HTTP when the socket cannot be had; everything
 * else is HTTP. The socket also joins the rooms of the conversations the game
 * created or joined, and passes their turns on to the game as `room` messages.
 * Protocol: docs/games.md.
 */
import "./game-sdk.js";

const { HttpTransport, VGPError, PROTOCOL } = globalThis.VGP;
const CHAT_FIELDS = ["messages", "model", "system", "max_tokens", "temperature", "top_p", "stop"];
const HTTP_OPS = new Set([
  "usage",
  "models",
  "conversation.create",
  "conversation.send",
  "conversation.get",
  "conversation.join",
  "conversation.delete",
  "conversation.invite",
]);
const ROOM_RETRY_MS = 2000;
const SOCKET_RETRY_MS = 30000;
// Renew the token a little before it expires, so long sessions keep working.
const RENEW_MARGIN_S = 120;

const config = JSON.parse(document.getElementById("vgp-bridge-config").textContent);
const frame = document.getElementById("game-frame");
const statusBadge = document.getElementById("play-connection");
const usageToday = document.getElementById("play-usage-today");
let http = new HttpTransport({ baseUrl: location.origin, token: config.token, apiPath: config.apiBase });
let todayTokens = Number((usageToday && usageToday.textContent.replace(/\D/g, "")) || 0);

function setStatus(state, label) {
  if (!statusBadge) return;
  statusBadge.dataset.state = state;
  statusBadge.textContent = label;
}

function countUsage(usage) {
  if (!usage || !usageToday) return;
  todayTokens += Number(usage.total_tokens || 0);
  usageToday.textContent = todayTokens.toLocaleString("en-US");
}

function post(message) {
  // The sandboxed frame's origin is opaque ("null"), so "*" is the only target
  // that reaches it; the messages carry replies, never credentials.
  if (frame.contentWindow) frame.contentWindow.postMessage({ vgp: PROTOCOL, ...message }, "*");
}

function errorOf(error) {
  const e = VGPError.from(error);
  return { code: e.code, message: e.message, ...e.details };
}

/* --- Token renewal ---------------------------------------------------------- */

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

async function renewToken() {
  try {
    const response = await fetch(config.renewUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const data = await response.json();
    config.token = data.token;
    http = new HttpTransport({ baseUrl: location.origin, token: data.token, apiPath: config.apiBase });
    socket.reset(); // the socket authenticated with the old token
    if (socket.rooms.size) socket.open().catch(() => {});
    scheduleRenewal(data.expires_in);
  } catch (_) {
    setStatus("error", "session expired: reload the page");
  }
}

function scheduleRenewal(seconds) {
  const delay = Math.max(30, seconds - RENEW_MARGIN_S) * 1000;
  setTimeout(renewToken, delay);
}

/* --- The one WebSocket ---------------------------------------------------- */

class InferenceSocket {
  constructor() {
    this.ws = null;
    this.opening = null;
    this.handlers = new Map();
    this.unavailableUntil = 0;
    this.counter = 0;
    this.rooms = new Set(); // conversation ids whose turns the game receives
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}${config.websocketPath}`;
  }

  open() {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) return Promise.resolve(this.ws);
    if (this.opening) return this.opening;
    if (Date.now() < this.unavailableUntil || typeof WebSocket === "undefined") {
      return Promise.reject(new Error("socket unavailable"));
    }
    this.opening = new Promise((resolve, reject) => {
      let ws;
      try {
        ws = new WebSocket(this.url(), ["vgp.v1", `bearer.${config.token}`]);
      } catch (error) {
        this.opening = null;
        this.unavailableUntil = Date.now() + SOCKET_RETRY_MS;
        reject(error);
        return;
      }
      ws.onopen = () => {
        this.ws = ws;
        this.opening = null;
        setStatus("live", "connected");
        for (const id of this.rooms) ws.send(JSON.stringify({ type: "join", conversation: id }));
        resolve(ws);
      };
      ws.onmessage = (event) => this.receive(event);
      ws.onclose = () => {
        const wasOpen = this.ws === ws;
        if (!wasOpen) {
          this.opening = null;
          this.unavailableUntil = Date.now() + SOCKET_RETRY_MS;
          setStatus("http", "connected (HTTP)");
          reject(new Error("socket refused"));
        }
        this.ws = null;
        // Requests cut off mid-way cannot be resumed; tell the game.
        for (const handler of this.handlers.values()) {
          handler.fail({ code: "CONNECTION_FAILED", message: "The connection was lost." });
        }
        this.handlers.clear();
        // Rooms are live only over the socket: come back for them.
        if (wasOpen && this.rooms.size) {
          setTimeout(() => this.open().catch(() => {}), ROOM_RETRY_MS);
        }
      };
    });
    return this.opening;
  }

  reset() {
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close();
  }

  /** Receive a conversation's turns (other players'), now and after reconnecting. */
  async join(id) {
    const wasOpen = Boolean(this.ws && this.ws.readyState === WebSocket.OPEN);
    this.rooms.add(id);
    const ws = await this.open(); // a socket that opens now joins every room in `rooms`
    if (wasOpen) ws.send(JSON.stringify({ type: "join", conversation: id }));
  }

  leave(id) {
    if (this.rooms.delete(id) && this.ws) this.ws.send(JSON.stringify({ type: "leave", conversation: id }));
  }

  receive(event) {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch (_) {
      return;
    }
    if (message.type === "token_usage" || message.type === "pong") return;
    if (message.id === undefined) {
      // A room's news: other players' turns, who joined, the join's answer.
      if (typeof message.conversation === "string") post({ type: "room", conversation: message.conversation, event: message });
      return;
    }
    const handler = this.handlers.get(message.id);
    if (!handler) return;
    if (message.type === "stream_chunk") handler.chunk(message.content || "");
    else if (message.type === "stream_end") {
      this.handlers.delete(message.id);
      handler.end(message);
    } else if (message.type === "error") {
      this.handlers.delete(message.id);
      handler.fail(message.error);
    }
  }

  /** Send one inference request; returns a cancel function. */
  request(body, handler) {
    const id = `b${++this.counter}`;
    this.handlers.set(id, handler);
    this.ws.send(JSON.stringify({ type: "inference", id, request: { ...body, stream: true } }));
    return () => {
      if (this.handlers.delete(id) && this.ws) this.ws.send(JSON.stringify({ type: "cancel", id }));
    };
  }
}

const socket = new InferenceSocket();
const active = new Map(); // game request id -> cancel function

/* --- Operations ------------------------------------------------------------ */

function finish(id) {
  active.delete(id);
}

async function runInference(id, op, payload) {
  const body = {};
  for (const name of CHAT_FIELDS) if (payload[name] !== undefined) body[name] = payload[name];
  if (!body.model && config.defaultModel) body.model = config.defaultModel;
  const streaming = op === "stream";
  let text = "";
  const sink = {
    chunk(content) {
      text += content;
      if (streaming) post({ id, type: "chunk", content });
    },
    end(info) {
      finish(id);
      countUsage(info.usage);
      const result = {
        content: text,
        usage: info.usage || null,
        stop_reason: info.stop_reason || info.finish_reason || null,
        model: info.model || body.model || null,
      };
      post(streaming ? { id, type: "end", ...result } : { id, type: "result", result });
    },
    fail(error) {
      finish(id);
      post({ id, type: "error", error: errorOf(error) });
    },
  };
  try {
    await socket.open();
  } catch (_) {
    // No socket (blocked, proxy without WebSocket support…): plain HTTP.
    if (!active.has(id)) return; // cancelled while waiting
    const cancel = http.stream("stream", body, { chunk: sink.chunk, end: sink.end, error: sink.fail });
    active.set(id, cancel);
    return;
  }
  if (!active.has(id)) return;
  active.set(id, socket.request(body, sink));
}

async function runConversationSend(id, payload) {
  const streaming = Boolean(payload.stream);
  const body = { conversation: String(payload.id), messages: [{ role: "user", content: String(payload.content ?? "") }] };
  if (payload.max_tokens !== undefined) body.max_tokens = payload.max_tokens;
  try {
    await socket.open();
  } catch (_) {
    return runHttp(id, "conversation.send", payload);
  }
  if (!active.has(id)) return; // cancelled while waiting
  let text = "";
  // Over the socket, so that the other players in the room see the turn.
  const cancel = socket.request(body, {
    chunk(content) {
      text += content;
      if (streaming) post({ id, type: "chunk", content });
    },
    end(info) {
      finish(id);
      countUsage(info.usage);
      const result = {
        content: text,
        usage: info.usage || null,
        stop_reason: info.finish_reason || null,
        model: info.model || null,
      };
      post(streaming ? { id, type: "end", ...result } : { id, type: "result", result });
    },
    fail(error) {
      finish(id);
      post({ id, type: "error", error: errorOf(error) });
    },
  });
  active.set(id, cancel);
}

async function runHttp(id, op, payload) {
  if (op === "conversation.send" && payload.stream) {
    let text = "";
    const cancel = http.stream(op, payload, {
      chunk(content) {
        text += content;
        post({ id, type: "chunk", content });
      },
      end(info) {
        finish(id);
        countUsage(info.usage);
        post({ id, type: "end", content: text, usage: info.usage || null, stop_reason: info.finish_reason || null, model: info.model || null });
      },
      error(error) {
        finish(id);
        post({ id, type: "error", error: errorOf(error) });
      },
    });
    active.set(id, cancel);
    return;
  }
  try {
    const request = op === "conversation.create" ? { ...payload, game: undefined } : payload;
    const result = await http.call(op, request);
    if (op === "conversation.send") countUsage(result.usage);
    if ((op === "conversation.create" || op === "conversation.join") && result && result.id) {
      socket.join(String(result.id)).catch(() => {}); // no socket: the game polls instead
    }
    if (op === "conversation.delete") socket.leave(String(payload.id));
    if (active.has(id)) post({ id, type: "result", result });
  } catch (error) {
    if (active.has(id)) post({ id, type: "error", error: errorOf(error) });
  } finally {
    finish(id);
  }
}

function handle(message) {
  const { id, op } = message;
  const payload = message.payload && typeof message.payload === "object" ? message.payload : {};
  if (typeof id !== "string" || id.length > 100) return;
  if (op === "cancel") {
    const cancel = active.get(id);
    finish(id);
    if (typeof cancel === "function") cancel();
    return;
  }
  if (active.has(id)) return post({ id, type: "error", error: { code: "INVALID_REQUEST", message: "Duplicate request id." } });
  if (op === "hello") {
    return post({ id, type: "result", result: { protocol: PROTOCOL, game: config.game, default_model: config.defaultModel || null } });
  }
  active.set(id, null);
  if (op === "chat" || op === "stream") return runInference(id, op, payload);
  if (op === "conversation.send") return runConversationSend(id, payload);
  if (op === "conversation.leave") {
    socket.leave(String(payload.id));
    finish(id);
    return post({ id, type: "result", result: null });
  }
  if (HTTP_OPS.has(op)) return runHttp(id, op, payload);
  finish(id);
  post({ id, type: "error", error: { code: "INVALID_REQUEST", message: `Unknown operation ${op}.` } });
}

window.addEventListener("message", (event) => {
  // The frame is sandboxed, so its origin is "null": check who sent it, not from where.
  if (event.source !== frame.contentWindow) return;
  const data = event.data;
  if (!data || data.vgp !== PROTOCOL || typeof data.op !== "string") return;
  handle(data);
});

setStatus("http", "ready");
socket.open().catch(() => {});
scheduleRenewal(config.expiresInS);
