//! Configuration tests: the shipped example parses, and each kind of mistake is reported
//! with its location — all of them at once.

use super::*;

const EXAMPLE: &str = include_str!("../../../config/gateway.example.toml");

fn problems(text: &str) -> Vec<String> {
    match Config::from_toml_str(text) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid { problems }) => problems.into_iter().map(|p| p.to_string()).collect(),
        Err(e) => vec![e.to_string()],
    }
}

#[test]
fn the_example_configuration_parses() {
    let config = Config::from_toml_str(EXAMPLE).unwrap();
    assert_eq!(config.institutions.len(), 1);
    assert_eq!(config.institutions[0].services.len(), 2);
    assert_eq!(config.clients[1].default_service.as_str(), "anagrafe");
    assert_eq!(config.clients[0].default_service.as_str(), "tari");
    assert_eq!(config.local_api.max_body_bytes, 131_072);
    assert_eq!(config.storage.min_free_disk_bytes, 256 * 1024 * 1024);
    assert_eq!(config.storage.data_key_directory, std::path::Path::new("/etc/io-gateway/data-keys"));
    assert_eq!(config.storage.retention, crate::queue::Retention::DEFAULT);
    let tari: ServiceName = "tari".parse().unwrap();
    assert_eq!(config.service(&tari).unwrap().0.fiscal_code.as_str(), "80000000010");
    assert_eq!(config.institutions[0].budget, crate::rate_limit::Budget::IO_DEFAULT);
    assert_eq!(config.clients[0].priority, crate::queue::Priority::Bulk);
    assert_eq!(config.delivery.profile_check, ProfileCheck::Cached(std::time::Duration::from_secs(24 * 3600)));
    assert_eq!(config.delivery.ambiguous, AmbiguousPolicy::Retry);
    assert_eq!(config.delivery.max_in_flight, 256);
    assert_eq!(config.metrics.as_ref().map(|m| m.listen.to_string()), Some("127.0.0.1:9464".to_string()));
}

#[test]
fn the_metrics_listener_is_checked() {
    let bad = EXAMPLE.replace("listen = \"127.0.0.1:9464\"", "listen = \"everywhere\"");
    assert_eq!(problems(&bad).len(), 1, "{:?}", problems(&bad));
    assert!(problems(&bad)[0].starts_with("metrics.listen:"), "{:?}", problems(&bad));
    let clash = EXAMPLE.replace("listen = \"127.0.0.1:9464\"", "listen = \"127.0.0.1:8080\"");
    assert_eq!(problems(&clash), ["metrics.listen: must differ from local_api.listen"]);
    let none = EXAMPLE.replace("[metrics]\nlisten = \"127.0.0.1:9464\"\n", "");
    assert!(Config::from_toml_str(&none).unwrap().metrics.is_none());
}

#[test]
fn delivery_settings_are_checked() {
    let text = EXAMPLE
        .replace("ambiguous = \"retry\"", "ambiguous = \"maybe\"")
        .replace("profile_check = { cache_hours = 24 }", "profile_check = \"sometimes\"")
        .replace("max_in_flight = 256", "max_in_flight = 0")
        .replace("priority = \"bulk\"", "priority = \"asap\"")
        .replace("rate_limit = { calls = 150, per_seconds = 5 }", "rate_limit = \"unlimited\"");
    let found = problems(&text);
    for location in [
        "delivery.ambiguous:",
        "delivery.profile_check:",
        "delivery.max_in_flight:",
        "clients[0].priority:",
        "import.priority:",
    ] {
        assert!(found.iter().any(|p| p.starts_with(location)), "missing {location} in {found:#?}");
    }
    assert_eq!(found.len(), 5, "{found:#?}");
    let unlimited = EXAMPLE.replace("rate_limit = { calls = 150, per_seconds = 5 }", "rate_limit = \"unlimited\"");
    let config = Config::from_toml_str(&unlimited).unwrap();
    assert_eq!(config.institutions[0].budget, crate::rate_limit::Budget::Unlimited);
}

#[test]
fn every_problem_is_reported_with_its_location() {
    let text = EXAMPLE
        .replace("\"80000000010\"", "\"80000000011\"")
        .replace("name = \"anagrafe\"", "name = \"tari\"")
        .replace("services = [\"tari\"]", "services = [\"tarii\"]")
        .replace("default_service = \"anagrafe\"", "default_service = \"imu\"")
        .replace("listen = \"127.0.0.1:8080\"", "listen = \"localhost\"")
        .replace("primary_key = { file = \"/etc/io-gateway/keys/anagrafe.primary\" }", "primary_key = { }");
    let found = problems(&text);
    let expected = [
        "institutions[0].fiscal_code:",
        "institutions[0].services[1].name: service name tari is already used by institutions[0].services[0]",
        "institutions[0].services[1].primary_key: give exactly one",
        "clients[0].services[0]: no institution has a service named tarii",
        // The rename above really leaves no service called anagrafe.
        "clients[1].services[0]: no institution has a service named anagrafe",
        "clients[1].default_service:",
        "local_api.listen:",
        // The example's CSV mapping names the same creditor, and its ANPR folder sends on
        // the renamed service.
        "import.mappings.dovuti: creditor \"80000000011\" is not",
        "import.watch[1].service: no service \"anagrafe\" is configured",
    ];
    for prefix in expected {
        assert!(found.iter().any(|p| p.starts_with(prefix)), "missing {prefix:?} in {found:#?}");
    }
    assert_eq!(found.len(), expected.len(), "{found:#?}");
}

#[test]
fn syntax_and_unknown_keys_are_reported_with_line_and_column() {
    let found = problems(&EXAMPLE.replace("max_body_bytes = 131072", "max_body_byte = 131072"));
    assert_eq!(found.len(), 1);
    let line = EXAMPLE.lines().position(|l| l.starts_with("max_body_bytes")).unwrap() + 1;
    assert!(
        found[0].starts_with(&format!("line {line}, column 1:")) && found[0].contains("max_body_byte"),
        "{found:?}"
    );
}

#[test]
fn missing_sections_and_empty_lists_are_problems() {
    let found = problems("");
    for location in ["institutions:", "clients:", "io:", "local_api:", "storage:"] {
        assert!(found.iter().any(|p| p.starts_with(location)), "missing {location} in {found:?}");
    }
}

#[test]
fn io_endpoint_rules() {
    let plain_remote = EXAMPLE.replace("https://api-mtls.io.pagopa.it/api/v1", "http://api.io.pagopa.it/api/v1");
    assert!(problems(&plain_remote)[0].starts_with("io.base_url: must use https"));
    let loopback = EXAMPLE.replace("https://api-mtls.io.pagopa.it/api/v1", "http://127.0.0.1:9000/api/v1");
    assert!(problems(&loopback).is_empty());
    let no_cert = EXAMPLE.replace("client_certificate = \"/etc/io-gateway/tls/io-client.crt\"", "");
    let found = problems(&no_cert);
    assert_eq!(found.len(), 1);
    assert!(found[0].starts_with("io.client_certificate: required when io.client_key is set"), "{found:?}");
    let neither = no_cert.replace("client_key = \"/etc/io-gateway/tls/io-client.key\"", "");
    assert!(problems(&neither)[0].contains("api-mtls.io.pagopa.it requires a client certificate"));
}

#[test]
fn client_key_digests_must_be_hex_and_unique() {
    let bad = EXAMPLE.replace("2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae", "not-hex");
    assert!(problems(&bad)[0].starts_with("clients[0].key_sha256: must be 64 hexadecimal"));
    let twice = EXAMPLE.replace(
        "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9",
        "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
    );
    assert_eq!(problems(&twice), ["clients[1].key_sha256: the same key is already used by clients[0]"]);
}

#[test]
fn load_checks_the_files_and_variables_it_points_at() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, EXAMPLE.replace("/var/lib/io-gateway/queue.db", "/nonexistent-dir/q.db")).unwrap();
    let Err(ConfigError::Invalid { problems }) = Config::load(&path) else {
        panic!("expected problems");
    };
    let locations: Vec<_> = problems.iter().map(|p| p.location.as_str()).collect();
    assert_eq!(
        locations,
        [
            "institutions[0].services[0].primary_key",
            "institutions[0].services[0].secondary_key",
            "institutions[0].services[1].primary_key",
            "io.client_certificate",
            "io.client_key",
            "storage.path",
            "import.watch[0].template",
            "import.watch[1].template",
        ]
    );
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    std::fs::write(&key, "the-real-subscription-key").unwrap();
    let config =
        Config::from_toml_str(&EXAMPLE.replace("/etc/io-gateway/keys/tari.primary", key.to_str().unwrap())).unwrap();
    let secret = config.institutions[0].services[0].primary_key.read().unwrap();
    assert!(!format!("{config:?} {secret:?}").contains("the-real-subscription-key"));
}

#[test]
fn data_keys_default_beside_the_database_and_retention_is_bounded() {
    let text = EXAMPLE
        .replace("data_key_directory = \"/etc/io-gateway/data-keys\"\n", "")
        .replace("retention_delivered_days = 0", "retention_delivered_days = 7");
    let config = Config::from_toml_str(&text).unwrap();
    assert_eq!(config.storage.data_key_directory, std::path::Path::new("/var/lib/io-gateway/data-keys"));
    assert_eq!(config.storage.retention.delivered, std::time::Duration::from_secs(7 * 86_400));
    let too_long = EXAMPLE.replace("retention_undelivered_days = 30", "retention_undelivered_days = 4000");
    let problems = problems(&too_long);
    assert!(problems.iter().any(|p| p.contains("storage.retention_undelivered_days")), "{problems:?}");
}
