'use strict';

// What every command shares: its failures (exit 1) and usage errors (exit 2), reading the
// environment or an --env-file, and printing (aligned tables for people, one JSON document
// for scripts). Nothing here knows a command.

const fs = require('node:fs');
const util = require('node:util');
const { pickEnv } = require('../env-vars');

/** A bad command line: exit status 2, with the command's usage. */
class UsageError extends Error {}

/** A failed check or operation: exit status 1. `detail` goes into the --json document. */
class Failure extends Error {
  constructor(message, detail = {}) {
    super(message);
    this.detail = detail;
  }
}

/**
 * Parses `args` for a command: `options` as util.parseArgs takes them (every command also
 * takes --help and --json). Unknown options, missing values and stray arguments are
 * usage errors.
 */
function parse(args, options, { positionals = 0 } = {}) {
  let parsed;
  try {
    parsed = util.parseArgs({
      args,
      options: { help: { type: 'boolean', short: 'h' }, json: { type: 'boolean' }, ...options },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    // Node's own wording, without its advice about positional arguments.
    throw new UsageError(err.message.split('\n')[0].replace(/\. To specify a positional argument.*$/, ''));
  }
  const { values, positionals: rest } = parsed;
  if (!values.help && rest.length > positionals) throw new UsageError(`unexpected argument ${JSON.stringify(rest[positionals])}`);
  return { values, positionals: rest };
}

/** An integer option's value, within [min, max]. */
function integer(values, name, min, max, fallback) {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  return n;
}

/**
 * The variables the core reads, from `file` (.env syntax, read by Node's own parser:
 * comments, quotes, multi-line values, `export`; nothing else) or else from the process
 * environment. With a file the environment is not read, so what is checked is the file.
 * `origin` says which, for the SOURCE column.
 */
function readEnv(file) {
  if (file === undefined) return { vars: pickEnv(process.env), origin: { kind: 'env' } };
  if (typeof util.parseEnv !== 'function') throw new Failure(`--env-file needs Node.js 20.12 or later (util.parseEnv); this is ${process.version}`);
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new Failure(`cannot read the env file ${file}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
  }
  return { vars: pickEnv(util.parseEnv(text)), origin: { kind: 'file', path: file } };
}

const ESCAPES = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * Stored text (a URL, DNAStore's answer) as one line that cannot drive the terminal: control
 * characters (escape sequences, CR, LF, C1 controls, line separators) shown escaped.
 */
function printable(text, max = Infinity) {
  const s = String(text);
  const cut = s.length > max ? `${s.slice(0, max)}...` : s;
  // eslint-disable-next-line no-control-regex
  return cut.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Rows of cells as aligned columns, headers in capitals. */
function table(headers, rows) {
  const cells = [headers.map((h) => h.toUpperCase()), ...rows.map((r) => r.map((c) => (c == null ? '-' : String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd()).join('\n');
}

/** 95 s -> "1m 35s"; null -> "-". */
function duration(ms) {
  if (ms == null) return '-';
  let s = Math.round(ms / 1000);
  if (s < 60) return ms < 1000 ? `${Math.round(ms)}ms` : `${s}s`;
  const parts = [];
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]]) {
    if (s >= size || (unit === 's' && parts.length === 0)) {
      parts.push(`${Math.floor(s / size)}${unit}`);
      s %= size;
    }
    if (parts.length === 2) break;
  }
  return parts.join(' ');
}

/** 1536 -> "1.5 KiB". */
function bytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = -1;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u += 1;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

/** Epoch ms as an ISO time (UTC). */
function when(ms) {
  return ms ? new Date(ms).toISOString() : '-';
}

/** Where output goes: `out` for results, `err` for messages (tests pass their own). */
const stdio = {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
};

module.exports = { UsageError, Failure, parse, integer, readEnv, printable, table, duration, bytes, when, stdio };
