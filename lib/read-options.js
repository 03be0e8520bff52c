'use strict';

// The caller's options object, read once into plain data before anything else looks at it.
// Options are the caller's objects: a getter or a Proxy trap may throw anything (null and
// undefined included). Thrown from createBreaker() or `new CircuitBreaker()` as it was, it
// was an error without a code; here it is ECONFIG naming the option, with the thrown value
// as `cause`, as fire() makes such a throw EINVALID (lib/outcome.js, fromCaller). Read as an
// object spread reads (own enumerable keys, symbols included: ownKeys, then each key's
// descriptor, then its value); arrays are copied too, since the core reads header lists
// element by element. Nothing reads the caller's object after this.

const { describe } = require('./outcome');

// `makeError(message)`: the caller's ECONFIG error (createBreaker's Error, CircuitBreaker's
// TypeError).
function readOptions(options, makeError) {
  let keys;
  try {
    keys = Reflect.ownKeys(options);
  } catch (err) {
    throw threw(makeError, 'reading the options object threw', err);
  }
  const out = {};
  for (const k of keys) {
    try {
      if (!Object.prototype.propertyIsEnumerable.call(options, k)) continue;
      const v = options[k];
      out[k] = Array.isArray(v) ? Array.from(v) : v;
    } catch (err) {
      throw threw(makeError, `invalid option \`${String(k)}\`: reading it threw`, err);
    }
  }
  return out;
}

function threw(makeError, what, err) {
  const e = makeError(`${what}: ${describe(err)}`);
  e.cause = err;
  return e;
}

module.exports = { readOptions, threw };
