'use strict';

// Adapts the core's metrics to a prom-client Registry. The Rust core owns every value;
// this file only re-reads its text exposition (format 0.0.4) at collection time and hands
// each family to prom-client in its MetricObject shape, so `await register.metrics()`
// carries them with one HELP/TYPE each and, after a breaker's last shutdown(), without its
// series.

const native = require('./native');

// prom-client asks for metric objects when they are registered, before any breaker may
// exist, and the core renders no family until a breaker does: so the core also lists its
// families (name, type, help) up front.
const FAMILIES = native.metricFamilies();

// Marks our objects, so a second registerWith (even from another copy of this module)
// recognises them instead of colliding.
const OWNED = Symbol.for('dnastore-breaker.prom-client.family');

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME_RE = /^[a-zA-Z_][a-zA-Z0-9_]*/;

function unescapeText(s, quoted) {
  return s.replace(quoted ? /\\(["\\n])/g : /\\([\\n])/g, (_, c) => (c === 'n' ? '\n' : c));
}

function parseValue(s) {
  const lower = s.toLowerCase();
  if (lower === '+inf' || lower === 'inf') return Infinity;
  if (lower === '-inf') return -Infinity;
  if (lower === 'nan') return NaN;
  const v = Number(s);
  if (s === '' || Number.isNaN(v)) throw new Error(`dnastore-breaker: unparseable sample value ${JSON.stringify(s)}`);
  return v;
}

// `{a="x",b="y\"z"}` starting at line[i] === '{' -> [labels, index after '}']
function parseLabels(line, i) {
  const labels = {};
  i += 1;
  for (;;) {
    while (line[i] === ' ' || line[i] === ',') i += 1;
    if (line[i] === '}') return [labels, i + 1];
    const m = LABEL_NAME_RE.exec(line.slice(i));
    if (!m || line[i + m[0].length] !== '=' || line[i + m[0].length + 1] !== '"') {
      throw new Error(`dnastore-breaker: malformed labels in ${JSON.stringify(line)}`);
    }
    let j = i + m[0].length + 2;
    let raw = '';
    while (j < line.length && line[j] !== '"') {
      if (line[j] === '\\') {
        raw += line.slice(j, j + 2);
        j += 2;
      } else {
        raw += line[j];
        j += 1;
      }
    }
    if (j >= line.length) throw new Error(`dnastore-breaker: unterminated label value in ${JSON.stringify(line)}`);
    labels[m[0]] = unescapeText(raw, true);
    i = j + 1;
  }
}

function parseSample(line) {
  const m = NAME_RE.exec(line);
  if (!m) throw new Error(`dnastore-breaker: malformed sample ${JSON.stringify(line)}`);
  let i = m[0].length;
  let labels = {};
  if (line[i] === '{') [labels, i] = parseLabels(line, i);
  // The value, then an optional timestamp the core never writes (and prom-client could not carry).
  const value = parseValue(line.slice(i).trim().split(/\s+/)[0]);
  return { name: m[0], labels, value };
}

/**
 * Parses Prometheus text exposition (0.0.4) into families by name:
 * Map<name, { name, help, type, samples: [{ name, labels, value }] }>.
 */
function parseExposition(text) {
  const families = new Map();
  const family = (name) => {
    let f = families.get(name);
    if (!f) {
      f = { name, help: undefined, type: 'untyped', samples: [] };
      families.set(name, f);
    }
    return f;
  };
  let current;
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const m = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(line);
      if (!m) continue; // a plain comment
      current = family(m[2]);
      if (m[1] === 'HELP') current.help = unescapeText(m[3] ?? '', false);
      else current.type = (m[3] ?? 'untyped').trim();
      continue;
    }
    const s = parseSample(line);
    // _bucket/_sum/_count samples follow their histogram's TYPE line.
    const own = current && (s.name === current.name || (s.name.startsWith(`${current.name}_`) && current.type !== 'counter' && current.type !== 'gauge'));
    (own ? current : family(s.name)).samples.push(s);
  }
  return families;
}

// One render per collection: prom-client calls every metric's get() synchronously within
// one register.metrics(), so all our families come from the same consistent snapshot.
let snapshot;
function currentFamilies() {
  if (snapshot === undefined) {
    snapshot = parseExposition(native.metrics());
    queueMicrotask(() => {
      snapshot = undefined;
    });
  }
  return snapshot;
}

// How prom-client's AggregatorRegistry (cluster mode) merges one family across worker
// processes, each with its own breakers. Counters, histograms and cache sizes add up; a
// state or a failure rate does not: summing two open circuits (1 + 1) would read as
// half-open (2). The worst worker is what the alert and the dashboard look at (`max by`).
// The fleet circuit's gauges: its state the worst worker's, connected only if every worker
// is (min), and replicas seen as each worker counts the same fleet (max, not the sum).
const CLUSTER_AGGREGATOR = {
  dnastore_circuit_state: 'max',
  dnastore_circuit_failure_rate: 'max',
  dnastore_fleet_state: 'max',
  dnastore_fleet_connected: 'min',
  dnastore_fleet_replicas: 'max',
};

/** One core metric family, as prom-client's registry expects a metric object. */
class NativeFamily {
  constructor(name, type, help) {
    // prom-client renames counters in an OpenMetrics registry (drops `_total`); the core's
    // name stays in `family` for the lookup.
    this.name = name;
    this.family = name;
    this.type = type;
    this.help = help;
    this.aggregator = CLUSTER_AGGREGATOR[name] ?? 'sum';
    this[OWNED] = true;
  }

  get() {
    const f = currentFamilies().get(this.family);
    const histogram = this.type === 'histogram' || this.type === 'summary';
    const values = f
      ? f.samples.map((s) => (histogram ? { labels: s.labels, value: s.value, metricName: s.name } : { labels: s.labels, value: s.value }))
      : [];
    return { name: this.name, help: f?.help ?? this.help, type: this.type, aggregator: this.aggregator, values };
  }

  // register.resetMetrics() must not zero what the core owns (and cannot, from here).
  reset() {}
}

/**
 * Registers every dnastore-breaker metric family with a prom-client Registry, so that
 * `await register.metrics()` includes them (values read from the core at each collection).
 * Calling it again on the same registry does nothing; a different metric already registered
 * under one of our names throws before anything is registered.
 * @param {import('prom-client').Registry} register
 * @returns the registry
 */
function registerWith(register) {
  if (register === null || typeof register !== 'object' || typeof register.registerMetric !== 'function' || typeof register.getSingleMetric !== 'function') {
    const err = new TypeError('registerWith(register): expected a prom-client Registry (e.g. require("prom-client").register)');
    err.code = 'EINVALID';
    throw err;
  }
  const missing = [];
  for (const [name, type, help] of FAMILIES) {
    const existing = register.getSingleMetric(name);
    if (existing === undefined) missing.push(new NativeFamily(name, type, help));
    else if (!existing[OWNED]) {
      const err = new Error(`registerWith: the registry already has a metric named ${name} that is not dnastore-breaker's`);
      err.code = 'EINVALID';
      throw err;
    }
  }
  for (const m of missing) register.registerMetric(m);
  return register;
}

module.exports = { registerWith, parseExposition, FAMILIES };
