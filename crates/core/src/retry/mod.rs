//! Retries that help instead of hurting: decorrelated-jitter backoff, Retry-After,
//! a Finagle/Envoy-style retry budget, and the rules for which calls may be retried.

mod backoff;
mod budget;
mod policy;
mod retry_after;

pub use backoff::Backoff;
pub use budget::RetryBudget;
pub use policy::method_is_retryable;
pub use retry_after::parse_retry_after;
