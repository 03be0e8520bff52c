'use strict';

// `dnastore-breaker config`: the effective configuration of a breaker, each value with
// where it came from, validated by the core exactly as createBreaker() validates it
// (binding: effectiveConfig, core: config/effective.rs). Exit 1 names the bad variable
// with createBreaker's own message.

const native = require('../native');
const { Failure, parse, readEnv, printable, table } = require('./io');

const usage = 'Usage: dnastore-breaker config [--name N] [-f|--env-file F] [--json]';

const help = `${usage}

Prints the configuration a breaker would run with: every option, its environment
variable, its effective value and its source (default, env, file, or --name), checked
exactly as createBreaker() checks it. Exit status 1 names the first bad variable with
createBreaker's message; 0 means createBreaker would accept it.

Secrets are never printed: the signing secret and private key text show as redacted,
and credentials in Redis, proxy and base URLs as ***.

Options:
  --name N        the breaker's name (otherwise DNASTORE_BREAKER_NAME, or 'dnastore')
  -f, --env-file F
                  read the variables from F (.env syntax: comments, quotes, export)
                  instead of the environment, e.g. to check a new .env before a deploy
                  (Node itself exits with status 9 when an --env-file F is missing,
                  nodejs/node#54232; -f F reports it as this command's failure)
  --json          one JSON document on stdout, for scripts
  -h, --help      this help`;

function shown(s) {
  const v = s.value ?? null;
  if (v === null) return '(none)';
  if (Array.isArray(v)) return v.length ? v.join(',') : '(none)';
  if (typeof v === 'number' && s.unit) return `${v} ${s.unit}`;
  return printable(v);
}

function run(args, io) {
  const { values } = parse(args, { name: { type: 'string' }, 'env-file': { type: 'string', short: 'f' } });
  if (values.help) {
    io.out(help);
    return 0;
  }
  const { vars, origin } = readEnv(values['env-file']);
  const options = values.name === undefined ? {} : { name: values.name };
  const r = native.effectiveConfig(options, vars);
  const inFile = origin.kind === 'file' ? ` (in ${origin.path})` : '';
  if (r.error) {
    const key = r.error.key === 'name' && values.name !== undefined ? '--name' : r.error.key;
    throw new Failure(`invalid configuration${inFile}: ${r.error.message}`, { key });
  }
  // Variables nobody reads: most often a typo that leaves the default in force.
  const known = new Set(native.effectiveConfig({}, {}).settings.flatMap((s) => s.env));
  const unknown = Object.keys(vars).filter((k) => k.startsWith('DNASTORE_') && !known.has(k));
  const source = (s) => {
    if (s.source === 'option') return `--${s.from}`;
    if (s.source === 'env') return origin.kind === 'file' ? 'file' : 'env';
    return 'default';
  };
  const name = r.settings.find((s) => s.option === 'name').value;
  if (values.json) {
    io.out(
      JSON.stringify({
        ok: true,
        name,
        from: origin.kind === 'file' ? { file: origin.path } : { env: true },
        settings: r.settings.map((s) => ({
          option: s.option ?? null,
          env: s.env,
          value: s.value ?? null,
          unit: s.unit ?? null,
          source: source(s).replace(/^--.*/, 'option'),
          from: s.from ?? null,
          redacted: s.redacted,
        })),
        unknown,
      }),
    );
    return 0;
  }
  io.out(`Breaker ${printable(name)}: configuration from ${origin.kind === 'file' ? `the file ${origin.path}` : 'the environment'} and the defaults (valid)\n`);
  io.out(
    table(
      ['option', 'variable', 'value', 'source'],
      r.settings.map((s) => [s.option ?? '(env only)', s.from && s.source === 'env' ? s.from : s.env[0], shown(s), source(s)]),
    ),
  );
  for (const k of unknown) io.err(`warning: ${k}${inFile} is not a variable dnastore-breaker reads (a typo?): it has no effect`);
  return 0;
}

module.exports = { run, usage, help };
