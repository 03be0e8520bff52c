'use strict';

// A real HTTP upstream on 127.0.0.1 for Jest tests: each test sets how it answers and
// reads what reached it. Stopping closes the listener and destroys open sockets, so a
// stopped upstream refuses connections like a dead DNAStore.

const http = require('node:http');
const net = require('node:net');

async function startUpstream(handler = (req, res) => json(res, 200, { ok: true })) {
  const up = { hits: [], handler, sockets: new Set(), server: null, port: 0 };

  const listen = (port) =>
    new Promise((resolve, reject) => {
      const server = http.createServer((req, res) => {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => {
          const hit = { method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString() };
          up.hits.push(hit);
          up.handler(req, res, hit);
        });
      });
      server.keepAliveTimeout = 5000;
      server.on('connection', (s) => {
        up.sockets.add(s);
        s.on('close', () => up.sockets.delete(s));
      });
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        up.server = server;
        up.port = server.address().port;
        resolve();
      });
    });

  await listen(0);
  up.url = `http://127.0.0.1:${up.port}`;
  up.set = (h) => {
    up.handler = h;
  };
  up.stop = () =>
    new Promise((resolve) => {
      for (const s of up.sockets) s.destroy();
      up.server.close(() => resolve());
    });
  up.restart = () => listen(up.port);
  return up;
}

function json(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

// Never answers (the socket stays open until the client gives up or the upstream stops).
function hang() {}

// Polls `fn` until it returns truthy or `ms` elapse (integration tests only; bounded).
async function eventually(fn, ms = 5000, step = 20) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, step));
  }
}

// A port nothing listens on right now (for processes that need one before they start).
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

let seq = 0;
// Unique breaker names: breakers with the same name share state process-wide.
function uniqueName(prefix = 't') {
  seq += 1;
  return `${prefix}-${process.pid}-${seq}`;
}

module.exports = { startUpstream, json, hang, eventually, uniqueName, freePort };
