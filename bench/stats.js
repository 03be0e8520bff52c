'use strict';

// Summaries over rounds. Ratios are taken per round (contender and baseline measured
// minutes apart, under the same background load) and then summarised, which is steadier
// than a ratio of medians on a shared machine.

function sortNum(xs) {
  return [...xs].sort((a, b) => a - b);
}

function median(xs) {
  const s = sortNum(xs);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** { min, median, max } of a list of numbers (NaN when empty). */
function summary(xs) {
  const s = sortNum(xs);
  return { min: s.length ? s[0] : NaN, median: median(s), max: s.length ? s[s.length - 1] : NaN };
}

/** Per-round derived figures of one raw measurement. */
function derive(r) {
  const seconds = r.elapsedMs / 1000;
  return {
    rps: r.requests / seconds,
    cpuPerReqUs: r.requests ? r.cpuUs / r.requests : NaN,
    // The JS thread's share: null when unreadable, absent for bare reqwest (no JS thread).
    jsCpuPerReqUs: r.requests && Number.isFinite(r.jsCpuUs) ? r.jsCpuUs / r.requests : NaN,
    p50Us: r.p50Us,
    p99Us: r.p99Us,
    errors: r.errors,
  };
}

/**
 * Ratios of `field` between two contenders' rounds, paired by round index; summary of them.
 * Rounds missing on either side are skipped.
 */
function ratio(rounds, baseRounds, field) {
  const out = [];
  for (let i = 0; i < Math.min(rounds.length, baseRounds.length); i++) {
    const a = rounds[i]?.[field];
    const b = baseRounds[i]?.[field];
    if (Number.isFinite(a) && Number.isFinite(b) && b > 0) out.push(a / b);
  }
  return summary(out);
}

module.exports = { median, summary, derive, ratio };
