//! The sandbox's TLS: a server certificate, optionally required client certificates
//! (IO's mTLS host) and optionally only IO's TLS 1.2 ECDHE-RSA-AES-GCM suites.

use super::config::SandboxTls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    File { path: PathBuf, source: rustls::pki_types::pem::Error },
    #[error("invalid TLS set-up: {0}")]
    Config(#[from] rustls::Error),
    #[error("invalid client CA: {0}")]
    ClientCa(#[from] rustls::server::VerifierBuilderError),
}

/// The rustls provider the sandbox offers: all of ring's suites, or only IO's.
pub fn provider(io_ciphers_only: bool) -> rustls::crypto::CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    if io_ciphers_only {
        use rustls::crypto::ring::cipher_suite as suites;
        provider.cipher_suites =
            vec![suites::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, suites::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384];
    }
    provider
}

pub fn acceptor(files: &SandboxTls) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    let certs = certificates(&files.certificate)?;
    let key = PrivateKeyDer::from_pem_file(&files.private_key)
        .map_err(|source| TlsError::File { path: files.private_key.clone(), source })?;
    let provider = Arc::new(provider(files.io_ciphers_only));
    let versions: &[&rustls::SupportedProtocolVersion] =
        if files.io_ciphers_only { &[&rustls::version::TLS12] } else { rustls::DEFAULT_VERSIONS };
    let builder =
        rustls::ServerConfig::builder_with_provider(Arc::clone(&provider)).with_protocol_versions(versions)?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates(ca)? {
                roots.add(cert)?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build()?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder.with_single_cert(certs, key)?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::File { path: path.to_path_buf(), source })
}
