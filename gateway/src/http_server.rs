//! The HTTP/1.1 server loop shared by the local API and the IO sandbox: accept with a
//! connection cap, optional TLS, header and handshake timeouts, graceful shutdown.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub type Body = Full<Bytes>;

/// How long in-flight requests may run after shutdown begins.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// A client that does not send its headers (or finish a TLS handshake) within this time
/// is disconnected.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Most connections served at once; further ones wait in the kernel's accept queue.
pub const MAX_CONNECTIONS: usize = 1024;

/// A handler's way to close the connection without answering (the sandbox's resets).
#[derive(Debug)]
pub struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose")
    }
}

impl std::error::Error for DropConnection {}

/// How the server stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Every in-flight request finished.
    Clean,
    /// Some connections were still busy when the grace period ended.
    GraceExpired { connections: usize },
}

/// Serves `handler` on `listener` until `shutdown` completes, then stops accepting and
/// lets in-flight requests finish for up to `SHUTDOWN_GRACE`. A connection for which
/// `admit()` is false is closed at once.
pub async fn serve<H, F>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
    admit: impl Fn() -> bool,
    handler: H,
) -> Stopped
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<Body>, DropConnection>> + Send + 'static,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Usually out of file descriptors: wait instead of spinning.
                    log::warn!(error:display = e; "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if !admit() {
            continue;
        }
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let handler = handler.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(&handler);
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
            let result = match tls {
                Some(acceptor) => match tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => watcher.watch(builder.serve_connection(TokioIo::new(stream), service)).await,
                    Ok(Err(e)) => {
                        log::debug!(error:display = e; "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        log::debug!("TLS handshake timed out");
                        return;
                    }
                },
                None => watcher.watch(builder.serve_connection(TokioIo::new(stream), service)).await,
            };
            if let Err(e) = result {
                log::debug!(error:display = e; "connection ended with an error");
            }
        });
    }
    drop(listener);
    let open = graceful.count();
    tokio::select! {
        () = graceful.shutdown() => Stopped::Clean,
        () = tokio::time::sleep(SHUTDOWN_GRACE) => Stopped::GraceExpired { connections: open },
    }
}
