//! The local API over TLS: a real handshake on loopback with a certificate made by rcgen.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use support::{message, Gateway, TRIBUTI_KEY};

#[test]
fn local_api_serves_over_tls_and_refuses_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("api.crt"), dir.path().join("api.key"));
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();
    let config = dir.path().join("gateway.toml");
    let text = support::config_text(dir.path(), "", false).replace(
        "max_body_bytes = 4096",
        &format!(
            "max_body_bytes = 4096\n[local_api.tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"",
            cert_path.display(),
            key_path.display()
        ),
    );
    std::fs::write(&config, text).unwrap();
    let gw = Gateway::start_unprobed(dir.path(), &config);

    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(client), name).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, TcpStream::connect(gw.addr).unwrap());
    let body = message("BNCLRA85C52F205V", "tls").to_string();
    let request = format!(
        "POST /api/v1/messages HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nOcp-Apim-Subscription-Key: {TRIBUTI_KEY}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    // The server closes after the response; rustls may report the missing close_notify.
    let _ = tls.read_to_end(&mut raw);
    let response = support::parse_response(&raw).unwrap();
    assert_eq!(response.status, 201, "{}", String::from_utf8_lossy(&response.body));

    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = gw.try_request("GET", "/health", &[], b"");
    assert!(plain.is_err() || plain.is_ok_and(|r| r.status != 200));
}
