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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInstitution {
    pub name: String,
    pub fiscal_code: String,
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
}
