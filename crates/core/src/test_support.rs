//! A scripted upstream for the core's unit tests (see `breaker/transport.rs` for why).

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use parking_lot::Mutex;

use crate::error::FailureKind;
use crate::http::{AttemptFailure, RawResponse};
use crate::request::PreparedRequest;

#[derive(Clone, Debug)]
pub enum Step {
    /// Answer with status, content type, body.
    Reply(u16, &'static str, &'static str),
    /// Answer with status and a Retry-After header.
    ReplyRetryAfter(u16, &'static str),
    Fail(FailureKind),
    /// Wait (paused time), then do the next part.
    After(Duration, Box<Step>),
    /// 200 JSON whose body is the request's value of `header` (a JSON string, or null),
    /// with the given response headers: an upstream that answers each caller for itself.
    Echo {
        header: &'static str,
        with: &'static [(&'static str, &'static str)],
    },
    /// 200 JSON while the flag is set, else 503: an upstream a test turns off and on.
    Switch(std::sync::Arc<std::sync::atomic::AtomicBool>),
    /// `then` for a request whose path starts with the prefix, `other` for the rest: an
    /// upstream where one endpoint fails while the others answer.
    ByPath(&'static str, Box<Step>, Box<Step>),
    /// Never answer.
    Hang,
    Panic,
}

/// Steps are consumed in order; the last one repeats forever.
pub struct Script {
    steps: Mutex<VecDeque<Step>>,
    pub seen: Mutex<Vec<PreparedRequest>>,
    /// Sends dropped before they finished (a cancelled hedge, a timed-out attempt).
    pub dropped: std::sync::atomic::AtomicUsize,
}

/// Counts a send dropped before it finished.
struct Unfinished<'a>(Option<&'a std::sync::atomic::AtomicUsize>);

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.0 {
            c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl Script {
    pub fn new(steps: Vec<Step>) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            steps: Mutex::new(steps.into()),
            seen: Mutex::new(vec![]),
            dropped: Default::default(),
        })
    }

    pub fn count(&self) -> usize {
        self.seen.lock().len()
    }

    fn next(&self) -> Step {
        let mut s = self.steps.lock();
        if s.len() > 1 {
            s.pop_front().expect("non-empty")
        } else {
            s.front()
                .cloned()
                .expect("a script needs at least one step")
        }
    }

    pub fn dropped(&self) -> usize {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub async fn send(
        &self,
        req: &PreparedRequest,
        max_body: u64,
    ) -> Result<RawResponse, AttemptFailure> {
        let mut unfinished = Unfinished(Some(&self.dropped));
        let out = self.answer(req, max_body).await;
        unfinished.0 = None;
        out
    }

    async fn answer(
        &self,
        req: &PreparedRequest,
        max_body: u64,
    ) -> Result<RawResponse, AttemptFailure> {
        self.seen.lock().push(req.clone());
        let mut step = self.next();
        loop {
            match step {
                Step::After(d, then) => {
                    tokio::time::sleep(d).await;
                    step = *then;
                }
                Step::Hang => std::future::pending::<()>().await,
                Step::ByPath(prefix, then, other) => {
                    step = if req.url.path().starts_with(prefix) {
                        *then
                    } else {
                        *other
                    };
                }
                Step::Switch(up) => {
                    step = if up.load(std::sync::atomic::Ordering::SeqCst) {
                        Step::Reply(200, "application/json", "{}")
                    } else {
                        Step::Reply(503, "text/plain", "")
                    };
                }
                Step::Panic => panic!("scripted panic"),
                Step::Fail(k) => return Err(AttemptFailure::of(k)),
                Step::Reply(status, ct, body) => {
                    if body.len() as u64 > max_body {
                        return Err(AttemptFailure::of(FailureKind::TooLarge));
                    }
                    let mut h = HeaderMap::new();
                    h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
                    return Ok(RawResponse {
                        status: StatusCode::from_u16(status).expect("valid status"),
                        headers: h,
                        body: Bytes::from_static(body.as_bytes()),
                    });
                }
                Step::Echo { header, with } => {
                    let body = match req.headers.get(header).and_then(|v| v.to_str().ok()) {
                        Some(v) => serde_json::to_string(v).expect("a string serializes"),
                        None => "null".to_string(),
                    };
                    let mut h = HeaderMap::new();
                    h.insert(
                        http::header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    for (k, v) in with {
                        h.append(*k, HeaderValue::from_static(v));
                    }
                    return Ok(RawResponse {
                        status: StatusCode::OK,
                        headers: h,
                        body: Bytes::from(body),
                    });
                }
                Step::ReplyRetryAfter(status, ra) => {
                    let mut h = HeaderMap::new();
                    h.insert(http::header::RETRY_AFTER, HeaderValue::from_static(ra));
                    return Ok(RawResponse {
                        status: StatusCode::from_u16(status).expect("valid status"),
                        headers: h,
                        body: Bytes::new(),
                    });
                }
            }
        }
    }
}

/// Polls `f` until it holds, for at most `secs` of real time (tests against real processes).
pub async fn eventually<F: std::future::Future<Output = bool>>(
    secs: u64,
    what: &str,
    mut f: impl FnMut() -> F,
) {
    let until = std::time::Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(
            std::time::Instant::now() < until,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
