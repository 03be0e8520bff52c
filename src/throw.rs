//! Errors into JS with a stable `code` (napi's own Error carries only its Status enum).

use dnastore_core::Code;
use napi::{Env, Status};

/// Throws a JS Error with `code` and returns the error napi expects, which it
/// recognises as already thrown.
pub fn throw(env: &Env, code: Code, message: &str) -> napi::Error {
    let _ = env.throw_error(message, Some(code.as_str()));
    napi::Error::new(Status::PendingException, message.to_string())
}
