//! A breaker's series: every handle its owners build goes through one [`Series`], which
//! adds the breaker's `name` label and remembers what it created, so that [`Series::remove`]
//! deletes exactly that when the breaker closes: the two can never drift apart as families
//! and owners are added.

use std::sync::Arc;

use parking_lot::Mutex;
use prometheus::core::{MetricVec, MetricVecBuilder};

/// A metric family whose series can be removed by label values.
trait Removable: Sync {
    fn remove(&self, labels: &[&str]);
}

impl<T: MetricVecBuilder> Removable for MetricVec<T> {
    fn remove(&self, labels: &[&str]) {
        let _ = self.remove_label_values(labels);
    }
}

struct Made {
    name: String,
    /// Each series created: its family and its label values (the name first).
    series: Mutex<Vec<(&'static dyn Removable, Vec<String>)>>,
}

/// The series of one breaker (or guarded circuit), shared by the owners of its handles.
/// Only used while building handles and when removing them, never on a call's path.
#[derive(Clone)]
pub struct Series(Arc<Made>);

impl Series {
    pub fn new(name: &str) -> Self {
        Self(Arc::new(Made {
            name: name.to_string(),
            series: Mutex::new(Vec::new()),
        }))
    }

    /// The `name` label value.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The series of `family` labelled with the breaker's name then `labels`, created now
    /// and remembered for [`Series::remove`].
    pub fn of<T: MetricVecBuilder>(&self, family: &'static MetricVec<T>, labels: &[&str]) -> T::M {
        let all: Vec<&str> = std::iter::once(self.name())
            .chain(labels.iter().copied())
            .collect();
        self.0
            .series
            .lock()
            .push((family, all.iter().map(|l| l.to_string()).collect()));
        family.with_label_values(&all)
    }

    /// Removes every series created through this set (after the breaker's last handle
    /// shut down). Idempotent.
    pub fn remove(&self) {
        let made = std::mem::take(&mut *self.0.series.lock());
        for (family, labels) in &made {
            let l: Vec<&str> = labels.iter().map(String::as_str).collect();
            family.remove(&l);
        }
    }
}
