//! The configuration file exactly as written: serde structs that reject unknown keys.
//!
//! Nothing here is validated beyond TOML types; `super::typed` turns this into a `Config`
//! and reports every problem it finds.

use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub institutions: Vec<RawInstitution>,
    #[serde(default)]
    pub clients: Vec<RawClient>,
    pub io: Option<RawIo>,
    pub local_api: Option<RawLocalApi>,
    pub storage: Option<RawStorage>,
    #[serde(default)]
    pub delivery: RawDelivery,
    #[serde(default)]
    pub import: RawImport,
    pub metrics: Option<RawMetrics>,
    pub signing: Option<RawSigning>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSigning {
    pub key_directory: PathBuf,
    pub sign_requests: Option<bool>,
    pub receipts: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMetrics {
    pub listen: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawImport {
    pub templates: Option<PathBuf>,
    pub reports: Option<PathBuf>,
    pub priority: Option<String>,
    pub id_card_window_days: Option<u32>,
    pub paper_cards_invalid_from: Option<String>,
    #[serde(default)]
    pub mappings: std::collections::BTreeMap<String, connectors::mapped_csv::Mapping>,
    #[serde(default)]
    pub watch: Vec<RawWatch>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWatch {
    pub directory: PathBuf,
    pub format: String,
    pub template: Option<String>,
    pub service: Option<String>,
    pub mapping: Option<String>,
    pub campaign: Option<String>,
    pub notice_check: Option<String>,
    pub settle_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDelivery {
    pub profile_check: Option<RawProfileCheck>,
    pub ambiguous: Option<String>,
    pub max_age_hours: Option<u64>,
    pub max_in_flight: Option<usize>,
    pub first_poll_after_seconds: Option<u64>,
    pub connect_timeout_seconds: Option<u64>,
    pub request_timeout_seconds: Option<u64>,
    pub budget_margin_ms: Option<u64>,
}

/// `"always"`, `"never"` or `{ cache_hours = N }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawProfileCheck {
    Word(String),
    Cached { cache_hours: u64 },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInstitution {
    pub name: String,
    pub fiscal_code: String,
    #[serde(default)]
    pub rate_limit: crate::rate_limit::BudgetSetting,
    #[serde(default)]
    pub services: Vec<RawService>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawService {
    pub name: String,
    pub service_id: String,
    pub primary_key: RawSecret,
    pub secondary_key: Option<RawSecret>,
}

/// Where a secret comes from: exactly one of `file` or `env`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSecret {
    pub file: Option<PathBuf>,
    pub env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClient {
    pub name: String,
    pub key_sha256: String,
    #[serde(default)]
    pub services: Vec<String>,
    pub default_service: Option<String>,
    pub priority: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIo {
    pub base_url: String,
    pub client_certificate: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub ca_bundle: Option<PathBuf>,
    #[serde(default)]
    pub allow_test_recipient: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLocalApi {
    pub listen: String,
    pub max_body_bytes: Option<u64>,
    pub tls: Option<RawTls>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStorage {
    pub path: PathBuf,
    pub max_queued_messages: Option<u64>,
    pub min_free_disk_mb: Option<u64>,
    pub data_key_directory: Option<PathBuf>,
    pub retention_delivered_days: Option<u32>,
    pub retention_undelivered_days: Option<u32>,
}
