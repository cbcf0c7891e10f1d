//! The appliance key as a sysadmin and an auditor meet it, with the real binary: `keys`
//! commands, RFC 9421 signatures checked by a verifying sandbox (which refuses a
//! tampered body), signed receipts on 201, and rotation while the daemon runs.

mod support;

use gateway::sandbox::{Sandbox, SandboxConfig};
use gateway::signing::jws::Receipt;
use gateway::signing::{http_signature, Jwks, KeyRing};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::{message, request, Gateway, TRIBUTI_KEY};

fn keys(args: &[&str], dir: &Path) -> Output {
    Command::new(support::binary()).arg("keys").args(args).arg("--dir").arg(dir).output().unwrap()
}

fn jwks_of(dir: &Path) -> Jwks {
    Jwks::from_json(&std::fs::read_to_string(dir.join("public-keys.json")).unwrap()).unwrap()
}

#[test]
fn keys_are_generated_private_shown_as_jwks_and_rotated_keeping_the_old_public_key() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key_dir = dir.path().join("keys");
    let generated = keys(&["generate"], &key_dir);
    assert!(generated.status.success(), "{}", String::from_utf8_lossy(&generated.stderr));
    let mode = std::fs::metadata(key_dir.join("signing-key.pem")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let printed: serde_json::Value = serde_json::from_slice(&generated.stdout).unwrap();
    assert_eq!(printed["keys"][0]["kty"], "OKP");
    assert_eq!(printed["keys"][0]["crv"], "Ed25519");
    let first = printed["keys"][0]["kid"].as_str().unwrap().to_string();
    assert!(String::from_utf8_lossy(&generated.stderr).contains("key_directory"));

    let again = keys(&["generate"], &key_dir);
    assert!(!again.status.success(), "a second generate must not replace the key");

    let rotated = keys(&["rotate"], &key_dir);
    assert!(rotated.status.success());
    let shown = keys(&["show"], &key_dir);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    let kids: Vec<&str> = shown["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids.len(), 2);
    assert!(kids.contains(&first.as_str()), "the retired key stays listed: {kids:?}");
    assert_ne!(KeyRing::load(&key_dir).unwrap().current().kid().as_str(), first);
}

/// A sandbox that requires signatures by the keys in `public_keys`.
async fn verifying_sandbox(public_keys: &Path) -> Sandbox {
    let config = format!(
        "listen = \"127.0.0.1:0\"\nprocessing_delay_ms = 0\n[signatures]\npublic_keys = \"{}\"\n\
         [[services]]\nservice_id = \"01JTESTSERVICETARI\"\ninstitution = \"80000000010\"\nprimary_key = \"io-subscription-key-tari\"\n\
         [[services]]\nservice_id = \"01JTESTSERVICEANAGRAFE\"\ninstitution = \"80000000010\"\nprimary_key = \"io-subscription-key-tari\"\n",
        public_keys.display()
    );
    Sandbox::start(SandboxConfig::from_toml_str(&config).unwrap()).await.unwrap()
}

/// Posts a message asking for a receipt (`Prefer: receipt`).
fn post(gateway: &Gateway, marker: &str) -> (support::Response, Vec<u8>) {
    let body = message("BNCLRA85C52F205V", marker).to_string().into_bytes();
    let headers =
        [("Ocp-Apim-Subscription-Key", TRIBUTI_KEY), ("Content-Type", "application/json"), ("Prefer", "receipt")];
    (request(gateway.addr, "POST", "/api/v1/messages", &headers, &body).unwrap(), body)
}

fn wait_processed(gateway: &Gateway, location: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view = gateway.get(location, TRIBUTI_KEY).json();
        if view["gateway"]["state"] == "processed" {
            return;
        }
        assert!(Instant::now() < deadline, "not processed: {view}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_requests_pass_a_verifying_sandbox_receipts_verify_and_a_rotated_key_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    let key_dir = dir.path().join("keys");
    KeyRing::generate(&key_dir).unwrap();
    let io = verifying_sandbox(&key_dir.join("public-keys.json")).await;
    let text = support::config_text(dir.path(), "", false)
        .replace("base_url = \"http://127.0.0.1:9/api/v1\"", &format!("base_url = \"{}\"", io.base_url()))
        + &format!(
            "\n[delivery]\nfirst_poll_after_seconds = 1\n[signing]\nkey_directory = \"{}\"\n",
            key_dir.display()
        );
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, text).unwrap();
    let first_kid = KeyRing::load(&key_dir).unwrap().current().kid().as_str().to_string();

    let key_dir_for = key_dir.clone();
    let (first_receipt, second_receipt, jwks) = tokio::task::spawn_blocking(move || {
        let gateway = Gateway::start_with(dir.path(), &config);
        let (response, body) = post(&gateway, "signed-1");
        assert_eq!(response.status, 201);
        let receipt = response.header("io-gateway-receipt").expect("a receipt on 201").to_string();
        assert_eq!(response.header("preference-applied"), Some("receipt"));
        // A client that does not ask gets none (signing is not free).
        let plain = gateway.post("/api/v1/messages", TRIBUTI_KEY, &message("BNCLRA85C52F205V", "no-receipt"), &[]);
        assert_eq!(plain.status, 201);
        assert!(plain.header("io-gateway-receipt").is_none());
        let verified = Receipt::verify(&receipt, &jwks_of(&key_dir_for)).unwrap();
        assert_eq!(verified.message_id, response.json()["id"].as_str().unwrap());
        assert!(verified.covers(&body), "the receipt binds the posted bytes");
        assert!(!verified.covers(b"{}"));
        assert_eq!(verified.client, "tributi");
        // The sandbox refuses unsigned or badly signed calls: reaching processed proves
        // the profile call, the send and the status polls were all signed right.
        wait_processed(&gateway, response.header("location").unwrap());

        // Rotation while running: the new key signs after SIGHUP; the sandbox reads the
        // key set, which still lists the old key.
        assert!(keys(&["rotate"], &key_dir_for).status.success());
        let pid = rustix::process::Pid::from_raw(gateway.pid()).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
        gateway.wait_log("reload: signing key loaded");
        let (response, _) = post(&gateway, "signed-2");
        assert_eq!(response.status, 201);
        let second = response.header("io-gateway-receipt").unwrap().to_string();
        wait_processed(&gateway, response.header("location").unwrap());
        wait_processed(&gateway, plain.header("location").unwrap());
        let (status, _) = gateway.terminate();
        assert!(status.success());
        (receipt, second, jwks_of(&key_dir_for))
    })
    .await
    .unwrap();
    let kid_of = |token: &str| gateway::signing::jws::verify::<serde_json::Value>(token, &jwks).unwrap().kid;
    assert_eq!(kid_of(&first_receipt).as_str(), first_kid, "old receipts still verify after rotation");
    assert_ne!(kid_of(&second_receipt).as_str(), first_kid);
    assert_eq!(io.received().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_refuses_a_tampered_body_and_an_unsigned_call() {
    let dir = tempfile::tempdir().unwrap();
    let ring = KeyRing::generate(dir.path()).unwrap();
    let io = verifying_sandbox(&dir.path().join("public-keys.json")).await;
    let body = message("BNCLRA85C52F205V", "original").to_string();
    let uri: http::Uri = format!("{}/messages", io.base_url()).parse().unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert("content-type", http::HeaderValue::from_static("application/json"));
    let method = http::Method::POST;
    http_signature::sign(&method, &uri, &mut headers, body.as_bytes(), ring.current(), jiff::Timestamp::now()).unwrap();
    let mut sent: Vec<(String, String)> =
        headers.iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string())).collect();
    sent.push(("ocp-apim-subscription-key".into(), "io-subscription-key-tari".into()));
    let addr = io.addr();

    let tampered = body.replace("original", "tampered");
    let (refused, accepted, unsigned) = tokio::task::spawn_blocking(move || {
        let header_refs: Vec<(&str, &str)> = sent.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let refused = request(addr, "POST", "/api/v1/messages", &header_refs, tampered.as_bytes()).unwrap();
        let accepted = request(addr, "POST", "/api/v1/messages", &header_refs, body.as_bytes()).unwrap();
        let only_key =
            [("ocp-apim-subscription-key", "io-subscription-key-tari"), ("content-type", "application/json")];
        let unsigned = request(addr, "POST", "/api/v1/messages", &only_key, body.as_bytes()).unwrap();
        (refused, accepted, unsigned)
    })
    .await
    .unwrap();
    assert_eq!(refused.status, 401, "{}", String::from_utf8_lossy(&refused.body));
    let detail = String::from_utf8_lossy(&refused.body).to_lowercase();
    assert!(detail.contains("signature") && detail.contains("digest"), "{detail}");
    assert_eq!(accepted.status, 201, "{}", String::from_utf8_lossy(&accepted.body));
    assert_eq!(unsigned.status, 401);
    assert_eq!(io.received().len(), 1, "only the intact request reached the inbox");
}
