//! The IO client against the sandbox over real (mutual) TLS on loopback.

use super::*;
use crate::config::SecretSource;
use crate::sandbox::{Sandbox, SandboxConfig};
use crate::test_pki::{self, ServerKey, TestPki};
use std::path::Path;

const RSA_KEY: &str = include_str!("../../tests/fixtures/rsa-2048-test-only.key");
const FC: &str = "BNCLRA85C52F205V";

fn sandbox_config(pki: Option<&TestPki>, tls_extra: &str, extra: &str) -> SandboxConfig {
    let tls = pki.map_or(String::new(), |p| {
        format!(
            "[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n{tls_extra}\n",
            p.server_certificate.display(),
            p.server_key.display()
        )
    });
    let text = format!(
        "listen = \"127.0.0.1:0\"\nprocessing_delay_ms = 0\n{extra}\n{tls}[[services]]\nservice_id = \"TARI\"\ninstitution = \"80000000010\"\nprimary_key = \"io-key\"\n"
    );
    SandboxConfig::from_toml_str(&text).unwrap()
}

fn endpoint(base_url: &str, ca: Option<&Path>, client: Option<(&Path, &Path)>) -> IoEndpoint {
    IoEndpoint {
        base_url: base_url.parse().unwrap(),
        client_certificate: client.map(|c| c.0.to_path_buf()),
        client_key: client.map(|c| c.1.to_path_buf()),
        ca_bundle: ca.map(Path::to_path_buf),
        allow_test_recipient: false,
    }
}

fn key(dir: &Path) -> Secret {
    let path = dir.join("io.key");
    std::fs::write(&path, "io-key").unwrap();
    SecretSource::File(path).read().unwrap()
}

fn message() -> Bytes {
    Bytes::from_static(include_bytes!("../../../connectors/tests/fixtures/io_message_tari.json"))
}

#[tokio::test]
async fn mutual_tls_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let pki = test_pki::generate(dir.path(), ServerKey::Ecdsa, "comune").unwrap();
    let client_ca = format!("client_ca = \"{}\"", pki.ca_certificate.display());
    let sandbox = Sandbox::start(sandbox_config(Some(&pki), &client_ca, "")).await.unwrap();
    let endpoint =
        endpoint(&sandbox.base_url(), Some(&pki.ca_certificate), Some((&pki.client_certificate, &pki.client_key)));
    let client = IoClient::new(&endpoint, Timeouts::default()).unwrap();
    let key = key(dir.path());
    let fc: FiscalCode = FC.parse().unwrap();
    assert_eq!(client.get_profile(&key, &fc).await.unwrap().status, StatusCode::OK);
    let created = client.submit_message(&key, message()).await.unwrap();
    assert_eq!(created.status, StatusCode::CREATED);
    assert!(created.location.unwrap().starts_with(&format!("/api/v1/messages/{FC}/")));
    let id = serde_json::from_slice::<serde_json::Value>(&created.body).unwrap()["id"].as_str().unwrap().to_string();
    let status = client.get_message(&key, &fc, &id).await.unwrap();
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&status.body).unwrap()["status"], "PROCESSED");
    assert_eq!(sandbox.received().len(), 1);
}

#[tokio::test]
async fn ios_exact_combination_tls12_ecdhe_rsa_aes_gcm() {
    let dir = tempfile::tempdir().unwrap();
    let pki = test_pki::generate(dir.path(), ServerKey::Rsa(RSA_KEY), "comune").unwrap();
    let io_mode = format!("client_ca = \"{}\"\nio_ciphers_only = true", pki.ca_certificate.display());
    let sandbox = Sandbox::start(sandbox_config(Some(&pki), &io_mode, "")).await.unwrap();
    let endpoint =
        endpoint(&sandbox.base_url(), Some(&pki.ca_certificate), Some((&pki.client_certificate, &pki.client_key)));

    // A raw handshake with the client's own TLS configuration shows what is negotiated.
    let config = std::sync::Arc::new(tls::client_config(&endpoint).unwrap());
    let tcp = tokio::net::TcpStream::connect(sandbox.addr()).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let stream = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.unwrap();
    let (_, connection) = stream.get_ref();
    assert_eq!(connection.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
    let suite = connection.negotiated_cipher_suite().unwrap().suite();
    assert!(
        [
            rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
        ]
        .contains(&suite),
        "{suite:?}"
    );

    let client = IoClient::new(&endpoint, Timeouts::default()).unwrap();
    let created = client.submit_message(&key(dir.path()), message()).await.unwrap();
    assert_eq!(created.status, StatusCode::CREATED);
}

#[tokio::test]
async fn a_wrong_or_missing_client_certificate_is_refused_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let pki = test_pki::generate(dir.path(), ServerKey::Rsa(RSA_KEY), "comune").unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let stranger = test_pki::generate(other_dir.path(), ServerKey::Ecdsa, "stranger").unwrap();
    let io_mode = format!("client_ca = \"{}\"\nio_ciphers_only = true", pki.ca_certificate.display());
    let sandbox = Sandbox::start(sandbox_config(Some(&pki), &io_mode, "")).await.unwrap();
    let key = key(dir.path());
    for client_files in [Some((&stranger.client_certificate, &stranger.client_key)), None] {
        let endpoint = endpoint(
            &sandbox.base_url(),
            Some(&pki.ca_certificate),
            client_files.map(|(c, k)| (c.as_path(), k.as_path())),
        );
        let client = IoClient::new(&endpoint, Timeouts::default()).unwrap();
        let failure = client.submit_message(&key, message()).await.unwrap_err();
        assert!(matches!(failure, CallFailure::NotSent(_)), "{failure:?}");
    }
    assert!(sandbox.received().is_empty());
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = test_pki::generate(dir.path(), ServerKey::Ecdsa, "comune").unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let other = test_pki::generate(other_dir.path(), ServerKey::Ecdsa, "comune").unwrap();
    let sandbox = Sandbox::start(sandbox_config(Some(&pki), "", "")).await.unwrap();
    let endpoint = endpoint(&sandbox.base_url(), Some(&other.ca_certificate), None);
    let client = IoClient::new(&endpoint, Timeouts::default()).unwrap();
    let failure = client.get_profile(&key(dir.path()), &FC.parse().unwrap()).await.unwrap_err();
    assert!(matches!(failure, CallFailure::NotSent(_)), "{failure:?}");
}

#[tokio::test]
async fn no_answer_in_time_is_unknown_and_no_listener_is_not_sent() {
    let dir = tempfile::tempdir().unwrap();
    let slow = Sandbox::start(sandbox_config(None, "", "[faults]\nlatency_ms = 3000")).await.unwrap();
    let timeouts = Timeouts { connect: Duration::from_secs(1), request: Duration::from_millis(300) };
    let client = IoClient::new(&endpoint(&slow.base_url(), None, None), timeouts).unwrap();
    let failure = client.submit_message(&key(dir.path()), message()).await.unwrap_err();
    assert!(matches!(failure, CallFailure::Unknown(_)), "{failure:?}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let client = IoClient::new(&endpoint(&format!("http://127.0.0.1:{port}/api/v1"), None, None), timeouts).unwrap();
    let failure = client.submit_message(&key(dir.path()), message()).await.unwrap_err();
    assert!(matches!(failure, CallFailure::NotSent(_)), "{failure:?}");
}

#[tokio::test]
async fn rate_limit_headers_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox =
        Sandbox::start(sandbox_config(None, "", "rate_limit = { calls = 1, per_seconds = 30 }")).await.unwrap();
    let client = IoClient::new(&endpoint(&sandbox.base_url(), None, None), Timeouts::default()).unwrap();
    let key = key(dir.path());
    let fc: FiscalCode = FC.parse().unwrap();
    assert_eq!(client.get_profile(&key, &fc).await.unwrap().remaining, Some(0));
    let throttled = client.get_profile(&key, &fc).await.unwrap();
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(throttled.retry_after.is_some_and(|d| d.as_secs() >= 29), "{:?}", throttled.retry_after);
}

#[tokio::test]
async fn under_tls13_a_refused_client_certificate_is_not_sent_either() {
    let dir = tempfile::tempdir().unwrap();
    let pki = test_pki::generate(dir.path(), ServerKey::Ecdsa, "comune").unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let stranger = test_pki::generate(other_dir.path(), ServerKey::Ecdsa, "stranger").unwrap();
    let client_ca = format!("client_ca = \"{}\"", pki.ca_certificate.display());
    let sandbox = Sandbox::start(sandbox_config(Some(&pki), &client_ca, "")).await.unwrap();
    let endpoint = endpoint(
        &sandbox.base_url(),
        Some(&pki.ca_certificate),
        Some((&stranger.client_certificate, &stranger.client_key)),
    );
    let client = IoClient::new(&endpoint, Timeouts::default()).unwrap();
    let failure = client.submit_message(&key(dir.path()), message()).await.unwrap_err();
    assert!(matches!(failure, CallFailure::NotSent(_)), "{failure:?}");
    assert!(sandbox.received().is_empty());
}
