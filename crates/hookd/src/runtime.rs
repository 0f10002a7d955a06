//! Process-wide runtime pieces shared by the server, the worker, the CLI and the client: the TLS
//! crypto provider and the shutdown signal.

/// Installs the process-wide TLS crypto provider (ring) once; reqwest is built without one.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Resolves on SIGINT, SIGTERM or SIGHUP (the terminal was closed), for commands that must clean
/// up before they exit (`hookd listen` removes its subscription). Installed by this call, as
/// [`shutdown_signal`].
pub fn shutdown_or_hangup_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup()).ok();
    let shutdown = shutdown_signal();
    async move {
        let hung_up = async {
            match &mut hangup {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown => {},
            _ = hung_up => tracing::info!("hangup signal received"),
        }
    }
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed by this call, not when the future is
/// first polled: a signal that arrives while the server is still starting (after it said it is
/// listening) then stops it gracefully instead of killing it.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).ok();
    let mut terminate = signal(SignalKind::terminate()).ok();
    async move {
        let interrupted = async {
            match &mut interrupt {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        let terminated = async {
            match &mut terminate {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = interrupted => {},
            _ = terminated => {},
        }
        tracing::info!("shutdown signal received");
    }
}
