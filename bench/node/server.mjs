// The Node socket.io reference: `echo` acked with its own arguments, `join`
// to enter a room (acked with no arguments), and `fanout` to send `news` to a
// room, leaving the sender out.
//
// Usage: node server.mjs PORT [polling]
// Serves /socket.io/ on 127.0.0.1:PORT, WebSocket transport only, like the
// Python servers of the WebSocket scenarios; with `polling`, socket.io's
// default transports (long-polling, with the upgrade to WebSocket offered),
// for the long-polling scenario.

import { createServer } from "node:http";
import { Server } from "socket.io";

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error("usage: node server.mjs PORT [polling]");
  process.exit(2);
}

const httpServer = createServer();
const transports = process.argv[3] === "polling" ? ["polling", "websocket"] : ["websocket"];
const io = new Server(httpServer, { transports, serveClient: false });

io.on("connection", (socket) => {
  socket.on("echo", (...args) => {
    const ack = args.pop();
    if (typeof ack === "function") {
      ack(...args);
    }
  });
  socket.on("join", (room, ack) => {
    socket.join(room);
    if (typeof ack === "function") {
      ack();
    }
  });
  socket.on("fanout", (room, ...args) => {
    socket.to(room).emit("news", ...args);
  });
});

httpServer.listen(port, "127.0.0.1");

// The runner stops servers with SIGTERM; exit at once rather than waiting
// for open connections to drain.
process.on("SIGTERM", () => process.exit(0));
