//! Which requests may be sent more than once.

use http::Method;

/// GET, HEAD, PUT, DELETE and OPTIONS are idempotent by definition (RFC 9110 9.2.2).
/// POST and PATCH are retried only with an `Idempotency-Key`, which lets the upstream
/// de-duplicate; without one a retry could store a sigil twice.
pub fn method_is_retryable(method: &Method, has_idempotency_key: bool) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
    ) || has_idempotency_key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_needs_a_key() {
        assert!(method_is_retryable(&Method::GET, false));
        assert!(method_is_retryable(&Method::DELETE, false));
        assert!(!method_is_retryable(&Method::POST, false));
        assert!(!method_is_retryable(&Method::PATCH, false));
        assert!(method_is_retryable(&Method::POST, true));
        assert!(!method_is_retryable(&Method::TRACE, false));
    }
}
