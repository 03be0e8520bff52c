//! The slice of RESP2 the shared cache needs: commands out as arrays of bulk strings,
//! replies parsed from a buffer that may hold a partial reply (so reading stays
//! cancel-safe: bytes are only consumed once a whole reply has arrived).

use bytes::Bytes;

/// One reply. Arrays are parsed (and ignored by the cache) so an unexpected reply never
/// desynchronises the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Bytes>),
    Array(Option<Vec<Reply>>),
}

/// The stream is not RESP (or a length is absurd): the connection must be dropped.
#[derive(Debug, PartialEq, Eq)]
pub struct ProtocolError;

/// Largest bulk string accepted; LKG entries are far smaller (lkgMaxEntryBytes <= 1 GiB).
const MAX_BULK: usize = 1 << 30;
const MAX_ARRAY: usize = 1 << 20;

/// Appends `*N\r\n$len\r\narg\r\n...` to `out`.
pub fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.push(b'*');
    out.extend_from_slice(args.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in args {
        out.push(b'$');
        out.extend_from_slice(a.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Parses one reply from the start of `buf`: `Ok(None)` when it is incomplete,
/// otherwise the reply and how many bytes it took.
pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, ProtocolError> {
    parse_at(buf, 0, 0)
}

fn line(buf: &[u8], from: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(from..)?;
    let i = rest.windows(2).position(|w| w == b"\r\n")?;
    Some((&rest[..i], from + i + 2))
}

fn int(s: &[u8]) -> Result<i64, ProtocolError> {
    std::str::from_utf8(s)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(ProtocolError)
}

fn parse_at(buf: &[u8], at: usize, depth: u8) -> Result<Option<(Reply, usize)>, ProtocolError> {
    if depth > 8 {
        return Err(ProtocolError);
    }
    let Some(&tag) = buf.get(at) else {
        return Ok(None);
    };
    let Some((head, next)) = line(buf, at + 1) else {
        return Ok(None);
    };
    let text = || String::from_utf8_lossy(head).into_owned();
    Ok(Some(match tag {
        b'+' => (Reply::Simple(text()), next),
        b'-' => (Reply::Error(text()), next),
        b':' => (Reply::Int(int(head)?), next),
        b'$' => match int(head)? {
            -1 => (Reply::Bulk(None), next),
            n if n < 0 || n as usize > MAX_BULK => return Err(ProtocolError),
            n => {
                let end = next + n as usize;
                if buf.len() < end + 2 {
                    return Ok(None);
                }
                if &buf[end..end + 2] != b"\r\n" {
                    return Err(ProtocolError);
                }
                (
                    Reply::Bulk(Some(Bytes::copy_from_slice(&buf[next..end]))),
                    end + 2,
                )
            }
        },
        b'*' => match int(head)? {
            -1 => (Reply::Array(None), next),
            n if n < 0 || n as usize > MAX_ARRAY => return Err(ProtocolError),
            n => {
                let mut items = Vec::with_capacity((n as usize).min(64));
                let mut pos = next;
                for _ in 0..n {
                    match parse_at(buf, pos, depth + 1)? {
                        Some((r, p)) => {
                            items.push(r);
                            pos = p;
                        }
                        None => return Ok(None),
                    }
                }
                (Reply::Array(Some(items)), pos)
            }
        },
        _ => return Err(ProtocolError),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_commands_as_bulk_arrays() {
        let mut out = vec![];
        command(&mut out, &[b"SET", b"k", b"a\r\nb", b"PX", b"10"]);
        assert_eq!(
            out,
            b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n$2\r\nPX\r\n$2\r\n10\r\n"
        );
    }

    #[test]
    fn parses_every_reply_type() {
        assert_eq!(parse(b"+OK\r\n"), Ok(Some((Reply::Simple("OK".into()), 5))));
        assert_eq!(
            parse(b"-ERR no\r\n"),
            Ok(Some((Reply::Error("ERR no".into()), 9)))
        );
        assert_eq!(parse(b":42\r\n"), Ok(Some((Reply::Int(42), 5))));
        assert_eq!(parse(b"$-1\r\n"), Ok(Some((Reply::Bulk(None), 5))));
        assert_eq!(
            parse(b"$4\r\na\r\nb\r\n+OK"),
            Ok(Some((Reply::Bulk(Some(Bytes::from_static(b"a\r\nb"))), 10)))
        );
        let arr = parse(b"*2\r\n:1\r\n$-1\r\n").unwrap().unwrap();
        assert_eq!(
            arr,
            (
                Reply::Array(Some(vec![Reply::Int(1), Reply::Bulk(None)])),
                13
            )
        );
    }

    #[test]
    fn a_partial_reply_waits_for_more_bytes() {
        let full = b"*2\r\n$3\r\nabc\r\n:7\r\n";
        for cut in 0..full.len() {
            assert_eq!(parse(&full[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(parse(full).unwrap().is_some());
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        assert_eq!(parse(b"?\r\n"), Err(ProtocolError));
        assert_eq!(parse(b"$x\r\n"), Err(ProtocolError));
        assert_eq!(parse(b"$3\r\nabcXY"), Err(ProtocolError));
        assert_eq!(parse(b"$-5\r\n"), Err(ProtocolError));
    }
}
