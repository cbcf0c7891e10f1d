//! `io-gateway import` and the watch folders, run as a sysadmin would: the real binary,
//! real files from ../shared and generated ones, a real SQLite queue.

mod support;

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::{config_text, Gateway};

fn shared(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared").join(path)
}

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../connectors/tests/fixtures").join(path)
}

fn templates() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/templates")
}

/// A configuration with the repository's templates and `import_extra` in `[import]`.
fn write_config(dir: &Path, storage_extra: &str, import_extra: &str) -> PathBuf {
    let text = format!(
        "{}\n[import]\ntemplates = \"{}\"\n{import_extra}\n",
        config_text(dir, storage_extra, false),
        templates().display()
    );
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn import(dir: &Path, config: &Path, args: &[&str]) -> Output {
    Command::new(support::binary())
        .current_dir(dir)
        .arg("import")
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The summary line `label: N`.
fn count(output: &Output, label: &str) -> u64 {
    let text = stdout(output);
    let line =
        text.lines().find(|l| l.trim_start().starts_with(label)).unwrap_or_else(|| panic!("no {label} in {text}"));
    line.split(':').nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap()
}

fn db(dir: &Path) -> Connection {
    Connection::open(dir.join("queue.db")).unwrap()
}

/// Queued messages: fiscal code (opened with the data keys), dedup key (as stored: a keyed
/// hash), source.
fn queued(dir: &Path) -> Vec<(String, String, String)> {
    let keys = gateway::seal::key_dir::load(&dir.join("data-keys")).unwrap();
    let conn = db(dir);
    let mut stmt = conn.prepare("SELECT id, fiscal_code, dedup_key, source FROM messages ORDER BY seq").unwrap();
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?, r.get(2)?, r.get(3)?)));
    rows.unwrap()
        .map(Result::unwrap)
        .map(|(id, sealed, dedup, source)| {
            let clear = keys.open(gateway::seal::Field::Recipient, &id, &sealed).unwrap();
            (String::from_utf8(clear).unwrap(), dedup, source)
        })
        .collect()
}

/// What imported messages are rendered from at send time: the record's values.
fn recipes(dir: &Path) -> Vec<serde_json::Value> {
    let keys = gateway::seal::key_dir::load(&dir.join("data-keys")).unwrap();
    let conn = db(dir);
    let mut stmt = conn.prepare("SELECT id, recipe FROM messages ORDER BY seq").unwrap();
    stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .map(|(id, sealed)| {
            serde_json::from_slice(&keys.open(gateway::seal::Field::Recipe, &id, &sealed).unwrap()).unwrap()
        })
        .collect()
}

#[test]
fn a_gpd_upload_becomes_one_message_per_option_and_a_second_import_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "", "");
    let file = shared("samples/gpd_tari_2025.zip");
    let file = file.to_str().unwrap();

    let first = import(dir.path(), &config, &["gpd", file, "--template", "tari", "--service", "tari"]);
    assert_eq!(first.status.code(), Some(0), "{}{}", stdout(&first), String::from_utf8_lossy(&first.stderr));
    assert_eq!(count(&first, "records read"), 7);
    assert_eq!(count(&first, "queued"), 7);
    assert_eq!(count(&first, "rejected"), 0);

    let rows = queued(dir.path());
    assert_eq!(rows.len(), 7);
    assert!(rows
        .iter()
        .all(|(_, key, source)| key.starts_with("payment:80000000010:3") && source == "gpd:gpd_tari_2025.zip"));
    assert_eq!(rows[1].0, "BNCLRA85C52F205V");
    // Stored as the record's values and the template, rendered at send time.
    let recipe = &recipes(dir.path())[1];
    assert_eq!(recipe["kind"], "payment");
    assert_eq!(recipe["cents"], 15000);
    assert_eq!(recipe["notice_number"], "301202500000000281");
    assert_eq!(recipe["creditor"], "80000000010");
    assert_eq!(recipe["due"], "2025-07-31");
    assert_eq!(recipe["installment"], serde_json::json!([1, 2]));
    let (name, text): (String, String) =
        db(dir.path()).query_row("SELECT name, text FROM templates", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert_eq!(name, "tari");
    assert_eq!(text, std::fs::read_to_string(templates().join("tari.toml")).unwrap());

    let again = import(dir.path(), &config, &["gpd", file, "--template", "tari", "--service", "tari"]);
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(count(&again, "queued"), 0);
    assert_eq!(count(&again, "already queued"), 7);
    assert_eq!(queued(dir.path()).len(), 7);

    // The GovPay export of the same notices overlaps: its three rows are duplicates.
    let govpay = shared("samples/govpay_pendenze_tari.csv");
    let overlap = import(dir.path(), &config, &["govpay", govpay.to_str().unwrap(), "-t", "tari", "-s", "tari"]);
    assert_eq!(overlap.status.code(), Some(0), "{}", stdout(&overlap));
    assert_eq!(count(&overlap, "already queued"), 3);
    assert_eq!(queued(dir.path()).len(), 7);
}

#[test]
fn a_dry_run_renders_a_sample_and_queues_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "", "");
    let file = shared("samples/gpd_tari_2025.json");
    let out = import(dir.path(), &config, &["gpd", file.to_str().unwrap(), "-t", "tari", "-s", "tari", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("dry run: nothing was queued"), "{text}");
    assert!(text.contains("subject:"), "{text}");
    assert!(text.contains("300,00 €"), "{text}");
    assert!(text.contains("rata 1 di 2") || text.contains("unica soluzione"), "{text}");
    // Due 31/07/2025 means 23:59:59 in Rome, sent as UTC.
    assert!(text.contains("due_date: 2025-07-31T21:59:59.000Z"), "{text}");
    assert!(text.contains("payment:  30000 cents, notice 301202500000000180, payee 80000000010"), "{text}");
    assert!(text.contains("also in:  en, de") || text.contains("also in:  de, en"), "{text}");
    assert_eq!(count(&out, "messages valid"), 7);
    assert_eq!(count(&out, "queued"), 0);
    let messages: i64 = db(dir.path()).query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0)).unwrap_or(0);
    assert_eq!(messages, 0);
}

#[test]
fn bad_rows_are_reported_with_their_line_and_the_good_ones_queued() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "", "");
    let original = std::fs::read_to_string(shared("samples/govpay_pendenze_tari.csv")).unwrap();
    let mut lines: Vec<String> = original.lines().map(str::to_string).collect();
    // Line 3: a notice number with a wrong check digit; line 4: an amount that is not one.
    lines[2] = lines[2].replace("301202500000000281", "301202500000000282");
    lines[3] = lines[3].replace(",150.00,", ",12abc,");
    let file = dir.path().join("pendenze.csv");
    std::fs::write(&file, lines.join("\r\n")).unwrap();

    let out = import(dir.path(), &config, &["govpay", file.to_str().unwrap(), "-t", "tari", "-s", "tari"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert_eq!(count(&out, "queued"), 1);
    assert_eq!(count(&out, "rejected"), 2);
    let report = std::fs::read_to_string(dir.path().join("pendenze.csv.report.csv")).unwrap();
    let rows: Vec<&str> = report.lines().collect();
    assert_eq!(rows[0], "kind,line,record,field,reason");
    assert!(rows.iter().any(|r| r.starts_with("rejected,3,,numeroAvviso,")), "{report}");
    assert!(rows.iter().any(|r| r.starts_with("rejected,4,,importo,")), "{report}");
    assert!(stdout(&out).contains("pendenze.csv.report.csv"));

    // Warn-only accepts the wrong check digit, with a warning in the report.
    let warn = import(
        dir.path(),
        &config,
        &[
            "govpay",
            file.to_str().unwrap(),
            "-t",
            "tari",
            "-s",
            "tari",
            "--warn-only-check-digits",
            "--report",
            "w.csv",
        ],
    );
    assert_eq!(count(&warn, "queued"), 1);
    assert_eq!(count(&warn, "already queued"), 1);
    assert_eq!(count(&warn, "warnings"), 1);
    let report = std::fs::read_to_string(dir.path().join("w.csv")).unwrap();
    assert!(report.lines().any(|r| r.starts_with("warning,3,")), "{report}");
}

#[test]
fn an_anpr_extract_queues_exactly_the_reminders_due() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "", "");
    let file = shared("anpr/samples/001234_Elenchi_sample.xml");
    let args = |campaign: &str| {
        vec![
            "anpr-xml".to_string(),
            file.to_str().unwrap().to_string(),
            "-s".into(),
            "anagrafe".into(),
            "--campaign".into(),
            campaign.into(),
            "--today".into(),
            "2026-11-22".into(),
        ]
    };
    let run = |campaign: &str| {
        let args = args(campaign);
        import(dir.path(), &config, &args.iter().map(String::as_str).collect::<Vec<_>>())
    };

    let expiring = run("id-card-expiring");
    assert_eq!(expiring.status.code(), Some(0), "{}{}", stdout(&expiring), String::from_utf8_lossy(&expiring.stderr));
    assert_eq!(count(&expiring, "skipped subjects"), 4, "2 repeated answers, 1 deceased, 1 emigrated");
    let mut codes: Vec<String> = queued(dir.path()).into_iter().map(|r| r.0).collect();
    codes.sort();
    assert_eq!(codes, ["DNGNCL98T16A479E", "LMRHMZ22S22Z330G"]);
    // An ID card's dedup key holds the fiscal code: stored as a keyed hash.
    assert!(queued(dir.path()).iter().all(|(_, key, _)| key.len() == 32 && key.bytes().all(|b| b.is_ascii_hexdigit())));
    let recipe = recipes(dir.path()).into_iter().find(|r| r["fiscal_code"] == "DNGNCL98T16A479E").unwrap();
    assert_eq!(recipe["kind"], "id_card");
    assert_eq!(recipe["valid_until"], "2026-12-16");
    assert_eq!(recipe["due"], "2026-12-16");

    let paper = run("paper-id-card");
    assert_eq!(paper.status.code(), Some(0), "{}", stdout(&paper));
    let mut codes: Vec<String> = queued(dir.path()).into_iter().skip(2).map(|r| r.0).collect();
    codes.sort();
    assert_eq!(
        codes,
        ["BNDTRS42T01Z138H", "CNTLRZ90D57C351K", "LMRYSF41M04Z330I", "SHHRTA58T54Z100M", "VTLGRL65E24B639I"]
    );

    // Re-running both campaigns adds nothing.
    assert_eq!(count(&run("id-card-expiring"), "queued"), 0);
    assert_eq!(count(&run("paper-id-card"), "queued"), 0);
    assert_eq!(queued(dir.path()).len(), 7);
}

#[test]
fn flat_anpr_csv_and_gzipped_extracts_are_read_too() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "", "");
    let csv = fixture("anpr/anpr_estratto_proposto.csv");
    let out =
        import(dir.path(), &config, &["anpr-csv", csv.to_str().unwrap(), "-s", "anagrafe", "--today", "2026-01-05"]);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    let mut codes: Vec<String> = queued(dir.path()).into_iter().map(|r| r.0).collect();
    codes.sort();
    assert_eq!(codes, ["BNCLRA85C52F205V", "CLMLCU01A05L219U"], "expiring by 2026-07-04");

    // Gzip is recognised by its bytes: a really gzipped file without .gz, and a plain
    // one named .gz, give what their expected JSON says.
    for name in ["real_gzip", "gzip_name"] {
        let file = if name == "real_gzip" { fixture("anpr/real_gzip.xml") } else { fixture("anpr/gzip_name.xml.gz") };
        let expected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(fixture(&format!("anpr/{name}.expected.json"))).unwrap())
                .unwrap();
        let gone: Vec<&str> = ["deceased", "cancelled_other"]
            .iter()
            .flat_map(|k| expected[k].as_array().unwrap().iter().map(|v| v.as_str().unwrap()))
            .collect();
        let due = expected["subjects"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["cartaIdentita"]["category"] == "soon_cie")
            .filter(|s| !gone.contains(&s["codiceFiscale"].as_str().unwrap()))
            .count() as u64;
        assert!(due > 0, "{name}: the fixture has reminders to find");
        let today = expected["ref_date"].as_str().unwrap();
        let path = file.to_str().unwrap();
        let out = import(dir.path(), &config, &["anpr-xml", path, "-s", "anagrafe", "--today", today, "--dry-run"]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stdout(&out));
        assert_eq!(count(&out, "messages valid"), due, "{name}: {}", stdout(&out));
    }
}

#[test]
fn a_truncated_file_keeps_the_good_records_and_says_where_it_broke() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "", "");
    let text = std::fs::read_to_string(shared("samples/gpd_tari_2025.json")).unwrap();
    // Cut inside the third position: the first two (six options) are whole.
    let third = text.match_indices("\"iupd\"").nth(2).unwrap().0;
    let file = dir.path().join("cut.json");
    std::fs::write(&file, &text[..third + 20]).unwrap();

    let out = import(dir.path(), &config, &["gpd", file.to_str().unwrap(), "-t", "tari", "-s", "tari"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(count(&out, "queued"), 6);
    assert!(stdout(&out).contains("FILE INCOMPLETE"), "{}", stdout(&out));
    assert_eq!(queued(dir.path()).len(), 6);

    // The complete file later queues only the missing option.
    let whole = shared("samples/gpd_tari_2025.json");
    let out = import(dir.path(), &config, &["gpd", whole.to_str().unwrap(), "-t", "tari", "-s", "tari"]);
    assert_eq!(count(&out, "queued"), 1);
    assert_eq!(count(&out, "already queued"), 6);
}

#[test]
fn a_full_queue_stops_the_import_and_a_later_run_queues_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "max_queued_messages = 5", "");
    let file = shared("samples/gpd_tari_2025.json");
    let out = import(dir.path(), &config, &["gpd", file.to_str().unwrap(), "-t", "tari", "-s", "tari"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("NOT QUEUED:        7 (the queue is full"), "{}", stdout(&out));
    assert_eq!(queued(dir.path()).len(), 0);

    let config = write_config(dir.path(), "max_queued_messages = 100", "");
    let out = import(dir.path(), &config, &["gpd", file.to_str().unwrap(), "-t", "tari", "-s", "tari"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(count(&out, "queued"), 7);
}

#[test]
fn import_mistakes_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "", "");
    let file = shared("samples/gpd_tari_2025.json");
    let file = file.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["gpd", file, "-s", "tari"], "needs a template"),
        (&["gpd", file, "-t", "tari"], "several services"),
        (&["gpd", file, "-t", "carta-identita", "-s", "tari"], "renders ID-card records"),
        (&["gpd", file, "-t", "nonexistent", "-s", "tari"], "cannot read template"),
        (&["csv", file, "-t", "tari", "-s", "tari"], "needs --mapping"),
        (&["anpr-xml", file, "-s", "tari", "--campaign", "birthday"], "not a campaign"),
    ];
    for (args, expected) in cases {
        let out = import(dir.path(), &config, args);
        assert_eq!(out.status.code(), Some(78), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let out = import(dir.path(), &config, &["xml", file, "-t", "tari"]);
    assert_eq!(out.status.code(), Some(2), "clap's usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("anpr-xml"));
}

#[test]
fn a_generic_csv_is_read_through_its_configured_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = r#"
[import.mappings.dovuti]
creditor = "80000000010"
date_format = "dd/mm/yyyy"
decimal = "comma"
[import.mappings.dovuti.columns]
fiscal_code = "CodiceFiscale"
name = "Nominativo"
notice_number = "CodiceAvviso"
amount = "Importo"
due_date = "Scadenza"
description = "Causale"
"#;
    let config = write_config(dir.path(), "", mapping);
    let csv = "CodiceFiscale;Nominativo;CodiceAvviso;Importo;Scadenza;Causale\r\n\
               BNCLRA85C52F205V;Laura Bianchi;3012 0250 0000 0001 80;1.020,99;31/07/2025;TARI 2025\r\n\
               VRDGPP50T01H501X;Giuseppe Verdi;301202500000000483;300,00;31/07/2025;TARI 2025\r\n";
    let file = dir.path().join("EstrazioneDovuti.csv");
    let (encoded, _, _) = encoding_rs::WINDOWS_1252.encode(csv);
    std::fs::write(&file, encoded).unwrap();
    let out = import(
        dir.path(),
        &config,
        &["csv", file.to_str().unwrap(), "--mapping", "dovuti", "-t", "tari", "-s", "tari"],
    );
    assert_eq!(out.status.code(), Some(2), "{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    assert_eq!(count(&out, "queued"), 1);
    let recipe = &recipes(dir.path())[0];
    assert_eq!(recipe["cents"], 102099);
    assert_eq!(recipe["notice_number"], "301202500000000180", "printed groups of four are joined");
    assert_eq!(recipe["due"], "2025-07-31");
    let report = std::fs::read_to_string(dir.path().join("EstrazioneDovuti.csv.report.csv")).unwrap();
    assert!(report.contains("fiscal_code"), "the bad check letter is reported: {report}");
}

/// Polls until `check` holds or ten seconds pass.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn watch_folders_import_settled_files_and_move_them() {
    let dir = tempfile::tempdir().unwrap();
    let watch = dir.path().join("tari");
    let watch_section = format!(
        "[[import.watch]]\ndirectory = \"{}\"\nformat = \"gpd\"\ntemplate = \"tari\"\nservice = \"tari\"\nsettle_seconds = 1\n",
        watch.display()
    );
    let config = write_config(dir.path(), "", &watch_section);
    let gateway = Gateway::start_with(dir.path(), &config);
    eventually("the inbox", || watch.join("inbox").is_dir());

    // A file being written under a temporary name is left alone, then renamed in place.
    let partial = watch.join("inbox/tari_2025.zip.part");
    std::fs::copy(shared("samples/gpd_tari_2025.zip"), &partial).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert!(partial.exists(), "a .part file must not be picked up");
    std::fs::rename(&partial, watch.join("inbox/tari_2025.zip")).unwrap();
    eventually("the file in done/", || watch.join("done/tari_2025.zip").exists());
    let summary = std::fs::read_to_string(watch.join("done/tari_2025.zip.summary.txt")).unwrap();
    assert!(summary.contains("queued:          7"), "{summary}");
    assert!(!watch.join("inbox/tari_2025.zip").exists());

    // A file that is not a GPD upload goes to rejected/ with the reason.
    std::fs::write(watch.join("inbox/notes.txt"), "not json at all").unwrap();
    eventually("the file in rejected/", || watch.join("rejected/notes.txt").exists());
    let error = std::fs::read_to_string(watch.join("rejected/notes.txt.error.txt")).unwrap();
    assert!(error.contains("not a GPD upload"), "{error}");

    // The same file dropped again is imported again, queues nothing, and keeps both copies.
    std::fs::copy(shared("samples/gpd_tari_2025.zip"), watch.join("inbox/tari_2025.zip")).unwrap();
    eventually("the second copy in done/", || std::fs::read_dir(watch.join("done")).unwrap().count() >= 4);
    assert_eq!(queued(dir.path()).len(), 7);
    let (status, _) = gateway.terminate();
    assert!(status.success());
}

#[test]
fn a_template_broken_before_a_sighup_is_refused_and_the_old_one_keeps_importing() {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::copy(self::templates().join("tari.toml"), templates.join("tari.toml")).unwrap();
    let watch = dir.path().join("tari");
    let text = format!(
        "{}\n[import]\ntemplates = \"{}\"\n[[import.watch]]\ndirectory = \"{}\"\nformat = \"gpd\"\n\
         template = \"tari\"\nservice = \"tari\"\nsettle_seconds = 1\n",
        config_text(dir.path(), "", false),
        templates.display(),
        watch.display()
    );
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, text).unwrap();
    let gateway = Gateway::start_with(dir.path(), &config);
    eventually("the inbox", || watch.join("inbox").is_dir());

    std::fs::write(templates.join("tari.toml"), "kind = \"payment\"\n[it]\nsubject = \"{{amount\"\n").unwrap();
    let pid = rustix::process::Pid::from_raw(gateway.pid()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
    gateway.wait_log("a watch folder keeps its old template");

    std::fs::copy(shared("samples/gpd_tari_2025.zip"), watch.join("inbox/tari_2025.zip")).unwrap();
    eventually("the file in done/", || watch.join("done/tari_2025.zip").exists());
    let summary = std::fs::read_to_string(watch.join("done/tari_2025.zip.summary.txt")).unwrap();
    assert!(summary.contains("queued:          7"), "{summary}");
    let (status, _) = gateway.terminate();
    assert!(status.success());
}

#[test]
fn check_config_reports_a_watch_folder_whose_template_is_broken() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.toml"), "kind = \"payment\"\n[it]\nsubject = \"{{amount\"\n").unwrap();
    let watch = format!(
        "[[import.watch]]\ndirectory = \"{}/w\"\nformat = \"gpd\"\ntemplate = \"{}/broken.toml\"\nservice = \"tari\"\n\
         [[import.watch]]\ndirectory = \"{}/x\"\nformat = \"govpay\"\ntemplate = \"missing\"\nservice = \"tari\"\n",
        dir.path().display(),
        dir.path().display(),
        dir.path().display()
    );
    let config = write_config(dir.path(), "", &watch);
    let out = Command::new(support::binary()).arg("check-config").arg("--config").arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("import.watch[0].template"), "{stderr}");
    assert!(stderr.contains("import.watch[1].template: cannot read"), "{stderr}");
}

#[test]
fn a_watch_folder_waits_for_a_file_that_is_still_growing() {
    let dir = tempfile::tempdir().unwrap();
    let watch = dir.path().join("tari");
    let watch_section = format!(
        "[[import.watch]]\ndirectory = \"{}\"\nformat = \"gpd\"\ntemplate = \"tari\"\nservice = \"tari\"\nsettle_seconds = 2\n",
        watch.display()
    );
    let config = write_config(dir.path(), "", &watch_section);
    let gateway = Gateway::start_with(dir.path(), &config);
    eventually("the inbox", || watch.join("inbox").is_dir());

    // Copied in two parts one second apart, under its final name: half a GPD upload
    // would be rejected as truncated, so the file must be taken only once whole.
    let text = std::fs::read(shared("samples/gpd_tari_2025.json")).unwrap();
    let target = watch.join("inbox/slow.json");
    std::fs::write(&target, &text[..text.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    assert!(target.exists(), "taken before it settled");
    let mut file = std::fs::OpenOptions::new().append(true).open(&target).unwrap();
    std::io::Write::write_all(&mut file, &text[text.len() / 2..]).unwrap();
    drop(file);

    eventually("the file in done/", || watch.join("done/slow.json").exists());
    assert!(!watch.join("rejected/slow.json").exists());
    let summary = std::fs::read_to_string(watch.join("done/slow.json.summary.txt")).unwrap();
    assert!(summary.contains("queued:          7"), "{summary}");
    let (status, _) = gateway.terminate();
    assert!(status.success());
}
