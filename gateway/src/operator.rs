//! What the sysadmin's commands print: `io-gateway status`, `queue list|show|retry|hold|
//! release|cancel` and `outcomes`. All of it reads the queue database through
//! `queue::admin` (its own connection), so it works whether the daemon runs or not.

use crate::certificates::CertificateInfo;
use crate::config::Config;
use crate::metrics::names;
use crate::queue::admin::{Action, Admin, Filter, Moved};
use crate::queue::{database_directory, free_disk_bytes, now_millis, MessageId, Priority, State};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One screen: is the daemon answering, what waits and why, what ended how, disk.
pub fn status(config: &Config) -> Result<String, String> {
    let admin = Admin::open(&config.storage.path).map_err(|e| e.to_string())?;
    let counts = admin.counts().map_err(|e| e.to_string())?;
    let now = now_millis();
    let mut out = String::new();
    let listen = config.local_api.listen;
    // The metrics listener is plain HTTP even when the local API is TLS.
    let live = config.metrics.as_ref().and_then(|m| fetch_metrics(m.listen));
    let daemon = if live.is_some() {
        format!("answering (metrics on {})", config.metrics.as_ref().map_or(listen, |m| m.listen))
    } else if listen.port() == 0 {
        "unknown (the local API listens on port 0)".to_string()
    } else if health(listen) {
        format!("answering on {listen}")
    } else {
        format!("NOT answering on {listen}")
    };
    let _ = writeln!(out, "daemon:             {daemon}");
    let db_bytes = std::fs::metadata(&config.storage.path).map(|m| m.len()).unwrap_or(0);
    let free = free_disk_bytes(database_directory(&config.storage.path)).unwrap_or(0);
    let floor = config.storage.min_free_disk_bytes;
    let disk_note = if free < floor { "  BELOW THE FLOOR: new messages are refused" } else { "" };
    let _ = writeln!(
        out,
        "queue:              {} ({}), free disk {} (floor {}){disk_note}",
        config.storage.path.display(),
        bytes(db_bytes),
        bytes(free),
        bytes(floor)
    );

    let mut by_state: BTreeMap<State, (u64, BTreeMap<Priority, u64>, i64)> = BTreeMap::new();
    for (state, priority, count, oldest) in &counts {
        let entry = by_state.entry(*state).or_insert((0, BTreeMap::new(), i64::MAX));
        entry.0 += count;
        *entry.1.entry(*priority).or_default() += count;
        entry.2 = entry.2.min(*oldest);
    }
    let count = |state: State| by_state.get(&state).map_or(0, |e| e.0);
    let waiting: u64 = State::ALL.iter().filter(|s| s.awaits_delivery()).map(|s| count(*s)).sum();
    let limit = config.storage.max_queued_messages;
    let _ = writeln!(out, "awaiting delivery:  {waiting} (limit {limit})");
    for state in [State::Queued, State::Sending, State::Ambiguous, State::Held] {
        if let Some((total, priorities, oldest)) = by_state.get(&state) {
            let split: Vec<String> = priorities.iter().map(|(p, n)| format!("{} {n}", p.as_str())).collect();
            let _ = writeln!(
                out,
                "  {:<17} {total} ({}), oldest accepted {}",
                format!("{state}:"),
                split.join(", "),
                ago(now, *oldest)
            );
        }
    }
    let _ = writeln!(out, "sent, awaiting IO's final status: {}", count(State::Sent));
    let finals: Vec<String> = State::ALL
        .iter()
        .filter(|s| s.is_final() && count(**s) > 0)
        .map(|s| {
            let paper = matches!(s, State::NotOnIo | State::SenderNotAllowed);
            format!("{s} {}{}", count(*s), if paper { " (paper/PEC)" } else { "" })
        })
        .collect();
    let finals = if finals.is_empty() { "none yet".to_string() } else { finals.join(", ") };
    let _ = writeln!(out, "final:              {finals}");
    let last = admin.last_io_contact().map_err(|e| e.to_string())?;
    let last = last.map_or("never".to_string(), |at| ago(now, at));
    let _ = writeln!(out, "last answer from IO that moved a message: {last}");
    for institution in &config.institutions {
        let name = &institution.name;
        let series = |metric: &str| {
            live.as_deref().and_then(|text| sample(text, &format!("{metric}{{institution=\"{name}\"}}")))
        };
        let now_text = match (series(names::RATE_BUDGET_REMAINING), series(names::RATE_BUDGET_USED)) {
            (Some(remaining), Some(used)) => format!("; now {remaining} free in the window, {used} calls since start"),
            _ => String::new(),
        };
        let _ = writeln!(out, "rate budget:        {name}: {}{now_text}", institution.budget.describe());
    }
    let mut certificates = Vec::new();
    certificates.extend(config.io.client_certificate.as_ref().map(|p| ("IO client", p)));
    certificates.extend(config.local_api.tls.as_ref().map(|t| ("local API", &t.certificate)));
    let mut expiring = Vec::new();
    for (what, path) in certificates {
        let text = match CertificateInfo::read(path) {
            Ok(info) => {
                let days = info.days_left(now / 1000);
                if days < 30 {
                    expiring.push(format!("the {what} certificate expires in {days} day(s): renew it and reload"));
                }
                format!("valid until {} ({days} days)", time(info.not_after.saturating_mul(1000)))
            }
            Err(e) => {
                expiring.push(format!("the {what} certificate cannot be read"));
                e.to_string()
            }
        };
        let _ = writeln!(out, "certificate:        {what}: {text}");
    }
    let mut attention = Vec::new();
    if count(State::Ambiguous) > 0 {
        attention.push(format!(
            "{} ambiguous send(s): IO may have them (queue list --state ambiguous; retry or cancel)",
            count(State::Ambiguous)
        ));
    }
    if count(State::Held) > 0 {
        attention.push(format!("{} held message(s): see why with queue list --state held", count(State::Held)));
    }
    if waiting >= limit {
        attention.push("the queue is full: new messages get 503".into());
    }
    attention.extend(expiring);
    if !disk_note.is_empty() {
        attention.push("free disk is below the floor: new messages get 503".into());
    }
    if attention.is_empty() {
        let _ = writeln!(out, "attention:          nothing");
    } else {
        for line in attention {
            let _ = writeln!(out, "ATTENTION:          {line}");
        }
    }
    Ok(out)
}

/// `queue list`: one line per message, with why it waits.
pub fn list(config: &Config, filter: &Filter) -> Result<String, String> {
    let admin = Admin::open(&config.storage.path).map_err(|e| e.to_string())?;
    let rows = admin.list(filter).map_err(|e| e.to_string())?;
    let now = now_millis();
    let mut out =
        format!("{:<26}  {:<18} {:<7} {:<10} {:>8} {:>8}  why\n", "id", "state", "prio", "service", "age", "tries");
    for row in &rows {
        let why = row.last_error.as_deref().or(row.source.as_deref()).unwrap_or("");
        let _ = writeln!(
            out,
            "{:<26}  {:<18} {:<7} {:<10} {:>8} {:>8}  {why}",
            row.id.to_string(),
            row.state.to_string(),
            row.priority.as_str(),
            row.service,
            short_age(now - row.accepted_at),
            row.attempts
        );
    }
    let _ = writeln!(out, "{} message(s)", rows.len());
    Ok(out)
}

/// `queue show ID`: the message and its whole history.
pub fn show(config: &Config, id: MessageId) -> Result<String, String> {
    let admin = Admin::open(&config.storage.path).map_err(|e| e.to_string())?;
    let Some((row, transitions)) = admin.show(id).map_err(|e| e.to_string())? else {
        return Err(format!("no message {id}"));
    };
    let now = now_millis();
    let mut out = String::new();
    let _ = writeln!(out, "id:        {}", row.id);
    let _ = writeln!(out, "service:   {}", row.service);
    let _ = writeln!(out, "state:     {} (since {})", row.state, ago(now, row.state_changed_at));
    let _ = writeln!(out, "priority:  {}", row.priority.as_str());
    let _ = writeln!(out, "accepted:  {}", ago(now, row.accepted_at));
    let _ = writeln!(out, "attempts:  {}", row.attempts);
    if let Some(source) = &row.source {
        let _ = writeln!(out, "source:    {source}");
    }
    if let Some(error) = &row.last_error {
        let _ = writeln!(out, "error:     {error}");
    }
    let _ = writeln!(out, "history:");
    let _ = writeln!(out, "  {}  accepted", time(row.accepted_at));
    for t in transitions {
        let _ = writeln!(
            out,
            "  {}  {} -> {}  {}",
            time(t.at),
            t.from.as_deref().unwrap_or("-"),
            t.to,
            t.reason.as_deref().unwrap_or("")
        );
    }
    Ok(out)
}

/// `queue retry|hold|release|cancel`: what happened to each message.
pub fn act(config: &Config, action: Action, ids: &[MessageId]) -> Result<(String, bool), String> {
    let audit_key =
        crate::server::Keys::load(config).map_err(|e| format!("cannot load the signing key: {e}"))?.audit.get();
    let mut admin = Admin::open(&config.storage.path).map_err(|e| e.to_string())?;
    let by = std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "unknown".into());
    let moved = admin.act(action, ids, &by, audit_key.as_deref()).map_err(|e| e.to_string())?;
    let mut out = String::new();
    let mut all = true;
    for (id, result) in moved {
        match result {
            Moved::Done { from } => {
                let _ = writeln!(out, "{id}: {from} -> {}", action.to());
            }
            Moved::Skipped { state } => {
                all = false;
                let allowed: Vec<&str> = action.from_states().iter().map(|s| s.as_sql()).collect();
                let _ = writeln!(out, "{id}: left {state}: {} applies to {}", action.name(), allowed.join(", "));
            }
            Moved::NotFound => {
                all = false;
                let _ = writeln!(out, "{id}: no such message");
            }
        }
    }
    Ok((out, all))
}

/// `outcomes`: final states as CSV, for the paper/PEC fallback and the records.
pub fn outcomes(config: &Config, states: &[State], since: Option<i64>, to: &mut dyn Write) -> Result<u64, String> {
    let admin = Admin::open(&config.storage.path).map_err(|e| e.to_string())?;
    let keys = crate::seal::key_dir::load(&config.storage.data_key_directory).map_err(|e| e.to_string())?;
    let rows = admin.outcomes(&keys, states, since).map_err(|e| e.to_string())?;
    let mut writer = csv::Writer::from_writer(to);
    let header = [
        "id",
        "institution",
        "service",
        "fiscal_code",
        "outcome",
        "needs_paper_or_pec",
        "io_message_id",
        "io_status",
        "accepted_at",
        "final_at",
        "source",
        "reason",
    ];
    writer.write_record(header).map_err(|e| e.to_string())?;
    for row in &rows {
        let paper = matches!(row.state, State::NotOnIo | State::SenderNotAllowed);
        writer
            .write_record([
                row.id.to_string().as_str(),
                &row.institution,
                &row.service,
                row.fiscal_code.as_deref().unwrap_or("(deleted)"),
                row.state.as_sql(),
                if paper { "yes" } else { "no" },
                row.io_message_id.as_deref().unwrap_or(""),
                row.io_status.as_deref().unwrap_or(""),
                &iso(row.accepted_at),
                &iso(row.state_changed_at),
                row.source.as_deref().unwrap_or(""),
                row.last_error.as_deref().unwrap_or(""),
            ])
            .map_err(|e| e.to_string())?;
    }
    writer.flush().map_err(|e| e.to_string())?;
    Ok(rows.len() as u64)
}

/// A listing filter from the command line's words: state names, a service, an age such
/// as `30m`, `2h` or `3d`, and a limit.
pub fn filter(
    states: &[String],
    service: Option<String>,
    older_than: Option<&str>,
    limit: usize,
) -> Result<Filter, String> {
    let states = states
        .iter()
        .map(|s| State::from_sql(s).ok_or_else(|| format!("{s:?} is not a state")))
        .collect::<Result<Vec<_>, _>>()?;
    let older_than_ms = older_than.map(parse_age).transpose()?;
    Ok(Filter { states, service, older_than_ms, id: None, limit: Some(limit) })
}

/// "30m", "2h", "3d" in milliseconds.
fn parse_age(text: &str) -> Result<i64, String> {
    let bad = || format!("{text:?} is not an age: use e.g. 30m, 2h, 3d");
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let number: i64 = number.parse().map_err(|_| bad())?;
    let unit = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    Ok(number.saturating_mul(unit))
}

/// A GET /health on the local API, answered 200 within a second.
fn health(address: std::net::SocketAddr) -> bool {
    let address = if address.ip().is_unspecified() {
        std::net::SocketAddr::from(([127, 0, 0, 1], address.port()))
    } else {
        address
    };
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_secs(1)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let request = format!("GET /health HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = [0u8; 12];
    stream.read_exact(&mut answer).is_ok() && answer.starts_with(b"HTTP/1.1 200")
}

/// The daemon's own `/metrics`, if it answers within a second.
fn fetch_metrics(address: std::net::SocketAddr) -> Option<String> {
    if address.port() == 0 {
        return None;
    }
    let address = if address.ip().is_unspecified() {
        std::net::SocketAddr::from(([127, 0, 0, 1], address.port()))
    } else {
        address
    };
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.starts_with("HTTP/1.1 200").then_some(answer)
}

/// The value of one series (`name{labels}` as printed) in a metrics text.
fn sample(text: &str, series: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

fn iso(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map(|t| t.to_string()).unwrap_or_default()
}

fn time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_zoned(jiff::tz::TimeZone::system()).strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

fn ago(now: i64, ms: i64) -> String {
    format!("{} ({} ago)", time(ms), short_age(now - ms))
}

fn short_age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

fn bytes(n: u64) -> String {
    match n {
        0..=9_999 => format!("{n} B"),
        10_000..=9_999_999 => format!("{} kB", n / 1000),
        10_000_000..=9_999_999_999 => format!("{} MB", n / 1_000_000),
        _ => format!("{:.1} GB", n as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_states_are_read_or_refused_by_name() {
        let read = filter(&["held".into(), "ambiguous".into()], None, Some("2h"), 10).unwrap();
        assert_eq!(read.states, [State::Held, State::Ambiguous]);
        assert_eq!(read.older_than_ms, Some(7_200_000));
        assert_eq!(parse_age("30m"), Ok(1_800_000));
        assert_eq!(parse_age("3d"), Ok(259_200_000));
        for bad in ["2", "h", "2w", "-", ""] {
            assert!(parse_age(bad).is_err(), "{bad:?}");
        }
        assert!(filter(&["lost".into()], None, None, 1).unwrap_err().contains("\"lost\" is not a state"));
    }
}
