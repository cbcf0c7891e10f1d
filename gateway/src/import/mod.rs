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

mod progress;
pub mod recipe;
mod report;
pub mod watch;

pub use progress::Progress;
pub use report::Report;

use crate::config::{Config, ServiceName};
use crate::queue::{BatchOutcome, ImportedMessage, Importer, Limits, Priority, QueueError};
use connectors::anpr::{self, Entry, Resident};
use connectors::campaign::{self, Campaign, IdCardPolicy};
use connectors::domain::{FiscalCode, OrgFiscalCode, TestRecipient};
use connectors::govpay::{self, GovPayOptions, NumberCheck};
use connectors::gpd::{self, NoticeCheck};
use connectors::mapped_csv::{MappedRows, Mapping};
use connectors::message::NewMessage;
use connectors::payment::{PaymentNotice, RecordError};
use connectors::template::{self, Kind, Language, Template};
use recipe::Recipe;
use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

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
        let (template, template_text) = load_template(config, &template_name)?;
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
    /// Into the queue database at this path.
    Queue { database: &'a Path, limits: Limits },
    /// Nowhere: validate and render only. With the queue database (when it exists),
    /// records already queued are counted as duplicates.
    DryRun { database: Option<&'a Path> },
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
        Sink::Queue { database, limits } => {
            let mut importer = Importer::open(database, limits).map_err(|e| e.to_string())?;
            let template =
                importer.store_template(job.template.name(), &job.template_text).map_err(|e| e.to_string())?;
            let (stage, writer) = Stage::queueing(importer, template);
            (stage, Some(writer))
        }
        Sink::DryRun { database } => {
            let importer = match database {
                Some(path) if path.exists() => Some(
                    Importer::open(path, Limits { max_queued_messages: 0, min_free_disk_bytes: 0 })
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

/// Builds messages from records and hands them on in batches.
struct Builder<'a> {
    job: &'a Job,
    source: String,
    stage: Stage,
    outcome: Outcome,
    report: &'a mut Report,
    progress: &'a mut Progress,
    batch: Vec<ImportedMessage>,
}

impl Builder<'_> {
    fn read(&mut self, file: Counted<File>) {
        let job = self.job;
        let failure = match job.format {
            Format::Gpd => {
                let check = if job.warn_only_check_digits { NoticeCheck::WarnOnly } else { NoticeCheck::Enforce };
                let result =
                    gpd::read(BufReader::with_capacity(256 * 1024, file), check, |notice| self.payment(notice));
                let (summary, failure) = match result {
                    Ok(summary) => (summary, None),
                    Err(failure) => (failure.summary.clone(), Some(failure.to_string())),
                };
                for error in &summary.errors {
                    self.rejected(error);
                }
                for warning in &summary.warnings {
                    self.warning(warning);
                }
                failure
            }
            Format::GovPay => {
                let options = GovPayOptions { iuv_aux_digit: job.iuv_aux_digit, notice_check: self.number_check() };
                match govpay::Pendenze::open(file, options) {
                    Ok(mut rows) => {
                        let failure = self.rows(&mut rows);
                        for warning in rows.warnings() {
                            self.warning(warning);
                        }
                        failure
                    }
                    Err(e) => Some(e.to_string()),
                }
            }
            Format::Csv => {
                let Some(mut mapping) = job.mapping.clone() else {
                    self.outcome.failure = Some("format csv needs a mapping".into());
                    return;
                };
                if job.warn_only_check_digits {
                    mapping.notice_check = NumberCheck::WarnOnly;
                }
                match MappedRows::open(file, &mapping) {
                    Ok(mut rows) => {
                        let failure = self.rows(&mut rows);
                        for warning in rows.warnings() {
                            self.warning(warning);
                        }
                        failure
                    }
                    Err(e) => Some(e.to_string()),
                }
            }
            Format::AnprXml => anpr::read_xml(file, |entry| self.entry(entry)).err().map(|f| f.to_string()),
            Format::AnprCsv => anpr::read_csv(file, |entry| self.entry(entry)).err().map(|f| f.to_string()),
        };
        self.outcome.failure = failure;
    }

    fn number_check(&self) -> NumberCheck {
        if self.job.warn_only_check_digits {
            NumberCheck::WarnOnly
        } else {
            NumberCheck::Enforce
        }
    }

    /// Drains a row iterator; returns the source's failure, if any.
    fn rows<E: fmt::Display>(
        &mut self,
        rows: &mut dyn Iterator<Item = Result<Result<PaymentNotice, RecordError>, E>>,
    ) -> Option<String> {
        for row in rows {
            match row {
                Ok(Ok(notice)) => self.payment(notice),
                Ok(Err(error)) => self.rejected(&error),
                Err(failure) => return Some(failure.to_string()),
            }
        }
        None
    }

    fn entry(&mut self, entry: Entry) {
        match entry {
            Entry::Resident(resident) => self.resident(resident),
            Entry::Skipped(skipped) => {
                self.outcome.records += 1;
                self.outcome.skipped += 1;
                self.report.row("skipped", Some(skipped.location), "", "subject", &skipped.reason.to_string());
            }
            Entry::Rejected(error) => self.rejected(&error),
        }
    }

    fn payment(&mut self, notice: PaymentNotice) {
        self.outcome.records += 1;
        self.progress.record();
        if self.stage.stopped() {
            return;
        }
        match recipe::validate_notice(&notice, &self.job.template, self.job.test_recipient) {
            Ok(message) => self.message(&message, &Recipe::payment(&notice), format!("payment:{}", notice.dedup_key())),
            Err(error) => {
                let record = format!("notice {}", notice.notice_number.as_str());
                self.fail(None, &record, error_field(&error), &error.to_string());
            }
        }
    }

    fn resident(&mut self, resident: Resident) {
        self.outcome.records += 1;
        self.progress.record();
        if self.stage.stopped() {
            return;
        }
        let job = self.job;
        let reminder = match campaign::id_card_reminder(&resident, job.today, &job.id_cards) {
            Ok(reminder) if reminder.campaign == job.campaign => reminder,
            Ok(reminder) => {
                *self.outcome.no_reminder.entry(format!("in campaign {}", reminder.campaign.as_str())).or_default() +=
                    1;
                return;
            }
            Err(reason) => {
                *self.outcome.no_reminder.entry(reason.to_string()).or_default() += 1;
                return;
            }
        };
        let fiscal_code = match FiscalCode::parse(&resident.fiscal_code, job.test_recipient) {
            Ok(code) => code,
            Err(e) => return self.fail(Some(resident.location), "", "codiceFiscale", &e.to_string()),
        };
        let recipe = Recipe::id_card(&resident, &fiscal_code, &reminder, job.today);
        match recipe.validate(&job.template, job.test_recipient) {
            Ok(message) => self.message(&message, &recipe, reminder.dedup_key(fiscal_code.as_str())),
            Err(error) => self.fail(Some(resident.location), "", error_field(&error), &error.to_string()),
        }
    }

    /// Queues a validated message (its Italian rendering is `message`) as its recipe.
    fn message(&mut self, message: &NewMessage, recipe: &Recipe, dedup_key: String) {
        self.outcome.messages += 1;
        if self.outcome.sample.is_none() {
            self.outcome.sample = Some(sample(message, &self.job.template));
        }
        let template = match &mut self.stage {
            Stage::DryRun(importer) => {
                if importer.as_ref().is_some_and(|i| i.contains(&dedup_key).unwrap_or(false)) {
                    self.outcome.duplicates += 1;
                }
                return;
            }
            Stage::Queue { template, .. } => *template,
        };
        self.batch.push(ImportedMessage {
            institution: self.job.institution.clone(),
            service: self.job.service.clone(),
            fiscal_code: message.fiscal_code().clone(),
            priority: self.job.priority,
            template,
            recipe: recipe.to_bytes(),
            dedup_key,
            source: self.source.clone(),
        });
        if self.batch.len() >= BATCH {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if !self.batch.is_empty() {
            let batch = std::mem::take(&mut self.batch);
            self.stage.send(batch);
        }
    }

    fn rejected(&mut self, error: &RecordError) {
        self.outcome.records += 1;
        self.fail(Some(error.location), "", &error.field, &error.reason);
    }

    fn fail(&mut self, location: Option<u64>, record: &str, field: &str, reason: &str) {
        self.outcome.rejected += 1;
        self.report.row("rejected", location, record, field, reason);
    }

    fn warning(&mut self, warning: &RecordError) {
        self.outcome.warnings += 1;
        self.report.row("warning", Some(warning.location), "", &warning.field, &warning.reason);
    }
}

fn error_field(error: &template::MessageError) -> &'static str {
    match error {
        template::MessageError::Recipient(_) => "fiscal_code",
        template::MessageError::Render(_) | template::MessageError::Kind { .. } => "template",
        template::MessageError::Invalid { .. } => "content",
    }
}

/// One message as text, for `--dry-run`.
fn sample(message: &NewMessage, template: &Template) -> String {
    let content = message.content();
    let mut text = format!("to:       {}\nsubject:  {}\n", message.fiscal_code().redacted(), content.subject());
    if let Some(due) = content.due_date() {
        text.push_str(&format!("due_date: {}\n", connectors::message::format_timestamp(due)));
    }
    if let Some(payment) = content.payment_data() {
        text.push_str(&format!(
            "payment:  {} cents, notice {}, payee {}\n",
            payment.amount.cents(),
            payment.notice_number.as_str(),
            payment.payee.as_ref().map(|p| p.as_str()).unwrap_or("-")
        ));
    }
    let others: Vec<&str> =
        template.languages().into_iter().filter(|l| *l != Language::It).map(|l| l.as_str()).collect();
    if !others.is_empty() {
        text.push_str(&format!("also in:  {} (sent in the citizen's preferred language)\n", others.join(", ")));
    }
    text.push_str("markdown:\n");
    for line in content.markdown().lines() {
        text.push_str("  ");
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// Where built batches go: a writer thread, or nowhere (dry run).
enum Stage {
    Queue {
        batches: Option<mpsc::SyncSender<Vec<ImportedMessage>>>,
        stopped: Arc<AtomicBool>,
        /// The digest the job's template is stored under.
        template: [u8; 32],
    },
    DryRun(Option<Importer>),
}

struct WriterThread {
    thread: std::thread::JoinHandle<WriterResult>,
}

#[derive(Default)]
struct WriterResult {
    done: BatchOutcome,
    error: Option<String>,
}

impl WriterThread {
    fn join(self) -> WriterResult {
        self.thread.join().unwrap_or_else(|_| WriterResult {
            error: Some("the import's queue writer stopped unexpectedly".into()),
            ..WriterResult::default()
        })
    }
}

impl Stage {
    fn queueing(mut importer: Importer, template: [u8; 32]) -> (Stage, WriterThread) {
        let (batches, received) = mpsc::sync_channel::<Vec<ImportedMessage>>(4);
        let stopped = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&stopped);
        let thread = std::thread::spawn(move || {
            let mut result = WriterResult::default();
            for batch in received {
                if result.error.is_some() {
                    continue;
                }
                match importer.insert(&batch) {
                    Ok(done) => {
                        result.done.inserted += done.inserted;
                        result.done.duplicates += done.duplicates;
                    }
                    Err(error) => {
                        result.error = Some(queue_refusal(&error));
                        stop.store(true, Ordering::Relaxed);
                    }
                }
            }
            result
        });
        (Stage::Queue { batches: Some(batches), stopped, template }, WriterThread { thread })
    }

    fn dry_run(importer: Option<Importer>) -> Stage {
        Stage::DryRun(importer)
    }

    fn stopped(&self) -> bool {
        match self {
            Stage::Queue { stopped, .. } => stopped.load(Ordering::Relaxed),
            Stage::DryRun(_) => false,
        }
    }

    fn send(&mut self, batch: Vec<ImportedMessage>) {
        if let Stage::Queue { batches: Some(sender), .. } = self {
            // The writer only goes away after the channel closes, so this cannot fail
            // while we hold the sender; if it ever did, the join reports the loss.
            let _ = sender.send(batch);
        }
    }
}

fn queue_refusal(error: &QueueError) -> String {
    match error {
        QueueError::Full { pending, limit } => {
            format!("the queue is full ({pending} messages awaiting delivery, limit {limit})")
        }
        QueueError::DiskLow { free_bytes, min_bytes } => {
            format!("free disk {free_bytes} bytes is below the minimum {min_bytes}")
        }
        other => other.to_string(),
    }
}

/// A reader that counts the bytes read through it, for the progress display.
struct Counted<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl<R: Seek> Seek for Counted<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let at = self.inner.seek(pos)?;
        self.read.store(at, Ordering::Relaxed);
        Ok(at)
    }
}

#[cfg(test)]
mod tests;
