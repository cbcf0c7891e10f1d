//! Which IO subscription key each service uses: the primary, the secondary after IO
//! refuses the primary, or none for a while when IO refuses the service's credentials.

use super::lane::SERVICE_HOLD;
use crate::config::{Secret, SecretSource, Service, ServiceName};
use crate::io_client::Answer;
use std::collections::HashMap;
use std::sync::Mutex;

struct Keys {
    primary: Option<Secret>,
    secondary: Option<Secret>,
    using_secondary: bool,
    held_until: Option<tokio::time::Instant>,
}

pub struct ServiceKeys {
    keys: Mutex<HashMap<ServiceName, Keys>>,
}

impl ServiceKeys {
    /// Reads every service's keys; one that cannot be read is logged and left out (its
    /// messages wait).
    pub fn read(services: &[Service]) -> ServiceKeys {
        let mut keys = HashMap::new();
        for service in services {
            let read = |source: Option<&SecretSource>| match source.map(SecretSource::read) {
                Some(Ok(secret)) => Some(secret),
                Some(Err(e)) => {
                    log::error!(service = service.name.as_str(), error:display = e; "cannot read an IO subscription key");
                    None
                }
                None => None,
            };
            let entry = Keys {
                primary: read(Some(&service.primary_key)),
                secondary: read(service.secondary_key.as_ref()),
                using_secondary: false,
                held_until: None,
            };
            keys.insert(service.name.clone(), entry);
        }
        ServiceKeys { keys: Mutex::new(keys) }
    }

    /// Reads every service's keys again (SIGHUP). A key that cannot be read keeps its old
    /// value; a service whose keys changed gets a fresh start (primary first, no hold).
    /// Returns how many keys could not be read.
    pub fn reload(&self, services: &[Service]) -> usize {
        let mut failures = 0;
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        for service in services {
            let Some(k) = keys.get_mut(&service.name) else { continue };
            let mut read = |source: Option<&SecretSource>, old: &Option<Secret>| match source.map(SecretSource::read) {
                Some(Ok(secret)) => Some(secret),
                Some(Err(e)) => {
                    failures += 1;
                    log::error!(service = service.name.as_str(), error:display = e; "reload: keeping the old IO subscription key");
                    old.clone()
                }
                None => None,
            };
            let primary = read(Some(&service.primary_key), &k.primary);
            let secondary = read(service.secondary_key.as_ref(), &k.secondary);
            if primary != k.primary || secondary != k.secondary {
                log::info!(service = service.name.as_str(); "reload: new IO subscription keys in use");
                *k = Keys { primary, secondary, using_secondary: false, held_until: None };
            }
        }
        failures
    }

    /// The key to use for a service, unless IO refuses its credentials for now.
    pub fn active(&self, service: &ServiceName) -> Option<Secret> {
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let k = keys.get(service)?;
        if k.held_until.is_some_and(|t| tokio::time::Instant::now() < t) {
            return None;
        }
        if k.using_secondary {
            k.secondary.clone()
        } else {
            k.primary.clone()
        }
    }

    /// IO refused our credentials with `refused` (401, or a 403 not about the recipient):
    /// try the secondary key; when that is refused too, hold the service and alert.
    /// Refusals of a key that is no longer the active one are ignored.
    pub fn refused(&self, service: &ServiceName, refused: &Secret, answer: &Answer) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let Some(k) = keys.get_mut(service) else { return };
        let active = if k.using_secondary { k.secondary.as_ref() } else { k.primary.as_ref() };
        if active != Some(refused) || k.held_until.is_some_and(|t| tokio::time::Instant::now() < t) {
            return;
        }
        if answer.status.as_u16() == 401 && !k.using_secondary && k.secondary.is_some() {
            log::warn!(service = service.as_str(); "IO refused the primary subscription key; using the secondary");
            k.using_secondary = true;
        } else {
            log::error!(service = service.as_str(), status = answer.status.as_u16(), minutes = SERVICE_HOLD.as_secs() / 60;
                        "IO refuses this service's credentials (key, certificate or group): fix the configuration; its messages wait");
            k.using_secondary = false;
            k.held_until = Some(tokio::time::Instant::now() + SERVICE_HOLD);
        }
    }
}
