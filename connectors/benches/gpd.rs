//! Reader benchmark: a generated pagoPA GPD upload (TARI positions of four options each, as in
//! `gateway/benches/import.rs`) read from memory by `gpd::read`, plus the UTF-16 length check
//! that every message built from a notice goes through.
//!
//! `cargo bench -p connectors --bench gpd [-- read | -- lengths]` (BENCH_OPTIONS to change the
//! size, rounded to a multiple of 4; default 1,000,000, about 725 MB held in memory). Target:
//! well under 4 s for 1,000,000 options on one core, so that the whole import reaches 100,000
//! records/s.

use std::io::{Cursor, Write};
use std::time::Instant;

use connectors::gpd::{self, NoticeCheck};
use connectors::message::Content;

fn main() {
    let only = std::env::args().skip(1).find(|arg| !arg.starts_with('-'));
    if only.as_deref() != Some("lengths") {
        read();
    }
    if only.as_deref() != Some("read") {
        lengths();
    }
}

/// Reads the generated upload three times.
fn read() {
    let options: u64 = std::env::var("BENCH_OPTIONS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let positions = options.div_ceil(4);
    let mut bytes = Vec::new();
    generate(&mut bytes, positions).expect("generate the GPD upload");
    println!("GPD upload: {} options, {} positions, {:.0} MB", positions * 4, positions, bytes.len() as f64 / 1e6);
    for run in 1..=3 {
        let started = Instant::now();
        let mut read = 0u64;
        let summary = gpd::read(Cursor::new(bytes.as_slice()), NoticeCheck::Enforce, |_| read += 1)
            .expect("the generated upload reads");
        let took = started.elapsed().as_secs_f64();
        assert_eq!((read, summary.errors.len()), (positions * 4, 0));
        println!(
            "read {run}: {read} notices in {took:.2} s = {:.0} notices/s, {:.0} MB/s",
            read as f64 / took,
            bytes.len() as f64 / 1e6 / took
        );
    }
}

/// `Content::new` on a typical TARI message: counts subject and markdown in UTF-16 units.
fn lengths() {
    const MESSAGES: u32 = 1_000_000;
    let subject = "Avviso di pagamento TARI 2025 - rata 1 di 3".to_owned();
    let markdown = "Gentile contribuente, è disponibile l'avviso di pagamento della **TARI 2025** \
                    (tassa sui rifiuti): importo 100,00 €, scadenza 31 luglio 2025. Può pagare \
                    con pagoPA direttamente dall'app IO, oppure presso gli sportelli abilitati. "
        .repeat(3);
    let started = Instant::now();
    let mut valid = 0u32;
    for _ in 0..MESSAGES {
        valid += u32::from(Content::new(subject.clone(), markdown.clone(), None, None).is_ok());
    }
    let took = started.elapsed().as_secs_f64();
    assert_eq!(valid, MESSAGES);
    println!("Content::new ({} bytes): {:.0} ns each", markdown.len(), took * 1e9 / f64::from(MESSAGES));
}

/// Writes `positions` TARI positions of four options each, every notice number valid.
fn generate(out: &mut impl Write, positions: u64) -> std::io::Result<()> {
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
    out.write_all(b"\n]}\n")
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
