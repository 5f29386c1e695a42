// A controller started by rain.start() on an element added after the page
// loaded: it echoes its component and version over its component's channel.
define(function () {
  function Later() {}
  Later.prototype.init = function () {
    var root = this.context.getRoot();
    var context = this.context;
    context.messaging.getSocket("echo").emit("echo", context.component + "/" + context.version, function (error, result) {
      root.attr("data-result", JSON.stringify([error, result]));
    });
  };
  return Later;
});
