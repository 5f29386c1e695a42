// Connection state recovery with the official socket.io-client: a socket
// loses its connection, events are sent to it while it is gone, and it comes
// back, to the same server process or to another one sharing Redis. Prints
// what it observed as JSON lines ({"step": ..., ...}) for
// tests/test_recovery.py to assert on.
//
// Usage: node recovery.mjs <scenario> <config as JSON>
//
// The config: {"a": url of process A, "b": url of process B (may be A),
// "target": "a" | "b" (where the socket comes back), "polling": true for the
// client's default transports (long-polling first) instead of WebSocket
// only, "wait_ms": how long the "late" scenario stays away, "python",
// "root", "env": how to run `python -m django announce`}.
//
// The socket under test (the "victim") connects to A. Two peers, one on each
// process, send it events, and both sit in a room of their own (SYNC): after
// a peer sends something, it says a marker in SYNC and the script waits for
// the other peer to get it. The layer keeps one publisher's messages in
// order, so both processes have then handled what the peer sent before the
// marker, and the order of the events the victim gets is known.
//
// Events are reported as {event, args, offset}: the trailing offset taken
// out of args, binary values as {"$bytes": [...]}, the peers' socket ids as
// "pA"/"pB". Every wait has a deadline: a stalled scenario prints an "error"
// step and exits 1 rather than hanging.

import { execFile } from "node:child_process";
import { io } from "socket.io-client";

const WAIT_MS = 8000;
const ROOM_CHANNEL = "/rooms/1.0/room";

const [scenario, rawConfig] = process.argv.slice(2);
const config = JSON.parse(rawConfig);
const unique = Math.random().toString(36).slice(2, 10);
const ROOM = `news-${unique}`;
const SYNC = `sync-${unique}`;
const labels = new Map();

function report(step, fields = {}) {
  process.stdout.write(JSON.stringify({ step, ...fields }) + "\n");
}

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
  if (typeof value === "string" && labels.has(value)) {
    return labels.get(value);
  }
  return value;
}

function within(promise, what, ms = WAIT_MS) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function connected(socket) {
  return within(
    new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("connect_error", (error) => reject(new Error(`connect_error: ${error.message}`)));
    }),
    "a connection",
  );
}

function disconnected(socket) {
  return within(new Promise((resolve) => socket.once("disconnect", resolve)), "a disconnect");
}

// Emit with an ack and return the listener's result; its RAIN error fails the run.
async function call(socket, event, ...args) {
  const [error, result] = await within(
    new Promise((resolve) => socket.emit(event, ...args, (...reply) => resolve(reply))),
    `the ack of "${event}"`,
  );
  if (error !== null) {
    throw new Error(`${event} failed: ${JSON.stringify(error)}`);
  }
  return result;
}

// Every event a socket receives, in order; until() waits for one to come.
class Recorder {
  constructor(socket) {
    this.events = [];
    this.waiters = [];
    socket.onAny((event, ...args) => {
      const last = args[args.length - 1];
      const offset = typeof last === "string" && /^[0-9a-f]{8}\.[0-9a-f]+$/.test(last) ? args.pop() : null;
      this.events.push({ event, args: plain(args), offset });
      this.waiters = this.waiters.filter((waiter) => !waiter());
    });
  }

  until(predicate, what) {
    return within(
      new Promise((resolve) => {
        const check = () => {
          const found = this.events.find(predicate);
          if (found !== undefined) {
            resolve(found);
            return true;
          }
          return false;
        };
        if (!check()) {
          this.waiters.push(check);
        }
      }),
      what,
    );
  }

  untilText(event, text) {
    return this.until((item) => item.event === event && item.args[0] === text, `${event} ${JSON.stringify(text)}`);
  }

  since(index) {
    return this.events.slice(index);
  }
}

function client(url, options = {}) {
  const transports = config.polling ? {} : { transports: ["websocket"] };
  const socket = io(url + ROOM_CHANNEL, { forceNew: true, reconnection: false, ...transports, ...options });
  return { socket, recorder: new Recorder(socket) };
}

const peers = {};
let syncs = 0;

async function startPeers() {
  for (const [name, url] of [["pA", config.a], ["pB", config.b]]) {
    const peer = client(url, { transports: ["websocket"] });
    await connected(peer.socket);
    labels.set(peer.socket.id, name);
    await call(peer.socket, "join", SYNC);
    peers[name] = peer;
  }
}

// Wait until both processes have handled what `name` sent so far.
async function settle(name) {
  const other = peers[name === "pA" ? "pB" : "pA"];
  const tag = `sync-${++syncs}`;
  const seen = other.recorder.untilText("said", tag);
  await call(peers[name].socket, "say", SYNC, tag);
  await seen;
}

async function say(name, value, room = ROOM) {
  await call(peers[name].socket, "say", room, value);
  await settle(name);
}

async function whisper(name, socketId, text) {
  await call(peers[name].socket, "whisper", socketId, text);
  await settle(name);
}

// A broadcast to the whole channel from `manage.py announce`, in a process of its own.
async function announce(text) {
  const seen = [peers.pA, peers.pB].map((peer) => peer.recorder.untilText("announced", text));
  await within(
    new Promise((resolve, reject) => {
      execFile(
        config.python,
        ["-m", "django", "announce", ROOM_CHANNEL, "announced", JSON.stringify(text)],
        { cwd: config.root, env: { ...process.env, ...config.env }, timeout: WAIT_MS },
        (error, stdout, stderr) =>
          error ? reject(new Error(`announce failed: ${error}\n${stderr}`)) : resolve(stdout),
      );
    }),
    "manage.py announce",
    WAIT_MS + 1000,
  );
  await Promise.all(seen);
}

// Cut the transport under the socket, as a network failure would.
async function drop(socket) {
  const gone = disconnected(socket);
  socket.io.engine.close();
  return await gone;
}

async function reconnect(socket, url) {
  socket.io.uri = url;
  const done = connected(socket);
  socket.connect();
  await done;
}

const urlOf = (name) => (name === "a" ? config.a : config.b);

// What a socket that came back is: recovered or not, with which id and rooms.
async function state(socket, oldId) {
  return {
    recovered: socket.recovered,
    same_id: socket.id === oldId,
    rooms: (await call(socket, "rooms")).map((room) => (room === ROOM ? "ROOM" : room === socket.id ? "ID" : room)),
    note: await call(socket, "recall"),
  };
}

// Events a victim still on ROOM gets last: a whisper from A (its id's
// process), then a room event; waits for the latter.
async function finish(victim) {
  await whisper("pA", victim.socket.id, "after");
  await say("pB", "end");
  await victim.recorder.untilText("said", "end");
}

// A fresh socket (not in ROOM) got all there is once a whisper to its new id came.
async function finishFresh(victim) {
  await whisper("pA", victim.socket.id, "end");
  await victim.recorder.untilText("whispered", "end");
}

// What a victim keeps across a recovery: its room, and a note in socket.data.
const NOTE = { name: "victim", tags: [1, 2] };

async function prepare(socket) {
  await call(socket, "join", ROOM);
  await call(socket, "remember", NOTE);
}

async function joinedVictim() {
  const victim = client(config.a);
  await connected(victim.socket);
  await prepare(victim.socket);
  return victim;
}

async function gapEvents(victimId, tag) {
  await say("pB", `${tag}1`);
  await whisper("pA", victimId, `${tag}2`);
  await announce(`${tag}3`);
  await say("pB", Buffer.from([tag.charCodeAt(0), 0, 255]));
  await whisper("pB", victimId, `${tag}5`);
  await say("pA", `${tag}6`);
}

const scenarios = {
  // One cut, every kind of event while it is gone, one recovery.
  async gap() {
    const victim = await joinedVictim();
    await say("pB", "before");
    await victim.recorder.untilText("said", "before");
    const oldId = victim.socket.id;
    report("dropped", { reason: await drop(victim.socket) });
    await gapEvents(oldId, "m");
    await reconnect(victim.socket, urlOf(config.target));
    report("back", await state(victim.socket, oldId));
    await finish(victim);
    report("events", { events: victim.recorder.events });
  },

  // Nothing received before the cut: the CONNECT carries a pid and no offset.
  async zero() {
    const victim = await joinedVictim();
    const oldId = victim.socket.id;
    report("before_drop", { events: victim.recorder.events.length, offset: victim.socket._lastOffset ?? null });
    report("dropped", { reason: await drop(victim.socket) });
    await gapEvents(oldId, "m");
    await reconnect(victim.socket, urlOf(config.target));
    report("back", await state(victim.socket, oldId));
    await finish(victim);
    report("events", { events: victim.recorder.events });
  },

  // Three cuts in a row, coming back to B, A, B.
  async thrice() {
    const victim = await joinedVictim();
    await say("pA", "before");
    await victim.recorder.untilText("said", "before");
    const oldId = victim.socket.id;
    for (const [round, target] of [[1, "b"], [2, "a"], [3, "b"]]) {
      report("dropped", { round, reason: await drop(victim.socket) });
      await say("pB", `r${round}-room`);
      await whisper(round % 2 ? "pB" : "pA", oldId, `r${round}-whisper`);
      await say("pA", `r${round}-room-again`);
      await reconnect(victim.socket, urlOf(target));
      report("back", { round, ...(await state(victim.socket, oldId)) });
      await say("pA", `r${round}-live`);
      await victim.recorder.untilText("said", `r${round}-live`);
    }
    await finish(victim);
    report("events", { events: victim.recorder.events });
  },

  // Back after the window: a fresh socket, which gets none of what it missed.
  async late() {
    const victim = await joinedVictim();
    await say("pB", "before");
    await victim.recorder.untilText("said", "before");
    const oldId = victim.socket.id;
    report("dropped", { reason: await drop(victim.socket) });
    await say("pB", "m1");
    await whisper("pA", oldId, "m2");
    await sleep(config.wait_ms);
    const mark = victim.recorder.events.length;
    await reconnect(victim.socket, urlOf(config.target));
    report("back", await state(victim.socket, oldId));
    await say("pB", "m3");
    await finishFresh(victim);
    report("events", { events: victim.recorder.since(mark) });
  },

  // With a session cookie: a cut and a recovery, then a cut, a logout over
  // HTTP meanwhile, and a fresh socket.
  async logout() {
    const visit = await within(fetch(config.a + "/accounts/visit/"), "GET /accounts/visit/");
    const cookie = visit.headers
      .getSetCookie()
      .map((header) => header.split(";")[0])
      .find((pair) => pair.startsWith("sessionid="));
    if (!cookie) {
      throw new Error("no session cookie from /accounts/visit/");
    }
    const victim = client(config.a, { extraHeaders: { cookie } });
    await connected(victim.socket);
    await prepare(victim.socket);
    await say("pB", "before");
    await victim.recorder.untilText("said", "before");
    const oldId = victim.socket.id;

    report("dropped", { reason: await drop(victim.socket) });
    await say("pB", "m1");
    await reconnect(victim.socket, urlOf(config.target));
    report("back", await state(victim.socket, oldId));
    await victim.recorder.untilText("said", "m1");

    report("dropped", { reason: await drop(victim.socket) });
    await say("pB", "m2");
    const logout = await within(
      fetch(config.a + "/accounts/logout/", { method: "POST", headers: { cookie } }),
      "POST /accounts/logout/",
    );
    report("logged_out", { status: logout.status });
    const mark = victim.recorder.events.length;
    await reconnect(victim.socket, urlOf(config.target));
    report("back", await state(victim.socket, oldId));
    await say("pB", "m3");
    await finishFresh(victim);
    report("events", { events: victim.recorder.since(mark) });
  },

  // A reconnect 1 ms after the cut, while a peer on A sends a stream of
  // room events, one after the other: some before the cut, some while the
  // socket is gone, some while it is coming back (on the other process: while
  // it is in its rooms there and its log not handed over yet), some after.
  async quick() {
    const victim = await joinedVictim();
    const oldId = victim.socket.id;
    // Eight at a time (the server handles one socket's events in order),
    // 400 at most: fewer than a replay log holds.
    let sent = 0;
    let more = -1;
    const sender = async () => {
      while (more !== 0 && sent < 400) {
        if (more > 0) {
          more--;
        }
        await call(peers.pA.socket, "say", ROOM, `b${++sent}`);
      }
    };
    const stream = Promise.all(Array.from({ length: 8 }, sender));
    await victim.recorder.untilText("said", "b3");
    const gone = disconnected(victim.socket);
    victim.socket.io.engine.close();
    await sleep(1);
    await reconnect(victim.socket, urlOf(config.target));
    more = 10;
    await stream;
    report("dropped", { reason: await gone, sent });
    report("back", await state(victim.socket, oldId));
    await settle("pA");
    await finish(victim);
    report("events", { events: victim.recorder.events });
  },

  // A connection that stopped reading (the server sees nothing wrong with
  // it yet) while a new one comes with its pid and offset: the new one
  // takes the socket over, the old one is sent a DISCONNECT.
  async takeover() {
    const old = await joinedVictim();
    await say("pB", "before");
    await old.recorder.untilText("said", "before");
    const oldId = old.socket.id;
    const pid = old.socket._pid;
    const offset = old.socket._lastOffset;
    const ws = old.socket.io.engine.transport.ws;
    ws.pause();
    await say("pB", "g1");
    await whisper("pA", oldId, "g2");
    await whisper("pB", oldId, "g3");
    const oldGone = disconnected(old.socket);
    const fresh = client(urlOf(config.target), { auth: { pid, offset }, transports: ["websocket"] });
    await connected(fresh.socket);
    report("back", {
      ...(await state(fresh.socket, oldId)),
      recovered: fresh.socket._pid === pid,
    });
    ws.resume();
    report("old_disconnected", { reason: await oldGone });
    await finish(fresh);
    report("events", { events: fresh.recorder.events });
    report("old_events", { events: old.recorder.events });
  },

  // A replay log holds 5 events (settings_recovery_small): 5 missed events
  // are recovered, 10 are not.
  async overflow() {
    const victim = await joinedVictim();
    await say("pB", "before");
    await victim.recorder.untilText("said", "before");
    const oldId = victim.socket.id;

    report("dropped", { reason: await drop(victim.socket) });
    for (let index = 1; index <= 5; index++) {
      await call(peers.pB.socket, "say", ROOM, `f${index}`);
    }
    await settle("pB");
    let mark = victim.recorder.events.length;
    await reconnect(victim.socket, urlOf(config.target));
    report("back", await state(victim.socket, oldId));
    await say("pB", "fend");
    await victim.recorder.untilText("said", "fend");
    report("events", { events: victim.recorder.since(mark) });

    report("dropped", { reason: await drop(victim.socket) });
    for (let index = 1; index <= 10; index++) {
      await call(peers.pB.socket, "say", ROOM, `o${index}`);
    }
    await settle("pB");
    mark = victim.recorder.events.length;
    await reconnect(victim.socket, urlOf(config.target));
    report("back", await state(victim.socket, oldId));
    await say("pB", "o11");
    await finishFresh(victim);
    report("events", { events: victim.recorder.since(mark) });
  },
};

try {
  const run = scenarios[scenario];
  if (!run) {
    throw new Error(`unknown scenario ${scenario}`);
  }
  await startPeers();
  await run();
  process.exit(0);
} catch (error) {
  report("error", { message: String(error && error.stack ? error.stack : error) });
  process.exit(1);
}
