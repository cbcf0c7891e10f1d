//! The command line as a sysadmin uses it: check-config, run refusing a bad file, client-key.

mod support;

use std::process::Command;

#[test]
fn check_config_accepts_a_good_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, support::config_text(dir.path(), "", false)).unwrap();
    let out = Command::new(support::binary()).args(["check-config", "--config"]).arg(&config).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK (1 institution(s), 2 service(s), 2 local client(s))"));
}

#[test]
fn check_config_reports_every_problem_and_exits_78() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    let text = support::config_text(dir.path(), "", false)
        .replace("80000000010", "80000000011")
        .replace("services = [\"tari\"]", "services = [\"imu\"]")
        .replace(&dir.path().join("tari.key").display().to_string(), "/nonexistent/tari.key");
    std::fs::write(&config, text).unwrap();
    let out = Command::new(support::binary()).args(["check-config", "--config"]).arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "institutions[0].fiscal_code",
        "clients[0].services[0]: no institution has a service named imu",
        // File problems are reported together with the others, not after they are fixed.
        "institutions[0].services[0].primary_key: cannot read secret file /nonexistent/tari.key",
        "institutions[0].services[1].primary_key: cannot read secret file /nonexistent/tari.key",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?} in {stderr}");
    }
}

#[test]
fn check_config_reports_missing_secret_files_too() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    let text = support::config_text(dir.path(), "", false)
        .replace(&dir.path().join("tari.key").display().to_string(), "/nonexistent/tari.key");
    std::fs::write(&config, text).unwrap();
    let out = Command::new(support::binary()).args(["check-config", "--config"]).arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("2 problem(s)"), "{stderr}");
    assert!(stderr.contains("institutions[0].services[1].primary_key: cannot read secret file /nonexistent/tari.key"));
}

#[test]
fn run_refuses_a_bad_config_before_binding_anything() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    let text = support::config_text(dir.path(), "", false).replace("80000000010", "80000000011");
    std::fs::write(&config, text).unwrap();
    let out = Command::new(support::binary()).args(["run", "--config"]).arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refusing to start") && !stderr.contains("listening"), "{stderr}");
    assert!(!dir.path().join("queue.db").exists(), "no database is created for a bad config");
}

#[test]
fn the_shipped_example_is_only_missing_its_files() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/gateway.example.toml");
    let out = Command::new(support::binary()).args(["check-config", "--config", example]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        assert!(String::from_utf8_lossy(&out.stdout).contains(": OK ("));
        return;
    }
    // On a machine without /etc/io-gateway the only problems are the files it names.
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    let problems: Vec<&str> = stderr.lines().filter(|l| l.trim_start().starts_with("- ")).collect();
    assert!(!problems.is_empty(), "exit 78 must come with the problems listed: {stderr}");
    for line in problems {
        assert!(
            line.contains("cannot read") || line.contains("does not exist") || line.contains("environment variable"),
            "{line}"
        );
    }
}

#[test]
fn client_key_prints_a_key_and_its_digest() {
    let out = Command::new(support::binary()).arg("client-key").output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let key = stdout.lines().next().unwrap().rsplit(' ').next().unwrap();
    let digest = stdout.lines().last().unwrap().split('"').nth(1).unwrap();
    assert_eq!((key.len(), digest.len()), (64, 64));
    let check = Command::new("sh").arg("-c").arg(format!("printf %s {key} | sha256sum")).output().unwrap();
    assert!(String::from_utf8_lossy(&check.stdout).starts_with(digest));
}

#[test]
fn demo_runs_on_a_fresh_machine_and_tells_what_happened() {
    let out = Command::new(support::binary()).arg("demo").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("7 posts: 5 message(s) accepted and durable, 1 retry answered with the same id, 1 refused"),
        "{stdout}"
    );
    assert!(stdout.contains("check letter is 'A'"), "{stdout}");
    let final_states: Vec<&str> = stdout
        .split("Final states:")
        .nth(1)
        .unwrap()
        .lines()
        .skip(2)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().nth(3))
        .collect();
    let mut sorted = final_states.clone();
    sorted.sort();
    assert_eq!(sorted, ["not_on_io", "processed", "processed", "processed", "sender_not_allowed"], "{stdout}");
    assert!(stdout.contains("2 citizen(s) need paper or PEC"), "{stdout}");
    assert!(stdout.contains("0 over budget"), "{stdout}");
    assert!(stdout.contains("Gateway stopped: Clean"), "{stdout}");
}

#[test]
fn sandbox_command_serves_the_example_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../config/sandbox.example.toml")).unwrap();
    let config = dir.path().join("sandbox.toml");
    std::fs::write(&config, example.replace("127.0.0.1:8443", "127.0.0.1:0")).unwrap();
    let mut child = Command::new(support::binary())
        .args(["sandbox", "--config"])
        .arg(&config)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let line = std::io::BufRead::lines(std::io::BufReader::new(stderr))
        .map_while(Result::ok)
        .find(|l| l.contains("IO sandbox listening"))
        .unwrap();
    let addr: std::net::SocketAddr =
        line.split("address=").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    let profile = support::request(
        addr,
        "GET",
        "/api/v1/profiles/VRDGPP50T01H501B",
        &[("Ocp-Apim-Subscription-Key", "sandbox-tari-primary")],
        b"",
    )
    .unwrap();
    assert_eq!(profile.status, 404, "the example lists this citizen as not on IO");
    let stats = support::request(addr, "GET", "/__sandbox/stats", &[], b"").unwrap();
    assert_eq!(stats.json()["profile_reads"], 1);
    child.kill().unwrap();
    child.wait().unwrap();
}
