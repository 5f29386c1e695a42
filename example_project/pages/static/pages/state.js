/*
 * The connection page's controller: it opens the page's channels with
 * rain.js's documented API and counts what that API tells a page: connect,
 * disconnect (with its reason) and connect_error on each socket, its
 * connected flag and id. The server process's own counters (idle reaps
 * among them, which a page cannot tell from other server disconnects) come
 * from /state/server/.
 */
define(function () {
  function Controller() {}

  var TRANSPORT_LOST = ["transport close", "transport error", "ping timeout", "parse error"];

  Controller.prototype.init = function () {
    var root = this.context.getRoot();
    this.root = root.jquery ? root[0] : root;
    this.transportReconnects = 0;
    this.channels = [];
    var scheme = location.protocol === "https:" ? "wss:" : "ws:";
    this.find("url").textContent = scheme + "//" + location.host + this.root.dataset.socketPath + "?EIO=4&transport=websocket";
    var self = this;
    this.root.querySelectorAll("[data-channel]").forEach(function (card) { self.watch(card); });
    this.find("refresh").addEventListener("click", function () { self.refreshServer(); });
    this.context.messaging.subscribe("session_expired", function () {
      self.log("session_expired published: the session has ended");
      self.context.messaging.publish("toast", "Your session has ended", "error");
    });
    this.refreshServer();
  };

  Controller.prototype.find = function (itemid) {
    return this.root.querySelector("[data-itemid='" + itemid + "']");
  };

  Controller.prototype.log = function (text) {
    var item = document.createElement("li"), time = document.createElement("time");
    var now = new Date();
    time.dateTime = now.toISOString();
    time.textContent = now.toLocaleTimeString();
    item.append(time, " " + text);
    this.find("log").prepend(item);
  };

  Controller.prototype.watch = function (card) {
    var self = this, name = card.dataset.channel, messaging = this.context.messaging;
    var socket = messaging.getSocket(name);
    var channel = {name: name, socket: socket, state: "connecting",
                   connects: 0, reconnects: 0, lost: 0, serverDisconnects: 0, refusals: 0};
    this.channels.push(channel);
    var field = function (key) { return card.querySelector("[data-field='" + key + "']"); };
    var show = function () {
      ["connects", "reconnects", "lost", "serverDisconnects", "refusals"].forEach(function (key) {
        field(key).textContent = String(channel[key]);
      });
      field("id").textContent = socket.connected ? socket.id : "–";
      var badge = field("state");
      badge.textContent = channel.state;
      badge.dataset.state = channel.state;
      self.showTransport();
    };
    var set = function (state, text) {
      channel.state = state;
      self.log(name + ": " + text);
      show();
      self.refreshServer();
    };

    socket.on("connect", function () {
      channel.connects += 1;
      if (channel.connects > 1) channel.reconnects += 1;
      if (self.transportState() === "reconnecting") self.transportReconnects += 1;
      set("connected", channel.connects > 1 ? "connected again, as " + socket.id : "connected, as " + socket.id);
    });
    socket.on("disconnect", function (reason) {
      if (TRANSPORT_LOST.indexOf(reason) >= 0) {
        channel.lost += 1;
        set("reconnecting", "disconnected (" + reason + "); rain.js reconnects by itself");
      } else if (reason === "io server disconnect") {
        channel.serverDisconnects += 1;
        set("disconnected by the server", "disconnected by the server; the next emit connects it again");
      } else {
        set("disconnected", "disconnected (" + reason + ")");
      }
    });
    socket.on("connect_error", function (error) {
      channel.refusals += 1;
      set("refused", "refused: " + error.message);
    });
    socket.on("hello", function (data) { self.log(name + ": hello, " + JSON.stringify(data)); });
    socket.on("info", function (data) { self.log(name + ": info, " + JSON.stringify(data)); });
    socket.on("session_expired", function () { self.log(name + ": the server says the session ended"); });

    card.querySelector("[data-action='emit']").addEventListener("click", function () {
      var event = name.indexOf("/notes/") === 0 ? "list" : "whoami";
      field("answer").textContent = "Emitted " + event + "…";
      socket.emitWithAck(event).then(function (answer) {
        field("answer").textContent = event + " answered " + JSON.stringify(answer);
      }, function (error) {
        field("answer").textContent = event + " failed: " + error.message;
      });
    });
    card.querySelector("[data-action='disconnect']").addEventListener("click", function () {
      socket.disconnect();
    });
    show();
  };

  // What the page can say of its one WebSocket: rain.js keeps it open while
  // a channel is connected or connecting.
  Controller.prototype.transportState = function () {
    var states = this.channels.map(function (channel) { return channel.state; });
    if (states.indexOf("connected") >= 0) return "open";
    if (states.indexOf("reconnecting") >= 0) return "reconnecting";
    if (states.indexOf("connecting") >= 0) return "connecting";
    return "closed: no channel is connected";
  };

  Controller.prototype.showTransport = function () {
    var state = this.transportState();
    this.find("wsState").textContent = state;
    this.find("reconnects").textContent = String(this.transportReconnects);
    this.context.messaging.publish("connection", {
      open: "online", reconnecting: "offline", connecting: "connecting",
    }[state] || "paused");
  };

  Controller.prototype.refreshServer = function () {
    var self = this;
    return fetch(this.root.dataset.serverUrl, {credentials: "same-origin"})
      .then(function (response) { return response.json(); })
      .then(function (data) {
        ["connections", "reaped", "refused"].forEach(function (key) {
          self.find(key).textContent = data[key] === null ? "unknown" : String(data[key]);
        });
      }, function (error) {
        self.find("connections").textContent = "unavailable (" + error.message + ")";
      });
  };

  return Controller;
});
