//! One GPD payment position, already parsed as JSON, turned into payment notices.
//!
//! Every payment option is judged on its own: a bad option gives a `RecordError` and its
//! siblings still give their notices. Field names in errors are paths inside the position,
//! with 0-based indices as in the JSON (`paymentOption[1].transfer[0].amount`).

use std::borrow::Cow;

use serde::de::DeserializeOwned;

use super::json::Json;
use super::NoticeCheck;
use crate::domain::{local_due_day, EuroCents, NoticeNumber, NoticeNumberError, OrgFiscalCode};
use crate::payment::{PaymentNotice, RecordError};

/// A notice read from one payment option, with what was odd but not fatal about it.
#[derive(Debug)]
pub(super) struct Accepted {
    pub notice: PaymentNotice,
    pub warnings: Vec<RecordError>,
}

/// The outcome of every payment option of the position numbered `location` (1-based), in
/// file order. A position that cannot give any notice (no debtor, no options) gives one error.
pub(super) fn notices(location: u64, position: &Json<'_>, check: NoticeCheck) -> Vec<Result<Accepted, RecordError>> {
    let (position, debtor, options) = match open(location, position) {
        Ok(opened) => opened,
        Err(error) => return vec![Err(error)],
    };
    let options: Vec<Result<(Fields<'_, '_, '_>, bool), RecordError>> = options
        .iter()
        .enumerate()
        .map(|(index, option)| {
            let option = position.element(option, "paymentOption", index)?;
            let partial = option.optional::<bool>("isPartialPayment")?.unwrap_or(false);
            Ok((option, partial))
        })
        .collect();
    let partials = options.iter().filter(|option| matches!(option, Ok((_, true)))).count();
    let partials = u32::try_from(partials).unwrap_or(u32::MAX);
    let mut installment = 0;
    let mut outcomes = Vec::with_capacity(options.len());
    for option in options {
        outcomes.push(option.and_then(|(option, partial)| {
            let installment = partial.then(|| {
                installment += 1;
                (installment, partials)
            });
            notice(&option, &debtor, installment, check)
        }));
    }
    outcomes
}

/// The position's fields, its debtor and its non-empty list of payment options.
fn open<'v, 'a>(
    location: u64,
    position: &'v Json<'a>,
) -> Result<(Fields<'v, 'a, 'v>, Debtor<'v>, &'v [Json<'a>]), RecordError> {
    let fields = Fields::root(position, location)?;
    let fiscal_code = fields.required_text("fiscalCode")?.trim();
    if fiscal_code.is_empty() {
        return Err(fields.error("fiscalCode", "the debtor's fiscal code is empty"));
    }
    let name = fields.text("fullName")?.map(str::trim).filter(|name| !name.is_empty());
    let options = fields.array("paymentOption")?;
    if options.is_empty() {
        return Err(fields.error("paymentOption", "the position has no payment options"));
    }
    Ok((fields, Debtor { fiscal_code, name }, options))
}

struct Debtor<'v> {
    fiscal_code: &'v str,
    name: Option<&'v str>,
}

/// The notice of one payment option; `installment` was numbered by the caller.
fn notice(
    option: &Fields<'_, '_, '_>,
    debtor: &Debtor<'_>,
    installment: Option<(u32, u32)>,
    check: NoticeCheck,
) -> Result<Accepted, RecordError> {
    let mut warnings = Vec::new();
    let (notice_number, warning) = notice_number(option, check)?;
    warnings.extend(warning);
    let amount = amount(option)?;
    let creditor = creditor(option, amount)?;
    let due_date = match option.text("dueDate")? {
        Some(text) => Some(local_day(text).map_err(|reason| option.error("dueDate", reason))?),
        None => None,
    };
    let description = option.required_text("description")?.trim();
    if description.is_empty() {
        return Err(option.error("description", "the description is empty"));
    }
    let year = year(option).unwrap_or_else(|warning| {
        warnings.push(warning);
        None
    });
    let notice = PaymentNotice {
        debtor_fiscal_code: debtor.fiscal_code.to_owned(),
        debtor_name: debtor.name.map(str::to_owned),
        creditor,
        notice_number,
        amount,
        due_date,
        description: description.to_owned(),
        installment,
        year,
    };
    Ok(Accepted { notice, warnings })
}

/// `nav` when present, else `"3"` followed by `iuv`, as GPD itself does; with the warning,
/// if any, that `check` lets through.
fn notice_number(
    option: &Fields<'_, '_, '_>,
    check: NoticeCheck,
) -> Result<(NoticeNumber, Option<RecordError>), RecordError> {
    let (field, source, text) = match option.text("nav")? {
        Some(nav) => ("nav", "nav", Cow::Borrowed(nav)),
        None => ("iuv", "\"3\" + iuv", Cow::Owned(format!("3{}", option.required_text("iuv")?))),
    };
    let problem = |error| format!("{source} {text:?} is not a valid notice number: {error}");
    match parse_notice_number(&text, check) {
        Ok((number, warning)) => Ok((number, warning.map(|error| option.error(field, problem(error))))),
        Err(error) => Err(option.error(field, problem(error))),
    }
}

/// Parses a notice number under `check`, returning the fault it lets through, if any.
fn parse_notice_number(
    text: &str,
    check: NoticeCheck,
) -> Result<(NoticeNumber, Option<NoticeNumberError>), NoticeNumberError> {
    match check {
        NoticeCheck::Enforce => text.parse().map(|number| (number, None)),
        NoticeCheck::WarnOnly => NoticeNumber::parse_ignoring_check(text),
    }
}

fn amount(option: &Fields<'_, '_, '_>) -> Result<EuroCents, RecordError> {
    let cents = option.required::<i64>("amount")?;
    EuroCents::from_cents(cents).map_err(|error| option.error("amount", error.to_string()))
}

/// The creditor (the first transfer's organization; TEFA and other beneficiaries follow it),
/// once the transfers are known to add up to `amount`.
fn creditor(option: &Fields<'_, '_, '_>, amount: EuroCents) -> Result<OrgFiscalCode, RecordError> {
    let transfers = option.array("transfer")?;
    let Some(first) = transfers.first() else {
        return Err(option.error("transfer", "the option has no transfers, so no creditor"));
    };
    let mut sum: i128 = 0;
    for (index, transfer) in transfers.iter().enumerate() {
        let transfer = option.element(transfer, "transfer", index)?;
        sum += i128::from(transfer.required::<i64>("amount")?);
    }
    if sum != i128::from(amount.cents()) {
        let reason = format!("amount is {} cents but its transfers add up to {sum} cents", amount.cents());
        return Err(option.error("amount", reason));
    }
    let first = option.element(first, "transfer", 0)?;
    let code = first.required_text("organizationFiscalCode")?;
    code.parse().map_err(|error| first.error("organizationFiscalCode", format!("{code:?}: {error}")))
}

/// The local day of a GPD due date: GPD writes local date-times (`2025-07-31T23:59:59`), whose
/// date part is the day; a date-time with an offset or `Z` is an instant, seen from Rome.
fn local_day(text: &str) -> Result<jiff::civil::Date, String> {
    if let Ok(instant) = text.parse::<jiff::Timestamp>() {
        return local_due_day(instant).map_err(|error| error.to_string());
    }
    text.parse().map_err(|error| format!("{text:?} is not a date or a date-time: {error}"))
}

/// The metadata key that carries the tax year.
const YEAR_KEY: &str = "annoRiferimento";

/// The tax year from the option's metadata; an unreadable one is a warning, not an error.
fn year(option: &Fields<'_, '_, '_>) -> Result<Option<i16>, RecordError> {
    for (index, entry) in option.array("paymentOptionMetadata")?.iter().enumerate() {
        let entry = option.element(entry, "paymentOptionMetadata", index)?;
        if entry.text("key")? != Some(YEAR_KEY) {
            continue;
        }
        let value = entry.required_text("value")?.trim();
        let year = value.parse::<i16>().ok().filter(|_| value.len() == 4 && value.bytes().all(|b| b.is_ascii_digit()));
        return match year {
            Some(year) => Ok(Some(year)),
            None => Err(entry.error("value", format!("{YEAR_KEY} is {value:?}, not a 4-digit year"))),
        };
    }
    Ok(None)
}

/// A JSON object inside the position being read, and where it is, to name its fields.
struct Fields<'v, 'a, 'p> {
    object: &'v [(Cow<'a, str>, Json<'a>)],
    location: u64,
    /// `None` for the position itself.
    place: Option<Place<'v, 'a, 'p>>,
}

/// An object that is the element `index` of the array `array` in `parent`: its path, such as
/// `paymentOption[1].transfer[0]`, is only written out for an error.
struct Place<'v, 'a, 'p> {
    parent: &'p Fields<'v, 'a, 'p>,
    array: &'static str,
    index: usize,
}

impl<'v, 'a, 'p> Fields<'v, 'a, 'p> {
    fn root(value: &'v Json<'a>, location: u64) -> Result<Self, RecordError> {
        match value {
            Json::Object(object) => Ok(Fields { object, location, place: None }),
            other => Err(RecordError {
                location,
                field: "position".to_owned(),
                reason: format!("a payment position is a JSON object, this is {}", other.kind()),
            }),
        }
    }

    /// The object `value`, element `index` of the array `array` in this one.
    fn element(&'p self, value: &'v Json<'a>, array: &'static str, index: usize) -> Result<Self, RecordError> {
        match value {
            Json::Object(object) => {
                Ok(Fields { object, location: self.location, place: Some(Place { parent: self, array, index }) })
            }
            other => {
                let name = format!("{array}[{index}]");
                Err(self.error(&name, format!("expected a JSON object, found {}", other.kind())))
            }
        }
    }

    /// The value of `key`, if present and not null, deserialized as from a `serde_json::Value`.
    fn optional<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, RecordError> {
        match Json::get(self.object, key) {
            None | Some(Json::Null) => Ok(None),
            Some(value) => {
                serde_json::from_value(value.to_value()).map(Some).map_err(|error| self.error(key, error.to_string()))
            }
        }
    }

    fn required<T: DeserializeOwned>(&self, key: &str) -> Result<T, RecordError> {
        self.optional(key)?.ok_or_else(|| self.error(key, "missing"))
    }

    /// The string at `key`, if present and not null.
    fn text(&self, key: &str) -> Result<Option<&'v str>, RecordError> {
        match Json::get(self.object, key) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(text)) => Ok(Some(text)),
            Some(other) => Err(self.error(key, format!("expected a string, found {}", other.kind()))),
        }
    }

    fn required_text(&self, key: &str) -> Result<&'v str, RecordError> {
        self.text(key)?.ok_or_else(|| self.error(key, "missing"))
    }

    /// The array at `key`; absent or null is an empty array.
    fn array(&self, key: &str) -> Result<&'v [Json<'a>], RecordError> {
        match Json::get(self.object, key) {
            None | Some(Json::Null) => Ok(&[]),
            Some(Json::Array(values)) => Ok(values),
            Some(other) => Err(self.error(key, format!("expected an array, found {}", other.kind()))),
        }
    }

    fn error(&self, key: &str, reason: impl Into<String>) -> RecordError {
        RecordError { location: self.location, field: self.field(key), reason: reason.into() }
    }

    /// The path of `key` in the position, e.g. `paymentOption[1].transfer[0].amount`.
    fn field(&self, key: &str) -> String {
        let mut field = String::new();
        self.write_path(&mut field);
        if !field.is_empty() {
            field.push('.');
        }
        field.push_str(key);
        field
    }

    fn write_path(&self, path: &mut String) {
        if let Some(Place { parent, array, index }) = &self.place {
            parent.write_path(path);
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(&format!("{array}[{index}]"));
        }
    }
}
