//! The client side of TLS to IO: roots from the CA bundle or the system, the client
//! certificate for the mTLS host, TLS 1.3 and 1.2 (IO's mTLS host speaks only 1.2 with
//! ECDHE-RSA-AES-GCM, which ring's defaults include).

use crate::config::IoEndpoint;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    File { path: PathBuf, source: rustls::pki_types::pem::Error },
    #[error("no usable CA certificate in {path}")]
    EmptyCaBundle { path: PathBuf },
    #[error("no system CA certificates found; set io.ca_bundle")]
    NoSystemRoots,
    #[error("the client certificate and key do not make a usable TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

pub fn client_config(endpoint: &IoEndpoint) -> Result<rustls::ClientConfig, TlsError> {
    let roots = match roots(endpoint.ca_bundle.as_deref()) {
        // Plain http (a local sandbox) needs no roots.
        Err(TlsError::NoSystemRoots) if endpoint.base_url.scheme_str() == Some("http") => {
            rustls::RootCertStore::empty()
        }
        other => other?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots);
    match (&endpoint.client_certificate, &endpoint.client_key) {
        (Some(certificate), Some(key)) => {
            let chain = certificates(certificate)?;
            let key =
                PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::File { path: key.clone(), source })?;
            Ok(builder.with_client_auth_cert(chain, key)?)
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

fn roots(ca_bundle: Option<&Path>) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_bundle {
        Some(path) => {
            let (added, _ignored) = roots.add_parsable_certificates(certificates(path)?);
            if added == 0 {
                return Err(TlsError::EmptyCaBundle { path: path.to_path_buf() });
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(TlsError::NoSystemRoots);
            }
        }
    }
    Ok(roots)
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::File { path: path.to_path_buf(), source })
}
