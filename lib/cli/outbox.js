'use strict';

// `dnastore-breaker outbox`: the durable outbox's operations without writing code, on the
// same store and through the same core code as `breaker.outbox` (binding:
// NativeOutboxAdmin, core: outbox/admin.rs). stats, list and dead read an embedded store
// read-only, without its lock, so they work while a service holds it; retry and discard
// change it only when no process holds it (refused otherwise, saying what to do instead).
// The fleet's store (--redis) is read and changed through Redis. drain delivers the queue
// with a breaker of its own (createBreaker, as a service would).

const native = require('../native');
const { Failure, UsageError, parse, integer, readEnv, printable, table, duration, bytes, when } = require('./io');
const { drain } = require('./outbox-drain');

const usage = 'Usage: dnastore-breaker outbox <stats|list|dead|retry <id>|discard <id>|drain> [--name N] [--dir D | --redis URL] [-f|--env-file F] [--json]';

const help = `${usage}

The durable outbox of breaker N: its embedded SQLite store in directory D, or the fleet's
Redis Streams store at URL. Without --dir or --redis, the store the breaker's
configuration names (DNASTORE_OUTBOX_REDIS_URL, else DNASTORE_OUTBOX_DIR, else
.dnastore-outbox).

Commands:
  stats          queued writes, bytes, oldest age, dead letters (and, for the fleet,
                 writes being delivered now)
  list           queued writes, oldest first
  dead           dead letters: writes DNAStore refused (with its status and answer),
                 that expired, or whose signature failed
  retry <id>     put a dead letter back at the end of the queue
  discard <id>   remove a queued write or a dead letter for good
  drain          deliver the queue now, with a breaker configured from the environment
                 (or --env-file) as the service's would be; stops when the queue is empty
                 or the circuit opens

stats, list and dead work while a service holds an embedded store (read-only, without its
lock). retry, discard and drain change it: while a process holds it they refuse (exit 1)
and say what to do instead. Through Redis every command works while replicas run.

Options:
  --name N          the breaker's name (otherwise DNASTORE_BREAKER_NAME, or 'dnastore')
  --dir D           the embedded store's directory (the service's outboxDir)
  --redis URL       the fleet's Redis (the service's outboxRedisUrl)
  -f, --env-file F  read the variables from F instead of the environment (Redis
                    timeouts and CA file, the signing secret, drain's whole configuration)
  --limit N         list and dead: at most N rows (1-10000, default 100)
  --bodies          list and dead: also print each write's headers and body (header
                    values other than content-type and idempotency-key show as ***)
  --timeout-ms N    drain: give up after N ms (default 600000)
  --json            one JSON document on stdout, for scripts
  -h, --help        this help

Exit status: 0 done; 1 failed (store unreadable, id not found, refused, writes left
after a drain); 2 bad command line.`;

/** The options and variables that name the store, as createBreaker would read them. */
function target(values) {
  if (values.dir !== undefined && values.redis !== undefined) throw new UsageError('give --dir or --redis, not both');
  const { vars, origin } = readEnv(values['env-file']);
  const options = {};
  if (values.name !== undefined) options.name = values.name;
  if (values.redis !== undefined) options.outboxRedisUrl = values.redis;
  if (values.dir !== undefined) {
    options.outboxDir = values.dir;
    // The directory asked for, even if the environment names a fleet's Redis.
    delete vars.DNASTORE_OUTBOX_REDIS_URL;
  }
  return { options, vars, origin };
}

const FLAGS = { name: '--name', outboxDir: '--dir', outboxRedisUrl: '--redis' };

/** The admin handle, or a Failure with createBreaker's configuration message. */
function open({ options, vars, origin }) {
  try {
    return new native.NativeOutboxAdmin(options, vars);
  } catch (err) {
    const flag = Object.entries(FLAGS).find(([o]) => err.message.includes(`option \`${o}\``));
    const inFile = origin.kind === 'file' ? ` (in ${origin.path})` : '';
    throw new Failure(`invalid configuration${inFile}: ${err.message}${flag ? ` (given by ${flag[1]})` : ''}`);
  }
}

/** Runs `f(admin)`; a rejection (store unreadable, refused) is a Failure with its message. */
async function withAdmin(t, f) {
  const admin = open(t);
  try {
    return await f(admin);
  } catch (err) {
    if (err instanceof Failure || err instanceof UsageError) throw err;
    throw new Failure(err.message);
  } finally {
    admin.close();
  }
}

/** A body as text if it is UTF-8, else base64. */
function body(buf) {
  try {
    return { body: new TextDecoder('utf-8', { fatal: true }).decode(buf), bodyEncoding: 'utf8' };
  } catch {
    return { body: buf.toString('base64'), bodyEncoding: 'base64' };
  }
}

function withContent(row, content) {
  return content ? { ...row, headers: content.headers, ...body(content.body) } : row;
}

function printContent(io, content) {
  if (!content) return;
  for (const [k, v] of content.headers) io.out(`    ${k}: ${printable(v)}`);
  const b = body(content.body);
  io.out(`    body (${b.bodyEncoding}): ${b.bodyEncoding === 'utf8' ? JSON.stringify(b.body) : b.body}`);
}

/** A table's lines, each row followed by its write's headers and body when shown. */
function printRows(io, text, rows) {
  const lines = text.split('\n');
  io.out(lines[0]);
  rows.forEach((r, i) => {
    io.out(lines[i + 1]);
    printContent(io, r.content);
  });
}

const COMMANDS = {
  async stats(admin, { values, io, name }) {
    const s = await admin.stats();
    const doc = { ok: true, name, store: admin.kind, location: admin.location, ...s, inFlight: s.inFlight ?? null, oldestAgeMs: s.oldestAgeMs ?? null };
    if (values.json) return io.out(JSON.stringify(doc));
    io.out(`Outbox of breaker ${printable(name)}: ${admin.location} (${admin.kind})\n`);
    io.out(
      table(
        ['', ''],
        [
          ['queued writes', s.entries],
          ['bytes', `${bytes(s.bytes)} (${s.bytes})`],
          ['oldest', s.oldestAgeMs == null ? '-' : `${duration(s.oldestAgeMs)} ago`],
          ['dead letters', s.deadLetters],
          ['being delivered', s.inFlight ?? '- (known only to the process that holds the store)'],
        ],
      )
        .split('\n')
        .slice(1)
        .join('\n'),
    );
  },

  async list(admin, { values, io, name, limit, bodies }) {
    const rows = await admin.list(limit, bodies);
    if (values.json) return io.out(JSON.stringify({ ok: true, name, store: admin.kind, location: admin.location, writes: rows.map((r) => withContent(r.entry, r.content)) }));
    io.out(`${rows.length} queued write(s) of breaker ${printable(name)} (oldest first): ${admin.location}\n`);
    const now = Date.now();
    const fleet = admin.kind === 'redis';
    const head = ['id', 'method', 'url', 'attempts', 'age', 'next attempt', 'last error', ...(fleet ? ['delivering'] : [])];
    const line = (e) => [
      e.id,
      e.method,
      printable(e.url, 80),
      e.attempts,
      duration(now - e.createdAt),
      e.nextAttemptAt > now ? `in ${duration(e.nextAttemptAt - now)}` : 'due',
      e.lastError ?? '-',
      ...(fleet ? [e.delivering ? 'yes' : 'no'] : []),
    ];
    printRows(io, table(head, rows.map((r) => line(r.entry))), rows);
  },

  async dead(admin, { values, io, name, limit, bodies }) {
    const rows = await admin.deadLetters(limit, bodies);
    if (values.json) return io.out(JSON.stringify({ ok: true, name, store: admin.kind, location: admin.location, deadLetters: rows.map((r) => withContent(r.deadLetter, r.content)) }));
    io.out(`${rows.length} dead letter(s) of breaker ${printable(name)} (oldest first): ${admin.location}\n`);
    const head = ['id', 'method', 'url', 'reason', 'status', 'attempts', 'died at', 'answer'];
    const line = (d) => [d.id, d.method, printable(d.url, 80), d.reason, d.status ?? '-', d.attempts, when(d.diedAt), d.answer == null ? '-' : printable(d.answer, 60)];
    printRows(io, table(head, rows.map((r) => line(r.deadLetter))), rows);
  },

  async retry(admin, { values, io, id }) {
    const done = await admin.retry(id);
    if (!done) throw new Failure(`no dead letter with id ${printable(id)} in ${admin.location}`, { id, retried: false });
    if (values.json) return io.out(JSON.stringify({ ok: true, id, retried: true }));
    io.out(`dead letter ${id} is back at the end of the queue (attempts from zero, its age from now)`);
  },

  async discard(admin, { values, io, id }) {
    const done = await admin.discard(id);
    if (!done) throw new Failure(`no queued write or dead letter with id ${printable(id)} in ${admin.location}`, { id, discarded: false });
    if (values.json) return io.out(JSON.stringify({ ok: true, id, discarded: true }));
    io.out(`write ${id} is discarded: it will never be sent`);
  },
};

async function run(args, io) {
  const { values, positionals } = parse(
    args,
    {
      name: { type: 'string' },
      dir: { type: 'string' },
      redis: { type: 'string' },
      'env-file': { type: 'string', short: 'f' },
      limit: { type: 'string' },
      bodies: { type: 'boolean' },
      'timeout-ms': { type: 'string' },
    },
    { positionals: 2 },
  );
  const [sub, id] = positionals;
  if (values.help) {
    io.out(help);
    return 0;
  }
  if (sub === undefined) throw new UsageError('which operation? stats, list, dead, retry <id>, discard <id> or drain');
  if (!Object.hasOwn(COMMANDS, sub) && sub !== 'drain') throw new UsageError(`unknown operation ${JSON.stringify(sub)}`);
  const needsId = sub === 'retry' || sub === 'discard';
  if (needsId && (id === undefined || id === '')) throw new UsageError(`${sub} needs the write's id (from list or dead)`);
  if (!needsId && id !== undefined) throw new UsageError(`unexpected argument ${JSON.stringify(id)}`);
  if ((values.limit !== undefined || values.bodies) && sub !== 'list' && sub !== 'dead') throw new UsageError('--limit and --bodies are for list and dead');
  if (values['timeout-ms'] !== undefined && sub !== 'drain') throw new UsageError('--timeout-ms is for drain');
  const t = target(values);
  if (sub === 'drain') return drain({ ...t, open, values, io, timeoutMs: integer(values, 'timeout-ms', 1, 86_400_000, 600_000) });
  const ctx = { values, io, id, limit: integer(values, 'limit', 1, 10_000, 100), bodies: values.bodies === true };
  await withAdmin(t, (admin) => COMMANDS[sub](admin, { ...ctx, name: admin.name }));
  return 0;
}

module.exports = { run, usage, help };
