//! Who is calling the local API: client keys checked against stored digests in constant
//! time, and which service a client may send on.

use crate::config::{KeyDigest, LocalClient, ServiceName};
use subtle::ConstantTimeEq;

/// The header a client uses to choose among its services; without it, its default.
pub const SERVICE_HEADER: &str = "x-io-gateway-service";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing Ocp-Apim-Subscription-Key header")]
    MissingKey,
    #[error("unknown subscription key")]
    UnknownKey,
    #[error("client {client} may not send on service {service:?}")]
    ServiceNotAllowed { client: String, service: String },
}

/// The configured local clients.
#[derive(Debug, Clone)]
pub struct Clients {
    entries: Vec<LocalClient>,
}

impl Clients {
    pub fn new(entries: Vec<LocalClient>) -> Clients {
        Clients { entries }
    }

    /// Finds the client owning `key`. Every stored digest is compared, each in constant
    /// time, so the time taken says nothing about which digest came close.
    pub fn authenticate(&self, key: Option<&[u8]>) -> Result<&LocalClient, AuthError> {
        let key = key.filter(|k| !k.is_empty()).ok_or(AuthError::MissingKey)?;
        let presented = KeyDigest::of_key(key);
        let mut found = None;
        for client in &self.entries {
            if bool::from(client.key_digest.as_bytes().ct_eq(presented.as_bytes())) {
                found = Some(client);
            }
        }
        found.ok_or(AuthError::UnknownKey)
    }
}

/// The service a request goes to: the one named in `requested`, if the client may use
/// it, or the client's default.
pub fn choose_service<'a>(client: &'a LocalClient, requested: Option<&str>) -> Result<&'a ServiceName, AuthError> {
    let Some(requested) = requested.map(str::trim) else {
        return Ok(&client.default_service);
    };
    client
        .services
        .iter()
        .find(|s| s.as_str() == requested)
        .ok_or_else(|| AuthError::ServiceNotAllowed { client: client.name.to_string(), service: requested.to_string() })
}

/// A new random client key (32 bytes, hex) and its digest for the configuration.
pub fn new_client_key() -> Result<(String, KeyDigest), ring::error::Unspecified> {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)?;
    let key = hex::encode(bytes);
    let digest = KeyDigest::of_key(key.as_bytes());
    Ok((key, digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(name: &str, key: &str, services: &[&str]) -> LocalClient {
        LocalClient {
            name: name.parse().unwrap(),
            key_digest: KeyDigest::of_key(key.as_bytes()),
            services: services.iter().map(|s| s.parse().unwrap()).collect(),
            default_service: services[0].parse().unwrap(),
            priority: crate::queue::Priority::Normal,
        }
    }

    #[test]
    fn keys_find_their_client() {
        let clients = Clients::new(vec![client("a", "key-a", &["tari"]), client("b", "key-b", &["anagrafe"])]);
        assert_eq!(clients.authenticate(Some(b"key-b")).unwrap().name.as_str(), "b");
        assert_eq!(clients.authenticate(Some(b"key-c")).unwrap_err(), AuthError::UnknownKey);
        assert_eq!(clients.authenticate(Some(b"")).unwrap_err(), AuthError::MissingKey);
        assert_eq!(clients.authenticate(None).unwrap_err(), AuthError::MissingKey);
    }

    #[test]
    fn service_is_the_default_or_an_allowed_choice() {
        let c = client("a", "k", &["tari", "imu"]);
        assert_eq!(choose_service(&c, None).unwrap().as_str(), "tari");
        assert_eq!(choose_service(&c, Some("imu")).unwrap().as_str(), "imu");
        assert!(matches!(choose_service(&c, Some("anagrafe")), Err(AuthError::ServiceNotAllowed { .. })));
    }

    #[test]
    fn generated_keys_match_their_digest() {
        let (key, digest) = new_client_key().unwrap();
        assert_eq!(key.len(), 64);
        let clients = Clients::new(vec![LocalClient { key_digest: digest, ..client("a", "x", &["tari"]) }]);
        assert!(clients.authenticate(Some(key.as_bytes())).is_ok());
    }
}
