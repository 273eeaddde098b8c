//! Listening sockets that outlive a source's instance, so that a reload replacing a source
//! whose address stayed the same passes its socket on instead of binding again.
//!
//! Binding again cannot work while the old instance listens (the address is in use), and
//! closing first would refuse connections (TCP) or drop datagrams (UDP) in between. So the
//! topology keeps, across reloads, every socket the running sources hold ([`Sockets`], by
//! source id and role); a source's `open` takes the one its predecessor holds when the
//! configured address and the kind of socket are the same ([`Sockets::inherit`]), and
//! binds otherwise. The socket is shared (`Arc`) rather than moved: the new instance
//! accepts on it while the old one stops accepting and finishes, and it closes when the
//! last instance holding it has ended and the table no longer has it. Connections waiting
//! meanwhile sit in the kernel's backlog, datagrams in the socket's buffer.
//!
//! A `tcp` source also passes its open connections on ([`Handover`]): stopped, each of
//! the old instance's connections sends what it decoded, then gives its stream and the
//! bytes of its unfinished frame to the new instance, which goes on reading it with the
//! new settings. Closing them instead would lose what their senders have in flight.
//! (HTTP connections are not passed: the old instance answers the requests it has, and
//! its clients' next requests come on new connections.)

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;

use super::tcp::Passed;
use super::SourceError;

/// Which of a source's sockets (the http source has `address` and `grpc_address`).
pub type Role = &'static str;

/// A bound socket, shared by the instances of one source.
#[derive(Clone)]
pub enum Socket {
    Stream {
        listener: Arc<TcpListener>,
        handover: Arc<Handover>,
    },
    Datagram(Arc<UdpSocket>),
}

/// Where a stopped `tcp` source instance passes its open connections: the instance that
/// took its listener. Unbounded, but it holds at most the old instance's connections
/// (`max_connections`), each once.
#[derive(Default)]
pub struct Handover {
    successor: Mutex<Option<mpsc::UnboundedSender<Passed>>>,
}

impl Handover {
    /// Makes the caller the successor: from now on a stopped instance passes its
    /// connections to `rx`. Set when the new instance is opened; the old one passes only
    /// once stopped, which a reload does only after everything opened. (A reload refused
    /// after this drops `rx`, and a later stop finds the channel closed and closes the
    /// connections as without a successor.)
    pub(crate) fn succeed(&self) -> mpsc::UnboundedReceiver<Passed> {
        let (tx, rx) = mpsc::unbounded_channel();
        *lock(&self.successor) = Some(tx);
        rx
    }

    /// Passes `connection` to the successor; gives it back when there is none (the source
    /// removed, the router stopping, or the instance's own channel, closed once it stops).
    pub(crate) fn pass(&self, connection: Passed) -> Result<(), Passed> {
        match &*lock(&self.successor) {
            Some(tx) => tx.send(connection).map_err(|e| e.0),
            None => Err(connection),
        }
    }

    /// No successor: a source of another type took the listener.
    fn clear(&self) {
        *lock(&self.successor) = None;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Each update is one assignment: the value is whole even after a panic elsewhere.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A socket a source instance listens on, as its configuration names it.
#[derive(Clone)]
pub struct Bound {
    pub role: Role,
    /// The configured address (with port 0, the socket's actual port differs).
    pub address: SocketAddr,
    pub socket: Socket,
    /// Taken from the instance this one replaces rather than bound.
    pub inherited: bool,
}

/// The sockets of the running sources, by source id; held by the topology across reloads.
#[derive(Default)]
pub struct Sockets {
    held: HashMap<String, Vec<Bound>>,
}

impl Sockets {
    /// The socket `source` holds as `role` when it is bound to the same configured
    /// `address` and is of the same kind (stream or datagram).
    pub(crate) fn inherit(
        &self,
        source: &str,
        role: Role,
        address: SocketAddr,
        datagram: bool,
    ) -> Option<Socket> {
        let held = self.held.get(source)?;
        let bound = held
            .iter()
            .find(|b| b.role == role && b.address == address)?;
        match (&bound.socket, datagram) {
            (Socket::Stream { handover, .. }, false) => {
                handover.clear();
                Some(bound.socket.clone())
            }
            (Socket::Datagram(_), true) => Some(bound.socket.clone()),
            _ => None,
        }
    }

    /// What `source` listens on.
    pub fn get(&self, source: &str) -> &[Bound] {
        self.held.get(source).map(Vec::as_slice).unwrap_or_default()
    }

    /// Records what `source` listens on (replacing what it listened on before).
    pub fn set(&mut self, source: &str, bound: Vec<Bound>) {
        if bound.is_empty() {
            self.held.remove(source);
        } else {
            self.held.insert(source.to_string(), bound);
        }
    }
}

/// The listener at `address` (as configured) for `role` of `source`: its predecessor's,
/// or bound now.
pub(crate) async fn stream(
    sockets: &Sockets,
    source: &str,
    role: Role,
    address: &str,
) -> Result<(Arc<TcpListener>, Arc<Handover>, Bound), SourceError> {
    let parsed = parse(address)?;
    let (listener, handover, inherited) = match sockets.inherit(source, role, parsed, false) {
        Some(Socket::Stream { listener, handover }) => (listener, handover, true),
        _ => {
            let listener = TcpListener::bind(parsed)
                .await
                .map_err(|e| bind_error(address, e))?;
            (Arc::new(listener), Arc::default(), false)
        }
    };
    let bound = Bound {
        role,
        address: parsed,
        socket: Socket::Stream {
            listener: listener.clone(),
            handover: handover.clone(),
        },
        inherited,
    };
    Ok((listener, handover, bound))
}

/// The UDP socket at `address` (as configured) of `source`: its predecessor's, or bound now.
pub(crate) async fn datagram(
    sockets: &Sockets,
    source: &str,
    address: &str,
) -> Result<(Arc<UdpSocket>, Bound), SourceError> {
    let parsed = parse(address)?;
    let (socket, inherited) = match sockets.inherit(source, "address", parsed, true) {
        Some(Socket::Datagram(socket)) => (socket, true),
        _ => (
            Arc::new(
                UdpSocket::bind(parsed)
                    .await
                    .map_err(|e| bind_error(address, e))?,
            ),
            false,
        ),
    };
    let bound = Bound {
        role: "address",
        address: parsed,
        socket: Socket::Datagram(socket.clone()),
        inherited,
    };
    Ok((socket, bound))
}

fn parse(address: &str) -> Result<SocketAddr, SourceError> {
    super::tcp::parse_address(address).map_err(|e| {
        let invalid = std::io::Error::new(std::io::ErrorKind::InvalidInput, e.message);
        bind_error(address, invalid)
    })
}

fn bind_error(address: &str, source: std::io::Error) -> SourceError {
    SourceError::Bind {
        address: address.to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_socket_passes_on_only_at_the_same_address_kind_and_source() {
        let mut sockets = Sockets::default();
        let (listener, _, tcp) = stream(&sockets, "in", "address", "127.0.0.1:0")
            .await
            .unwrap();
        let (udp_socket, udp) = datagram(&sockets, "udp_in", "127.0.0.1:0").await.unwrap();
        assert!(!tcp.inherited && !udp.inherited);
        sockets.set("in", vec![tcp]);
        sockets.set("udp_in", vec![udp]);
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();

        // The same source, address and kind: the very socket, not a new one.
        let (again, _, bound) = stream(&sockets, "in", "address", "127.0.0.1:0")
            .await
            .unwrap();
        assert!(bound.inherited && Arc::ptr_eq(&again, &listener));
        let (same_udp, bound) = datagram(&sockets, "udp_in", "127.0.0.1:0").await.unwrap();
        assert!(bound.inherited && Arc::ptr_eq(&same_udp, &udp_socket));
        // Another kind, role, source or address: none.
        assert!(sockets.inherit("in", "address", any, true).is_none());
        assert!(sockets.inherit("in", "grpc_address", any, false).is_none());
        assert!(sockets.inherit("other", "address", any, false).is_none());
        let elsewhere: SocketAddr = "127.0.0.2:0".parse().unwrap();
        assert!(sockets.inherit("in", "address", elsewhere, false).is_none());
    }

    #[test]
    fn a_dropped_successor_is_seen_closed_and_cleared() {
        let handover = Handover::default();
        let rx = handover.succeed();
        drop(rx);
        // Nothing to pass to: the caller keeps the connection and closes it itself.
        assert!(lock(&handover.successor)
            .as_ref()
            .is_some_and(|tx| tx.is_closed()));
        handover.clear();
        assert!(lock(&handover.successor).is_none());
    }
}
