//! What the shared cache stores: the Redis value layout of an [`Entry`].
//!
//! Value layout (all integers big-endian):
//! `b'L'`, version `1`, flags (bit 0 JSON, bit 1 signed, bit 2 vary), stored-at ms (u64),
//! the 32-byte HMAC when signed, when vary: the names' length (u16), the names
//! (`a,b`, lower-case) and the 32-byte digest of the request's values; then the body.
//! 11 bytes of overhead unsigned, 43 signed. Values written before the vary bit existed
//! decode unchanged.

use bytes::Bytes;

use crate::lkg::{Entry, VaryKey};

const MAGIC: u8 = b'L';
const VERSION: u8 = 1;
const JSON: u8 = 1;
const SIGNED: u8 = 2;
const VARY: u8 = 4;
const HEAD: usize = 11;

pub fn encode(e: &Entry) -> Vec<u8> {
    let names = e.vary.as_ref().map(VaryKey::names_csv);
    let vary_len = names.as_ref().map_or(0, |n| 2 + n.len() + 32);
    let mut out = Vec::with_capacity(HEAD + 32 + vary_len + e.body.len());
    let flags = if e.json { JSON } else { 0 }
        | if e.mac.is_some() { SIGNED } else { 0 }
        | if e.vary.is_some() { VARY } else { 0 };
    out.extend_from_slice(&[MAGIC, VERSION, flags]);
    out.extend_from_slice(&e.stored_at_ms.to_be_bytes());
    if let Some(mac) = &e.mac {
        out.extend_from_slice(mac);
    }
    if let (Some(v), Some(names)) = (&e.vary, &names) {
        // Header names are short; a Vary list over 64 KiB is not a real response.
        let n = names.len().min(u16::MAX as usize);
        out.extend_from_slice(&(n as u16).to_be_bytes());
        out.extend_from_slice(&names.as_bytes()[..n]);
        out.extend_from_slice(&v.digest);
    }
    out.extend_from_slice(&e.body);
    out
}

/// `None` for anything this version did not write (a foreign or damaged value).
pub fn decode(v: &Bytes) -> Option<Entry> {
    if v.len() < HEAD || v[0] != MAGIC || v[1] != VERSION || v[2] & !(JSON | SIGNED | VARY) != 0 {
        return None;
    }
    let flags = v[2];
    let stored_at_ms = u64::from_be_bytes(v[3..HEAD].try_into().ok()?);
    let mut at = HEAD;
    let mac = if flags & SIGNED != 0 {
        let m = <[u8; 32]>::try_from(v.get(at..at + 32)?).ok()?;
        at += 32;
        Some(m)
    } else {
        None
    };
    let vary = if flags & VARY != 0 {
        let n = u16::from_be_bytes(v.get(at..at + 2)?.try_into().ok()?) as usize;
        let names = std::str::from_utf8(v.get(at + 2..at + 2 + n)?).ok()?;
        let digest = <[u8; 32]>::try_from(v.get(at + 2 + n..at + 2 + n + 32)?).ok()?;
        at += 2 + n + 32;
        Some(VaryKey::from_parts(names, digest)?)
    } else {
        None
    };
    Some(Entry {
        body: v.slice(at..),
        json: flags & JSON != 0,
        stored_at_ms,
        vary,
        mac,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(mac: Option<[u8; 32]>, json: bool, body: &'static [u8]) -> Entry {
        Entry {
            body: Bytes::from_static(body),
            json,
            stored_at_ms: 1_700_000_000_123,
            vary: None,
            mac,
        }
    }

    #[test]
    fn entries_round_trip() {
        let vary = VaryKey::from_parts("accept,accept-language", [9; 32]);
        for e in [
            entry(None, true, b"{\"a\":1}"),
            entry(Some([7; 32]), false, b"text"),
            entry(Some([0; 32]), true, b""),
            Entry {
                vary: vary.clone(),
                ..entry(Some([3; 32]), true, b"{}")
            },
            Entry {
                vary: vary.clone(),
                ..entry(None, false, b"x")
            },
        ] {
            let v = Bytes::from(encode(&e));
            let vary_len = e.vary.as_ref().map_or(0, |v| 2 + v.names_csv().len() + 32);
            assert_eq!(
                v.len(),
                HEAD + e.body.len() + if e.mac.is_some() { 32 } else { 0 } + vary_len
            );
            assert_eq!(decode(&v), Some(e));
        }
    }

    #[test]
    fn foreign_or_damaged_values_do_not_decode() {
        let good = Bytes::from(encode(&entry(Some([1; 32]), true, b"{}")));
        assert!(
            decode(&Bytes::from_static(b"{\"a\":1}")).is_none(),
            "a plain value someone SET"
        );
        assert!(
            decode(&good.slice(..HEAD + 10)).is_none(),
            "signed but the MAC is cut short"
        );
        let mut v = good.to_vec();
        v[1] = 2;
        assert!(decode(&Bytes::from(v)).is_none(), "unknown version");
        let mut v = good.to_vec();
        v[2] |= 0x80;
        assert!(decode(&Bytes::from(v)).is_none(), "unknown flag");
    }
}
