'use strict';

// Adapts fetch-style `init` values to the flat shapes the binding takes. Only type
// shaping: URL resolution, method and header validation happen in the Rust core.

function invalid(message) {
  const err = new TypeError(message);
  err.code = 'EINVALID';
  return err;
}

// Plain object, Headers, Map or [[name, value]] -> [name, value, name, value, ...]
function flattenHeaders(headers) {
  if (headers === undefined || headers === null) return undefined;
  const flat = [];
  const push = (k, v) => {
    if (v === undefined) return;
    flat.push(String(k), String(v));
  };
  if (typeof headers[Symbol.iterator] === 'function') {
    for (const pair of headers) {
      if (!Array.isArray(pair) || pair.length !== 2) throw invalid('init.headers entries must be [name, value] pairs');
      push(pair[0], pair[1]);
    }
  } else if (typeof headers === 'object') {
    for (const k of Object.keys(headers)) push(k, headers[k]);
  } else {
    throw invalid(`init.headers must be an object, Headers, Map or array of pairs, got ${typeof headers}`);
  }
  return flat;
}

function checkBody(body) {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string' || body instanceof Uint8Array) return body;
  throw invalid(`init.body must be a string, Buffer or Uint8Array, got ${typeof body}; JSON.stringify objects first`);
}

function checkOptional(name, value, type) {
  if (value !== undefined && value !== null && typeof value !== type) {
    throw invalid(`init.${name} must be a ${type}, got ${typeof value}`);
  }
  return value ?? undefined;
}

function checkUrl(url) {
  if (typeof url === 'string') return url;
  if (url instanceof URL) return url.href;
  throw invalid(`url must be a string or URL, got ${url === null ? 'null' : typeof url}`);
}

module.exports = { flattenHeaders, checkBody, checkOptional, checkUrl, invalid };
