'use strict';

// The upstream for every closed-circuit contender: Debian's nginx on loopback, serving one
// small static JSON file with keep-alive, from a temporary prefix, stopped by its PID.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const net = require('node:net');
const { spawn } = require('node:child_process');

const BODY = JSON.stringify({ id: 'sigil-1', owner: 'tenant-42', glyphs: ['a', 'b', 'c'], version: 7, ok: true });
const NGINX_CANDIDATES = ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/bin/nginx'];

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function config(prefix, port) {
  // One worker: on a 2-core machine it leaves a core to the client, and it serves far more
  // than any contender asks (wrk reaches ~60k req/s against it). Keep-alive without a
  // request cap, so no contender pays reconnects the others do not.
  return `worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
daemon off;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${prefix}/tmp/body;
  proxy_temp_path ${prefix}/tmp/proxy;
  fastcgi_temp_path ${prefix}/tmp/fastcgi;
  uwsgi_temp_path ${prefix}/tmp/uwsgi;
  scgi_temp_path ${prefix}/tmp/scgi;
  keepalive_timeout 75s;
  keepalive_requests 10000000;
  open_file_cache max=16;
  server {
    listen 127.0.0.1:${port};
    root ${prefix}/www;
    location = /data.json { default_type application/json; }
    # Writes (the outbox benchmark): any method, a small JSON answer, the body discarded.
    location = /write { default_type application/json; return 201 '{"ok":true}'; }
  }
}
`;
}

function waitForPort(port, deadlineMs) {
  const deadline = Date.now() + deadlineMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve();
      });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > deadline) reject(new Error(`nginx did not listen on ${port} within ${deadlineMs} ms`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

/**
 * Runs Debian's nginx with the configuration `config(prefix, port)` returns, from a fresh
 * temporary prefix (`www/` and `tmp/` in it), on `port` (or a free one); resolves once it
 * listens to { prefix, port, pid, exited, reload(), stop() }. The chaos harness (loadtest/chaos)
 * runs its load balancer through this too.
 */
async function runNginx({ config: configOf, port = undefined, name = 'nginx', files = {} }) {
  const bin = NGINX_CANDIDATES.find((p) => fs.existsSync(p));
  if (!bin) throw new Error('nginx not found: apt-get install nginx-light');
  const prefix = fs.mkdtempSync(path.join(os.tmpdir(), `dnastore-${name}-`));
  // The worker runs as an unprivileged user when started as root: it must read the files.
  fs.chmodSync(prefix, 0o755);
  fs.mkdirSync(path.join(prefix, 'www'), { mode: 0o755 });
  fs.mkdirSync(path.join(prefix, 'tmp'), { mode: 0o755 });
  for (const [file, text] of Object.entries(files)) fs.writeFileSync(path.join(prefix, 'www', file), text, { mode: 0o644 });
  port ??= await freePort();
  const conf = path.join(prefix, 'nginx.conf');
  fs.writeFileSync(conf, configOf(prefix, port));
  const child = spawn(bin, ['-p', prefix, '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const early = exited.then((code) => {
    throw new Error(`nginx exited (${code}) before listening: ${stderr.trim()}`);
  });
  await Promise.race([waitForPort(port, 5000), early]);
  early.catch(() => {});

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    // Graceful quit of the master we started (by PID); then TERM if it lingers.
    try {
      process.kill(child.pid, 'SIGQUIT');
    } catch {
      /* already gone */
    }
    const timer = setTimeout(() => {
      try {
        process.kill(child.pid, 'SIGTERM');
      } catch {
        /* already gone */
      }
    }, 3000);
    await exited;
    clearTimeout(timer);
    fs.rmSync(prefix, { recursive: true, force: true });
  };
  // A new configuration: written, then the master we started re-reads it (SIGHUP); old
  // workers finish the requests they hold.
  const reload = (text) => {
    fs.writeFileSync(conf, text);
    process.kill(child.pid, 'SIGHUP');
  };
  return { prefix, port, pid: child.pid, exited, reload, stop };
}

/** Starts nginx (on `port`, or a free one); resolves to { url, pid, stop() }. */
async function startNginx(port = undefined) {
  const n = await runNginx({ config, port, name: 'bench-nginx', files: { 'data.json': BODY } });
  return { url: `http://127.0.0.1:${n.port}/data.json`, origin: `http://127.0.0.1:${n.port}`, path: '/data.json', pid: n.pid, bytes: BODY.length, stop: n.stop };
}

module.exports = { startNginx, runNginx, freePort };
