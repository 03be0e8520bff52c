'use strict';

// The load balancer in front of the fleet: a real nginx (bench/nginx.js runs it), round
// robin over the replicas with passive health checks: a replica whose connection fails
// (`max_fails` 1) is skipped for `fail_timeout` 5 s, and the request goes to the next one.
// nginx passes a request on only when it can tell it was not sent (a refused connect), or
// for any failure when the method is idempotent (GET); a POST in flight on a replica that
// dies gets the 502 (as a client of a real load balancer would). A 503 from a replica is an
// answer (a write the API could not store says so), never a reason to try another one.
//
// Every request is logged, one JSON line: when it ended, which replica answered, the status,
// the method and X-Fallback-Source: the timeline's requests, failures and fallbacks per
// replica per second come from this log, as a client sees them.

const fs = require('node:fs');
const path = require('node:path');
const { runNginx } = require('../../bench/nginx');

const FAIL_TIMEOUT_S = 5;

function config({ prefix, port, replicaPorts, down }) {
  const servers = replicaPorts.map((p, i) => `    server 127.0.0.1:${p} max_fails=1 fail_timeout=${FAIL_TIMEOUT_S}s${down.has(i) ? ' down' : ''};`).join('\n');
  return `worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
daemon off;
events { worker_connections 4096; }
http {
  log_format chaos escape=json '{"t":$msec,"u":"$upstream_addr","s":$status,"us":"$upstream_status","m":"$request_method","fb":"$upstream_http_x_fallback_source","rt":$request_time}';
  access_log ${prefix}/access.log chaos;
  client_body_temp_path ${prefix}/tmp/body;
  proxy_temp_path ${prefix}/tmp/proxy;
  fastcgi_temp_path ${prefix}/tmp/fastcgi;
  uwsgi_temp_path ${prefix}/tmp/uwsgi;
  scgi_temp_path ${prefix}/tmp/scgi;
  keepalive_timeout 75s;
  keepalive_requests 1000000;
  upstream sigil {
${servers}
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://sigil;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_connect_timeout 1s;
      proxy_read_timeout 15s;
      proxy_next_upstream error timeout;
      proxy_next_upstream_tries 3;
    }
  }
}
`;
}

async function startLb({ replicaPorts, log }) {
  const down = new Set();
  let prefix;
  const n = await runNginx({
    name: 'chaos-nginx',
    config: (p, port) => {
      prefix = p;
      return config({ prefix: p, port, replicaPorts, down });
    },
  });
  log(`load balancer: nginx pid ${n.pid} on 127.0.0.1:${n.port}, round robin over ${replicaPorts.length} replicas, max_fails 1, fail_timeout ${FAIL_TIMEOUT_S}s`);
  return {
    url: `http://127.0.0.1:${n.port}`,
    pid: n.pid,
    accessLog: path.join(prefix, 'access.log'),
    /** Replica `i` in (true) or out (false) of the upstream group; nginx reloads. */
    setServing(i, serving) {
      if (serving) down.delete(i);
      else down.add(i);
      // nginx refuses a group whose servers are all down: keep the last one in; its
      // connections fail over to nothing either way.
      if (down.size === replicaPorts.length) down.delete(i);
      n.reload(config({ prefix, port: n.port, replicaPorts, down }));
    },
    /** The access log's records (read once, at the end). */
    records() {
      try {
        return parseAccessLog(fs.readFileSync(path.join(prefix, 'access.log'), 'utf8'));
      } catch {
        return [];
      }
    },
    errorLog() {
      try {
        return fs.readFileSync(path.join(prefix, 'error.log'), 'utf8');
      } catch {
        return '';
      }
    },
    /** Copies the access and error logs into `dir` (before stop() removes them). */
    copyLogs(dir) {
      for (const f of ['access.log', 'error.log']) {
        try {
          fs.copyFileSync(path.join(prefix, f), path.join(dir, `nginx-${f}`));
        } catch {
          // Not written (yet).
        }
      }
    },
    stop: n.stop,
  };
}

/** One record per request: { t (epoch ms), port (the replica that answered last, or null), status, method, fallback }. */
function parseAccessLog(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    let r;
    try {
      r = JSON.parse(line);
    } catch {
      continue;
    }
    // "127.0.0.1:1, 127.0.0.1:2": nginx tried more than one; the last one answered.
    const last = String(r.u || '').split(',').pop().trim();
    const m = /:(\d+)$/.exec(last);
    out.push({ t: Math.round(Number(r.t) * 1000), port: m ? Number(m[1]) : null, status: Number(r.s), method: r.m, fallback: r.fb || '' });
  }
  return out;
}

module.exports = { startLb, parseAccessLog };
