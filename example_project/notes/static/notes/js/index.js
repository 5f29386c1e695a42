/*
 * The notes component's controller, started by rain.js from the component's
 * data-rain-controller. The notes live in the Django session: the page came
 * rendered with them, and the socket saves and removes them (use_session on
 * the server). When the session ends, here or in another tab, rain.js
 * publishes session_expired and the page goes to the login page.
 */
define(function () {
  function Controller() {}

  Controller.prototype.init = function () {
    var root = this.context.getRoot();
    this.root = root.jquery ? root[0] : root;
    this._socket = this.context.messaging.getSocket("notes");
    this.configureSocket();
    this.start();
  };

  Controller.prototype.find = function (itemid) {
    return this.root.querySelector("[data-itemid='" + itemid + "']");
  };

  Controller.prototype.configureSocket = function () {
    var self = this, socket = this._socket, messaging = this.context.messaging;
    var loginUrl = this.root.dataset.loginUrl;
    var toLogin = function () { window.location.assign(loginUrl); };

    // RAIN's way: the runtime publishes session_expired once, when the
    // session is gone (a logout in another tab, or an idle cookie's end).
    messaging.subscribe("session_expired", toLogin);

    socket.on("connect", function () {
      messaging.publish("connection", "online");
      // Another tab may have changed the notes: show the session's.
      socket.emitWithAck("list").then(function (result) { self.render(result.notes); }, function () {});
    });
    socket.on("disconnect", function (reason) {
      messaging.publish("connection", reason === "io server disconnect" ? "paused" : "offline");
    });
    socket.on("connect_error", function (error) {
      // The browser's session is a live one without a user (a logout, then
      // a page of the chat, in another tab): the channel wants a login.
      if (error.data && error.data.code === "login_required") return toLogin();
      messaging.publish("connection", "refused", "Not connected: " + error.message);
    });
  };

  Controller.prototype.start = function () {
    var self = this, socket = this._socket, messaging = this.context.messaging;

    this.find("form").addEventListener("submit", function (event) {
      event.preventDefault();
      var input = event.target.elements.note, note = input.value.trim();
      if (!note) return;
      socket.emitWithAck("save", note).then(function (result) {
        input.value = "";
        self.append(note);
        self.count(result.count);
        messaging.publish("toast", "Note saved in your session", "success");
      }, function (error) {
        messaging.publish("toast", "Not saved: " + error.message, "error");
      });
    });

    this.find("list").addEventListener("click", function (event) {
      var button = event.target.closest("button[data-action='remove']");
      if (!button) return;
      var item = button.closest("li");
      var index = Array.prototype.indexOf.call(self.find("list").children, item);
      button.disabled = true;
      socket.emitWithAck("remove", index).then(function (result) {
        item.remove();
        self.count(result.count);
      }, function (error) {
        button.disabled = false;
        messaging.publish("toast", "Not removed: " + error.message, "error");
      });
    });
  };

  Controller.prototype.append = function (note) {
    var item = document.createElement("li"), text = document.createElement("p");
    var button = document.createElement("button"), hint = document.createElement("span");
    item.className = "note";
    text.className = "note-text";
    text.textContent = note;
    button.type = "button";
    button.className = "button ghost small";
    button.dataset.action = "remove";
    hint.className = "visually-hidden";
    hint.textContent = " this note";
    button.append("Remove", hint);
    item.append(text, button);
    this.find("list").appendChild(item);
  };

  Controller.prototype.render = function (notes) {
    this.find("list").replaceChildren();
    notes.forEach(this.append, this);
    this.count(notes.length);
  };

  Controller.prototype.count = function (count) {
    this.find("count").textContent = count + (count === 1 ? " note" : " notes");
    this.find("empty").hidden = count > 0;
  };

  return Controller;
});
