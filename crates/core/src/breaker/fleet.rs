//! The breaker's side of the fleet circuit (`fleetCircuit: 'on'`, `fleet/`): it applies the
//! fleet's decisions to its circuit, lets the first calls wait (bounded) for the fleet's
//! state, and leases half-open trials. Without the fleet none of this runs: each entry
//! point is one `None` check.

use super::*;
use crate::fleet::{FleetCircuit, FleetHost, FleetSettings, FleetStats, LeaseAsk, TrialLease};
use crate::observer::{FleetEvent, FleetNote};

impl FleetHost for Breaker {
    fn wall_ms(&self) -> u64 {
        Breaker::wall_ms(self)
    }

    fn fleet_open(&self, until_ms: u64, note: Arc<FleetNote>, fresh: bool, trials: u32) {
        let now = self.now();
        // The deciding replica's open period (grown, or held by a Retry-After), but never
        // longer from now than this replica's own configuration allows a circuit to stay
        // open, whatever another host's clock says.
        let left = until_ms
            .saturating_sub(Breaker::wall_ms(self))
            .min(crate::fleet::open_max(&self.config).as_millis() as u64);
        if left == 0 && !fresh && self.circuit.state() == StateKind::Closed {
            // A round this replica did not see begin, while it recovered on its own.
            return;
        }
        let until = now + Duration::from_millis(left);
        // The fleet's failed trials in a row: whichever replica's trial fails next grows
        // the open period from there.
        self.circuit.fleet_failed_trials(trials);
        self.circuit
            .fleet_open(until, note, now, &mut |t| self.emit(&Event::Transition(t)));
    }

    fn own_open_ms(&self) -> Option<u64> {
        self.circuit
            .chosen_open(self.now())
            .map(|(d, _)| d.as_millis() as u64)
    }

    fn fleet_close(&self, note: Arc<FleetNote>) {
        let now = self.now();
        self.circuit
            .fleet_close(note, now, &mut |t| self.emit(&Event::Transition(t)));
    }

    fn fleet_detach(&self) {
        self.circuit.fleet_detach();
    }

    fn hold_trials(&self, ms: u64) {
        self.circuit
            .hold_trials(self.now() + Duration::from_millis(ms));
    }

    fn fleet_control(&self, c: crate::observer::Control) {
        self.apply_control(c);
    }

    fn emit_fleet(&self, e: FleetEvent<'_>) {
        self.emit(&Event::Fleet(e));
    }
}

/// A trial's lease, if it has one; reported with the verdict.
pub(super) type Lease = Option<TrialLease>;

impl Breaker {
    /// The fleet circuit of `config` (with `fleetCircuit: 'on'`); not started yet.
    pub(super) fn fleet_for(
        config: &Config,
        me: Weak<Self>,
        rng: Arc<dyn crate::rng::Rng>,
        metrics: &BreakerMetrics,
    ) -> Option<Arc<FleetCircuit>> {
        let f = config.fleet.as_ref()?;
        let client = Self::redis_client(config).ok().flatten()?;
        let host: Weak<dyn FleetHost> = me;
        Some(Arc::new(FleetCircuit::new(
            &config.name,
            FleetSettings::new(f, config),
            config.lkg.signing_secret.as_deref(),
            client,
            host,
            rng,
            metrics.fleet(),
        )))
    }

    /// Starts the background work whose events a first observer should not miss: the
    /// fleet circuit's task (its first connect, or its failure, is an event) and the
    /// observer that tells it of trips. Idempotent. `registry::open_with` calls it once the
    /// opener's observer is subscribed; a breaker built otherwise calls it itself.
    pub fn start(self: &Arc<Self>) {
        self.apply_circuit_force();
        let Some(f) = &self.fleet else { return };
        let rt = self
            .deps
            .runtime
            .clone()
            .or_else(|| tokio::runtime::Handle::try_current().ok());
        if let Some(rt) = rt {
            if f.start(&rt) {
                self.subscribe(f.observer());
            }
        }
    }

    pub fn fleet(&self) -> Option<&Arc<FleetCircuit>> {
        self.fleet.as_ref()
    }

    /// `stats().fleet`; `None` without the fleet circuit.
    pub fn fleet_stats(&self) -> Option<FleetStats> {
        self.fleet.as_ref().map(|f| f.stats())
    }

    /// A call admitted before the fleet's state was first read waits for it (at most
    /// `redisResponseTimeoutMs` and its deadline), so a replica that starts while the fleet
    /// is open sends nothing to the failing store to learn it. `None`: the circuit is no
    /// longer closed for it (short-circuited).
    pub(super) async fn join_fleet(&self, permit: Permit, call: &Call) -> Option<Permit> {
        let Some(f) = &self.fleet else {
            return Some(permit);
        };
        if f.joined() {
            return Some(permit);
        }
        let limit = f
            .response_timeout()
            .min(call.deadline.unwrap_or(self.config.deadline));
        f.wait_joined(limit).await;
        if permit.is_trial() || self.circuit.state() == StateKind::Closed {
            return Some(permit);
        }
        // The fleet is open or in its round: this closed-state permit is stale; ask again.
        drop(permit);
        let now = self.now();
        let p = self
            .circuit
            .try_acquire(now, &mut |t| self.emit(&Event::Transition(t)));
        if p.is_none() {
            self.record_short_circuit(now);
        }
        p
    }

    /// The lease a half-open trial needs while its circuit follows the fleet. `Err`: every
    /// lease is held elsewhere; the call gets the short-circuit fallback.
    pub(super) async fn trial_lease(&self, permit: &Permit, budget: Duration) -> Result<Lease, ()> {
        let Some(f) = &self.fleet else {
            return Ok(None);
        };
        if !permit.is_trial() || !self.circuit.follows_fleet() {
            return Ok(None);
        }
        // A trial permit of a round that ended before it asked (another replica's trial
        // reopened the fleet): no trial until the next round. (Closed meanwhile: it goes on
        // as any call of a closed circuit.)
        match self.circuit.state() {
            StateKind::Open | StateKind::ForcedOpen => return Err(()),
            StateKind::Closed | StateKind::Disabled => return Ok(None),
            StateKind::HalfOpen => {}
        }
        // Held for as long as the attempt may take, and a reply's worth more.
        let ttl = budget + f.response_timeout();
        match f.lease(ttl, budget).await {
            LeaseAsk::Granted(l) => Ok(Some(l)),
            LeaseAsk::Local => Ok(None),
            LeaseAsk::Held => Err(()),
        }
    }

    /// Tells the fleet how a leased trial ended: a slow answer is no success (the circuit
    /// reopens on it too). After a failure the fleet stays open as long as this circuit
    /// chose to (its grown period, or a Retry-After's hold, applied before this call).
    #[inline]
    pub(super) fn report_trial(&self, lease: &mut Lease, verdict: Verdict, latency: Duration) {
        if let Some(l) = lease.take() {
            let ok = !matches!(verdict, Verdict::Failure(_)) && !self.circuit.is_slow(latency);
            let open = if ok {
                None
            } else {
                self.circuit
                    .chosen_open(self.now())
                    .map(|(d, n)| (d.as_millis() as u64, n))
            };
            l.report(ok, open);
        }
    }
}
