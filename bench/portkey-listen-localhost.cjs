'use strict';
// Preloaded with `node --require` before Portkey's build/start-server.js, which takes --port=N
// only and listens on every interface: every TCP listen of the process goes to 127.0.0.1.
// Unix sockets, file descriptors and handles are left alone.
const net = require('net');

const HOST = '127.0.0.1';
const listen = net.Server.prototype.listen;

function loopbackOptions(args) {
  const [first] = args;
  if (first !== null && typeof first === 'object') {
    const other = ['path', 'fd', 'handle', '_handle'].some((key) => first[key] !== undefined);
    return other ? null : { ...first, host: HOST }; // listen(options)
  }
  if (typeof first === 'string' && !/^\d+$/.test(first)) return null; // listen(path)
  const options = { port: first, host: HOST }; // listen(port, host?, backlog?): host replaced
  const backlog = args.slice(1).find((arg) => typeof arg === 'number');
  if (backlog !== undefined) options.backlog = backlog;
  return options;
}

net.Server.prototype.listen = function listenOnLoopback(...args) {
  const callback = typeof args[args.length - 1] === 'function' ? args.pop() : undefined;
  const options = loopbackOptions(args);
  const rest = callback ? [callback] : [];
  return options ? listen.call(this, options, ...rest) : listen.call(this, ...args, ...rest);
};
