//! Remembered profile answers, so a campaign to the same citizens does not spend the
//! budget twice. In memory: a restart asks again.

use crate::config::{ProfileCheck, ServiceName};
use connectors::domain::FiscalCode;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::time::Instant;

/// Most answers kept; past it the memory starts over.
const MAX_ENTRIES: usize = 200_000;

/// What a profile lookup said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Allowed,
    SenderNotAllowed,
    NotOnIo,
}

pub struct ProfileCache {
    policy: ProfileCheck,
    answers: Mutex<HashMap<(ServiceName, String), (Instant, Profile)>>,
}

impl ProfileCache {
    pub fn new(policy: ProfileCheck) -> ProfileCache {
        ProfileCache { policy, answers: Mutex::new(HashMap::new()) }
    }

    /// `None`: ask IO. `Some`: the answer to use without asking.
    pub fn known(&self, service: &ServiceName, fiscal_code: &FiscalCode) -> Option<Profile> {
        match self.policy {
            ProfileCheck::Never => Some(Profile::Allowed),
            ProfileCheck::Always => None,
            ProfileCheck::Cached(ttl) => {
                let answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
                let key = (service.clone(), fiscal_code.as_str().to_string());
                answers.get(&key).filter(|(at, _)| at.elapsed() < ttl).map(|(_, profile)| *profile)
            }
        }
    }

    pub fn remember(&self, service: &ServiceName, fiscal_code: &FiscalCode, profile: Profile) {
        if let ProfileCheck::Cached(_) = self.policy {
            let mut answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
            if answers.len() >= MAX_ENTRIES {
                answers.clear();
            }
            answers.insert((service.clone(), fiscal_code.as_str().to_string()), (Instant::now(), profile));
        }
    }
}
