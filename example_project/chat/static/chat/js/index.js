/*
 * The chat component's controller, started by rain.js from the component's
 * data-rain-controller.
 *
 * init, start and configureSocket are RAIN's seed example (getSocket('chat'),
 * the Talk button, the hello message), written without jQuery: getRoot() is
 * the component's element, and the hello goes to the page's toasts instead of
 * alert(). The chat grows from there: the conversation "everyone" (every
 * socket of the channel), rooms to join, a message list and a message box.
 */
define(function() {
function Controller() {}
Controller.prototype.init = function () {
this._socket = this.context.messaging.getSocket('chat');
this.configureSocket();
this.start();
};
Controller.prototype.start = function () {
var root = this.context.getRoot(),
btnTalk = root.querySelector("input[data-itemid='btnCustomHandler']");
var self = this;
btnTalk.addEventListener('click', function () {
self._socket.emit('new-message', {text: 'Welcome!'});
});
this.startChat();
};
/**
* Method used to communicate with the chat server side handler.
*/
Controller.prototype.configureSocket = function () {
var messaging = this.context.messaging;
this._socket.on('hello', function (data) {
messaging.publish('toast', data.message);
});
this.configureChat();
};

// -- the chat ----------------------------------------------------------------

var EVERYONE = "";
var SUGGESTED_HINT = "Only the browsers that joined # %s hear this.";

Controller.prototype.find = function (itemid) {
  return this.root.querySelector("[data-itemid='" + itemid + "']");
};

Controller.prototype.startChat = function () {
  var self = this;
  this.root = this.context.getRoot();
  if (this.root.jquery) this.root = this.root[0];
  this.current = EVERYONE;
  this.joined = new Set();

  this.root.querySelector("[data-itemid='rooms']").addEventListener("click", function (event) {
    var button = event.target.closest("button[data-room]");
    if (button) self.open(button.dataset.room);
  });

  this.find("joinForm").addEventListener("submit", function (event) {
    event.preventDefault();
    var input = event.target.elements.room, room = input.value.trim();
    if (!room) return;
    input.value = "";
    self.open(room);
  });

  this.find("leave").addEventListener("click", function () {
    self.leave(self.current);
  });

  // A form: Enter in the box and the Send button both submit it.
  this.find("composer").addEventListener("submit", function (event) {
    event.preventDefault();
    var input = event.target.elements.text, text = input.value.trim();
    if (!text) return;
    input.value = "";
    self.send(self.current, text);
  });
};

Controller.prototype.configureChat = function () {
  var self = this, socket = this._socket, messaging = this.context.messaging;

  socket.on("connect", function () {
    messaging.publish("connection", "online");
    // The server forgets a socket's rooms when it goes: join them again.
    self.joined.forEach(function (room) { socket.emit("join", room); });
  });
  socket.on("disconnect", function (reason) {
    // The server disconnected the channel (the idle reaper, an ended
    // session): rain.js connects it again at the next emit. Otherwise the
    // transport went, and rain.js reconnects by itself.
    messaging.publish("connection", reason === "io server disconnect" || reason === "io client disconnect" ? "paused" : "offline");
  });
  socket.on("connect_error", function (error) {
    messaging.publish("connection", "refused", "Not connected: " + error.message);
  });

  socket.on("message", function (data) {
    self.add(EVERYONE, {name: data.name, text: data.text, mine: data.from === socket.id});
  });
  socket.on("room-message", function (data) {
    if (self.joined.has(data.room)) self.add(data.room, {name: data.name, text: data.text});
  });
  socket.on("joined", function (data) {
    if (self.joined.has(data.room)) self.add(data.room, {system: data.name + " joined # " + data.room});
  });
  socket.on("left", function (data) {
    if (self.joined.has(data.room)) self.add(data.room, {system: data.name + " left # " + data.room});
  });

  messaging.subscribe("session_expired", function () {
    self.find("expired").hidden = false;
    messaging.publish("connection", "refused", "Session ended");
  });
};

// The list of a conversation, made the first time it is needed.
Controller.prototype.list = function (room) {
  var lists = this.find("messages");
  var list = Array.prototype.find.call(lists.children, function (item) { return item.dataset.room === room; });
  if (!list) {
    list = document.createElement("ol");
    list.className = "message-list";
    list.dataset.room = room;
    list.setAttribute("aria-label", "Messages in # " + room);
    list.setAttribute("aria-live", "polite");
    list.hidden = true;
    lists.appendChild(list);
  }
  return list;
};

// The room's button in the list, made for rooms the page does not suggest.
Controller.prototype.roomButton = function (room) {
  var rooms = this.find("rooms");
  var button = Array.prototype.find.call(rooms.querySelectorAll("button[data-room]"), function (item) {
    return item.dataset.room === room;
  });
  if (!button) {
    var item = document.createElement("li");
    button = document.createElement("button");
    button.type = "button";
    button.className = "room";
    button.dataset.room = room;
    var name = document.createElement("span");
    name.className = "room-name";
    name.textContent = "# " + room;
    var badge = document.createElement("span");
    badge.className = "badge";
    badge.hidden = true;
    button.append(name, badge);
    item.appendChild(button);
    rooms.appendChild(item);
  }
  return button;
};

Controller.prototype.add = function (room, line) {
  var list = this.list(room), item = document.createElement("li");
  if (line.system) {
    item.className = "system";
    item.textContent = line.system;
  } else {
    item.className = line.mine ? "message mine" : "message";
    var author = document.createElement("span");
    author.className = "author";
    author.textContent = line.mine ? "You" : line.name;
    var text = document.createElement("p");
    text.className = "text";
    text.textContent = line.text;
    item.append(author, text);
  }
  list.appendChild(item);
  if (room === this.current) {
    var scroller = this.find("messages");
    scroller.scrollTop = scroller.scrollHeight;
  } else if (!line.system) {
    var badge = this.roomButton(room).querySelector(".badge");
    badge.textContent = String(Number(badge.textContent || 0) + 1);
    badge.hidden = false;
  }
};

// Show a conversation, joining its room first if need be.
Controller.prototype.open = function (room) {
  var self = this;
  if (room === EVERYONE || this.joined.has(room)) return this.show(room);
  this._socket.emitWithAck("join", room).then(function () {
    self.joined.add(room);
    self.roomButton(room).dataset.joined = "true";
    self.add(room, {system: "You joined # " + room + ". Whoever else joins it hears what you say here."});
    self.show(room);
  }, function (error) {
    self.context.messaging.publish("toast", "Cannot join " + room + ": " + error.message, "error");
  });
};

Controller.prototype.show = function (room) {
  this.current = room;
  var lists = this.find("messages");
  Array.prototype.forEach.call(lists.children, function (list) { list.hidden = list.dataset.room !== room; });
  this.list(room).hidden = false;
  this.find("rooms").querySelectorAll("button[data-room]").forEach(function (button) {
    if (button.dataset.room === room) {
      button.setAttribute("aria-current", "true");
      var badge = button.querySelector(".badge");
      badge.hidden = true;
      badge.textContent = "";
    } else {
      button.removeAttribute("aria-current");
    }
  });
  var label = room === EVERYONE ? "# everyone" : "# " + room;
  this.find("title").textContent = label;
  this.find("subtitle").textContent = room === EVERYONE
    ? "Everyone on the chat channel hears this."
    : SUGGESTED_HINT.replace("%s", room);
  this.find("leave").hidden = room === EVERYONE;
  var input = this.find("composer").elements.text;
  input.placeholder = "Message " + label;
  input.focus();
  lists.scrollTop = lists.scrollHeight;
};

Controller.prototype.leave = function (room) {
  this.joined.delete(room);
  this.roomButton(room).dataset.joined = "false";
  this._socket.emit("leave", room);
  this.add(room, {system: "You left # " + room + "."});
  this.show(EVERYONE);
};

Controller.prototype.send = function (room, text) {
  var self = this, socket = this._socket, messaging = this.context.messaging;
  var failed = function (error) {
    messaging.publish("toast", "Not sent: " + error.message, "error");
  };
  if (room === EVERYONE) {
    // The server sends the line back to everyone, this page included.
    socket.emitWithAck("new-message", {text: text}).catch(failed);
    return;
  }
  var say = function () { return socket.emitWithAck("say", room, text); };
  say().catch(function (error) {
    // A server disconnect (the idle reaper) forgot the rooms; the emit that
    // reconnected went before the join again: join, then say once more.
    if (error.code !== "not_in_room") throw error;
    return socket.emitWithAck("join", room).then(say);
  }).then(function () {
    self.add(room, {name: "You", text: text, mine: true});
  }, failed);
};

return Controller;
});
