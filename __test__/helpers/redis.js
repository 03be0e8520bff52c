'use strict';

// Real Redis for Jest tests: Debian's redis-server on a free loopback port, and "replicas"
// of a service as separate Node processes (fixtures/redis-replica.js) driven over IPC.
// Redis is never mocked: locally a missing redis-server skips with the install hint; under
// CI=true the tests run and fail, so they can never vanish silently from a CI run.

const { execFileSync, spawn, fork } = require('node:child_process');
const net = require('node:net');
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

async function startRedis() {
  if (!HAVE_REDIS) throw new Error(INSTALL_HINT);
  const port = await freePort();
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  await eventually(() => canConnect(port), 10000);
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      process.kill(proc.pid, 'SIGCONT'); // in case a test left it stopped
      process.kill(proc.pid, 'SIGKILL');
    }
    await exited;
  };
  const cli = (...args) => execFileSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' }).trim();
  return { port, proc, exited, url: `redis://127.0.0.1:${port}`, stop, cli };
}

// A new Node process holding one breaker with `opts` (empty memory, like a fresh replica).
async function replica(opts) {
  const child = fork(path.join(__dirname, '..', 'fixtures', 'redis-replica.js'), [JSON.stringify(opts)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const exited = new Promise((resolve) => child.once('exit', resolve));
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
  return {
    child,
    fire: (url, init) => call({ op: 'fire', url, init }),
    events: () => call({ op: 'events' }).then((m) => m.value),
    metrics: () => call({ op: 'metrics' }).then((m) => m.value),
    stop: () => {
      if (child.connected) child.disconnect();
      return exited;
    },
  };
}

module.exports = { HAVE_REDIS, INSTALL_HINT, describeRedis, startRedis, replica, canConnect };
