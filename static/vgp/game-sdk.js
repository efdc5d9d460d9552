/*
 * Vanilla Game Platform — game SDK.
 *
 *   <script src="/static/vgp/game-sdk.js"></script>      // sets window.VGP
 *   import "/static/vgp/game-sdk.js";                      // same, from a module
 *   import VGP, { connect } from "/static/vgp/game-sdk.mjs";
 *
 *   const ai = await VGP.connect();
 *   const reply = await ai.chat({ messages: [{ role: "user", content: "Hi" }] });
 *   for await (const text of ai.stream({ messages })) show(text);
 *
 * Inside the platform's play page (a sandboxed iframe) the SDK talks to the
 * page by postMessage ("bridge mode"); the page holds the credentials. A game
 * hosted elsewhere passes { baseUrl, token } and calls the HTTP API itself
 * ("direct mode"). The reference is docs/games.md.
 *
 * No exports on purpose: the same file works as a classic script and as a
 * side-effect module import. game-sdk.mjs re-exports it for named imports.
 */
(function (global) {
  "use strict";

  const PROTOCOL = 1;
  const CHAT_FIELDS = ["messages", "model", "system", "max_tokens", "temperature", "top_p", "stop"];

  class VGPError extends Error {
    constructor(code, message, details) {
      super(message || code);
      this.name = "VGPError";
      this.code = code || "UNKNOWN_ERROR";
      this.details = details || {};
    }

    static from(error) {
      if (error instanceof VGPError) return error;
      if (error && typeof error === "object" && error.code) {
        const { code, message, ...details } = error;
        return new VGPError(code, message, details);
      }
      if (error && error.name === "AbortError") return new VGPError("CANCELLED", "The request was cancelled.");
      return new VGPError("CONNECTION_FAILED", (error && error.message) || String(error));
    }
  }

  function pick(source, fields) {
    const out = {};
    for (const name of fields) if (source && source[name] !== undefined) out[name] = source[name];
    return out;
  }

  /*
   * A stream of text chunks, readable with `for await`. Breaking out of the
   * loop (or calling cancel()) cancels the request. When the loop ends,
   * `.usage`, `.stopReason`, `.model` and `.text` describe the whole reply.
   */
  class ChunkStream {
    constructor(start) {
      this._queue = [];
      this._waiting = null;
      this._done = false;
      this._error = null;
      this._cancel = null;
      this.text = "";
      this.usage = null;
      this.stopReason = null;
      this.model = null;
      const sink = {
        chunk: (content) => this._push({ value: content, done: false }),
        end: (info) => {
          Object.assign(this, {
            usage: (info && info.usage) || null,
            stopReason: (info && (info.stop_reason || info.finish_reason)) || null,
            model: (info && info.model) || this.model,
          });
          this._finish(null);
        },
        error: (error) => this._finish(VGPError.from(error)),
      };
      try {
        this._cancel = start(sink) || null;
      } catch (error) {
        this._finish(VGPError.from(error));
      }
    }

    _push(item) {
      if (this._done) return;
      this.text += item.value;
      if (this._waiting) {
        const { resolve } = this._waiting;
        this._waiting = null;
        resolve(item);
      } else {
        this._queue.push(item);
      }
    }

    _finish(error) {
      if (this._done) return;
      this._done = true;
      this._error = error;
      if (this._waiting) {
        const { resolve, reject } = this._waiting;
        this._waiting = null;
        if (error) reject(error);
        else resolve({ value: undefined, done: true });
      }
    }

    next() {
      if (this._queue.length) return Promise.resolve(this._queue.shift());
      if (this._done) {
        if (this._error) {
          const error = this._error;
          this._error = null; // thrown once; later calls just end
          return Promise.reject(error);
        }
        return Promise.resolve({ value: undefined, done: true });
      }
      return new Promise((resolve, reject) => {
        this._waiting = { resolve, reject };
      });
    }

    return() {
      this.cancel();
      return Promise.resolve({ value: undefined, done: true });
    }

    cancel() {
      if (!this._done && this._cancel) this._cancel();
      this._queue = [];
      this._finish(null);
    }

    [Symbol.asyncIterator]() {
      return this;
    }

    /** Read the stream to its end; resolves to the reply like chat() does. */
    async collect() {
      for await (const _ of this) void _;
      return { content: this.text, usage: this.usage, stop_reason: this.stopReason, model: this.model };
    }
  }

  /* --- Direct mode: the platform's HTTP API with a bearer token ----------- */

  async function* sseEvents(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) !== -1) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const data = block
          .split("\n")
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).replace(/^ /, ""))
          .join("\n");
        if (data && data !== "[DONE]") yield JSON.parse(data);
      }
    }
  }

  class HttpTransport {
    constructor({ baseUrl = "", token, apiPath = "/api/inference", fetch: fetchImpl } = {}) {
      if (!token) throw new VGPError("UNAUTHORIZED", "Direct mode needs a token: VGP.connect({ baseUrl, token }).");
      this.root = String(baseUrl).replace(/\/+$/, "") + apiPath;
      this.token = token;
      this.fetch = fetchImpl || global.fetch.bind(global);
      this.mode = "direct";
    }

    async _request(method, path, body, signal) {
      let response;
      try {
        response = await this.fetch(this.root + path, {
          method,
          signal,
          headers: {
            Authorization: `Bearer ${this.token}`,
            Accept: body && body.stream ? "text/event-stream" : "application/json",
            ...(body ? { "Content-Type": "application/json" } : {}),
          },
          body: body ? JSON.stringify(body) : undefined,
        });
      } catch (error) {
        throw VGPError.from(error);
      }
      if (!response.ok) {
        let error = { code: "UPSTREAM_ERROR", message: `HTTP ${response.status}` };
        try {
          const data = await response.json();
          if (data && data.error) error = data.error;
        } catch (_) {
          /* not JSON: keep the status */
        }
        throw VGPError.from(error);
      }
      return response;
    }

    async _json(method, path, body) {
      const response = await this._request(method, path, body);
      return response.status === 204 ? null : response.json();
    }

    _route(op, payload) {
      const id = payload && payload.id ? encodeURIComponent(payload.id) : "";
      switch (op) {
        case "chat":
        case "stream":
          return ["POST", "/chat", pick(payload, CHAT_FIELDS)];
        case "usage":
          return ["GET", "/usage"];
        case "models":
          return ["GET", "/models"];
        case "conversation.create":
          return ["POST", "/conversations", pick(payload, ["game", "system", "model", "history_limit"])];
        case "conversation.send":
          return ["POST", `/conversations/${id}/messages`, pick(payload, ["content", "max_tokens"])];
        case "conversation.get":
        case "conversation.join":
          return ["GET", `/conversations/${id}`];
        case "conversation.delete":
          return ["DELETE", `/conversations/${id}`];
        case "conversation.invite":
          return ["POST", `/conversations/${id}/players`, pick(payload, ["username"])];
        default:
          throw new VGPError("INVALID_REQUEST", `Unknown operation ${op}.`);
      }
    }

    /** Live rooms need the play page's WebSocket; in direct mode use refresh(). */
    onRoom() {
      return () => {};
    }

    /** One request, one answer. */
    async call(op, payload) {
      if (op === "conversation.leave") return null;
      const [method, path, body] = this._route(op, payload);
      const data = await this._json(method, path, body && { ...body, stream: false });
      if (op === "chat" || op === "conversation.send") return chatResult(data);
      return data;
    }

    /** A streamed request: text chunks into `sink`, then end or error. Returns a cancel function. */
    stream(op, payload, sink) {
      const [method, path, body] = this._route(op, payload);
      const controller = new AbortController();
      (async () => {
        const response = await this._request(method, path, { ...body, stream: true }, controller.signal);
        for await (const event of sseEvents(response)) {
          if (event.type === "stream_chunk") sink.chunk(event.content || "");
          else if (event.type === "stream_end") return sink.end({ ...event, model: event.model || body.model });
          else if (event.type === "error") return sink.error(event.error);
        }
        sink.error({ code: "CONNECTION_FAILED", message: "The stream ended early." });
      })().catch((error) => sink.error(error));
      return () => controller.abort();
    }
  }

  function chatResult(data) {
    return {
      content: data.content != null ? data.content : (data.message && data.message.content) || "",
      usage: data.usage || null,
      stop_reason: data.stop_reason || null,
      model: data.model || null,
      id: data.id,
    };
  }

  /* --- Bridge mode: postMessage to the play page -------------------------- */

  class BridgeTransport {
    constructor({ target = global.parent, timeoutMs = 120000 } = {}) {
      this.target = target;
      this.timeoutMs = timeoutMs;
      this.pending = new Map();
      this.counter = 0;
      this.mode = "bridge";
      this.info = null;
      this.roomListeners = new Set();
      global.addEventListener("message", (event) => this._receive(event));
    }

    /** Listen to the rooms the page has joined; returns a function that stops it. */
    onRoom(listener) {
      this.roomListeners.add(listener);
      return () => this.roomListeners.delete(listener);
    }

    _receive(event) {
      // Only the page that embeds the game may answer it.
      if (event.source !== this.target) return;
      const data = event.data;
      if (data && data.vgp === PROTOCOL && data.type === "room" && data.event) {
        for (const listener of [...this.roomListeners]) listener(data.event);
        return;
      }
      if (!data || data.vgp !== PROTOCOL || typeof data.id !== "string") return;
      const handler = this.pending.get(data.id);
      if (handler) handler(data);
    }

    _send(op, payload, handler) {
      const id = `r${++this.counter}-${Math.random().toString(36).slice(2, 8)}`;
      this.pending.set(id, handler);
      this.target.postMessage({ vgp: PROTOCOL, id, op, payload: payload || {} }, "*");
      return id;
    }

    call(op, payload, { timeoutMs = this.timeoutMs } = {}) {
      return new Promise((resolve, reject) => {
        let timer = null;
        const id = this._send(op, payload, (message) => {
          if (message.type !== "result" && message.type !== "error") return;
          this.pending.delete(id);
          clearTimeout(timer);
          if (message.type === "result") resolve(message.result);
          else reject(VGPError.from(message.error));
        });
        if (timeoutMs) {
          timer = setTimeout(() => {
            this.pending.delete(id);
            reject(new VGPError("INFERENCE_TIMEOUT", `No answer from the play page to ${op}.`));
          }, timeoutMs);
        }
      });
    }

    stream(op, payload, sink) {
      const id = this._send(op, payload, (message) => {
        if (message.type === "chunk") return sink.chunk(message.content || "");
        this.pending.delete(id);
        if (message.type === "end" || message.type === "result") sink.end(message.result || message);
        else if (message.type === "error") sink.error(message.error);
      });
      return () => {
        this.pending.delete(id);
        this.target.postMessage({ vgp: PROTOCOL, id, op: "cancel", payload: {} }, "*");
      };
    }

    /** Wait until the page's bridge answers (it may load after the game). */
    async handshake(timeoutMs = 10000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        try {
          this.info = await this.call("hello", { protocol: PROTOCOL }, { timeoutMs: 400 });
          return this.info;
        } catch (error) {
          if (error.code !== "INFERENCE_TIMEOUT") throw error;
          if (Date.now() > deadline) {
            throw new VGPError(
              "NO_BRIDGE",
              "The play page did not answer. Open the game from the platform, or use direct mode.",
            );
          }
        }
      }
    }
  }

  /* --- The client a game uses ---------------------------------------------- */

  class Conversation {
    constructor(client, info, messages) {
      this._client = client;
      this.id = info.id;
      this.model = info.model || null;
      this.historyLimit = info.history_limit || null;
      this.owner = info.owner || null;
      this.live = false; // true once the room's turns arrive as they happen
      this._history = (messages || []).map((m) => ({ ...m }));
      this._listeners = new Set();
      this._turns = new Map(); // turn id -> {author, content, text}
      const transport = client._transport;
      this._stopListening = transport.onRoom ? transport.onRoom((event) => this._room(event)) : () => {};
    }

    /*
     * Other players' turns in this room, as they happen (bridge mode):
     * callback({type, conversation, turn, author, content?, text?, stored?, ...}).
     * Types: "joined" (the room is live), "player_joined", "room_action" (a
     * player's action, `content`), "stream_chunk" (`content`, and `text`: the
     * narration so far), "stream_end" (`stored`: kept in the history or not),
     * "error", "room_closed". The player's own turns come back from send().
     * Returns a function that stops the callback.
     */
    onRoom(callback) {
      this._listeners.add(callback);
      return () => this._listeners.delete(callback);
    }

    _room(event) {
      if (!event || event.conversation !== this.id) return;
      const extra = {};
      if (event.type === "joined") this.live = true;
      else if (event.type === "room_action") {
        this._turns.set(event.turn, { author: event.author, content: event.content, text: "" });
      } else if (event.type === "stream_chunk" || event.type === "stream_end" || event.type === "error") {
        const turn = this._turns.get(event.turn) || { author: event.author, content: "", text: "" };
        if (event.type === "stream_chunk") {
          turn.text += event.content || "";
          this._turns.set(event.turn, turn);
        } else {
          this._turns.delete(event.turn);
          if (event.stored) {
            this._history.push({ role: "user", content: turn.content, author: event.author });
            this._history.push({ role: "assistant", content: turn.text });
          }
        }
        extra.text = turn.text;
      }
      for (const callback of [...this._listeners]) {
        try {
          callback({ ...event, ...extra });
        } catch (error) {
          setTimeout(() => {
            throw error;
          });
        }
      }
    }

    /** Let `username` into this room (the owner only; they must be able to play the game). */
    invite(username) {
      return this._client._transport.call("conversation.invite", { id: this.id, username: String(username) });
    }

    /** Stop receiving the room's turns. */
    async leave() {
      this._stopListening();
      this._listeners.clear();
      return this._client._transport.call("conversation.leave", { id: this.id });
    }

    /** The messages seen so far, oldest first: [{role, content, author?, created_at?}]. */
    history() {
      return this._history.map((m) => ({ ...m }));
    }

    /**
     * Send a player's turn. Without { stream: true } resolves to the reply
     * ({content, usage, stop_reason, model}); with it, returns a ChunkStream.
     */
    send(content, { stream = false, max_tokens } = {}) {
      const payload = { id: this.id, content, max_tokens, stream: Boolean(stream) };
      const turn = { role: "user", content };
      this._history.push(turn);
      // The server stores a turn with its reply or not at all; so does the copy here.
      const forget = () => {
        this._history = this._history.filter((m) => m !== turn);
      };
      if (stream) {
        const chunks = new ChunkStream((sink) =>
          this._client._transport.stream("conversation.send", payload, {
            chunk: sink.chunk,
            error: (error) => {
              forget();
              sink.error(error);
            },
            end: (info) => {
              this._history.push({ role: "assistant", content: chunks.text });
              sink.end(info);
            },
          }),
        );
        return chunks;
      }
      return this._client._transport.call("conversation.send", payload).then(
        (reply) => {
          this._history.push({ role: "assistant", content: reply.content });
          return reply;
        },
        (error) => {
          forget();
          throw error;
        },
      );
    }

    /** Fetch the stored history (e.g. turns other players added); returns it. */
    async refresh() {
      const data = await this._client._transport.call("conversation.get", { id: this.id });
      this._history = (data.messages || []).map((m) => ({ ...m }));
      return this.history();
    }

    /** Delete the conversation on the server. */
    delete() {
      return this._client._transport.call("conversation.delete", { id: this.id });
    }
  }

  class Client {
    constructor(transport, options) {
      this._transport = transport;
      this.mode = transport.mode;
      this.defaultModel = options.model || (transport.info && transport.info.default_model) || null;
      this.game = (transport.info && transport.info.game) || options.game || null;
    }

    _request(options) {
      if (!options || !Array.isArray(options.messages) || !options.messages.length) {
        throw new VGPError("INVALID_REQUEST", "messages: a non-empty list of {role, content} is required.");
      }
      const request = pick(options, CHAT_FIELDS);
      if (!request.model && this.defaultModel) request.model = this.defaultModel;
      return request;
    }

    /** One reply: {content, usage, stop_reason, model}. */
    async chat(options) {
      return this._transport.call("chat", this._request(options));
    }

    /** The reply as text chunks: `for await (const text of ai.stream({...}))`. */
    stream(options) {
      const request = this._request(options);
      return new ChunkStream((sink) => this._transport.stream("stream", request, sink));
    }

    /** A server-side conversation; pass { id } to continue or join an existing one. */
    async conversation(options = {}) {
      if (options.id) return this.join(options.id);
      const info = await this._transport.call("conversation.create", {
        system: options.system,
        model: options.model || this.defaultModel || undefined,
        history_limit: options.history_limit,
        game: this.mode === "direct" ? options.game : undefined,
      });
      return new Conversation(this, info, []);
    }

    /**
     * Join a conversation by id (a multiplayer room code), with its history. In
     * bridge mode the page also joins the room: `convo.onRoom()` sees the
     * other players' turns as they happen.
     */
    async join(id) {
      const data = await this._transport.call("conversation.join", { id: String(id) });
      return new Conversation(this, data, data.messages);
    }

    /** The player's token usage and limits (see GET /api/inference/usage). */
    usage() {
      return this._transport.call("usage", {});
    }

    /** The models the platform offers: {default_model, models: [...]}. */
    models() {
      return this._transport.call("models", {});
    }
  }

  async function connect(options = {}) {
    if (options.token || options.baseUrl) {
      return new Client(new HttpTransport(options), options);
    }
    if (!global.parent || global.parent === global) {
      throw new VGPError(
        "NO_BRIDGE",
        "Not inside the platform's play page: use VGP.connect({ baseUrl, token }) for direct mode.",
      );
    }
    const transport = new BridgeTransport(options);
    await transport.handshake(options.timeoutMs);
    return new Client(transport, options);
  }

  const VGP = { connect, VGPError, ChunkStream, HttpTransport, BridgeTransport, PROTOCOL, version: "1.0.0" };
  global.VGP = VGP;
})(typeof globalThis !== "undefined" ? globalThis : window);
