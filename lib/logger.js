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
const TRANSITION_LOG = { open: ['warn', 'OPEN'], halfOpen: ['info', 'HALF-OPEN'], close: ['info', 'CLOSED'], forcedOpen: ['warn', 'FORCED OPEN'], disabled: ['warn', 'DISABLED'] };

// Logs `name`'s transition if it is one; answers whether it was.
function logTransition(logger, breaker, name, payload) {
  const log = TRANSITION_LOG[name];
  if (!log) return false;
  const [level, label] = log;
  logger[level]({ breaker, ...payload }, `DNAStore circuit breaker ${label} (${transitionWhy(payload)})`);
  return true;
}

// A route's own circuit changed state (circuitPerRoute): the same levels, with the route.
function logRouteTransition(logger, breaker, payload) {
  const [level, label] = TRANSITION_LOG[payload.to === 'closed' ? 'close' : payload.to] ?? ['info', payload.to];
  logger[level]({ breaker, ...payload }, `DNAStore circuit breaker route ${payload.route} ${label} (${transitionWhy(payload)})`);
}

// The reason, with the rate behind a slow-call trip (the failure rate reads from the fields),
// or the fleet's decision behind a transition the fleet circuit made.
function transitionWhy(p) {
  if (p.decision === 'fleet') return fleetWhy(p);
  if (p.reason !== 'slow calls' || typeof p.slowCallRate !== 'number') return p.reason;
  return `slow calls: ${Math.round(p.slowCallRate * 10) / 10} % of ${p.calls} calls slower than slowCallDurationMs`;
}

function fleetWhy(p) {
  if (p.to === 'halfOpen') return `fleet decision: the fleet's round of trials, leased fleet-wide (opened by ${p.trippedBy})`;
  if (p.fleetReason === 'quorum') return `fleet decision: ${p.votes} replicas tripped, first ${p.trippedBy}`;
  return `fleet decision: ${p.fleetReason} on ${p.trippedBy}`;
}

// The fleet circuit's connection and refusals, once each (the core dedupes); its state
// changes are logged as the transitions they cause. The URL is never logged.
function logFleet(logger, breaker, p) {
  if (p.kind === 'connected') logger.info({ breaker, replica: p.replica }, `DNAStore fleet circuit connected: replica ${p.replica} follows the fleet's circuit`);
  else if (p.kind === 'disconnected') logger.warn({ breaker, reason: p.reason }, `DNAStore fleet circuit disconnected (${p.reason}): this replica runs on its local circuit alone until Redis is back (dnastore_fleet_connected 0)`);
  else if (p.kind === 'rejected') logger.warn({ breaker, reason: p.reason }, `DNAStore fleet circuit ignored a fleet record (${p.reason}): forged, garbled or stale; every one is counted in dnastore_fleet_rejected_total`);
}

module.exports = { resolveLogger, defaultLogger, logTransition, logRouteTransition, logFleet };
