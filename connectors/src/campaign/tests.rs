//! Tests of the identity-card reminder rules: the shared sample's expected campaigns, then
//! each rule at its boundaries.

use std::collections::BTreeSet;

use jiff::civil::{date, Date};

use super::*;
use crate::anpr::{read_xml, Entry, IdCard};

const SAMPLE: &[u8] = include_bytes!("../../tests/fixtures/anpr/001234_Elenchi_sample.xml");

#[test]
fn the_shared_sample_gives_the_expected_campaigns() {
    let today = date(2026, 11, 22);
    let policy = IdCardPolicy::default();
    let (mut expiring, mut paper) = (BTreeSet::new(), BTreeSet::new());
    let mut reasons = Vec::new();
    read_xml(SAMPLE, |entry| {
        let Entry::Resident(resident) = entry else { return };
        match id_card_reminder(&resident, today, &policy) {
            Ok(reminder) => {
                let set = match reminder.campaign {
                    Campaign::CardExpiring => &mut expiring,
                    Campaign::PaperCard => &mut paper,
                };
                set.insert(reminder.dedup_key(&resident.fiscal_code));
            }
            Err(reason) => reasons.push((resident.fiscal_code, reason)),
        }
    })
    .unwrap();
    let keys = |campaign: &str, codes: &[(&str, &str)]| -> BTreeSet<String> {
        codes.iter().map(|(code, until)| format!("{campaign}:{code}:{until}")).collect()
    };
    // LNGSVT95E07C351P also holds a card expiring soon, but is deceased: the reader skips them.
    let expected_expiring =
        keys("id-card-expiring", &[("DNGNCL98T16A479E", "2026-12-16"), ("LMRHMZ22S22Z330G", "2026-11-22")]);
    assert_eq!(expiring, expected_expiring);
    let paper_codes =
        ["BNDTRS42T01Z138H", "CNTLRZ90D57C351K", "LMRYSF41M04Z330I", "SHHRTA58T54Z100M", "VTLGRL65E24B639I"];
    let paper_codes: Vec<(&str, &str)> = paper_codes.iter().map(|code| (*code, "2026-08-03")).collect();
    assert_eq!(paper, keys("paper-id-card", &paper_codes));
    let reason = |code: &str| reasons.iter().find(|(found, _)| found == code).map(|(_, reason)| *reason);
    assert_eq!(reason("RCCDRA43S22A944N"), Some(NoReminder::Unlimited));
    assert_eq!(reason("BRTGRG21M60L781O"), Some(NoReminder::Annulled));
    assert_eq!(reason("LNEGLI25S64D704G"), Some(NoReminder::NoCard));
    assert_eq!(reason("DLLMGR91D50F952H"), Some(NoReminder::AlreadyExpired), "paper, printed expiry 2022");
    assert_eq!(reason("LMRHMZ00E22Z330X"), Some(NoReminder::AlreadyExpired), "electronic, 2022");
    assert_eq!(reason("MRTDRA88R17H355P"), Some(NoReminder::NotYetDue));
    assert_eq!(reasons.len() + expiring.len() + paper.len(), 18);
}

fn resident(kind: CardKind, expiry: Option<Date>) -> Resident {
    Resident {
        location: 1,
        anpr_record_id: None,
        fiscal_code: "RSSMRA80A02H501U".to_owned(),
        surname: None,
        name: None,
        birth_date: None,
        id_card: Some(IdCard { number: "X".to_owned(), kind, issued: None, expiry, unlimited: false, annulled: None }),
        digital_domicile: None,
    }
}

fn check(kind: CardKind, expiry: Option<Date>, today: Date, expected: Result<(Campaign, Date), NoReminder>) {
    let outcome = id_card_reminder(&resident(kind, expiry), today, &IdCardPolicy::default());
    let expected = expected.map(|(campaign, valid_until)| IdCardReminder { campaign, valid_until, card_kind: kind });
    assert_eq!(outcome, expected, "{kind} card expiring {expiry:?}, on {today}");
}

#[test]
fn electronic_cards_are_due_from_window_days_before_expiry_to_expiry() {
    use Campaign::CardExpiring;
    let expiry = date(2027, 6, 30);
    let window_start = date(2027, 1, 1); // 180 days before
    for kind in [CardKind::Electronic, CardKind::Unknown] {
        check(kind, Some(expiry), date(2026, 12, 31), Err(NoReminder::NotYetDue));
        check(kind, Some(expiry), window_start, Ok((CardExpiring, expiry)));
        check(kind, Some(expiry), date(2027, 3, 1), Ok((CardExpiring, expiry)));
        check(kind, Some(expiry), expiry, Ok((CardExpiring, expiry)));
        check(kind, Some(expiry), date(2027, 7, 1), Err(NoReminder::AlreadyExpired));
        check(kind, None, expiry, Err(NoReminder::NoExpiry));
    }
}

#[test]
fn paper_cards_stop_at_the_cutoff_unless_they_expire_before() {
    use Campaign::{CardExpiring, PaperCard};
    let cutoff = PAPER_CARDS_INVALID_FROM;
    let window_start = date(2026, 2, 4); // 180 days before 2026-08-03
                                         // Printed expiry after the cutoff, or none: the cutoff decides, and stays due after it.
    for expiry in [Some(date(2029, 1, 1)), Some(cutoff), None] {
        check(CardKind::Paper, expiry, date(2026, 2, 3), Err(NoReminder::NotYetDue));
        check(CardKind::Paper, expiry, window_start, Ok((PaperCard, cutoff)));
        check(CardKind::Paper, expiry, cutoff, Ok((PaperCard, cutoff)));
        check(CardKind::Paper, expiry, date(2030, 1, 1), Ok((PaperCard, cutoff)));
    }
    // Printed expiry before the cutoff: an ordinary expiring card.
    let early = date(2026, 5, 1);
    check(CardKind::Paper, Some(early), date(2025, 11, 1), Err(NoReminder::NotYetDue));
    check(CardKind::Paper, Some(early), date(2025, 11, 2), Ok((CardExpiring, early)));
    check(CardKind::Paper, Some(early), early, Ok((CardExpiring, early)));
    check(CardKind::Paper, Some(early), date(2026, 5, 2), Err(NoReminder::AlreadyExpired));
}

#[test]
fn cards_without_a_reminder_say_why() {
    let today = date(2026, 11, 22);
    let policy = IdCardPolicy::default();
    let mut holder = resident(CardKind::Electronic, Some(today));
    let card = holder.id_card.as_mut().unwrap();
    card.annulled = Some(date(2026, 1, 1));
    assert_eq!(id_card_reminder(&holder, today, &policy), Err(NoReminder::Annulled));
    let mut holder = resident(CardKind::Paper, None);
    holder.id_card.as_mut().unwrap().unlimited = true;
    assert_eq!(id_card_reminder(&holder, today, &policy), Err(NoReminder::Unlimited));
    holder.id_card = None;
    assert_eq!(id_card_reminder(&holder, today, &policy), Err(NoReminder::NoCard));
    assert_eq!(NoReminder::NotYetDue.to_string(), "the identity card is not yet within the reminder window");
}

#[test]
fn the_policy_sets_the_window_and_the_paper_cutoff() {
    let policy = IdCardPolicy { window_days: 30, paper_invalid_from: date(2027, 1, 1) };
    let electronic = resident(CardKind::Electronic, Some(date(2026, 12, 31)));
    assert_eq!(id_card_reminder(&electronic, date(2026, 11, 30), &policy), Err(NoReminder::NotYetDue));
    assert!(id_card_reminder(&electronic, date(2026, 12, 1), &policy).is_ok());
    let paper = resident(CardKind::Paper, Some(date(2030, 1, 1)));
    let reminder = id_card_reminder(&paper, date(2026, 12, 2), &policy).unwrap();
    assert_eq!(reminder.dedup_key("RSSMRA80A02H501U"), "paper-id-card:RSSMRA80A02H501U:2027-01-01");
    let huge = IdCardPolicy { window_days: u32::MAX, ..policy };
    assert!(id_card_reminder(&paper, date(2020, 1, 1), &huge).is_ok(), "a window past the calendar's start");
}
