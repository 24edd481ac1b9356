//! [`TcpProxy`]: a TCP forwarder with an off switch, to simulate a broker
//! (RabbitMQ) or a database becoming unreachable and coming back.
//!
//! ```no_run
//! # async fn demo(broker: std::net::SocketAddr) -> std::io::Result<()> {
//! use latchkey_testkit::TcpProxy;
//!
//! let proxy = TcpProxy::start(broker).await?;
//! // ... point the application at proxy.addr() ...
//! proxy.set_down(true); // every forwarded connection is cut
//! proxy.set_down(false); // new connections are forwarded again
//! # Ok(()) }
//! ```

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Forwards every connection made to [`addr`](Self::addr) to a target address.
///
/// While down ([`set_down(true)`](Self::set_down)), the proxy keeps its port
/// but accepts each new connection and closes it at once, so clients connect
/// and then read end-of-stream (or a reset); connections are never refused.
/// Cloning gives another handle; the proxy stops (closing its port and every
/// connection) when the last handle is dropped.
#[derive(Clone)]
pub struct TcpProxy {
    shared: Arc<Shared>,
    /// Dropping the last sender stops the accept loop and every connection.
    control: Arc<watch::Sender<ProxyState>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct ProxyState {
    down: bool,
}

struct Shared {
    addr: SocketAddr,
    target: SocketAddr,
    opened: AtomicU64,
    active: AtomicUsize,
}

impl TcpProxy {
    /// Listens on `127.0.0.1` on a free port and forwards to `target`.
    pub async fn start(target: SocketAddr) -> io::Result<TcpProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let shared = Arc::new(Shared {
            addr: listener.local_addr()?,
            target,
            opened: AtomicU64::new(0),
            active: AtomicUsize::new(0),
        });
        let (control, control_rx) = watch::channel(ProxyState::default());
        tokio::spawn(accept_loop(listener, shared.clone(), control_rx));
        Ok(TcpProxy {
            shared,
            control: Arc::new(control),
        })
    }

    /// The address clients should connect to.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The port clients should connect to.
    pub fn port(&self) -> u16 {
        self.shared.addr.port()
    }

    /// The address connections are forwarded to.
    pub fn target(&self) -> SocketAddr {
        self.shared.target
    }

    /// `true`: close every forwarded connection now (both sides) and close new
    /// connections as soon as they are accepted. `false`: forward again.
    pub fn set_down(&self, down: bool) {
        self.control.send_modify(|state| state.down = down);
    }

    /// Whether the proxy is down.
    pub fn is_down(&self) -> bool {
        self.control.borrow().down
    }

    /// Connections accepted for forwarding since start (not those closed
    /// because the proxy was down).
    pub fn connections_opened(&self) -> u64 {
        self.shared.opened.load(Ordering::Relaxed)
    }

    /// Forwarded connections currently open.
    pub fn active_connections(&self) -> usize {
        self.shared.active.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for TcpProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpProxy")
            .field("addr", &self.shared.addr)
            .field("target", &self.shared.target)
            .field("down", &self.is_down())
            .field("connections_opened", &self.connections_opened())
            .field("active_connections", &self.active_connections())
            .finish()
    }
}

/// Accepts connections until the last handle is dropped.
async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut control: watch::Receiver<ProxyState>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((inbound, _)) => {
                    if control.borrow().down {
                        drop(inbound);
                        continue;
                    }
                    shared.opened.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(forward(inbound, shared.clone(), control.clone()));
                }
                Err(error) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::debug!(%error, "TCP proxy accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            changed = control.changed() => {
                if changed.is_err() {
                    return; // every handle dropped
                }
            }
        }
    }
}

/// Forwards one connection until either side closes it, the proxy goes down,
/// or the last handle is dropped.
async fn forward(
    mut inbound: TcpStream,
    shared: Arc<Shared>,
    mut control: watch::Receiver<ProxyState>,
) {
    shared.active.fetch_add(1, Ordering::Relaxed);
    let target = shared.target;
    let pipe = async move {
        inbound.set_nodelay(true)?;
        let mut outbound = TcpStream::connect(target).await?;
        outbound.set_nodelay(true)?;
        tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await
    };
    tokio::select! {
        result = pipe => {
            if let Err(error) = result {
                tracing::trace!(%error, %target, "TCP proxy connection ended with an error");
            }
        }
        // Err: every handle dropped. Either way the streams are dropped (closed).
        _ = control.wait_for(|state| state.down) => {}
    }
    shared.active.fetch_sub(1, Ordering::Relaxed);
}
