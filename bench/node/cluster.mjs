// The Node socket.io side of bench/cluster.py: one of several processes
// sharing one redis-server through @socket.io/redis-adapter (Redis pub/sub,
// with the `redis` client), as Socket.IO's documentation sets it up.
// `join` enters a room (acked with no arguments), `fanout` sends `news` to a
// room leaving the sender out, `broadcast` sends `news` to every socket of
// the main namespace in every process but the sender.
//
// Usage: node cluster.mjs PORT REDIS_URL [PING_INTERVAL_MS PING_TIMEOUT_MS]
// Serves /socket.io/ on 127.0.0.1:PORT, WebSocket transport only, like the
// rain_ws processes it is compared with; it listens only once both Redis
// clients are connected. The heartbeat is socket.io's default (25 s, 20 s),
// as rain_ws's is, unless given.

import { createServer } from "node:http";
import { Server } from "socket.io";
import { createAdapter } from "@socket.io/redis-adapter";
import { createClient } from "redis";

const port = Number(process.argv[2]);
const redisUrl = process.argv[3];
const pingInterval = Number(process.argv[4] ?? 25000);
const pingTimeout = Number(process.argv[5] ?? 20000);
if (!Number.isInteger(port) || port <= 0 || !redisUrl) {
  console.error("usage: node cluster.mjs PORT REDIS_URL [PING_INTERVAL_MS PING_TIMEOUT_MS]");
  process.exit(2);
}

const pubClient = createClient({ url: redisUrl });
const subClient = pubClient.duplicate();
for (const client of [pubClient, subClient]) {
  client.on("error", (error) => console.error("redis:", error.message));
}
await Promise.all([pubClient.connect(), subClient.connect()]);

const httpServer = createServer();
const io = new Server(httpServer, {
  transports: ["websocket"],
  serveClient: false,
  pingInterval,
  pingTimeout,
  adapter: createAdapter(pubClient, subClient),
});

io.on("connection", (socket) => {
  socket.on("join", (room, ack) => {
    socket.join(room);
    if (typeof ack === "function") {
      ack();
    }
  });
  socket.on("fanout", (room, ...args) => {
    socket.to(room).emit("news", ...args);
  });
  socket.on("broadcast", (...args) => {
    socket.broadcast.emit("news", ...args);
  });
});

httpServer.listen(port, "127.0.0.1");

// The benchmark stops its servers with SIGTERM: exit at once rather than
// waiting for open connections to drain.
process.on("SIGTERM", () => process.exit(0));
