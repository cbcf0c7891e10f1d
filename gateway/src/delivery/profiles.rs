//! Remembered profile answers, so a campaign to the same citizens does not spend the
//! budget twice. In memory: a restart asks again.

use crate::config::{ProfileCheck, ServiceName};
use connectors::domain::FiscalCode;
use connectors::template::Language;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;

/// Most answers kept; past it the memory starts over.
const MAX_ENTRIES: usize = 200_000;

/// What a profile lookup said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// The service may write; with the citizen's preferred language when IO said one we
    /// have templates for.
    Allowed(Option<Language>),
    SenderNotAllowed,
    NotOnIo,
}

pub struct ProfileCache {
    policy: ProfileCheck,
    answers: Mutex<HashMap<(ServiceName, String), (Instant, Profile)>>,
    /// Lookups in flight: later askers for the same citizen wait for the first.
    asking: Mutex<HashMap<(ServiceName, String), watch::Receiver<()>>>,
}

/// What to do about a citizen's profile.
pub enum Lookup {
    Known(Profile),
    /// Ask IO; drop the ticket when the answer is remembered (or the call failed).
    Ask(Ticket),
}

/// Held by the one caller asking IO; dropping it wakes the others.
pub struct Ticket {
    _done: watch::Sender<()>,
}

impl ProfileCache {
    pub fn new(policy: ProfileCheck) -> ProfileCache {
        ProfileCache { policy, answers: Mutex::new(HashMap::new()), asking: Mutex::new(HashMap::new()) }
    }

    /// The known answer, or a ticket to ask IO. With caching on, concurrent lookups for
    /// the same citizen make one call: the others wait for its answer.
    pub async fn lookup(&self, service: &ServiceName, fiscal_code: &FiscalCode) -> Lookup {
        loop {
            if let Some(profile) = self.known(service, fiscal_code) {
                return Lookup::Known(profile);
            }
            if !matches!(self.policy, ProfileCheck::Cached(_)) {
                let (done, _) = watch::channel(());
                return Lookup::Ask(Ticket { _done: done });
            }
            let key = (service.clone(), fiscal_code.as_str().to_string());
            let mut receiver = {
                let mut asking = self.asking.lock().unwrap_or_else(|p| p.into_inner());
                match asking.get(&key) {
                    // Someone is asking right now (its ticket is alive): wait for it.
                    Some(receiver) if receiver.has_changed().is_ok() => receiver.clone(),
                    _ => {
                        let (done, receiver) = watch::channel(());
                        asking.insert(key, receiver);
                        return Lookup::Ask(Ticket { _done: done });
                    }
                }
            };
            // Returns an error once the asker drops its ticket; then look again.
            while receiver.changed().await.is_ok() {}
        }
    }

    /// `None`: ask IO. `Some`: the answer to use without asking.
    pub fn known(&self, service: &ServiceName, fiscal_code: &FiscalCode) -> Option<Profile> {
        match self.policy {
            ProfileCheck::Never => Some(Profile::Allowed(None)),
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
            let key = (service.clone(), fiscal_code.as_str().to_string());
            self.asking.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
            answers.insert(key, (Instant::now(), profile));
        }
    }
}
