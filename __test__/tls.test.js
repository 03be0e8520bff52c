'use strict';

// The upstream over TLS with a private CA, mTLS, rotation of the client certificate on disk
// (atomic rename) while calls run, a broken replacement, insecure mode, tlsServerName.
// Real HTTPS servers on 127.0.0.1 with certificates made by the openssl CLI.

const fs = require('node:fs');
const https = require('node:https');
const path = require('node:path');
const { createBreaker, metrics } = require('..');
const { eventually, uniqueName } = require('./helpers/upstream');
const { pkiDir, makeCa, makeLeaf, replaceAtomically } = require('./helpers/certs');

let dir;
let serverCa;
let server; // signed by serverCa for IP:127.0.0.1
let namedOnly; // signed by serverCa for DNS:dnastore.test only
let clientCaA;
let clientCaB;
let clientA;
let clientB;
const servers = [];
const breakers = [];

beforeAll(() => {
  dir = pkiDir('tls');
  serverCa = makeCa(dir, 'server-ca');
  server = makeLeaf(dir, serverCa, 'server', { san: 'IP:127.0.0.1', usage: 'serverAuth' });
  namedOnly = makeLeaf(dir, serverCa, 'named', { san: 'DNS:dnastore.test', usage: 'serverAuth' });
  clientCaA = makeCa(dir, 'client-ca-a');
  clientCaB = makeCa(dir, 'client-ca-b');
  clientA = makeLeaf(dir, clientCaA, 'client-a', { usage: 'clientAuth' });
  clientB = makeLeaf(dir, clientCaB, 'client-b', { usage: 'clientAuth' });
});

afterEach(async () => {
  for (const b of breakers.splice(0)) b.shutdown();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => {
    s.closeAllConnections();
    s.close(r);
  })));
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const read = (p) => fs.readFileSync(p);

// An HTTPS upstream; with `clientCa`, it requires a client certificate signed by it.
// Records the client certificate's CN of every request; `/slow` answers after `slowMs`.
async function startHttps({ leaf = server, clientCa, slowMs = 0 } = {}) {
  const opts = { key: read(leaf.key), cert: read(leaf.crt) };
  if (clientCa) Object.assign(opts, { requestCert: true, rejectUnauthorized: true, ca: read(clientCa.crt) });
  const hits = [];
  const s = https.createServer(opts, (req, res) => {
    const peer = req.socket.getPeerCertificate?.();
    hits.push({ url: req.url, cn: peer?.subject?.CN, host: req.headers.host });
    const answer = () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: true, cn: peer?.subject?.CN ?? null }));
    };
    if (req.url === '/slow') setTimeout(answer, slowMs);
    else answer();
  });
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  servers.push(s);
  return { server: s, hits, port: s.address().port, url: `https://127.0.0.1:${s.address().port}` };
}

function capture() {
  const lines = [];
  const log = (level) => (fields, msg) => lines.push({ level, msg, ...fields });
  return { lines, logger: { warn: log('warn'), info: log('info'), error: log('error') } };
}

function breaker(opts) {
  // One attempt, never opened by the failures these tests provoke on purpose.
  const b = createBreaker({ name: uniqueName('tls'), logger: false, maxAttempts: 1, maxFailures: 0, volumeThreshold: 1000, lkgMaxEntries: 0, env: {}, ...opts });
  breakers.push(b);
  return b;
}

describe('a private CA', () => {
  test('caCert (a file) is accepted; platform roots alone are refused with ETLS', async () => {
    const up = await startHttps();
    await expect(breaker({ baseUrl: up.url, caCert: serverCa.crt }).fire('/a')).resolves.toEqual({ ok: true, cn: null });
    await expect(breaker({ baseUrl: up.url, caCert: serverCa.crt, caMode: 'only' }).fire('/a')).resolves.toMatchObject({ ok: true });
    const plain = await breaker({ baseUrl: up.url }).fire('/a');
    expect(plain).toMatchObject({ fallback: true, code: 'ETLS' });
    // Another CA only: refused the same way.
    const wrong = await breaker({ baseUrl: up.url, caCert: clientCaA.crt, caMode: 'only' }).fire('/a');
    expect(wrong).toMatchObject({ fallback: true, code: 'ETLS' });
    expect(up.hits.length).toBe(2);
  });

  test('caCert as PEM text, from the environment', async () => {
    const up = await startHttps();
    const b = breaker({ env: { DNASTORE_URL: up.url, DNASTORE_CA_CERT: read(serverCa.crt).toString() } });
    await expect(b.fire('/a')).resolves.toMatchObject({ ok: true });
  });

  test('tlsServerName verifies a certificate issued to a name while connecting by IP', async () => {
    const up = await startHttps({ leaf: namedOnly });
    const without = await breaker({ baseUrl: up.url, caCert: serverCa.crt }).fire('/a');
    expect(without).toMatchObject({ fallback: true, code: 'ETLS' });
    const b = breaker({ baseUrl: up.url, caCert: serverCa.crt, tlsServerName: 'dnastore.test' });
    await expect(b.fire('/a')).resolves.toMatchObject({ ok: true });
    expect(up.hits.at(-1).host).toBe(`dnastore.test:${up.port}`);
  });

  test('DNASTORE_TLS_INSECURE=true skips verification, warns at startup and sets the gauge', async () => {
    const up = await startHttps();
    const { lines, logger } = capture();
    const b = breaker({ baseUrl: up.url, logger, env: { DNASTORE_TLS_INSECURE: 'true' } });
    await expect(b.fire('/a')).resolves.toMatchObject({ ok: true });
    expect(lines.some((l) => l.level === 'warn' && /NOT verified/.test(l.msg))).toBe(true);
    expect(metrics()).toContain(`dnastore_tls_insecure{name="${b.name}"} 1`);
    const safe = breaker({ baseUrl: up.url, caCert: serverCa.crt });
    expect(metrics()).toContain(`dnastore_tls_insecure{name="${safe.name}"} 0`);
    expect(() => createBreaker({ name: uniqueName('tls'), logger: false, tlsInsecure: true })).toThrow(/unknown option `tlsInsecure`/);
  });
});

describe('mTLS', () => {
  test('a call without a client certificate fails; with one it works', async () => {
    const up = await startHttps({ clientCa: clientCaA });
    const without = await breaker({ baseUrl: up.url, caCert: serverCa.crt }).fire('/a');
    expect(without.fallback).toBe(true);
    // TLS 1.3: the client's side of the handshake ends before the server checks its (absent)
    // certificate, so the server's alert races the reset of its close (docs/operations.md, mTLS and rotation).
    expect(['ETLS', 'ECONNRESET']).toContain(without.code);
    const b = breaker({ baseUrl: up.url, caCert: serverCa.crt, clientCert: clientA.crt, clientKey: clientA.key });
    await expect(b.fire('/a')).resolves.toEqual({ ok: true, cn: 'client-a' });
  });

  test('bad material is ECONFIG naming the option, never the key', async () => {
    const key = read(clientA.key).toString();
    const keyBody = key.split('\n')[1];
    let err;
    try {
      breaker({ clientCert: clientA.crt, clientKey: clientB.key });
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'ECONFIG' });
    expect(err.message).toMatch(/clientKey/);
    expect(err.message).toMatch(/does not match/);
    expect(() => breaker({ clientCert: clientA.crt, clientKey: key.replace(keyBody, keyBody.slice(0, 20)) })).toThrow(/clientKey/);
    try {
      breaker({ clientCert: clientA.crt, clientKey: key.replace(keyBody, keyBody.slice(0, 20)) });
    } catch (e) {
      expect(e.message).not.toContain(keyBody.slice(0, 20));
    }
    expect(() => breaker({ clientCert: clientA.crt })).toThrow(/needs both clientCert and clientKey/);
  });

  // Issue 25: `openssl x509 -req` without -extfile makes a v1 certificate; with its own key
  // createBreaker said "does not match" (rustls' check parses the certificate with webpki,
  // which refuses v1). The client presents it without parsing it; OpenSSL verifies it.
  test('an X.509 v1 client certificate works end to end; a key that is not its own is still refused', async () => {
    const v1 = makeLeaf(dir, clientCaA, 'client-v1', { v1: true });
    const text = require('node:child_process').execFileSync('openssl', ['x509', '-noout', '-text', '-in', v1.crt], { encoding: 'utf8' });
    expect(text).toMatch(/Version: 1 \(0x0\)/);
    const up = await startHttps({ clientCa: clientCaA });
    // Node's own client with the same pair: the reference.
    const viaNode = await new Promise((resolve, reject) => {
      https
        .get(`${up.url}/node`, { ca: read(serverCa.crt), cert: read(v1.crt), key: read(v1.key) }, (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => resolve(JSON.parse(body)));
        })
        .on('error', reject);
    });
    expect(viaNode).toEqual({ ok: true, cn: 'client-v1' });
    const b = breaker({ baseUrl: up.url, caCert: serverCa.crt, clientCert: v1.crt, clientKey: v1.key });
    await expect(b.fire('/a')).resolves.toEqual({ ok: true, cn: 'client-v1' });
    expect(up.hits.map((h) => h.cn)).toEqual(['client-v1', 'client-v1']);
    for (const [cert, key] of [[v1.crt, clientA.key], [clientA.crt, v1.key]]) {
      let err;
      try {
        breaker({ clientCert: cert, clientKey: key });
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({ code: 'ECONFIG' });
      expect(err.message).toMatch(/clientKey.*does not match the certificate in/);
    }
  });

  test('a world-readable key file is warned about', () => {
    const loose = path.join(dir, 'loose.key');
    fs.copyFileSync(clientA.key, loose);
    fs.chmodSync(loose, 0o644);
    const { lines, logger } = capture();
    breaker({ clientCert: clientA.crt, clientKey: loose, logger });
    expect(lines.filter((l) => l.level === 'warn').map((l) => l.msg).join('\n')).toMatch(/loose\.key is readable by every user/);
  });
});

describe('rotation', () => {
  test('new files (atomic rename) are used within tlsReloadMs; calls in flight finish; a broken file keeps the old material', async () => {
    const live = { crt: path.join(dir, 'live.crt'), key: path.join(dir, 'live.key') };
    fs.copyFileSync(clientA.crt, live.crt);
    fs.copyFileSync(clientA.key, live.key);
    fs.chmodSync(live.key, 0o600);
    const up = await startHttps({ clientCa: clientCaA, slowMs: 800 });
    const { lines, logger } = capture();
    const b = breaker({ baseUrl: up.url, caCert: serverCa.crt, clientCert: live.crt, clientKey: live.key, tlsReloadMs: 50, timeout: 5000, logger });
    const reloads = [];
    b.on('tls', (e) => reloads.push(e));
    await expect(b.fire('/a')).resolves.toEqual({ ok: true, cn: 'client-a' });

    // A call in flight on the old material when everything rotates.
    const inflight = b.fire('/slow');
    await eventually(() => up.hits.some((h) => h.url === '/slow'));
    // The upstream now trusts only the new client CA (new connections), and the files
    // are replaced by the new pair: key first, then certificate, each atomically.
    up.server.setSecureContext({ key: read(server.key), cert: read(server.crt), ca: read(clientCaB.crt), requestCert: true, rejectUnauthorized: true });
    replaceAtomically(live.key, read(clientB.key));
    replaceAtomically(live.crt, read(clientB.crt));
    await eventually(() => reloads.some((e) => e.up === true));
    await expect(inflight).resolves.toEqual({ ok: true, cn: 'client-a' });
    await expect(b.fire('/b')).resolves.toEqual({ ok: true, cn: 'client-b' });
    expect(lines.some((l) => l.level === 'info' && /TLS material reloaded/.test(l.msg))).toBe(true);
    expect(metrics()).toContain(`dnastore_tls_reloads_total{name="${b.name}",result="ok"}`);

    // A broken replacement: logged and counted, the current material stays in use.
    const failuresBefore = reloads.filter((e) => e.up === false).length;
    const garbage = '-----BEGIN CERTIFICATE-----\nTHIS-IS-NOT-A-CERT\n-----END CERTIFICATE-----\n';
    replaceAtomically(live.crt, garbage);
    await eventually(() => reloads.filter((e) => e.up === false).length > failuresBefore);
    const failure = reloads.filter((e) => e.up === false).at(-1);
    expect(failure.reason).toMatch(/live\.crt/);
    expect(metrics()).toMatch(new RegExp(`dnastore_tls_reloads_total\\{name="${b.name}",result="error"\\} [1-9]`));
    await expect(b.fire('/c')).resolves.toEqual({ ok: true, cn: 'client-b' });
    const logged = JSON.stringify(lines);
    expect(logged).toMatch(/TLS reload failed/);
    expect(logged).not.toContain('THIS-IS-NOT-A-CERT');
    expect(logged).not.toContain(read(clientB.key).toString().split('\n')[1]);
  });
});
