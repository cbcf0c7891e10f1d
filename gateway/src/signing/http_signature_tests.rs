//! Tests of the RFC 9421 profile: the RFC's own ed25519 example, round trips, tampering.

use super::*;
use crate::signing::jwk::PublicJwk;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

// RFC 9421 B.1.4 "Example Ed25519 Test Key": the JWK's private `d` and public `x`, and the
// same private key as the PKCS#8 PEM body printed beside it.
const B14_D: &str = "n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU";
const B14_X: &str = "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs";
const B14_PKCS8: &str = "MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF";

// RFC 9421 B.2.6 "Signing a Request Using ed25519": the headers and the signature base.
const B26_INPUT: &str = r#"sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519""#;
const B26_SIGNATURE: &str =
    "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:";
const B26_BASE: &str = concat!(
    "\"date\": Tue, 20 Apr 2021 02:07:55 GMT\n",
    "\"@method\": POST\n",
    "\"@path\": /foo\n",
    "\"@authority\": example.com\n",
    "\"content-type\": application/json\n",
    "\"content-length\": 18\n",
    "\"@signature-params\": (\"date\" \"@method\" \"@path\" \"@authority\" \"content-type\" \"content-length\")",
    ";created=1618884473;keyid=\"test-key-ed25519\"",
);
const B2_BODY: &[u8] = br#"{"hello": "world"}"#;

fn b14_key() -> SigningKey {
    let seed: [u8; 32] = URL_SAFE_NO_PAD.decode(B14_D).unwrap().try_into().unwrap();
    SigningKey::from_seed(&seed, Some("test-key-ed25519"))
}

fn b14_jwks() -> Jwks {
    Jwks::from_json(&format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"test-key-ed25519","x":"{B14_X}"}}]}}"#))
        .unwrap()
}

/// RFC 9421 B.2's test request, as far as B.2.6 covers it.
fn b2_request_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("example.com"));
    headers.insert("date", HeaderValue::from_static("Tue, 20 Apr 2021 02:07:55 GMT"));
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert(
        "content-digest",
        HeaderValue::from_static(
            "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
        ),
    );
    headers.insert("content-length", HeaderValue::from_static("18"));
    headers
}

const ANY_COMPONENTS: Coverage = Coverage { components: &[], digest_with_body: false };

fn at(second: i64) -> VerifyOptions {
    VerifyOptions { now: Timestamp::from_second(second).unwrap(), max_age: Some(Duration::from_secs(300)) }
}

#[test]
fn b14_pem_and_jwk_are_the_same_key() {
    let der = STANDARD.decode(B14_PKCS8).unwrap();
    assert_eq!(
        der[..16],
        [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]
    );
    assert_eq!(der[16..], URL_SAFE_NO_PAD.decode(B14_D).unwrap());
    assert_eq!(URL_SAFE_NO_PAD.encode(b14_key().public_jwk().public_key()), B14_X);
}

#[test]
fn rfc9421_b26_is_reproduced_byte_for_byte() {
    let components: Vec<Component> = ["date", "@method", "@path", "@authority", "content-type", "content-length"]
        .into_iter()
        .map(|name| Component::from_identifier(name).unwrap())
        .collect();
    let key = b14_key();
    let params = signature_params(&components, 1618884473, key.kid(), None).unwrap();
    let headers = b2_request_headers();
    let uri: Uri = "https://example.com/foo?param=Value&Pet=dog".parse().unwrap();
    let request = Request { method: &Method::POST, target_uri: &uri, headers: &headers, body: B2_BODY };
    let params_line = serialise_inner_list(&params).unwrap();
    assert_eq!(signature_base(&components, &request, &params_line).unwrap(), B26_BASE);
    let (input, signature) = sign_components(&request, &components, params, "sig-b26", &key).unwrap();
    assert_eq!(input, B26_INPUT);
    assert_eq!(signature, B26_SIGNATURE);
}

#[test]
fn rfc9421_b26_headers_verify() {
    let mut headers = b2_request_headers();
    headers.insert(SIGNATURE_INPUT, HeaderValue::from_static(B26_INPUT));
    headers.insert(SIGNATURE, HeaderValue::from_static(B26_SIGNATURE));
    let uri: Uri = "https://example.com/foo?param=Value&Pet=dog".parse().unwrap();
    let request = Request { method: &Method::POST, target_uri: &uri, headers: &headers, body: B2_BODY };
    let verified = verify_label(&request, &b14_jwks(), &at(1618884473 + 5), "sig-b26", &ANY_COMPONENTS).unwrap();
    assert_eq!(verified.kid.as_str(), "test-key-ed25519");
    assert_eq!(verified.created.as_second(), 1618884473);
    // The same signature does not meet this profile: it covers neither @target-uri nor content-digest.
    let err = verify_label(&request, &b14_jwks(), &at(1618884473 + 5), "sig-b26", &IO_GATEWAY);
    assert_eq!(err, Err(VerifyError::NotCovered { component: "@target-uri" }));
    let other_path: Uri = "https://example.com/bar".parse().unwrap();
    let moved = Request { target_uri: &other_path, ..request };
    let err = verify_label(&moved, &b14_jwks(), &at(1618884473 + 5), "sig-b26", &ANY_COMPONENTS);
    assert_eq!(err, Err(VerifyError::BadSignature));
}

#[test]
fn content_digest_is_rfc9530() {
    assert_eq!(content_digest(B2_BODY), "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:");
    assert_eq!(content_digest(b""), "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:");
}

/// A request to IO, signed with the appliance key; returned with the verifier's key set.
struct Signed {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Vec<u8>,
    keys: Jwks,
}

const CREATED: i64 = 1_750_000_000;

fn signed(method: Method, uri: &str, body: &[u8]) -> Signed {
    let key = SigningKey::from_seed(&[9; 32], None);
    let uri: Uri = uri.parse().unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("ocp-apim-subscription-key", HeaderValue::from_static("secret"));
    if !body.is_empty() {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    sign(&method, &uri, &mut headers, body, &key, Timestamp::from_second(CREATED).unwrap()).unwrap();
    let mut keys = Jwks::new();
    keys.insert(key.public_jwk().clone()).unwrap();
    Signed { method, uri, headers, body: body.to_vec(), keys }
}

impl Signed {
    fn verify_at(&self, now: i64) -> Result<Verified, VerifyError> {
        let request = Request { method: &self.method, target_uri: &self.uri, headers: &self.headers, body: &self.body };
        verify(&request, &self.keys, &at(now))
    }

    fn verify(&self) -> Result<Verified, VerifyError> {
        self.verify_at(CREATED + 2)
    }
}

fn post() -> Signed {
    signed(Method::POST, "https://api.io.pagopa.it/api/v1/messages", br#"{"fiscal_code":"AAAAAA00A00A000A"}"#)
}

#[test]
fn a_signed_post_verifies_and_has_the_profile_shape() {
    let request = post();
    let kid = SigningKey::from_seed(&[9; 32], None).kid().clone();
    assert_eq!(request.verify(), Ok(Verified { kid: kid.clone(), created: Timestamp::from_second(CREATED).unwrap() }));
    let expected = format!(
        r#"sig1=("@method" "@target-uri" "content-digest" "content-type");created={CREATED};keyid="{kid}";alg="ed25519""#
    );
    assert_eq!(request.headers[&SIGNATURE_INPUT], expected.as_str());
    assert_eq!(request.headers[&CONTENT_DIGEST], content_digest(&request.body).as_str());
    let signature = request.headers[&SIGNATURE].to_str().unwrap();
    assert!(signature.starts_with("sig1=:") && signature.ends_with(':') && signature.len() == 6 + 88 + 1);
}

#[test]
fn a_signed_get_covers_no_body_components() {
    let request = signed(Method::GET, "https://api.io.pagopa.it/api/v1/messages/01J?x=1", b"");
    assert!(request.verify().is_ok());
    assert!(!request.headers.contains_key(CONTENT_DIGEST));
    let input = request.headers[&SIGNATURE_INPUT].to_str().unwrap();
    assert!(input.starts_with(r#"sig1=("@method" "@target-uri");created="#), "{input}");
}

#[test]
fn signing_again_replaces_the_headers() {
    let mut request = post();
    let key = SigningKey::from_seed(&[9; 32], None);
    let later = Timestamp::from_second(CREATED + 60).unwrap();
    sign(&request.method, &request.uri, &mut request.headers, &request.body, &key, later).unwrap();
    for name in [&SIGNATURE_INPUT, &SIGNATURE, &CONTENT_DIGEST] {
        assert_eq!(request.headers.get_all(name).iter().count(), 1, "{name}");
    }
    assert_eq!(request.verify_at(CREATED + 61).unwrap().created.as_second(), CREATED + 60);
}

#[test]
fn signing_needs_an_absolute_uri_and_a_content_type() {
    let key = SigningKey::from_seed(&[9; 32], None);
    let now = Timestamp::from_second(CREATED).unwrap();
    let mut headers = HeaderMap::new();
    let relative: Uri = "/api/v1/messages".parse().unwrap();
    let err = sign(&Method::GET, &relative, &mut headers, b"", &key, now);
    assert_eq!(err, Err(SignError::RelativeTargetUri { uri: "/api/v1/messages".into() }));
    let absolute: Uri = "https://api.io.pagopa.it/api/v1/messages".parse().unwrap();
    assert_eq!(sign(&Method::POST, &absolute, &mut headers, b"{}", &key, now), Err(SignError::MissingContentType));
}

#[test]
fn tampering_is_caught() {
    let mut changed_body = post();
    changed_body.body = br#"{"fiscal_code":"BBBBBB00B00B000B"}"#.to_vec();
    assert_eq!(changed_body.verify(), Err(VerifyError::DigestMismatch));

    let mut body_and_digest = post();
    body_and_digest.body = b"{}".to_vec();
    body_and_digest.headers.insert(CONTENT_DIGEST, HeaderValue::try_from(content_digest(b"{}")).unwrap());
    assert_eq!(body_and_digest.verify(), Err(VerifyError::BadSignature));

    let mut changed_method = post();
    changed_method.method = Method::PUT;
    assert_eq!(changed_method.verify(), Err(VerifyError::BadSignature));

    let mut changed_path = post();
    changed_path.uri = "https://api.io.pagopa.it/api/v1/profiles".parse().unwrap();
    assert_eq!(changed_path.verify(), Err(VerifyError::BadSignature));

    let mut changed_type = post();
    changed_type.headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    assert_eq!(changed_type.verify(), Err(VerifyError::BadSignature));
}

#[test]
fn the_wrong_key_is_caught() {
    let mut impostor = post();
    let kid = SigningKey::from_seed(&[9; 32], None).kid().clone();
    let other = SigningKey::from_seed(&[8; 32], None);
    impostor.keys = Jwks::new();
    impostor.keys.insert(PublicJwk::with_kid(*other.public_jwk().public_key(), kid)).unwrap();
    assert_eq!(impostor.verify(), Err(VerifyError::BadSignature));

    let mut unknown = post();
    unknown.keys = Jwks::new();
    assert!(matches!(unknown.verify(), Err(VerifyError::UnknownKey { .. })));
}

#[test]
fn created_must_be_recent_and_not_ahead() {
    let request = post();
    assert!(request.verify_at(CREATED + 300).is_ok());
    assert_eq!(request.verify_at(CREATED + 301), Err(VerifyError::Stale { age_s: 301, max_s: 300 }));
    assert!(request.verify_at(CREATED - 60).is_ok());
    assert_eq!(request.verify_at(CREATED - 61), Err(VerifyError::CreatedInFuture { ahead_s: 61 }));
    let unbounded = VerifyOptions { now: Timestamp::from_second(CREATED + 86_400).unwrap(), max_age: None };
    let r =
        Request { method: &request.method, target_uri: &request.uri, headers: &request.headers, body: &request.body };
    assert!(verify(&r, &request.keys, &unbounded).is_ok());
}

#[test]
fn missing_and_malformed_headers_are_reported() {
    let check = |edit: &dyn Fn(&mut HeaderMap), expected: VerifyError| {
        let mut request = post();
        edit(&mut request.headers);
        assert_eq!(request.verify(), Err(expected));
    };
    check(&|h| drop(h.remove(SIGNATURE)), VerifyError::MissingHeader { name: "Signature" });
    check(&|h| drop(h.remove(CONTENT_DIGEST)), VerifyError::MissingHeader { name: "Content-Digest" });
    let set = |name: HeaderName, value: &'static str| {
        move |h: &mut HeaderMap| drop(h.insert(name.clone(), HeaderValue::from_static(value)))
    };
    check(&set(SIGNATURE, "sig2=:AAAA:"), VerifyError::NoSignature { label: "sig1".into() });
    check(&set(CONTENT_DIGEST, "sha-512=:AAAA:"), VerifyError::NoSha256Digest);
    let input = r#"sig1=("@method" "@target-uri" "content-digest" "content-type";sf);created=1;keyid="k""#;
    check(&set(SIGNATURE_INPUT, input), VerifyError::UnsupportedComponent { component: r#""content-type";sf"#.into() });
    let input = r#"sig1=("@method" "@target-uri" "content-digest" "@method");created=1;keyid="k""#;
    check(&set(SIGNATURE_INPUT, input), VerifyError::DuplicateComponent { component: "@method".into() });
    let input = r#"sig1=("@method" "@target-uri");created=1;keyid="k""#;
    check(&set(SIGNATURE_INPUT, input), VerifyError::NotCovered { component: "content-digest" });
    let input = r#"sig1=("@method" "@target-uri" "content-digest");keyid="k""#;
    check(&set(SIGNATURE_INPUT, input), VerifyError::MissingParameter { name: "created" });
    let input = r#"sig1=("@method" "@target-uri" "content-digest");created=1;keyid="k";alg="rsa-pss-sha512""#;
    check(&set(SIGNATURE_INPUT, input), VerifyError::UnsupportedAlgorithm { alg: r#""rsa-pss-sha512""#.into() });
    let input = r#"sig1=("@method" "@target-uri" "content-digest");created="1";keyid="k""#;
    check(&set(SIGNATURE_INPUT, input), VerifyError::BadParameter { name: "created" });
    let mut request = post();
    request.headers.insert(SIGNATURE_INPUT, HeaderValue::from_static("sig1=(\"@method\""));
    assert!(matches!(request.verify(), Err(VerifyError::Malformed { header: "Signature-Input", .. })));
}

#[test]
fn other_signatures_on_the_request_are_ignored() {
    let mut request = post();
    request.headers.append(SIGNATURE_INPUT, HeaderValue::from_static(r#"proxy=("@method");created=1;keyid="p""#));
    request.headers.append(SIGNATURE, HeaderValue::from_static("proxy=:AAAA:"));
    assert!(request.verify().is_ok());
}

#[test]
fn derived_components_are_normalised() {
    let check = |uri: &str, component: &str, expected: &str| {
        let uri: Uri = uri.parse().unwrap();
        let headers = HeaderMap::new();
        let request = Request { method: &Method::GET, target_uri: &uri, headers: &headers, body: b"" };
        assert_eq!(
            Component::from_identifier(component).unwrap().value(&request).unwrap(),
            expected,
            "{uri} {component}"
        );
    };
    check("https://Example.COM:443/a?b=c", "@authority", "example.com");
    check("http://example.com:8080/a", "@authority", "example.com:8080");
    check("HTTPS://example.com/a", "@scheme", "https");
    check("https://example.com", "@path", "/");
    check("https://example.com/a?b=c&d", "@query", "?b=c&d");
    check("https://example.com/a", "@query", "?");
    check("https://example.com/a?b=c", "@target-uri", "https://example.com/a?b=c");
    assert!(Component::from_identifier("@request-target").is_err());
    assert!(Component::from_identifier("Content-Type").is_err());
}

#[test]
fn repeated_header_lines_are_joined_and_trimmed() {
    let mut headers = HeaderMap::new();
    headers.append("x-list", HeaderValue::from_static("  a, b "));
    headers.append("x-list", HeaderValue::from_static("c"));
    assert_eq!(field_value(&headers, &HeaderName::from_static("x-list")).unwrap(), "a, b, c");
}
