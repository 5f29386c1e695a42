// Drives a rain_ws server with the official socket.io-client carrying a
// Django session cookie, and prints what it observed, one JSON object per
// line ({"step": ..., ...}), for tests/test_sessions_live.py to assert on.
//
// Usage: node sessions.mjs logout <server url> <username> <password>
//
// Every wait has a deadline: a scenario that stalls prints an "error" step and
// exits 1 rather than hanging.

import { io } from "socket.io-client";

const WAIT_MS = 5000;
const MEMO = "/memo/1.0/memo";
const SNAPSHOT = "/memo/1.0/snapshot";
const COOKIE_NAME = "sessionid";

const [scenario, baseUrl, username, password] = process.argv.slice(2);

function report(step, fields = {}) {
  process.stdout.write(JSON.stringify({ step, ...fields }) + "\n");
}

function within(promise, what) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), WAIT_MS);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

function next(socket, event) {
  return within(new Promise((resolve) => socket.once(event, (...args) => resolve(args))), `"${event}" on ${socket.nsp}`);
}

function ack(socket, event, ...args) {
  return within(
    new Promise((resolve) => socket.emit(event, ...args, (...reply) => resolve(reply))),
    `the ack of "${event}"`,
  );
}

// The session cookie a response set, or null; node's fetch keeps no cookie
// jar, so the scenario carries the cookie itself, as a browser would.
function sessionCookie(response) {
  for (const header of response.headers.getSetCookie()) {
    const match = header.match(new RegExp(`^${COOKIE_NAME}=([^;]*)`));
    if (match) {
      return match[1] ? `${COOKIE_NAME}=${match[1]}` : null;
    }
  }
  return null;
}

async function http(method, path, cookie, body) {
  const headers = cookie ? { Cookie: cookie } : {};
  const response = await within(fetch(baseUrl + path, { method, headers, body }), `${method} ${path}`);
  if (response.status !== 200) {
    throw new Error(`${method} ${path} answered ${response.status}: ${await response.text()}`);
  }
  return response;
}

// Records, in order, the events and the disconnect of a socket.
function recordHistory(socket) {
  const history = [];
  socket.onAny((event, ...args) => history.push({ event, args }));
  const disconnected = new Promise((resolve) =>
    socket.on("disconnect", (reason) => {
      history.push({ event: "disconnect", args: [reason] });
      resolve();
    }),
  );
  return { history, disconnected };
}

const scenarios = {
  // Log in over HTTP, share the session over two namespaces of one
  // connection, log out over HTTP: both namespaces must end.
  async logout() {
    const visit = await http("GET", "/accounts/visit/");
    const anonymous = sessionCookie(visit);
    const login = await http(
      "POST",
      "/accounts/login/",
      anonymous,
      new URLSearchParams({ username, password }),
    );
    const cookie = sessionCookie(login);
    report("login", { cookie_cycled: cookie !== null && cookie !== anonymous });

    const options = { transports: ["websocket"], reconnection: false, extraHeaders: { Cookie: cookie } };
    const memo = io(baseUrl + MEMO, options);
    const snapshot = io(baseUrl + SNAPSHOT, options);
    const records = { [MEMO]: recordHistory(memo), [SNAPSHOT]: recordHistory(snapshot) };
    const info = next(memo, "info");
    await Promise.all([next(memo, "connect"), next(snapshot, "connect")]);
    report("connected", { same_manager: memo.io === snapshot.io });
    report("info", { args: await info });

    report("write", { reply: await ack(memo, "write", "color", "green") });
    const read = await http("GET", "/accounts/session/color/", cookie);
    report("http_read", { value: await read.json() });

    // The logout ends both namespaces at once, without an event from the client.
    await http("POST", "/accounts/logout/", cookie);
    await within(Promise.all(Object.values(records).map((record) => record.disconnected)), "both disconnects");
    const history = {};
    for (const [namespace, record] of Object.entries(records)) {
      history[namespace] = record.history.filter(({ event }) => event !== "info");
    }
    report("ended", { history });
  },
};

try {
  const run = scenarios[scenario];
  if (!run) {
    throw new Error(`unknown scenario ${scenario}`);
  }
  await run();
  process.exit(0);
} catch (error) {
  report("error", { message: String(error && error.stack ? error.stack : error) });
  process.exit(1);
}
