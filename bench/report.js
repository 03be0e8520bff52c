'use strict';

// Markdown for one run: the tables, the targets from issue 7 and where they stand.

const { summary, ratio } = require('./stats');

const NODE_BASE = 'opossum+node-fetch';
const RUST_BASE = 'bare reqwest (2 workers)';
const SUBJECT = 'dnastore-breaker';
const MB = 1024 * 1024;

function fmtRate(x) {
  if (!Number.isFinite(x)) return '–';
  if (x >= 1_000_000) return `${(x / 1_000_000).toFixed(2)}M`;
  return x >= 10_000 ? `${(x / 1000).toFixed(0)}k` : x >= 1000 ? `${(x / 1000).toFixed(1)}k` : x.toFixed(0);
}

function fmtUs(x) {
  if (!Number.isFinite(x)) return '–';
  return x >= 100 ? x.toFixed(0) : x.toFixed(1);
}

function fmtX(s) {
  if (!Number.isFinite(s.median)) return '–';
  const f = (x) => (x >= 10 ? x.toFixed(1) : x.toFixed(2));
  return s.min === s.max ? `${f(s.median)}x` : `**${f(s.median)}x** (${f(s.min)}–${f(s.max)})`;
}

function triple(rounds, field, fmt) {
  const s = summary(rounds.filter(Boolean).map((r) => r[field]));
  return `${fmt(s.min)} / **${fmt(s.median)}** / ${fmt(s.max)}`;
}

/** triple() over the rounds that have the figure; '-' when none has (bare reqwest has no JS thread). */
function tripleIfAny(rounds, field, fmt) {
  const has = rounds.filter((r) => r && Number.isFinite(r[field]));
  return has.length ? triple(has, field, fmt) : '-';
}

function closedTable(byName) {
  const base = byName[NODE_BASE] ?? [];
  const rust = byName[RUST_BASE] ?? [];
  const rows = [
    '| contender | req/s min / **median** / max | p50 µs | p99 µs | client CPU µs/req min / **median** / max | JS-thread CPU µs/req min / **median** / max | errors | req/s vs opossum+node-fetch | CPU/req vs opossum+node-fetch | req/s vs bare reqwest (2w) |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const [name, rounds] of Object.entries(byName)) {
    const ok = rounds.filter(Boolean);
    if (ok.length === 0) {
      rows.push(`| ${name} | failed | | | | | | | | |`);
      continue;
    }
    const p50 = summary(ok.map((r) => r.p50Us)).median;
    const p99 = summary(ok.map((r) => r.p99Us)).median;
    const errors = ok.reduce((a, r) => a + r.errors, 0);
    rows.push(
      `| ${name} | ${triple(rounds, 'rps', fmtRate)} | ${fmtUs(p50)} | ${fmtUs(p99)} | ${triple(rounds, 'cpuPerReqUs', fmtUs)} | ${tripleIfAny(rounds, 'jsCpuPerReqUs', fmtUs)} | ${errors} | ` +
        `${fmtX(ratio(rounds, base, 'rps'))} | ${fmtX(ratio(rounds, base, 'cpuPerReqUs'))} | ${fmtX(ratio(rounds, rust, 'rps'))} |`,
    );
  }
  return rows.join('\n');
}

function openTable(byName) {
  const base = byName['opossum (open)'] ?? [];
  const rows = [
    '| contender | fallback calls/s min / **median** / max | CPU µs/call min / **median** / max | JS-thread CPU µs/call min / **median** / max | errors | calls/s vs opossum (open) |',
    '|---|---|---|---|---|---|',
  ];
  for (const [name, rounds] of Object.entries(byName)) {
    const ok = rounds.filter(Boolean);
    if (ok.length === 0) {
      rows.push(`| ${name} | failed | | | | |`);
      continue;
    }
    const errors = ok.reduce((a, r) => a + r.errors, 0);
    const cpu = (x) => x.toFixed(2);
    rows.push(`| ${name} | ${triple(rounds, 'rps', fmtRate)} | ${triple(rounds, 'cpuPerReqUs', cpu)} | ${tripleIfAny(rounds, 'jsCpuPerReqUs', cpu)} | ${errors} | ${fmtX(ratio(rounds, base, 'rps'))} |`);
  }
  return rows.join('\n');
}

/** RSS growth between the sample nearest half-way and the last one, in bytes. */
function rssGrowth(mem) {
  if (!mem || mem.samples.length < 2) return { bytes: NaN };
  const last = mem.samples[mem.samples.length - 1];
  const half = mem.samples.reduce((best, s) => (Math.abs(s.requests - last.requests / 2) < Math.abs(best.requests - last.requests / 2) ? s : best));
  // RSS minus V8's reserved heap: what native code (and V8 outside its heap) kept. V8 grows
  // its young generation in steps under a high allocation rate, which shows in RSS but is neither
  // live data nor a leak.
  const native = (s) => s.rss - s.heapTotal;
  return { from: half.requests, to: last.requests, bytes: last.rss - half.rss, heap: last.heapUsed - half.heapUsed, heapTotal: last.heapTotal - half.heapTotal, native: native(last) - native(half) };
}

function memoryTable(mem) {
  if (!mem) return '_not run_';
  const rows = ['| requests | RSS MB | JS heap used MB | heap total MB | external MB |', '|---|---|---|---|---|'];
  for (const s of mem.samples) {
    rows.push(`| ${s.requests.toLocaleString('en-US')} | ${(s.rss / MB).toFixed(1)} | ${(s.heapUsed / MB).toFixed(2)} | ${(s.heapTotal / MB).toFixed(1)} | ${(s.external / MB).toFixed(2)} |`);
  }
  const g = rssGrowth(mem);
  rows.push('');
  rows.push(
    `${mem.requests.toLocaleString('en-US')} requests in ${(mem.elapsedMs / 1000).toFixed(1)} s, ${mem.errors} errors. ` +
      `RSS growth ${g.from.toLocaleString('en-US')} -> ${g.to.toLocaleString('en-US')}: **${(g.bytes / MB).toFixed(2)} MB** ` +
      `(JS heap used ${(g.heap / MB).toFixed(2)} MB, V8 heap reserved ${(g.heapTotal / MB).toFixed(2)} MB, RSS outside the V8 heap ${(g.native / MB).toFixed(2)} MB).`,
  );
  return rows.join('\n');
}

function check(label, s, pass, want) {
  const got = Number.isFinite(s.median) ? `${s.median.toFixed(2)}x (rounds ${s.min.toFixed(2)}–${s.max.toFixed(2)})` : 'not measured';
  const verdict = Number.isFinite(s.median) ? (pass(s.median) ? 'met' : '**MISSED**') : 'not measured';
  return { line: `| ${label} | ${want} | ${got} | ${verdict} |`, verdict };
}

function targets(res) {
  const c50 = res.closed['50'] ?? {};
  const c1 = res.closed['1'] ?? {};
  const sub = c50[SUBJECT] ?? [];
  const open = res.open ?? {};
  const rows = [
    check('closed c=50: req/s vs opossum+node-fetch', ratio(sub, c50[NODE_BASE] ?? [], 'rps'), (x) => x >= 5, '>= 5x'),
    check('closed c=50: client CPU/req vs opossum+node-fetch', ratio(sub, c50[NODE_BASE] ?? [], 'cpuPerReqUs'), (x) => x <= 0.3, '<= 0.3x'),
    check('closed c=50: req/s vs opossum+undici', ratio(sub, c50['opossum+undici'] ?? [], 'rps'), (x) => x >= 2, '>= 2x'),
    check('closed c=50: req/s vs bare reqwest (2 workers)', ratio(sub, c50[RUST_BASE] ?? [], 'rps'), (x) => x >= 0.95, '>= 0.95x'),
    // Issue 7 asked >= 10x; issue 18 made 15x the floor no change may go under.
    check('open: calls/s vs opossum (open)', ratio(open[SUBJECT + ' (open)'] ?? [], open['opossum (open)'] ?? [], 'rps'), (x) => x >= 15, '>= 15x'),
    // Issue 18: one call in flight, against what a performance-minded Node user picks.
    check('closed c=1: client CPU/req vs opossum+undici', ratio(c1[SUBJECT] ?? [], c1['opossum+undici'] ?? [], 'cpuPerReqUs'), (x) => x <= 1, '<= 1.0x'),
    check('closed c=1: p50 latency vs opossum+undici', ratio(c1[SUBJECT] ?? [], c1['opossum+undici'] ?? [], 'p50Us'), (x) => x <= 1, '<= 1.0x'),
  ];
  const g = rssGrowth(res.memory);
  const rssOk = Number.isFinite(g.bytes) && g.bytes < 5 * MB;
  const rssLine = Number.isFinite(g.bytes)
    ? `| RSS growth ${g.from.toLocaleString('en-US')} -> ${g.to.toLocaleString('en-US')} requests | < 5 MB | ${(g.bytes / MB).toFixed(2)} MB (outside the V8 heap: ${(g.native / MB).toFixed(2)} MB) | ${rssOk ? 'met' : '**MISSED**'} |`
    : '| RSS growth 500k -> 1M requests | < 5 MB | not measured | not measured |';
  const lines = ['| target (issues 7 and 18, medians of per-round ratios) | wanted | measured | |', '|---|---|---|---|', ...rows.map((r) => r.line), rssLine];
  const missed = rows.filter((r) => r.verdict === '**MISSED**').length + (Number.isFinite(g.bytes) && !rssOk ? 1 : 0);
  return { text: lines.join('\n'), missed };
}

function render(res) {
  const m = res.meta;
  const t = targets(res);
  const parts = [
    `# dnastore-breaker benchmark results`,
    '',
    `- date: ${m.date}`,
    `- machine: ${m.nproc} CPUs (${m.cpuModel}), ${m.memGb} GB RAM, ${m.os}; Node ${m.node}; ${m.rustc}`,
    `- command: \`${m.command}\``,
    `- method: ${m.rounds} round(s), contenders alternating (start rotated each round), each in its own process; ` +
      `${m.warmupMs} ms warm-up then ${m.durationMs} ms measured per contender per round; upstream nginx ${m.nginx} (1 worker, keep-alive) on loopback serving ${m.bodyBytes} bytes of JSON. ` +
      'CPU is the client process\'s user+system time over the measured window (all its threads) divided by the requests completed in it; ' +
      'JS-thread CPU is the main thread\'s alone over the same window (`/proc/thread-self/schedstat`; `-` where there is no JS thread or it is unreadable). ' +
      'Ratios are per round, then min/median/max over rounds.',
    '',
    '## Targets',
    '',
    t.text,
    '',
  ];
  // Object keys '1' and '50' iterate in numeric order; the headline (50) goes first.
  for (const c of Object.keys(res.closed).sort((a, b) => b - a)) {
    parts.push(`## Closed circuit, concurrency ${c}`, '', closedTable(res.closed[c]), '');
  }
  parts.push('## Open circuit (concurrency 50, every call resolves the fallback)', '', openTable(res.open), '');
  parts.push(`## Memory: dnastore-breaker through ${res.memory ? res.memory.requests.toLocaleString('en-US') : '?'} requests (concurrency 50, full GC before each sample, young generation pinned at 2 MB semi-spaces)`, '', memoryTable(res.memory), '');
  return { markdown: parts.join('\n'), missed: t.missed };
}

module.exports = { render, targets, fmtRate, fmtUs, fmtX, NODE_BASE, RUST_BASE, SUBJECT };
