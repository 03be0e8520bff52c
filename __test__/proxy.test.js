'use strict';

// `proxy`: a CONNECT / forwarding proxy on loopback, written here, that records what went
// through it. Calls go through it when configured (explicit URL or `env`), NO_PROXY is
// honoured, the proxy's credentials reach it and never an error message.

const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');
const net = require('node:net');
const { createBreaker } = require('..');
const { startUpstream, uniqueName } = require('./helpers/upstream');
const { pkiDir, makeCa, makeLeaf } = require('./helpers/certs');

const SECRET = 'pr0xy-s3cret';
let dir;
let ca;
let leaf;
const closers = [];
const breakers = [];

beforeAll(() => {
  dir = pkiDir('proxy');
  ca = makeCa(dir, 'ca');
  leaf = makeLeaf(dir, ca, 'server', { san: 'IP:127.0.0.1', usage: 'serverAuth' });
});

afterEach(async () => {
  for (const b of breakers.splice(0)) b.shutdown();
  await Promise.all(closers.splice(0).map((c) => c()));
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function closer(server, sockets) {
  return () => new Promise((r) => {
    for (const s of sockets) s.destroy();
    server.close(r);
  });
}

// Tunnels CONNECT, forwards absolute-form requests; records each with its Proxy-Authorization.
async function startProxy() {
  const seen = [];
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    seen.push({ kind: 'forward', target: req.url, auth: req.headers['proxy-authorization'] });
    const u = new URL(req.url);
    const headers = { ...req.headers };
    delete headers['proxy-authorization'];
    const out = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method: req.method, headers }, (up) => {
      res.writeHead(up.statusCode, up.headers);
      up.pipe(res);
    });
    out.on('error', () => res.destroy());
    req.pipe(out);
  });
  server.on('connect', (req, client, head) => {
    seen.push({ kind: 'connect', target: req.url, auth: req.headers['proxy-authorization'] });
    const [host, port] = req.url.split(':');
    const up = net.connect(Number(port), host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      up.write(head);
      up.pipe(client);
      client.pipe(up);
    });
    for (const s of [up, client]) {
      sockets.add(s);
      s.on('error', () => {
        up.destroy();
        client.destroy();
      });
    }
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  closers.push(closer(server, sockets));
  return { seen, url: `http://127.0.0.1:${server.address().port}` };
}

async function startTlsUpstream() {
  const server = https.createServer({ key: fs.readFileSync(leaf.key), cert: fs.readFileSync(leaf.crt) }, (req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"tls":true}');
  });
  const sockets = new Set();
  server.on('connection', (s) => sockets.add(s));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  closers.push(closer(server, sockets));
  return `https://127.0.0.1:${server.address().port}`;
}

async function plainUpstream() {
  const up = await startUpstream();
  closers.push(() => up.stop());
  return up;
}

function breaker(opts) {
  const b = createBreaker({ name: uniqueName('proxy'), logger: false, maxAttempts: 1, lkgMaxEntries: 0, env: {}, ...opts });
  breakers.push(b);
  return b;
}

test('off by default: an inherited HTTPS_PROXY does not reroute calls', async () => {
  const proxy = await startProxy();
  const up = await plainUpstream();
  const b = breaker({ baseUrl: up.url, env: { HTTP_PROXY: proxy.url, HTTPS_PROXY: proxy.url } });
  await expect(b.fire('/a')).resolves.toEqual({ ok: true });
  expect(proxy.seen).toEqual([]);
});

test('an explicit proxy: https through CONNECT, http forwarded, credentials sent to the proxy', async () => {
  const proxy = await startProxy();
  const tlsUrl = await startTlsUpstream();
  const withAuth = proxy.url.replace('http://', `http://svc:${SECRET}@`);
  const b = breaker({ baseUrl: tlsUrl, caCert: ca.crt, proxy: withAuth });
  await expect(b.fire('/a')).resolves.toEqual({ tls: true });
  expect(proxy.seen[0]).toMatchObject({ kind: 'connect', target: tlsUrl.replace('https://', '') });
  expect(proxy.seen[0].auth).toBe(`Basic ${Buffer.from(`svc:${SECRET}`).toString('base64')}`);
  const up = await plainUpstream();
  await expect(breaker({ baseUrl: up.url, proxy: proxy.url }).fire('/p?q=1')).resolves.toEqual({ ok: true });
  expect(proxy.seen[1]).toMatchObject({ kind: 'forward', target: `${up.url}/p?q=1` });
  expect(up.hits).toHaveLength(1);
});

test('proxy: env reads HTTPS_PROXY / HTTP_PROXY and honours NO_PROXY', async () => {
  const proxy = await startProxy();
  const tlsUrl = await startTlsUpstream();
  const via = breaker({ baseUrl: tlsUrl, caCert: ca.crt, proxy: 'env', env: { HTTPS_PROXY: proxy.url } });
  await expect(via.fire('/a')).resolves.toEqual({ tls: true });
  expect(proxy.seen.map((s) => s.kind)).toEqual(['connect']);
  const up = await plainUpstream();
  const viaHttp = breaker({ baseUrl: up.url, env: { DNASTORE_PROXY: 'env', http_proxy: proxy.url } });
  await expect(viaHttp.fire('/b')).resolves.toEqual({ ok: true });
  expect(proxy.seen.map((s) => s.kind)).toEqual(['connect', 'forward']);
  // NO_PROXY names the upstream: straight there.
  const direct = breaker({ baseUrl: tlsUrl, caCert: ca.crt, proxy: 'env', env: { HTTPS_PROXY: proxy.url, NO_PROXY: 'localhost,127.0.0.1' } });
  await expect(direct.fire('/c')).resolves.toEqual({ tls: true });
  const directHttp = breaker({ baseUrl: up.url, proxy: 'env', env: { HTTP_PROXY: proxy.url, no_proxy: '127.0.0.0/8' } });
  await expect(directHttp.fire('/d')).resolves.toEqual({ ok: true });
  expect(proxy.seen).toHaveLength(2);
});

test.each([
  ['proxy', `socks5://svc:${SECRET}@127.0.0.1:1080`, 'proxy'],
  ['proxy', `svc:${SECRET}@127.0.0.1:1080`, 'proxy'],
  ['env', `ftp://svc:${SECRET}@127.0.0.1:1`, 'HTTPS_PROXY'],
])('a bad proxy (%s, case %#) is ECONFIG naming the setting, never the credentials', (where, value, names) => {
  const opts = where === 'proxy' ? { proxy: value } : { proxy: 'env', env: { HTTPS_PROXY: value } };
  let err;
  try {
    breaker(opts);
  } catch (e) {
    err = e;
  }
  expect(err).toMatchObject({ code: 'ECONFIG' });
  expect(err.message).toContain(names);
  expect(err.message).not.toContain(SECRET);
  expect(err.message).not.toContain('svc');
});
