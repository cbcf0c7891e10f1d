//! What the appliance signs, and how anyone checks it: one Ed25519 key (ring) signs
//! outbound requests to IO (RFC 9421), receipts for local clients (compact JWS) and the
//! audit trail's checkpoints; its public keys, retired ones included, form a JWK Set.
//!
//! - [`key`]: the [`KeyRing`] on disk (0600 private key, JWK Set of every public key),
//!   generate, rotate, load; [`SigningKey`] signs.
//! - [`jwk`]: [`Kid`] (RFC 7638 thumbprints), [`PublicJwk`] (RFC 8037), [`Jwks`].
//! - [`http_signature`]: `sign` and `verify` for requests to IO.
//! - [`jws`]: compact JWS and the [`jws::Receipt`] of an accepted message.
//!
//! One key signs three kinds of bytes, and no signature of one kind can pass for
//! another: an RFC 9421 signature base starts with `"`, a JWS signing input with `eyJ`
//! (base64url of `{"`), and an audit checkpoint's signed bytes with a length-prefixed
//! domain tag (see `audit::chain`).

pub mod http_signature;
pub mod jwk;
pub mod jws;
pub mod key;

pub use jwk::{JwkError, Jwks, Kid, PublicJwk};
pub use key::{KeyError, KeyRing, SigningKey};

use std::sync::{Arc, RwLock};

/// The key in use, shared by what signs (IO client, receipts) and replaced by a reload
/// after `io-gateway keys rotate`. `None`: signing is off.
#[derive(Default)]
pub struct CurrentKey(RwLock<Option<Arc<SigningKey>>>);

impl CurrentKey {
    pub fn new(key: Option<Arc<SigningKey>>) -> CurrentKey {
        CurrentKey(RwLock::new(key))
    }

    pub fn get(&self) -> Option<Arc<SigningKey>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set(&self, key: Option<Arc<SigningKey>>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = key;
    }
}
