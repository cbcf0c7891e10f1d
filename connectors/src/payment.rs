//! A payable pagoPA notice read from a tributi export: what every tributi reader
//! produces, whatever the file format, and what templates turn into one IO message.

use crate::domain::{EuroCents, NoticeNumber, OrgFiscalCode};

/// One payable option of a debt position: one IO message with `payment_data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentNotice {
    /// The debtor's fiscal code as written in the file: a person's codice fiscale or a
    /// company's 11 digits. Validated by whoever sends the message (IO writes to people).
    pub debtor_fiscal_code: String,
    pub debtor_name: Option<String>,
    /// The creditor: the payee in IO's `payment_data`.
    pub creditor: OrgFiscalCode,
    pub notice_number: NoticeNumber,
    pub amount: EuroCents,
    /// The local due day (a message's `due_date` is 23:59:59 Europe/Rome of this day).
    pub due_date: Option<jiff::civil::Date>,
    pub description: String,
    /// `Some((n, of))` for installment n of `of` ("rata 2 di 3"); `None` for a single payment.
    pub installment: Option<(u32, u32)>,
    /// The tax year, when the file says it.
    pub year: Option<i16>,
}

impl PaymentNotice {
    /// Stable identity for de-duplication across re-imports, `creditor:notice number`,
    /// after `prefix` (in one allocation: an import makes a million).
    pub fn dedup_key(&self, prefix: &str) -> String {
        let (creditor, number) = (self.creditor.as_str(), self.notice_number.as_str());
        let mut key = String::with_capacity(prefix.len() + creditor.len() + 1 + number.len());
        for part in [prefix, creditor, ":", number] {
            key.push_str(part);
        }
        key
    }
}

/// A record a reader could not turn into a `PaymentNotice`: where, which field, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// 1-based line for text formats; 1-based position in the array for JSON.
    pub location: u64,
    pub field: String,
    pub reason: String,
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "record {}: {}: {}", self.location, self.field, self.reason)
    }
}
