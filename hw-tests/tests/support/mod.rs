//! Test support: the io-gateway binary to test, running `io-gateway-hw-tests`, and
//! reading figures and verdicts back out of its Markdown report.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::SystemTime;

/// The io-gateway binary: `$IO_GATEWAY_BIN` if set; otherwise `io-gateway` in this test's
/// target directory (`target/debug/`), which `cargo test --workspace` has just built. When
/// it is missing, or older than the gateway's sources (e.g. after `cargo test -p
/// hw-tests` on a changed tree), it is built first with the cargo running this test.
pub fn gateway_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(path) = std::env::var_os("IO_GATEWAY_BIN").filter(|p| !p.is_empty()) {
            return PathBuf::from(path);
        }
        let exe = std::env::current_exe().expect("the test's own path");
        // target/debug/deps/suite-HASH → target/debug
        let profile_dir = exe.parent().and_then(Path::parent).expect("the target directory").to_path_buf();
        let binary = profile_dir.join("io-gateway");
        if is_stale(&binary) {
            build(&profile_dir);
        }
        assert!(binary.is_file(), "{} was not built", binary.display());
        binary
    })
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_path_buf()
}

/// Missing, or older than a source it is built from.
fn is_stale(binary: &Path) -> bool {
    let Ok(built) = std::fs::metadata(binary).and_then(|m| m.modified()) else { return true };
    let root = workspace();
    let sources =
        ["gateway/src", "connectors/src", "config", "gateway/Cargo.toml", "connectors/Cargo.toml", "Cargo.lock"];
    sources.iter().any(|s| newest(&root.join(s)).is_some_and(|t| t > built))
}

fn newest(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path).ok()?.filter_map(Result::ok).filter_map(|e| newest(&e.path())).max()
}

fn build(profile_dir: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(workspace()).args(["build", "-p", "gateway", "--bin", "io-gateway"]);
    // What cargo set for this test process is not the build's business: some build
    // scripts (ring's) rebuild whenever CARGO_MANIFEST_DIR differs.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let per_crate =
            ["CARGO_PKG_", "CARGO_BIN_", "CARGO_CRATE_", "CARGO_MANIFEST_", "CARGO_PRIMARY_", "CARGO_TARGET_TMPDIR"];
        if per_crate.iter().any(|p| name.starts_with(p)) || name == "OUT_DIR" {
            command.env_remove(name.as_ref());
        }
    }
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        command.arg("--release");
    }
    let status = command.status().expect("running cargo build for io-gateway");
    assert!(status.success(), "cargo build -p gateway --bin io-gateway failed: {status}");
}

/// Runs `io-gateway-hw-tests ARGS` in `cwd`.
pub fn hw_tests(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_io-gateway-hw-tests"))
        .current_dir(cwd)
        .args(args)
        .env_remove("IO_GATEWAY_BIN")
        .output()
        .expect("running io-gateway-hw-tests")
}

/// Its exit status, with its output in the message when it is not `expected`.
pub fn assert_exit(output: &Output, expected: i32, report: &str) {
    assert_eq!(
        output.status.code(),
        Some(expected),
        "stdout:\n{}\nstderr:\n{}\nreport:\n{report}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The value of the first table row named `name` ("| name | value |").
pub fn figure<'a>(report: &'a str, name: &str) -> &'a str {
    let prefix = format!("| {name} | ");
    report
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map(|rest| rest.trim_end_matches(" |").split(" | ").next().unwrap_or(""))
        .unwrap_or_else(|| panic!("no row {name:?} in the report:\n{report}"))
}

/// The leading number of a figure ("261", "23.9 MiB", "p50 1.786 ms, …" → 1.786).
pub fn number(report: &str, name: &str) -> f64 {
    let value = figure(report, name);
    let digits: String =
        value.chars().skip_while(|c| !c.is_ascii_digit()).take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    digits.parse().unwrap_or_else(|_| panic!("{name}: {value:?} holds no number"))
}

/// The names of the checks that failed.
pub fn failed_checks(report: &str) -> Vec<String> {
    report
        .lines()
        .filter(|l| l.contains(" | FAIL | "))
        .map(|l| l.trim_start_matches("| ").split(" | ").next().unwrap_or("").to_string())
        .collect()
}
