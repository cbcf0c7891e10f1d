//! RFC 9421 HTTP Message Signatures in the narrow profile io-gateway puts on its requests
//! to IO: Ed25519, one signature labelled `sig1` covering `@method` and `@target-uri` and,
//! when there is a body, `content-digest` (RFC 9530, SHA-256) and `content-type`, with the
//! parameters `created`, `keyid` and `alg="ed25519"`.
//!
//! Signing (the IO client), on every attempt so that `created` is fresh:
//!
//! ```text
//! http_signature::sign(&method, &uri, &mut headers, &body, ring.current(), Timestamp::now())?;
//! ```
//!
//! sets `Content-Digest` (with a body), `Signature-Input` and `Signature`, replacing any
//! left from an earlier attempt. `uri` must be absolute: it is what `@target-uri` covers.
//!
//! Verifying (the sandbox): rebuild the absolute URI the client addressed (scheme, `Host`,
//! path and query), then call [`verify`] with the appliance's JWK Set. In order, it checks
//! that `Signature-Input` and `Signature` parse as RFC 8941 dictionaries with a `sig1`
//! member of the right shape; that the signature covers this profile's components and has
//! `created` and `keyid`; that `Content-Digest`, when covered, has a `sha-256` member equal
//! to the body's digest; that `keyid` names a known key; that the Ed25519 signature holds
//! over the signature base (RFC 9421 §2.5) rebuilt from the received request; and that
//! `created` is at most [`CLOCK_SKEW`] ahead, at most `max_age` old, and before `expires`.
//!
//! A verifier resolves `@method`, `@target-uri`, `@authority`, `@scheme`, `@path`, `@query`
//! and header fields (each line trimmed, repeated lines joined by `, `); component
//! parameters (`;sf`, `;key`, `;bs`, `;req`, `;tr`) are refused. Structured fields are
//! parsed and serialised by `sfv` as RFC 8941 (no dates or display strings), so the
//! `@signature-params` line is the canonical serialisation of what was received.

use super::jwk::{Jwks, Kid};
use super::key::SigningKey;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use http::{Method, Uri};
use jiff::Timestamp;
use ring::digest::{digest, SHA256};
use sfv::{BareItem, Dictionary, FieldType, InnerList, Item, Key, ListEntry, Parameters, Parser, Version};
use std::time::Duration;

/// The label of io-gateway's signature in `Signature-Input` and `Signature`.
pub const LABEL: &str = "sig1";
/// The `alg` parameter io-gateway sends (RFC 9421 §3.3.6).
pub const ALGORITHM: &str = "ed25519";
pub const SIGNATURE_INPUT: HeaderName = HeaderName::from_static("signature-input");
pub const SIGNATURE: HeaderName = HeaderName::from_static("signature");
pub const CONTENT_DIGEST: HeaderName = HeaderName::from_static("content-digest");
/// How far in the future a `created` time may be, for the signer's clock running ahead.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// A received request, as the verifier sees it. `target_uri` is absolute.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a Method,
    pub target_uri: &'a Uri,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions {
    /// The verifier's clock.
    pub now: Timestamp,
    /// Refuse signatures whose `created` is older than this.
    pub max_age: Option<Duration>,
}

/// What a verified signature says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub kid: Kid,
    pub created: Timestamp,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    #[error("the target URI {uri} is not absolute; @target-uri needs its scheme and authority")]
    RelativeTargetUri { uri: String },
    #[error("a request with a body needs a Content-Type to be signed")]
    MissingContentType,
    #[error(transparent)]
    Component(#[from] ComponentError),
    #[error("cannot serialise the signature: {0}")]
    Serialise(String),
}

/// A covered component that the request cannot supply.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ComponentError {
    #[error("the request has no {name} header")]
    MissingField { name: String },
    #[error("the {name} header is not visible ASCII")]
    FieldNotText { name: String },
    #[error("the target URI {uri} has no {part}")]
    MissingUriPart { uri: String, part: &'static str },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("no {name} header")]
    MissingHeader { name: &'static str },
    #[error("malformed {header}: {reason}")]
    Malformed { header: &'static str, reason: String },
    #[error("no signature labelled {label}")]
    NoSignature { label: String },
    #[error("component {component} is not supported")]
    UnsupportedComponent { component: String },
    #[error("component {component} is listed twice")]
    DuplicateComponent { component: String },
    #[error("the signature does not cover {component}")]
    NotCovered { component: &'static str },
    #[error("the signature parameters lack {name}")]
    MissingParameter { name: &'static str },
    #[error("the signature parameter {name} has the wrong type or range")]
    BadParameter { name: &'static str },
    #[error("algorithm {alg} is not accepted; only \"ed25519\" is")]
    UnsupportedAlgorithm { alg: String },
    #[error("Content-Digest has no sha-256 member")]
    NoSha256Digest,
    #[error("Content-Digest does not match the body")]
    DigestMismatch,
    #[error("no public key with id {keyid:?}")]
    UnknownKey { keyid: String },
    #[error(transparent)]
    Component(#[from] ComponentError),
    #[error("the signature does not verify")]
    BadSignature,
    #[error("the signature was created {age_s} s ago, more than the {max_s} s allowed")]
    Stale { age_s: i64, max_s: u64 },
    #[error("the signature's created time is {ahead_s} s in the future")]
    CreatedInFuture { ahead_s: i64 },
    #[error("the signature expired")]
    Expired,
}

/// The RFC 9530 `Content-Digest` value of `body`: `sha-256=:<base64 of SHA-256>:`.
pub fn content_digest(body: &[u8]) -> String {
    format!("sha-256=:{}:", STANDARD.encode(digest(&SHA256, body)))
}

/// Signs a request in this profile: sets `Content-Digest` (when `body` is not empty),
/// `Signature-Input` and `Signature` in `headers`, replacing earlier values.
pub fn sign(
    method: &Method,
    target_uri: &Uri,
    headers: &mut HeaderMap,
    body: &[u8],
    key: &SigningKey,
    created: Timestamp,
) -> Result<(), SignError> {
    if target_uri.scheme().is_none() || target_uri.authority().is_none() {
        return Err(SignError::RelativeTargetUri { uri: target_uri.to_string() });
    }
    let mut components = vec![Component::Method, Component::TargetUri];
    headers.remove(CONTENT_DIGEST);
    if !body.is_empty() {
        if !headers.contains_key(CONTENT_TYPE) {
            return Err(SignError::MissingContentType);
        }
        headers.insert(CONTENT_DIGEST, header_value(content_digest(body))?);
        components.extend([Component::Field(CONTENT_DIGEST), Component::Field(CONTENT_TYPE)]);
    }
    let params = signature_params(&components, created.as_second(), key.kid(), Some(ALGORITHM))?;
    let request = Request { method, target_uri, headers, body };
    let (input, signature) = sign_components(&request, &components, params, LABEL, key)?;
    headers.insert(SIGNATURE_INPUT, header_value(input)?);
    headers.insert(SIGNATURE, header_value(signature)?);
    Ok(())
}

/// Verifies the `sig1` signature of a received request in this profile.
pub fn verify(request: &Request<'_>, keys: &Jwks, options: &VerifyOptions) -> Result<Verified, VerifyError> {
    verify_label(request, keys, options, LABEL, &IO_GATEWAY)
}

/// What a profile requires a signature to cover.
struct Coverage {
    components: &'static [&'static str],
    /// `content-digest` too, whenever the body is not empty.
    digest_with_body: bool,
}

const IO_GATEWAY: Coverage = Coverage { components: &["@method", "@target-uri"], digest_with_body: true };

/// A message component this module can resolve (RFC 9421 §2.1, §2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Component {
    Method,
    TargetUri,
    Authority,
    Scheme,
    Path,
    Query,
    Field(HeaderName),
}

impl Component {
    fn from_identifier(name: &str) -> Result<Component, VerifyError> {
        let unsupported = || VerifyError::UnsupportedComponent { component: format!("{name:?}") };
        Ok(match name {
            "@method" => Component::Method,
            "@target-uri" => Component::TargetUri,
            "@authority" => Component::Authority,
            "@scheme" => Component::Scheme,
            "@path" => Component::Path,
            "@query" => Component::Query,
            _ if name.starts_with('@') || name.bytes().any(|b| b.is_ascii_uppercase()) => return Err(unsupported()),
            _ => Component::Field(HeaderName::from_bytes(name.as_bytes()).map_err(|_| unsupported())?),
        })
    }

    fn identifier(&self) -> &str {
        match self {
            Component::Method => "@method",
            Component::TargetUri => "@target-uri",
            Component::Authority => "@authority",
            Component::Scheme => "@scheme",
            Component::Path => "@path",
            Component::Query => "@query",
            Component::Field(name) => name.as_str(),
        }
    }

    fn value(&self, request: &Request<'_>) -> Result<String, ComponentError> {
        let uri = request.target_uri;
        let missing = |part| ComponentError::MissingUriPart { uri: uri.to_string(), part };
        let scheme = || uri.scheme_str().map(str::to_ascii_lowercase).ok_or_else(|| missing("scheme"));
        Ok(match self {
            Component::Method => request.method.as_str().to_string(),
            Component::TargetUri => {
                scheme()?;
                uri.authority().ok_or_else(|| missing("authority"))?;
                uri.to_string()
            }
            Component::Authority => {
                let authority = uri.authority().ok_or_else(|| missing("authority"))?;
                let host = authority.host().to_ascii_lowercase();
                let default_port = match scheme()?.as_str() {
                    "https" => Some(443),
                    "http" => Some(80),
                    _ => None,
                };
                match authority.port_u16() {
                    Some(port) if Some(port) != default_port => format!("{host}:{port}"),
                    _ => host,
                }
            }
            Component::Scheme => scheme()?,
            Component::Path => match uri.path() {
                "" => "/".to_string(),
                path => path.to_string(),
            },
            Component::Query => format!("?{}", uri.query().unwrap_or("")),
            Component::Field(name) => field_value(request.headers, name)?,
        })
    }
}

/// A header field's component value: every line trimmed, joined by `, ` (RFC 9421 §2.1).
fn field_value(headers: &HeaderMap, name: &HeaderName) -> Result<String, ComponentError> {
    let mut values = Vec::new();
    for value in headers.get_all(name) {
        let text = value.to_str().map_err(|_| ComponentError::FieldNotText { name: name.to_string() })?;
        values.push(text.trim());
    }
    if values.is_empty() {
        return Err(ComponentError::MissingField { name: name.to_string() });
    }
    Ok(values.join(", "))
}

/// The signature base (RFC 9421 §2.5): one `"identifier": value` line per component, then
/// the `@signature-params` line, with no newline at the end.
fn signature_base(components: &[Component], request: &Request<'_>, params: &str) -> Result<String, ComponentError> {
    let mut base = String::new();
    for component in components {
        base.push('"');
        base.push_str(component.identifier());
        base.push_str("\": ");
        base.push_str(&component.value(request)?);
        base.push('\n');
    }
    base.push_str("\"@signature-params\": ");
    base.push_str(params);
    Ok(base)
}

/// The covered components and parameters, as the inner list of `Signature-Input`.
fn signature_params(
    components: &[Component],
    created: i64,
    keyid: &Kid,
    alg: Option<&str>,
) -> Result<InnerList, SignError> {
    let serialise = |e: sfv::Error| SignError::Serialise(e.to_string());
    let string = |s: &str| sfv::String::from_string(s.to_string()).map_err(|(e, _)| serialise(e));
    let items = components
        .iter()
        .map(|c| string(c.identifier()).map(|name| Item::new(BareItem::String(name))))
        .collect::<Result<Vec<_>, _>>()?;
    let mut params = Parameters::new();
    params.insert(key("created"), BareItem::Integer(sfv::Integer::try_from(created).map_err(serialise)?));
    params.insert(key("keyid"), BareItem::String(string(keyid.as_str())?));
    if let Some(alg) = alg {
        params.insert(key("alg"), BareItem::String(string(alg)?));
    }
    Ok(InnerList::with_params(items, params))
}

/// Signs `components` of `request` under `label`: the `Signature-Input` and `Signature`
/// header values.
fn sign_components(
    request: &Request<'_>,
    components: &[Component],
    params: InnerList,
    label: &str,
    key: &SigningKey,
) -> Result<(String, String), SignError> {
    let params_line = serialise_inner_list(&params).ok_or_else(|| SignError::Serialise("empty".into()))?;
    let signature = key.sign(signature_base(components, request, &params_line)?.as_bytes());
    let label = Key::from_string(label.to_string()).map_err(|(e, _)| SignError::Serialise(e.to_string()))?;
    let input = Dictionary::from([(label.clone(), ListEntry::InnerList(params))]);
    let value = Dictionary::from([(label, ListEntry::Item(Item::new(BareItem::ByteSequence(signature.to_vec()))))]);
    match (input.serialize(), value.serialize()) {
        (Some(input), Some(value)) => Ok((input, value)),
        _ => Err(SignError::Serialise("empty dictionary".into())),
    }
}

fn verify_label(
    request: &Request<'_>,
    keys: &Jwks,
    options: &VerifyOptions,
    label: &str,
    required: &Coverage,
) -> Result<Verified, VerifyError> {
    let inputs = dictionary(request.headers, &SIGNATURE_INPUT, "Signature-Input")?;
    let signatures = dictionary(request.headers, &SIGNATURE, "Signature")?;
    let no_signature = || VerifyError::NoSignature { label: label.to_string() };
    let input = match inputs.get(label).ok_or_else(no_signature)? {
        ListEntry::InnerList(input) => input,
        ListEntry::Item(_) => return Err(malformed("Signature-Input", "the member is not an inner list")),
    };
    let signature = match signatures.get(label).ok_or_else(no_signature)? {
        ListEntry::Item(Item { bare_item: BareItem::ByteSequence(bytes), .. }) => bytes,
        _ => return Err(malformed("Signature", "the member is not a byte sequence")),
    };
    let components = covered_components(input)?;
    let covers = |name: &str| components.iter().any(|c| c.identifier() == name);
    for &name in required.components {
        if !covers(name) {
            return Err(VerifyError::NotCovered { component: name });
        }
    }
    if required.digest_with_body && !request.body.is_empty() && !covers("content-digest") {
        return Err(VerifyError::NotCovered { component: "content-digest" });
    }
    let created = integer_param(&input.params, "created")?.ok_or(VerifyError::MissingParameter { name: "created" })?;
    let expires = integer_param(&input.params, "expires")?;
    let keyid = match input.params.get("keyid") {
        Some(BareItem::String(keyid)) => keyid.as_str(),
        Some(_) => return Err(VerifyError::BadParameter { name: "keyid" }),
        None => return Err(VerifyError::MissingParameter { name: "keyid" }),
    };
    match input.params.get("alg") {
        None => {}
        Some(BareItem::String(alg)) if alg.as_str() == ALGORITHM => {}
        Some(alg) => return Err(VerifyError::UnsupportedAlgorithm { alg: Item::new(alg.clone()).serialize() }),
    }
    if covers("content-digest") {
        check_digest(request)?;
    }
    let key = keys.find(keyid).ok_or_else(|| VerifyError::UnknownKey { keyid: keyid.to_string() })?;
    let params_line = serialise_inner_list(input).ok_or_else(|| malformed("Signature-Input", "empty"))?;
    let base = signature_base(&components, request, &params_line)?;
    if !key.verifies(base.as_bytes(), signature) {
        return Err(VerifyError::BadSignature);
    }
    check_times(options, created, expires)?;
    let created = Timestamp::from_second(created).map_err(|_| VerifyError::BadParameter { name: "created" })?;
    Ok(Verified { kid: key.kid().clone(), created })
}

fn covered_components(input: &InnerList) -> Result<Vec<Component>, VerifyError> {
    let mut components: Vec<Component> = Vec::new();
    for item in &input.items {
        let BareItem::String(name) = &item.bare_item else {
            return Err(malformed("Signature-Input", "a component identifier is not a string"));
        };
        if !item.params.is_empty() {
            return Err(VerifyError::UnsupportedComponent { component: item.serialize() });
        }
        let component = Component::from_identifier(name.as_str())?;
        if components.contains(&component) {
            return Err(VerifyError::DuplicateComponent { component: component.identifier().to_string() });
        }
        components.push(component);
    }
    Ok(components)
}

fn integer_param(params: &Parameters, name: &'static str) -> Result<Option<i64>, VerifyError> {
    match params.get(name) {
        None => Ok(None),
        Some(BareItem::Integer(value)) => Ok(Some(i64::from(*value))),
        Some(_) => Err(VerifyError::BadParameter { name }),
    }
}

fn check_digest(request: &Request<'_>) -> Result<(), VerifyError> {
    let digests = dictionary(request.headers, &CONTENT_DIGEST, "Content-Digest")?;
    match digests.get("sha-256") {
        Some(ListEntry::Item(Item { bare_item: BareItem::ByteSequence(claimed), .. })) => {
            if claimed.as_slice() == digest(&SHA256, request.body).as_ref() {
                Ok(())
            } else {
                Err(VerifyError::DigestMismatch)
            }
        }
        Some(_) => Err(malformed("Content-Digest", "sha-256 is not a byte sequence")),
        None => Err(VerifyError::NoSha256Digest),
    }
}

fn check_times(options: &VerifyOptions, created: i64, expires: Option<i64>) -> Result<(), VerifyError> {
    let now = options.now.as_second();
    let skew = i64::try_from(CLOCK_SKEW.as_secs()).unwrap_or(i64::MAX);
    if created.saturating_sub(now) > skew {
        return Err(VerifyError::CreatedInFuture { ahead_s: created.saturating_sub(now) });
    }
    if let Some(max_age) = options.max_age {
        let age_s = now.saturating_sub(created);
        if age_s > i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX) {
            return Err(VerifyError::Stale { age_s, max_s: max_age.as_secs() });
        }
    }
    match expires {
        Some(expires) if now > expires => Err(VerifyError::Expired),
        _ => Ok(()),
    }
}

/// Parses every line of a dictionary-valued header, joined as RFC 9110 §5.3 allows.
fn dictionary(headers: &HeaderMap, name: &HeaderName, label: &'static str) -> Result<Dictionary, VerifyError> {
    let mut joined = Vec::new();
    for value in headers.get_all(name) {
        if !joined.is_empty() {
            joined.extend_from_slice(b", ");
        }
        joined.extend_from_slice(value.as_bytes());
    }
    if joined.is_empty() {
        return Err(VerifyError::MissingHeader { name: label });
    }
    Parser::new(&joined)
        .with_version(Version::Rfc8941)
        .parse()
        .map_err(|e: sfv::Error| malformed(label, &e.to_string()))
}

/// An inner list serialised on its own: the `@signature-params` value.
fn serialise_inner_list(list: &InnerList) -> Option<String> {
    vec![ListEntry::InnerList(list.clone())].serialize()
}

fn malformed(header: &'static str, reason: &str) -> VerifyError {
    VerifyError::Malformed { header, reason: reason.to_string() }
}

fn key(name: &str) -> Key {
    sfv::key_ref(name).to_owned()
}

fn header_value(text: String) -> Result<HeaderValue, SignError> {
    HeaderValue::try_from(text).map_err(|e| SignError::Serialise(e.to_string()))
}

#[cfg(test)]
#[path = "http_signature_tests.rs"]
mod tests;
