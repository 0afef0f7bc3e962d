//! The accept loop: our own instead of `axum::serve`, for three things it does not
//! offer: a cap on open TCP connections (so the process never runs into its
//! open-file limit), a deadline for request headers (a client that trickles them,
//! slowloris-style, is cut off), and a bounded graceful shutdown.
//!
//! Each connection is one HTTP/1.1 hyper connection on its own task (with
//! `--tls-cert`, a TLS connection speaking HTTP/1.1 or HTTP/2, see [`super::tls`]);
//! the client's address reaches handlers as axum's `ConnectInfo<SocketAddr>`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::poll_again::PollAgain;
use super::socket_stream::{self, Prefixed};

/// How long accepting pauses after an error such as running out of file
/// descriptors, so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// The connection-level limits.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Most open TCP connections; past it new ones are closed at once.
    pub max_connections: usize,
    /// A request's headers must arrive within this.
    pub header_timeout: Duration,
    /// After shutdown begins, open connections get this long to finish.
    pub shutdown_grace: Duration,
    /// An event stream whose socket takes nothing for this long is dropped.
    pub stall_timeout: Duration,
    /// A connection whose sent data stays unacknowledged this long is closed by
    /// the kernel (`TCP_USER_TIMEOUT`): how long a vanished peer is kept.
    pub dead_peer_timeout: Duration,
}

/// Serves `router` on every one of `sockets` (a `--listen` host name may name
/// several addresses; the connection limit is shared) until `shutdown` is
/// cancelled, then lets open connections finish (event streams end on the same
/// token) for at most `shutdown_grace`. With `tls`, every connection is HTTPS
/// (HTTP/1.1 or HTTP/2); without, plain HTTP/1.1.
pub async fn serve(
    sockets: Vec<TcpListener>,
    router: Router,
    limits: ConnectionLimits,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let connections = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut next_socket = 0;
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            accepted = accept_any(&sockets, &mut next_socket) => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Per-connection errors (the peer reset before we accepted) and
                // resource exhaustion alike: note it, breathe, carry on.
                tracing::debug!(%error, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection refused: at the connection limit");
            continue;
        };
        // Events are small and latency matters more than packet count.
        let _ = stream.set_nodelay(true);
        socket_stream::fail_fast(&stream, limits.dead_peer_timeout);
        let router = router.clone();
        let shutdown = shutdown.clone();
        let limits = limits.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            match tls {
                Some(acceptor) => {
                    let deadlines = super::tls::Deadlines {
                        header_timeout: limits.header_timeout,
                        stall_timeout: limits.stall_timeout,
                        ping_every: limits.dead_peer_timeout,
                    };
                    PollAgain::new(super::tls::serve_connection(
                        stream, peer, acceptor, router, deadlines, shutdown,
                    ))
                    .await;
                }
                None => serve_connection(stream, peer, router, limits, shutdown).await,
            }
            drop(slot);
        });
    }
    connections.close();
    if tokio::time::timeout(limits.shutdown_grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "connections still open after the shutdown grace period"
        );
    }
    Ok(())
}

/// The next connection on any of `sockets`. The scan starts after the
/// socket that accepted last, so a busy one cannot starve the others.
async fn accept_any(
    sockets: &[TcpListener],
    next: &mut usize,
) -> io::Result<(tokio::net::TcpStream, SocketAddr)> {
    std::future::poll_fn(|cx| {
        for offset in 0..sockets.len() {
            let index = (*next + offset) % sockets.len();
            if let Poll::Ready(accepted) = sockets[index].poll_accept(cx) {
                *next = (index + 1) % sockets.len();
                return Poll::Ready(accepted);
            }
        }
        Poll::Pending
    })
    .await
}

async fn serve_connection(
    mut stream: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) {
    // The first request head is read here, under the header deadline: an event
    // stream is written directly (see `socket_stream`), anything else goes to hyper.
    let mut head = Vec::with_capacity(1024);
    let head_len = tokio::select! {
        read = tokio::time::timeout(limits.header_timeout, socket_stream::read_head(&mut stream, &mut head)) => match read {
            Ok(Ok(head_len)) => head_len,
            Ok(Err(error)) => {
                tracing::debug!(%peer, %error, "connection ended before its first request");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "request headers too slow: connection cut off");
                return;
            }
        },
        _ = shutdown.cancelled() => return,
    };
    if head.is_empty() {
        return;
    }
    if let Some((request, handoff)) =
        head_len.and_then(|len| socket_stream::stream_request(&head[..len], peer))
    {
        drop(head);
        let stall = limits.stall_timeout;
        Box::pin(socket_stream::serve(
            stream, request, handoff, router, stall,
        ))
        .await;
        return;
    }
    // A command's body wakes its own connection task: see `PollAgain`.
    PollAgain::new(serve_hyper(
        Prefixed::new(head, stream, limits.stall_timeout),
        peer,
        router,
        limits.header_timeout,
        shutdown,
    ))
    .await;
}

async fn serve_hyper(
    stream: Prefixed,
    peer: SocketAddr,
    router: Router,
    header_timeout: Duration,
    shutdown: CancellationToken,
) {
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let router = router.clone();
        // The router's error type is Infallible: every failure is a response.
        async move { router.oneshot(request.map(Body::new)).await }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        // Clients hanging up mid-request and header timeouts land here.
        tracing::debug!(%peer, %error, "connection ended with an error");
    }
}
