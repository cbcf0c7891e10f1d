//! What our own certificate files say: validity window, subject and issuer. Used by the
//! metrics (expiry), `status` and `doctor`; TLS itself is rustls' business.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::path::{Path, PathBuf};

/// The first (leaf) certificate of a PEM file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    pub subject: String,
    pub issuer: String,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    /// Certificates in the file (leaf plus intermediates).
    pub chain_length: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: rustls::pki_types::pem::Error },
    #[error("{path} holds no PEM certificate")]
    Empty { path: PathBuf },
    #[error("{path}: the certificate cannot be parsed: {reason}")]
    Parse { path: PathBuf, reason: String },
}

impl CertificateInfo {
    /// Reads the leaf certificate of `path`.
    pub fn read(path: &Path) -> Result<CertificateInfo, CertificateError> {
        let chain = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|source| CertificateError::Read { path: path.to_path_buf(), source })?;
        let leaf = chain.first().ok_or_else(|| CertificateError::Empty { path: path.to_path_buf() })?;
        let mut info = CertificateInfo::from_der(leaf)
            .map_err(|reason| CertificateError::Parse { path: path.to_path_buf(), reason })?;
        info.chain_length = chain.len();
        Ok(info)
    }

    pub fn from_der(der: &[u8]) -> Result<CertificateInfo, String> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
        let validity = cert.validity();
        Ok(CertificateInfo {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
            chain_length: 1,
        })
    }

    /// Whole days from `now` (Unix seconds) to expiry; negative once expired.
    pub fn days_left(&self, now: i64) -> i64 {
        (self.not_after - now).div_euclid(86_400)
    }
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pki::{generate, ServerKey};

    #[test]
    fn reads_the_validity_of_a_generated_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let pki = generate(dir.path(), ServerKey::Ecdsa, "Comune di Prova").unwrap();
        let info = CertificateInfo::read(&pki.client_certificate).unwrap();
        let now = unix_now();
        assert!(info.not_before <= now && now < info.not_after, "{info:?}");
        assert!(info.days_left(now) > 30, "{info:?}");
        assert!(info.subject.contains("CN=Comune di Prova"), "{info:?}");
        assert!(info.issuer.contains("io-gateway test CA"), "{info:?}");
        assert_eq!(info.chain_length, 1);
    }

    #[test]
    fn names_the_file_it_cannot_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let error = CertificateInfo::read(&path).unwrap_err().to_string();
        assert!(error.contains("empty.pem") && error.contains("no PEM certificate"), "{error}");
        let missing = CertificateInfo::read(&dir.path().join("missing.pem")).unwrap_err().to_string();
        assert!(missing.contains("missing.pem"), "{missing}");
    }
}
