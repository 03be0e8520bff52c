'use strict';

// `dnastore-breaker outbox drain`: delivers a queue now, as `breaker.outbox.drain()` does,
// with a breaker of its own made by createBreaker() from the environment (or --env-file):
// delivery needs what the service's breaker has (timeouts, retries, TLS material, proxy,
// the signing secret). Before anything is sent it checks, read-only, that the store reads
// and that its oldest writes verify with this secret: with another secret every write
// would be dead-lettered as tampered. An embedded store held by a running process is
// refused (createBreaker cannot open it): that process delivers it already.

const { Failure, printable } = require('./io');

async function drain({ options, vars, origin, open, values, io, timeoutMs }) {
  const admin = open({ options, vars, origin });
  let before;
  let bad;
  const { name, kind, location } = admin;
  try {
    before = await admin.stats();
    bad = await admin.unverified();
  } catch (err) {
    throw new Failure(err.message);
  } finally {
    admin.close();
  }
  if (bad) throw new Failure(`${bad}. Nothing was sent.`, { sent: 0 });
  const doc = { ok: true, name, store: kind, location, queuedBefore: before.entries, delivered: 0, deadLetteredCount: 0, deadLettered: [], queued: before.entries, stopped: null };
  const say = (text) => (values.json ? io.err(text) : io.out(text));
  if (before.entries === 0) {
    if (values.json) io.out(JSON.stringify({ ...doc, stopped: 'empty' }));
    else io.out(`Outbox of breaker ${printable(name)} (${location}): nothing queued`);
    return 0;
  }

  // The core's messages (delivery started, paused, drained) as progress lines.
  const logger = { info: (_f, m) => say(m), warn: (_f, m) => say(m), error: (_f, m) => say(m) };
  // A fleet's drain queues nothing, so it needs no spill file (docs/outbox.md, the spill): none
  // is created in the operator's directory.
  const store = kind === 'redis' ? { outboxRedisUrl: options.outboxRedisUrl ?? vars.DNASTORE_OUTBOX_REDIS_URL, outboxSpill: false } : { outboxDir: options.outboxDir };
  let breaker;
  try {
    // Required here: loading the facade is for drain only.
    const { createBreaker } = require('../../index');
    breaker = createBreaker({ ...(options.name === undefined ? {} : { name: options.name }), ...store, outbox: 'on', env: vars, logger });
  } catch (err) {
    const held = /in use by another process/.test(err.message);
    throw new Failure(
      held
        ? `${location} is held by a running process, which delivers its queue itself (breaker.outbox.drain() there waits for it); or stop that process and run this again. Nothing was sent.`
        : `cannot drain: ${err.message}`,
    );
  }
  let lastFailure = null;
  breaker.on('deadLetter', (d) => doc.deadLettered.push({ id: d.id, reason: d.reason, status: d.status ?? null }));
  breaker.on('failure', (f) => (lastFailure = f.code));

  let timer;
  let onSignal;
  const stopped = await Promise.race([
    breaker.outbox.drain().then(() => 'drained'),
    new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs, 'timeout'))),
    new Promise((resolve) => {
      onSignal = () => resolve('interrupted');
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
    }),
  ]);
  clearTimeout(timer);
  process.removeListener('SIGINT', onSignal);
  process.removeListener('SIGTERM', onSignal);
  // This process's counts; what is left is read again from the store once it is released
  // (the fleet's count in `stats()` may be a second old).
  ({ delivered: doc.delivered, deadLettered: doc.deadLetteredCount } = breaker.outbox.stats());
  const circuit = breaker.state;
  breaker.shutdown();
  const after = open({ options, vars, origin });
  try {
    doc.queued = (await after.stats()).entries;
  } catch (err) {
    throw new Failure(`drained ${doc.delivered} write(s), then could not read the store: ${err.message}`);
  } finally {
    after.close();
  }
  doc.stopped = doc.queued === 0 ? 'empty' : stopped === 'drained' ? 'circuit open' : stopped;
  if (doc.queued > 0) {
    const why = {
      'circuit open': `the circuit opened (${circuit}; last failure ${lastFailure ?? 'unknown'}): DNAStore is failing`,
      timeout: `--timeout-ms ${timeoutMs} passed`,
      interrupted: 'interrupted',
    }[doc.stopped];
    const message = `stopped with ${doc.queued} write(s) still queued: ${why}. They stay in the store; run this again later.`;
    doc.ok = false;
    if (values.json) io.out(JSON.stringify({ ...doc, error: { message } }));
    else report(io, doc);
    throw new Failure(message, { reported: true });
  }
  if (values.json) io.out(JSON.stringify(doc));
  else report(io, doc);
  return 0;
}

function report(io, doc) {
  io.out(`Outbox of breaker ${printable(doc.name)} (${doc.location}): ${doc.delivered} delivered, ${doc.deadLetteredCount} dead-lettered, ${doc.queued} still queued`);
  for (const d of doc.deadLettered) io.out(`  dead letter ${d.id}: ${d.reason}${d.status ? ` (status ${d.status})` : ''}`);
}

module.exports = { drain };
