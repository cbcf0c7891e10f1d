//! What the sandbox simulates: services and their keys, citizens, the rate limit, the
//! processing delay, TLS and the faults to inject.

use crate::rate_limit::BudgetSetting;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxConfig {
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    #[serde(default)]
    pub tls: Option<SandboxTls>,
    /// Calls per institution: `{ calls = 150, per_seconds = 5 }` (IO's default) or "unlimited".
    #[serde(default)]
    pub rate_limit: BudgetSetting,
    /// How long a message stays ACCEPTED before IO processes it.
    #[serde(default = "default_processing_delay_ms")]
    pub processing_delay_ms: u64,
    /// The profile of fiscal codes not listed in `citizens`.
    #[serde(default)]
    pub unknown_citizens: Profile,
    pub services: Vec<SandboxService>,
    #[serde(default)]
    pub citizens: Vec<Citizen>,
    #[serde(default)]
    pub faults: Faults,
    /// Require an RFC 9421 signature by one of these keys on every call (IO itself
    /// ignores signatures; this proves the gateway's are right).
    #[serde(default)]
    pub signatures: Option<SandboxSignatures>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSignatures {
    /// A JWK Set file, e.g. the gateway's `public-keys.json`.
    pub public_keys: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxTls {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
    /// When set, clients must present a certificate signed by this CA (IO's mTLS host).
    pub client_ca: Option<PathBuf>,
    /// Offer only what api-mtls.io.pagopa.it offers: TLS 1.2 with
    /// ECDHE-RSA-AES128-GCM-SHA256 and ECDHE-RSA-AES256-GCM-SHA384.
    #[serde(default)]
    pub io_ciphers_only: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxService {
    /// IO's service id (what the gateway's `service_id` names).
    pub service_id: String,
    /// The 11-digit fiscal code of the institution owning the service: services of one
    /// institution share its rate budget.
    pub institution: String,
    pub primary_key: String,
    #[serde(default)]
    pub secondary_key: Option<String>,
    /// A service still in trial (not yet published on IO) may write only to these
    /// fiscal codes (and IO's test recipient); anyone else gets 403, as on IO.
    #[serde(default)]
    pub authorized_recipients: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Citizen {
    pub fiscal_code: String,
    pub profile: Profile,
    #[serde(default)]
    pub preferred_languages: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// On IO, accepts messages from every service.
    #[default]
    OnIo,
    /// No IO profile (or inbox disabled): profile lookups answer 404.
    NotOnIo,
    /// On IO, but has blocked the sending services: `sender_allowed: false`.
    SenderNotAllowed,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Added to every answer.
    #[serde(default)]
    pub latency_ms: u64,
    /// Share of calls answered 500 (0.0 to 1.0).
    #[serde(default)]
    pub error_rate: f64,
    /// Share of calls whose connection is dropped before anything is done.
    #[serde(default)]
    pub reset_rate: f64,
    /// Share of message submissions stored and *then* dropped without an answer: the
    /// ambiguous send, where IO has the message but the sender cannot know.
    #[serde(default)]
    pub reset_after_accept_rate: f64,
    /// The first N submissions are stored and then dropped unanswered (deterministic
    /// ambiguous sends, for tests).
    #[serde(default)]
    pub reset_after_accept_count: u64,
    /// Windows, in seconds from start, during which every connection is dropped.
    #[serde(default)]
    pub outages: Vec<Outage>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outage {
    pub start_s: u64,
    pub duration_s: u64,
}

fn default_processing_delay_ms() -> u64 {
    500
}

impl SandboxConfig {
    pub fn from_toml_str(text: &str) -> Result<SandboxConfig, String> {
        let config: SandboxConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if self.services.is_empty() {
            problems.push("services: at least one service is needed".to_string());
        }
        for (i, s) in self.services.iter().enumerate() {
            if s.institution.len() != 11 || !s.institution.bytes().all(|b| b.is_ascii_digit()) {
                problems.push(format!("services[{i}].institution: must be 11 digits"));
            }
        }
        let f = &self.faults;
        for (name, rate) in [
            ("error_rate", f.error_rate),
            ("reset_rate", f.reset_rate),
            ("reset_after_accept_rate", f.reset_after_accept_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                problems.push(format!("faults.{name}: must be between 0.0 and 1.0"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate_limit::Budget;

    #[test]
    fn the_example_sandbox_configuration_parses() {
        let config = SandboxConfig::from_toml_str(include_str!("../../../config/sandbox.example.toml")).unwrap();
        assert_eq!(config.rate_limit.budget(), Budget::IO_DEFAULT);
        assert_eq!(config.citizens.len(), 3);
        assert_eq!(config.faults.outages.len(), 1);
    }

    #[test]
    fn unlimited_and_bad_rates() {
        let base = "listen = \"127.0.0.1:0\"\n[[services]]\nservice_id = \"S\"\ninstitution = \"80000000010\"\nprimary_key = \"k\"\n";
        let unlimited = SandboxConfig::from_toml_str(&format!("rate_limit = \"unlimited\"\n{base}")).unwrap();
        assert_eq!(unlimited.rate_limit.budget(), Budget::Unlimited);
        let bad = SandboxConfig::from_toml_str(&format!("{base}[faults]\nerror_rate = 2.0\n")).unwrap_err();
        assert!(bad.contains("faults.error_rate"), "{bad}");
    }
}
