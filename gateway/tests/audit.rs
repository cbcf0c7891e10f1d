//! The audit trail as an auditor meets it, with the real binary: a day of work (an import,
//! an operator's hold and release, the daemon delivering to the sandbox) leaves a trail
//! that `audit verify` accepts, with every message's accepted, sent and final entries;
//! each way of tampering with the database file is found and located; the export verifies
//! on its own; an import racing the daemon's intake leaves one unforked chain.

mod support;

use gateway::sandbox::{Sandbox, SandboxConfig};
use gateway::signing::KeyRing;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::{message, Gateway, TRIBUTI_KEY};

const NOT_ON_IO: &str = "VRDGPP50T01H501B";

fn binary(args: &[&str]) -> Command {
    let mut command = Command::new(support::binary());
    command.args(args).env("USER", "rossi").env_remove("SUDO_USER");
    command
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// `io-gateway audit verify --config config`: exit code and everything printed.
fn verify(config: &Path) -> (Option<i32>, String) {
    let out = binary(&["audit", "verify", "--config"]).arg(config).output().unwrap();
    (out.status.code(), text(&out))
}

/// The tests' configuration pointed at `base_url`, with the repository's templates and,
/// unless `None`, the key directory.
fn write_config(dir: &Path, base_url: &str, keys: Option<&Path>) -> PathBuf {
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/templates");
    let mut text = support::config_text(dir, "", false)
        .replace("base_url = \"http://127.0.0.1:9/api/v1\"", &format!("base_url = \"{base_url}\""))
        + &format!("\n[delivery]\nfirst_poll_after_seconds = 1\n[import]\ntemplates = \"{}\"\n", templates.display());
    if let Some(keys) = keys {
        text += &format!("[signing]\nkey_directory = \"{}\"\n", keys.display());
    }
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn import(config: &Path, file: &Path) -> Output {
    let dir = config.parent().unwrap();
    binary(&["import", "gpd"])
        .arg(file)
        .args(["-t", "tari", "-s", "tari", "--config"])
        .arg(config)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn db(dir: &Path) -> Connection {
    Connection::open(dir.join("queue.db")).unwrap()
}

fn query<T: rusqlite::types::FromSql>(conn: &Connection, sql: &str) -> Vec<T> {
    let mut stmt = conn.prepare(sql).unwrap();
    stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

/// (kind, actor, detail) of a message's entries, in order.
fn entries_of(conn: &Connection, id: &str) -> Vec<(String, Option<String>, String)> {
    let mut stmt = conn.prepare("SELECT kind, actor, detail FROM audit WHERE message_id = ?1 ORDER BY seq").unwrap();
    stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect()
}

/// Waits until every message in the queue is processed or not on IO.
fn wait_final(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let states: Vec<String> = query(&db(dir), "SELECT state FROM messages");
        if states.iter().all(|s| s == "processed" || s == "not_on_io") {
            return;
        }
        assert!(Instant::now() < deadline, "not final: {states:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A copy of the stopped gateway's database tampered with by `sql`, and a configuration
/// that points at it.
fn tampered(dir: &Path, config: &Path, name: &str, sql: &str) -> PathBuf {
    let case = dir.join(name);
    std::fs::create_dir(&case).unwrap();
    std::fs::copy(dir.join("queue.db"), case.join("queue.db")).unwrap();
    Connection::open(case.join("queue.db")).unwrap().execute_batch(sql).unwrap();
    let original = dir.join("queue.db").display().to_string();
    let text =
        std::fs::read_to_string(config).unwrap().replace(&original, &case.join("queue.db").display().to_string());
    let path = case.join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_of_work_leaves_a_trail_that_verifies_and_every_tampering_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    KeyRing::generate(&keys).unwrap();
    let io = Sandbox::start(
        SandboxConfig::from_toml_str(&format!(
            "listen = \"127.0.0.1:0\"\nprocessing_delay_ms = 0\n\
             [[services]]\nservice_id = \"01JTESTSERVICETARI\"\ninstitution = \"80000000010\"\nprimary_key = \"io-subscription-key-tari\"\n\
             [[citizens]]\nfiscal_code = \"{NOT_ON_IO}\"\nprofile = \"not_on_io\"\n"
        ))
        .unwrap(),
    )
    .await
    .unwrap();
    let config = write_config(dir.path(), &io.base_url(), Some(&keys));
    let dir_path = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        // The import and the operator's moves, each on its own connection, each signing
        // a checkpoint at its end.
        let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../connectors/tests/fixtures/gpd_tari_2025.json");
        let imported = import(&config, &sample);
        assert_eq!(imported.status.code(), Some(0), "{}", text(&imported));
        let ids: Vec<String> = query(&db(&dir_path), "SELECT id FROM messages ORDER BY seq");
        assert_eq!(ids.len(), 7);
        for action in ["hold", "release"] {
            let moved = binary(&["queue", action, &ids[0], &ids[1], "--config"]).arg(&config).output().unwrap();
            assert!(moved.status.success(), "{}", text(&moved));
        }
        // The daemon: three posts, then everything delivered; its close signs the head.
        let gateway = Gateway::start_with(&dir_path, &config);
        for (fc, marker) in [("BNCLRA85C52F205V", "a"), ("BNCLRA85C52F205V", "b"), (NOT_ON_IO, "c")] {
            let response = gateway.post("/api/v1/messages", TRIBUTI_KEY, &message(fc, marker), &[]);
            assert_eq!(response.status, 201);
        }
        wait_final(&dir_path);
        assert!(gateway.terminate().0.success());
    })
    .await
    .unwrap();
    let dir = dir.path();
    let config = dir.join("gateway.toml");

    let (code, out) = verify(&config);
    assert_eq!(code, Some(0), "{out}");
    let conn = db(dir);
    let head: i64 = conn.query_row("SELECT MAX(seq) FROM audit", [], |r| r.get(0)).unwrap();
    let signed: Vec<i64> = query(&conn, "SELECT seq FROM audit_checkpoints ORDER BY seq");
    assert_eq!(signed.len(), 4, "import, hold, release, close: {signed:?}");
    assert_eq!((signed[0], signed[3]), (7, head), "the import and the close sign their heads");
    let before_last = signed[2];
    assert!(
        out.contains(&format!("verified {head} entries up to seq {head}, last signed checkpoint at seq {head}")),
        "{out}"
    );

    // Every message: accepted (by whom), sent with IO's id, and its final state.
    let messages: Vec<(String, String, Option<String>, String)> = {
        let mut stmt = conn.prepare("SELECT id, client, io_message_id, state FROM messages ORDER BY seq").unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).unwrap().map(Result::unwrap).collect()
    };
    assert_eq!(messages.len(), 10);
    for (i, (id, client, io_id, state)) in messages.iter().enumerate() {
        let entries = entries_of(&conn, id);
        let kinds: Vec<&str> = entries.iter().map(|(k, _, _)| k.as_str()).collect();
        assert_eq!(entries[0], ("accepted".into(), Some(client.clone()), "queued".into()), "{id}");
        let last = entries.last().unwrap();
        if state == "not_on_io" {
            assert_eq!((last.0.as_str(), last.2.as_str()), ("rejected", "not_on_io"), "{kinds:?}");
            continue;
        }
        assert_eq!(state, "processed");
        assert!(entries.contains(&("sent".into(), None, io_id.clone().unwrap())), "{entries:?}");
        // Retention defaults to IO's final status: the content goes with it, audited.
        assert_eq!(last, &("erased".into(), None, "retention".into()), "{kinds:?}");
        let final_status = &entries[entries.len() - 2];
        assert_eq!((final_status.0.as_str(), final_status.2.as_str()), ("final_status", "processed"), "{kinds:?}");
        if i < 2 {
            assert!(entries.contains(&("held".into(), Some("rossi".into()), "from queued".into())), "{entries:?}");
            assert!(entries.contains(&("released".into(), Some("rossi".into()), "from held".into())), "{entries:?}");
        }
    }
    let entry_texts: Vec<String> = query(&conn, "SELECT COALESCE(detail, '') || COALESCE(actor, '') FROM audit");
    assert!(entry_texts.iter().all(|t| !t.contains("BNCLRA85C52F205V") && !t.contains("TARI")), "no content");

    // Tampering with the database file, each found and located.
    let rejected: i64 = conn.query_row("SELECT seq FROM audit WHERE kind = 'rejected'", [], |r| r.get(0)).unwrap();
    let cases = [
        (
            "edit",
            format!("UPDATE audit SET detail = 'processed' WHERE seq = {rejected}"),
            format!("entry {rejected} was edited"),
        ),
        ("delete", "DELETE FROM audit WHERE seq = 5".into(), "entry 5 is missing".into()),
        (
            "swap",
            "UPDATE audit SET seq = -1 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = 4;
             UPDATE audit SET seq = 4 WHERE seq = -1"
                .into(),
            "entry 3 was edited".into(),
        ),
        (
            "tail-after-last-checkpoint",
            format!("DELETE FROM audit_checkpoints WHERE seq = {head}; DELETE FROM audit WHERE seq > {before_last}"),
            format!("entries after seq {before_last} were removed"),
        ),
        (
            "tail-before-last-checkpoint",
            format!("DELETE FROM audit WHERE seq > {}", head - 4),
            format!("the chain ends at seq {} but a checkpoint signed seq {head}", head - 4),
        ),
    ];
    for (name, sql, expected) in cases {
        let (code, out) = verify(&tampered(dir, &config, name, &sql));
        assert_eq!(code, Some(1), "{name}: {out}");
        assert!(out.contains("NOT intact") && out.contains(&expected), "{name}: expected {expected:?} in {out}");
    }
    let (_, swapped) = verify(&dir.join("swap/gateway.toml"));
    assert!(swapped.contains("entry 4 was edited"), "{swapped}");

    // The export: verified from the file alone, and its own tampering found.
    let export = binary(&["audit", "export", "--config"]).arg(&config).output().unwrap();
    assert!(export.status.success(), "{}", text(&export));
    let file = dir.join("audit.json");
    std::fs::write(&file, &export.stdout).unwrap();
    let checked = binary(&["audit", "verify", "--file"]).arg(&file).output().unwrap();
    assert_eq!(checked.status.code(), Some(0), "{}", text(&checked));
    assert!(text(&checked).contains("compare them with the appliance's published keys"), "{}", text(&checked));
    let own_keys =
        binary(&["audit", "verify", "--file"]).arg(&file).arg("--public-keys").arg(keys_of(dir)).output().unwrap();
    assert_eq!(own_keys.status.code(), Some(0), "{}", text(&own_keys));
    let forged = String::from_utf8(export.stdout.clone())
        .unwrap()
        .replace("\"detail\":\"not_on_io\"", "\"detail\":\"processed\"");
    std::fs::write(&file, forged).unwrap();
    let checked = binary(&["audit", "verify", "--file"]).arg(&file).output().unwrap();
    assert_eq!(checked.status.code(), Some(1), "{}", text(&checked));
    assert!(text(&checked).contains(&format!("entry {rejected} was edited")), "{}", text(&checked));
    let since = binary(&["audit", "export", "--since", "9", "--config"]).arg(&config).output().unwrap();
    std::fs::write(&file, &since.stdout).unwrap();
    let checked = binary(&["audit", "verify", "--file"]).arg(&file).output().unwrap();
    assert_eq!(checked.status.code(), Some(0), "{}", text(&checked));
    assert!(text(&checked).contains("(from seq 9; earlier entries not checked)"), "{}", text(&checked));
}

fn keys_of(dir: &Path) -> PathBuf {
    dir.join("keys/public-keys.json")
}

#[test]
fn without_signing_the_trail_is_chained_and_verify_says_nothing_covers_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:9/api/v1", None);
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../connectors/tests/fixtures/gpd_tari_2025.json");
    assert_eq!(import(&config, &sample).status.code(), Some(0));
    let (code, out) = verify(&config);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("verified 7 entries up to seq 7, no signed checkpoint"), "{out}");
    assert!(out.contains("the last 7 entries are not yet covered by a checkpoint"), "{out}");
}

#[test]
fn an_import_racing_the_daemons_intake_leaves_one_unforked_chain() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    KeyRing::generate(&keys).unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:9/api/v1", Some(&keys));
    let file = dir.path().join("big.json");
    generate_gpd(&file, 6_000);
    let gateway = Gateway::start_with(dir.path(), &config);
    let done = std::sync::atomic::AtomicBool::new(false);
    let (imported, posted) = std::thread::scope(|scope| {
        let importing = scope.spawn(|| {
            let out = import(&config, &file);
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            out
        });
        // Posts keep coming until the import is over (and at least 20 per client).
        let posters: Vec<_> = (0..4)
            .map(|t| {
                let (gateway, done) = (&gateway, &done);
                scope.spawn(move || {
                    let mut posted = 0;
                    while posted < 20 || !done.load(std::sync::atomic::Ordering::Relaxed) {
                        let body = message("BNCLRA85C52F205V", &format!("race-{t}-{posted}"));
                        assert_eq!(gateway.post("/api/v1/messages", TRIBUTI_KEY, &body, &[]).status, 201);
                        posted += 1;
                    }
                    posted
                })
            })
            .collect();
        let posted: i64 = posters.into_iter().map(|p| p.join().unwrap()).sum();
        (importing.join().unwrap(), posted)
    });
    assert_eq!(imported.status.code(), Some(0), "{}", text(&imported));
    assert!(gateway.terminate().0.success());

    let (code, out) = verify(&config);
    assert_eq!(code, Some(0), "{out}");
    let conn = db(dir.path());
    let (count, head): (i64, i64) =
        conn.query_row("SELECT COUNT(*), MAX(seq) FROM audit", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert_eq!(count, head, "seqs 1..=head, none twice, none skipped");
    let accepted: Vec<i64> = query(&conn, "SELECT COUNT(*) FROM audit WHERE kind = 'accepted'");
    assert_eq!(accepted, [6_000 + posted]);
    let sources: Vec<String> = query(&conn, "SELECT DISTINCT actor FROM audit WHERE kind = 'accepted' ORDER BY actor");
    assert_eq!(sources, ["import", "tributi"]);
    let span = |actor: &str| -> (i64, i64) {
        let sql = "SELECT MIN(seq), MAX(seq) FROM audit WHERE kind = 'accepted' AND actor = ?1";
        conn.query_row(sql, [actor], |r| Ok((r.get(0)?, r.get(1)?))).unwrap()
    };
    let (import, api) = (span("import"), span("tributi"));
    assert!(api.0 < import.1 && import.0 < api.1, "the two writers took turns: import {import:?}, api {api:?}");
    assert!(out.contains(&format!("last signed checkpoint at seq {head}")), "{out}");
}

/// A GPD upload of `positions` positions with one option each, every code valid.
fn generate_gpd(path: &Path, positions: u64) {
    let mut text = String::from("{\"paymentPositions\":[\n");
    for p in 0..positions {
        let n = p + 1;
        let prefix = format!("301{n:013}");
        let iuv = format!("01{n:013}{:02}", prefix.parse::<u64>().unwrap() % 93);
        if p > 0 {
            text.push_str(",\n");
        }
        text.push_str(&format!(
            r#"{{"iupd":"80000000010-RACE-{p:07}","type":"F","payStandIn":true,"fiscalCode":"BNCLRA85C52F205V","fullName":"Contribuente","country":"IT","switchToExpired":false,"companyName":"Comune di Esempio","officeName":"Ufficio Tributi","paymentOption":[{{"nav":"3{iuv}","iuv":"{iuv}","amount":10000,"description":"TARI 2025 - unica soluzione","isPartialPayment":false,"dueDate":"2025-07-31T23:59:59","retentionDate":null,"fee":0,"transfer":[{{"idTransfer":"1","amount":10000,"organizationFiscalCode":"80000000010","remittanceInformation":"TARI 2025","category":"9/0101108TS/","iban":"IT60X0542811101000000123456","transferMetadata":[]}}],"paymentOptionMetadata":[]}}]}}"#
        ));
    }
    text.push_str("\n]}\n");
    std::fs::write(path, text).unwrap();
}
