// The official socket.io-client through a drain with connection state
// recovery on, for tests/test_drain_recovery.py.
//
// Usage: node drain.mjs <url of A> <url of B> <sockets> <publish every ms> <reconnect delay ms>
//
// <sockets> Managers (one engine session each, WebSocket only) connect a
// socket of the rooms channel to process A and join one room. A publisher
// socket on process B says a numbered sequence to that room at a steady
// rate, each number once its previous one was acknowledged. Once it has
// begun, the script prints {"step": "ready"}: the test then drains A.
//
// When A closes a connection, its Manager's uri is switched to B before the
// Manager reconnects (after a fixed delay): the stand-in for a load balancer
// that took A out of its rotation when the drain began, as one does when
// the process it sends to is being stopped.
//
// The publisher goes on until every socket is connected again, says a few
// numbers more, and stops; once every socket has the last number, the
// publisher asks B for its counts ("stats"). Then (or once a deadline
// passed) the script prints {"step": "result", ...}: what each socket saw,
// with times in ms since the script began, and B's counts. Every wait has a
// deadline: a stalled run reports an "error" and exits 1 rather than hanging.

import { Manager } from "socket.io-client";

const ROOM_CHANNEL = "/rooms/1.0/room";
const ROOM = "drain";
const CONNECT_MS = 15000;
const BACK_MS = 30000;
const LAST_MS = 10000;
const ACK_MS = 5000;
// Numbers said before the test is told to drain, and after every socket is back.
const BEFORE = 5;
const AFTER = 5;

const [urlA, urlB, countArg, everyArg, delayArg] = process.argv.slice(2);
const COUNT = Number(countArg);
const EVERY_MS = Number(everyArg);
const DELAY_MS = Number(delayArg);
const began = performance.now();

function now() {
  return Math.round((performance.now() - began) * 10) / 10;
}

function report(step, fields = {}) {
  process.stdout.write(JSON.stringify({ step, ...fields }) + "\n");
}

function within(promise, ms, what) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function connected(socket) {
  return new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", (error) => reject(new Error(`${socket.nsp}: ${error.message}`)));
  });
}

function ack(socket, event, ...args) {
  return within(
    new Promise((resolve) => socket.emit(event, ...args, (...reply) => resolve(reply))),
    ACK_MS,
    `the ack of "${event}"`,
  );
}

// Where an engine session is connected: "host:port".
function server(engine) {
  return engine ? `${engine.hostname}:${engine.port}` : null;
}

// Resolves once every socket passes ``test``, checked whenever ``changed`` is called.
const waiters = [];
function changed() {
  for (const waiter of [...waiters]) {
    if (waiter.test()) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  }
}
function until(test) {
  return new Promise((resolve) => {
    if (test()) {
      resolve();
    } else {
      waiters.push({ test, resolve });
    }
  });
}

const clients = [];
let publisher = null;
const published = []; // published[n - 1]: when n was said
let publishing = null;
let stopAt = null; // the number to stop at, once every socket is back
let last = null; // the last number, once the publisher stopped
let stats = null; // B's counts at the end

function client() {
  const manager = new Manager(urlA, {
    transports: ["websocket"],
    reconnectionDelay: DELAY_MS,
    reconnectionDelayMax: DELAY_MS,
    randomizationFactor: 0,
  });
  const socket = manager.socket(ROOM_CHANNEL);
  const seen = {
    manager,
    socket,
    id: null,
    server: null,
    disconnects: [],
    connects: [],
    received: [],
  };
  manager.on("close", () => {
    manager.uri = urlB; // the load balancer no longer sends to A
  });
  socket.on("disconnect", (reason, details) => {
    const code = details && details.context ? details.context.code : null;
    seen.disconnects.push({ at: now(), reason, code: code === undefined ? null : code });
    changed();
  });
  socket.on("connect", () => {
    if (seen.id === null) {
      seen.id = socket.id;
      seen.server = server(manager.engine);
    } else {
      seen.connects.push({ at: now(), id: socket.id, recovered: socket.recovered, server: server(manager.engine) });
    }
    changed();
  });
  // The offset the listener sees as a trailing argument is not looked at.
  socket.on("said", (number) => {
    seen.received.push(number);
    changed();
  });
  clients.push(seen);
  return seen;
}

async function publish() {
  const start = performance.now();
  for (let number = 1; ; number += 1) {
    published.push(now());
    changed();
    const reply = await ack(publisher.socket, "say", ROOM, number);
    if (reply[0] !== null) {
      throw new Error(`"say" ${number} failed: ${JSON.stringify(reply)}`);
    }
    if (stopAt !== null && number >= stopAt) {
      last = number;
      changed();
      return;
    }
    const next = start + number * EVERY_MS;
    await sleep(Math.max(0, next - performance.now()));
  }
}

function back(seen) {
  return seen.connects.length > 0;
}

async function main() {
  const publisherManager = new Manager(urlB, { transports: ["websocket"], reconnection: false });
  publisher = { manager: publisherManager, socket: publisherManager.socket(ROOM_CHANNEL) };
  await within(connected(publisher.socket), CONNECT_MS, "the publisher's connection");
  publisher.id = publisher.socket.id;

  const all = Array.from({ length: COUNT }, client);
  await within(Promise.all(all.map((seen) => connected(seen.socket))), CONNECT_MS, "the connections to A");
  await Promise.all(all.map((seen) => ack(seen.socket, "join", ROOM)));

  publishing = publish();
  publishing.catch(() => {});
  await within(Promise.race([until(() => published.length >= BEFORE), publishing]), CONNECT_MS, "the first numbers");
  report("ready", { servers: [...new Set(all.map((seen) => seen.server))] });

  // The publisher's promise settles before then only if it failed.
  await within(Promise.race([until(() => all.every(back)), publishing]), BACK_MS, "every socket to be back");
  stopAt = published.length + AFTER;
  await within(publishing, LAST_MS, "the publisher's last numbers");
  await within(
    until(() => all.every((seen) => seen.received.includes(last))),
    LAST_MS,
    "every socket to get the last number",
  );
  // What B holds now, by its own count.
  stats = (await ack(publisher.socket, "stats"))[1];
}

// Resolves once the line is written out: a pipe takes 64 KiB at a time, and
// process.exit() would cut a longer line short.
function result(error) {
  const line = JSON.stringify({
    step: "result",
    error: error ? String(error.message || error) : null,
    publisher: publisher && publisher.id,
    published,
    last,
    stats,
    sockets: clients.map((seen) => ({
      id: seen.id,
      server: seen.server,
      disconnects: seen.disconnects,
      connects: seen.connects,
      received: seen.received,
    })),
  });
  return new Promise((resolve) => process.stdout.write(line + "\n", resolve));
}

function closeAll() {
  for (const seen of clients) {
    seen.manager.reconnection(false);
    seen.socket.disconnect();
  }
  if (publisher) {
    publisher.socket.disconnect();
  }
}

main().then(
  async () => {
    await result(null);
    closeAll();
    process.exit(0);
  },
  async (error) => {
    await result(error);
    closeAll();
    process.exit(1);
  },
);
