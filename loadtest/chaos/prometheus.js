'use strict';

// Prometheus scraping every replica (every second) with the project's alert rules
// (monitoring/prometheus/alerts.yml) loaded, time-scaled for the run.
//
// Why scaled: the rules are written for production. DNAStoreCircuitOpen waits `for: 1m`,
// the outbox rules look at 5 to 30 minute windows; a chaos run's faults last 8 to 20 s, so
// the real rules could never fire within one, and the gate "the DNAStore-down alert fired
// during each outage and resolved after it" would be untestable. The run loads a copy of
// the file in which every duration (each `for:` and each range selector `[5m]`) is divided
// by the same factor (30 by default: `for: 1m` becomes 2 s, `[5m]` 10 s), and nothing else
// changes: the expressions, thresholds and labels are the project's. The copy is checked
// with `promtool check rules` before the run, and the factor is printed and recorded in the
// summary. What this tests is therefore the rules' logic against a real fleet's metrics,
// not their production timing (which monitoring/prometheus/alerts.test.yml unit-tests).

const fs = require('node:fs');
const path = require('node:path');
const { freePort } = require('../../examples/fake-dnastore/control');
const procs = require('./procs');

const RULES = path.join(__dirname, '..', '..', 'monitoring', 'prometheus', 'alerts.yml');
const UNIT_MS = { ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000 };

function parseDuration(text) {
  let ms = 0;
  const re = /(\d+)(ms|s|m|h|d)/g;
  let m;
  let matched = '';
  while ((m = re.exec(text))) {
    ms += Number(m[1]) * UNIT_MS[m[2]];
    matched += m[0];
  }
  if (matched !== text || ms === 0) throw new Error(`not a Prometheus duration: ${text}`);
  return ms;
}

function formatDuration(ms) {
  ms = Math.max(1, Math.round(ms));
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/**
 * The rules text with every `for:` and range selector duration divided by `factor`.
 * Returns { text, changes: ['for 1m -> 2s', '[5m] -> [10s]', ...] (distinct) }.
 */
function scaleRules(text, factor) {
  if (!(factor >= 1)) throw new Error(`alert time scale ${factor}: must be a number >= 1`);
  const changes = new Set();
  const scale = (d) => formatDuration(parseDuration(d) / factor);
  let out = text.replace(/^([ \t]*for:[ \t]*)(\S+)[ \t]*$/gm, (_, lead, d) => {
    const s = scale(d);
    changes.add(`for ${d} -> ${s}`);
    return `${lead}${s}`;
  });
  // Range selectors in expressions: `[5m]`, `[15m]`, `[1h30m]` (never inside comments: a
  // comment line has no brackets of this form in alerts.yml, and a scaled one would not matter).
  out = out.replace(/\[(\d+(?:ms|s|m|h|d))+\]/g, (whole) => {
    const d = whole.slice(1, -1);
    const s = scale(d);
    changes.add(`[${d}] -> [${s}]`);
    return `[${s}]`;
  });
  return { text: out, changes: [...changes] };
}

/** Writes the scaled rules to `dir`, checks them with promtool; returns their path and changes. */
async function scaledRulesFile({ dir, factor }) {
  const { text, changes } = scaleRules(fs.readFileSync(RULES, 'utf8'), factor);
  const file = path.join(dir, `alerts.scaled-${factor}.yml`);
  fs.writeFileSync(file, `# monitoring/prometheus/alerts.yml with every duration divided by ${factor} (loadtest/chaos/prometheus.js)\n${text}`);
  const r = await procs.run('promtool', ['check', 'rules', file], { timeoutMs: 30000 });
  if (r.code !== 0) throw new Error(`promtool check rules ${file} failed: ${r.stdout}${r.stderr}`);
  return { file, changes };
}

async function startPrometheus({ dir, targets, rulesFile, log }) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const conf = path.join(dir, 'prometheus.yml');
  fs.writeFileSync(conf, [
    'global:',
    '  scrape_interval: 1s',
    '  scrape_timeout: 900ms',
    '  evaluation_interval: 1s',
    'rule_files:',
    `  - ${JSON.stringify(rulesFile)}`,
    'scrape_configs:',
    '  - job_name: sigil-api',
    '    static_configs:',
    `      - targets: [${targets.map((p) => `'127.0.0.1:${p}'`).join(', ')}]`,
    '',
  ].join('\n'));
  const child = procs.start('prometheus', 'prometheus', [
    `--config.file=${conf}`,
    `--storage.tsdb.path=${path.join(dir, 'prom-data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--log.level=warn',
  ], { cwd: dir });
  await procs.until('Prometheus to be ready', async () => {
    if (!procs.alive(child)) throw new Error(`prometheus exited: ${child.output.slice(-1000)}`);
    return (await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1000) })).ok;
  }, { timeoutMs: 20000, intervalMs: 250 });
  log(`Prometheus pid ${child.pid} on ${url}: scraping ${targets.length} replicas every 1 s, rules ${path.basename(rulesFile)}`);

  async function api(pathAndQuery) {
    const res = await fetch(`${url}${pathAndQuery}`, { signal: AbortSignal.timeout(10000) });
    const body = await res.json();
    if (body.status !== 'success') throw new Error(`${pathAndQuery}: ${JSON.stringify(body)}`);
    return body.data;
  }

  return {
    url,
    pid: child.pid,
    /** The alerts pending or firing now: [{ alertname, state, instance }]. */
    async alertsNow() {
      const { alerts } = await api('/api/v1/alerts');
      return alerts.map((a) => ({ alertname: a.labels.alertname, state: a.state, instance: a.labels.instance }));
    },
    /** ALERTS{alertstate="firing"} between two epoch-ms times, 1 s steps: { alertname: [[fromMs, toMs], ...] }. */
    async firing(fromMs, toMs) {
      const q = new URLSearchParams({ query: 'max by (alertname) (ALERTS{alertstate="firing"})', start: String(fromMs / 1000), end: String(toMs / 1000), step: '1' });
      const data = await api(`/api/v1/query_range?${q}`);
      const out = {};
      for (const series of data.result) {
        out[series.metric.alertname] = intervals(series.values.map(([t]) => Math.round(t * 1000)), 1000);
      }
      return out;
    },
    stop: () => procs.stop(child, 'SIGTERM', 5000),
  };
}

/** Sorted sample times (ms) to [[from, to], ...]: a gap longer than one step starts a new interval. */
function intervals(times, stepMs) {
  const out = [];
  for (const t of times) {
    const last = out[out.length - 1];
    if (last && t - last[1] <= stepMs * 1.5) last[1] = t;
    else out.push([t, t]);
  }
  return out;
}

module.exports = { scaleRules, scaledRulesFile, startPrometheus, intervals, parseDuration, formatDuration };
