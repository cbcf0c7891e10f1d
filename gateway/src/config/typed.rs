//! The validated configuration and the one conversion from the raw file that builds it.

use super::delivery::{delivery, Delivery};
use super::raw::{RawClient, RawConfig, RawInstitution, RawIo, RawLocalApi, RawSecret, RawStorage};
use super::{Problem, SecretSource};
use crate::queue::Priority;
use crate::rate_limit::Budget;
use connectors::domain::OrgFiscalCode;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

pub const DEFAULT_MAX_BODY_BYTES: u64 = 128 * 1024;
pub const DEFAULT_MAX_QUEUED_MESSAGES: u64 = 1_000_000;
pub const DEFAULT_MIN_FREE_DISK_MB: u64 = 256;
const MTLS_HOST: &str = "api-mtls.io.pagopa.it";

#[derive(Debug, Clone)]
pub struct Config {
    pub institutions: Vec<Institution>,
    pub clients: Vec<LocalClient>,
    pub io: IoEndpoint,
    pub local_api: LocalApi,
    pub storage: Storage,
    pub delivery: Delivery,
    pub import: super::import::Import,
    /// Where Prometheus scrapes `/metrics` (`None`: no metrics listener).
    pub metrics: Option<MetricsListener>,
    /// The appliance key and what it signs (`None`: nothing is signed).
    pub signing: Option<Signing>,
}

/// `[signing]`: the appliance's Ed25519 key directory (`io-gateway keys generate`).
#[derive(Debug, Clone)]
pub struct Signing {
    pub key_directory: std::path::PathBuf,
    /// RFC 9421 signatures on every request to IO (default on; IO ignores them).
    pub sign_requests: bool,
    /// A signed receipt on a 201 of the local API that asks with `Prefer: receipt` (default on).
    pub receipts: bool,
}

/// `[metrics]`: the Prometheus listener, apart from the local API.
#[derive(Debug, Clone)]
pub struct MetricsListener {
    pub listen: SocketAddr,
}

/// A public body the appliance sends for (a union of municipalities has several).
#[derive(Debug, Clone)]
pub struct Institution {
    pub name: String,
    pub fiscal_code: OrgFiscalCode,
    /// IO's call budget for this institution, shared by all its services.
    pub budget: Budget,
    pub services: Vec<Service>,
}

/// One IO service of an institution and its subscription keys.
#[derive(Debug, Clone)]
pub struct Service {
    pub name: ServiceName,
    /// IO's id of the service (its subscription id).
    pub service_id: String,
    pub primary_key: SecretSource,
    pub secondary_key: Option<SecretSource>,
}

/// A local system allowed to post messages.
#[derive(Debug, Clone)]
pub struct LocalClient {
    pub name: ClientName,
    pub key_digest: KeyDigest,
    pub services: Vec<ServiceName>,
    pub default_service: ServiceName,
    /// Priority of its messages unless a request says otherwise.
    pub priority: Priority,
}

#[derive(Debug, Clone)]
pub struct IoEndpoint {
    pub base_url: http::Uri,
    pub client_certificate: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub ca_bundle: Option<PathBuf>,
    /// Accept IO's test fiscal code `AAAAAA00A00A000A` as a recipient.
    pub allow_test_recipient: bool,
}

#[derive(Debug, Clone)]
pub struct LocalApi {
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    pub tls: Option<TlsFiles>,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Storage {
    pub path: PathBuf,
    pub max_queued_messages: u64,
    pub min_free_disk_bytes: u64,
    /// The data keys that seal personal data in the queue (`crate::seal`); by default
    /// `data-keys/` beside the database, made on first start.
    pub data_key_directory: PathBuf,
    pub retention: crate::queue::Retention,
}

impl Config {
    /// The institution and service configured under `name`.
    pub fn service(&self, name: &ServiceName) -> Option<(&Institution, &Service)> {
        self.institutions.iter().flat_map(|i| i.services.iter().map(move |s| (i, s))).find(|(_, s)| &s.name == name)
    }
}

/// A name the configuration gives a service or client: 1–64 of `a-z 0-9 - _ .`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceName(String);

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientName(String);

macro_rules! label_type {
    ($ty:ident) => {
        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                check_label(s).map(|()| $ty(s.to_string()))
            }
        }
        impl $ty {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
label_type!(ServiceName);
label_type!(ClientName);

fn check_label(s: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c);
    if s.is_empty() || s.len() > 64 || !s.chars().all(ok_char) {
        return Err(format!("{s:?} is not a valid name: use 1 to 64 characters among a-z, 0-9, '-', '_' and '.'"));
    }
    Ok(())
}

/// SHA-256 digest of a local client's key. The key itself is never stored.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    pub fn of_key(key: &[u8]) -> KeyDigest {
        let digest = ring::digest::digest(&ring::digest::SHA256, key);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        KeyDigest(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::str::FromStr for KeyDigest {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut bytes).map_err(|_| {
            "must be 64 hexadecimal characters (the SHA-256 of the key; `io-gateway client-key` makes one)".to_string()
        })?;
        Ok(KeyDigest(bytes))
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyDigest({}…)", &self.to_hex()[..8])
    }
}

/// Collects problems while building; each value that fails becomes `None`.
pub(super) struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    pub(super) fn problem(&mut self, location: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem { location: location.into(), message: message.into() });
    }

    pub(super) fn parse<T: std::str::FromStr>(&mut self, location: &str, text: &str) -> Option<T>
    where
        T::Err: fmt::Display,
    {
        text.parse().map_err(|e: T::Err| self.problem(location, e.to_string())).ok()
    }
}

pub(super) fn build(raw: RawConfig) -> Result<Config, Vec<Problem>> {
    let mut c = Checker { problems: Vec::new() };
    // Every declared service name, even of an entry with other problems, so one mistake
    // is not reported again by each client that names the service.
    let mut known = HashSet::new();
    let institutions = institutions(&mut c, raw.institutions, &mut known);
    let clients = clients(&mut c, raw.clients, &known);
    let io = match raw.io {
        Some(io) => io_endpoint(&mut c, io),
        None => {
            c.problem("io", "missing section [io]");
            None
        }
    };
    let local_api = match raw.local_api {
        Some(api) => local_api(&mut c, api),
        None => {
            c.problem("local_api", "missing section [local_api]");
            None
        }
    };
    let storage = match raw.storage {
        Some(storage) => storage_section(&mut c, storage),
        None => {
            c.problem("storage", "missing section [storage]");
            None
        }
    };
    let delivery = delivery(&mut c, raw.delivery);
    let import = super::import::import(&mut c, raw.import, &known);
    let metrics = raw.metrics.map(|m| c.parse::<SocketAddr>("metrics.listen", &m.listen));
    if let (Some(Some(metrics)), Some(api)) = (metrics, &local_api) {
        if metrics == api.listen && metrics.port() != 0 {
            c.problem("metrics.listen", "must differ from local_api.listen");
        }
    }
    let metrics = metrics.map(|listen| listen.map(|listen| MetricsListener { listen }));
    match (io, local_api, storage, delivery, import) {
        (Some(io), Some(local_api), Some(storage), Some(delivery), Some(import)) if c.problems.is_empty() => {
            let metrics = metrics.flatten();
            let signing = raw.signing.map(|s| Signing {
                key_directory: s.key_directory,
                sign_requests: s.sign_requests.unwrap_or(true),
                receipts: s.receipts.unwrap_or(true),
            });
            Ok(Config { institutions, clients, io, local_api, storage, delivery, import, metrics, signing })
        }
        _ => Err(c.problems),
    }
}

fn institutions(c: &mut Checker, raw: Vec<RawInstitution>, known: &mut HashSet<ServiceName>) -> Vec<Institution> {
    if raw.is_empty() {
        c.problem("institutions", "at least one [[institutions]] entry is required");
    }
    let mut fiscal_codes = HashSet::new();
    let mut service_names = HashMap::new();
    let mut out = Vec::new();
    for (i, inst) in raw.into_iter().enumerate() {
        let at = format!("institutions[{i}]");
        if inst.name.trim().is_empty() {
            c.problem(format!("{at}.name"), "must not be empty");
        }
        let fiscal_code: Option<OrgFiscalCode> = c.parse(&format!("{at}.fiscal_code"), &inst.fiscal_code);
        if let Some(code) = &fiscal_code {
            if !fiscal_codes.insert(code.as_str().to_string()) {
                c.problem(format!("{at}.fiscal_code"), format!("{code} is listed twice"));
            }
        }
        if inst.services.is_empty() {
            c.problem(format!("{at}.services"), "at least one service is required");
        }
        let mut services = Vec::new();
        for (j, raw_service) in inst.services.into_iter().enumerate() {
            let at = format!("{at}.services[{j}]");
            let name: Option<ServiceName> = c.parse(&format!("{at}.name"), &raw_service.name);
            if let Some(name) = &name {
                known.insert(name.clone());
                if let Some(first) = service_names.insert(name.clone(), at.clone()) {
                    c.problem(format!("{at}.name"), format!("service name {name} is already used by {first}"));
                }
            }
            if raw_service.service_id.trim().is_empty() {
                c.problem(format!("{at}.service_id"), "must not be empty");
            }
            let primary_key = secret(c, &format!("{at}.primary_key"), raw_service.primary_key);
            let secondary_key = raw_service.secondary_key.and_then(|s| secret(c, &format!("{at}.secondary_key"), s));
            if let (Some(name), Some(primary_key)) = (name, primary_key) {
                services.push(Service {
                    name,
                    service_id: raw_service.service_id.trim().to_string(),
                    primary_key,
                    secondary_key,
                });
            }
        }
        if let Some(fiscal_code) = fiscal_code {
            out.push(Institution { name: inst.name, fiscal_code, budget: inst.rate_limit.budget(), services });
        }
    }
    out
}

fn secret(c: &mut Checker, at: &str, raw: RawSecret) -> Option<SecretSource> {
    match (raw.file, raw.env) {
        (Some(path), None) => Some(SecretSource::File(path)),
        (None, Some(name)) if !name.trim().is_empty() => Some(SecretSource::Env(name)),
        (None, Some(_)) => {
            c.problem(at, "env must name a variable");
            None
        }
        _ => {
            c.problem(at, "give exactly one of `file = \"...\"` or `env = \"...\"`; keys are never written inline");
            None
        }
    }
}

fn clients(c: &mut Checker, raw: Vec<RawClient>, known: &HashSet<ServiceName>) -> Vec<LocalClient> {
    if raw.is_empty() {
        c.problem("clients", "at least one [[clients]] entry is required, or nobody can post messages");
    }
    let mut names = HashSet::new();
    let mut digests: HashMap<[u8; 32], String> = HashMap::new();
    let mut out = Vec::new();
    for (i, client) in raw.into_iter().enumerate() {
        let at = format!("clients[{i}]");
        let name: Option<ClientName> = c.parse(&format!("{at}.name"), &client.name);
        if let Some(name) = &name {
            if !names.insert(name.clone()) {
                c.problem(format!("{at}.name"), format!("client name {name} is listed twice"));
            }
            if name.as_str() == crate::queue::IMPORT_CLIENT {
                c.problem(format!("{at}.name"), "\"import\" is reserved for messages made by imports");
            }
        }
        let key_digest: Option<KeyDigest> = c.parse(&format!("{at}.key_sha256"), &client.key_sha256);
        if let Some(digest) = &key_digest {
            if let Some(first) = digests.insert(*digest.as_bytes(), at.clone()) {
                c.problem(format!("{at}.key_sha256"), format!("the same key is already used by {first}"));
            }
        }
        let services = client_services(c, &at, &client.services, known);
        let default_service = match (client.default_service, services.as_slice()) {
            (Some(name), _) => c.parse::<ServiceName>(&format!("{at}.default_service"), &name).and_then(|d| {
                if services.contains(&d) {
                    Some(d)
                } else {
                    c.problem(format!("{at}.default_service"), format!("{d} is not among this client's services"));
                    None
                }
            }),
            (None, [only]) => Some(only.clone()),
            (None, []) => None,
            (None, _) => {
                c.problem(format!("{at}.default_service"), "required when a client has several services");
                None
            }
        };
        let priority = match &client.priority {
            Some(text) => c.parse::<Priority>(&format!("{at}.priority"), text),
            None => Some(Priority::Normal),
        };
        if let (Some(name), Some(key_digest), Some(default_service), Some(priority)) =
            (name, key_digest, default_service, priority)
        {
            out.push(LocalClient { name, key_digest, services, default_service, priority });
        }
    }
    out
}

fn client_services(c: &mut Checker, at: &str, raw: &[String], known: &HashSet<ServiceName>) -> Vec<ServiceName> {
    if raw.is_empty() {
        c.problem(format!("{at}.services"), "list at least one service this client may send on");
    }
    let mut out = Vec::new();
    for (k, text) in raw.iter().enumerate() {
        let Some(name) = c.parse::<ServiceName>(&format!("{at}.services[{k}]"), text) else {
            continue;
        };
        if !known.contains(&name) {
            c.problem(format!("{at}.services[{k}]"), format!("no institution has a service named {name}"));
        } else if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

fn io_endpoint(c: &mut Checker, raw: RawIo) -> Option<IoEndpoint> {
    let base_url = match raw.base_url.parse::<http::Uri>() {
        Ok(uri) => check_base_url(c, uri),
        Err(e) => {
            c.problem("io.base_url", format!("not a URL: {e}"));
            None
        }
    };
    match (&raw.client_certificate, &raw.client_key) {
        (Some(_), None) => c.problem("io.client_key", "required when io.client_certificate is set"),
        (None, Some(_)) => c.problem("io.client_certificate", "required when io.client_key is set"),
        (None, None) if base_url.as_ref().and_then(|u| u.host()) == Some(MTLS_HOST) => {
            c.problem("io.client_certificate", format!("{MTLS_HOST} requires a client certificate and key"))
        }
        _ => {}
    }
    Some(IoEndpoint {
        base_url: base_url?,
        client_certificate: raw.client_certificate,
        client_key: raw.client_key,
        ca_bundle: raw.ca_bundle,
        allow_test_recipient: raw.allow_test_recipient,
    })
}

fn check_base_url(c: &mut Checker, uri: http::Uri) -> Option<http::Uri> {
    let Some(host) = uri.host() else {
        c.problem("io.base_url", "must be an absolute URL such as https://api.io.pagopa.it/api/v1");
        return None;
    };
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match uri.scheme_str() {
        Some("https") => Some(uri),
        Some("http") if loopback => Some(uri),
        _ => {
            c.problem("io.base_url", "must use https (plain http is allowed only to a loopback address)");
            None
        }
    }
}

fn local_api(c: &mut Checker, raw: RawLocalApi) -> Option<LocalApi> {
    let listen = c.parse::<SocketAddr>("local_api.listen", &raw.listen);
    let max_body_bytes = raw.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
    if !(1024..=16 * 1024 * 1024).contains(&max_body_bytes) {
        c.problem("local_api.max_body_bytes", "must be between 1024 and 16777216");
    }
    Some(LocalApi {
        listen: listen?,
        max_body_bytes: usize::try_from(max_body_bytes).ok()?,
        tls: raw.tls.map(|t| TlsFiles { certificate: t.certificate, private_key: t.private_key }),
    })
}

fn storage_section(c: &mut Checker, raw: RawStorage) -> Option<Storage> {
    if raw.path.as_os_str().is_empty() {
        c.problem("storage.path", "must name the database file, e.g. /var/lib/io-gateway/queue.db");
    }
    if raw.max_queued_messages == Some(0) {
        c.problem("storage.max_queued_messages", "must be at least 1");
    }
    let days = |value: Option<u32>, default: std::time::Duration| {
        value.map_or(default, |d| std::time::Duration::from_secs(u64::from(d) * 86_400))
    };
    let default = crate::queue::Retention::DEFAULT;
    for (key, value) in [
        ("retention_delivered_days", raw.retention_delivered_days),
        ("retention_undelivered_days", raw.retention_undelivered_days),
    ] {
        if value.is_some_and(|d| d > 3650) {
            c.problem(format!("storage.{key}"), "must be at most 3650 (ten years)");
        }
    }
    let data_key_directory =
        raw.data_key_directory.unwrap_or_else(|| crate::queue::database_directory(&raw.path).join("data-keys"));
    Some(Storage {
        max_queued_messages: raw.max_queued_messages.unwrap_or(DEFAULT_MAX_QUEUED_MESSAGES),
        min_free_disk_bytes: raw.min_free_disk_mb.unwrap_or(DEFAULT_MIN_FREE_DISK_MB).saturating_mul(1024 * 1024),
        data_key_directory,
        retention: crate::queue::Retention {
            delivered: days(raw.retention_delivered_days, default.delivered),
            undelivered: days(raw.retention_undelivered_days, default.undelivered),
        },
        path: raw.path,
    })
}
