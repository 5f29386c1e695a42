// The official socket.io-client against several rain_ws processes behind a
// round-robin proxy (no sticky sessions), printing what it observed as JSON
// lines ({"step": ..., ...}) for tests/test_cluster_polling.py.
//
// Usage: node cluster.mjs tour <proxy url> <default|polling|blocked>
//
//   default  the client's default options: long-polling, then the upgrade
//   polling  transports: ["polling"]
//   blocked  default options through a proxy that does not pass WebSockets
//
// Two peers, each one engine session multiplexing the echo channel and the
// rooms channel, whose sessions live in two different processes (an
// engine id starts with its process's id). Every wait has a deadline: a
// stalled scenario prints an "error" step and exits 1 rather than hanging.

import { Manager } from "socket.io-client";

const WAIT_MS = 8000;
const ECHO = "/echo/2.0/echo";
const ROOM = "/rooms/1.0/room";
// A request that only moves the proxy's round robin on.
const SHIFT = "/static/rain_ws/rain.js";
const MODES = {
  default: {},
  polling: { transports: ["polling"] },
  blocked: {},
};

const [scenario, baseUrl, mode] = process.argv.slice(2);

function report(step, fields = {}) {
  process.stdout.write(JSON.stringify({ step, ...fields }) + "\n");
}

// JSON cannot carry bytes: a binary value is reported as {"$bytes": [...]}.
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

function connected(socket) {
  return within(
    new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("connect_error", (error) => reject(new Error(`${socket.nsp}: ${error.message}`)));
    }),
    `the connection of ${socket.nsp}`,
  );
}

function ack(socket, event, ...args) {
  return within(
    new Promise((resolve) => socket.emit(event, ...args, (...reply) => resolve(plain(reply)))),
    `the ack of "${event}"`,
  );
}

// The id of the process holding an engine session: its sid's prefix.
function owner(engineId) {
  return engineId.split(".")[0];
}

// One engine session (forced new) carrying the echo and rooms channels.
async function peer(options) {
  const manager = new Manager(baseUrl, { ...options, reconnection: false });
  const engine = manager.engine;
  const first = engine.transport.name;
  // How the upgrade attempt ended, if there is one.
  const upgrade = new Promise((resolve) => {
    engine.once("upgrade", (transport) => resolve({ upgraded: true, transport: transport.name }));
    engine.once("upgradeError", (error) => resolve({ upgraded: false, error: String(error && error.message) }));
  });
  const echo = manager.socket(ECHO);
  const room = manager.socket(ROOM);
  const hello = next(echo, "hello");
  await Promise.all([connected(echo), connected(room)]);
  return { manager, engine, first, upgrade, echo, room, hello, sid: engine.id, owner: owner(engine.id) };
}

function close(one) {
  one.echo.disconnect();
  one.room.disconnect();
  one.manager.engine && one.manager.engine.close();
}

const scenarios = {
  async tour() {
    const options = MODES[mode];
    if (options === undefined) {
      throw new Error(`unknown mode ${mode}`);
    }
    const a = await peer(options);
    let b = await peer(options);
    let tries = 1;
    while (b.owner === a.owner && tries < 10) {
      close(b);
      // Every other time, one request more through the proxy, so that the
      // next handshake takes the round robin's other turn whether a peer
      // makes an even or an odd number of requests.
      if (tries % 2 === 0) {
        await within(fetch(`${baseUrl}${SHIFT}`).then((r) => r.text()), "a shift");
      }
      b = await peer(options);
      tries += 1;
    }
    const peers = [a, b];
    report("peers", {
      owners: peers.map((one) => one.owner),
      sids: peers.map((one) => one.sid),
      first: peers.map((one) => one.first),
      tries,
    });
    report("hello", { args: await Promise.all(peers.map(async (one) => plain(await one.hello))) });
    report("echo", {
      replies: await Promise.all(peers.map((one) => ack(one.echo, "echo", 1, "two", { three: [3] }))),
    });

    // The upgrade: done or failed with the default options; none polling only.
    let upgrades = null;
    if (mode !== "polling") {
      upgrades = await Promise.all(
        peers.map((one) =>
          one.engine.transport.name === "websocket"
            ? { upgraded: true, transport: "websocket" }
            : within(one.upgrade, "the upgrade or its failure"),
        ),
      );
    }
    report("upgrade", { outcomes: upgrades, transports: peers.map((one) => one.engine.transport.name) });

    const payload = { buffer: Buffer.from([0, 1, 2, 254, 255]), list: [Uint8Array.from([104, 105]), "text"] };
    report("binary", {
      sent: plain([payload, Buffer.from("top")]),
      replies: await Promise.all(peers.map((one) => ack(one.echo, "echo", payload, Buffer.from("top")))),
    });

    // A room across the two processes, both ways.
    const name = `cluster-${Math.random().toString(16).slice(2, 10)}`;
    const joined = await Promise.all(peers.map((one) => ack(one.room, "join", name)));
    const toB = next(b.room, "said");
    const saidA = await ack(a.room, "say", name, "from a");
    const gotB = plain(await toB);
    const toA = next(a.room, "said");
    const saidB = await ack(b.room, "say", name, "from b");
    const gotA = plain(await toA);
    report("room", {
      joined,
      said: [saidA, saidB],
      room_ids: peers.map((one) => one.room.id),
      b_got: gotB,
      a_got: gotA,
    });
    report("end", { transports: peers.map((one) => one.engine.transport.name) });
    peers.forEach(close);
    // Let the DISCONNECT and close packets leave before the process exits.
    await new Promise((resolve) => setTimeout(resolve, 300));
  },
};

const run = scenarios[scenario];
if (run === undefined || !baseUrl) {
  process.stderr.write(`usage: node cluster.mjs <${Object.keys(scenarios).join("|")}> <url> <mode>\n`);
  process.exit(2);
}
try {
  await run();
  process.exit(0);
} catch (error) {
  report("error", { message: String(error && error.message) });
  process.exit(1);
}
