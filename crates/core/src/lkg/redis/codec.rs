//! What the shared cache stores: the Redis value layout of an [`Entry`].
//!
//! Value layout (all integers big-endian):
//! `b'L'`, version `1`, flags (bit 0 JSON, bit 1 signed), stored-at ms (u64),
//! the 32-byte HMAC when signed, then the body. 11 bytes of overhead unsigned, 43 signed.

use bytes::Bytes;

use crate::lkg::Entry;

const MAGIC: u8 = b'L';
const VERSION: u8 = 1;
const JSON: u8 = 1;
const SIGNED: u8 = 2;
const HEAD: usize = 11;

pub fn encode(e: &Entry) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEAD + 32 + e.body.len());
    let flags = if e.json { JSON } else { 0 } | if e.mac.is_some() { SIGNED } else { 0 };
    out.extend_from_slice(&[MAGIC, VERSION, flags]);
    out.extend_from_slice(&e.stored_at_ms.to_be_bytes());
    if let Some(mac) = &e.mac {
        out.extend_from_slice(mac);
    }
    out.extend_from_slice(&e.body);
    out
}

/// `None` for anything this version did not write (a foreign or damaged value).
pub fn decode(v: &Bytes) -> Option<Entry> {
    if v.len() < HEAD || v[0] != MAGIC || v[1] != VERSION || v[2] & !(JSON | SIGNED) != 0 {
        return None;
    }
    let flags = v[2];
    let stored_at_ms = u64::from_be_bytes(v[3..HEAD].try_into().ok()?);
    let (mac, body_at) = if flags & SIGNED != 0 {
        (
            Some(<[u8; 32]>::try_from(v.get(HEAD..HEAD + 32)?).ok()?),
            HEAD + 32,
        )
    } else {
        (None, HEAD)
    };
    Some(Entry {
        body: v.slice(body_at..),
        json: flags & JSON != 0,
        stored_at_ms,
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
            mac,
        }
    }

    #[test]
    fn entries_round_trip() {
        for e in [
            entry(None, true, b"{\"a\":1}"),
            entry(Some([7; 32]), false, b"text"),
            entry(Some([0; 32]), true, b""),
        ] {
            let v = Bytes::from(encode(&e));
            assert_eq!(
                v.len(),
                HEAD + e.body.len() + if e.mac.is_some() { 32 } else { 0 }
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
