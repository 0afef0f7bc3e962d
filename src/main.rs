//! The `syncroom` binary: parse the configuration, start logging, bind, and serve
//! until SIGINT or SIGTERM. Everything else is in the library.

use clap::Parser;
use tokio_util::sync::CancellationToken;

use syncroom::config::Config;

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
    let listener = match bind(config.listen) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(addr = %config.listen, %error, "cannot listen");
            return std::process::ExitCode::FAILURE;
        }
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    match syncroom::run(listener, config, shutdown).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "server failed");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Binds with a deep accept backlog: when thousands of browsers reconnect at once
/// (a restart, a network blip) the kernel queues them instead of dropping SYNs.
/// The kernel caps it at `net.core.somaxconn`.
fn bind(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    const BACKLOG: u32 = 4096;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
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
