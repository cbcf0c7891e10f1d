//! What the appliance signs, and how anyone checks it: one Ed25519 key (ring) signs
//! outbound requests to IO (RFC 9421), receipts for local clients (compact JWS) and the
//! audit trail's checkpoints; its public keys, retired ones included, form a JWK Set.

pub mod http_signature;
pub mod jwk;
pub mod key;

pub use jwk::{JwkError, Jwks, Kid, PublicJwk};
pub use key::{KeyError, KeyRing, SigningKey};
