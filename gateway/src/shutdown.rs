//! Waiting for the signal to stop: SIGTERM (systemd) or SIGINT (Ctrl-C).

use tokio::signal::unix::{signal, SignalKind};

/// Completes when SIGTERM or SIGINT arrives. If the handlers cannot be installed the
/// error is returned at once, so the caller can refuse to start.
pub fn signals() -> std::io::Result<impl std::future::Future<Output = &'static str>> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        }
    })
}
