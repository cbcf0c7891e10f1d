//! Throw-away certificates for the demo and the tests: a CA, a server certificate for
//! `localhost` and a client certificate signed by that CA, written as PEM files.
//! Never for production: the CA key is discarded as soon as the certificates exist.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

/// The PEM files made by `generate`.
#[derive(Debug, Clone)]
pub struct TestPki {
    pub ca_certificate: PathBuf,
    pub server_certificate: PathBuf,
    pub server_key: PathBuf,
    pub client_certificate: PathBuf,
    pub client_key: PathBuf,
}

/// Which key the server certificate has.
pub enum ServerKey<'a> {
    /// A fresh ECDSA P-256 key.
    Ecdsa,
    /// A given RSA key (PKCS#8 PEM): IO's TLS 1.2 ECDHE-RSA suites need one, and ring
    /// cannot generate RSA keys.
    Rsa(&'a str),
}

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot make a test certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// Makes a CA, a server certificate (localhost, 127.0.0.1) and a client certificate
/// named `client_name`, and writes them into `dir`.
pub fn generate(dir: &Path, server_key: ServerKey<'_>, client_name: &str) -> Result<TestPki, PkiError> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "io-gateway test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca_key = KeyPair::generate()?;
    let ca = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut server_params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    server_params.distinguished_name.push(DnType::CommonName, "localhost");
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = match server_key {
        ServerKey::Ecdsa => KeyPair::generate()?,
        ServerKey::Rsa(pem) => KeyPair::from_pem(pem)?,
    };
    let server = server_params.signed_by(&server_key, &issuer)?;

    let mut client_params = CertificateParams::new(Vec::<String>::new())?;
    client_params.distinguished_name.push(DnType::CommonName, client_name);
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = KeyPair::generate()?;
    let client = client_params.signed_by(&client_key, &issuer)?;

    let pki = TestPki {
        ca_certificate: dir.join("ca.crt"),
        server_certificate: dir.join("server.crt"),
        server_key: dir.join("server.key"),
        client_certificate: dir.join("client.crt"),
        client_key: dir.join("client.key"),
    };
    write(&pki.ca_certificate, &ca.pem())?;
    write(&pki.server_certificate, &server.pem())?;
    write(&pki.server_key, &server_key.serialize_pem())?;
    write(&pki.client_certificate, &client.pem())?;
    write(&pki.client_key, &client_key.serialize_pem())?;
    Ok(pki)
}

fn write(path: &Path, pem: &str) -> Result<(), PkiError> {
    std::fs::write(path, pem).map_err(|source| PkiError::Write { path: path.to_path_buf(), source })
}
