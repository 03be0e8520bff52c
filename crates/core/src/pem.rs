//! PEM bundles, as both the upstream TLS material (`tls/`) and the Redis CA file
//! (`redis::read_ca_file`) check them: with the rustls types both clients load them with,
//! so what passes here loads there. A foundation: no I/O, no other module.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// The certificates a PEM bundle holds; `None` when a block does not parse.
pub fn certificates(pem: &[u8]) -> Option<usize> {
    CertificateDer::pem_slice_iter(pem)
        .try_fold(0, |n, c| c.map(|_| n + 1))
        .ok()
}
