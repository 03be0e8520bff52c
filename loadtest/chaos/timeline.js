'use strict';

// The run as a picture: one SVG, panels stacked on one time axis (seconds since k6
// started), fault windows shaded in every panel (red: DNAStore outages, blue: the other
// faults):
//   1. the faults, one row each;
//   2. breaker state per replica (closed, half-open, open; grey: the replica not answering);
//   3. requests per second per replica, as the load balancer answered them;
//   4. failed requests per second per replica (a read not 200, a write not 201/202);
//   5. reads served from last-known-good per second per replica, and writes queued (202);
//   6. the outbox's depth (writes queued in Redis, plus those a replica spilled to its file
//      while Redis was down, as the replicas report them; the most any replica reports);
//   7. the alerts that fired.
// Rendered by vega-lite through vega's headless view (no browser): both are ESM, loaded
// with import().

const fs = require('node:fs');

const STATE_COLORS = { closed: '#2ca02c', halfOpen: '#ff7f0e', open: '#d62728', down: '#9e9e9e' };
// Replicas keep their colour in every panel (each panel has its own colour scale).
const REPLICA_COLORS = ['#1f77b4', '#9467bd', '#17becf', '#e377c2', '#bcbd22', '#8c564b', '#7f7f7f', '#393b79'];

/**
 * Per replica per second, from the load balancer's records: { t, replica, requests, failed,
 * fallbacks, queued }. Every replica has a row for every second up to the last record (a
 * replica that answered nothing in a second has zeros there, not a gap a line would bridge).
 */
function perSecond(records, { t0, portToReplica }) {
  const buckets = new Map();
  let lastT = -1;
  for (const r of records) {
    const replica = portToReplica.get(r.port) ?? 'none (load balancer)';
    const t = Math.floor((r.t - t0) / 1000);
    if (t < 0) continue;
    lastT = Math.max(lastT, t);
    const key = `${replica}|${t}`;
    let b = buckets.get(key);
    if (!b) buckets.set(key, (b = { t, replica, requests: 0, failed: 0, fallbacks: 0, queued: 0 }));
    b.requests++;
    const ok = r.method === 'GET' ? r.status === 200 : r.status === 201 || r.status === 202;
    if (!ok) b.failed++;
    if (r.fallback === 'cache') b.fallbacks++;
    if (r.status === 202) b.queued++;
  }
  for (const replica of portToReplica.values()) {
    for (let t = 0; t <= lastT; t++) {
      const key = `${replica}|${t}`;
      if (!buckets.has(key)) buckets.set(key, { t, replica, requests: 0, failed: 0, fallbacks: 0, queued: 0 });
    }
  }
  return [...buckets.values()].sort((a, b) => a.t - b.t || (a.replica < b.replica ? -1 : 1));
}

const round1 = (x) => Math.round(x * 10) / 10;
// At most this many points per line: a 30-minute run averages 3 s per point (still per second).
const MAX_POINTS = 600;

/** Per-second rows averaged over steps of `ceil(seconds / MAX_POINTS)` seconds (1 for a 3-minute run). */
function coarsen(rows) {
  const last = rows.reduce((m, r) => Math.max(m, r.t), 0);
  const step = Math.max(1, Math.ceil((last + 1) / MAX_POINTS));
  if (step === 1) return rows;
  const out = new Map();
  for (const r of rows) {
    const t = Math.floor(r.t / step) * step;
    const key = `${r.replica}|${t}`;
    let b = out.get(key);
    if (!b) out.set(key, (b = { t, replica: r.replica, requests: 0, failed: 0, fallbacks: 0, queued: 0 }));
    for (const f of ['requests', 'failed', 'fallbacks', 'queued']) b[f] += r[f] / step;
  }
  return [...out.values()];
}

/**
 * The picture's data, in seconds since `t0`: the load balancer's records per second, the
 * readiness samples as runs of one state (each sample holds until the replica's next one,
 * at most 2 s), the shared
 * queue's depth (the most any replica reported in each second), alerts and fault windows.
 */
function timelineData({ t0, replicas, samples, records, windows, firing }) {
  const traffic = coarsen(perSecond(records, { t0, portToReplica: new Map(replicas.map((r) => [r.port, r.name])) }));
  const states = [];
  const lastOf = new Map();
  const depth = new Map();
  for (const s of samples) {
    if (s.t < t0) continue;
    const st = { t: round1((s.t - t0) / 1000), t2: round1((s.t - t0) / 1000 + 2), replica: s.replica, state: s.state };
    const prev = lastOf.get(s.replica);
    if (prev && prev.state === st.state && st.t <= prev.t2) {
      prev.t2 = st.t2; // the same state still: one rectangle (a 30-minute picture stays small)
    } else {
      if (prev) prev.t2 = Math.min(prev.t2, st.t);
      lastOf.set(s.replica, st);
      states.push(st);
    }
    if (s.outbox !== null) {
      const t = Math.floor((s.t - t0) / 1000);
      depth.set(t, Math.max(depth.get(t) ?? 0, s.outbox));
    }
  }
  const outbox = [...depth].sort((a, b) => a[0] - b[0]).map(([t, entries]) => ({ t, entries }));
  const alerts = [];
  for (const [alert, intervals] of Object.entries(firing)) {
    for (const [a, b] of intervals) alerts.push({ alert, fromS: round1((a - t0) / 1000), toS: round1((b + 1000 - t0) / 1000) });
  }
  const faults = windows.map((w) => ({ name: w.name, outage: w.outage, startS: round1((w.startMs - t0) / 1000), endS: round1((w.endMs - t0) / 1000) }));
  return { replicas: replicas.map((r) => r.name), traffic, states, outbox, alerts, faults };
}

/** The vega-lite specification of the picture. */
function buildSpec({ title, durationS, faults, replicas, states, traffic, outbox, alerts }) {
  const width = 900;
  const xOf = (field) => ({ field, type: 'quantitative', title: 'seconds since k6 started', scale: { domain: [0, durationS] } });
  const x = xOf('t');
  // Requests nginx answered itself (no replica took them: a 502 or 504) get a line of their own.
  const domain = traffic.some((b) => !replicas.includes(b.replica)) ? [...replicas, 'none (load balancer)'] : replicas;
  const replicaColor = { field: 'replica', type: 'nominal', title: 'replica', scale: { domain, range: domain.map((_, i) => (i === replicas.length ? '#000000' : REPLICA_COLORS[i % REPLICA_COLORS.length])) } };
  const shade = (outage) => ({
    data: { values: faults.filter((f) => f.outage === outage) },
    mark: { type: 'rect', color: outage ? '#d62728' : '#1f77b4', opacity: 0.13 },
    encoding: { x: xOf('startS'), x2: { field: 'endS' } },
  });
  const panel = (heading, height, layers) => ({
    title: { text: heading, anchor: 'start', fontSize: 12 },
    width,
    height,
    layer: [shade(true), shade(false), ...layers],
  });
  const line = (values, field, label, dash = false) => ({
    data: { values },
    mark: { type: 'line', interpolate: 'step-after', strokeWidth: 1.2, ...(dash ? { strokeDash: [4, 2] } : {}) },
    encoding: { x, y: { field, type: 'quantitative', title: label }, color: replicaColor },
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, anchor: 'start', fontSize: 14 },
    config: { view: { stroke: '#ccc' }, axis: { labelFontSize: 10, titleFontSize: 10 }, legend: { labelFontSize: 10, titleFontSize: 10 } },
    spacing: 14,
    resolve: { scale: { color: 'independent' }, legend: { color: 'independent' } },
    vconcat: [
      panel('Faults (red: DNAStore outages, blue: the others)', 14 * new Set(faults.map((f) => f.name)).size + 10, [
        {
          data: { values: faults },
          mark: { type: 'rect' },
          encoding: {
            x: { ...xOf('startS') },
            x2: { field: 'endS' },
            y: { field: 'name', type: 'nominal', title: null, sort: { field: 'startS' }, axis: { labelLimit: 300 } },
            color: { field: 'outage', type: 'nominal', legend: null, scale: { domain: [true, false], range: ['#d62728', '#1f77b4'] } },
          },
        },
      ]),
      panel('Breaker state per replica (grey: the replica does not answer /readyz)', 24 * replicas.length, [
        {
          data: { values: states },
          mark: { type: 'rect' },
          encoding: {
            x,
            x2: { field: 't2' },
            y: { field: 'replica', type: 'nominal', title: null, scale: { domain: replicas, paddingInner: 0.2 } },
            color: { field: 'state', type: 'nominal', title: 'breaker', scale: { domain: Object.keys(STATE_COLORS), range: Object.values(STATE_COLORS) } },
          },
        },
      ]),
      panel('Requests per second (through the load balancer), per replica', 110, [line(traffic, 'requests', 'req/s')]),
      panel('Failed requests per second (read not 200, write not 201/202), per replica', 90, [line(traffic, 'failed', 'failed/s')]),
      panel('Reads served from last-known-good per second (solid) and writes queued, 202 (dashed), per replica', 110, [line(traffic, 'fallbacks', 'per s'), line(traffic, 'queued', 'per s', true)]),
      panel('Outbox depth (queued in Redis + spilled by a replica)', 90, [
        { data: { values: outbox }, mark: { type: 'area', interpolate: 'step-after', color: '#8c6d31', opacity: 0.7 }, encoding: { x, y: { field: 'entries', type: 'quantitative', title: 'writes' } } },
      ]),
      panel('Alerts firing (monitoring/prometheus/alerts.yml, time-scaled)', Math.max(30, 22 * Math.max(1, new Set(alerts.map((a) => a.alert)).size)), [
        {
          data: { values: alerts },
          mark: { type: 'rect', color: '#6a3d9a' },
          encoding: { x: xOf('fromS'), x2: { field: 'toS' }, y: { field: 'alert', type: 'nominal', title: null, axis: { labelLimit: 300 } } },
        },
      ]),
    ],
  };
}

/** Renders a vega-lite specification to an SVG file. */
async function renderSvg(spec, file) {
  const vl = await import('vega-lite');
  const vega = await import('vega');
  const compiled = vl.compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  fs.writeFileSync(file, svg);
  return file;
}

module.exports = { perSecond, timelineData, buildSpec, renderSvg, STATE_COLORS };
