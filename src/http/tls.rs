//! HTTPS on `--listen` (`--tls-cert`, `--tls-key`): rustls, ALPN `h2` and
//! `http/1.1`, and every connection served by hyper-util's auto builder
//! (HTTP/1.1 or HTTP/2, as the client chose) with the same router.
//!
//! Plain HTTP does not come through here: it keeps the direct socket writer
//! (`socket_stream`). Over TLS an event stream is a hyper body; over HTTP/2
//! many of them share one connection, each counted as one stream by every
//! limit (per client, per room, per node) exactly as over HTTP/1.1.
//!
//! The same deadlines as for plain HTTP apply: the handshake and the first
//! request must both arrive within `--header-timeout` (a garbage handshake, a
//! plain-HTTP request on this port or a silent client is closed and logged at
//! debug, and its slot freed); a socket that takes nothing for the stall time
//! is closed ([`StallGuard`]); on shutdown HTTP/2 connections get a `GOAWAY`
//! and their streams end.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Most concurrent streams one HTTP/2 connection may open (its
/// `SETTINGS_MAX_CONCURRENT_STREAMS`); the per-client stream limit still applies.
pub const MAX_CONCURRENT_H2_STREAMS: u32 = 256;

/// The deadlines of one TLS connection (from the accept loop's limits).
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// The handshake and the first request must both arrive within this.
    pub header_timeout: Duration,
    /// A socket that takes nothing for this long is closed; also how long an
    /// HTTP/2 ping may go unanswered.
    pub stall_timeout: Duration,
    /// How often an HTTP/2 connection is pinged.
    pub ping_every: Duration,
}

/// Reads the certificate chain and the private key (PEM files) and builds the
/// acceptor, offering ALPN `h2` then `http/1.1`. Every error names the file.
pub fn acceptor(cert: &Path, key: &Path) -> io::Result<TlsAcceptor> {
    let invalid = |path: &Path, what: String| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: {what}", path.display()),
        )
    };
    let cert_pem = std::fs::read(cert).map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("--tls-cert {}: {error}", cert.display()),
        )
    })?;
    let key_pem = std::fs::read(key).map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("--tls-key {}: {error}", key.display()),
        )
    })?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| {
            invalid(
                cert,
                format!("--tls-cert is not a PEM certificate: {error}"),
            )
        })?;
    if chain.is_empty() {
        return Err(invalid(
            cert,
            "--tls-cert holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)".into(),
        ));
    }
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| {
        invalid(
            key,
            format!("--tls-key holds no usable PEM private key: {error}"),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| invalid(cert, format!("TLS set-up failed: {error}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|error| {
            invalid(
                key,
                format!(
                    "--tls-key does not go with --tls-cert {}: {error}",
                    cert.display()
                ),
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves one TLS connection until it ends, or until shutdown (then HTTP/2
/// connections get a `GOAWAY`, and open streams end on the same token).
pub async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    router: Router,
    limits: Deadlines,
    shutdown: CancellationToken,
) {
    let deadline = tokio::time::Instant::now() + limits.header_timeout;
    let stream = StallGuard::new(stream, limits.stall_timeout);
    let tls = tokio::select! {
        handshake = tokio::time::timeout_at(deadline, acceptor.accept(stream)) => match handshake {
            Ok(Ok(tls)) => tls,
            // Garbage, a plain-HTTP request, an unknown CA on the client's side.
            Ok(Err(error)) => {
                tracing::debug!(%peer, %error, "TLS handshake failed: connection closed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake too slow: connection cut off");
                return;
            }
        },
        _ = shutdown.cancelled() => return,
    };
    let first_request = CancellationToken::new();
    let service = {
        let first_request = first_request.clone();
        hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            first_request.cancel();
            request.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            // The router's error type is Infallible: every failure is a response.
            async move { router.oneshot(request.map(Body::new)).await }
        })
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_H2_STREAMS)
        // A peer that leaves a ping unanswered is gone: all its streams end.
        .keep_alive_interval(Some(limits.ping_every))
        .keep_alive_timeout(limits.stall_timeout);
    let connection = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(connection);
    let first_deadline = tokio::time::sleep_until(deadline);
    tokio::pin!(first_deadline);
    let mut awaiting_first = true;
    let mut shutting_down = false;
    let result = loop {
        tokio::select! {
            result = connection.as_mut() => break result,
            _ = &mut first_deadline, if awaiting_first => {
                awaiting_first = false;
                if !first_request.is_cancelled() {
                    tracing::debug!(%peer, "no request before the header deadline: connection cut off");
                    return;
                }
            }
            _ = shutdown.cancelled(), if !shutting_down => {
                shutting_down = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "TLS connection ended with an error");
    }
}

/// A socket that fails its writes once it has taken nothing for `stall`: the
/// same cut-off the direct writer applies to a plain event stream, here for the
/// whole TLS connection (every HTTP/2 stream on it ends with it).
pub struct StallGuard<T> {
    io: T,
    stall: Duration,
    blocked_since: Option<Pin<Box<Sleep>>>,
}

impl<T> StallGuard<T> {
    pub fn new(io: T, stall: Duration) -> Self {
        StallGuard {
            io,
            stall,
            blocked_since: None,
        }
    }

    /// Called when a write is pending: fails once it has been for `stall`.
    fn pending<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        let stall = self.stall;
        let timer = self
            .blocked_since
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer took nothing for the stall time",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn written<R>(
        &mut self,
        result: Poll<io::Result<R>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<R>> {
        match result {
            Poll::Pending => self.pending(cx),
            ready => {
                self.blocked_since = None;
                ready
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallGuard<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallGuard<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_write(cx, buf);
        this.written(result, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.written(result, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_flush(cx);
        this.written(result, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_socket_that_takes_nothing_fails_after_the_stall_time() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        // The peer accepts but never reads: the buffers fill, then writes wait.
        let (_server, _) = listener.accept().await.unwrap();
        let mut guarded = StallGuard::new(client, Duration::from_millis(200));
        let chunk = vec![0u8; 64 * 1024];
        let outcome = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                if let Err(error) = guarded.write_all(&chunk).await {
                    return error;
                }
            }
        })
        .await
        .expect("a stalled write must fail, not wait forever");
        assert_eq!(outcome.kind(), io::ErrorKind::TimedOut);
    }
}
