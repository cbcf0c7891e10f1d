//! Records into messages: one record at a time, validated in every language, batched.

use super::pipeline::{Counted, Stage};
use super::recipe::{self, Recipe};
use super::{Format, Job, Outcome, Progress, Report, BATCH};
use crate::queue::{DedupKey, ImportBatch, ImportedMessage, Sealed};
use connectors::anpr::{self, Entry, Resident};
use connectors::campaign;
use connectors::domain::FiscalCode;
use connectors::govpay::{self, GovPayOptions, NumberCheck};
use connectors::gpd::{self, NoticeCheck};
use connectors::mapped_csv::MappedRows;
use connectors::message::NewMessage;
use connectors::payment::{PaymentNotice, RecordError};
use connectors::template::{self, Language, Template};
use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::sync::Arc;

/// Builds messages from records and hands them on in batches.
pub(super) struct Builder<'a> {
    pub(super) job: &'a Job,
    pub(super) source: String,
    pub(super) stage: Stage,
    pub(super) outcome: Outcome,
    pub(super) report: &'a mut Report,
    pub(super) progress: &'a mut Progress,
    /// Messages of the batch being built; what they share is added when it is sent.
    pub(super) batch: Vec<ImportedMessage>,
}

impl Builder<'_> {
    pub(super) fn read(&mut self, file: Counted<File>) {
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
            Ok(recipient) => {
                let key = DedupKey::Public(notice.dedup_key("payment:"));
                self.message(&recipient, &Recipe::payment(&notice), key)
            }
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
            Ok(recipient) => {
                self.message(&recipient, &recipe, DedupKey::Personal(reminder.dedup_key(fiscal_code.as_str())))
            }
            Err(error) => self.fail(Some(resident.location), "", error_field(&error), &error.to_string()),
        }
    }

    /// Queues a validated message to `recipient` as its recipe.
    fn message(&mut self, recipient: &FiscalCode, recipe: &Recipe, dedup_key: DedupKey) {
        self.outcome.messages += 1;
        if self.outcome.sample.is_none() {
            // Validated, so it renders; the first message only.
            let italian = recipe.render(&self.job.template, Language::It, self.job.test_recipient);
            self.outcome.sample = italian.ok().map(|message| sample(&message, &self.job.template));
        }
        let keys = match &mut self.stage {
            Stage::DryRun(importer) => {
                if importer.as_ref().is_some_and(|i| i.contains(&dedup_key).unwrap_or(false)) {
                    self.outcome.duplicates += 1;
                }
                return;
            }
            Stage::Queue { keys, .. } => Arc::clone(keys),
        };
        let sealed = match Sealed::recipe(&keys, recipient, &recipe.to_bytes()) {
            Ok(sealed) => sealed,
            Err(error) => {
                // Only the system's random source can fail here: stop, as a queue refusal would.
                self.fail(None, "", "", &format!("cannot seal the record: {error}"));
                return;
            }
        };
        self.batch.push(ImportedMessage { sealed, dedup_key: dedup_key.stored(&keys) });
        if self.batch.len() >= BATCH {
            self.flush();
        }
    }

    pub(super) fn flush(&mut self) {
        let Stage::Queue { template, .. } = &self.stage else { return };
        if self.batch.is_empty() {
            return;
        }
        let batch = ImportBatch {
            institution: self.job.institution.clone(),
            service: self.job.service.clone(),
            priority: self.job.priority,
            template: *template,
            source: self.source.clone(),
            messages: std::mem::replace(&mut self.batch, self.stage.empty_batch()),
        };
        self.stage.send(batch);
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
