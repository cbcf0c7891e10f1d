//! The trail as an auditor receives it: one JSON document holding the appliance's public
//! keys, every checkpoint and the entries, written as a stream and verified as one, so
//! that neither side ever holds a big trail in memory.
//!
//! ```text
//! {"format":"io-gateway audit export v1","since":1,
//!  "public_keys":{"keys":[…]},
//!  "checkpoints":[{"seq":…,"hash":"…","at_ms":…,"kid":"…","signature":"…"},…],
//!  "entries":[
//!  {"seq":1,"at_ms":…,"kind":"accepted","message_id":"…","actor":"…","detail":"…","prev_hash":"…","hash":"…"},
//!  …]}
//! ```
//!
//! Hashes and signatures are lowercase hex; `entries` comes last, one per line, so a reader
//! can check each as it arrives. `since` is the first seq exported: with `since` above 1,
//! only the entries from there on are checked (see [`verify_after`](super::verify_after)).
//! The keys inside the export come from the exporter: an auditor should check them against
//! the appliance's published keys, or give their own copy.

use super::chain::{Checkpoint, Entry};
use super::verify::{Report, Verifier};
use crate::signing::{Jwks, Kid};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserializer;
use std::fmt;
use std::io::{self, Read, Write};

/// The value of the document's `format` member.
pub const FORMAT: &str = "io-gateway audit export v1";

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot write the export: {0}")]
    Write(#[source] io::Error),
    #[error("not a readable audit export: {0}")]
    Read(#[source] serde_json::Error),
}

/// Writes the export document; returns how many entries it holds.
pub fn write(
    out: &mut dyn Write,
    since: u64,
    keys: &Jwks,
    checkpoints: &[Checkpoint],
    entries: impl IntoIterator<Item = Entry>,
) -> Result<u64, ExportError> {
    let head = serde_json::json!({ "format": FORMAT, "since": since, "public_keys": keys.to_json() }).to_string();
    let head = head.strip_suffix('}').unwrap_or(&head);
    write!(out, "{head},\n\"checkpoints\":[").map_err(ExportError::Write)?;
    for (i, checkpoint) in checkpoints.iter().enumerate() {
        out.write_all(if i == 0 { b"\n" } else { b",\n" }).map_err(ExportError::Write)?;
        json(out, checkpoint)?;
    }
    out.write_all(b"],\n\"entries\":[").map_err(ExportError::Write)?;
    let mut count = 0u64;
    for entry in entries {
        out.write_all(if count == 0 { b"\n" } else { b",\n" }).map_err(ExportError::Write)?;
        json(out, &entry)?;
        count += 1;
    }
    out.write_all(b"]}\n").map_err(ExportError::Write)?;
    out.flush().map_err(ExportError::Write)?;
    Ok(count)
}

/// Which public keys checked the checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeysUsed {
    /// The caller's.
    Given,
    /// Those inside the export, with these ids: as trustworthy as the exporter.
    FromExport(Vec<Kid>),
}

/// What checking an export found.
#[derive(Debug, Clone)]
pub struct Checked {
    pub report: Report,
    pub keys: KeysUsed,
}

/// Reads and checks an export as it streams by, with `keys` when given, else with the
/// keys the export carries.
pub fn verify(reader: impl Read, keys: Option<&Jwks>) -> Result<Checked, ExportError> {
    let mut deserializer = serde_json::Deserializer::from_reader(io::BufReader::new(reader));
    let checked = deserializer.deserialize_map(Document { keys }).map_err(ExportError::Read)?;
    deserializer.end().map_err(ExportError::Read)?;
    Ok(checked)
}

/// The top-level object: `format`, `since`, `public_keys` and `checkpoints` first, then
/// `entries`, checked one by one.
struct Document<'k> {
    keys: Option<&'k Jwks>,
}

impl<'de> Visitor<'de> for Document<'_> {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an object in the format {FORMAT:?}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        let (mut format, mut since, mut exported_keys, mut checkpoints) = (None, None, None, None);
        let mut report = None;
        while let Some(member) = map.next_key::<String>()? {
            match member.as_str() {
                "format" => format = Some(map.next_value::<String>()?),
                "since" => since = Some(map.next_value::<u64>()?),
                "public_keys" => {
                    let value: serde_json::Value = map.next_value()?;
                    exported_keys = Some(Jwks::from_json(&value.to_string()).map_err(de::Error::custom)?);
                }
                "checkpoints" => checkpoints = Some(map.next_value::<Vec<Checkpoint>>()?),
                "entries" => {
                    if format.as_deref() != Some(FORMAT) {
                        return Err(de::Error::custom(format!("`format` must be {FORMAT:?} and come first")));
                    }
                    let (Some(since), Some(exported), Some(checkpoints)) = (since, &exported_keys, &checkpoints) else {
                        return Err(de::Error::custom(
                            "`entries` must come after `since`, `public_keys` and `checkpoints`",
                        ));
                    };
                    let keys = self.keys.unwrap_or(exported);
                    let verifier = Verifier::after(since.saturating_sub(1), checkpoints, keys);
                    report = Some(map.next_value_seed(Entries(verifier))?);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let report = report.ok_or_else(|| de::Error::missing_field("entries"))?;
        let keys = match (self.keys, exported_keys) {
            (Some(_), _) => KeysUsed::Given,
            (None, exported) => {
                KeysUsed::FromExport(exported.iter().flat_map(|k| k.keys()).map(|k| k.kid().clone()).collect())
            }
        };
        Ok(Checked { report, keys })
    }
}

/// The `entries` array, each entry pushed to the verifier as soon as it is parsed.
struct Entries<'a>(Verifier<'a>);

impl<'de> DeserializeSeed<'de> for Entries<'_> {
    type Value = Report;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Report, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Entries<'_> {
    type Value = Report;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of audit entries")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Report, A::Error> {
        while let Some(entry) = seq.next_element::<Entry>()? {
            self.0.push(entry);
        }
        Ok(self.0.finish())
    }
}

/// One value as compact JSON.
fn json<T: serde::Serialize>(out: &mut dyn Write, value: &T) -> Result<(), ExportError> {
    serde_json::to_writer(out, value).map_err(|e| ExportError::Write(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Chain, Event, Kind, Problem};
    use crate::signing::SigningKey;

    fn trail(n: u64, key: &SigningKey) -> (Vec<Entry>, Vec<Checkpoint>) {
        let mut chain = Chain::new();
        let entries: Vec<Entry> = (1..=n)
            .map(|i| {
                let event = Event {
                    kind: Kind::Accepted,
                    message_id: Some(format!("m{i}")),
                    actor: Some("tributi".into()),
                    detail: "queued".into(),
                };
                chain.append(event, 1_750_000_000_000 + i as i64).unwrap()
            })
            .collect();
        (entries, vec![chain.checkpoint(key, 1_750_000_001_000)])
    }

    fn keys_of(key: &SigningKey) -> Jwks {
        let mut keys = Jwks::new();
        keys.insert(key.public_jwk().clone()).unwrap();
        keys
    }

    fn exported(since: u64, keys: &Jwks, checkpoints: &[Checkpoint], entries: &[Entry]) -> Vec<u8> {
        let mut out = Vec::new();
        let chosen = entries.iter().filter(|e| e.seq >= since).cloned();
        let count = write(&mut out, since, keys, checkpoints, chosen).unwrap();
        assert_eq!(count, entries.iter().filter(|e| e.seq >= since).count() as u64);
        out
    }

    #[test]
    fn an_export_round_trips_and_verifies_with_its_own_or_given_keys() {
        let key = SigningKey::from_seed(&[5; 32], None);
        let (entries, checkpoints) = trail(5, &key);
        let text = exported(1, &keys_of(&key), &checkpoints, &entries);
        let parsed: serde_json::Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(parsed["format"], FORMAT);
        assert_eq!(parsed["entries"].as_array().unwrap().len(), 5);
        assert_eq!(parsed["entries"][0]["kind"], "accepted");

        let checked = verify(&text[..], None).unwrap();
        assert!(checked.report.is_intact(), "{}", checked.report);
        assert_eq!(checked.report.last_checkpoint, Some(5));
        assert_eq!(checked.keys, KeysUsed::FromExport(vec![key.kid().clone()]));
        assert_eq!(verify(&text[..], Some(&keys_of(&key))).unwrap().keys, KeysUsed::Given);

        // Someone else's keys: the checkpoint no longer verifies.
        let other = keys_of(&SigningKey::from_seed(&[6; 32], None));
        let report = verify(&text[..], Some(&other)).unwrap().report;
        assert!(matches!(report.problems[..], [Problem::ForgedCheckpoint { seq: 5, .. }]), "{report}");
    }

    #[test]
    fn a_partial_export_verifies_from_its_first_seq() {
        let key = SigningKey::from_seed(&[5; 32], None);
        let (entries, checkpoints) = trail(6, &key);
        let text = exported(4, &keys_of(&key), &checkpoints, &entries);
        let report = verify(&text[..], None).unwrap().report;
        assert!(report.is_intact(), "{report}");
        assert_eq!((report.first_seq, report.entries, report.last_checkpoint), (4, 3, Some(6)));
    }

    #[test]
    fn a_tampered_export_is_located_and_a_broken_one_refused() {
        let key = SigningKey::from_seed(&[5; 32], None);
        let (entries, checkpoints) = trail(5, &key);
        let text = String::from_utf8(exported(1, &keys_of(&key), &checkpoints, &entries)).unwrap();
        let edited = text.replacen("\"detail\":\"queued\"", "\"detail\":\"changed\"", 3).replacen(
            "\"detail\":\"changed\"",
            "\"detail\":\"queued\"",
            2,
        );
        let report = verify(edited.as_bytes(), None).unwrap().report;
        assert_eq!(report.problems, [Problem::Edited { seq: 3 }]);

        let dropped: String =
            text.lines().filter(|l| !l.contains("\"seq\":2,\"at_ms\"")).collect::<Vec<_>>().join("\n");
        let report = verify(dropped.as_bytes(), None).unwrap().report;
        assert_eq!(report.problems, [Problem::Missing { first: 2, last: 2 }]);

        assert!(matches!(verify(&b"{\"entries\":[]}"[..], None), Err(ExportError::Read(_))));
        assert!(matches!(verify(&text.as_bytes()[..text.len() / 2], None), Err(ExportError::Read(_))));
        let other_format = text.replacen(&format!("\"format\":\"{FORMAT}\""), "\"format\":\"other\"", 1);
        assert!(matches!(verify(other_format.as_bytes(), None), Err(ExportError::Read(_))));
    }
}
