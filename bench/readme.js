'use strict';

// The benchmark summary of docs/performance.md, written by every full `npm run bench` from the
// same run as results.md, so the numbers the docs quote are always the latest run's. Only the
// block between the markers is rewritten; the prose around it is maintained by hand.

const fs = require('node:fs');
const path = require('node:path');
const { summary, ratio } = require('./stats');
const { targets, fmtRate, fmtUs, fmtX, NODE_BASE, SUBJECT } = require('./report');

const BEGIN = '<!-- bench:begin (written by npm run bench from bench/results.md; edit bench/readme.js) -->';
const END = '<!-- bench:end -->';

const CLOSED_ROWS = [
  ['opossum+node-fetch', "opossum + node-fetch@2 (the ticket's stack)"],
  ['opossum+fetch', 'opossum + global fetch'],
  ['opossum+undici', 'opossum + undici.request'],
  ['cockatiel+undici', 'cockatiel (breaker + retry) + undici.request'],
  [SUBJECT, '**dnastore-breaker** (breaker, retries, LKG storing, metrics; coalescing off)'],
  ['dnastore-breaker (coalesce)', 'dnastore-breaker, defaults (identical GETs coalesced)'],
  ['bare reqwest (2 workers)', 'bare Rust reqwest, 2-worker runtime (ceiling)'],
  ['bare reqwest (1 thread)', 'bare Rust reqwest, one thread'],
];

const med = (rounds, field) => summary(rounds.filter(Boolean).map((r) => r[field])).median;

// The JS thread's CPU per request (median of the rounds that have it), or '-' (bare reqwest: no JS thread).
function js(rounds, fmt) {
  const v = summary(rounds.filter((r) => r && Number.isFinite(r.jsCpuPerReqUs)).map((r) => r.jsCpuPerReqUs)).median;
  return Number.isFinite(v) ? `${fmt(v)} µs` : '-';
}

// The ratio cell of results.md, without its bold.
const x = (s) => fmtX(s).replaceAll('**', '');

function section(res) {
  const m = res.meta;
  const c50 = res.closed['50'] ?? {};
  const c1 = res.closed['1'] ?? {};
  const base = c50[NODE_BASE] ?? [];
  const lines = [
    BEGIN,
    `Last full run: ${m.date.replace('T', ' ').slice(0, 16)} UTC, ${m.nproc} shared cores (${m.cpuModel}), Node ${m.node}, ${m.rustc.split(' (')[0]}, command`,
    `\`${m.command}\`. Medians of ${m.rounds} rounds (ratios: median of the per-round ratios, with the rounds' range):`,
    '',
    '| closed circuit, 50 in flight | req/s | client CPU per request | of which JS thread | req/s vs opossum + node-fetch |',
    '|---|---|---|---|---|',
  ];
  for (const [key, label] of CLOSED_ROWS) {
    const rounds = c50[key];
    if (!rounds) continue;
    const cells = [fmtRate(med(rounds, 'rps')), `${fmtUs(med(rounds, 'cpuPerReqUs'))} µs`, js(rounds, fmtUs), key === NODE_BASE ? '1.00x' : x(ratio(rounds, base, 'rps'))];
    lines.push(`| ${label} | ${(key === SUBJECT ? cells.map((c) => `**${c}**`) : cells).join(' | ')} |`);
  }
  const open = res.open ?? {};
  lines.push('', '| open circuit | fallback calls/s | CPU per call | of which JS thread |', '|---|---|---|---|');
  for (const [key, label] of [['opossum (open)', 'opossum (open)'], [`${SUBJECT} (open)`, '**dnastore-breaker (open)**']]) {
    if (!open[key]) continue;
    const cells = [fmtRate(med(open[key], 'rps')), `${med(open[key], 'cpuPerReqUs').toFixed(2)} µs`, js(open[key], (v) => v.toFixed(2))];
    lines.push(`| ${label} | ${(key === 'opossum (open)' ? cells : cells.map((c) => `**${c}**`)).join(' | ')} |`);
  }
  const one = (key) => {
    const r = c1[key] ?? [];
    return `${fmtRate(med(r, 'rps'))} req/s (p50 ${fmtUs(med(r, 'p50Us'))} µs, ${fmtUs(med(r, 'cpuPerReqUs'))} µs CPU)`;
  };
  lines.push(
    '',
    `One call in flight: dnastore-breaker ${one(SUBJECT)}; opossum + undici ${one('opossum+undici')}; opossum +`,
    `node-fetch ${one(NODE_BASE)}.`,
    '',
    targets(res).text.replaceAll('**MISSED**', 'missed'),
    END,
  );
  return lines.join('\n');
}

/** Rewrites the marked block of docs/performance.md; returns false when the markers are missing. */
function updateReadme(res, file = path.join(__dirname, '..', 'docs', 'performance.md')) {
  const text = fs.readFileSync(file, 'utf8');
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  if (a < 0 || b < a) return false;
  fs.writeFileSync(file, text.slice(0, a) + section(res) + text.slice(b + END.length));
  return true;
}

module.exports = { section, updateReadme, BEGIN, END };
