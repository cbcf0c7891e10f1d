//! SIGHUP: new certificates, keys and templates without a restart. Each file is loaded
//! whole and checked before it replaces the one in use; a bad new file leaves the old
//! one working and says why in the log. Queued work never notices.

use crate::config::{Config, TlsFiles};
use crate::delivery::Delivery;
use crate::import::templates::TemplateCache;
use crate::io_client::IoClient;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read the local API's TLS file {path}: {source}")]
    File { path: PathBuf, source: rustls::pki_types::pem::Error },
    #[error("the local API's TLS certificate and key do not make a usable pair: {0}")]
    Pair(#[from] rustls::Error),
}

/// The local API's certificate, swappable while connections are served: every new
/// handshake takes the current one.
#[derive(Debug)]
pub struct LocalCertificate {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl LocalCertificate {
    pub fn load(files: &TlsFiles) -> Result<LocalCertificate, CertError> {
        let key = certified_key(files)?;
        Ok(LocalCertificate { files: files.clone(), current: RwLock::new(key) })
    }

    /// A rustls acceptor that asks this resolver at each handshake.
    pub fn acceptor(self: &Arc<Self>) -> Result<tokio_rustls::TlsAcceptor, CertError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }

    /// Reads the files again; on any problem the certificate in use stays.
    pub fn reload(&self) -> Result<(), CertError> {
        let key = certified_key(&self.files)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = key;
        Ok(())
    }
}

impl ResolvesServerCert for LocalCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner())))
    }
}

fn certified_key(files: &TlsFiles) -> Result<Arc<CertifiedKey>, CertError> {
    let file_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CertError::File { path, source }
    };
    let chain = CertificateDer::pem_file_iter(&files.certificate)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(file_error(&files.certificate))?;
    let key = PrivateKeyDer::from_pem_file(&files.private_key).map_err(file_error(&files.private_key))?;
    let provider = rustls::crypto::ring::default_provider();
    Ok(Arc::new(CertifiedKey::from_der(chain, key, &provider)?))
}

/// What a reload can replace.
pub struct Reloadable {
    pub config: Arc<Config>,
    pub templates: Option<Arc<TemplateCache>>,
    pub local_certificate: Option<Arc<LocalCertificate>>,
    pub client: Arc<IoClient>,
    pub delivery: Arc<Delivery>,
    pub keys: crate::server::Keys,
}

impl Reloadable {
    /// Reloads everything it can; returns how many files were refused (0: all good).
    pub fn reload(&self) -> usize {
        let mut refused = 0;
        if let Some(certificate) = &self.local_certificate {
            match certificate.reload() {
                Ok(()) => log::info!("reload: local API certificate loaded"),
                Err(e) => {
                    refused += 1;
                    log::error!(error:display = e; "reload: the local API keeps its old certificate");
                }
            }
        }
        match self.client.reload(&self.config.io) {
            Ok(()) => log::info!("reload: IO client certificate, key and CA bundle loaded"),
            Err(e) => {
                refused += 1;
                log::error!(error:display = e; "reload: IO connections keep the old certificate, key and CA bundle");
            }
        }
        refused += self.delivery.reload_keys();
        if self.config.signing.is_some() {
            match self.keys.reload(&self.config) {
                Ok(()) => log::info!("reload: signing key loaded"),
                Err(e) => {
                    refused += 1;
                    log::error!(error:display = e; "reload: signatures keep the old signing key");
                }
            }
        }
        match self.keys.reload_data(&self.config) {
            Ok(current) => log::info!(current = current; "reload: data keys loaded"),
            Err(e) => {
                refused += 1;
                log::error!(error:display = e; "reload: the queue keeps its old data keys");
            }
        }
        if let Some(templates) = &self.templates {
            for problem in templates.reload(&self.config) {
                refused += 1;
                log::error!(problem = problem.as_str(); "reload: a watch folder keeps its old template");
            }
        }
        refused
    }
}
