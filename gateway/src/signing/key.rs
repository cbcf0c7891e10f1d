//! The appliance signing key: one Ed25519 key (ring, PKCS#8 v2) in a 0600 file, and the
//! public half of every key the appliance ever had in a JWK Set beside it, so that a
//! rotation never orphans an old signature.
//!
//! The key directory holds:
//! - [`KEY_FILE`], the current private key as a PKCS#8 v2 (RFC 5958, with the public key)
//!   `PRIVATE KEY` PEM, mode 0600; OpenSSL 3.0 does not read v2 Ed25519 keys, and nothing
//!   outside the gateway needs to. It is written under a temporary name opened with
//!   `O_CREAT|O_EXCL` and mode 0600, so no byte of it ever exists with a wider mode, synced,
//!   then linked into place (generate: never over an existing key) or renamed over the old
//!   key (rotate). [`KeyRing::load`] refuses a key file that group or others may read.
//! - [`PUBLIC_KEYS_FILE`], a JWK Set (RFC 7517) of every public key, current and retired,
//!   each named by its RFC 7638 thumbprint; replaced atomically (temporary file, rename).
//!
//! Rotation lists the new public key before the new private key replaces the old one, so
//! a crash in between leaves at worst an unused public key listed. A running process keeps
//! signing with the key it loaded until it loads again; what it signs still verifies,
//! because retired public keys stay listed.

use super::jwk::{JwkError, Jwks, Kid, PublicJwk, PUBLIC_KEY_LEN, SIGNATURE_LEN};
use crate::secret_file::{self, SecretFileError};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use std::fmt;
use std::fs;
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};

/// The current private key, in the key directory.
pub const KEY_FILE: &str = "signing-key.pem";
/// Every public key, current and retired, in the key directory.
pub const PUBLIC_KEYS_FILE: &str = "public-keys.json";

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("a signing key already exists at {}; rotate it instead", path.display())]
    AlreadyExists { path: PathBuf },
    #[error("no signing key at {}; generate one first", path.display())]
    Missing { path: PathBuf },
    #[error("reading {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("writing {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error(transparent)]
    File(SecretFileError),
    #[error("{} is not an Ed25519 private key (PKCS#8 v2 in a PEM \"PRIVATE KEY\" block)", path.display())]
    NotAKey { path: PathBuf },
    #[error("{}: {source}", path.display())]
    PublicKeys { path: PathBuf, source: JwkError },
    #[error("the current key {kid} is not listed in {}", path.display())]
    CurrentKeyNotListed { kid: Kid, path: PathBuf },
    #[error("the system's random source failed")]
    Random,
}

impl From<SecretFileError> for KeyError {
    fn from(error: SecretFileError) -> KeyError {
        match error {
            SecretFileError::Missing { path } => KeyError::Missing { path },
            other => KeyError::File(other),
        }
    }
}

/// An Ed25519 private key and its public JWK. Signing never fails.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    public: PublicJwk,
}

impl SigningKey {
    /// A fresh key that lives only in memory (the demo, the sandbox, tests).
    pub fn generate_ephemeral() -> Result<SigningKey, KeyError> {
        let (key, _pkcs8) = new_key()?;
        Ok(key)
    }

    pub fn kid(&self) -> &Kid {
        self.public.kid()
    }

    pub fn public_jwk(&self) -> &PublicJwk {
        &self.public
    }

    /// The Ed25519 signature of `message` (deterministic, RFC 8032).
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        let mut signature = [0u8; SIGNATURE_LEN];
        signature.copy_from_slice(self.pair.sign(message).as_ref());
        signature
    }

    /// Parses a PKCS#8 v2 document (ring checks that the public key matches the private).
    fn from_pkcs8(der: &[u8]) -> Option<SigningKey> {
        let pair = Ed25519KeyPair::from_pkcs8(der).ok()?;
        let x = <[u8; PUBLIC_KEY_LEN]>::try_from(pair.public_key().as_ref()).ok()?;
        Some(SigningKey { pair, public: PublicJwk::new(x) })
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("kid", self.kid()).finish_non_exhaustive()
    }
}

/// The key directory, loaded: the current signing key and every public key.
#[derive(Debug)]
pub struct KeyRing {
    dir: PathBuf,
    current: SigningKey,
    public_keys: Jwks,
}

impl KeyRing {
    /// Creates the first key in `dir` (made 0700 if missing). Refuses if a key is already
    /// there. Public keys already listed (a lost key's) are kept.
    pub fn generate(dir: &Path) -> Result<KeyRing, KeyError> {
        secret_file::create_dir(dir)?;
        let key_path = dir.join(KEY_FILE);
        if fs::symlink_metadata(&key_path).is_ok() {
            return Err(KeyError::AlreadyExists { path: key_path });
        }
        let mut public_keys = match read_public_keys(dir) {
            Err(KeyError::Read { source, .. }) if source.kind() == ErrorKind::NotFound => Jwks::new(),
            other => other?,
        };
        let (current, pkcs8) = new_key()?;
        list_key(dir, &mut public_keys, &current)?;
        if !secret_file::create_private(&key_path, to_pem(&pkcs8).as_bytes())? {
            return Err(KeyError::AlreadyExists { path: key_path });
        }
        Ok(KeyRing { dir: dir.to_path_buf(), current, public_keys })
    }

    /// Replaces the current key with a new one; the retired public key stays listed.
    /// Returns the new ring and the retired key's id (for the audit trail).
    pub fn rotate(dir: &Path) -> Result<(KeyRing, Kid), KeyError> {
        let KeyRing { current: retired, mut public_keys, .. } = KeyRing::load(dir)?;
        let (current, pkcs8) = new_key()?;
        list_key(dir, &mut public_keys, &current)?;
        let key_path = dir.join(KEY_FILE);
        let tmp = secret_file::write_temp(&key_path, to_pem(&pkcs8).as_bytes(), 0o600)?;
        fs::rename(&tmp, &key_path).map_err(|source| KeyError::Write { path: key_path, source })?;
        secret_file::sync_dir(dir)?;
        Ok((KeyRing { dir: dir.to_path_buf(), current, public_keys }, retired.kid().clone()))
    }

    /// Reads the key directory. The key file must be a regular file that only its owner
    /// may read, and its key must be listed among the public keys.
    pub fn load(dir: &Path) -> Result<KeyRing, KeyError> {
        let key_path = dir.join(KEY_FILE);
        let pem = secret_file::read_private(&key_path)?;
        let current = from_pem(&pem)
            .and_then(|der| SigningKey::from_pkcs8(&der))
            .ok_or_else(|| KeyError::NotAKey { path: key_path.clone() })?;
        let public_keys = read_public_keys(dir)?;
        match public_keys.find(current.kid().as_str()) {
            Some(listed) if listed == current.public_jwk() => {}
            _ => {
                return Err(KeyError::CurrentKeyNotListed {
                    kid: current.kid().clone(),
                    path: dir.join(PUBLIC_KEYS_FILE),
                })
            }
        }
        Ok(KeyRing { dir: dir.to_path_buf(), current, public_keys })
    }

    /// The key that signs now.
    pub fn current(&self) -> &SigningKey {
        &self.current
    }

    /// The key that signs now, without the rest of the ring.
    pub fn into_current(self) -> SigningKey {
        self.current
    }

    /// Every public key, retired ones included: what a verifier needs.
    pub fn public_jwks(&self) -> &Jwks {
        &self.public_keys
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn new_key() -> Result<(SigningKey, Vec<u8>), KeyError> {
    let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| KeyError::Random)?;
    let der = document.as_ref().to_vec();
    let key = SigningKey::from_pkcs8(&der).ok_or(KeyError::Random)?;
    Ok((key, der))
}

/// Adds `key` to `public_keys` and writes the set, before the private key is installed.
fn list_key(dir: &Path, public_keys: &mut Jwks, key: &SigningKey) -> Result<(), KeyError> {
    let path = dir.join(PUBLIC_KEYS_FILE);
    public_keys
        .insert(key.public_jwk().clone())
        .map_err(|source| KeyError::PublicKeys { path: path.clone(), source })?;
    let text = format!("{:#}\n", public_keys.to_json());
    let tmp = secret_file::write_temp(&path, text.as_bytes(), 0o644)?;
    fs::rename(&tmp, &path).map_err(|source| KeyError::Write { path, source })?;
    Ok(secret_file::sync_dir(dir)?)
}

fn read_public_keys(dir: &Path) -> Result<Jwks, KeyError> {
    let path = dir.join(PUBLIC_KEYS_FILE);
    let text = fs::read_to_string(&path).map_err(|source| KeyError::Read { path: path.clone(), source })?;
    Jwks::from_json(&text).map_err(|source| KeyError::PublicKeys { path, source })
}

fn to_pem(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut pem = format!("{PEM_BEGIN}\n");
    let mut rest = body.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(64));
        pem.push_str(line);
        pem.push('\n');
        rest = tail;
    }
    pem.push_str(PEM_END);
    pem.push('\n');
    pem
}

fn from_pem(text: &str) -> Option<Vec<u8>> {
    let body = text.trim().strip_prefix(PEM_BEGIN)?.strip_suffix(PEM_END)?;
    STANDARD.decode(body.split_whitespace().collect::<String>()).ok()
}

#[cfg(test)]
impl SigningKey {
    /// A key from a published seed (RFC 8037, RFC 9421 test vectors), named by `kid`, or
    /// by its thumbprint without one.
    pub(crate) fn from_seed(seed: &[u8; 32], kid: Option<&str>) -> SigningKey {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed).unwrap();
        let x: [u8; 32] = pair.public_key().as_ref().try_into().unwrap();
        let public = match kid {
            Some(kid) => PublicJwk::with_kid(x, kid.parse().unwrap()),
            None => PublicJwk::new(x),
        };
        SigningKey { pair, public }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn rfc8037_a4_signature_is_reproduced_and_verifies() {
        // RFC 8037 A.1's key (d, x) and A.4's signature over the JWS signing input.
        let seed: [u8; 32] =
            URL_SAFE_NO_PAD.decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A").unwrap().try_into().unwrap();
        let key = SigningKey::from_seed(&seed, None);
        let x = URL_SAFE_NO_PAD.encode(key.public_jwk().public_key());
        assert_eq!(x, "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
        assert_eq!(key.kid().as_str(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
        let input = b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
        let expected = "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
        let signature = key.sign(input);
        assert_eq!(URL_SAFE_NO_PAD.encode(signature), expected);
        assert!(key.public_jwk().verifies(input, &signature));
        assert!(!key.public_jwk().verifies(b"eyJhbGciOiJFZERTQSJ9.x", &signature));
    }

    #[test]
    fn generate_writes_a_0600_key_and_lists_it() {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::generate(dir.path()).unwrap();
        assert_eq!(mode(&dir.path().join(KEY_FILE)), 0o600);
        assert!(!dir.path().join("signing-key.tmp").exists());
        assert_eq!(ring.public_jwks().keys(), [ring.current().public_jwk().clone()]);
        let loaded = KeyRing::load(dir.path()).unwrap();
        assert_eq!(loaded.current().kid(), ring.current().kid());
        assert_eq!(loaded.public_jwks(), ring.public_jwks());
        let pem = fs::read_to_string(dir.path().join(KEY_FILE)).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n") && pem.ends_with("-----END PRIVATE KEY-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64));
    }

    #[test]
    fn generate_refuses_to_replace_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let first = KeyRing::generate(dir.path()).unwrap();
        assert!(matches!(KeyRing::generate(dir.path()), Err(KeyError::AlreadyExists { .. })));
        assert_eq!(KeyRing::load(dir.path()).unwrap().current().kid(), first.current().kid());
    }

    #[test]
    fn rotation_keeps_old_signatures_verifiable() {
        let dir = tempfile::tempdir().unwrap();
        let first = KeyRing::generate(dir.path()).unwrap();
        let old_signature = first.current().sign(b"accepted");
        let (second, retired) = KeyRing::rotate(dir.path()).unwrap();
        assert_eq!(&retired, first.current().kid());
        assert_ne!(second.current().kid(), first.current().kid());
        let loaded = KeyRing::load(dir.path()).unwrap();
        assert_eq!(loaded.current().kid(), second.current().kid());
        assert_eq!(loaded.public_jwks().keys().len(), 2);
        let old = loaded.public_jwks().find(retired.as_str()).unwrap();
        assert!(old.verifies(b"accepted", &old_signature));
        assert_eq!(mode(&dir.path().join(KEY_FILE)), 0o600);
    }

    #[test]
    fn generate_after_a_lost_key_keeps_the_listed_public_keys() {
        let dir = tempfile::tempdir().unwrap();
        let lost = KeyRing::generate(dir.path()).unwrap();
        fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
        let fresh = KeyRing::generate(dir.path()).unwrap();
        assert!(fresh.public_jwks().find(lost.current().kid().as_str()).is_some());
        assert_eq!(fresh.public_jwks().keys().len(), 2);
    }

    #[test]
    fn load_refuses_a_key_others_may_read() {
        let dir = tempfile::tempdir().unwrap();
        KeyRing::generate(dir.path()).unwrap();
        let key_path = dir.path().join(KEY_FILE);
        fs::set_permissions(&key_path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = KeyRing::load(dir.path()).unwrap_err();
        assert!(matches!(err, KeyError::File(SecretFileError::ReadableByOthers { mode: 0o640, .. })), "{err:?}");
        assert!(err.to_string().contains("chmod 600"), "{err}");
        fs::set_permissions(&key_path, fs::Permissions::from_mode(0o604)).unwrap();
        assert!(matches!(KeyRing::load(dir.path()), Err(KeyError::File(SecretFileError::ReadableByOthers { .. }))));
    }

    #[test]
    fn load_reports_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(KeyRing::load(dir.path()), Err(KeyError::Missing { .. })));
        KeyRing::generate(dir.path()).unwrap();
        let public_keys = fs::read_to_string(dir.path().join(PUBLIC_KEYS_FILE)).unwrap();

        fs::write(dir.path().join(PUBLIC_KEYS_FILE), r#"{"keys":[]}"#).unwrap();
        assert!(matches!(KeyRing::load(dir.path()), Err(KeyError::CurrentKeyNotListed { .. })));
        fs::write(dir.path().join(PUBLIC_KEYS_FILE), "not json").unwrap();
        assert!(matches!(KeyRing::load(dir.path()), Err(KeyError::PublicKeys { .. })));
        fs::write(dir.path().join(PUBLIC_KEYS_FILE), public_keys).unwrap();

        let key_path = dir.path().join(KEY_FILE);
        fs::write(&key_path, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap();
        assert!(matches!(KeyRing::load(dir.path()), Err(KeyError::NotAKey { .. })));
    }

    #[test]
    fn pem_round_trip() {
        let der: Vec<u8> = (0..=200).collect();
        assert_eq!(from_pem(&to_pem(&der)), Some(der));
        assert_eq!(from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"), None);
    }
}
