//! An operator's command, fleet-wide: `breaker.open()` (or `close()`, `disable()`,
//! `enable()`) on one replica, or `dnastore-breaker circuit open` from anywhere, reaches
//! every replica of the breaker name.
//!
//! The latest command is one signed record in `dnastore:fleet:{name}:force` (no expiry),
//! set by compare-and-set and published on the fleet's channel; replicas read it with every
//! heartbeat too (pub/sub is at-most-once). Its sequence only grows, so a replayed or older
//! record is refused (stale). A replica applies a command it had not seen; at a (re)join it
//! applies the held states (open, disable), and a close or enable only after one it had
//! seen: a replica starting now does not undo its own `circuitForce` for a close of long
//! ago. With Redis away a command stays this replica's own.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::record::{Message, Refused, Signer, StateRecord};
use super::scripts::{Keys, CAS};
use super::{state_of, Cmd, FleetCircuit, Shared};
use crate::config::{Config, RedisSpec};
use crate::observer::{Control, StateKind};
use crate::redis::{RedisClient, RedisLink};

/// The latest operator's command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForceRecord {
    /// Grows with every command (at least the wall ms of its issue).
    pub seq: u64,
    pub command: Control,
    /// Wall-clock ms it was issued.
    pub at_ms: u64,
    /// The replica, or `cli:<host>` for the operator command.
    pub by: String,
}

pub(super) fn code(c: Control) -> &'static str {
    match c {
        Control::Open => "o",
        Control::Close => "c",
        Control::Disable => "d",
        Control::Enable => "e",
    }
}

pub(super) fn from_code(s: &str) -> Option<Control> {
    Some(match s {
        "o" => Control::Open,
        "c" => Control::Close,
        "d" => Control::Disable,
        "e" => Control::Enable,
        _ => return None,
    })
}

impl FleetCircuit {
    /// Tells every replica of `c`, this replica's own circuit already having applied it.
    pub fn control(&self, c: Control) {
        let _ = self.shared.tx.send(Cmd::Control(c));
    }
}

impl Shared {
    /// A verified command record, read (`rejoin`: the first read after a connect) or heard.
    pub(super) fn see_force(&self, f: ForceRecord, rejoin: bool) -> Result<(), Refused> {
        let last = self.force_seq.load(Ordering::Acquire);
        if f.seq < last {
            return Err(Refused::Stale);
        }
        let new = f.seq > last;
        if new {
            self.force_seq.store(f.seq, Ordering::Release);
        }
        let holds = matches!(f.command, Control::Open | Control::Disable);
        let apply = if rejoin {
            holds || (new && last != 0)
        } else {
            new
        };
        if apply {
            if let Some(h) = self.host.upgrade() {
                h.fleet_control(f.command);
            }
        }
        Ok(())
    }
}

/// Sets `command` as the fleet's latest (compare-and-set, published).
pub(super) async fn publish(
    link: &RedisLink,
    keys: &Keys,
    signer: &Signer,
    command: Control,
    by: &str,
    now_ms: u64,
) -> Result<ForceRecord, String> {
    for _ in 0..8 {
        let mut get = redis::cmd("GET");
        get.arg(&keys.force);
        let cur: Option<Vec<u8>> = link.query(&get).await?;
        let cur = cur.unwrap_or_default();
        let prev = match signer.open(&cur) {
            Ok(Message::Force(f)) => f.seq,
            _ => 0,
        };
        let r = ForceRecord {
            seq: (prev + 1).max(now_ms),
            command,
            at_ms: now_ms,
            by: by.to_string(),
        };
        let mut inv = CAS.key(&keys.force);
        inv.arg(&cur).arg(signer.force(&r)).arg(&keys.channel);
        let (set, _): (i64, Vec<u8>) = link.run(&inv).await?;
        if set == 1 {
            return Ok(r);
        }
    }
    Err("the fleet's command record kept changing under this command; try again".into())
}

/// The fleet circuit of one breaker name as its Redis holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetStatus {
    /// The state the replicas follow: an operator's forced state first, else the fleet
    /// state record's (closed without one).
    pub state: StateKind,
    pub record: Option<StateRecord>,
    pub command: Option<ForceRecord>,
    /// Replicas that said they are alive lately.
    pub replicas: u64,
    /// A record Redis holds that does not verify (forged, other secret, garbled).
    pub refused: Option<Refused>,
}

/// The fleet circuit reached without a breaker (the operator command).
pub struct FleetAdmin {
    link: RedisLink,
    keys: Keys,
    signer: Signer,
    name: String,
}

impl FleetAdmin {
    /// The fleet of `config`'s breaker name on its `redisUrl`. Connects nothing yet.
    pub fn new(config: &Config) -> Result<Self, String> {
        let url = config
            .lkg
            .redis_url
            .as_ref()
            .ok_or("the fleet circuit lives in Redis: give its URL (redisUrl)")?;
        let spec = RedisSpec::parse(url).map_err(|m| format!("invalid redisUrl: {m}"))?;
        let client = RedisClient::new(spec, config.lkg.redis.clone())
            .map_err(|m| format!("invalid redisUrl: {m}"))?;
        Ok(Self {
            link: RedisLink::new(client, "fleet Redis"),
            keys: Keys::new(&config.name),
            signer: Signer::new(&config.name, config.lkg.signing_secret.as_deref()),
            name: config.name.clone(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Redis URL without credentials.
    pub fn location(&self) -> String {
        self.link.client().spec().redacted()
    }

    /// Whether records are signed (a secret is set).
    pub fn signs(&self) -> bool {
        self.signer.signs()
    }

    /// Sets `command` for every replica of the name; `by` says who (logged by them).
    pub async fn command(
        &self,
        command: Control,
        by: &str,
        now_ms: u64,
    ) -> Result<ForceRecord, String> {
        publish(&self.link, &self.keys, &self.signer, command, by, now_ms).await
    }

    pub async fn status(&self, now_ms: u64, live: Duration) -> Result<FleetStatus, String> {
        self.read(now_ms, live).await
    }

    /// Closes the connection (the admin cannot be used after).
    pub fn close(&self) {
        self.link.disconnect();
    }

    async fn read(&self, now_ms: u64, live: Duration) -> Result<FleetStatus, String> {
        let mut get = redis::cmd("MGET");
        get.arg(&self.keys.state).arg(&self.keys.force);
        let (state, force): (Option<Vec<u8>>, Option<Vec<u8>>) = self.link.query(&get).await?;
        let mut count = redis::cmd("ZCOUNT");
        count
            .arg(&self.keys.replicas)
            .arg(now_ms.saturating_sub(live.as_millis() as u64))
            .arg("+inf");
        let replicas: u64 = self.link.query(&count).await?;
        let mut refused = None;
        let record = state.and_then(|raw| match self.signer.open(&raw) {
            Ok(Message::State(r)) => Some(r),
            Ok(_) => {
                refused = Some(Refused::Malformed);
                None
            }
            Err(why) => {
                refused = Some(why);
                None
            }
        });
        let command = force.and_then(|raw| match self.signer.open(&raw) {
            Ok(Message::Force(f)) => Some(f),
            Ok(_) => {
                refused = Some(Refused::Malformed);
                None
            }
            Err(why) => {
                refused = Some(why);
                None
            }
        });
        let state = match command.as_ref().map(|c| c.command) {
            Some(Control::Open) => StateKind::ForcedOpen,
            Some(Control::Disable) => StateKind::Disabled,
            _ => state_of(record.as_ref(), now_ms),
        };
        Ok(FleetStatus {
            state,
            record,
            command,
            replicas,
            refused,
        })
    }
}
