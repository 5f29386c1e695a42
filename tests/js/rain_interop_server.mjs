// The official Socket.IO server (npm socket.io 4.x) for rain.js to talk to,
// with the page that loads rain.js: tests/test_rain_js_interop.py drives
// Chromium against it.
//
// Usage: node rain_interop_server.mjs
// Prints {"port": N} once listening on 127.0.0.1, then serves until killed.
//
// Namespace /interop:
//   on connect     emits "hello" {message, id}
//   "echo"         acks its arguments back, as they came (a plain Socket.IO ack)
//   "count" key    counts the key, acks (null, count): an error-first ack
//   "reverse" buf  emits "reversed" with the bytes reversed, and acks them
//   "ask"          emits "question" to the client with an ack, acks its answer
//   "silent"       never acks
//   "drop"         closes the underlying connection (no DISCONNECT packet)
//   "kick"         disconnects this namespace (a DISCONNECT packet)
//   "stats"        acks {handshakes}: how many WebSockets were opened so far
// Namespace /second emits "hello" on connect.
// Namespace /private refuses every CONNECT with "not authorized".

import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { Server } from "socket.io";

const RAIN_JS = new URL("../../rain_ws/static/rain_ws/rain.js", import.meta.url);
const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>rain.js and socket.io</title>
<script id="rain-ws-config" type="application/json">{"path": "/socket.io/"}</script>
<script src="/rain.js"></script>
</head><body></body></html>`;

const http = createServer((request, response) => {
  if (request.url === "/") {
    response.writeHead(200, { "content-type": "text/html" }).end(PAGE);
  } else if (request.url === "/rain.js") {
    response.writeHead(200, { "content-type": "text/javascript" }).end(readFileSync(RAIN_JS));
  } else {
    response.writeHead(404).end();
  }
});

const io = new Server(http, { transports: ["websocket"], pingInterval: 1000, pingTimeout: 1000 });
let handshakes = 0;
io.engine.on("connection", () => handshakes++);
const counts = new Map();

io.of("/interop").on("connection", (socket) => {
  socket.emit("hello", { message: "Hello from socket.io", id: socket.id });
  socket.on("echo", (...args) => args.pop()(...args));
  socket.on("count", (key, ack) => {
    counts.set(key, (counts.get(key) || 0) + 1);
    ack(null, counts.get(key));
  });
  socket.on("reverse", (data, ack) => {
    const reversed = Buffer.from(data).reverse();
    socket.emit("reversed", reversed);
    ack(reversed);
  });
  socket.on("ask", (ack) => {
    socket.timeout(5000).emitWithAck("question", "6 x 7").then(ack, (error) => ack(error.message));
  });
  socket.on("silent", () => {});
  socket.on("drop", () => socket.conn.close());
  socket.on("kick", () => socket.disconnect());
  socket.on("stats", (ack) => ack({ handshakes }));
});

io.of("/second").on("connection", (socket) => socket.emit("hello", { message: "second", id: socket.id }));
io.of("/private").use((socket, next) => next(new Error("not authorized")));

http.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ port: http.address().port }) + "\n");
});
