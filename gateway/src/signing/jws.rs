//! Compact JWS (RFC 7515) signed with the appliance key, `alg` EdDSA (RFC 8037) and `kid`
//! in the protected header: the receipts the local API hands its clients, so that a legacy
//! system can prove, without the gateway's help, that the gateway took a message.
//!
//! A token is `BASE64URL(header) . BASE64URL(claims) . BASE64URL(signature)`, where the
//! header is `{"alg":"EdDSA","kid":"<RFC 7638 thumbprint>"}` and the signature is Ed25519
//! over the first two parts joined by the dot. [`verify`] accepts only that: `alg` EdDSA,
//! no `crit`, a `kid` found in the given JWK Set, unpadded base64url, at most
//! [`MAX_TOKEN_LEN`] bytes.
//!
//! # Verifying a receipt offline
//!
//! An auditor needs the token and the appliance's public keys (its `public-keys.json`,
//! a JWK Set; retired keys stay listed, so old receipts keep verifying). With Python 3
//! and the `cryptography` package:
//!
//! ```text
//! import base64, json, sys
//! from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
//!
//! def b64(s): return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
//!
//! token = open(sys.argv[1]).read().strip()           # the receipt
//! keys = json.load(open(sys.argv[2]))["keys"]        # public-keys.json
//! header, claims, signature = token.split(".")
//! assert json.loads(b64(header))["alg"] == "EdDSA"
//! kid = json.loads(b64(header))["kid"]
//! x = next(k["x"] for k in keys if k["kid"] == kid)
//! # raises InvalidSignature if the receipt was altered or not signed by this appliance
//! Ed25519PublicKey.from_public_bytes(b64(x)).verify(b64(signature), f"{header}.{claims}".encode())
//! print(json.dumps(json.loads(b64(claims)), indent=2))
//! ```
//!
//! Then compare the receipt's `payload_sha256` with the body the client posted:
//! `base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=")`.

use super::jwk::{Jwks, Kid, PublicJwk};
use super::key::SigningKey;
use crate::config::ClientName;
use crate::queue::MessageId;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jiff::Timestamp;
use ring::digest::{digest, SHA256};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The JWS `alg` of an Ed25519 signature (RFC 8037 §3.1).
pub const ALG: &str = "EdDSA";
/// The longest token [`verify`] reads.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwsError {
    #[error("the claims cannot be encoded as JSON: {0}")]
    Encode(String),
    #[error("not a compact JWS: {0}")]
    Malformed(&'static str),
    #[error("unsupported alg {0:?}; only EdDSA is accepted")]
    UnsupportedAlg(String),
    #[error("the protected header marks extensions critical, and none is supported")]
    Critical,
    #[error("the protected header has no kid")]
    MissingKid,
    #[error("no public key with kid {0:?}")]
    UnknownKey(String),
    #[error("the signature does not verify")]
    BadSignature,
    #[error("the payload is not the expected claims: {0}")]
    Claims(String),
}

/// What [`verify`] returns: the claims, and the key that signed them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified<T> {
    pub claims: T,
    pub kid: Kid,
}

/// Proof that the gateway accepted a message: signed at the 201, after the commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The gateway's id for the message (a ULID).
    pub message_id: String,
    /// Unpadded base64url of the SHA-256 of the request body the client posted.
    pub payload_sha256: String,
    /// The local client that posted it, by its configured name.
    pub client: String,
    /// When the message was committed, RFC 3339 in UTC.
    pub accepted_at: Timestamp,
    /// Who issued the receipt: the appliance's configured name.
    pub iss: String,
}

impl Receipt {
    pub fn new(
        message_id: &MessageId,
        payload: &[u8],
        client: &ClientName,
        accepted_at: Timestamp,
        iss: &str,
    ) -> Receipt {
        Receipt {
            message_id: message_id.to_string(),
            payload_sha256: Receipt::digest_of(payload),
            client: client.to_string(),
            accepted_at,
            iss: iss.to_string(),
        }
    }

    /// The `payload_sha256` of `payload`.
    pub fn digest_of(payload: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(digest(&SHA256, payload))
    }

    /// Whether this receipt is for exactly `payload`.
    pub fn covers(&self, payload: &[u8]) -> bool {
        self.payload_sha256 == Receipt::digest_of(payload)
    }

    pub fn sign(&self, key: &SigningKey) -> Result<String, JwsError> {
        sign(self, key)
    }

    pub fn verify(token: &str, keys: &Jwks) -> Result<Receipt, JwsError> {
        verify(token, keys).map(|verified| verified.claims)
    }
}

/// Signs `claims` (any JSON-serialisable value) as a compact JWS.
pub fn sign<T: Serialize>(claims: &T, key: &SigningKey) -> Result<String, JwsError> {
    let header = Header { alg: ALG.to_string(), kid: Some(key.kid().to_string()), crit: None };
    let header = serde_json::to_vec(&header).map_err(|e| JwsError::Encode(e.to_string()))?;
    let payload = serde_json::to_vec(claims).map_err(|e| JwsError::Encode(e.to_string()))?;
    Ok(sign_parts(&header, &payload, key))
}

/// Verifies `token` with the key its `kid` names in `keys`, and reads its claims.
pub fn verify<T: DeserializeOwned>(token: &str, keys: &Jwks) -> Result<Verified<T>, JwsError> {
    let parts = Parts::split(token)?;
    let kid = parts.header.kid.as_deref().ok_or(JwsError::MissingKid)?;
    let key = keys.find(kid).ok_or_else(|| JwsError::UnknownKey(kid.to_string()))?;
    let payload = parts.verified_payload(key)?;
    let claims = serde_json::from_slice(&payload).map_err(|e| JwsError::Claims(e.to_string()))?;
    Ok(Verified { claims, kid: key.kid().clone() })
}

/// Verifies `token` with `key`, whatever its header's `kid`, and returns the raw payload.
pub fn verify_with_key(token: &str, key: &PublicJwk) -> Result<Vec<u8>, JwsError> {
    Parts::split(token)?.verified_payload(key)
}

/// The protected header: what we write, and the members we read.
#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    crit: Option<serde_json::Value>,
}

struct Parts<'a> {
    header: Header,
    signing_input: &'a str,
    payload: &'a str,
    signature: Vec<u8>,
}

impl<'a> Parts<'a> {
    fn split(token: &'a str) -> Result<Parts<'a>, JwsError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwsError::Malformed("longer than allowed"));
        }
        let (signing_input, signature) = token.rsplit_once('.').ok_or(JwsError::Malformed("not three parts"))?;
        let (header, payload) = signing_input.split_once('.').ok_or(JwsError::Malformed("not three parts"))?;
        if payload.contains('.') {
            return Err(JwsError::Malformed("not three parts"));
        }
        let header = decode(header, "the header is not base64url")?;
        let header: Header =
            serde_json::from_slice(&header).map_err(|_| JwsError::Malformed("the header is not a JSON object"))?;
        if header.alg != ALG {
            return Err(JwsError::UnsupportedAlg(header.alg));
        }
        if header.crit.is_some() {
            return Err(JwsError::Critical);
        }
        let signature = decode(signature, "the signature is not base64url")?;
        Ok(Parts { header, signing_input, payload, signature })
    }

    fn verified_payload(&self, key: &PublicJwk) -> Result<Vec<u8>, JwsError> {
        if !key.verifies(self.signing_input.as_bytes(), &self.signature) {
            return Err(JwsError::BadSignature);
        }
        decode(self.payload, "the payload is not base64url")
    }
}

fn sign_parts(header: &[u8], payload: &[u8], key: &SigningKey) -> String {
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
    let signature = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn decode(part: &str, problem: &'static str) -> Result<Vec<u8>, JwsError> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| JwsError::Malformed(problem))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, ED25519};

    const RFC8037_D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
    const RFC8037_A4: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

    fn rfc8037_key() -> SigningKey {
        SigningKey::from_seed(&URL_SAFE_NO_PAD.decode(RFC8037_D).unwrap().try_into().unwrap(), None)
    }

    fn appliance() -> (SigningKey, Jwks) {
        let key = SigningKey::from_seed(&[5; 32], None);
        let mut keys = Jwks::new();
        keys.insert(key.public_jwk().clone()).unwrap();
        (key, keys)
    }

    fn receipt() -> Receipt {
        let id: MessageId = "01J0000000000000000000000A".parse().unwrap();
        let client: ClientName = "anagrafe".parse().unwrap();
        let at: Timestamp = "2025-06-15T10:00:00.250Z".parse().unwrap();
        Receipt::new(&id, br#"{"fiscal_code":"AAAAAA00A00A000A"}"#, &client, at, "io-gateway.comune.example")
    }

    #[test]
    fn rfc8037_a4_token_is_reproduced_and_verifies() {
        let key = rfc8037_key();
        assert_eq!(sign_parts(br#"{"alg":"EdDSA"}"#, b"Example of Ed25519 signing", &key), RFC8037_A4);
        assert_eq!(verify_with_key(RFC8037_A4, key.public_jwk()).unwrap(), b"Example of Ed25519 signing");
        // It names no kid, so a key set cannot choose its key.
        let mut keys = Jwks::new();
        keys.insert(key.public_jwk().clone()).unwrap();
        assert_eq!(verify::<serde_json::Value>(RFC8037_A4, &keys), Err(JwsError::MissingKid));
    }

    #[test]
    fn a_receipt_round_trips() {
        let (key, keys) = appliance();
        let token = receipt().sign(&key).unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header, serde_json::json!({"alg": "EdDSA", "kid": key.kid().as_str()}));
        let verified = verify::<Receipt>(&token, &keys).unwrap();
        assert_eq!(verified.claims, receipt());
        assert_eq!(&verified.kid, key.kid());
        assert!(verified.claims.covers(br#"{"fiscal_code":"AAAAAA00A00A000A"}"#));
        assert!(!verified.claims.covers(br#"{"fiscal_code":"BBBBBB00B00B000B"}"#));
    }

    #[test]
    fn receipt_claims_are_plain_json() {
        let claims = serde_json::to_value(receipt()).unwrap();
        assert_eq!(
            claims,
            serde_json::json!({
                "message_id": "01J0000000000000000000000A",
                "payload_sha256": Receipt::digest_of(br#"{"fiscal_code":"AAAAAA00A00A000A"}"#),
                "client": "anagrafe",
                "accepted_at": "2025-06-15T10:00:00.25Z",
                "iss": "io-gateway.comune.example",
            })
        );
        assert_eq!(Receipt::digest_of(b""), "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU");
    }

    /// The offline recipe in the module docs, done with nothing of this module: split the
    /// token, take `x` from the published JWK Set's JSON, verify with ring directly.
    #[test]
    fn a_receipt_verifies_by_an_independent_path() {
        let (key, keys) = appliance();
        let token = receipt().sign(&key).unwrap();
        let published: serde_json::Value = serde_json::from_str(&keys.to_json().to_string()).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        let jwk = published["keys"].as_array().unwrap().iter().find(|k| k["kid"] == header["kid"]).unwrap();
        let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let signing_input = format!("{}.{}", parts[0], parts[1]);
        UnparsedPublicKey::new(&ED25519, &x).verify(signing_input.as_bytes(), &signature).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["message_id"], "01J0000000000000000000000A");
    }

    #[test]
    fn generic_claims_round_trip() {
        let (key, keys) = appliance();
        let claims = serde_json::json!({"anything": [1, 2, 3]});
        assert_eq!(verify::<serde_json::Value>(&sign(&claims, &key).unwrap(), &keys).unwrap().claims, claims);
    }

    #[test]
    fn tampered_and_foreign_tokens_are_refused() {
        let (key, keys) = appliance();
        let token = receipt().sign(&key).unwrap();
        let parts: Vec<&str> = token.split('.').collect();

        let mut forged = receipt();
        forged.client = "tributi".into();
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let swapped = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
        assert_eq!(Receipt::verify(&swapped, &keys), Err(JwsError::BadSignature));

        let other = SigningKey::from_seed(&[6; 32], None);
        assert!(matches!(Receipt::verify(&receipt().sign(&other).unwrap(), &keys), Err(JwsError::UnknownKey(_))));

        let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#), parts[1]);
        assert_eq!(Receipt::verify(&none, &keys), Err(JwsError::UnsupportedAlg("none".into())));
        let crit = format!(r#"{{"alg":"EdDSA","kid":"{}","crit":["exp"]}}"#, key.kid());
        let crit = sign_parts(crit.as_bytes(), parts[1].as_bytes(), &key);
        assert_eq!(Receipt::verify(&crit, &keys), Err(JwsError::Critical));

        let check =
            |token: &str| assert!(matches!(Receipt::verify(token, &keys), Err(JwsError::Malformed(_))), "{token}");
        check(&format!("{token}.x"));
        check(&format!("{}.{}", parts[0], parts[1]));
        check(&format!("{}=.{}.{}", parts[0], parts[1], parts[2]));
        check(&"a".repeat(MAX_TOKEN_LEN + 1));
        check("");

        let not_a_receipt = sign(&serde_json::json!({"hello": "world"}), &key).unwrap();
        assert!(matches!(Receipt::verify(&not_a_receipt, &keys), Err(JwsError::Claims(_))));
    }
}
