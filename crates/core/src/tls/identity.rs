//! The mTLS identity: the client certificate chain and its private key, checked against
//! each other and handed to rustls as they are (`client_config.rs`).
//!
//! The check compares the key's public key with the certificate's SubjectPublicKeyInfo,
//! byte for byte, as rustls' own `CertifiedKey::keys_match` does. That method parses the
//! certificate with webpki, which refuses X.509 v1 certificates (`openssl x509 -req`
//! without `-extfile`), and the error came out as "does not match" for a matching key
//! (issue 25). A client presents its certificate without needing to understand it, so
//! the SubjectPublicKeyInfo is located here by walking the certificate's outer DER
//! structure, any version: seven length-prefixed fields, not worth a full X.509 parser.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::sign::CertifiedKey;

/// Why a certificate and key cannot be used together (the caller names the files).
#[derive(Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// rustls has no signer for this key type.
    KeyType,
    /// The certificate's public key is not the key's.
    Different,
    /// The certificate's DER structure could not be followed to its public key.
    Unreadable,
}

/// `chain` (end-entity first) with `key`, if the key is the certificate's.
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: &rustls::pki_types::PrivateKeyDer<'_>,
) -> Result<Arc<CertifiedKey>, Mismatch> {
    let signing =
        rustls::crypto::ring::sign::any_supported_type(key).map_err(|_| Mismatch::KeyType)?;
    // A key type that cannot tell its public key (none of ring's) is taken on trust, as
    // rustls does.
    if let (Some(key_spki), Some(cert)) = (signing.public_key(), chain.first()) {
        match subject_public_key_info(cert) {
            None => return Err(Mismatch::Unreadable),
            Some(spki) if spki != key_spki.as_ref() => return Err(Mismatch::Different),
            Some(_) => {}
        }
    }
    Ok(Arc::new(CertifiedKey::new(chain, signing)))
}

/// The SubjectPublicKeyInfo element (tag and length included) of a DER certificate.
///
/// RFC 5280 4.1: `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm,
/// signatureValue }`, `TBSCertificate ::= SEQUENCE { version [0] EXPLICIT (absent in v1),
/// serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, ... }`.
pub fn subject_public_key_info(cert: &[u8]) -> Option<&[u8]> {
    const SEQUENCE: u8 = 0x30;
    const VERSION: u8 = 0xA0;
    let (tag, certificate, _) = der(cert)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, mut tbs, _) = der(certificate)?;
    if tag != SEQUENCE {
        return None;
    }
    if tbs.first() == Some(&VERSION) {
        tbs = der(tbs)?.2;
    }
    // serialNumber, signature, issuer, validity, subject.
    for _ in 0..5 {
        tbs = der(tbs)?.2;
    }
    let (tag, _, rest) = der(tbs)?;
    (tag == SEQUENCE).then(|| &tbs[..tbs.len() - rest.len()])
}

/// One DER element: its tag, its contents and what follows it. X.509's fields before the
/// public key all have one-byte tags; a length takes at most four bytes here.
fn der(d: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *d.first()?;
    let first = *d.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for b in d.get(2..2 + n)? {
            len = len << 8 | usize::from(*b);
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    Some((tag, d.get(header..end)?, d.get(end..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_or_odd_der_is_unreadable_never_a_panic() {
        assert_eq!(subject_public_key_info(&[]), None);
        assert_eq!(subject_public_key_info(&[0x30]), None);
        assert_eq!(subject_public_key_info(&[0x30, 0x85, 1, 2, 3, 4, 5]), None);
        assert_eq!(
            subject_public_key_info(&[0x30, 0x82, 0xff, 0xff, 0x30]),
            None
        );
        assert_eq!(subject_public_key_info(&[0x02, 0x01, 0x00]), None);
        // Every prefix of a real structure: none panics.
        let nested = [
            0x30, 0x0f, 0x30, 0x0d, 0x02, 0x01, 0x01, 0x30, 0x00, 0x30, 0x00, 0x30, 0x00, 0x30,
            0x00, 0x30, 0x00,
        ];
        for n in 0..nested.len() {
            let _ = subject_public_key_info(&nested[..n]);
        }
        // v1 shape: serial, signature, issuer, validity, subject, then the key.
        assert_eq!(
            subject_public_key_info(&nested),
            Some(&[0x30, 0x00][..]),
            "the sixth field of a v1 tbsCertificate"
        );
    }
}
