//! Running the gateway: open the queue, bind the local API, serve until told to stop,
//! then drain and close cleanly.

use crate::api::{self, ApiState, Stopped};
use crate::auth::Clients;
use crate::config::{Config, TlsFiles};
use crate::delivery::Delivery;
use crate::import::watch::Watcher;
use crate::io_client::IoClient;
use crate::queue::{Limits, Queue, QueueError};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("cannot listen on {address}: {source}")]
    Bind { address: std::net::SocketAddr, source: std::io::Error },
    #[error("cannot read the local API's TLS file {path}: {source}")]
    TlsFile { path: std::path::PathBuf, source: rustls::pki_types::pem::Error },
    #[error("the local API's TLS certificate and key do not make a usable configuration: {0}")]
    TlsConfig(#[from] rustls::Error),
    #[error("cannot set up the connection to IO: {0}")]
    IoClient(#[from] crate::io_client::TlsError),
}

/// Opens the database and binds the listener (both can fail before anything is served).
pub struct Prepared {
    config: Arc<Config>,
    queue: Arc<Queue>,
    client: Arc<IoClient>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Prepared {
    pub async fn new(config: Config) -> Result<Prepared, RunError> {
        let tls = config.local_api.tls.as_ref().map(tls_acceptor).transpose()?;
        let client = Arc::new(IoClient::new(&config.io, config.delivery.timeouts)?);
        let queue = Queue::open(&config.storage.path, limits(&config))?;
        let address = config.local_api.listen;
        let listener = TcpListener::bind(address).await.map_err(|source| RunError::Bind { address, source })?;
        Ok(Prepared { config: Arc::new(config), queue: Arc::new(queue), client, listener, tls })
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves and delivers until `shutdown` completes, then finishes the requests and IO
    /// calls in flight and closes the queue.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Stopped {
        let delivery = Arc::new(Delivery::start(Arc::clone(&self.config), Arc::clone(&self.queue), self.client));
        let state = Arc::new(ApiState {
            clients: Clients::new(self.config.clients.clone()),
            config: Arc::clone(&self.config),
            queue: Arc::clone(&self.queue),
            delivery: Some(Arc::clone(&delivery)),
        });
        let database = self.config.storage.path.clone();
        let watcher = Watcher::start(Arc::clone(&self.config), database, limits(&self.config));
        let stopped = api::serve(self.listener, self.tls, state, shutdown).await;
        if let Some(watcher) = watcher {
            watcher.stop().await;
        }
        delivery.stop().await;
        self.queue.close();
        stopped
    }
}

/// The queue's refusal thresholds, shared by the daemon's writer and its imports.
pub fn limits(config: &Config) -> Limits {
    Limits {
        max_queued_messages: config.storage.max_queued_messages,
        min_free_disk_bytes: config.storage.min_free_disk_bytes,
    }
}

fn tls_acceptor(files: &TlsFiles) -> Result<tokio_rustls::TlsAcceptor, RunError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let file_error = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| RunError::TlsFile { path, source }
    };
    let certs = CertificateDer::pem_file_iter(&files.certificate)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(file_error(&files.certificate))?;
    let key = PrivateKeyDer::from_pem_file(&files.private_key).map_err(file_error(&files.private_key))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
