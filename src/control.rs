//! Manual control on a fetch breaker's handle (`breaker.open()`, `close()`, `disable()`,
//! `enable()`); the behaviour is the core's (`circuit/force.rs`, `breaker/control.rs`).

use dnastore_core::circuit::Control;
use dnastore_core::Code;
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::breaker::NativeBreaker;
use crate::throw::throw;

/// The command named `op`; EINVALID naming the accepted ones otherwise.
pub fn parse(env: &Env, op: &str) -> Result<Control> {
    Control::parse(op).ok_or_else(|| {
        throw(
            env,
            Code::Invalid,
            &format!("unknown circuit command {op:?}: open, close, disable or enable"),
        )
    })
}

#[napi]
impl NativeBreaker {
    /// An operator's command; answers whether it changed the state (false: already so).
    #[napi(ts_args_type = "op: 'open' | 'close' | 'disable' | 'enable'")]
    pub fn control(&self, env: Env, op: String) -> Result<bool> {
        let c = parse(&env, &op)?;
        Ok(self.core().control(c))
    }

    /// The state of `route`'s own circuit (`circuitPerRoute`); null when it has none.
    #[napi(
        js_name = "stateOf",
        ts_return_type = "'closed' | 'open' | 'halfOpen' | 'forcedOpen' | 'disabled' | null"
    )]
    pub fn state_of(&self, env: Env, route: String) -> Result<Option<&'static str>> {
        let route = dnastore_core::text::route_template(&route)
            .map_err(|e| throw(&env, Code::Invalid, &e.message))?;
        Ok(self.core().state_of(&route).map(|s| s.as_str()))
    }
}
