//! Public Ed25519 keys as JWKs (RFC 8037), named by their RFC 7638 thumbprint, and the JWK
//! Set (RFC 7517) of every key the appliance ever signed with.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::digest::{digest, SHA256};
use ring::signature::{UnparsedPublicKey, ED25519};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::fmt;
use std::str::FromStr;

/// Length of an Ed25519 public key, in bytes.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of an Ed25519 signature, in bytes.
pub const SIGNATURE_LEN: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwkError {
    #[error("not a JWK Set: {0}")]
    NotJwkSet(String),
    #[error("key {index}: only kty \"OKP\" with crv \"Ed25519\" is supported (found kty {kty:?}, crv {crv:?})")]
    UnsupportedKey { index: usize, kty: String, crv: String },
    #[error("key {index}: x is not the unpadded base64url of 32 bytes")]
    BadPublicKey { index: usize },
    #[error("key id {kid:?} is not 1 to 128 characters of A-Z a-z 0-9 - _ . ~")]
    BadKid { kid: String },
    #[error("key id {kid} names two different keys")]
    DuplicateKid { kid: String },
}

/// A key id: the `kid` of a JWK, the `keyid` of an HTTP signature. Ours are RFC 7638
/// thumbprints (43 base64url characters); a key named by someone else may have any id
/// of 1 to 128 characters from the base64url alphabet plus `.` and `~`, which keeps it
/// safe inside JSON and structured-field strings without escaping.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Kid(String);

impl Kid {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The RFC 7638 thumbprint of an Ed25519 public key: base64url of the SHA-256 of
    /// `{"crv":"Ed25519","kty":"OKP","x":"…"}` (members sorted, no whitespace).
    pub fn thumbprint(public_key: &[u8; PUBLIC_KEY_LEN]) -> Kid {
        let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, URL_SAFE_NO_PAD.encode(public_key));
        Kid(URL_SAFE_NO_PAD.encode(digest(&SHA256, canonical.as_bytes())))
    }
}

impl FromStr for Kid {
    type Err = JwkError;
    fn from_str(s: &str) -> Result<Kid, JwkError> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || "-_.~".contains(c);
        if (1..=128).contains(&s.len()) && s.chars().all(ok_char) {
            Ok(Kid(s.to_string()))
        } else {
            Err(JwkError::BadKid { kid: s.to_string() })
        }
    }
}

impl TryFrom<String> for Kid {
    type Error = JwkError;
    fn try_from(s: String) -> Result<Kid, JwkError> {
        s.parse()
    }
}

impl From<Kid> for String {
    fn from(kid: Kid) -> String {
        kid.0
    }
}

impl fmt::Display for Kid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One Ed25519 public key and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicJwk {
    kid: Kid,
    x: [u8; PUBLIC_KEY_LEN],
}

impl PublicJwk {
    /// A key named by its thumbprint, as every appliance key is.
    pub fn new(public_key: [u8; PUBLIC_KEY_LEN]) -> PublicJwk {
        PublicJwk { kid: Kid::thumbprint(&public_key), x: public_key }
    }

    /// A key named by its holder (RFC 9421's `test-key-ed25519`, for instance).
    pub fn with_kid(public_key: [u8; PUBLIC_KEY_LEN], kid: Kid) -> PublicJwk {
        PublicJwk { kid, x: public_key }
    }

    pub fn kid(&self) -> &Kid {
        &self.kid
    }

    pub fn public_key(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.x
    }

    /// The RFC 7638 thumbprint, whatever the key's `kid`.
    pub fn thumbprint(&self) -> Kid {
        Kid::thumbprint(&self.x)
    }

    /// Whether `signature` is this key's Ed25519 signature of `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.x).verify(message, signature).is_ok()
    }

    /// The JWK: `{"kty":"OKP","crv":"Ed25519","x":…,"kid":…,"alg":"EdDSA","use":"sig"}`.
    pub fn to_json(&self) -> Value {
        json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(self.x),
            "kid": self.kid.as_str(),
            "alg": "EdDSA",
            "use": "sig",
        })
    }
}

/// A JWK Set of Ed25519 public keys, in the order they were added, no `kid` twice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Jwks {
    keys: Vec<PublicJwk>,
}

/// One member of `keys` as read; members we do not use (`alg`, `use`, …) are ignored.
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    crv: String,
    #[serde(default)]
    x: String,
    kid: Option<String>,
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<RawJwk>,
}

impl Jwks {
    pub fn new() -> Jwks {
        Jwks::default()
    }

    /// Adds `key`; adding a key already listed under the same `kid` changes nothing.
    pub fn insert(&mut self, key: PublicJwk) -> Result<(), JwkError> {
        match self.find(key.kid.as_str()) {
            Some(listed) if listed.x == key.x => Ok(()),
            Some(_) => Err(JwkError::DuplicateKid { kid: key.kid.to_string() }),
            None => {
                self.keys.push(key);
                Ok(())
            }
        }
    }

    /// The key whose `kid` is `kid`, exactly.
    pub fn find(&self, kid: &str) -> Option<&PublicJwk> {
        self.keys.iter().find(|k| k.kid.as_str() == kid)
    }

    pub fn keys(&self) -> &[PublicJwk] {
        &self.keys
    }

    /// Reads a JWK Set. Every key must be an Ed25519 OKP key; a key without `kid` is named
    /// by its thumbprint.
    pub fn from_json(text: &str) -> Result<Jwks, JwkError> {
        let raw: RawJwks = serde_json::from_str(text).map_err(|e| JwkError::NotJwkSet(e.to_string()))?;
        let mut set = Jwks::new();
        for (index, key) in raw.keys.into_iter().enumerate() {
            if key.kty != "OKP" || key.crv != "Ed25519" {
                return Err(JwkError::UnsupportedKey { index, kty: key.kty, crv: key.crv });
            }
            let x = URL_SAFE_NO_PAD
                .decode(&key.x)
                .ok()
                .and_then(|bytes| <[u8; PUBLIC_KEY_LEN]>::try_from(bytes).ok())
                .ok_or(JwkError::BadPublicKey { index })?;
            let kid = match key.kid {
                Some(kid) => kid.parse()?,
                None => Kid::thumbprint(&x),
            };
            set.insert(PublicJwk::with_kid(x, kid))?;
        }
        Ok(set)
    }

    /// The set as JSON, `{"keys":[…]}`; `{:#}` formats it indented.
    pub fn to_json(&self) -> Value {
        json!({ "keys": self.keys.iter().map(PublicJwk::to_json).collect::<Vec<_>>() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8037 appendix A.2's public key.
    const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    fn rfc8037_public_key() -> [u8; 32] {
        URL_SAFE_NO_PAD.decode(RFC8037_X).unwrap().try_into().unwrap()
    }

    #[test]
    fn thumbprint_is_rfc8037_a3() {
        assert_eq!(Kid::thumbprint(&rfc8037_public_key()).as_str(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }

    #[test]
    fn jwk_is_rfc8037_shaped_and_round_trips() {
        let key = PublicJwk::new(rfc8037_public_key());
        let json = key.to_json();
        assert_eq!(json["kty"], "OKP");
        assert_eq!(json["crv"], "Ed25519");
        assert_eq!(json["x"], RFC8037_X);
        assert_eq!(json["kid"], "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
        let mut set = Jwks::new();
        set.insert(key.clone()).unwrap();
        assert_eq!(Jwks::from_json(&set.to_json().to_string()).unwrap(), set);
    }

    #[test]
    fn a_key_without_kid_is_named_by_its_thumbprint() {
        let set =
            Jwks::from_json(&format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{RFC8037_X}"}}]}}"#)).unwrap();
        assert!(set.find("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k").is_some());
    }

    #[test]
    fn bad_sets_are_refused() {
        let check = |text: &str, expected: JwkError| assert_eq!(Jwks::from_json(text), Err(expected));
        let ec = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"AA"}]}"#;
        check(ec, JwkError::UnsupportedKey { index: 0, kty: "EC".into(), crv: "P-256".into() });
        let short = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]}"#;
        check(short, JwkError::BadPublicKey { index: 0 });
        let padded = format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{RFC8037_X}="}}]}}"#);
        check(&padded, JwkError::BadPublicKey { index: 0 });
        let bad_kid = format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{RFC8037_X}","kid":"a b"}}]}}"#);
        check(&bad_kid, JwkError::BadKid { kid: "a b".into() });
        let other = URL_SAFE_NO_PAD.encode([7u8; 32]);
        let twice = format!(
            r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{RFC8037_X}","kid":"k"}},
                {{"kty":"OKP","crv":"Ed25519","x":"{other}","kid":"k"}}]}}"#
        );
        check(&twice, JwkError::DuplicateKid { kid: "k".into() });
        assert!(matches!(Jwks::from_json("[]"), Err(JwkError::NotJwkSet(_))));
    }

    #[test]
    fn kid_charset() {
        assert!("test-key-ed25519".parse::<Kid>().is_ok());
        assert!("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k".parse::<Kid>().is_ok());
        for bad in ["", "a\"b", "a\\b", "ä", &"k".repeat(129)] {
            assert!(bad.parse::<Kid>().is_err(), "{bad:?}");
        }
    }
}
