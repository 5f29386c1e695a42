// Drives a rain_ws server with the official socket.io-client and prints what
// it observed, one JSON object per line ({"step": ..., ...}), for
// tests/test_conformance_node.py to assert on.
//
// Usage: node conformance.mjs <scenario> <server url, e.g. http://127.0.0.1:8000>
//
// Every wait has a deadline: a scenario that stalls prints an "error" step and
// exits 1 rather than hanging.

import { io } from "socket.io-client";

const WAIT_MS = 5000;
const OPTIONS = { transports: ["websocket"], reconnection: false };
const ECHO = "/echo/2.0/echo";
const SYNC = "/echo/2.0/sync";

const [scenario, baseUrl] = process.argv.slice(2);

function report(step, fields = {}) {
  process.stdout.write(JSON.stringify({ step, ...fields }) + "\n");
}

// JSON cannot carry bytes: a binary value is reported as {"$bytes": [...]},
// so a server that turned bytes into anything else shows in the output.
function plain(value) {
  if (value instanceof ArrayBuffer) {
    return { $bytes: Array.from(new Uint8Array(value)) };
  }
  if (ArrayBuffer.isView(value)) {
    return { $bytes: Array.from(new Uint8Array(value.buffer, value.byteOffset, value.byteLength)) };
  }
  if (Array.isArray(value)) {
    return value.map(plain);
  }
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, plain(item)]));
  }
  return value;
}

function within(promise, what) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), WAIT_MS);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

function next(socket, event) {
  return within(new Promise((resolve) => socket.once(event, (...args) => resolve(args))), `"${event}"`);
}

// Resolves with how the socket's connection attempt ended: connected, or
// refused with the connect_error's message.
function outcome(socket) {
  return within(
    new Promise((resolve) => {
      socket.once("connect", () => resolve({ connected: true, id: socket.id }));
      socket.once("connect_error", (error) =>
        resolve({
          connected: false,
          message: error.message,
          description: typeof error.description === "number" ? error.description : null,
        }),
      );
    }),
    "connect or connect_error",
  );
}

async function connected(socket) {
  const result = await outcome(socket);
  if (!result.connected) {
    throw new Error(`could not connect to ${socket.nsp}: ${result.message}`);
  }
}

function ack(socket, event, ...args) {
  return within(
    new Promise((resolve) => socket.emit(event, ...args, (...reply) => resolve(plain(reply)))),
    `the ack of "${event}"`,
  );
}

const scenarios = {
  async hello() {
    const socket = io(baseUrl + ECHO, OPTIONS);
    const hello = next(socket, "hello");
    await connected(socket);
    report("hello", { args: plain(await hello) });
  },

  async acks() {
    const socket = io(baseUrl + ECHO, OPTIONS);
    await connected(socket);
    report("echo", { reply: await ack(socket, "echo", 1, "two", { three: [3] }) });
    report("fail", { reply: await ack(socket, "fail", "refused_code") });
    report("crash", { reply: await ack(socket, "crash") });
  },

  async binary() {
    const socket = io(baseUrl + ECHO, OPTIONS);
    await connected(socket);
    const payload = {
      buffer: Buffer.from([0, 1, 2, 254, 255]),
      list: [Uint8Array.from([104, 105]), "text", { deep: Buffer.alloc(300, 0x7f) }],
    };
    report("sent", { args: plain([payload, Buffer.from("top")]) });
    report("echo", { reply: await ack(socket, "echo", payload, Buffer.from("top")) });
  },

  async multiplex() {
    // Two io() calls to one server share one Manager, so one connection.
    const echo = io(baseUrl + ECHO, OPTIONS);
    const sync = io(baseUrl + SYNC, OPTIONS);
    await Promise.all([connected(echo), connected(sync)]);
    report("engines", {
      same_manager: echo.io === sync.io,
      echo_engine: echo.io.engine.id,
      sync_engine: sync.io.engine.id,
      echo_socket: echo.id,
      sync_socket: sync.id,
    });
    report("echo", { reply: await ack(echo, "echo", "over one connection") });
    report("add", { reply: await ack(sync, "add", 2, 3) });
  },

  async call() {
    const socket = io(baseUrl + ECHO, OPTIONS);
    socket.on("question", (question, callback) => callback("answer to " + question));
    await connected(socket);
    report("ask", { reply: await ack(socket, "ask", "life") });
  },

  async unknown_namespace() {
    report("nope", await outcome(io(baseUrl + "/nope", OPTIONS)));
  },

  async channel_route() {
    const own = io(baseUrl + ECHO, { ...OPTIONS, forceNew: true, path: "/socket.io/echo/2.0/echo/" });
    await connected(own);
    report("echo_on_its_route", { reply: await ack(own, "echo", "routed") });
    const sync = io(baseUrl + SYNC, { ...OPTIONS, forceNew: true, path: "/socket.io/echo/2.0/sync/" });
    await connected(sync);
    report("sync_on_its_route", { reply: await ack(sync, "add", 20, 22) });
    const foreign = io(baseUrl + SYNC, { ...OPTIONS, forceNew: true, path: "/socket.io/echo/2.0/echo/" });
    report("sync_on_echo_route", await outcome(foreign));
  },

  async authorize() {
    report("bad_token", await outcome(io(baseUrl + ECHO, { ...OPTIONS, auth: { token: "bad" } })));
  },

  async server_disconnect() {
    const socket = io(baseUrl + ECHO, OPTIONS);
    await connected(socket);
    const disconnect = next(socket, "disconnect");
    socket.emit("bye");
    const [reason] = await disconnect;
    report("disconnect", { reason, active: socket.active });
  },

  async origin() {
    const foreign = io(baseUrl + ECHO, {
      ...OPTIONS,
      forceNew: true,
      extraHeaders: { Origin: "http://evil.example" },
    });
    report("foreign_origin", { ...(await outcome(foreign)), connected_after: foreign.connected });
    const same = io(baseUrl + ECHO, {
      ...OPTIONS,
      forceNew: true,
      extraHeaders: { Origin: new URL(baseUrl).origin },
    });
    report("same_origin", await outcome(same));
  },

  async polling() {
    // The client's default options: HTTP long-polling first, then the upgrade.
    const socket = io(baseUrl + ECHO, { reconnection: false, forceNew: true });
    const first = socket.io.engine.transport.name; // the transport the client opened with
    const hello = next(socket, "hello");
    report("default_transports", { ...(await outcome(socket)), transport: first });
    report("hello", { args: plain(await hello) });
    const upgraded = socket.io.engine.transport.name === "websocket"
      ? Promise.resolve()
      : within(new Promise((resolve) => socket.io.engine.once("upgrade", resolve)), "the upgrade");
    report("echo", { reply: await ack(socket, "echo", 1, "two", new Uint8Array([0, 1, 255])) });
    await upgraded;
    report("upgraded", { transport: socket.io.engine.transport.name });
    report("echo_after_upgrade", { reply: await ack(socket, "echo", "after") });
    socket.disconnect();
    // Long-polling only, as behind a proxy that blocks WebSockets.
    const polling = io(baseUrl + ECHO, { transports: ["polling"], reconnection: false, forceNew: true });
    report("polling_only", { ...(await outcome(polling)), transport: polling.io.engine.transport.name });
    report("echo_polling_only", { reply: await ack(polling, "echo", "polled", new Uint8Array([7, 0])) });
    polling.disconnect();
  },
};

const run = scenarios[scenario];
if (run === undefined || !baseUrl) {
  process.stderr.write(`usage: node conformance.mjs <${Object.keys(scenarios).join("|")}> <url>\n`);
  process.exit(2);
}
try {
  await run();
  process.exit(0);
} catch (error) {
  report("error", { message: String(error && error.message) });
  process.exit(1);
}
