//! TLS for the network sources (rustls): a certificate and key, and optionally a CA to
//! verify client certificates (mutual TLS: a client without a certificate signed by that CA
//! is refused during the handshake). And the trust of the alert notifiers' HTTPS client.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::field_error::FieldError;

/// `tls = { crt_file = "...", key_file = "...", ca_file = "..." }` on a `tcp` or `http`
/// source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain presented to clients.
    pub crt_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM CA certificates; when set, clients must present a certificate signed by one.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Pem { path: PathBuf, message: String },
    #[error("invalid tls setup: {0}")]
    Rustls(String),
    #[error("no trusted CA certificates: install the system's (Debian: ca-certificates) or set tls.ca_file")]
    NoTrustedCa,
}

impl TlsConfig {
    /// Syntactic checks only (no IO: the files are read when the source starts).
    pub fn validate(&self) -> Result<(), FieldError> {
        for (field, path) in [
            ("tls.crt_file", &self.crt_file),
            ("tls.key_file", &self.key_file),
        ] {
            if path.as_os_str().is_empty() {
                return Err(FieldError::new(field, "must not be empty"));
            }
        }
        Ok(())
    }

    /// Reads the files and builds the acceptor.
    pub fn acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        let certs = read_certs(&self.crt_file)?;
        let key = read_key(&self.key_file)?;
        let builder = ServerConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string().to_lowercase()))?;
        let builder = match &self.ca_file {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in read_certs(ca)? {
                    roots.add(cert).map_err(|e| TlsError::Pem {
                        path: ca.clone(),
                        message: e.to_string().to_lowercase(),
                    })?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    Arc::new(tokio_rustls::rustls::crypto::ring::default_provider()),
                )
                .build()
                .map_err(|e| TlsError::Rustls(e.to_string().to_lowercase()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(certs, key)
            .map_err(|e| TlsError::Rustls(e.to_string().to_lowercase()))?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// Builds the acceptor of an optional TLS config (sources without `tls` serve plain TCP).
pub fn optional_acceptor(config: Option<&TlsConfig>) -> Result<Option<TlsAcceptor>, TlsError> {
    config.map(TlsConfig::acceptor).transpose()
}

/// How long a TLS handshake may take before the connection is dropped, so a client that
/// connects and says nothing cannot hold a connection slot.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs the server side of a handshake within [`HANDSHAKE_TIMEOUT`].
pub async fn accept<IO>(
    acceptor: &TlsAcceptor,
    stream: IO,
) -> Result<tokio_rustls::server::TlsStream<IO>, std::io::Error>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "tls handshake timed out",
        )),
    }
}

/// A client config trusting the system's CA certificates (for `https://` destinations
/// only, so that plain-HTTP ones need no certificate store) and those in `ca_file`.
pub fn client_config(ca_file: Option<&Path>, https: bool) -> Result<ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    if https {
        // Unreadable entries of the system store are skipped; an empty store is an error
        // below unless `ca_file` fills it.
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    }
    if let Some(path) = ca_file {
        for cert in read_certs(path)? {
            roots.add(cert).map_err(|e| TlsError::Pem {
                path: path.to_path_buf(),
                message: e.to_string().to_lowercase(),
            })?;
        }
    }
    if https && roots.is_empty() {
        return Err(TlsError::NoTrustedCa);
    }
    Ok(ClientConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| TlsError::Rustls(e.to_string().to_lowercase()))?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut pem.as_slice()).collect();
    let certs = certs.map_err(|e| TlsError::Pem {
        path: path.to_path_buf(),
        message: e.to_string().to_lowercase(),
    })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_path_buf(),
            message: "no certificate found".into(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            message: e.to_string().to_lowercase(),
        })?
        .ok_or_else(|| TlsError::Pem {
            path: path.to_path_buf(),
            message: "no private key found".into(),
        })
}
