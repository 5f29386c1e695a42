// The idle reaper as the official socket.io-client sees it, against a server
// with tests/project/settings_idle.py (reaping from 3 connections on, idle
// after 0.5 s, checked every 0.2 s). Prints what it observed, one JSON object
// per line ({"step": ..., ...}), for tests/test_idle.py to assert on.
//
// Usage: node idle.mjs <reaped|recovered> <server url, e.g. http://127.0.0.1:8000>
//
// Every wait has a deadline: a scenario that stalls prints an "error" step and
// exits 1 rather than hanging.

import { io } from "socket.io-client";

const WAIT_MS = 5000;
const ECHO = "/echo/2.0/echo";
const ROOM = "/rooms/1.0/room";
// Reconnection stays on, with short delays: a client that the server left
// free to reconnect would be back within the scenario's observation window.
const OPTIONS = {
  transports: ["websocket"],
  forceNew: true,
  reconnectionDelay: 50,
  reconnectionDelayMax: 100,
};

const [scenario, baseUrl] = process.argv.slice(2);

function report(step, fields = {}) {
  process.stdout.write(JSON.stringify({ step, ...fields }) + "\n");
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function within(promise, what) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), WAIT_MS);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

// A socket on the echo channel that counts its connections and records the
// reason of each disconnect.
function tracked() {
  const socket = io(baseUrl + ECHO, OPTIONS);
  const seen = { socket, connects: 0, reasons: [] };
  socket.on("connect", () => {
    seen.connects += 1;
  });
  socket.on("disconnect", (reason) => seen.reasons.push(reason));
  seen.connected = within(new Promise((resolve) => socket.once("connect", resolve)), "connect");
  seen.disconnected = within(
    new Promise((resolve) => socket.once("disconnect", resolve)),
    "the server to disconnect an idle socket",
  );
  return seen;
}

async function connections() {
  const text = await within(
    fetch(baseUrl + "/metrics/").then((response) => response.text()),
    "the metrics view",
  );
  const line = text.split("\n").find((row) => row.startsWith("rain_ws_connections "));
  return Number(line.split(" ")[1]);
}

const scenarios = {
  // Two idle sockets below the threshold stay; a third, active socket brings
  // the process to the threshold, and the next check disconnects the two.
  async reaped() {
    const idle = [tracked(), tracked()];
    await Promise.all(idle.map((seen) => seen.connected));
    await sleep(1000);
    report("below_threshold", {
      connected: idle.map((seen) => seen.socket.connected),
      connections: await connections(),
    });

    const active = io(baseUrl + ECHO, OPTIONS);
    await within(new Promise((resolve) => active.once("connect", resolve)), "connect");
    let running = true;
    const acks = [];
    const emitting = (async () => {
      for (let n = 0; running; n += 1) {
        const reply = await within(
          new Promise((resolve) => active.emit("echo", n, (...args) => resolve(args))),
          "an echo ack",
        );
        acks.push(JSON.stringify(reply) === JSON.stringify([null, [n]]));
        await sleep(100);
      }
    })();

    await Promise.all(idle.map((seen) => seen.disconnected));
    await sleep(1000);
    const connectionsAfter = await connections();
    running = false;
    await emitting;
    report("idle", {
      reasons: idle.map((seen) => seen.reasons),
      connects: idle.map((seen) => seen.connects),
      connected: idle.map((seen) => seen.socket.connected),
      active: idle.map((seen) => seen.socket.active),
    });
    report("active", {
      connected: active.connected,
      acks: acks.length,
      all_acks_right: acks.every(Boolean),
      connections: connectionsAfter,
    });
    active.disconnect();
  },
};

// With RECOVERY_WINDOW on (tests/project/settings_idle_recovery.py): three
// sockets in a room are reaped; one comes back and says two things to the
// room; another, reconnected by socket.connect() as an application would,
// gets its socket back with both, once each.
scenarios.recovered = async () => {
  const sockets = [0, 1, 2].map(() => io(baseUrl + ROOM, OPTIONS));
  const [reader, speaker] = sockets;
  const heard = [];
  reader.on("said", (text) => heard.push(text));
  const reasons = sockets.map(() => []);
  sockets.forEach((socket, index) => socket.on("disconnect", (reason) => reasons[index].push(reason)));
  const joined = sockets.map((socket) =>
    within(
      new Promise((resolve) => socket.once("connect", () => socket.emit("join", "r", (...reply) => resolve(reply)))),
      "a join",
    ),
  );
  await Promise.all(joined);
  const firstId = reader.id;
  await within(
    new Promise((resolve) => {
      const check = setInterval(() => {
        if (reasons.every((seen) => seen.length > 0)) {
          clearInterval(check);
          resolve();
        }
      }, 20);
    }),
    "the reaper",
  );
  report("reaped", { reasons, connected: sockets.map((socket) => socket.connected) });

  speaker.connect();
  await within(new Promise((resolve) => speaker.once("connect", resolve)), "the speaker's reconnect");
  for (const text of ["m1", "m2"]) {
    await within(new Promise((resolve) => speaker.emit("say", "r", text, resolve)), "a say");
  }
  reader.connect();
  await within(new Promise((resolve) => reader.once("connect", resolve)), "the reader's reconnect");
  const rooms = await within(new Promise((resolve) => reader.emit("rooms", (...reply) => resolve(reply))), "rooms");
  await sleep(300);
  report("back", {
    recovered: reader.recovered,
    speaker_recovered: speaker.recovered,
    same_id: reader.id === firstId,
    rooms,
    heard,
  });
  sockets.forEach((socket) => socket.disconnect());
};

const run = scenarios[scenario];
if (run === undefined || !baseUrl) {
  process.stderr.write(`usage: node idle.mjs <${Object.keys(scenarios).join("|")}> <url>\n`);
  process.exit(2);
}
try {
  await run();
  process.exit(0);
} catch (error) {
  report("error", { message: String(error && error.message) });
  process.exit(1);
}
