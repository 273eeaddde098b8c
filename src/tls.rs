//! TLS for the network sources and the API listener (rustls): a certificate and key, and
//! optionally a CA to verify client certificates (mutual TLS: a client without a
//! certificate signed by that CA is refused during the handshake). And the HTTPS clients'
//! side (the `http` sink, the alert notifiers, the Kubernetes watch, `sluice query`): the
//! CAs they trust and, for mutual TLS, the certificate they present.
//!
//! Every file error names the config field it came from (`tls.key_file: cannot read ...`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::field_error::FieldError;

/// `tls = { crt_file = "...", key_file = "...", ca_file = "..." }` on a `tcp` or `http`
/// source, or on `[api]`.
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
    #[error("{field}: cannot read {path}: {source}")]
    Read {
        field: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{field}: {path}: {message}")]
    Pem {
        field: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("invalid tls setup: {0}")]
    Rustls(String),
    #[error("no trusted CA certificates: install the system's (Debian: ca-certificates) or set tls.ca_file")]
    NoTrustedCa,
    #[error("{0}")]
    Usage(&'static str),
}

impl TlsError {
    /// The same error naming `field` instead (a CA file given by another option, such as
    /// `api.ca_file` or the CLI's `--ca-file`).
    pub fn for_field(self, field: &'static str) -> TlsError {
        match self {
            TlsError::Read { path, source, .. } => TlsError::Read {
                field,
                path,
                source,
            },
            TlsError::Pem { path, message, .. } => TlsError::Pem {
                field,
                path,
                message,
            },
            other => other,
        }
    }
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
        let certs = read_certs(&self.crt_file, "tls.crt_file")?;
        let key = read_key(&self.key_file, "tls.key_file")?;
        let builder = ServerConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string().to_lowercase()))?;
        let builder = match &self.ca_file {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                add_roots(&mut roots, ca, "tls.ca_file")?;
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

/// `tls = { ca_file = "...", crt_file = "...", key_file = "..." }` on an HTTPS client (the
/// `http` sink): CAs trusted besides the system's, and the certificate presented to a
/// server that asks for one (mutual TLS).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTlsConfig {
    /// PEM CA certificates trusted as well as the system's (a private CA).
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain presented to the server; with `key_file`.
    pub crt_file: Option<PathBuf>,
    /// PEM private key of `crt_file`.
    pub key_file: Option<PathBuf>,
}

impl ClientTlsConfig {
    /// Syntactic checks only (no IO: the files are read when the component starts).
    pub fn validate(&self) -> Result<(), FieldError> {
        for (field, path) in [
            ("tls.ca_file", &self.ca_file),
            ("tls.crt_file", &self.crt_file),
            ("tls.key_file", &self.key_file),
        ] {
            if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                return Err(FieldError::new(field, "must not be empty"));
            }
        }
        match (&self.crt_file, &self.key_file) {
            (Some(_), None) => Err(FieldError::new(
                "tls.key_file",
                "is required with tls.crt_file (the client certificate's private key)",
            )),
            (None, Some(_)) => Err(FieldError::new(
                "tls.crt_file",
                "is required with tls.key_file (the client certificate)",
            )),
            _ => Ok(()),
        }
    }

    /// Reads the files and builds the client config (`https`: see [`client_config`]).
    pub fn client_config(&self, https: bool) -> Result<ClientConfig, TlsError> {
        let identity = match (&self.crt_file, &self.key_file) {
            (Some(crt), Some(key)) => Some((crt.as_path(), key.as_path())),
            _ => None,
        };
        client_config_with_identity(self.ca_file.as_deref(), identity, https)
    }
}

/// A client config trusting the system's CA certificates (for `https://` destinations
/// only, so that plain-HTTP ones need no certificate store) and those in `ca_file`.
pub fn client_config(ca_file: Option<&Path>, https: bool) -> Result<ClientConfig, TlsError> {
    client_config_with_identity(ca_file, None, https)
}

/// [`client_config`] presenting the certificate and key in `identity` (`crt_file`,
/// `key_file`) to servers that ask for one.
pub fn client_config_with_identity(
    ca_file: Option<&Path>,
    identity: Option<(&Path, &Path)>,
    https: bool,
) -> Result<ClientConfig, TlsError> {
    build_client_config(ca_file, identity, https, CONFIG_FIELDS)
}

/// The names file errors carry: the config's fields, or the CLI's flags.
struct FileNames {
    ca: &'static str,
    crt: &'static str,
    key: &'static str,
}

const CONFIG_FIELDS: FileNames = FileNames {
    ca: "tls.ca_file",
    crt: "tls.crt_file",
    key: "tls.key_file",
};

const CLI_FLAGS: FileNames = FileNames {
    ca: "--ca-file",
    crt: "--cert-file",
    key: "--key-file",
};

/// The CLI's `--ca-file`, `--cert-file` and `--key-file`, for a router API on https: the CAs
/// trusted besides the system's, and the certificate presented when the API requires
/// client certificates (`[api] tls.ca_file`).
#[derive(Debug, Clone, Default)]
pub struct CliTls {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl CliTls {
    /// Reads the files and builds the client config; errors name the flag.
    pub fn client_config(&self) -> Result<ClientConfig, TlsError> {
        let identity = match (&self.cert_file, &self.key_file) {
            (Some(crt), Some(key)) => Some((crt.as_path(), key.as_path())),
            (None, None) => None,
            (Some(_), None) => {
                return Err(TlsError::Usage(
                    "--cert-file needs --key-file (the certificate's private key)",
                ))
            }
            (None, Some(_)) => {
                return Err(TlsError::Usage(
                    "--key-file needs --cert-file (the certificate it belongs to)",
                ))
            }
        };
        build_client_config(self.ca_file.as_deref(), identity, true, CLI_FLAGS)
    }
}

fn build_client_config(
    ca_file: Option<&Path>,
    identity: Option<(&Path, &Path)>,
    https: bool,
    names: FileNames,
) -> Result<ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    if https {
        // Unreadable entries of the system store are skipped; an empty store is an error
        // below unless `ca_file` fills it.
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    }
    if let Some(path) = ca_file {
        add_roots(&mut roots, path, names.ca)?;
    }
    if https && roots.is_empty() {
        return Err(TlsError::NoTrustedCa);
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| TlsError::Rustls(e.to_string().to_lowercase()))?
    .with_root_certificates(roots);
    match identity {
        None => Ok(builder.with_no_client_auth()),
        Some((crt, key)) => builder
            .with_client_auth_cert(read_certs(crt, names.crt)?, read_key(key, names.key)?)
            .map_err(|e| TlsError::Rustls(e.to_string().to_lowercase())),
    }
}

/// Adds the CA certificates of `ca_file` (named `field` in errors) to `roots`.
fn add_roots(roots: &mut RootCertStore, path: &Path, field: &'static str) -> Result<(), TlsError> {
    for cert in read_certs(path, field)? {
        roots.add(cert).map_err(|e| TlsError::Pem {
            field,
            path: path.to_path_buf(),
            message: e.to_string().to_lowercase(),
        })?;
    }
    Ok(())
}

fn read(path: &Path, field: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        field,
        path: path.to_path_buf(),
        source,
    })
}

fn read_certs(path: &Path, field: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path, field)?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut pem.as_slice()).collect();
    let certs = certs.map_err(|e| TlsError::Pem {
        field,
        path: path.to_path_buf(),
        message: e.to_string().to_lowercase(),
    })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            field,
            path: path.to_path_buf(),
            message: "no certificate found".into(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path, field: &'static str) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path, field)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| TlsError::Pem {
            field,
            path: path.to_path_buf(),
            message: e.to_string().to_lowercase(),
        })?
        .ok_or_else(|| TlsError::Pem {
            field,
            path: path.to_path_buf(),
            message: "no private key found".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_tls_needs_a_key_with_its_certificate() {
        let config = |toml: &str| -> ClientTlsConfig { toml::from_str(toml).expect("parses") };
        let cases = [
            ("", Ok(())),
            ("ca_file = \"/ca.pem\"", Ok(())),
            ("crt_file = \"/c.pem\"\nkey_file = \"/k.pem\"", Ok(())),
            ("crt_file = \"/c.pem\"", Err("tls.key_file")),
            ("key_file = \"/k.pem\"", Err("tls.crt_file")),
            ("ca_file = \"\"", Err("tls.ca_file")),
        ];
        for (toml, expected) in cases {
            let got = config(toml).validate().map_err(|e| e.field);
            assert_eq!(got, expected.map_err(str::to_string), "{toml}");
        }
    }

    #[test]
    fn file_errors_name_the_field() {
        let missing = std::path::PathBuf::from("/nonexistent/sluice-test.pem");
        let server = TlsConfig {
            crt_file: missing.clone(),
            key_file: missing.clone(),
            ca_file: None,
        };
        let error = server.acceptor().err().expect("no such file").to_string();
        assert!(error.starts_with("tls.crt_file: cannot read"), "{error}");
        let error = client_config(Some(&missing), false)
            .expect_err("no such file")
            .to_string();
        assert!(error.starts_with("tls.ca_file: cannot read"), "{error}");
        let error = client_config(Some(&missing), false)
            .map_err(|e| e.for_field("--ca-file"))
            .expect_err("no such file")
            .to_string();
        assert!(error.starts_with("--ca-file: cannot read"), "{error}");
    }
}
