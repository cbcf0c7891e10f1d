//! Validated domain values: a value of these types that exists is valid.
//!
//! Each type is built only through `FromStr` (or a named constructor) that checks every
//! rule in `FACTS.md` §2–4, keeps its field private and deserializes through the same
//! checks, so the rest of the gateway never re-validates and never passes raw `&str`.
//! `due_date` turns a local due day into the instant IO wants (23:59:59 Europe/Rome).

pub mod amount;
pub mod due_date;
pub mod fiscal_code;
pub mod notice_number;
pub mod org_fiscal_code;

pub use amount::{AmountError, EuroCents};
pub use due_date::{due_date_end_of_day, local_due_day, DueDateError};
pub use fiscal_code::{FiscalCode, FiscalCodeError, TestRecipient};
pub use notice_number::{NoticeNumber, NoticeNumberError};
pub use org_fiscal_code::{OrgFiscalCode, OrgFiscalCodeError};
