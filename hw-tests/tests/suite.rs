//! The hardware tests run for real here, with tiny durations, against a temporary
//! directory on local disk: the real io-gateway binary, real processes, real SQLite files,
//! loopback only, ports chosen by the OS.

mod support;

use support::{assert_exit, failed_checks, figure, gateway_binary, hw_tests, number};

/// Checks whose floors depend on this machine's disk and CPU, not on whether the suite
/// works: on a loaded CI machine they may fail without anything being wrong.
const MACHINE_DEPENDENT: [&str; 4] =
    ["fsyncs per second", "SQLite commits per second", "SQLite commit p99", "handshakes per second"];

#[test]
fn all_quick_runs_every_test_and_reports_real_figures() {
    let temp = tempfile::tempdir().unwrap();
    let scratch = temp.path().join("scratch");
    let report_path = temp.path().join("report.md");
    let binary = gateway_binary().to_str().unwrap();
    let output = hw_tests(
        temp.path(),
        &[
            "all",
            "--quick",
            "--binary",
            binary,
            "--dir",
            scratch.to_str().unwrap(),
            "--report",
            report_path.to_str().unwrap(),
        ],
    );
    let report = std::fs::read_to_string(&report_path).expect("the report is written");
    let failed = failed_checks(&report);
    assert!(
        failed.iter().all(|f| MACHINE_DEPENDENT.iter().any(|m| f.starts_with(m))),
        "failed checks: {failed:?}\n{report}"
    );
    assert_exit(&output, if failed.is_empty() { 0 } else { 1 }, &report);

    // The machine.
    assert!(!figure(&report, "architecture").is_empty());
    assert!(!figure(&report, "kernel").is_empty());
    assert!(figure(&report, "file system of the test directory").contains(" on "), "{report}");
    assert!(figure(&report, "io-gateway").starts_with("io-gateway "), "{report}");

    // Storage.
    assert!(number(&report, "fsyncs per second") > 0.0);
    assert!(number(&report, "SQLite commits per second") > 0.0);
    assert!(number(&report, "SQLite commit latency") > 0.0);

    // Soak: everything answered 201 was delivered; memory was sampled.
    let accepted = number(&report, "answered 201");
    assert!(accepted >= 50.0, "{report}");
    assert_eq!(number(&report, "delivered (sent or processed)"), accepted, "{report}");
    assert_eq!(figure(&report, "every 201 reached the sandbox"), "PASS");
    assert_eq!(figure(&report, "gateway stopped cleanly on SIGTERM"), "PASS");
    assert!(number(&report, "RSS peak (VmHWM)") > 1.0, "{report}");
    assert_eq!(figure(&report, "RSS stayed flat"), "not judged", "a 10 s soak is too short to judge");

    // TLS.
    assert!(number(&report, "handshakes per second") > 0.0);
    assert_eq!(figure(&report, "every handshake succeeded"), "PASS");
    assert!(figure(&report, "negotiated").starts_with("TLSv1_3"), "{report}");

    // Power cut, simulated.
    assert!(number(&report, "acknowledged ids in the ledger") > 0.0);
    assert_eq!(number(&report, "missing from the queue"), 0.0);
    assert_eq!(figure(&report, "killed while messages were being posted"), "PASS");
    assert_eq!(figure(&report, "gateway restarts on the killed database"), "PASS");

    // Scratch directories are removed without --keep.
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0, "left in the scratch directory");
}

#[test]
fn verify_names_an_acknowledged_id_missing_from_the_queue_and_fails() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("power-cut");
    let (dir_arg, binary) = (dir.to_str().unwrap(), gateway_binary().to_str().unwrap());
    let simulated = temp.path().join("simulate.md");
    let args = ["power-cut", "simulate", "--binary", binary, "--dir", dir_arg, "--count", "100"];
    let output = hw_tests(temp.path(), &[&args[..], &["--report", simulated.to_str().unwrap()]].concat());
    let report = std::fs::read_to_string(&simulated).unwrap();
    assert_exit(&output, 0, &report);
    assert_eq!(number(&report, "missing from the queue"), 0.0);

    // The same database and ledger verify cleanly on their own...
    let ledger = dir.join("ledger.txt");
    let (database, ledger_arg) = (dir.join("queue.db"), ledger.to_str().unwrap());
    let verify = ["power-cut", "verify", "--database", database.to_str().unwrap(), "--ledger", ledger_arg];
    let output = hw_tests(temp.path(), &[&verify[..], &["--report", "clean.md"]].concat());
    let clean = std::fs::read_to_string(temp.path().join("clean.md")).unwrap();
    assert_exit(&output, 0, &clean);
    let acknowledged = number(&clean, "acknowledged ids in the ledger");

    // ...but not once the ledger holds an id the gateway never stored.
    let fake = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    let mut text = std::fs::read_to_string(&ledger).unwrap();
    text.push_str(&format!("{fake}\n"));
    std::fs::write(&ledger, text).unwrap();
    let output = hw_tests(temp.path(), &[&verify[..], &["--report", "missing.md"]].concat());
    let missing = std::fs::read_to_string(temp.path().join("missing.md")).unwrap();
    assert_exit(&output, 1, &missing);
    assert_eq!(number(&missing, "acknowledged ids in the ledger"), acknowledged + 1.0);
    assert_eq!(number(&missing, "missing from the queue"), 1.0);
    assert_eq!(figure(&missing, "every acknowledged message survived"), "FAIL");
    assert!(missing.contains(&format!("- `{fake}`")), "{missing}");
}

#[test]
fn soak_fails_when_the_gateway_exceeds_the_memory_ceiling() {
    let temp = tempfile::tempdir().unwrap();
    let binary = gateway_binary().to_str().unwrap();
    let dir = temp.path().to_str().unwrap();
    let args = ["soak", "--binary", binary, "--dir", dir, "--minutes", "0.05", "--rate", "5", "--max-rss-mib", "1"];
    let output = hw_tests(temp.path(), &[&args[..], &["--report", "soak.md"]].concat());
    let report = std::fs::read_to_string(temp.path().join("soak.md")).unwrap();
    assert_exit(&output, 1, &report);
    assert_eq!(failed_checks(&report), vec!["memory ceiling: peak ≤ 1 MiB".to_string()], "{report}");
    assert_eq!(figure(&report, "every 201 reached the sandbox"), "PASS");
}

#[test]
fn a_test_that_cannot_run_still_writes_a_report_and_exits_2() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().to_str().unwrap();
    let output =
        hw_tests(temp.path(), &["tls", "--binary", "/nonexistent/io-gateway", "--dir", dir, "--report", "r.md"]);
    let report = std::fs::read_to_string(temp.path().join("r.md")).unwrap();
    assert_exit(&output, 2, &report);
    assert_eq!(figure(&report, "ran to completion"), "FAIL");
    assert!(report.contains("/nonexistent/io-gateway"), "{report}");
}

#[test]
fn storage_writes_its_report_under_the_default_name() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("disk");
    let output = hw_tests(temp.path(), &["storage", "--dir", dir.to_str().unwrap(), "--seconds", "0.2"]);
    let reports: Vec<_> = std::fs::read_dir(temp.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("hw-report-") && n.ends_with(".md"))
        .collect();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let report = std::fs::read_to_string(temp.path().join(&reports[0])).unwrap();
    assert!(output.status.code().is_some_and(|c| c < 2), "{report}");
    assert!(number(&report, "fsyncs (4 KiB write + fdatasync)") >= 10.0);
    assert!(String::from_utf8_lossy(&output.stdout).contains(&reports[0]));
}
