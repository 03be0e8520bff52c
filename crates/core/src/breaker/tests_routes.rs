//! Per-route circuits (`circuitPerRoute`) through the breaker, on paused tokio time with a
//! scripted upstream whose validation endpoint fails while the others answer.

use super::tests::{breaker, code_of, MS};
use super::*;
use crate::circuit::Control;
use crate::config::{RawOptions, RawValue};
use crate::metrics::render;
use crate::test_support::{Script, Step};

const VALIDATE: &str = "http://127.0.0.1:9/api/validate";
const SIGIL: &str = "http://127.0.0.1:9/api/sigils/1";

fn config(name: &str, per_route: bool, opts: &[(&str, f64)]) -> Config {
    let mut o = RawOptions::new()
        .set("name", RawValue::String(name.into()))
        .set("circuitPerRoute", RawValue::Bool(per_route))
        .set("maxFailures", RawValue::Number(1.0))
        .set("maxAttempts", RawValue::Number(1.0))
        .set("halfOpenMaxCalls", RawValue::Number(1.0))
        .set("resetTimeout", RawValue::Number(1000.0));
    for (k, v) in opts {
        o.insert(k, RawValue::Number(*v));
    }
    Config::resolve(&o, &|_| None).unwrap()
}

/// Validation fails (connection refused), everything else answers 200.
fn upstream() -> Arc<Script> {
    Script::new(vec![Step::ByPath(
        "/api/validate",
        Box::new(Step::Fail(FailureKind::ConnectionRefused)),
        Box::new(Step::Reply(200, "application/json", "{}")),
    )])
}

async fn fire(b: &Arc<Breaker>, url: &str, route: Option<&str>) -> CallOutcome {
    let req = b.prepare(url, Some("GET"), &[], None).unwrap();
    let mut call = Call::new(req.clone());
    call.route = route.map(Arc::from);
    match b.admit_route(route) {
        Some(p) => b.clone().execute(p, call).await,
        None => CallOutcome::Fallback(b.rejected(Some(&req))),
    }
}

/// Route transitions as `route:from->to`, breaker transitions as `from->to`.
#[derive(Default)]
struct Transitions(Mutex<Vec<String>>);

impl Observer for Transitions {
    fn on_event(&self, e: &Event<'_>) {
        let s = match e {
            Event::Transition(t) => format!("{}->{}", t.from.as_str(), t.to.as_str()),
            Event::RouteTransition { route, transition } => format!(
                "{route}:{}->{}",
                transition.from.as_str(),
                transition.to.as_str()
            ),
            _ => return,
        };
        self.0.lock().push(s);
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_route_opens_only_its_own_circuit() {
    let s = upstream();
    let b = breaker(config("t-route-iso", true, &[]), &s);
    let seen = Arc::new(Transitions::default());
    b.subscribe(seen.clone());
    let (v, g) = ("/api/validate", "/api/sigils/:id");
    assert_eq!(code_of(&fire(&b, VALIDATE, Some(v)).await), "ECONNREFUSED");
    assert_eq!(b.state_of(v), Some(StateKind::Open));
    assert_eq!(
        b.state(),
        StateKind::Closed,
        "the breaker's circuit stays closed"
    );
    // Another route and the route-less calls keep reaching DNAStore.
    assert_eq!(code_of(&fire(&b, SIGIL, Some(g)).await), "ok");
    assert_eq!(code_of(&fire(&b, SIGIL, None).await), "ok");
    assert_eq!(b.state_of(g), Some(StateKind::Closed));
    // The failing route is short-circuited: no attempt.
    let before = s.count();
    assert_eq!(code_of(&fire(&b, VALIDATE, Some(v)).await), "EOPENBREAKER");
    assert_eq!(s.count(), before);
    assert_eq!(seen.0.lock().clone(), vec![format!("{v}:closed->open")]);
    // Its metrics: the route's state series, the breaker's gauge untouched.
    b.refresh_gauges();
    let text = render();
    assert!(
        text.contains(
            r#"dnastore_route_circuit_state{name="t-route-iso",route="/api/validate"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"dnastore_circuit_state{name="t-route-iso"} 0"#));
    // A route whose circuit never moved shows too, closed, from its first call.
    assert!(
        text.contains(
            r#"dnastore_route_circuit_state{name="t-route-iso",route="/api/sigils/:id"} 0"#
        ),
        "{text}"
    );
    // After resetTimeout its trial goes to DNAStore again: still failing, open again.
    tokio::time::sleep(1000 * MS).await;
    assert_eq!(code_of(&fire(&b, VALIDATE, Some(v)).await), "ECONNREFUSED");
    assert_eq!(b.state_of(v), Some(StateKind::Open));
    assert_eq!(b.state(), StateKind::Closed);
    b.close();
}

#[tokio::test(start_paused = true)]
async fn without_the_option_a_route_shares_the_breakers_circuit() {
    let s = upstream();
    let b = breaker(config("t-route-off", false, &[]), &s);
    fire(&b, VALIDATE, Some("/api/validate")).await;
    assert_eq!(b.state(), StateKind::Open);
    assert_eq!(b.state_of("/api/validate"), None);
    let o = fire(&b, SIGIL, Some("/api/sigils/:id")).await;
    assert_eq!(code_of(&o), "EOPENBREAKER");
    b.close();
}

#[tokio::test(start_paused = true)]
async fn retries_are_admitted_by_the_routes_circuit() {
    // Two failures in a row open the route's circuit; the call's retry is asked of it.
    let s = upstream();
    let opts = [("maxFailures", 2.0), ("maxAttempts", 3.0)];
    let b = breaker(config("t-route-retry", true, &opts), &s);
    let o = fire(&b, VALIDATE, Some("/api/validate")).await;
    assert_eq!(code_of(&o), "ECONNREFUSED");
    assert_eq!(s.count(), 2, "the trip ends the retries");
    assert_eq!(b.state_of("/api/validate"), Some(StateKind::Open));
    assert_eq!(b.state(), StateKind::Closed);
    b.close();
}

#[tokio::test(start_paused = true)]
async fn a_trial_that_panics_or_is_dropped_gives_its_slot_back_to_its_route() {
    let s = Script::new(vec![
        Step::Fail(FailureKind::ConnectionRefused),
        Step::Panic,
        Step::Hang,
    ]);
    let b = breaker(config("t-route-slot", true, &[]), &s);
    let r = "/api/validate";
    fire(&b, VALIDATE, Some(r)).await;
    tokio::time::sleep(1000 * MS).await;
    // The trial panics: EINTERNAL, and its slot comes back to the route's circuit.
    assert_eq!(code_of(&fire(&b, VALIDATE, Some(r)).await), "EINTERNAL");
    assert_eq!(b.state_of(r), Some(StateKind::HalfOpen));
    // The next trial hangs and its future is dropped: the slot comes back again.
    let trial = b
        .admit_route(Some(r))
        .expect("the slot came back after the panic");
    assert!(trial.is_trial() && trial.route_circuit().is_some());
    let req = b.prepare(VALIDATE, Some("GET"), &[], None).unwrap();
    let run = b.clone().execute(trial, Call::new(req));
    assert!(tokio::time::timeout(10 * MS, run).await.is_err());
    assert!(
        b.admit_route(Some(r)).is_some(),
        "the dropped trial's slot came back"
    );
    assert_eq!(b.state(), StateKind::Closed);
    b.close();
}

#[tokio::test(start_paused = true)]
async fn eviction_never_drops_a_circuit_that_is_not_closed() {
    let s = upstream();
    let b = breaker(config("t-route-evict", true, &[("maxRoutes", 2.0)]), &s);
    fire(&b, VALIDATE, Some("/api/validate")).await;
    fire(&b, SIGIL, Some("/b")).await;
    assert!(render().contains(r#"name="t-route-evict",route="/api/validate""#));
    // A third route: the closed "/b" makes room, the open one stays.
    fire(&b, SIGIL, Some("/c")).await;
    assert_eq!(b.state_of("/api/validate"), Some(StateKind::Open));
    assert_eq!(b.state_of("/b"), None);
    assert_eq!(b.state_of("/c"), Some(StateKind::Closed));
    // Both circuits open: a new route gets none and is admitted by the breaker's circuit.
    let c = "http://127.0.0.1:9/api/validate/c";
    fire(&b, c, Some("/c")).await;
    assert_eq!(b.state_of("/c"), Some(StateKind::Open));
    assert_eq!(code_of(&fire(&b, SIGIL, Some("/d")).await), "ok");
    assert_eq!(b.state_of("/d"), None);
    assert_eq!(b.state_of("/api/validate"), Some(StateKind::Open));
    assert_eq!(b.state(), StateKind::Closed);
    b.close();
}

#[tokio::test(start_paused = true)]
async fn an_operators_command_applies_to_every_routes_circuit() {
    let s = upstream();
    let b = breaker(config("t-route-force", true, &[]), &s);
    assert_eq!(code_of(&fire(&b, SIGIL, Some("/a")).await), "ok");
    b.control(Control::Open);
    assert_eq!(b.state_of("/a"), Some(StateKind::ForcedOpen));
    assert_eq!(code_of(&fire(&b, SIGIL, Some("/a")).await), "EOPENBREAKER");
    // A route first seen while forced open is born forced open.
    assert_eq!(
        code_of(&fire(&b, SIGIL, Some("/new")).await),
        "EOPENBREAKER"
    );
    assert_eq!(b.state_of("/new"), Some(StateKind::ForcedOpen));
    b.control(Control::Close);
    assert_eq!(b.state_of("/a"), Some(StateKind::Closed));
    assert_eq!(code_of(&fire(&b, SIGIL, Some("/new")).await), "ok");
    // Disabled: a failing route never trips.
    b.control(Control::Disable);
    fire(&b, VALIDATE, Some("/v")).await;
    assert_eq!(b.state_of("/v"), Some(StateKind::Disabled));
    b.control(Control::Enable);
    assert_eq!(b.state_of("/v"), Some(StateKind::Closed));
    b.close();
}
