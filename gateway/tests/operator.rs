//! The sysadmin's commands, run as the real binary: `status`, `queue …`, `outcomes`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::harness::{harness, BLOCKS_US, FC, NOT_ON_IO};

fn run(args: &[&str], config: &Path) -> Output {
    Command::new(support::binary()).args(args).arg("--config").arg(config).output().unwrap()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// A gateway configuration (daemon not running) with seven imported TARI messages.
fn queue_with_messages(dir: &Path) -> PathBuf {
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/templates");
    let config = dir.join("gateway.toml");
    let body = format!("{}\n[import]\ntemplates = \"{}\"\n", support::config_text(dir, "", false), templates.display());
    std::fs::write(&config, body).unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../connectors/tests/fixtures/gpd_tari_2025.json");
    let out = run(&["import", "gpd", sample.to_str().unwrap(), "-t", "tari", "-s", "tari"], &config);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    config
}

fn ids(list: &str) -> Vec<String> {
    list.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .filter(|id| id.len() == 26)
        .map(String::from)
        .collect()
}

#[test]
fn an_operator_lists_holds_releases_and_cancels_while_history_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = queue_with_messages(dir.path());

    let list = run(&["queue", "list"], &config);
    assert!(list.status.success(), "{}", text(&list));
    let all = ids(&text(&list));
    assert_eq!(all.len(), 7, "{}", text(&list));
    assert!(text(&list).contains("7 message(s)"));
    assert!(text(&list).contains("gpd:gpd_tari_2025.json"), "the source says where a message came from");

    let hold = run(&["queue", "hold", &all[0], &all[1]], &config);
    assert!(hold.status.success(), "{}", text(&hold));
    assert!(text(&hold).contains(&format!("{}: queued -> held", all[0])));
    let held = run(&["queue", "list", "--state", "held"], &config);
    assert_eq!(ids(&text(&held)), all[..2]);

    let show = run(&["queue", "show", &all[0]], &config);
    assert!(text(&show).contains("state:     held"), "{}", text(&show));
    assert!(text(&show).contains("queued -> held  operator hold: "), "{}", text(&show));

    // Releasing what is not held is refused for that message, named, with exit 2.
    let mixed = run(&["queue", "release", &all[0], &all[2]], &config);
    assert_eq!(mixed.status.code(), Some(2));
    assert!(text(&mixed).contains(&format!("{}: held -> queued", all[0])), "{}", text(&mixed));
    assert!(text(&mixed).contains(&format!("{}: left queued: release applies to held", all[2])), "{}", text(&mixed));

    let release_all = run(&["queue", "release", "--all", "--state", "held"], &config);
    assert!(release_all.status.success(), "{}", text(&release_all));
    assert!(ids(&text(&run(&["queue", "list", "--state", "held"], &config))).is_empty());

    let cancel = run(&["queue", "cancel", &all[6]], &config);
    assert!(cancel.status.success());
    let again = run(&["queue", "cancel", &all[6]], &config);
    assert_eq!(again.status.code(), Some(2), "a final message stays final");

    let outcomes = run(&["outcomes"], &config);
    assert!(outcomes.status.success(), "{}", text(&outcomes));
    let csv = String::from_utf8_lossy(&outcomes.stdout).into_owned();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[0].starts_with("id,institution,service,fiscal_code,outcome,needs_paper_or_pec"));
    assert!(lines[1].starts_with(&format!("{},80000000010,tari,", all[6])) && lines[1].contains(",cancelled,no,"));

    let status = run(&["status"], &config);
    assert!(status.success_or_print());
    let screen = text(&status);
    assert!(screen.contains("awaiting delivery:  6 (limit 1000000)"), "{screen}");
    assert!(screen.contains("queued:") && screen.contains("bulk 6"), "{screen}");
    assert!(screen.contains("final:              cancelled 1"), "{screen}");
    assert!(screen.contains("last answer from IO that moved a message: never"), "{screen}");

    for bad in [&["queue", "show", "nonsense"][..], &["queue", "list", "--state", "lost"], &["queue", "hold"]] {
        assert_eq!(run(bad, &config).status.code(), Some(2), "{bad:?}");
    }
}

trait Success {
    fn success_or_print(&self) -> bool;
}

impl Success for Output {
    fn success_or_print(&self) -> bool {
        if !self.status.success() {
            eprintln!("{}", text(self));
        }
        self.status.success()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_name_the_citizens_who_need_paper_or_pec() {
    let h = harness("", "", "", "").await;
    let locations = vec![
        h.post(FC, "on-io", "normal").await,
        h.post(NOT_ON_IO, "not-on-io", "normal").await,
        h.post(BLOCKS_US, "blocks", "normal").await,
    ];
    h.settle_all(&locations, &["processed", "not_on_io", "sender_not_allowed"]).await;
    let config = h.dir.path().join("gateway.toml");
    std::fs::write(&config, &h.config).unwrap();

    let paper = run(&["outcomes", "--state", "not_on_io,sender_not_allowed"], &config);
    assert!(paper.status.success(), "{}", text(&paper));
    let csv = String::from_utf8_lossy(&paper.stdout).into_owned();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{csv}");
    assert!(rows.iter().any(|r| r.contains(&format!(",{NOT_ON_IO},not_on_io,yes,"))), "{csv}");
    assert!(rows.iter().any(|r| r.contains(&format!(",{BLOCKS_US},sender_not_allowed,yes,"))), "{csv}");

    let status = run(&["status"], &config);
    let screen = text(&status);
    assert!(screen.contains("not_on_io 1 (paper/PEC)"), "{screen}");
    assert!(!screen.contains("last answer from IO that moved a message: never"), "{screen}");
    h.stop().await;
}
