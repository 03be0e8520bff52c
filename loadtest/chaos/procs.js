'use strict';

// Every process the chaos run starts, by PID, so that all of them are stopped at the end:
// on success, on failure, on Ctrl-C / SIGTERM, and (SIGKILL, synchronously) when the
// harness itself exits some other way. Node children started with control.js's spawnNode
// also exit when the harness's stdin pipe to them closes.

const { spawn, execFile } = require('node:child_process');
const net = require('node:net');

const live = new Map(); // pid -> { name, child }

const alive = (child) => !!child && child.exitCode === null && child.signalCode === null;

/** Keeps `child` in the registry until it exits. */
function track(name, child) {
  if (!child.pid) return child;
  child.exited ??= new Promise((resolve) => {
    if (!alive(child)) resolve({ code: child.exitCode, signal: child.signalCode });
    else child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  live.set(child.pid, { name, child });
  child.once('exit', () => live.delete(child.pid));
  return child;
}

/** A child process with its output kept (the last 8 KB) for failure messages. */
function start(name, cmd, args, opts = {}) {
  const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
  child.output = '';
  const keep = (d) => {
    child.output = (child.output + d).slice(-8000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.once('error', (err) => {
    child.output += `\n${err.message}`;
  });
  return track(name, child);
}

/** `signal` to one child (by its PID); resolves when it has exited (SIGKILL after `graceMs`). */
async function stop(child, signal = 'SIGTERM', graceMs = 3000) {
  if (!alive(child)) return;
  const timer = setTimeout(() => alive(child) && child.kill('SIGKILL'), graceMs);
  child.kill(signal);
  await child.exited;
  clearTimeout(timer);
}

/** SIGKILL to whatever is still registered: the last resort, synchronous (process 'exit'). */
function killAll() {
  for (const [pid] of live) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

/** The names and PIDs still running (for the log). */
function running() {
  return [...live].map(([pid, { name }]) => `${name}:${pid}`);
}

/** Runs a short command (redis-cli, promtool) with a bound; resolves { code, stdout, stderr }. */
function run(cmd, args, { timeoutMs = 5000 } = {}) {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout: stdout || '', stderr: stderr || (err && !stdout ? err.message : '') });
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.setTimeout(1000, () => {
      s.destroy();
      resolve(false);
    });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until truthy or `timeoutMs` passes; then throws naming `what` and the last state. */
async function until(what, fn, { timeoutMs = 10000, intervalMs = 200 } = {}) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
    await sleep(intervalMs);
  }
}

module.exports = { track, start, stop, alive, killAll, running, run, canConnect, sleep, until };
