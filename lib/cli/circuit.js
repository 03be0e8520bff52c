'use strict';

// `dnastore-breaker circuit`: the fleet circuit's state and manual control, for breaker N
// on the fleet's Redis. The fleet circuit (issue 28: `fleetCircuit: 'on'`) is in the
// library, but this command cannot read it yet, and manual control (issue 30) is not in
// this version: `status` says where the state is shown instead (each replica's
// `stats().fleet` and the `dnastore_fleet_*` metrics), and the controls say what they need.
// Wiring them is this file only: give `fleetCircuit` below the binding's handle and each
// operation its call.

const native = require('../native');
const { Failure, UsageError, parse, readEnv, printable } = require('./io');

const usage = 'Usage: dnastore-breaker circuit <status|open|close|disable|enable> [--name N] --redis URL [-f|--env-file F] [--json]';

const help = `${usage}

The fleet circuit of breaker N: the circuit state its replicas share through Redis, and
manual control of it.

Commands:
  status     the state Redis holds for breaker N
  open       force the circuit open fleet-wide (e.g. for DNAStore's maintenance window)
  close      force it closed
  disable    let every call through, whatever the failures
  enable     back to automatic operation

This command cannot read the fleet circuit (fleetCircuit: 'on') yet: status says where
its state is shown (each replica's stats().fleet, the dnastore_fleet_state metric) and
exits 1. Manual control (issue 30) is not in this version: the other commands refuse
(exit 1) and change nothing.

Options:
  --name N        the breaker's name (otherwise DNASTORE_BREAKER_NAME, or 'dnastore')
  --redis URL     the fleet's Redis (every form redisUrl takes)
  -f, --env-file F
                  read the variables from F instead of the environment
  --json          one JSON document on stdout, for scripts
  -h, --help      this help

Exit status: 0 done; 1 failed or not available; 2 bad command line.`;

const OPERATIONS = ['status', 'open', 'close', 'disable', 'enable'];

/** The binding's fleet circuit, when this version has one (issue 28). */
const fleetCircuit = null;

async function run(args, io) {
  const { values, positionals } = parse(args, { name: { type: 'string' }, redis: { type: 'string' }, 'env-file': { type: 'string', short: 'f' } }, { positionals: 1 });
  if (values.help) {
    io.out(help);
    return 0;
  }
  const [op] = positionals;
  if (op === undefined) throw new UsageError(`which operation? ${OPERATIONS.join(', ')}`);
  if (!OPERATIONS.includes(op)) throw new UsageError(`unknown operation ${JSON.stringify(op)}`);
  if (values.redis === undefined) throw new UsageError('--redis URL is required: the fleet circuit lives in Redis');
  // The name and the URL checked as createBreaker checks them (the table's redisUrl).
  const { vars, origin } = readEnv(values['env-file']);
  const options = { redisUrl: values.redis, ...(values.name === undefined ? {} : { name: values.name }) };
  const r = native.effectiveConfig(options, vars);
  if (r.error) {
    const flag = { redisUrl: ' (given by --redis)', name: ' (given by --name)' }[r.error.key] ?? '';
    throw new Failure(`invalid configuration${origin.kind === 'file' ? ` (in ${origin.path})` : ''}: ${r.error.message}${flag}`, { key: r.error.key });
  }
  const name = r.settings.find((s) => s.option === 'name').value;
  const redis = r.settings.find((s) => s.option === 'redisUrl').value;
  if (fleetCircuit === null) {
    if (op === 'status') {
      const message = `the fleet circuit state of breaker ${printable(name)} at ${redis} cannot be read by this command yet: with fleetCircuit: 'on' each replica shows it in stats().fleet and the dnastore_fleet_state metric (each replica's own circuit: dnastore_circuit_state); nothing was read`;
      throw new Failure(message, { name, redis, state: null });
    }
    throw new Failure(`circuit ${op} needs manual control of the fleet circuit (issue 30), which this version of dnastore-breaker does not have: nothing was changed`, { name, redis, operation: op });
  }
  return 0;
}

module.exports = { run, usage, help };
