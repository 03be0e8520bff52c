'use strict';

// opossum's MemoryCache, kept as it is so `cache` and `coalesce` behave as there (see
// docs/opossum.md, its differences): a Map of { value, expiresAt } (0: never expires), an expired
// entry dropped when read, the oldest key evicted when full.
class MemoryCache {
  constructor(maxEntries) {
    this.cache = new Map();
    this.maxEntries = maxEntries ?? 2 ** 24 - 1;
  }

  get(key) {
    const cached = this.cache.get(key);
    if (cached) {
      if (cached.expiresAt > Date.now() || cached.expiresAt === 0) return cached.value;
      this.cache.delete(key);
    }
    return undefined;
  }

  set(key, value, expiresAt) {
    if (this.cache.size === this.maxEntries && this.get(key) === undefined) {
      this.cache.delete(this.cache.keys().next().value);
    }
    this.cache.set(key, { expiresAt, value });
  }

  delete(key) {
    this.cache.delete(key);
  }

  flush() {
    this.cache.clear();
  }
}

module.exports = { MemoryCache };
