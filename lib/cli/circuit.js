'use strict';

// `dnastore-breaker circuit`: the fleet circuit's state and manual control, for breaker N
// on the fleet's Redis (`fleetCircuit: 'on'`). A command is a signed record every replica
// of the name follows (the core's fleet/force.rs); the binding's `fleetCircuit` runs it.

const os = require('node:os');
const native = require('../native');
const { Failure, UsageError, parse, readEnv, printable } = require('./io');

const usage = 'Usage: dnastore-breaker circuit <status|open|close|disable|enable> [--name N] --redis URL [-f|--env-file F] [--json]';

const help = `${usage}

The fleet circuit of breaker N: the circuit state its replicas share through Redis, and
manual control of it.

Commands:
  status     the state Redis holds for breaker N, the latest command, replicas seen
  open       force the circuit open fleet-wide (e.g. for DNAStore's maintenance window):
             fallbacks served, durable writes queued, no trial until close or enable
  close      close it fleet-wide (the rolling windows cleared)
  disable    let every call through, whatever the failures (outcomes still counted)
  enable     back to automatic operation

Replicas run with fleetCircuit: 'on' and follow a command within a second (at once
through Redis's channel, or at their next heartbeat). Give the service's signing secret
(DNASTORE_LKG_SECRET or SPIRAL_EVENT_SECRET, in the environment or --env-file): replicas
refuse a command it did not sign.

Options:
  --name N        the breaker's name (otherwise DNASTORE_BREAKER_NAME, or 'dnastore')
  --redis URL     the fleet's Redis (every form redisUrl takes)
  -f, --env-file F
                  read the variables from F instead of the environment
  --json          one JSON document on stdout, for scripts
  -h, --help      this help

Exit status: 0 done; 1 failed or not available; 2 bad command line.`;

const OPERATIONS = ['status', 'open', 'close', 'disable', 'enable'];

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
  let st;
  try {
    st = await native.fleetCircuit(options, vars, op, `cli:${os.hostname()}`);
  } catch (err) {
    const changed = op === 'status' ? {} : { operation: op, changed: false };
    throw new Failure(`${op === 'status' ? 'could not read' : `circuit ${op} failed, nothing was changed`}: ${err.message}`, { name, redis, ...changed });
  }
  const doc = { ok: true, ...(op === 'status' ? {} : { operation: op }), ...st };
  if (values.json) {
    io.out(JSON.stringify(doc));
    return 0;
  }
  if (op !== 'status') io.out(`circuit ${op}: sent to every replica of breaker ${printable(name)} at ${st.redis}`);
  io.out(`breaker ${printable(name)} at ${st.redis}: ${st.state}`);
  if (st.generation != null) io.out(`  fleet state generation ${st.generation}${st.trippedBy ? `, opened by ${printable(st.trippedBy)}` : ''}`);
  if (st.command != null) io.out(`  latest command: ${st.command} by ${printable(st.commandBy)} at ${new Date(st.commandAtMs).toISOString()}`);
  io.out(`  replicas seen: ${st.replicas}`);
  if (!st.signed) io.out('  unsigned: no signing secret given (replicas with one refuse unsigned commands)');
  if (st.refused != null) io.out(`  Redis holds a record that does not verify (${st.refused}): forged, another secret, or garbled`);
  return 0;
}

module.exports = { run, usage, help };
