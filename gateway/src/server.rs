//! Running the gateway: open the queue, bind the local API (and the metrics listener),
//! serve until told to stop, then drain and close cleanly. Tells systemd when it is
//! ready, pings its watchdog while the queue answers, reloads files on SIGHUP.

use crate::api::{self, ApiState, Stopped};
use crate::auth::Clients;
use crate::config::Config;
use crate::delivery::Delivery;
use crate::import::watch::Watcher;
use crate::io_client::IoClient;
use crate::metrics::{self, Metrics, Sources};
use crate::queue::{Limits, Queue, QueueError};
use crate::reload::{CertError, LocalCertificate, Reloadable};
use crate::seal::CurrentDataKeys;
use crate::signing::{CurrentKey, KeyRing};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("cannot listen on {address}: {source}")]
    Bind { address: std::net::SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Certificate(#[from] CertError),
    #[error("cannot set up the connection to IO: {0}")]
    IoClient(#[from] crate::io_client::TlsError),
    #[error("cannot load the signing key: {0}")]
    SigningKey(#[from] crate::signing::KeyError),
}

/// Why the data keys were not reloaded.
#[derive(Debug, thiserror::Error)]
pub enum DataKeyReloadError {
    #[error(transparent)]
    Load(#[from] crate::seal::DataKeyError),
    #[error("its index.key differs from the one in use; the index key never changes")]
    IndexKeyChanged,
}

/// Opens the database and binds the listeners (all can fail before anything is served).
pub struct Prepared {
    config: Arc<Config>,
    queue: Arc<Queue>,
    client: Arc<IoClient>,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    local_certificate: Option<Arc<LocalCertificate>>,
    metrics: Arc<Metrics>,
    keys: Keys,
}

/// The appliance key as each signer sees it (each empty when its use is off), and the
/// data keys that seal the queue's personal data. One signing key, one holder per use:
/// `sign_requests` and `receipts` can each be turned off, while the audit trail's
/// checkpoints are signed whenever `[signing]` is there.
#[derive(Clone)]
pub struct Keys {
    pub requests: Arc<CurrentKey>,
    pub receipts: Arc<CurrentKey>,
    pub audit: Arc<CurrentKey>,
    pub data: Arc<CurrentDataKeys>,
}

impl Keys {
    /// Loads the key ring `[signing]` names (nothing when there is no such section) and
    /// the data keys (made on first use, see `queue::load_data_keys`).
    pub fn load(config: &Config) -> Result<Keys, RunError> {
        let data = crate::queue::load_data_keys(&config.storage.data_key_directory, &config.storage.path)?;
        let keys = Keys {
            requests: Arc::default(),
            receipts: Arc::default(),
            audit: Arc::default(),
            data: Arc::new(CurrentDataKeys::new(data)),
        };
        keys.reload(config)?;
        Ok(keys)
    }

    /// What the queue needs of these keys.
    pub fn queue(&self) -> crate::queue::Keys {
        crate::queue::Keys { data: Arc::clone(&self.data), audit: Arc::clone(&self.audit) }
    }

    /// Reads the data key directory again (after `io-gateway data-keys rotate`): the
    /// newest key seals from now on. Returns its number.
    pub fn reload_data(&self, config: &Config) -> Result<u32, DataKeyReloadError> {
        let loaded = crate::seal::key_dir::load(&config.storage.data_key_directory)?;
        if loaded.index_check() != self.data.get().index_check() {
            return Err(DataKeyReloadError::IndexKeyChanged);
        }
        let current = loaded.current();
        self.data.set(Arc::new(loaded));
        Ok(current)
    }

    /// Reads the key directory again (after `io-gateway keys rotate`).
    pub fn reload(&self, config: &Config) -> Result<(), crate::signing::KeyError> {
        let Some(signing) = &config.signing else { return Ok(()) };
        let ring = KeyRing::load(&signing.key_directory)?;
        let current = Arc::new(ring.into_current());
        self.requests.set(signing.sign_requests.then(|| Arc::clone(&current)));
        self.receipts.set(signing.receipts.then(|| Arc::clone(&current)));
        self.audit.set(Some(current));
        Ok(())
    }
}

impl Prepared {
    pub async fn new(config: Config) -> Result<Prepared, RunError> {
        let local_certificate = config.local_api.tls.as_ref().map(LocalCertificate::load).transpose()?.map(Arc::new);
        let keys = Keys::load(&config)?;
        let client =
            Arc::new(IoClient::new(&config.io, config.delivery.timeouts)?.with_signer(Arc::clone(&keys.requests)));
        let storage = &config.storage;
        let queue = Queue::open(&storage.path, limits(&config), storage.retention, keys.queue())?;
        let address = config.local_api.listen;
        let listener = TcpListener::bind(address).await.map_err(|source| RunError::Bind { address, source })?;
        let metrics_listener = match &config.metrics {
            Some(m) => {
                Some(TcpListener::bind(m.listen).await.map_err(|source| RunError::Bind { address: m.listen, source })?)
            }
            None => None,
        };
        Ok(Prepared {
            config: Arc::new(config),
            queue: Arc::new(queue),
            client,
            listener,
            metrics_listener,
            local_certificate,
            metrics: Arc::new(Metrics::new()),
            keys,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Requests awaiting their commit: `run`'s runtime polls while a lone one does.
    pub fn commit_wait(&self) -> crate::queue::CommitWait {
        self.queue.commit_wait()
    }

    /// Where `/metrics` is served, if configured.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves and delivers until `shutdown` completes, then finishes the requests and IO
    /// calls in flight and closes the queue. Each `reloads` item triggers a reload.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()>,
        reloads: Option<tokio::signal::unix::Signal>,
    ) -> Stopped {
        let metrics = Arc::clone(&self.metrics);
        let delivery = Arc::new(Delivery::start(
            Arc::clone(&self.config),
            Arc::clone(&self.queue),
            Arc::clone(&self.client),
            Arc::clone(&metrics),
        ));
        let tls = match self.local_certificate.as_ref().map(LocalCertificate::acceptor).transpose() {
            Ok(tls) => tls,
            Err(e) => {
                // The same files made a certificate moments ago; only rustls' protocol
                // defaults could refuse here.
                log::error!(error:display = e; "the local API's TLS cannot be set up; serving nothing");
                delivery.stop().await;
                self.queue.close();
                return Stopped::Clean;
            }
        };
        let state = Arc::new(ApiState {
            clients: Clients::new(self.config.clients.clone()),
            config: Arc::clone(&self.config),
            queue: Arc::clone(&self.queue),
            delivery: Some(Arc::clone(&delivery)),
            metrics: Arc::clone(&metrics),
            receipts: Arc::clone(&self.keys.receipts),
        });
        let database = self.config.storage.path.clone();
        let watcher = Watcher::start(
            Arc::clone(&self.config),
            database,
            limits(&self.config),
            Arc::clone(&metrics),
            self.keys.queue(),
        );
        let (stop_metrics, metrics_stopped) = oneshot::channel::<()>();
        let metrics_task = self.metrics_listener.map(|listener| {
            let sources = Arc::new(Sources {
                metrics: Arc::clone(&metrics),
                config: Arc::clone(&self.config),
                delivery: Arc::clone(&delivery),
            });
            tokio::spawn(metrics::serve(listener, sources, async {
                let _ = metrics_stopped.await;
            }))
        });
        let reloadable = Reloadable {
            config: Arc::clone(&self.config),
            templates: watcher.as_ref().map(Watcher::templates),
            local_certificate: self.local_certificate.clone(),
            client: Arc::clone(&self.client),
            delivery: Arc::clone(&delivery),
            keys: self.keys.clone(),
        };
        let reload_task = reloads.map(|signals| tokio::spawn(reload_loop(signals, reloadable)));
        let watchdog = tokio::spawn(watchdog(Arc::clone(&self.queue)));
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        let stopped = api::serve(self.listener, tls, state, shutdown).await;
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
        watchdog.abort();
        if let Some(task) = reload_task {
            task.abort();
        }
        if let Some(watcher) = watcher {
            watcher.stop().await;
        }
        delivery.stop().await;
        let _ = stop_metrics.send(());
        if let Some(task) = metrics_task {
            let _ = task.await;
        }
        self.queue.close();
        stopped
    }
}

/// One reload per SIGHUP, told to systemd as RELOADING=1 … READY=1.
async fn reload_loop(mut signals: tokio::signal::unix::Signal, reloadable: Reloadable) {
    while signals.recv().await.is_some() {
        log::info!("SIGHUP: reloading certificates, keys and templates");
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Reloading, monotonic_now()]);
        let refused = reloadable.reload();
        if refused == 0 {
            log::info!("reload complete");
        } else {
            log::error!(refused = refused; "reload finished with files refused: the old ones stay in use (see above)");
        }
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    }
}

/// `MONOTONIC_USEC=…`, which systemd wants with RELOADING=1.
fn monotonic_now() -> sd_notify::NotifyState<'static> {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let usec = u64::try_from(now.tv_sec).unwrap_or(0) * 1_000_000 + u64::try_from(now.tv_nsec).unwrap_or(0) / 1_000;
    sd_notify::NotifyState::MonotonicUsec(i128::from(usec))
}

/// Pings systemd's watchdog at half its interval, but only while the queue's writer
/// answers: a wedged writer (a hung disk) stops the pings and systemd restarts us.
async fn watchdog(queue: Arc<Queue>) {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let every = Duration::from_micros(usec / 2);
    loop {
        tokio::time::sleep(every).await;
        match tokio::time::timeout(every, queue.apply(Vec::new())).await {
            Ok(Ok(_)) => {
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
            }
            Ok(Err(e)) => log::warn!(error:display = e; "the queue did not answer the watchdog check"),
            Err(_) => log::error!("the queue's writer is stuck: no watchdog ping (systemd will restart us)"),
        }
    }
}

/// The queue's refusal thresholds, shared by the daemon's writer and its imports.
pub fn limits(config: &Config) -> Limits {
    Limits {
        max_queued_messages: config.storage.max_queued_messages,
        min_free_disk_bytes: config.storage.min_free_disk_bytes,
    }
}
