//! The mTLS identity: the client certificate chain and its private key, checked against
//! each other and handed to rustls as they are (`client_config.rs`).
//!
//! The check compares the key's public key with the certificate's SubjectPublicKeyInfo,
//! byte for byte, as rustls' own `CertifiedKey::keys_match` does. That method parses the
//! certificate with webpki, which refuses X.509 v1 certificates (`openssl x509 -req`
//! without `-extfile`), and the error came out as "does not match" for a matching key
//! (issue 25). A client presents its certificate without needing to understand it, so
//! the SubjectPublicKeyInfo is read here with RustCrypto's `x509-cert`, which takes any
//! version.

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
            Some(spki) if spki.as_slice() != key_spki.as_ref() => return Err(Mismatch::Different),
            Some(_) => {}
        }
    }
    Ok(Arc::new(CertifiedKey::new(chain, signing)))
}

/// The SubjectPublicKeyInfo of a DER certificate, as DER (tag and length included): what
/// a key's `public_key()` gives, so the two compare byte for byte. Any X.509 version: the
/// version field is optional in RFC 5280 (v1 when absent), and x509-cert reads it so.
pub fn subject_public_key_info(cert: &[u8]) -> Option<Vec<u8>> {
    use x509_cert::der::{Decode, Encode};
    let cert = x509_cert::Certificate::from_der(cert).ok()?;
    cert.tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .ok()
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
        let nested = [
            0x30, 0x0f, 0x30, 0x0d, 0x02, 0x01, 0x01, 0x30, 0x00, 0x30, 0x00, 0x30, 0x00, 0x30,
            0x00, 0x30, 0x00,
        ];
        for n in 0..=nested.len() {
            assert_eq!(
                subject_public_key_info(&nested[..n]),
                None,
                "not a certificate"
            );
        }
    }
}
