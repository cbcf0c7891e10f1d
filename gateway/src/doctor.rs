//! `io-gateway doctor`: everything that keeps messages from leaving, checked in the order
//! a sysadmin would fix it — configuration, file permissions, certificates, disk, then
//! IO itself (TLS handshake, credentials and clock, with one profile call per service
//! for IO's test fiscal code, which spends one call of each institution's budget).

use crate::certificates::{unix_now, CertificateInfo};
use crate::config::{Config, SecretSource};
use crate::io_client::IoClient;
use crate::queue::{database_directory, free_disk_bytes};
use connectors::domain::{FiscalCode, TestRecipient};
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// IO's documented test recipient.
const TEST_FISCAL_CODE: &str = "AAAAAA00A00A000A";
/// Certificates closer than this to expiry are a warning.
const EXPIRY_WARNING_DAYS: i64 = 30;
/// Clock skew that breaks nothing yet but should be fixed (NTP).
const SKEW_WARNING_SECONDS: i64 = 30;
/// Clock skew that breaks certificate checks and signatures.
const SKEW_FAILURE_SECONDS: i64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
}

/// The findings, printed as one line each.
#[derive(Debug, Default)]
pub struct Findings {
    lines: Vec<(Verdict, String, String)>,
}

impl Findings {
    fn add(&mut self, verdict: Verdict, topic: &str, text: impl Into<String>) {
        self.lines.push((verdict, topic.to_string(), text.into()));
    }

    /// The worst verdict (Ok when empty).
    pub fn worst(&self) -> Verdict {
        self.lines.iter().map(|l| l.0).max().unwrap_or(Verdict::Ok)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for (verdict, topic, text) in &self.lines {
            let mark = match verdict {
                Verdict::Ok => "ok  ",
                Verdict::Warn => "WARN",
                Verdict::Fail => "FAIL",
            };
            let _ = writeln!(out, "{mark}  {topic:<12} {text}");
        }
        let summary = match self.worst() {
            Verdict::Ok => "everything checked is fine",
            Verdict::Warn => "works, with warnings to fix",
            Verdict::Fail => "something above keeps messages from leaving: fix the FAIL lines first",
        };
        let _ = writeln!(out, "\n{summary}");
        out
    }
}

/// Runs every check. A configuration that does not load stops at the first step.
pub async fn run(config_path: &Path, call_io: bool) -> Findings {
    let mut findings = Findings::default();
    let config = match Config::load(config_path) {
        Ok(config) => {
            findings.add(Verdict::Ok, "config", format!("{} loads and validates", config_path.display()));
            config
        }
        Err(e) => {
            findings.add(Verdict::Fail, "config", e.to_string());
            return findings;
        }
    };
    permissions(&mut findings, config_path, &config);
    certificates(&mut findings, &config);
    disk(&mut findings, &config);
    if call_io {
        io(&mut findings, &config).await;
    }
    findings
}

fn permissions(findings: &mut Findings, config_path: &Path, config: &Config) {
    let mut secrets = vec![("configuration", config_path.to_path_buf())];
    secrets.extend(config.io.client_key.clone().map(|p| ("IO client key", p)));
    secrets.extend(config.local_api.tls.as_ref().map(|t| ("local API key", t.private_key.clone())));
    for institution in &config.institutions {
        for service in &institution.services {
            for source in std::iter::once(&service.primary_key).chain(service.secondary_key.as_ref()) {
                if let SecretSource::File(path) = source {
                    secrets.push(("IO subscription key", path.clone()));
                }
            }
        }
    }
    secrets.sort_by(|a, b| a.1.cmp(&b.1));
    secrets.dedup_by(|a, b| a.1 == b.1);
    for (what, path) in secrets {
        match std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777) {
            Ok(mode) if mode & 0o007 != 0 => findings.add(
                Verdict::Fail,
                "permissions",
                format!("{what} {} is readable by every user (mode {mode:o}): chmod o-rwx it", path.display()),
            ),
            Ok(mode) if mode & 0o020 != 0 => findings.add(
                Verdict::Warn,
                "permissions",
                format!("{what} {} is writable by its group (mode {mode:o}): chmod g-w it", path.display()),
            ),
            Ok(mode) => findings.add(Verdict::Ok, "permissions", format!("{what} {} (mode {mode:o})", path.display())),
            Err(e) => findings.add(Verdict::Fail, "permissions", format!("{what} {}: {e}", path.display())),
        }
    }
    let database = &config.storage.path;
    let directory = database_directory(database);
    match rustix::fs::access(directory, rustix::fs::Access::WRITE_OK) {
        Ok(()) if database.exists() => {
            findings.add(Verdict::Ok, "storage", format!("{} exists and its directory is writable", database.display()))
        }
        Ok(()) => findings.add(
            Verdict::Warn,
            "storage",
            format!("{} does not exist yet: `io-gateway run` creates it", database.display()),
        ),
        Err(e) => findings.add(
            Verdict::Fail,
            "storage",
            format!("cannot write in {}: {e} (run doctor as the service's user)", directory.display()),
        ),
    }
    data_keys(findings, config);
}

/// The data keys: present and private, every key the stored content needs, and kept
/// apart from the database.
fn data_keys(findings: &mut Findings, config: &Config) {
    let dir = &config.storage.data_key_directory;
    if crate::seal::key_dir::is_empty(dir).unwrap_or(false) {
        let note = format!("no data keys in {} yet: `io-gateway run` makes them on first start", dir.display());
        return findings.add(Verdict::Warn, "data keys", note);
    }
    let keys = match crate::seal::key_dir::load(dir) {
        Ok(keys) => keys,
        Err(e) => return findings.add(Verdict::Fail, "data keys", e.to_string()),
    };
    let needed = match crate::queue::admin::Admin::open(&config.storage.path) {
        Ok(admin) => admin.content_by_data_key().unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let missing: Vec<String> = needed
        .iter()
        .filter(|(number, _)| !keys.numbers().contains(number))
        .map(|(number, count)| format!("data-{number}.key ({count} messages)"))
        .collect();
    if !missing.is_empty() {
        let note = format!("{} lacks {}: restore from the backup", dir.display(), missing.join(", "));
        return findings.add(Verdict::Fail, "data keys", note);
    }
    let summary = format!("{}: {} key(s), data-{}.key seals", dir.display(), keys.numbers().len(), keys.current());
    if dir.starts_with(database_directory(&config.storage.path)) {
        let note = format!("{summary}; they sit beside the database, so one copy holds both: set [storage] data_key_directory elsewhere");
        findings.add(Verdict::Warn, "data keys", note);
    } else {
        findings.add(Verdict::Ok, "data keys", summary);
    }
}

fn certificates(findings: &mut Findings, config: &Config) {
    let mut certificates = Vec::new();
    if let (Some(cert), Some(key)) = (&config.io.client_certificate, &config.io.client_key) {
        certificates.push(("IO client", cert.clone(), key.clone()));
    }
    if let Some(tls) = &config.local_api.tls {
        certificates.push(("local API", tls.certificate.clone(), tls.private_key.clone()));
    }
    if certificates.is_empty() {
        findings.add(Verdict::Warn, "certificate", "no client certificate: IO's mTLS endpoint will refuse us");
    }
    let now = unix_now();
    for (what, cert, key) in certificates {
        let info = match CertificateInfo::read(&cert) {
            Ok(info) => info,
            Err(e) => {
                findings.add(Verdict::Fail, "certificate", format!("{what}: {e}"));
                continue;
            }
        };
        let days = info.days_left(now);
        let (verdict, text) = if now < info.not_before {
            (Verdict::Fail, "is not valid yet (check the clock)".to_string())
        } else if days < 0 {
            (Verdict::Fail, format!("EXPIRED {} day(s) ago: renew it, then `systemctl reload io-gateway`", -days))
        } else if days < EXPIRY_WARNING_DAYS {
            (Verdict::Warn, format!("expires in {days} day(s): renew it soon"))
        } else {
            (Verdict::Ok, format!("valid for {days} more day(s)"))
        };
        findings.add(verdict, "certificate", format!("{what} {} ({}): {text}", cert.display(), info.subject));
        match matches_key(&cert, &key) {
            Ok(()) => findings.add(
                Verdict::Ok,
                "certificate",
                format!("{what}: the key matches the certificate; {} certificate(s) in the file", info.chain_length),
            ),
            Err(e) => findings.add(
                Verdict::Fail,
                "certificate",
                format!("{what}: {} and {} do not make a pair: {e}", cert.display(), key.display()),
            ),
        }
    }
}

fn matches_key(cert: &Path, key: &Path) -> Result<(), String> {
    let files = crate::config::TlsFiles { certificate: cert.to_path_buf(), private_key: key.to_path_buf() };
    crate::reload::LocalCertificate::load(&files).map(|_| ()).map_err(|e| e.to_string())
}

fn disk(findings: &mut Findings, config: &Config) {
    let directory = database_directory(&config.storage.path);
    let floor = config.storage.min_free_disk_bytes;
    match free_disk_bytes(directory) {
        Ok(free) => {
            let mib = |b: u64| b / (1024 * 1024);
            let (verdict, note) = if free < floor {
                (Verdict::Fail, "below the floor: new messages are refused")
            } else if free < floor.saturating_mul(4) {
                (Verdict::Warn, "close to the floor")
            } else {
                (Verdict::Ok, "")
            };
            let text = format!("{} MiB free in {} (floor {} MiB) {note}", mib(free), directory.display(), mib(floor));
            findings.add(verdict, "disk", text.trim_end().to_string());
        }
        Err(e) => {
            findings.add(Verdict::Fail, "disk", format!("cannot read free space of {}: {e}", directory.display()))
        }
    }
}

async fn io(findings: &mut Findings, config: &Config) {
    let client = match IoClient::new(&config.io, config.delivery.timeouts) {
        Ok(client) => client,
        Err(e) => {
            findings.add(Verdict::Fail, "IO", format!("cannot set up TLS to IO: {e}"));
            return;
        }
    };
    let Ok(test) = FiscalCode::parse(TEST_FISCAL_CODE, TestRecipient::Allowed) else { return };
    let mut skew_checked = false;
    for institution in &config.institutions {
        for service in &institution.services {
            let keys = std::iter::once(("primary", &service.primary_key))
                .chain(service.secondary_key.as_ref().map(|k| ("secondary", k)));
            for (which, source) in keys {
                let topic = format!("{} {which} key of {}", service.name.as_str(), institution.name);
                let key = match source.read() {
                    Ok(key) => key,
                    Err(e) => {
                        findings.add(Verdict::Fail, "IO", format!("{topic}: {e}"));
                        continue;
                    }
                };
                let answer = match client.get_profile(&key, &test).await {
                    Ok(answer) => answer,
                    Err(e) => {
                        let text = format!("{topic}: no answer from {} ({e})", config.io.base_url);
                        findings.add(Verdict::Fail, "IO", text);
                        continue;
                    }
                };
                if !skew_checked {
                    skew_checked = true;
                    skew(findings, answer.date.as_deref());
                }
                let (verdict, text) = match answer.status.as_u16() {
                    200 | 404 => (Verdict::Ok, "TLS handshake and key accepted (profile call answered)".to_string()),
                    401 => (Verdict::Fail, "IO refuses this subscription key (401)".to_string()),
                    403 => (
                        Verdict::Fail,
                        "IO refuses us (403): client certificate, service group or source address".to_string(),
                    ),
                    429 => (Verdict::Warn, "IO is rate limiting (429): the key was not checked".to_string()),
                    status => (Verdict::Fail, format!("IO answered {status}")),
                };
                findings.add(verdict, "IO", format!("{topic}: {text}"));
            }
        }
    }
}

fn skew(findings: &mut Findings, date: Option<&str>) {
    let parsed = date.and_then(|d| jiff::fmt::rfc2822::parse(d).ok()).map(|z| z.timestamp().as_second());
    let Some(io_time) = parsed else {
        findings.add(Verdict::Warn, "clock", "IO's answer had no usable Date header: skew not checked");
        return;
    };
    let skew = unix_now() - io_time;
    let verdict = match skew.abs() {
        s if s >= SKEW_FAILURE_SECONDS => Verdict::Fail,
        s if s >= SKEW_WARNING_SECONDS => Verdict::Warn,
        _ => Verdict::Ok,
    };
    let advice = if verdict == Verdict::Ok { "" } else { ": fix NTP (timedatectl status)" };
    findings.add(verdict, "clock", format!("{skew:+} s against IO's clock{advice}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_verdict_decides_and_every_line_is_printed() {
        let mut findings = Findings::default();
        assert_eq!(findings.worst(), Verdict::Ok);
        findings.add(Verdict::Ok, "config", "fine");
        findings.add(Verdict::Warn, "disk", "close");
        assert_eq!(findings.worst(), Verdict::Warn);
        findings.add(Verdict::Fail, "IO", "refused");
        assert_eq!(findings.worst(), Verdict::Fail);
        let text = findings.render();
        assert!(text.contains("ok    config       fine"), "{text}");
        assert!(text.contains("WARN  disk         close"), "{text}");
        assert!(text.contains("FAIL  IO           refused"), "{text}");
        assert!(text.contains("fix the FAIL lines first"), "{text}");
    }

    #[test]
    fn skew_is_read_from_an_http_date() {
        let mut findings = Findings::default();
        let now = jiff::Timestamp::now().checked_sub(jiff::SignedDuration::from_secs(600)).unwrap();
        let date = jiff::fmt::rfc2822::to_string(&now.to_zoned(jiff::tz::TimeZone::UTC)).unwrap();
        skew(&mut findings, Some(&date));
        assert_eq!(findings.worst(), Verdict::Fail, "{}", findings.render());
        let mut findings = Findings::default();
        skew(&mut findings, Some("Mon, 23 Nov 2026 02:00:00 GMT"));
        skew(&mut findings, None);
        assert!(findings.render().contains("no usable Date header"));
    }
}
