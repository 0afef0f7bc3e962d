//! The `syncroom` binary: parse the configuration, start logging, bind, and serve
//! until SIGINT or SIGTERM. Everything else is in the library.

use clap::Parser;
use tokio_util::sync::CancellationToken;

use std::net::SocketAddr;

use syncroom::config::{Config, ListenAddr};

/// mimalloc rather than the system allocator: a command allocates many small,
/// short-lived buffers on every worker, and with mimalloc it costs about a tenth
/// less CPU (measured in BENCHMARKS.md). The library leaves the choice to
/// whoever embeds it; `--no-default-features` builds without it.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let config = Config::parse();
    syncroom::telemetry::init_logging(config.log_format);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = config.threads {
        runtime.worker_threads(usize::from(threads));
    }
    match runtime.enable_all().build() {
        Ok(runtime) => runtime.block_on(serve(config)),
        Err(error) => {
            tracing::error!(%error, "cannot start the runtime");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> std::process::ExitCode {
    let listeners = match bind_all(&config.listen).await {
        Ok(listeners) => listeners,
        Err(error) => {
            tracing::error!(addr = %config.listen, %error, "cannot listen");
            return std::process::ExitCode::FAILURE;
        }
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    match syncroom::run_on(listeners, config, shutdown).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "server failed");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Binds `--listen`: the one address given, or every address a host name
/// resolves to (`localhost`: `127.0.0.1` and `::1`). An address whose family
/// this host lacks (`::1` with IPv6 off) is skipped with a warning as long as
/// another one is bound; any other failure (the port is taken) fails start-up.
async fn bind_all(listen: &ListenAddr) -> std::io::Result<Vec<tokio::net::TcpListener>> {
    let addrs: Vec<SocketAddr> = match listen {
        ListenAddr::Ip(addr) => vec![*addr],
        ListenAddr::Host { host, port } => {
            let mut addrs = Vec::new();
            let resolved = tokio::net::lookup_host((host.as_str(), *port))
                .await
                .map_err(|error| {
                    std::io::Error::new(error.kind(), format!("cannot resolve {host}: {error}"))
                })?;
            for addr in resolved {
                if !addrs.contains(&addr) {
                    addrs.push(addr);
                }
            }
            addrs
        }
    };
    let several = if addrs.len() > 1 {
        Several::Yes
    } else {
        Several::No
    };
    let mut listeners = Vec::new();
    for addr in addrs {
        match bind(addr, several) {
            Ok(listener) => listeners.push(listener),
            Err(BindError::Family(error)) if several == Several::Yes => {
                tracing::warn!(%addr, %error, "skipping an address this host cannot listen on");
            }
            Err(BindError::Family(error) | BindError::Bind(error)) => {
                return Err(std::io::Error::new(
                    error.kind(),
                    format!("{addr}: {error}"),
                ));
            }
        }
    }
    if listeners.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!("{listen} names no address this host can listen on"),
        ));
    }
    Ok(listeners)
}

/// Whether `--listen` named several addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Several {
    No,
    Yes,
}

/// Why one address could not be bound.
enum BindError {
    /// The host cannot listen on this address at all: no such address family,
    /// or the address is not configured on any interface.
    Family(std::io::Error),
    /// Anything else (the port is taken, permission denied).
    Bind(std::io::Error),
}

/// Binds with a deep accept backlog: when thousands of browsers reconnect at once
/// (a restart, a network blip) the kernel queues them instead of dropping SYNs.
/// The kernel caps it at `net.core.somaxconn`. With several addresses an IPv6
/// one takes only IPv6 (`[::]` would otherwise also claim `0.0.0.0`'s port).
fn bind(addr: SocketAddr, several: Several) -> Result<tokio::net::TcpListener, BindError> {
    const BACKLOG: u32 = 4096;
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))
        .map_err(BindError::Family)?;
    let configure = || -> std::io::Result<()> {
        if addr.is_ipv6() && several == Several::Yes {
            socket.set_only_v6(true)?;
        }
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)
    };
    configure().map_err(BindError::Bind)?;
    socket.bind(&addr.into()).map_err(|error| {
        if error.kind() == std::io::ErrorKind::AddrNotAvailable {
            BindError::Family(error)
        } else {
            BindError::Bind(error)
        }
    })?;
    socket.listen(BACKLOG as i32).map_err(BindError::Bind)?;
    tokio::net::TcpListener::from_std(socket.into()).map_err(BindError::Bind)
}

/// Cancels `shutdown` on the first SIGINT (Ctrl-C) or SIGTERM.
async fn cancel_on_signal(shutdown: CancellationToken) {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}
