//! How an attempt reaches the upstream. Production always uses the HTTP client; the
//! core's unit tests script the upstream so paused tokio time drives every delay
//! deterministically (a real socket would race a paused clock). The Jest and
//! integration suites cover the real client against real servers.

use crate::http::{AttemptFailure, HttpClient, RawResponse};
use crate::request::PreparedRequest;

pub(crate) enum Transport {
    Http(HttpClient),
    #[cfg(test)]
    Script(std::sync::Arc<crate::test_support::Script>),
}

impl Transport {
    pub(crate) async fn send(
        &self,
        req: &PreparedRequest,
        max_body: u64,
    ) -> Result<RawResponse, AttemptFailure> {
        match self {
            Transport::Http(c) => c.send(req, max_body).await,
            #[cfg(test)]
            Transport::Script(s) => s.send(req, max_body).await,
        }
    }

    /// The breaker closed: the HTTP clients go (`ClientSlot::release`).
    pub(crate) fn release(&self) {
        match self {
            Transport::Http(c) => c.slot().release(),
            #[cfg(test)]
            Transport::Script(_) => {}
        }
    }
}
