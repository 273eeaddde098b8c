//! `[api] peers`, `peers_dns` and their timeouts: the peers a router federates queries over
//! (docs/federation.md; the federating itself is `crate::federation`), read and checked
//! without IO.

use serde::Deserialize;

use super::ApiConfig;
use crate::field_error::{at_least_one, FieldError};

pub(super) fn default_peer_timeout_ms() -> u64 {
    5_000
}

pub(super) fn default_peers_refresh_secs() -> u64 {
    30
}

/// `peers` as a list or as one comma-separated string; blanks are left out, so an unset
/// variable (`"${SLUICE_PEERS:-}"`) means no peers.
pub(super) fn peer_list<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        One(String),
        Many(Vec<String>),
    }
    let list = match List::deserialize(deserializer)? {
        List::One(text) => text.split(',').map(str::to_string).collect(),
        List::Many(list) => list,
    };
    Ok(list
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect())
}

/// Where a router finds the peers it federates queries over (`[api] peers`, `peers_dns`).
#[derive(Debug, Clone, PartialEq)]
pub enum PeerSource {
    /// A fixed list of base URLs.
    List(Vec<String>),
    /// A name resolved again and again; each address is a peer `scheme://ADDRESS:port`.
    Dns {
        scheme: String,
        host: String,
        port: u16,
    },
}

/// `[http[s]://]NAME:PORT` split into its scheme, name and port.
fn parse_peers_dns(text: &str) -> Result<PeerSource, String> {
    let (scheme, rest) = match text.split_once("://") {
        Some((scheme @ ("http" | "https"), rest)) => (scheme, rest),
        Some((other, _)) => return Err(format!("scheme `{other}` is not http or https")),
        None => ("http", text),
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("`{text}` has no port (NAME:PORT)"))?;
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("`{port}` is not a port"))?;
    if host.is_empty() || host.contains('/') {
        return Err(format!("`{text}` is not NAME:PORT"));
    }
    Ok(PeerSource::Dns {
        scheme: scheme.to_string(),
        host: host.to_string(),
        port,
    })
}

/// A peer's base URL: `http(s)://HOST[:PORT]`, no path.
fn check_peer_url(url: &str) -> Result<(), String> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("`{url}` is not a url: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(format!(
            "`{url}` is not http://HOST:PORT or https://HOST:PORT"
        ));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!("`{url}` has a path: give the router's base url"));
    }
    Ok(())
}

impl ApiConfig {
    /// The peers this router federates queries over, if any.
    pub fn peer_source(&self) -> Option<PeerSource> {
        match self.peers_dns.as_deref().map(str::trim) {
            Some(dns) if !dns.is_empty() => parse_peers_dns(dns).ok(),
            _ if !self.peers.is_empty() => Some(PeerSource::List(
                self.peers
                    .iter()
                    .map(|p| p.trim_end_matches('/').to_string())
                    .collect(),
            )),
            _ => None,
        }
    }

    pub(super) fn validate_peers(&self) -> Result<(), FieldError> {
        let dns = self.peers_dns.as_deref().map(str::trim).unwrap_or("");
        if !dns.is_empty() && !self.peers.is_empty() {
            return Err(FieldError::new(
                "peers_dns",
                "contradicts `peers`: give a list or a name to resolve, not both",
            ));
        }
        if !dns.is_empty() {
            parse_peers_dns(dns).map_err(|e| FieldError::new("peers_dns", e))?;
        }
        for (i, peer) in self.peers.iter().enumerate() {
            check_peer_url(peer).map_err(|e| FieldError::new(format!("peers[{i}]"), e))?;
        }
        at_least_one(&[
            ("peer_timeout_ms", self.peer_timeout_ms),
            ("peers_refresh_secs", self.peers_refresh_secs),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_sources() {
        let config = |toml: &str| -> ApiConfig { toml::from_str(toml).expect("parses") };
        let sources = [
            (
                "peers = \"http://a:1/, http://b:2\"",
                Some(PeerSource::List(vec![
                    "http://a:1".into(),
                    "http://b:2".into(),
                ])),
            ),
            (
                "peers_dns = \"https://aggs.ns.svc:8686\"",
                Some(PeerSource::Dns {
                    scheme: "https".into(),
                    host: "aggs.ns.svc".into(),
                    port: 8686,
                }),
            ),
            ("peers_dns = \"\"", None),
            ("", None),
        ];
        for (toml, expected) in sources {
            let got = config(&format!("address = \"127.0.0.1:1\"\n{toml}")).peer_source();
            assert_eq!(got, expected, "{toml}");
        }
    }
}
