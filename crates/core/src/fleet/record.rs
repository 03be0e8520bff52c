//! The fleet's two records, as stored in Redis and published: the fleet state (one key) and
//! a replica's trip vote (one field each). Text, `|`-separated, authenticated with
//! `signingSecret` (HMAC-SHA256 over the breaker name and the record): Redis only orders
//! (the scripts compare and set whole records), replicas verify. Without a secret records
//! carry `-` instead of a tag and anyone who can write to Redis can write them.
//!
//! ```text
//! s1|<generation>|o or c|<open until, wall ms>|<decided at, wall ms>|<replica>|<why>|<votes>[|<failed trials>]|<tag>
//! v1|<generation voted against>|<replica>|<tripped at, wall ms>|<tag>
//! f1|<sequence>|<o, c, d or e: an operator's open, close, disable, enable>|<at, wall ms>|<by>|<tag>
//! ```

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::observer::FleetWhy;

type HmacSha256 = Hmac<Sha256>;

/// The fleet state: closed, or open until a wall-clock time (after which its round of
/// half-open trials is on). `generation` grows by one at every decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateRecord {
    pub generation: u64,
    pub open: bool,
    /// Wall-clock ms the fleet stays open until (0 when closed).
    pub until_ms: u64,
    /// Wall-clock ms of the decision (the propagation delay is measured from it).
    pub at_ms: u64,
    /// The replica that tripped (opened the fleet) or whose trial decided.
    pub by: String,
    pub why: FleetWhy,
    /// Replicas whose votes opened the fleet (0 for a trial's decision).
    pub votes: u32,
    /// Failed trials in a row behind this open (`resetTimeoutMax`: every replica's next
    /// failed trial grows the open period from there); 0 otherwise. Written only when
    /// above 0, so a fleet without `resetTimeoutMax` writes what earlier versions read.
    pub trials: u32,
}

/// A replica opened on its own evidence while the fleet was closed at `generation`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoteRecord {
    pub generation: u64,
    pub replica: String,
    pub at_ms: u64,
}

/// A decoded message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    State(StateRecord),
    Vote(VoteRecord),
    /// An operator's command, fleet-wide (`force.rs`).
    Force(super::force::ForceRecord),
}

/// Why a record was refused (`dnastore_fleet_rejected_total{reason}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Not a record this version writes.
    Malformed,
    /// No tag, or a tag the secret does not verify: forged or from a replica with
    /// another secret.
    Signature,
    /// A genuine state older than one this replica has seen (a replay, or a Redis that
    /// lost its last writes).
    Stale,
}

impl Refused {
    pub const ALL: [Refused; 3] = [Refused::Malformed, Refused::Signature, Refused::Stale];

    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Malformed => "malformed",
            Refused::Signature => "signature",
            Refused::Stale => "stale",
        }
    }
}

/// Replica ids are built from the host name, the pid and random digits; anything else is
/// dropped, so a record's separator never appears inside a field.
pub fn clean_id(raw: &str) -> String {
    raw.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
        .take(80)
        .collect()
}

/// Signs and verifies one breaker's records.
pub struct Signer {
    name: String,
    secret: Option<Vec<u8>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("name", &self.name)
            .field("signed", &self.secret.is_some())
            .finish()
    }
}

impl Signer {
    pub fn new(name: &str, secret: Option<&str>) -> Self {
        Self {
            name: name.to_string(),
            secret: secret.map(|s| s.as_bytes().to_vec()),
        }
    }

    pub fn signs(&self) -> bool {
        self.secret.is_some()
    }

    fn mac(&self, secret: &[u8], body: &str) -> Option<HmacSha256> {
        let mut m = HmacSha256::new_from_slice(secret).ok()?;
        // The name inside the MAC: a record of one breaker is no record of another.
        m.update(b"dnastore-fleet\0");
        m.update(self.name.as_bytes());
        m.update(b"\0");
        m.update(body.as_bytes());
        Some(m)
    }

    fn seal(&self, body: String) -> String {
        let tag = match self.secret.as_deref().and_then(|s| self.mac(s, &body)) {
            Some(m) => hex(&m.finalize().into_bytes()),
            None => "-".into(),
        };
        format!("{body}|{tag}")
    }

    pub fn state(&self, r: &StateRecord) -> String {
        let mut body = format!(
            "s1|{}|{}|{}|{}|{}|{}|{}",
            r.generation,
            if r.open { "o" } else { "c" },
            r.until_ms,
            r.at_ms,
            clean_id(&r.by),
            r.why.code(),
            r.votes
        );
        if r.trials > 0 {
            body.push_str(&format!("|{}", r.trials));
        }
        self.seal(body)
    }

    pub fn vote(&self, v: &VoteRecord) -> String {
        self.seal(format!(
            "v1|{}|{}|{}",
            v.generation,
            clean_id(&v.replica),
            v.at_ms
        ))
    }

    pub fn force(&self, f: &super::force::ForceRecord) -> String {
        self.seal(format!(
            "f1|{}|{}|{}|{}",
            f.seq,
            super::force::code(f.command),
            f.at_ms,
            clean_id(&f.by)
        ))
    }

    /// Decodes and verifies a record (a state key's value or a published message).
    pub fn open(&self, raw: &[u8]) -> Result<Message, Refused> {
        let text = std::str::from_utf8(raw).map_err(|_| Refused::Malformed)?;
        let (body, tag) = text.rsplit_once('|').ok_or(Refused::Malformed)?;
        if let Some(secret) = &self.secret {
            let tag = unhex(tag).ok_or(Refused::Signature)?;
            let m = self.mac(secret, body).ok_or(Refused::Signature)?;
            m.verify_slice(&tag).map_err(|_| Refused::Signature)?;
        }
        let f: Vec<&str> = body.split('|').collect();
        let num = |s: &str| s.parse::<u64>().map_err(|_| Refused::Malformed);
        // The failed-trials count is optional (absent: 0).
        let (f, trials) = match f.as_slice() {
            ["s1", .., t] if f.len() == 9 => (&f[..8], num(t)?.min(31) as u32),
            all => (all, 0),
        };
        match f {
            ["s1", generation, open, until, at, by, why, votes] => {
                Ok(Message::State(StateRecord {
                    generation: num(generation)?,
                    open: match *open {
                        "o" => true,
                        "c" => false,
                        _ => return Err(Refused::Malformed),
                    },
                    until_ms: num(until)?,
                    at_ms: num(at)?,
                    by: clean_id(by),
                    why: FleetWhy::from_code(why).ok_or(Refused::Malformed)?,
                    votes: num(votes)?.min(u32::MAX as u64) as u32,
                    trials,
                }))
            }
            ["v1", generation, replica, at] if !replica.is_empty() => {
                Ok(Message::Vote(VoteRecord {
                    generation: num(generation)?,
                    replica: clean_id(replica),
                    at_ms: num(at)?,
                }))
            }
            ["f1", seq, command, at, by] => Ok(Message::Force(super::force::ForceRecord {
                seq: num(seq)?,
                command: super::force::from_code(command).ok_or(Refused::Malformed)?,
                at_ms: num(at)?,
                by: clean_id(by),
            })),
            _ => Err(Refused::Malformed),
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_rec() -> StateRecord {
        StateRecord {
            generation: 7,
            open: true,
            until_ms: 1_000_500,
            at_ms: 1_000_000,
            by: "web-1:42:ab12".into(),
            why: FleetWhy::Quorum,
            votes: 2,
            trials: 0,
        }
    }

    #[test]
    fn records_round_trip_signed_and_unsigned() {
        for secret in [Some("s3cret"), None] {
            let s = Signer::new("dnastore", secret);
            let r = open_rec();
            assert_eq!(s.open(s.state(&r).as_bytes()), Ok(Message::State(r)));
            // A grown open carries its failed trials; without them the record is as before.
            let grown = StateRecord {
                trials: 3,
                ..open_rec()
            };
            let text = s.state(&grown);
            assert_eq!(text.matches('|').count(), 9, "{text}");
            assert_eq!(s.open(text.as_bytes()), Ok(Message::State(grown)));
            assert_eq!(s.state(&open_rec()).matches('|').count(), 8);
            let v = VoteRecord {
                generation: 6,
                replica: "web-2:7:ff".into(),
                at_ms: 99,
            };
            assert_eq!(s.open(s.vote(&v).as_bytes()), Ok(Message::Vote(v)));
        }
    }

    #[test]
    fn a_record_without_the_secret_or_of_another_breaker_is_refused() {
        let s = Signer::new("dnastore", Some("s3cret"));
        let forged = Signer::new("dnastore", None).state(&open_rec());
        assert_eq!(s.open(forged.as_bytes()), Err(Refused::Signature));
        let other_key = Signer::new("dnastore", Some("guess")).state(&open_rec());
        assert_eq!(s.open(other_key.as_bytes()), Err(Refused::Signature));
        let other_name = Signer::new("billing", Some("s3cret")).state(&open_rec());
        assert_eq!(s.open(other_name.as_bytes()), Err(Refused::Signature));
        // A genuine record with one field changed (closed instead of open).
        let genuine = s.state(&open_rec());
        let edited = genuine.replacen("|o|", "|c|", 1);
        assert_eq!(s.open(edited.as_bytes()), Err(Refused::Signature));
    }

    #[test]
    fn garbage_is_malformed_never_a_panic() {
        let s = Signer::new("dnastore", None);
        for raw in [
            &b""[..],
            b"|",
            b"s1|x|o|1|2|a|q|1|-",
            b"s1|1|z|1|2|a|q|1|-",
            b"s1|1|o|1|2|a|?|1|-",
            b"v1|1||5|-",
            b"\xff\xfe",
            b"hello",
        ] {
            assert_eq!(s.open(raw), Err(Refused::Malformed), "{raw:?}");
        }
    }

    #[test]
    fn ids_keep_only_safe_characters() {
        assert_eq!(clean_id("web|1 x:2"), "web1x:2");
        assert_eq!(clean_id(&"a".repeat(200)).len(), 80);
    }
}
