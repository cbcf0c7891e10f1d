//! Validated domain values: a value of these types that exists is valid.
//!
//! Each type is built only through `FromStr` (or a named constructor) that checks every
//! rule in `FACTS.md` §2–4, keeps its field private and deserializes through the same
//! checks, so the rest of the gateway never re-validates and never passes raw `&str`.

pub mod amount;
pub mod fiscal_code;
pub mod notice_number;
pub mod org_fiscal_code;

pub use amount::{AmountError, EuroCents};
pub use fiscal_code::{FiscalCode, FiscalCodeError, TestRecipient};
pub use notice_number::{NoticeNumber, NoticeNumberError};
pub use org_fiscal_code::{OrgFiscalCode, OrgFiscalCodeError};
