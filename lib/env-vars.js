'use strict';

// The variables the core reads from an environment: DNASTORE_*, the service's signing
// secret's other name, and the proxy variables `proxy: 'env'` reads. createBreaker()
// passes them explicitly (Jest and worker threads give JS its own process.env copy); the
// operator CLI passes those of the environment or of an --env-file the same way.

const EXTRA_ENV = ['SPIRAL_EVENT_SECRET', 'HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy'];

/** The string values of `env` the core reads. Reads `env` by its own keys (may throw). */
function pickEnv(env) {
  const out = {};
  for (const k of Object.keys(env)) {
    if (!k.startsWith('DNASTORE_') && !EXTRA_ENV.includes(k)) continue;
    const v = env[k];
    if (typeof v === 'string') out[k] = v;
  }
  return out;
}

module.exports = { pickEnv, EXTRA_ENV };
