/*
 * rain.js: the browser runtime of rain_ws (docs/client.rst). One global, `rain`:
 * sockets for channels (Socket.IO v5 over Engine.IO v4, every channel on one
 * WebSocket, or on HTTP long-polling where a WebSocket cannot open), a
 * page-wide bus, RAIN component controllers, and the session keepalive that
 * publishes "session_expired".
 */
(() => {
  "use strict";

  const BACKOFF_MS = 500, BACKOFF_CAP_MS = 10000, ACK_TIMEOUT_MS = 30000;
  const STABLE_MS = 10000; // a transport up this long was healthy: the backoff starts over
  const CONFIRM_DELAY_MS = 1000; // before asking whether a session the server ended was replaced
  const RESERVED = ["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"];
  // Refused CONNECTs retried by themselves, by the CONNECT_ERROR's data.code
  // (docs/client.rst); any other refusal ("session_required", "not_authorized",
  // a handler's own code, or none: a plain Socket.IO server's) stands until the
  // next emit or connect().
  const TRANSIENT = new Set(["store_unavailable", "not_connected"]);

  // Engine.IO v4 packet types: the first character of a text frame.
  const OPEN = "0", CLOSE = "1", PING = "2", PONG = "3", MESSAGE = "4", UPGRADE = "5", NOOP = "6";
  // Long-polling payloads: packets separated by the record separator, binary
  // ones as "b" and their base64.
  const SEPARATOR = "\x1e", BASE64 = "b";
  const WEBSOCKET = "websocket", POLLING = "polling";
  // Socket.IO v5 packet types: the first character of a MESSAGE's payload.
  const CONNECT = 0, DISCONNECT = 1, EVENT = 2, ACK = 3, CONNECT_ERROR = 4, BINARY_EVENT = 5, BINARY_ACK = 6;

  const log = (...args) => console.error("rain:", ...args);
  const backoff = (n) => Math.min(BACKOFF_CAP_MS, BACKOFF_MS * 2 ** Math.min(n, 10) * (0.5 + Math.random()));
  const failure = (message, code, data) => Object.assign(new Error(message), { code, data });
  const preview = (text) => JSON.stringify(text.length > 60 ? text.slice(0, 60) + "..." : text);
  const isObject = (value) => value !== null && typeof value === "object";
  const isPlain = (value) => isObject(value) && [Object.prototype, null].includes(Object.getPrototypeOf(value));

  // Page code run by the runtime: what it throws is logged, never thrown
  // into a WebSocket handler or a timer.
  function call(fn, self, args) {
    try { fn.apply(self, args); } catch (error) { log("a listener threw:", error); }
  }

  const configElement = document.getElementById("rain-ws-config");
  const config = Object.assign({ path: "/socket.io/" }, configElement && JSON.parse(configElement.textContent));

  // -- the page-wide bus -------------------------------------------------

  const bus = new Map();
  const listeners = (event) => bus.get(event) || [];
  const subscribe = (event, fn) => void bus.set(event, [...listeners(event), fn]);
  const unsubscribe = (event, fn) => void bus.set(event, listeners(event).filter((item) => item !== fn));
  const publish = (event, ...args) => listeners(event).forEach((fn) => call(fn, null, args));

  // -- session keepalive -------------------------------------------------
  // WebSocket frames carry no cookies, so socket traffic never extends the
  // session cookie. Shortly before it expires, a page active since the last
  // refresh posts to the refresh view; an idle page is told it expired.

  let activity = false, lastRefresh = Date.now(), refreshing = false, expired = false, keepalive;
  const nativeFetch = window.fetch.bind(window);
  const noteActivity = () => (activity = true);

  function sessionExpired() {
    if (expired) return;
    expired = true;
    clearInterval(keepalive);
    publish("session_expired");
  }

  // The CSRF cookie when the page can read it (a login elsewhere rotates it),
  // else the token the page was rendered with.
  function csrfToken() {
    const name = config.csrfCookieName + "=";
    const cookie = config.csrfCookieName && document.cookie.split("; ").find((item) => item.startsWith(name));
    return cookie ? decodeURIComponent(cookie.slice(name.length)) : config.csrfToken;
  }

  const postRefresh = () =>
    nativeFetch(config.refreshUrl, {
      method: "POST", credentials: "same-origin", headers: { [config.csrfHeader]: csrfToken() },
    });

  // The server ended a socket's session. That may be a login in another tab
  // replacing the session key the socket's handshake carried: if the cookie
  // still names a live session, the sockets connect again with it instead of
  // the page being told its session expired.
  const endedSockets = new Set();
  let confirming = false;
  function serverEndedSession(socket) {
    endedSockets.add(socket);
    if (expired || confirming) return;
    if (!config.refreshUrl) return sessionExpired();
    confirming = true;
    // The other tab's response, which carries the new cookie, may reach the
    // browser just after the server's word: give it a moment.
    new Promise((resolve) => setTimeout(resolve, CONFIRM_DELAY_MS))
      .then(postRefresh)
      .then((response) => {
        if (!response.ok) return sessionExpired();
        lastRefresh = Date.now();
        for (const ended of endedSockets) ended.rejoin();
        endedSockets.clear();
      }, () => sessionExpired())
      .finally(() => (confirming = false));
  }

  function checkSession() {
    const age = config.cookieAge * 1000, elapsed = Date.now() - lastRefresh, sent = Date.now();
    if (refreshing || expired || elapsed < 0.8 * age) return;
    if (!activity) return elapsed >= age && sessionExpired();
    const failed = (why) => {
      activity = true;
      log(`the session refresh (POST ${config.refreshUrl}) ${why}; trying again at the next check`);
    };
    refreshing = true;
    activity = false;
    postRefresh()
      .then((response) => {
        if (response.ok) lastRefresh = sent;
        else if (response.status === 401) sessionExpired();
        else failed(`answered ${response.status}`);
      }, (error) => failed(`failed: ${error.message}`))
      .finally(() => (refreshing = false));
  }

  function sameOrigin(url) {
    try { return new URL(url, location.href).origin === location.origin; } catch (error) { return false; }
  }

  // The page's own requests to its server count as activity.
  window.fetch = function (input, init) {
    if (sameOrigin(input instanceof Request ? input.url : input)) noteActivity();
    return nativeFetch(input, init);
  };
  const xhr = XMLHttpRequest.prototype, { open, send } = xhr, xhrUrls = new WeakMap();
  xhr.open = function (method, url) {
    xhrUrls.set(this, url);
    return open.apply(this, arguments);
  };
  xhr.send = function () {
    if (sameOrigin(xhrUrls.get(this))) noteActivity();
    return send.apply(this, arguments);
  };
  if (config.refreshUrl && config.cookieAge > 0) {
    // Background tabs fire timers late: each check reads the wall clock.
    keepalive = setInterval(checkSession, Math.min(5000, Math.max(250, config.cookieAge * 50)));
  }

  // -- Socket.IO packets -------------------------------------------------

  class ProtocolError extends Error {}

  const isBinary = (value) => value instanceof ArrayBuffer || ArrayBuffer.isView(value) || value instanceof Blob;

  // A copy of `value` with its binary values moved to `buffers`, as placeholders.
  function deconstruct(value, buffers) {
    if (isBinary(value)) return { _placeholder: true, num: buffers.push(value) - 1 };
    if (Array.isArray(value)) return value.map((item) => deconstruct(item, buffers));
    if (!isPlain(value)) return value;
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, deconstruct(item, buffers)]));
  }

  function reconstruct(value, buffers) {
    if (!isObject(value)) return value;
    if (value._placeholder === true) {
      const buffer = Number.isInteger(value.num) && buffers[value.num];
      if (!buffer) throw new ProtocolError(`placeholder ${JSON.stringify(value)} names no attachment`);
      return buffer;
    }
    for (const key of Object.keys(value)) value[key] = reconstruct(value[key], buffers);
    return value;
  }

  const isBinaryType = (type) => type === BINARY_EVENT || type === BINARY_ACK;
  const binaryType = (type) => (type === ACK ? BINARY_ACK : BINARY_EVENT); // of EVENT or ACK
  const plainType = (type) => ({ [BINARY_EVENT]: EVENT, [BINARY_ACK]: ACK })[type] ?? type;

  // A packet's frames: its text, then its binary attachments.
  function encode(type, nsp, data, id) {
    const buffers = [];
    const json = data === undefined ? "" : JSON.stringify(deconstruct(data, buffers));
    const head = buffers.length ? `${binaryType(type)}${buffers.length}-` : type;
    return [`${MESSAGE}${head}${nsp === "/" ? "" : nsp + ","}${id ?? ""}${json}`, ...buffers];
  }

  // The Socket.IO packet of an Engine.IO message, or a ProtocolError.
  function decode(text) {
    const [, digit, count, nsp = "/", id, json] = /^([0-6])(?:(\d+)-)?(?:(\/[^,]*),?)?(\d*)([\s\S]*)$/.exec(text) || [];
    const type = Number(digit);
    if (!digit || (count !== undefined) !== isBinaryType(type)) throw new ProtocolError(`not a Socket.IO packet: ${preview(text)}`);
    let data;
    try { data = json ? JSON.parse(json) : undefined; } catch (error) {
      throw new ProtocolError(`invalid JSON in ${preview(text)}: ${error.message}`);
    }
    const valid = { // by type, binary types as their plain ones
      [CONNECT]: isPlain(data) && typeof data.sid === "string",
      [DISCONNECT]: true,
      [EVENT]: Array.isArray(data) && typeof data[0] === "string" && !RESERVED.includes(data[0]),
      [ACK]: Array.isArray(data) && id !== "",
      [CONNECT_ERROR]: isPlain(data) || typeof data === "string",
    }[plainType(type)];
    if (!valid) throw new ProtocolError(`invalid packet of type ${type}: ${preview(text)}`);
    return { type, nsp, id: id ? Number(id) : undefined, data, attachments: Number(count || 0) };
  }

  const base64Size = (bytes) => 1 + 4 * Math.ceil(bytes / 3); // a binary frame's size over long-polling

  function overLimit(frame, limit, base64) {
    if (typeof frame !== "string") {
      const bytes = frame.byteLength ?? frame.size;
      return (base64 ? base64Size(bytes) : bytes) > limit;
    }
    // UTF-8 takes one to three bytes per UTF-16 unit.
    return frame.length > limit || (frame.length * 3 > limit && new TextEncoder().encode(frame).length > limit);
  }

  // -- transports ----------------------------------------------------------
  // Each gives its connection the Engine.IO packets it receives (text, or an
  // ArrayBuffer), and calls connection.down(itself) once if it closes or fails.

  class WebSocketTransport {
    constructor(connection) {
      this.name = WEBSOCKET;
      this.url = connection.url(WEBSOCKET);
      const ws = (this.ws = new WebSocket(this.url));
      ws.binaryType = "arraybuffer";
      ws.onmessage = (event) => connection.receive(event.data);
      ws.onclose = () => connection.down(this);
    }

    send(frame) {
      this.ws.send(frame);
    }

    close() {
      this.ws.onmessage = this.ws.onclose = null;
      this.ws.close();
    }
  }

  function toBase64(bytes) {
    let binary = "";
    for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(binary);
  }

  function fromBase64(text) {
    try { return Uint8Array.from(atob(text), (char) => char.charCodeAt(0)).buffer; } catch (error) {
      throw new ProtocolError(`invalid base64 in a binary packet: ${preview(text)}`);
    }
  }

  let requests = 0;
  const cacheBuster = () => Date.now().toString(36) + (requests++).toString(36);

  // Engine.IO's HTTP long-polling: one GET at a time waits for the server's
  // packets (the first is the handshake), and one POST at a time carries the
  // client's. Both send the page's cookies (same origin).
  class PollingTransport {
    constructor(connection) {
      Object.assign(this, { name: POLLING, connection, sid: null, queue: [], posting: false, closed: false });
      this.url = connection.url(POLLING);
      this.getting = new AbortController(); // the waiting GET, cancelled by close()
      this.poll();
    }

    // A request's answer (text), or an Error for an answer other than 200.
    async request(method, body, signal) {
      const sid = this.sid ? `&sid=${encodeURIComponent(this.sid)}` : "";
      const response = await nativeFetch(`${this.url}${sid}&t=${cacheBuster()}`, {
        method, body, signal, credentials: "same-origin", cache: "no-store",
        headers: body === undefined ? {} : { "Content-Type": "text/plain;charset=UTF-8" },
      });
      const text = await response.text();
      // A 400 with {"code": 1} means the session is gone; the connection reconnects alike.
      if (!response.ok) throw new Error(`long-polling ${method} answered ${response.status}: ${preview(text)}`);
      return text;
    }

    async poll() {
      while (!this.closed) {
        let payload;
        try { payload = await this.request("GET", undefined, this.getting.signal); } catch (error) {
          return this.fail();
        }
        for (const packet of payload.split(SEPARATOR)) {
          if (this.closed) return;
          this.connection.receive(packet);
        }
      }
    }

    send(frame) {
      this.queue.push(frame);
      this.flush();
    }

    // POST the queued packets: as many as the server's maxPayload allows, at least one.
    async flush() {
      if (this.posting || !this.queue.length) return;
      this.posting = true;
      const size = (frame) => (typeof frame === "string" ? frame.length : base64Size(frame.byteLength ?? frame.size));
      let count = 1, total = size(this.queue[0]);
      while (count < this.queue.length && total + 1 + size(this.queue[count]) <= this.connection.maxPayload) {
        total += 1 + size(this.queue[count++]);
      }
      const encode = async (frame) =>
        typeof frame === "string" ? frame : BASE64 + toBase64(new Uint8Array(await new Response(frame).arrayBuffer()));
      try {
        const body = (await Promise.all(this.queue.splice(0, count).map(encode))).join(SEPARATOR);
        await this.request("POST", body);
      } catch (error) {
        this.queue.length = 0;
        return this.fail();
      } finally {
        this.posting = false;
      }
      this.flush();
    }

    // A request failed: the session is gone, or out of reach.
    fail() {
      if (this.closed) return;
      this.sid = null; // nothing left to close on the server
      this.connection.down(this);
    }

    // Cancel the waiting GET, and tell the server (after what is queued) that
    // the session is over.
    close() {
      this.closed = true;
      this.getting.abort();
      if (this.sid) this.send(CLOSE);
    }
  }

  // -- the connection: one transport for every socket of the page ---------

  // Where the page fell back to long-polling, for the rest of its session.
  const rememberKey = (path) => `rain_ws.transport ${location.origin}${path}`;
  function remembered(path) {
    try { return sessionStorage.getItem(rememberKey(path)) === POLLING; } catch (error) { return false; }
  }
  function remember(path) {
    try { sessionStorage.setItem(rememberKey(path), POLLING); } catch (error) {} // storage may be disabled
  }

  class Connection {
    constructor(path) {
      this.path = path;
      this.transport = this.retryTimer = this.pingTimer = this.pending = null;
      this.opened = false;
      this.sockets = new Map();
      this.attempts = 0;
    }

    url(transport) {
      const scheme = transport === POLLING ? location.protocol : location.protocol === "https:" ? "wss:" : "ws:";
      return `${scheme}//${location.host}${this.path}?EIO=4&transport=${transport}`;
    }

    socket(nsp) {
      if (!this.sockets.has(nsp)) this.sockets.set(nsp, new Socket(this, nsp));
      return this.sockets.get(nsp).connect();
    }

    // A socket wants to be connected: CONNECT now, or once the transport is open.
    join(socket) {
      if (this.opened) socket.sendConnect();
      else if (!this.transport && !this.retryTimer) this.dial();
    }

    // A WebSocket first, unless this page session already fell back to long-polling.
    dial() {
      this.retryTimer = null;
      this.transport = remembered(this.path) ? new PollingTransport(this) : new WebSocketTransport(this);
    }

    // The transport closed or failed. A WebSocket that did not open (a proxy
    // that does not pass Upgrade, say) gives way to long-polling at once.
    down(transport) {
      if (transport !== this.transport) return;
      if (!this.opened && transport.name === WEBSOCKET) this.transport = new PollingTransport(this);
      else this.lost(this.opened ? "transport close" : "transport error");
    }

    // A packet: text, or binary (an ArrayBuffer, or over long-polling "b" and base64).
    receive(data) {
      try {
        if (this.transport.name === POLLING && data[0] === BASE64) data = fromBase64(data.slice(1));
        if (typeof data === "string") this.receiveText(data);
        else this.receiveBinary(data);
      } catch (error) {
        log(`bad data from ${this.transport.url}, reconnecting:`, error instanceof ProtocolError ? error.message : error);
        this.lost("parse error");
      }
    }

    receiveText(text) {
      const kind = text[0];
      if (this.pending) throw new ProtocolError(`text frame ${preview(text)} while attachments were expected`);
      if (!this.opened) {
        if (kind !== OPEN) throw new ProtocolError(`expected the Engine.IO open packet, got ${preview(text)}`);
        this.onOpen(text.slice(1));
      } else if (kind === PING) {
        this.resetPing();
        this.transport.send(PONG + text.slice(1));
      } else if (kind === MESSAGE) {
        const packet = decode(text.slice(1));
        if (packet.attachments) this.pending = { packet, buffers: [] };
        else this.dispatch(packet);
      } else if (kind === CLOSE) {
        this.lost("transport close");
      } else if (kind !== NOOP) { // UPGRADE, or no Engine.IO type: rain.js never upgrades a transport
        throw new ProtocolError(`unexpected Engine.IO packet ${preview(text)}`);
      }
    }

    receiveBinary(buffer) {
      const pending = this.pending;
      if (!pending) throw new ProtocolError("binary frame with no attachment pending");
      if (pending.buffers.push(buffer) < pending.packet.attachments) return;
      this.pending = null;
      pending.packet.data = reconstruct(pending.packet.data, pending.buffers);
      this.dispatch(pending.packet);
    }

    onOpen(json) {
      const positive = (value) => typeof value === "number" && value > 0;
      let info;
      try { info = JSON.parse(json); } catch (error) {}
      if (!isObject(info) || typeof info.sid !== "string" || !positive(info.pingInterval) || !positive(info.pingTimeout)) {
        throw new ProtocolError(`invalid open packet ${preview(json)}`);
      }
      this.opened = true;
      this.openedAt = Date.now();
      this.transport.sid = info.sid; // long-polling's requests name it; its upgrades are ignored
      if (this.transport.name === POLLING) remember(this.path);
      this.pingWindow = info.pingInterval + info.pingTimeout;
      this.maxPayload = positive(info.maxPayload) ? info.maxPayload : Infinity;
      this.resetPing();
      this.sockets.forEach((socket) => socket.active && socket.sendConnect());
    }

    // The server pings every pingInterval: with no ping for pingInterval +
    // pingTimeout, the transport is gone, whatever the browser says.
    resetPing() {
      clearTimeout(this.pingTimer);
      const deadline = Date.now() + this.pingWindow;
      const check = () => {
        if (Date.now() >= deadline) this.lost("ping timeout");
        else this.pingTimer = setTimeout(check, deadline - Date.now());
      };
      this.pingTimer = setTimeout(check, this.pingWindow);
    }

    dispatch(packet) {
      if (![CONNECT, DISCONNECT, CONNECT_ERROR].includes(packet.type)) noteActivity(); // events and acks
      this.sockets.get(packet.nsp)?.onPacket(packet);
    }

    // Send a packet's frames; RangeError if one is over the server's maxPayload.
    send(frames) {
      const base64 = this.transport.name === POLLING;
      if (frames.some((frame) => overLimit(frame, this.maxPayload, base64))) {
        throw new RangeError(`packet over the server's maxPayload (${this.maxPayload} bytes)`);
      }
      frames.forEach((frame) => this.transport.send(frame));
    }

    close() {
      const transport = this.transport;
      this.transport = this.pending = null;
      this.opened = false;
      clearTimeout(this.pingTimer);
      transport?.close();
    }

    // The transport is gone: tell the sockets, and reconnect with backoff if
    // one of them still wants to be connected.
    lost(reason) {
      const wasOpen = this.opened, url = this.transport?.url;
      if (wasOpen && Date.now() - this.openedAt >= STABLE_MS) this.attempts = 0;
      this.close();
      this.sockets.forEach((socket) => socket.onTransportLost(reason, wasOpen, url));
      if (this.anyActive() && !this.retryTimer) this.retryTimer = setTimeout(() => this.dial(), backoff(this.attempts++));
    }

    // Close the transport once no socket wants it.
    release() {
      if (this.anyActive()) return;
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
      this.close();
    }

    anyActive() {
      return [...this.sockets.values()].some((socket) => socket.active);
    }
  }

  // -- sockets: one per channel (a Socket.IO namespace) -----------------

  class Socket {
    constructor(connection, nsp) {
      Object.assign(this, { nsp, id: undefined, connected: false, active: false, recovered: false });
      // active: whether it wants to be connected; false after a disconnect by
      // either side or a final refusal, until the next connect() or emit.
      // With connection state recovery on the server, _pid is the private id
      // of its CONNECT reply and _offset the last event's offset: a reconnect
      // sends both back, to get the same socket and what it missed.
      this._pid = this._offset = undefined;
      this._connection = connection;
      this._connecting = false;
      this._handlers = new Map();
      this._buffer = []; // emits waiting for the CONNECT: {frames, id}
      this._acks = new Map();
      this._nextAck = this._attempts = 0;
      this._retryTimer = null;
    }

    // The transport of the page's connection now: "websocket", "polling", or
    // null while there is none.
    get transport() {
      return this._connection.transport?.name ?? null;
    }

    on(event, fn) {
      if (typeof fn !== "function") throw new TypeError(`socket.on("${event}") needs a function`);
      this._handlers.set(event, [...(this._handlers.get(event) || []), fn]);
      return this;
    }

    once(event, fn) {
      const once = (...args) => this.off(event, once) && fn.apply(this, args);
      once.listener = fn;
      return this.on(event, once);
    }

    off(event, fn) {
      const keep = (item) => item !== fn && item.listener !== fn;
      if (event === undefined) this._handlers.clear();
      else if (fn === undefined) this._handlers.delete(event);
      else this._handlers.set(event, (this._handlers.get(event) || []).filter(keep));
      return this;
    }

    _fire(event, args) {
      (this._handlers.get(event) || []).forEach((fn) => call(fn, this, args));
    }

    connect() {
      if (!this.active) {
        this.active = true;
        this._connection.join(this);
      }
      return this;
    }

    // Connect again after the server ended the session under a replaced key:
    // now if the server's DISCONNECT came, else as soon as it does.
    rejoin() {
      if (this.active) this._rejoin = true;
      else this.connect();
    }

    disconnect() {
      const connection = this._connection, wasConnected = this.connected;
      clearTimeout(this._retryTimer);
      if ((wasConnected || this._connecting) && connection.opened) connection.send(encode(DISCONNECT, this.nsp));
      this.active = this.connected = this._connecting = false;
      this._pid = this._offset = undefined; // the server forgets a socket its client disconnected
      this._drop(failure("disconnected before sending", "disconnected"));
      this._failAcks("io client disconnect");
      if (wasConnected) this._fire("disconnect", ["io client disconnect"]);
      connection.release();
      return this;
    }

    // emit(event, ...args[, ack]): an ack function, if last, gets the
    // server's ack arguments as they come (from rain_ws: error, data).
    emit(event, ...args) {
      const ack = typeof args[args.length - 1] === "function" ? args.pop() : undefined;
      return this._emit(event, args, ack);
    }

    // A promise of an error-first ack's data (rain_ws's acks): it rejects
    // with the ack's error, or with no ack in 30 s (timeout(ms) to change).
    emitWithAck(event, ...args) {
      return this.timeout(ACK_TIMEOUT_MS).emitWithAck(event, ...args);
    }

    timeout(ms) {
      const settle = (resolve, reject) => (error, data) => {
        if (error === null || error === undefined) resolve(data);
        else reject(error instanceof Error ? error : failure(String(error.message ?? error), error.code, error));
      };
      return {
        emitWithAck: (event, ...args) => new Promise((ok, ko) => this._emit(event, args, settle(ok, ko), ms)),
      };
    }

    _emit(event, args, ack, ms) {
      if (typeof event !== "string" || RESERVED.includes(event)) throw new Error(`"${event}" is a reserved event name`);
      const id = ack ? this._nextAck++ : undefined;
      const frames = encode(EVENT, this.nsp, [event, ...args], id);
      if (this.connected) this._connection.send(frames);
      else this._buffer.push({ frames, id });
      noteActivity();
      if (ack) {
        const timer = ms && setTimeout(() => done([failure(`no ack for "${event}" within ${ms} ms`, "ack_timeout")]), ms);
        const done = (ackArgs) => {
          clearTimeout(timer);
          this._acks.delete(id);
          call(ack, this, ackArgs);
        };
        this._acks.set(id, done);
      }
      return this.connect();
    }

    sendConnect() {
      if (this._connecting || this.connected) return;
      this._connecting = true;
      const resume = this._pid === undefined ? undefined : { pid: this._pid, offset: this._offset };
      this._connection.send(encode(CONNECT, this.nsp, resume));
    }

    onPacket({ type, id, data }) {
      if (type === CONNECT && this.active && !this.connected) {
        const pid = typeof data.pid === "string" ? data.pid : undefined;
        this.recovered = pid !== undefined && pid === this._pid;
        if (!this.recovered) this._offset = undefined; // a new socket: offsets start over
        Object.assign(this, { connected: true, id: data.sid, _pid: pid, _connecting: false, _attempts: 0 });
        for (const item of this._buffer.splice(0)) {
          try { this._connection.send(item.frames); } catch (error) {
            log(`${this.nsp}: an emit was dropped: ${error.message}`);
            this._acks.get(item.id)?.([failure(error.message, "too_big")]);
          }
        }
        this._fire("connect", []);
      } else if (type === DISCONNECT) {
        const wasConnected = this.connected;
        this.active = this.connected = this._connecting = false;
        this._failAcks("io server disconnect");
        if (wasConnected) this._fire("disconnect", ["io server disconnect"]);
        this._connection.release();
        if (this._rejoin) {
          this._rejoin = false;
          this.connect();
        }
      } else if (type === EVENT || type === BINARY_EVENT) {
        const [event, ...args] = data;
        let acked = false;
        // With a pid, an event without an ack id ends with its offset: kept, not given to listeners.
        if (this._pid !== undefined && id === undefined && typeof args[args.length - 1] === "string") {
          this._offset = args.pop();
        }
        if (id !== undefined) {
          args.push((...ackArgs) => {
            if (!acked && this.connected) this._connection.send(encode(ACK, this.nsp, ackArgs, id));
            acked = true;
          });
        }
        this._fire(event, args);
        if (event === "session_expired") {
          this._pid = this._offset = undefined; // the server keeps no socket of an ended session
          serverEndedSession(this);
        }
      } else if (type === ACK || type === BINARY_ACK) {
        this._acks.get(id)?.(data);
      } else if (type === CONNECT_ERROR) {
        this._refused(typeof data === "string" ? { message: data } : data);
      }
    }

    // A CONNECT_ERROR: retried with backoff if its data.code is transient,
    // else final (a plain Socket.IO server's refusal has no code: final).
    _refused({ message = "refused", data }) {
      const code = isObject(data) && typeof data.code === "string" ? data.code : undefined;
      const transient = TRANSIENT.has(code);
      const wasConnected = this.connected;
      this.connected = this._connecting = false;
      if (transient) {
        if (wasConnected) this._failAcks(message);
      } else {
        log(`cannot connect to channel ${this.nsp}: ${message} (not retrying; the next emit will)`);
        this.active = false;
        this._refuseAcks(failure(message, code ?? "connect_error"));
      }
      if (wasConnected) this._fire("disconnect", ["io server disconnect"]);
      if (transient) {
        this._retryTimer = setTimeout(() => this.active && this._connection.join(this), backoff(this._attempts++));
      } else {
        this._connection.release();
      }
      this._fire("connect_error", [Object.assign(new Error(message), { data })]);
    }

    onTransportLost(reason, wasOpen, url) {
      this._connecting = false;
      if (this.connected) {
        this.connected = false;
        this._failAcks(reason);
        this._fire("disconnect", [reason]);
      } else if (this.active && !wasOpen) {
        this._fire("connect_error", [new Error(`could not connect to ${url}`)]);
      }
    }

    // Sent emits still waiting for their ack: none will come now.
    _failAcks(reason) {
      const waiting = this._buffer.map((item) => item.id);
      for (const [id, done] of [...this._acks]) {
        if (!waiting.includes(id)) done([failure(`disconnected before the ack (${reason})`, "disconnected")]);
      }
    }

    // Drop the emits waiting for a CONNECT, failing their acks with `error`.
    _drop(error) {
      this._buffer.splice(0).forEach((item) => this._acks.get(item.id)?.([error]));
    }

    // Refused for good: drop the emits waiting for the CONNECT, and fail
    // every pending ack (of those and of emits sent before) with (error, null).
    _refuseAcks(error) {
      this._buffer.length = 0;
      for (const done of [...this._acks.values()]) done([error, null]);
    }
  }

  let connection = null;

  function getSocket(channel) {
    if (typeof channel !== "string" || channel[0] !== "/") {
      throw new Error(`getSocket(${JSON.stringify(channel)}): use "/channel", or a component context for its channels`);
    }
    connection ||= new Connection(config.path);
    return connection.socket(channel);
  }

  // -- components and their controllers --------------------------------

  // A component's context: its channels are /<component>/<version>/<channel>.
  const context = (component, version, element = document.documentElement) => ({
    component,
    version,
    messaging: {
      getSocket: (channel) => getSocket(String(channel)[0] === "/" ? channel : `/${component}/${version}/${channel}`),
      subscribe,
      unsubscribe,
      publish,
    },
    getRoot: () => (window.jQuery ? window.jQuery(element) : element),
  });

  const controllers = new Map(); // script URL -> {promise, resolve, reject, script}

  function controllerEntry(url) {
    if (!controllers.has(url)) {
      const entry = {};
      entry.promise = new Promise((resolve, reject) => Object.assign(entry, { resolve, reject }));
      controllers.set(url, entry);
    }
    return controllers.get(url);
  }

  // define() for pages without an AMD loader: an anonymous module is the
  // controller of the script that defines it.
  function define(deps, factory) {
    if (typeof deps === "function") [deps, factory] = [[], deps];
    const src = document.currentScript && document.currentScript.src;
    if (!src || !Array.isArray(deps) || deps.length) {
      return log("define() outside a controller script, or with a name or dependencies (that needs an AMD loader)");
    }
    const entry = controllerEntry(src);
    try { entry.resolve(typeof factory === "function" ? factory() : factory); } catch (error) { entry.reject(error); }
  }
  if (typeof window.define !== "function") window.define = define;

  function loadController(url) {
    const href = new URL(url, document.baseURI).href;
    if (window.define && window.define.amd && window.require) {
      return new Promise((resolve, reject) => window.require([href], resolve, reject));
    }
    const entry = controllerEntry(href);
    if (!entry.script) {
      const script = (entry.script = document.createElement("script"));
      script.src = href;
      script.onload = () => entry.reject(new Error(`${href} did not call define()`));
      script.onerror = () => entry.reject(new Error(`${href} could not be loaded`));
      document.head.appendChild(script);
    }
    return entry.promise;
  }

  const started = new WeakMap();

  // Start the controller of an element with data-rain-component,
  // data-rain-version and data-rain-controller: a promise of the controller.
  function start(element) {
    if (!started.has(element)) {
      const { rainComponent: component, rainVersion: version = "1.0", rainController: url } = element.dataset;
      const controller = (async () => {
        if (!component || !url) throw new Error("data-rain-component or data-rain-controller is missing");
        const instance = new (await loadController(url))();
        instance.context = context(component, version, element);
        if (instance.init) instance.init();
        return instance;
      })();
      controller.catch((error) => log(`the controller of component ${component} did not start:`, error));
      started.set(element, controller);
    }
    return started.get(element);
  }

  const startAll = () => document.querySelectorAll("[data-rain-controller]").forEach(start);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", startAll);
  else startAll();

  window.rain = { messaging: { getSocket, subscribe, unsubscribe, publish }, context, start };
})();
