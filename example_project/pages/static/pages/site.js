/*
 * The site's page-wide helpers, on rain.js's message bus (no globals of our
 * own): components publish, this script shows.
 *
 *   messaging.publish("toast", text[, kind])      a toast: kind "info" (default), "success" or "error"
 *   messaging.publish("connection", state[, text]) the header's status: "connecting", "online",
 *                                                 "offline" (reconnecting), "paused" (the next emit
 *                                                 reconnects) or "refused"
 */
(() => {
  "use strict";

  const TOAST_MS = 6000;

  function toast(text, kind = "info") {
    const region = document.querySelector("[data-toasts]");
    if (!region) return;
    const item = document.createElement("div");
    item.className = `toast toast-${kind}`;
    item.setAttribute("role", kind === "error" ? "alert" : "status");
    const message = document.createElement("p");
    message.textContent = String(text);
    const close = document.createElement("button");
    close.type = "button";
    close.className = "toast-close";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "×";
    const dismiss = () => {
      clearTimeout(timer);
      item.classList.add("toast-leaving");
      setTimeout(() => item.remove(), 200);
    };
    const timer = setTimeout(dismiss, TOAST_MS);
    close.addEventListener("click", dismiss);
    item.append(message, close);
    region.append(item);
  }

  const LABELS = {
    connecting: "Connecting…",
    online: "Online",
    offline: "Reconnecting…",
    paused: "Paused: reconnects when you act",
    refused: "Not connected",
  };

  function connection(state, text) {
    const status = document.querySelector("[data-status]");
    if (!status) return;
    status.hidden = false;
    status.dataset.state = state;
    status.querySelector("[data-status-text]").textContent = text || LABELS[state] || state;
  }

  if (window.rain) {
    window.rain.messaging.subscribe("toast", toast);
    window.rain.messaging.subscribe("connection", connection);
  }
})();
