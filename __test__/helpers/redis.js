'use strict';

// Real Redis processes for the Jest suites (Debian's redis-server on free loopback ports),
// and breaker replicas as separate Node processes. Every process is stopped by its PID;
// every temporary directory is removed.

const { execFileSync, spawn, fork } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { eventually, freePort } = require('./upstream');

const INSTALL_HINT = 'redis-server is not on the PATH (install it: apt-get install redis-server)';

function onPath(cmd) {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const HAVE_REDIS = onPath('redis-server') && onPath('redis-cli');

// Redis is a real dependency of these tests, not mocked. Locally a missing redis-server
// skips them with the install hint; under CI=true (CI installs it) they run and fail in
// beforeAll, so the Redis tests can never vanish silently from a CI run.
function describeRedis(file) {
  if (!HAVE_REDIS) process.stderr.write(`${file}: ${process.env.CI === 'true' ? 'FAILING' : 'skipped'}: ${INSTALL_HINT}\n`);
  return HAVE_REDIS || process.env.CI === 'true' ? describe : describe.skip;
}

function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** A redis-server on a free port (or `port`), in its own temporary directory. */
async function startRedis(extra = [], port = undefined) {
  if (!HAVE_REDIS) throw new Error(INSTALL_HINT);
  port = port ?? (await freePort());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dnastore-redis-'));
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extra], {
    stdio: 'ignore',
  });
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  await eventually(() => canConnect(port), 10000);
  const alive = () => proc.exitCode === null && proc.signalCode === null;
  return {
    port,
    proc,
    exited,
    url: `redis://127.0.0.1:${port}`,
    alive,
    cli: (...args) => execFileSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' }).trim(),
    /** Kills it (by its PID) and removes its directory. */
    async stop() {
      if (alive()) {
        process.kill(proc.pid, 'SIGCONT'); // in case a test left it stopped
        process.kill(proc.pid, 'SIGKILL');
      }
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A Sentinel watching the master on `masterPort` under the name `mymaster` (quorum 2),
 * noticing a dead master after `downAfterMs`.
 */
async function startSentinel(masterPort, downAfterMs = 400) {
  if (!HAVE_REDIS) throw new Error(INSTALL_HINT);
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dnastore-sentinel-'));
  const conf = path.join(dir, 'sentinel.conf');
  fs.writeFileSync(
    conf,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor mymaster 127.0.0.1 ${masterPort} 2`,
      `sentinel down-after-milliseconds mymaster ${downAfterMs}`,
      'sentinel failover-timeout mymaster 2000',
      'sentinel parallel-syncs mymaster 1',
      '',
    ].join('\n'),
  );
  const proc = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  await eventually(() => canConnect(port), 10000);
  const alive = () => proc.exitCode === null && proc.signalCode === null;
  return {
    port,
    cli: (...args) => execFileSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' }).trim(),
    async stop() {
      if (alive()) process.kill(proc.pid, 'SIGKILL');
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A new Node process with its own breaker (and empty memory), driven over IPC
 * (fixtures/redis-replica.js). `replicas` collects it for the suite's afterAll.
 */
async function startReplica(opts, replicas) {
  // A fleet outbox's spill file goes in outboxDir: a temporary one unless the test names one
  // (removed when the replica exits), never the working directory.
  const tmpDir = opts.outboxRedisUrl && opts.outboxDir === undefined ? fs.mkdtempSync(path.join(os.tmpdir(), 'dnastore-replica-')) : null;
  if (tmpDir) opts = { ...opts, outboxDir: tmpDir };
  const child = fork(path.join(__dirname, '..', 'fixtures', 'redis-replica.js'), [JSON.stringify(opts)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const exited = new Promise((resolve) => child.once('exit', resolve)).then((code) => {
    if (tmpDir) fs.rmSync(tmpDir, { recursive: true, force: true });
    return code;
  });
  const pending = new Map();
  let seq = 0;
  await new Promise((resolve, reject) => {
    child.once('error', reject);
    child.on('message', (m) => {
      if (m.ready) resolve();
      else pending.get(m.id)?.(m);
    });
  });
  const call = (msg) =>
    new Promise((resolve) => {
      seq += 1;
      pending.set(seq, resolve);
      child.send({ id: seq, ...msg });
    });
  const r = {
    child,
    fire: (url, init) => call({ op: 'fire', url, init }),
    events: () => call({ op: 'events' }).then((m) => m.value),
    metrics: () => call({ op: 'metrics' }).then((m) => m.value),
    outbox: (fn) => call({ op: 'outbox', fn }).then((m) => m.value),
    stop: () => {
      if (child.connected) child.disconnect();
      return exited;
    },
  };
  replicas.push(r);
  return r;
}

module.exports = { HAVE_REDIS, INSTALL_HINT, describeRedis, startRedis, startSentinel, startReplica };
