//! The `[import]` section: templates, generic CSV mappings, ID-card campaign rules and
//! watch folders.

use super::raw::{RawImport, RawWatch};
use super::typed::{Checker, ServiceName};
use crate::queue::Priority;
use connectors::campaign::IdCardPolicy;
use connectors::mapped_csv::Mapping;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

/// How local files become messages.
#[derive(Debug, Clone)]
pub struct Import {
    /// Where template names are looked up (`<templates>/<name>.toml`).
    pub templates: Option<PathBuf>,
    /// Where the watch folders' daemon writes nothing but the reports next to the files;
    /// kept for `io-gateway import`'s default report directory.
    pub reports: Option<PathBuf>,
    /// Priority of imported messages (default bulk: a local system's urgent message
    /// posted on the API goes before a campaign).
    pub priority: Priority,
    pub id_cards: IdCardPolicy,
    /// Column mappings for generic CSV exports, by name (`--mapping NAME`).
    pub mappings: BTreeMap<String, Mapping>,
    pub watch: Vec<WatchFolder>,
}

/// A directory whose `inbox/` is imported: files move to `done/` or `rejected/`.
#[derive(Debug, Clone)]
pub struct WatchFolder {
    pub directory: PathBuf,
    /// An import format name (see `io-gateway import --help`).
    pub format: String,
    pub template: Option<String>,
    pub service: Option<ServiceName>,
    pub mapping: Option<String>,
    pub campaign: Option<String>,
    /// Notice numbers with wrong check digits are warnings, not rejections.
    pub warn_only_check_digits: bool,
    /// A file is picked up once its size and modification time have not changed for
    /// this long (so a file still being copied is left alone).
    pub settle: Duration,
}

impl Import {
    /// Where the template `name` is: a path as given when it looks like one (a `/` or a
    /// `.toml` ending), otherwise `<templates>/<name>.toml`.
    pub fn template_path(&self, name: &str) -> Result<PathBuf, String> {
        if name.contains('/') || name.ends_with(".toml") {
            return Ok(PathBuf::from(name));
        }
        match &self.templates {
            Some(dir) => Ok(dir.join(format!("{name}.toml"))),
            None => Err(format!(
                "template {name:?}: no templates directory is configured ([import] templates); give a path instead"
            )),
        }
    }

    /// The template a watch folder uses (ANPR folders default by campaign).
    pub fn watch_template(folder: &WatchFolder) -> Option<String> {
        match (&folder.template, folder.campaign.as_deref()) {
            (Some(name), _) => Some(name.clone()),
            (None, _) if !folder.format.starts_with("anpr") => None,
            (None, Some("paper-id-card")) => Some("carta-identita-cartacea".into()),
            (None, _) => Some("carta-identita".into()),
        }
    }
}

/// Problems with the files `[import]` names: every watch folder's template must exist
/// and parse (a folder would otherwise reject every file dropped into it).
pub(super) fn check_files(import: &Import) -> Vec<super::Problem> {
    let mut problems = Vec::new();
    for (i, folder) in import.watch.iter().enumerate() {
        let Some(name) = Import::watch_template(folder) else { continue };
        let location = format!("import.watch[{i}].template");
        let checked = import.template_path(&name).and_then(|path| {
            let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            connectors::template::Template::parse(&name, &text).map(|_| ()).map_err(|e| e.to_string())
        });
        if let Err(message) = checked {
            problems.push(super::Problem { location, message });
        }
    }
    problems
}

pub(super) const FORMATS: &[&str] = &["gpd", "govpay", "csv", "anpr-xml", "anpr-csv"];
pub(super) const CAMPAIGNS: &[&str] = &["id-card-expiring", "paper-id-card"];

pub(super) fn import(c: &mut Checker, raw: RawImport, services: &HashSet<ServiceName>) -> Option<Import> {
    let priority = match raw.priority.as_deref() {
        None => Some(Priority::Bulk),
        Some(text) => c.parse("import.priority", text),
    };
    let mut id_cards = IdCardPolicy::default();
    if let Some(days) = raw.id_card_window_days {
        if !(1..=730).contains(&days) {
            c.problem("import.id_card_window_days", "must be between 1 and 730 days");
        }
        id_cards.window_days = days;
    }
    if let Some(text) = raw.paper_cards_invalid_from {
        match text.parse::<jiff::civil::Date>() {
            Ok(date) => id_cards.paper_invalid_from = date,
            Err(e) => c.problem("import.paper_cards_invalid_from", format!("{text:?} is not a date (YYYY-MM-DD): {e}")),
        }
    }
    for (name, mapping) in &raw.mappings {
        for problem in mapping.check() {
            c.problem(format!("import.mappings.{name}"), problem);
        }
    }
    let mut watch = Vec::new();
    let mut directories = HashSet::new();
    for (i, folder) in raw.watch.into_iter().enumerate() {
        let at = format!("import.watch[{i}]");
        if !directories.insert(folder.directory.clone()) {
            c.problem(format!("{at}.directory"), "another watch folder already uses this directory");
        }
        if let Some(folder) = watch_folder(c, &at, folder, services, &raw.mappings) {
            watch.push(folder);
        }
    }
    Some(Import {
        templates: raw.templates,
        reports: raw.reports,
        priority: priority?,
        id_cards,
        mappings: raw.mappings,
        watch,
    })
}

fn watch_folder(
    c: &mut Checker,
    at: &str,
    raw: RawWatch,
    services: &HashSet<ServiceName>,
    mappings: &BTreeMap<String, Mapping>,
) -> Option<WatchFolder> {
    let mut ok = true;
    if !raw.directory.is_absolute() {
        c.problem(format!("{at}.directory"), "must be an absolute path");
        ok = false;
    }
    if !FORMATS.contains(&raw.format.as_str()) {
        c.problem(
            format!("{at}.format"),
            format!("{:?} is not a format: use one of {}", raw.format, FORMATS.join(", ")),
        );
        ok = false;
    }
    let anpr = raw.format.starts_with("anpr");
    if !anpr && raw.template.is_none() {
        c.problem(format!("{at}.template"), "a payment format needs a template");
        ok = false;
    }
    match (&raw.campaign, anpr) {
        (Some(campaign), true) if !CAMPAIGNS.contains(&campaign.as_str()) => {
            c.problem(format!("{at}.campaign"), format!("{campaign:?}: use one of {}", CAMPAIGNS.join(", ")));
            ok = false;
        }
        (Some(_), false) => {
            c.problem(format!("{at}.campaign"), "only ANPR formats have campaigns");
            ok = false;
        }
        _ => {}
    }
    match (&raw.mapping, raw.format == "csv") {
        (None, true) => {
            c.problem(format!("{at}.mapping"), "format \"csv\" needs a mapping from [import.mappings]");
            ok = false;
        }
        (Some(name), true) if !mappings.contains_key(name) => {
            c.problem(format!("{at}.mapping"), format!("no mapping {name:?} in [import.mappings]"));
            ok = false;
        }
        (Some(_), false) => {
            c.problem(format!("{at}.mapping"), "only format \"csv\" takes a mapping");
            ok = false;
        }
        _ => {}
    }
    let service = match &raw.service {
        None if services.len() == 1 => services.iter().next().cloned(),
        None => {
            c.problem(format!("{at}.service"), "several services are configured: say which one this folder sends on");
            ok = false;
            None
        }
        Some(name) => match c.parse::<ServiceName>(&format!("{at}.service"), name) {
            Some(service) if services.contains(&service) => Some(service),
            Some(_) => {
                c.problem(format!("{at}.service"), format!("no service {name:?} is configured"));
                ok = false;
                None
            }
            None => {
                ok = false;
                None
            }
        },
    };
    let warn_only_check_digits = match raw.notice_check.as_deref() {
        None | Some("enforce") => false,
        Some("warn") => true,
        Some(other) => {
            c.problem(format!("{at}.notice_check"), format!("{other:?}: use \"enforce\" or \"warn\""));
            ok = false;
            false
        }
    };
    ok.then(|| WatchFolder {
        directory: raw.directory,
        format: raw.format,
        template: raw.template,
        service,
        mapping: raw.mapping,
        campaign: raw.campaign,
        warn_only_check_digits,
        settle: Duration::from_secs(raw.settle_seconds.unwrap_or(10).clamp(1, 3600)),
    })
}
