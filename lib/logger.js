'use strict';

// The default transition logger: one JSON line per transition on stderr, pino-shaped
// ({ level, time, msg, ...fields }) so log pipelines can ingest it unchanged.
function jsonLine(level) {
  return (fields, msg) => {
    process.stderr.write(`${JSON.stringify({ level, time: Date.now(), msg, ...fields })}\n`);
  };
}

const defaultLogger = Object.freeze({ warn: jsonLine('warn'), info: jsonLine('info'), error: jsonLine('error') });
const silentLogger = Object.freeze({ warn() {}, info() {}, error() {} });

// `logger` may be pino, `req.log`, console-like, or false to silence.
function resolveLogger(logger) {
  if (logger === undefined || logger === null) return defaultLogger;
  if (logger === false) return silentLogger;
  for (const level of ['warn', 'info', 'error']) {
    let fn;
    try {
      fn = logger[level];
    } catch (cause) {
      // The caller's getter or Proxy trap: ECONFIG with what it threw, never that value.
      const err = new TypeError(`invalid option \`logger\`: reading its ${level} threw`);
      err.code = 'ECONFIG';
      err.cause = cause;
      throw err;
    }
    if (typeof fn !== 'function') {
      const err = new TypeError(`invalid option \`logger\`: must have warn, info and error functions (pino, req.log), or be false; ${level} is missing`);
      err.code = 'ECONFIG';
      throw err;
    }
  }
  return logger;
}

// One log line per transition, for fetch breakers and wrapped-function breakers alike.
const TRANSITION_LOG = { open: ['warn', 'OPEN'], halfOpen: ['info', 'HALF-OPEN'], close: ['info', 'CLOSED'] };

// Logs `name`'s transition if it is one; answers whether it was.
function logTransition(logger, breaker, name, payload) {
  const log = TRANSITION_LOG[name];
  if (!log) return false;
  const [level, label] = log;
  logger[level]({ breaker, ...payload }, `DNAStore circuit breaker ${label} (${transitionWhy(payload)})`);
  return true;
}

// The reason, with the rate behind a slow-call trip (the failure rate reads from the fields).
function transitionWhy(p) {
  if (p.reason !== 'slow calls' || typeof p.slowCallRate !== 'number') return p.reason;
  return `slow calls: ${Math.round(p.slowCallRate * 10) / 10} % of ${p.calls} calls slower than slowCallDurationMs`;
}

module.exports = { resolveLogger, defaultLogger, logTransition };
