define(function() {
function Controller() {}
Controller.prototype.init = function () {
this._socket = this.context.messaging.getSocket('chat');
this.configureSocket();
this.start();
};
Controller.prototype.start = function () {
var root = this.context.getRoot(),
btnTalk = root.find("input[data-itemid='btnCustomHandler']");
var self = this;
btnTalk.click(function () {
self._socket.emit('new-message', {text: 'Welcome!'});
});
};
/**
* Method used to communicate with the chat server side handler.
*/
Controller.prototype.configureSocket = function () {
this._socket.on('hello', function (data) {
alert(data.message);
});
};
return Controller;
});
