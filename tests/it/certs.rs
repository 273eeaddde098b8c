//! Test certificates: a CA and certificates signed by it, made with rcgen.

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use tokio_rustls::rustls::pki_types::CertificateDer;

/// A certificate and its key, as DER and PEM.
pub(crate) struct Issued {
    pub(crate) cert: CertificateDer<'static>,
    pub(crate) cert_pem: String,
    pub(crate) key_der: Vec<u8>,
    pub(crate) key_pem: String,
}

/// A certificate for `names` (the first is its common name), signed by `ca`, or a
/// self-signed CA without one.
pub(crate) fn issue(
    names: &[&str],
    ca: Option<(&rcgen::Certificate, &KeyPair)>,
) -> (Issued, rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    // Distinct subjects: OpenSSL (curl) takes a certificate whose subject equals its issuer's
    // for self-signed, and rcgen gives every certificate the same default subject.
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, names[0]);
    let cert = match ca {
        None => {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.self_signed(&key).unwrap()
        }
        Some((ca_cert, ca_key)) => params.signed_by(&key, ca_cert, ca_key).unwrap(),
    };
    let issued = Issued {
        cert: cert.der().clone(),
        cert_pem: cert.pem(),
        key_der: key.serialize_der(),
        key_pem: key.serialize_pem(),
    };
    (issued, cert, key)
}
