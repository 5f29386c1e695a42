// A program following /orders/1.0/updates with its API token (socket.io-client, Node).
import { io } from "socket.io-client";

const server = process.env.SERVER_URL ?? "http://127.0.0.1:8000";

const socket = io(`${server}/orders/1.0/updates`, {
  transports: ["websocket"], // rain_ws serves no HTTP long-polling
  // Called at each connection and reconnection, so a renewed token is picked up.
  auth: (send) => send({ token: process.env.ORDERS_TOKEN }),
});

socket.on("welcome", (data) => console.log("connected as", data.username));

socket.on("connect_error", (error) => {
  console.log("refused:", error.message, error.data?.code);
  socket.disconnect(); // or fetch a new token and socket.connect()
});

socket.on("connect", () => {
  // rain_ws acks are error-first: (error, result).
  socket.emit("whoami", (error, result) => {
    console.log("whoami:", error ?? result);
    socket.disconnect();
  });
});
