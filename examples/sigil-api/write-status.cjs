'use strict';

// What `GET /api/consciousness/writes/:id` answers about a write the outbox queued (the
// Location of a 202): queued, delivered or dead letter.
//
// Kept from the breaker's events (`queued` results, `delivered`, `deadLetter`) in a bounded
// map, because the outbox has no lookup by id (list() reads every queued write from disk).
// A process that restarts with a non-empty outbox seeds the map from list() and
// deadLetters() (`ready` settles when done), so queued writes keep answering; writes
// delivered before the restart are no longer known (404, as for an id that never existed).
//
// A delivered write's record keeps DNAStore's answer (the `delivered` event carries it), so
// the client learns the sigil's id and Location from it.

const DEFAULT_MAX = 100000;

// DNAStore's answer to a delivered write, when it is JSON (the stored sigil).
function parseAnswer(body) {
  if (typeof body !== 'string') return undefined;
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}
const SEED_LIMIT = 10000; // the most outbox.list() / deadLetters() return

class WriteStatus {
  #writes = new Map();
  #max;

  constructor(breaker, { max = DEFAULT_MAX } = {}) {
    this.#max = max;
    // Events may arrive before the fire() that queued the write resolves: a write delivered
    // at once is already `delivered` when its `queued` result is recorded (see queued()).
    breaker.on('delivered', (e) => {
      this.#set(e.id, { state: 'delivered', idempotencyKey: e.idempotencyKey, status: e.status, afterMs: e.afterMs, deliveredAt: new Date().toISOString(), sigil: parseAnswer(e.body) });
    });
    breaker.on('deadLetter', (e) => {
      const prev = this.#writes.get(e.id);
      this.#set(e.id, { state: 'dead_letter', idempotencyKey: prev?.idempotencyKey, reason: e.reason, status: e.status ?? null, deadAt: new Date().toISOString() });
    });
    /** Settles once the records of a previous process are loaded (never rejects). */
    this.ready = breaker.outbox ? this.#seed(breaker.outbox) : Promise.resolve();
  }

  /** A write fire() answered `queued` (unless an event already moved it on). */
  queued(result) {
    const prev = this.#writes.get(result.id);
    if (prev) {
      if (prev.idempotencyKey === undefined) prev.idempotencyKey = result.idempotencyKey;
      return;
    }
    this.#set(result.id, { state: 'queued', idempotencyKey: result.idempotencyKey, code: result.code, queuedAt: new Date().toISOString() });
  }

  /** `{ id, state, ... }`, or undefined for an id this process does not know. */
  get(id) {
    const w = this.#writes.get(id);
    return w && { id, ...w };
  }

  // list() and deadLetters() may answer arrays or Promises (the fleet outbox on Redis reads
  // over the network), so both are awaited. A record an event wrote meanwhile is newer: kept.
  async #seed(outbox) {
    try {
      const [queued, dead] = await Promise.all([outbox.list({ limit: SEED_LIMIT }), outbox.deadLetters({ limit: SEED_LIMIT })]);
      for (const e of queued) {
        if (!this.#writes.has(e.id)) this.#set(e.id, { state: 'queued', idempotencyKey: e.idempotencyKey, code: e.lastError ?? null, queuedAt: new Date(e.createdAt).toISOString() });
      }
      for (const d of dead) {
        if (!this.#writes.has(d.id)) this.#set(d.id, { state: 'dead_letter', idempotencyKey: d.idempotencyKey, reason: d.reason, status: d.status ?? null, deadAt: new Date(d.diedAt).toISOString() });
      }
    } catch {
      // The outbox could not be listed: those ids answer 404 until their events arrive.
    }
  }

  // Insertion order is age: past the bound the oldest record goes (a client polls a
  // Location for minutes, not for a hundred thousand writes).
  #set(id, record) {
    this.#writes.delete(id);
    this.#writes.set(id, record);
    if (this.#writes.size > this.#max) this.#writes.delete(this.#writes.keys().next().value);
  }
}

module.exports = { WriteStatus };
