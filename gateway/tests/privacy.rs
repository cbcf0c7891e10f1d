//! Encryption at rest, retention and citizens' rights, with the real binary: the queue's
//! files hold no clear personal data, a citizen's data is exported and erased with the
//! audit chain intact, and a data key rotation loses nothing queued under the old key.

mod support;

use gateway::sandbox::{Sandbox, SandboxConfig};
use gateway::signing::KeyRing;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::{Gateway, TRIBUTI_KEY};

const LAURA: &str = "BNCLRA85C52F205V";
const GIUSEPPE: &str = "VRDGPP50T01H501B";
const SUBJECT: &str = "Avviso TARI riservato per la famiglia Bianchi";
const SECRET: &str = "Via dei Gelsomini 42, interno 7";
/// Not in the GPD fixture (whose payment dedup keys keep their notice numbers in clear).
const NOTICE: &str = "301202500000424243";

fn cli(args: &[&str], config: &Path) -> Output {
    Command::new(support::binary()).args(args).arg("--config").arg(config).output().unwrap()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn private_message(fiscal_code: &str, marker: &str) -> Value {
    json!({
        "fiscal_code": fiscal_code,
        "content": {
            "subject": SUBJECT,
            "markdown": format!("Gentile contribuente, l'avviso per l'immobile di {SECRET} e' disponibile. Codice {marker}."),
            "payment_data": { "amount": 15000, "notice_number": NOTICE, "payee": { "fiscal_code": "80000000010" } }
        }
    })
}

/// Every byte of the queue's files (database, WAL, shared memory).
fn queue_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("queue.db"))
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect()
}

fn assert_no_clear_personal_data(dir: &Path, needles: &[&str]) {
    let files = queue_files(dir);
    let total: usize = files.iter().map(|(_, bytes)| bytes.len()).sum();
    assert!(files.iter().any(|(p, _)| p.ends_with("queue.db")) && total > 16 * 1024, "the scan reads the database");
    for (path, bytes) in &files {
        for needle in needles {
            let found = bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
            assert!(!found, "{} holds {needle:?} in clear", path.display());
        }
    }
}

fn write_config(dir: &Path, base_url: &str) -> PathBuf {
    let key_dir = dir.join("signing");
    if !key_dir.exists() {
        KeyRing::generate(&key_dir).unwrap();
    }
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/templates");
    let text = support::config_text(dir, "retention_undelivered_days = 30", false)
        .replace("base_url = \"http://127.0.0.1:9/api/v1\"", &format!("base_url = \"{base_url}\""))
        + &format!(
            "\n[delivery]\nfirst_poll_after_seconds = 1\n[signing]\nkey_directory = \"{}\"\n[import]\ntemplates = \"{}\"\n",
            key_dir.display(),
            templates.display()
        );
    let config = dir.join("gateway.toml");
    std::fs::write(&config, text).unwrap();
    config
}

#[test]
fn the_queue_holds_no_clear_personal_data_and_a_citizen_is_exported_then_erased() {
    let dir = tempfile::tempdir().unwrap();
    // IO unreachable: everything stays in the queue, content and all.
    let config = write_config(dir.path(), "http://127.0.0.1:9/api/v1");
    let gateway = Gateway::start_with(dir.path(), &config);
    let mut laura = Vec::new();
    for i in 0..3 {
        let response = gateway.post("/api/v1/messages", TRIBUTI_KEY, &private_message(LAURA, &format!("L{i}")), &[]);
        assert_eq!(response.status, 201);
        laura.push(response.header("location").unwrap().to_string());
    }
    let other = gateway.post("/api/v1/messages", TRIBUTI_KEY, &private_message(GIUSEPPE, "G0"), &[]);
    assert_eq!(other.status, 201);
    // An import while the daemon runs: GPD positions for Laura and others.
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../connectors/tests/fixtures/gpd_tari_2025.json");
    let imported = cli(&["import", "gpd", sample.to_str().unwrap(), "-t", "tari", "-s", "tari"], &config);
    assert_eq!(imported.status.code(), Some(0), "{}", text(&imported));

    // While running (the WAL holds the latest pages) and after a clean stop.
    let needles = [LAURA, GIUSEPPE, SUBJECT, SECRET, "Gelsomini", NOTICE, "Gentile contribuente"];
    assert_no_clear_personal_data(dir.path(), &needles);
    let shown = gateway.get(&laura[0], TRIBUTI_KEY).json();
    assert_eq!(shown["message"]["content"]["subject"], SUBJECT, "the API still shows the content: {shown}");
    let (status, _) = gateway.terminate();
    assert!(status.success());
    assert_no_clear_personal_data(dir.path(), &needles);

    // Export: everything held about Laura, and nothing about anyone else.
    let export = cli(&["citizen", "export", LAURA], &config);
    assert!(export.status.success(), "{}", text(&export));
    let document: Value = serde_json::from_slice(&export.stdout).unwrap();
    let messages = document["messages"].as_array().unwrap();
    let posted: Vec<&Value> = messages.iter().filter(|m| m["client"] == "tributi").collect();
    let from_import: Vec<&Value> = messages.iter().filter(|m| m["client"] == "import").collect();
    assert_eq!(posted.len(), 3, "{document:#}");
    assert!(!from_import.is_empty(), "Laura's GPD options are hers too: {document:#}");
    assert_eq!(posted[0]["body"]["content"]["subject"], SUBJECT);
    assert_eq!(posted[0]["body"]["fiscal_code"], LAURA);
    assert_eq!(from_import[0]["record"]["fiscal_code"], LAURA, "{:#}", from_import[0]);
    assert_eq!(from_import[0]["template"], "tari");
    assert_eq!(posted[0]["audit"][0]["kind"], "accepted");
    assert!(!String::from_utf8_lossy(&export.stdout).contains(GIUSEPPE));

    // Erase: content and personal data gone, the messages cancelled, the trail whole.
    let erase = cli(&["citizen", "erase", LAURA], &config);
    assert!(erase.status.success(), "{}", text(&erase));
    let erased = text(&erase).lines().filter(|l| l.ends_with(": erased")).count();
    assert_eq!(erased, messages.len(), "{}", text(&erase));
    let again: Value = serde_json::from_slice(&cli(&["citizen", "export", LAURA], &config).stdout).unwrap();
    assert_eq!(again["messages"], json!([]), "nothing links to Laura any more");
    let id = laura[0].rsplit('/').next().unwrap();
    let show = cli(&["queue", "show", id], &config);
    assert!(text(&show).contains("state:     cancelled"), "{}", text(&show));
    assert!(text(&show).contains("erased at the citizen's request"), "{}", text(&show));
    let verify = cli(&["audit", "verify"], &config);
    assert!(verify.status.success(), "the chain stays valid: {}", text(&verify));
    let trail = cli(&["audit", "export"], &config);
    let trail: Value = serde_json::from_slice(&trail.stdout).unwrap();
    let erasures: Vec<&Value> = trail["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "erased" && e["detail"] == "citizen request")
        .collect();
    assert_eq!(erasures.len(), messages.len());
    assert!(erasures.iter().all(|e| e["actor"].as_str().is_some()), "each erasure names the operator");

    // Giuseppe's message is untouched; Laura's are gone from the API too.
    let gateway = Gateway::start_with(dir.path(), &config);
    assert_eq!(gateway.get(&laura[0], TRIBUTI_KEY).status, 404);
    let location = other.header("location").unwrap();
    assert_eq!(gateway.get(location, TRIBUTI_KEY).json()["message"]["content"]["subject"], SUBJECT);
    let (status, _) = gateway.terminate();
    assert!(status.success());
    assert_no_clear_personal_data(dir.path(), &needles);
}

fn data_keys(args: &[&str]) -> Output {
    Command::new(support::binary()).arg("data-keys").args(args).output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_queued_under_a_rotated_data_key_are_delivered_and_the_rotation_is_audited() {
    let sandbox_config = "listen = \"127.0.0.1:0\"\nprocessing_delay_ms = 0\n\
        [[services]]\nservice_id = \"01JTESTSERVICETARI\"\ninstitution = \"80000000010\"\nprimary_key = \"io-subscription-key-tari\"\n";
    let io = Sandbox::start(SandboxConfig::from_toml_str(sandbox_config).unwrap()).await.unwrap();
    let base_url = io.base_url();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let config = write_config(&path, "http://127.0.0.1:9/api/v1");
        let gateway = Gateway::start_with(&path, &config);
        let post = |gateway: &Gateway, marker: &str| {
            let response = gateway.post("/api/v1/messages", TRIBUTI_KEY, &private_message(LAURA, marker), &[]);
            assert_eq!(response.status, 201);
            response.header("location").unwrap().to_string()
        };
        let mut locations: Vec<String> = (0..3).map(|i| post(&gateway, &format!("old-{i}"))).collect();
        let key_dir = path.join("data-keys");
        let rotated = data_keys(&["rotate", "--dir", key_dir.to_str().unwrap()]);
        assert!(rotated.status.success(), "{}", text(&rotated));
        let pid = rustix::process::Pid::from_raw(gateway.pid()).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
        gateway.wait_log("reload: data keys loaded");
        locations.extend((0..3).map(|i| post(&gateway, &format!("new-{i}"))));
        let (status, _) = gateway.terminate();
        assert!(status.success());

        let shown = cli(&["data-keys", "show"], &config);
        assert!(shown.status.success(), "{}", text(&shown));
        assert!(text(&shown).contains("data-1.key, 3 message(s) need it"), "{}", text(&shown));
        assert!(text(&shown).contains("data-2.key (current: seals new content), 3 message(s)"), "{}", text(&shown));

        // IO is back: everything goes out, whichever key sealed it.
        let config = write_config(&path, &base_url);
        assert!(cli(&["queue", "retry", "--all", "--state", "queued"], &config).status.success());
        let gateway = Gateway::start_with(&path, &config);
        let deadline = Instant::now() + Duration::from_secs(60);
        for location in &locations {
            loop {
                let view = gateway.get(location, TRIBUTI_KEY).json();
                if view["gateway"]["state"] == "processed" {
                    assert_eq!(view["gateway"]["content_deleted"], true, "retention: gone at IO's final status");
                    break;
                }
                assert!(Instant::now() < deadline, "not processed: {view}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let (status, _) = gateway.terminate();
        assert!(status.success());
        let shown = cli(&["data-keys", "show"], &config);
        assert!(text(&shown).contains("data-1.key, 0 message(s) need it"), "key 1 may be retired: {}", text(&shown));
        let conn = rusqlite::Connection::open(path.join("queue.db")).unwrap();
        let rotations: Vec<String> = conn
            .prepare("SELECT detail FROM audit WHERE kind = 'key_rotated'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(rotations, ["data key 1 -> 2"]);
        assert!(cli(&["audit", "verify"], &config).status.success());
    })
    .await
    .unwrap();
    let mut markers: Vec<String> = io
        .received()
        .iter()
        .map(|m| {
            assert_eq!(m.fiscal_code, LAURA);
            assert_eq!(m.content["subject"], SUBJECT);
            let markdown = m.content["markdown"].as_str().unwrap();
            markdown.rsplit("Codice ").next().unwrap().trim_end_matches('.').to_string()
        })
        .collect();
    markers.sort();
    assert_eq!(markers, ["new-0", "new-1", "new-2", "old-0", "old-1", "old-2"]);
}
