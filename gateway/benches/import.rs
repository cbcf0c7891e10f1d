//! Import benchmark: a generated pagoPA GPD upload of 1,000,000 payment options (250,000
//! TARI positions: one single payment and three installments each, TARI + TEFA transfers)
//! imported by the real release binary into a fresh queue, then imported again (every
//! record a duplicate). Reports records/s and the peak resident memory of the process.
//!
//! `cargo bench -p gateway --bench import` (BENCH_OPTIONS to change the size, rounded to
//! a multiple of 4; BENCH_DIR to keep the files for a profiler; BENCH_BINARY=PATH to run
//! another io-gateway build, for A/B comparisons). Targets: ≥ 100,000 records/s, < 100 MiB
//! RSS whatever the size.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    let options: u64 = std::env::var("BENCH_OPTIONS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let positions = options.div_ceil(4);
    // BENCH_DIR keeps the generated file, config and database for a profiler.
    let temp = tempfile::tempdir().expect("temp dir");
    let kept = std::env::var_os("BENCH_DIR").map(std::path::PathBuf::from);
    let dir = kept.as_deref().unwrap_or(temp.path());
    let file = dir.join("gpd_bench.json");
    let started = Instant::now();
    generate(&file, positions).expect("generate the GPD file");
    let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    println!(
        "import benchmark: GPD upload of {} payment options ({} positions, {:.0} MB) generated in {:.1} s",
        positions * 4,
        positions,
        size as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    let config = write_config(dir, positions * 4);
    for run in ["first import (all new)", "second import (all duplicates)"] {
        let (took, peak_kib, output) = import(dir, &config, &file);
        let queued = summary(&output, "queued");
        let duplicates = summary(&output, "already queued");
        let records = summary(&output, "records read");
        println!(
            "{run}: {records} records in {:.1} s = {:.0} records/s; queued {queued}, already queued {duplicates}; peak RSS {:.1} MiB",
            took.as_secs_f64(),
            records as f64 / took.as_secs_f64(),
            peak_kib as f64 / 1024.0
        );
    }
    let db = std::fs::metadata(dir.join("queue.db")).map(|m| m.len()).unwrap_or(0);
    println!("queue database: {:.0} MB", db as f64 / 1e6);
}

fn write_config(dir: &Path, capacity: u64) -> std::path::PathBuf {
    let key = dir.join("io.key");
    std::fs::write(&key, "unused").expect("key file");
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/templates");
    let config = dir.join("gateway.toml");
    let text = format!(
        r#"
[[institutions]]
name = "Comune di Bench"
fiscal_code = "80000000010"
  [[institutions.services]]
  name = "tari"
  service_id = "01JBENCHSERVICE"
  primary_key = {{ file = "{key}" }}

[[clients]]
name = "bench"
key_sha256 = "{digest}"
services = ["tari"]

[io]
base_url = "http://127.0.0.1:9/api/v1"

[local_api]
listen = "127.0.0.1:0"

[storage]
path = "{db}"
max_queued_messages = {capacity}
min_free_disk_mb = 0

[import]
templates = "{templates}"
"#,
        key = key.display(),
        digest = "0".repeat(64),
        db = dir.join("queue.db").display(),
        capacity = capacity + 10,
        templates = templates.display(),
    );
    std::fs::write(&config, text).expect("config");
    config
}

/// Runs the import; returns its wall time, the peak RSS seen (KiB) and its stdout.
fn import(dir: &Path, config: &Path, file: &Path) -> (Duration, u64, String) {
    let started = Instant::now();
    // BENCH_BINARY runs another build (an A/B comparison against an older commit).
    let binary = std::env::var("BENCH_BINARY").unwrap_or_else(|_| env!("CARGO_BIN_EXE_io-gateway").to_string());
    let mut child = Command::new(binary)
        .current_dir(dir)
        .args(["import", "gpd"])
        .arg(file)
        .args(["--template", "tari", "--service", "tari", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start io-gateway import");
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_path) {
            let hwm = status.lines().find(|l| l.starts_with("VmHWM:"));
            if let Some(kib) = hwm.and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<u64>().ok()) {
                peak = peak.max(kib);
            }
        }
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = started.elapsed();
    let output = child.wait_with_output().expect("output");
    assert!(output.status.success(), "import failed: {}", String::from_utf8_lossy(&output.stdout));
    (took, peak, String::from_utf8_lossy(&output.stdout).into_owned())
}

fn summary(output: &str, label: &str) -> u64 {
    output
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Writes `positions` TARI positions of four options each, every notice number valid.
fn generate(path: &Path, positions: u64) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    out.write_all(b"{\"paymentPositions\":[\n")?;
    let mut notice = 0u64;
    for p in 0..positions {
        if p > 0 {
            out.write_all(b",\n")?;
        }
        let cf = fiscal_code(p);
        write!(
            out,
            r#"{{"iupd":"80000000010-TARI2025-{p:07}","type":"F","payStandIn":true,"fiscalCode":"{cf}","fullName":"Contribuente {p}","country":"IT","switchToExpired":false,"companyName":"Comune di Bench","officeName":"Ufficio Tributi","paymentOption":["#
        )?;
        let options = [
            ("TARI 2025 - unica soluzione", false, "2025-07-31", 30000u64),
            ("TARI 2025 - rata 1 di 3", true, "2025-07-31", 10000),
            ("TARI 2025 - rata 2 di 3", true, "2025-09-30", 10000),
            ("TARI 2025 - rata 3 di 3", true, "2025-12-02", 10000),
        ];
        for (i, (description, partial, due, amount)) in options.iter().enumerate() {
            notice += 1;
            let iuv = iuv(notice);
            let tefa = amount / 20;
            if i > 0 {
                out.write_all(b",")?;
            }
            write!(
                out,
                r#"{{"nav":"3{iuv}","iuv":"{iuv}","amount":{amount},"description":"{description}","isPartialPayment":{partial},"dueDate":"{due}T23:59:59","retentionDate":null,"fee":0,"transfer":[{{"idTransfer":"1","amount":{tari},"organizationFiscalCode":"80000000010","remittanceInformation":"TARI 2025","category":"9/0101108TS/","iban":"IT60X0542811101000000123456","transferMetadata":[]}},{{"idTransfer":"2","amount":{tefa},"organizationFiscalCode":"80000000580","remittanceInformation":"TEFA 2025","category":"9/0101108TS/","iban":"IT60X0542811101000000654321","transferMetadata":[]}}],"paymentOptionMetadata":[{{"key":"annoRiferimento","value":"2025"}}]}}"#,
                tari = amount - tefa,
            )?;
        }
        out.write_all(b"]}")?;
    }
    out.write_all(b"\n]}\n")?;
    out.flush()
}

/// The IUV of an aux-3 notice: segregation code 01, a 13-digit base, mod-93 check digits.
fn iuv(n: u64) -> String {
    let prefix = format!("301{n:013}");
    let check = prefix.parse::<u64>().unwrap_or(0) % 93;
    format!("01{n:013}{check:02}")
}

/// A valid codice fiscale per index (surname/name letters vary, check letter computed).
fn fiscal_code(n: u64) -> String {
    let mut letters = String::new();
    let mut rest = n;
    for _ in 0..6 {
        letters.push(char::from(b'A' + (rest % 26) as u8));
        rest /= 26;
    }
    let body = format!("{letters}80A01H501");
    const ODD: [u32; 26] =
        [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23];
    const ODD_DIGITS: [u32; 10] = [1, 0, 5, 7, 9, 13, 15, 17, 19, 21];
    let sum: u32 = body
        .bytes()
        .enumerate()
        .map(|(i, c)| {
            let (digit, letter) = (c.is_ascii_digit(), c.is_ascii_uppercase());
            match (i % 2 == 0, digit, letter) {
                (true, true, _) => ODD_DIGITS[usize::from(c - b'0')],
                (true, _, true) => ODD[usize::from(c - b'A')],
                (false, true, _) => u32::from(c - b'0'),
                (false, _, true) => u32::from(c - b'A'),
                _ => 0,
            }
        })
        .sum();
    format!("{body}{}", char::from(b'A' + (sum % 26) as u8))
}
