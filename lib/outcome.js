'use strict';

// Native outcomes and errors -> the public result shapes and coded errors. Shared by the
// facade (index.js) and the internal test entry (lib/testing.js), so there is one mapping.

const native = require('./native');
const { invalid } = require('./request');

const FALLBACK_ERROR = 'DNAStore unavailable';
// The core's codes: anything else that reaches the facade is not ours.
const CODES = new Set(native.errorCodes());
const { OutcomeKind } = native;
// napi-rs's argument-type statuses: the caller passed a value of the wrong type.
const ARGUMENT_STATUSES = new Set(['InvalidArg', 'ObjectExpected', 'StringExpected', 'NameExpected', 'FunctionExpected', 'NumberExpected', 'BooleanExpected', 'ArrayExpected', 'BigintExpected', 'DateExpected', 'ArrayBufferExpected']);
function codedError(code, message, extra) {
  const err = new Error(message);
  err.code = code;
  return extra ? Object.assign(err, extra) : err;
}

// What the binding threw -> a coded error. Ours carry a code from the core's list; napi's
// own argument errors carry a Status name; anything else (a panic caught at the boundary is
// GenericFailure) is a bug of ours: EINTERNAL.
function fromNative(err) {
  const code = err !== null && typeof err === 'object' ? err.code : undefined;
  if (CODES.has(code)) return err;
  if (ARGUMENT_STATUSES.has(code)) return invalid(String(err.message));
  return codedError('EINTERNAL', `internal error in dnastore-breaker: ${describe(err)}`);
}

// Whatever the caller's own code threw while fire() read its arguments (a getter, an
// iterator, a toString): EINVALID, with the thrown value as the cause. Any value can be
// thrown, null and undefined included.
function fromCaller(err) {
  if (err !== null && typeof err === 'object' && err.code === 'EINVALID') return err;
  const e = invalid(`reading fire()'s arguments threw: ${describe(err)}`);
  e.cause = err;
  return e;
}

function describe(v) {
  try {
    if (v !== null && typeof v === 'object' && typeof v.message === 'string') return v.message;
    return String(v);
  } catch {
    return Object.prototype.toString.call(v);
  }
}

function parseBody(r) {
  if (r.body === undefined) return null;
  return r.json ? JSON.parse(r.body) : r.body;
}

// Native outcome -> public result. A JSON success arrives as a bare string.
function settle(r, onFallback) {
  if (typeof r === 'string') return JSON.parse(r);
  switch (r.kind) {
    case OutcomeKind.Response: {
      const data = parseBody(r);
      return r.headers ? { status: r.status, headers: r.headers, data } : data;
    }
    case OutcomeKind.Fallback:
      return onFallback({ code: r.code, source: r.source, data: parseBody(r), ageMs: r.ageMs });
    case OutcomeKind.Rejection: {
      const extra = r.status === undefined ? undefined : { status: r.status, body: r.body };
      throw codedError(r.code, r.message, extra);
    }
    case OutcomeKind.Queued:
      // Stored durably before this resolves; delivered later with the same Idempotency-Key.
      return { queued: true, fallback: true, id: r.id, idempotencyKey: r.idempotencyKey, code: r.code, data: null, error: FALLBACK_ERROR, source: 'outbox' };
    default:
      throw codedError('EINTERNAL', `internal error in dnastore-breaker: unknown outcome kind ${r.kind}`);
  }
}

module.exports = { FALLBACK_ERROR, codedError, fromNative, fromCaller, describe, settle };
