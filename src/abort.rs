//! The JS side of cancellation: the facade creates one per call that has an AbortSignal.

use dnastore_core::CancelToken;
use napi_derive::napi;

#[napi]
#[derive(Default)]
pub struct AbortHandle {
    pub(crate) token: CancelToken,
}

#[napi]
impl AbortHandle {
    #[napi(constructor)]
    pub fn new() -> Self {
        Self::default()
    }

    #[napi]
    pub fn abort(&self) {
        self.token.cancel();
    }
}
