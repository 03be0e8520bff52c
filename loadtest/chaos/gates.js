'use strict';

// The chaos run's verdict: the summary (the fields the README lists) and its gates.
// Pure functions of what the run measured, so they are unit-tested on their own
// (__test__/chaos.test.js).

const ALERT = 'DNAStoreCircuitOpen';
// An alert reflects what Prometheus scraped and then evaluated: up to a scrape (1 s) and an
// evaluation (1 s) after the fact. A firing that starts that soon after an outage ended
// still saw the outage.
const ALERT_LAG_MS = 2000;

/**
 * Did the DNAStore-down alert fire during each outage and resolve after it?
 * `windows`: [{ name, outage, startMs, endMs }] in run order; `firing`: [[fromMs, toMs], ...]
 * of the alert (any instance). Resolved: the firing interval that covers the outage ended
 * before the next fault began (or, for the last one, before `runEndMs`).
 */
function alertPerOutage(windows, firing, runEndMs) {
  const out = [];
  windows.forEach((w, i) => {
    if (!w.outage) return;
    const nextStart = windows[i + 1]?.startMs ?? runEndMs;
    const during = firing.filter(([from, to]) => to >= w.startMs && from <= w.endMs + ALERT_LAG_MS);
    const fired = during.length > 0;
    const lastEnd = fired ? Math.max(...during.map(([, to]) => to)) : null;
    // A firing interval's last sample is the last evaluation that still fired; the next
    // one (a second later) found it resolved.
    const resolved = fired && lastEnd + 1000 < nextStart;
    out.push({
      fault: w.name,
      fired,
      firedAfterS: fired ? Math.max(0, (Math.min(...during.map(([from]) => from)) - w.startMs) / 1000) : null,
      resolved,
      resolvedAfterEndS: resolved ? Math.max(0, (lastEnd + 1000 - w.endMs) / 1000) : null,
    });
  });
  return out;
}

/** Each alert that fired: its intervals relative to t0 (seconds) and whether it is resolved at the end. */
function alertSummary(firingByAlert, t0, endMs) {
  const out = {};
  for (const [name, intervals] of Object.entries(firingByAlert)) {
    const last = intervals[intervals.length - 1];
    out[name] = {
      fired: intervals.length,
      resolved: !!last && last[1] + 1000 < endMs,
      intervalsS: intervals.map(([a, b]) => [Math.round((a - t0) / 100) / 10, Math.round((b + 1000 - t0) / 100) / 10]),
    };
  }
  return out;
}

/**
 * Failed requests (as clients saw them at the load balancer: a read not 200, a write not
 * 201/202) by the fault they followed: each fault owns the time from its start to the next
 * one's (its window and the recovery after it); before the first, `warm-up`.
 */
function failedByFault(records, windows) {
  const out = {};
  for (const r of records) {
    const ok = r.method === 'GET' ? r.status === 200 : r.status === 201 || r.status === 202;
    if (ok) continue;
    let owner = 'warm-up';
    for (const w of windows) if (w.startMs <= r.t) owner = w.name;
    out[owner] = (out[owner] || 0) + 1;
  }
  return out;
}

const rate = (m) => (m && typeof m.value === 'number' ? m.value : null);

/** The summary JSON and the gates. */
function verdict(m) {
  const k = m.k6Metrics || {};
  const perOutage = alertPerOutage(m.windows, m.firing[ALERT] || [], m.runEndMs);
  const summary = {
    replicas: m.replicas,
    requests: k.http_reqs ? k.http_reqs.count : 0,
    httpReqFailedRate: rate(k.http_req_failed),
    readsFailedRate: rate(k.read_failed),
    writes: {
      acked: m.audit ? m.audit.acknowledged : null,
      lost: m.audit ? m.audit.lost.length : null,
      duplicated: m.audit ? m.audit.duplicated.length : null,
      created201: m.audit ? m.audit.created : null,
      queued202: m.audit ? m.audit.queued : null,
      notAcked: m.audit ? m.audit.writes - m.audit.acknowledged : null,
      keyNotCarried: m.audit ? m.audit.keyMismatch.length : null,
      storedNotAcked: m.audit ? m.audit.storedUnacknowledged.length : null,
    },
    faults: [...new Set(m.windows.map((w) => w.name))],
    failedByFault: m.failedByFault ?? null,
    circuitsOpenAtEnd: m.circuitsOpenAtEnd,
    outboxLeft: m.outboxLeft,
    alerts: { dnastoreDown: { alert: ALERT, perOutage }, fired: alertSummary(m.firing, m.t0, m.runEndMs) },
    rssGrowth: m.rssGrowth,
  };
  const gates = [
    ['httpReqFailedRate < 0.01', summary.httpReqFailedRate !== null && summary.httpReqFailedRate < 0.01],
    ['readsFailedRate < 0.01', summary.readsFailedRate !== null && summary.readsFailedRate < 0.01],
    ['writes.lost == 0', summary.writes.lost === 0 && summary.writes.acked > 0],
    ['writes.duplicated == 0', summary.writes.duplicated === 0],
    // The rest of the soak's audit: each stored write under its client's key, no key reused.
    ['writes.keyNotCarried == 0', summary.writes.keyNotCarried === 0 && (m.audit?.reusedKeys.length ?? 1) === 0],
    ['circuitsOpenAtEnd == 0', summary.circuitsOpenAtEnd === 0],
    ['outboxLeft == 0', summary.outboxLeft === 0],
    [`${ALERT} fired during each DNAStore outage and resolved after it`, perOutage.length > 0 && perOutage.every((o) => o.fired && o.resolved)],
    ...m.required.map((name) => [`fault ${name} ran`, summary.faults.includes(name)]),
  ].map(([name, pass]) => ({ name, pass }));
  return { summary, gates, passed: gates.every((g) => g.pass) };
}

module.exports = { verdict, alertPerOutage, alertSummary, failedByFault, ALERT };
