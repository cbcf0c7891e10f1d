//! Local registry files into queued messages: `io-gateway import` and the watch folders.
//!
//! A file is read as a stream by its `connectors` reader; each record becomes one IO
//! message through a template. Every language the template has is rendered and validated
//! against IO's limits; the queue keeps the record's values and the template (a
//! `recipe`), and delivery renders the message in the citizen's preferred language once
//! IO's profile answer names it (Italian otherwise). Batches are written by a second
//! thread, so reading and SQLite share the two cores.
//!
//! Nothing is lost and nothing is doubled:
//! * every record has a dedup key (creditor + notice number for a payment, campaign + fiscal
//!   code + validity end for an ID card); one already queued is counted as a duplicate, so
//!   an import can always be run again — after a crash, a refusal or an overlapping file;
//! * a record that cannot become a message is a row of the report (where, which field,
//!   why), and reading goes on;
//! * a file that ends early (truncated, corrupt) keeps every good record read before the
//!   damage queued, and the failure is reported with where it happened;
//! * a full queue or a disk below its floor stops the import, with the count of records
//!   not queued; running it again later queues exactly those.

mod build;
mod pipeline;
mod progress;
pub mod recipe;
mod report;
pub mod templates;
pub mod watch;

pub use progress::Progress;
pub use report::Report;

use crate::config::{Config, ServiceName};
use crate::queue::{Importer, Limits, Priority};
use crate::seal::DataKeys;
use crate::signing::SigningKey;
use build::Builder;
use connectors::campaign::{Campaign, IdCardPolicy};
use connectors::domain::{OrgFiscalCode, TestRecipient};
use connectors::mapped_csv::Mapping;
use connectors::template::{Kind, Template};
use pipeline::{Counted, Stage};
use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

/// Messages per import transaction: large enough to amortise the fsync, small enough that
/// a running daemon's own commits wait only milliseconds for the database.
const BATCH: usize = 2_000;

/// The file formats `io-gateway import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// pagoPA GPD bulk upload, JSON or zip.
    Gpd,
    /// GovPay "pendenze" CSV.
    GovPay,
    /// A CSV of notices read through a `[import.mappings]` entry.
    Csv,
    /// ANPR list extraction: concatenated XML answers, maybe gzipped.
    AnprXml,
    /// ANPR-style flat CSV.
    AnprCsv,
}

impl Format {
    pub const NAMES: &'static [&'static str] = &["gpd", "govpay", "csv", "anpr-xml", "anpr-csv"];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Gpd => "gpd",
            Format::GovPay => "govpay",
            Format::Csv => "csv",
            Format::AnprXml => "anpr-xml",
            Format::AnprCsv => "anpr-csv",
        }
    }

    fn is_anpr(self) -> bool {
        matches!(self, Format::AnprXml | Format::AnprCsv)
    }

    /// What the report's location column counts in this format.
    fn location_name(self) -> &'static str {
        match self {
            Format::Gpd => "position",
            Format::AnprXml => "answer",
            Format::GovPay | Format::Csv | Format::AnprCsv => "line",
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        [Format::Gpd, Format::GovPay, Format::Csv, Format::AnprXml, Format::AnprCsv]
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a format: use one of {}", Format::NAMES.join(", ")))
    }
}

/// What was asked, by name, before it is resolved against the configuration.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub template: Option<String>,
    pub service: Option<String>,
    pub mapping: Option<String>,
    pub campaign: Option<String>,
    pub warn_only_check_digits: bool,
    /// The aux digit that turns a 17-digit IUV into a notice number (GovPay).
    pub iuv_aux_digit: Option<u8>,
    /// The reference day for ID-card campaigns (default: today).
    pub today: Option<jiff::civil::Date>,
}

/// An import ready to run: everything resolved and loaded.
#[derive(Debug, Clone)]
pub struct Job {
    pub format: Format,
    pub template: Template,
    /// The template file's text, stored with the messages it renders.
    pub template_text: String,
    pub service: ServiceName,
    pub institution: OrgFiscalCode,
    pub mapping: Option<Mapping>,
    pub campaign: Campaign,
    pub id_cards: IdCardPolicy,
    pub warn_only_check_digits: bool,
    pub iuv_aux_digit: Option<u8>,
    pub priority: Priority,
    pub test_recipient: TestRecipient,
    pub today: jiff::civil::Date,
}

impl Job {
    /// Resolves a request against the configuration: the service (the only one when
    /// there is one), its institution, the template file and its kind, the mapping.
    pub fn resolve(config: &Config, format: Format, request: &Request) -> Result<Job, String> {
        Job::resolve_with(config, format, request, |name| load_template(config, name))
    }

    /// `resolve` with templates from `load` (the watch folders' cache).
    pub fn resolve_with(
        config: &Config,
        format: Format,
        request: &Request,
        load: impl Fn(&str) -> Result<(Template, String), String>,
    ) -> Result<Job, String> {
        let services: Vec<(&ServiceName, &OrgFiscalCode)> = config
            .institutions
            .iter()
            .flat_map(|i| i.services.iter().map(move |s| (&s.name, &i.fiscal_code)))
            .collect();
        let (service, institution) = match &request.service {
            Some(name) => services
                .iter()
                .find(|(s, _)| s.as_str() == name)
                .ok_or_else(|| format!("no service {name:?} is configured"))?,
            None if services.len() == 1 => &services[0],
            None => return Err("several services are configured: say which one with --service".into()),
        };
        let campaign = match (format.is_anpr(), request.campaign.as_deref()) {
            (true, None | Some("id-card-expiring")) => Campaign::CardExpiring,
            (true, Some("paper-id-card")) => Campaign::PaperCard,
            (true, Some(other)) => {
                return Err(format!("{other:?} is not a campaign: use id-card-expiring or paper-id-card"))
            }
            (false, Some(_)) => return Err("only ANPR formats have campaigns".into()),
            (false, None) => Campaign::CardExpiring,
        };
        let template_name = match (&request.template, format.is_anpr(), campaign) {
            (Some(name), _, _) => name.clone(),
            (None, true, Campaign::CardExpiring) => "carta-identita".into(),
            (None, true, Campaign::PaperCard) => "carta-identita-cartacea".into(),
            (None, false, _) => return Err("a payment import needs a template: --template NAME".into()),
        };
        let (template, template_text) = load(&template_name)?;
        let kind = if format.is_anpr() { Kind::IdCard } else { Kind::Payment };
        if template.kind() != kind {
            return Err(format!(
                "template {template_name:?} renders {} records, but {} files hold {} records",
                kind_name(template.kind()),
                format.as_str(),
                kind_name(kind)
            ));
        }
        let mapping = match (format, &request.mapping) {
            (Format::Csv, Some(name)) => Some(
                config
                    .import
                    .mappings
                    .get(name)
                    .cloned()
                    .ok_or_else(|| format!("no mapping {name:?} in [import.mappings]"))?,
            ),
            (Format::Csv, None) => return Err("format csv needs --mapping NAME (from [import.mappings])".into()),
            (_, Some(_)) => return Err("only format csv takes a mapping".into()),
            (_, None) => None,
        };
        Ok(Job {
            format,
            template,
            template_text,
            service: (*service).clone(),
            institution: (*institution).clone(),
            mapping,
            campaign,
            id_cards: config.import.id_cards,
            warn_only_check_digits: request.warn_only_check_digits,
            iuv_aux_digit: request.iuv_aux_digit,
            priority: config.import.priority,
            test_recipient: if config.io.allow_test_recipient {
                TestRecipient::Allowed
            } else {
                TestRecipient::Rejected
            },
            today: request.today.unwrap_or_else(|| jiff::Zoned::now().date()),
        })
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Payment => "payment",
        Kind::IdCard => "ID-card",
    }
}

/// A template by name (`<[import] templates>/<name>.toml`) or by path, and its text.
pub fn load_template(config: &Config, name: &str) -> Result<(Template, String), String> {
    let path = config.import.template_path(name)?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read template {}: {e}", path.display()))?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or(name);
    let template = Template::parse(stem, &text).map_err(|e| format!("template {}: {e}", path.display()))?;
    Ok((template, text))
}

/// Where the messages go.
pub enum Sink<'a> {
    /// Into the queue database at this path; `audit_key` signs the audit trail's
    /// checkpoint at the end (`None`: no `[signing]`).
    /// `data_keys` seal what it queues.
    Queue { database: &'a Path, limits: Limits, audit_key: Option<Arc<SigningKey>>, data_keys: Arc<DataKeys> },
    /// Nowhere: validate and render only. With the queue database (when it exists) and
    /// its data keys, records already queued are counted as duplicates.
    DryRun { database: Option<(&'a Path, Arc<DataKeys>)> },
}

/// What an import did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Records the reader produced (messages, rejected rows and skipped subjects).
    pub records: u64,
    /// Messages built and valid.
    pub messages: u64,
    pub queued: u64,
    /// Messages whose record was already queued (a re-import): nothing written.
    pub duplicates: u64,
    /// Rows of the report: records that gave no message.
    pub rejected: u64,
    /// Subjects skipped by the reader (deceased, no longer resident, repeated).
    pub skipped: u64,
    pub warnings: u64,
    /// ANPR subjects with no reminder due in this campaign, by reason.
    pub no_reminder: BTreeMap<String, u64>,
    /// The file could not be read to its end (what was read before is queued).
    pub failure: Option<String>,
    /// The queue refused messages: how many were not queued and why.
    pub not_queued: Option<(u64, String)>,
    /// One rendered message, for `--dry-run`.
    pub sample: Option<String>,
}

impl Outcome {
    /// Whether everything the file held is now queued (or was already).
    pub fn complete(&self) -> bool {
        self.failure.is_none() && self.not_queued.is_none()
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "records read:      {}", self.records)?;
        writeln!(f, "messages valid:    {}", self.messages)?;
        writeln!(f, "  queued:          {}", self.queued)?;
        writeln!(f, "  already queued:  {}", self.duplicates)?;
        writeln!(f, "rejected:          {}", self.rejected)?;
        if self.skipped > 0 {
            writeln!(f, "skipped subjects:  {}", self.skipped)?;
        }
        if self.warnings > 0 {
            writeln!(f, "warnings:          {}", self.warnings)?;
        }
        for (reason, count) in &self.no_reminder {
            writeln!(f, "no reminder due:   {count} ({reason})")?;
        }
        if let Some((count, reason)) = &self.not_queued {
            writeln!(
                f,
                "NOT QUEUED:        {count} ({reason}); run the import again later: queued records are skipped"
            )?;
        }
        if let Some(failure) = &self.failure {
            writeln!(f, "FILE INCOMPLETE:   {failure}")?;
            writeln!(f, "                   (every good record before the damage is queued)")?;
        }
        Ok(())
    }
}

/// Runs an import of `file`. Problems with records go to `report`; problems with the file
/// or the queue are in the outcome. Errors are only what stops the import from starting.
pub fn run(
    job: &Job,
    file: &Path,
    sink: Sink<'_>,
    report: &mut Report,
    progress: &mut Progress,
) -> Result<Outcome, String> {
    let opened = File::open(file).map_err(|e| format!("cannot open {}: {e}", file.display()))?;
    let length = opened.metadata().map(|m| m.len()).unwrap_or(0);
    progress.start(length);
    let counted = Counted { inner: opened, read: Arc::clone(&progress.bytes) };
    let source = format!("{}:{}", job.format.as_str(), file.file_name().and_then(|n| n.to_str()).unwrap_or("?"));
    report.set_location_name(job.format.location_name());
    let (stage, writer) = match sink {
        Sink::Queue { database, limits, audit_key, data_keys } => {
            let mut importer =
                Importer::open(database, limits, data_keys).map_err(|e| e.to_string())?.with_audit_key(audit_key);
            let template =
                importer.store_template(job.template.name(), &job.template_text).map_err(|e| e.to_string())?;
            let (stage, writer) = Stage::queueing(importer, template);
            (stage, Some(writer))
        }
        Sink::DryRun { database } => {
            let importer = match database {
                Some((path, keys)) if path.exists() => Some(
                    Importer::open(path, Limits { max_queued_messages: 0, min_free_disk_bytes: 0 }, keys)
                        .map_err(|e| e.to_string())?,
                ),
                _ => None,
            };
            (Stage::dry_run(importer), None)
        }
    };
    let mut builder = Builder { job, source, stage, outcome: Outcome::default(), report, progress, batch: Vec::new() };
    builder.read(counted);
    builder.flush();
    let Builder { mut outcome, stage, progress, .. } = builder;
    drop(stage);
    if let Some(writer) = writer {
        let result = writer.join();
        outcome.queued = result.done.inserted;
        outcome.duplicates += result.done.duplicates;
        if let Some(error) = result.error {
            let not_queued = outcome.messages.saturating_sub(outcome.queued + outcome.duplicates);
            outcome.not_queued = Some((not_queued, error));
        }
    }
    progress.finish();
    Ok(outcome)
}
