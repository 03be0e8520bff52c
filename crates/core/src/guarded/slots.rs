//! The permits of running calls, by slot number: what crosses to JS is a small integer,
//! the permit (a half-open trial slot) stays here. Bounded by `capacity` (the bulkhead),
//! and reused: a freed slot is taken again first, so the table never outgrows the
//! largest number of calls that ran at once.

use std::time::Duration;

use crate::circuit::Permit;

enum Entry {
    Free,
    Running { permit: Permit, started: Duration },
}

pub struct Slots {
    entries: Vec<Entry>,
    free: Vec<u32>,
    in_use: usize,
    capacity: usize,
}

impl Slots {
    pub fn new(capacity: Option<usize>) -> Self {
        Self {
            entries: Vec::new(),
            free: Vec::new(),
            in_use: 0,
            capacity: capacity.unwrap_or(usize::MAX),
        }
    }

    /// A slot for `permit`, or `None` (the permit dropped, so returned) at capacity.
    pub fn take(&mut self, permit: Permit, started: Duration) -> Option<u32> {
        if self.in_use >= self.capacity {
            return None;
        }
        let entry = Entry::Running { permit, started };
        let slot = match self.free.pop() {
            Some(s) => {
                self.entries[s as usize] = entry;
                s
            }
            None => {
                // u32 slots: more calls than that running at once is not a real workload.
                let s = u32::try_from(self.entries.len()).ok()?;
                self.entries.push(entry);
                s
            }
        };
        self.in_use += 1;
        Some(slot)
    }

    /// The permit and start of a running slot; `None` if it is not running.
    pub fn release(&mut self, slot: u32) -> Option<(Permit, Duration)> {
        let e = self.entries.get_mut(slot as usize)?;
        match std::mem::replace(e, Entry::Free) {
            Entry::Running { permit, started } => {
                self.free.push(slot);
                self.in_use -= 1;
                Some((permit, started))
            }
            Entry::Free => None,
        }
    }

    pub fn in_use(&self) -> usize {
        self.in_use
    }
}
