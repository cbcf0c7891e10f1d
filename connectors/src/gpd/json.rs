//! A JSON value that borrows its strings from the bytes it was parsed from when it can: what a
//! payment position is read into, far cheaper to build than a `serde_json::Value`.
//!
//! It accepts and rejects exactly the input `Value` does (the same serde_json parsing, only
//! another visitor), and reads the same: an object keeps its members in file order, and
//! [`Json::get`] finds the last of a repeated key, as `Value`'s map keeps the last one.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Json<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl<'a> Json<'a> {
    /// The member `key` of `members`; the last one if the key is repeated.
    pub fn get<'j>(members: &'j [(Cow<'a, str>, Json<'a>)], key: &str) -> Option<&'j Json<'a>> {
        members.iter().rev().find(|(name, _)| name == key).map(|(_, value)| value)
    }

    /// The same value as a `serde_json::Value`, to be deserialized with `Value`'s messages.
    pub fn to_value(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(value) => Value::Bool(*value),
            Json::Number(number) => Value::Number(number.clone()),
            Json::String(text) => Value::String(text.clone().into_owned()),
            Json::Array(values) => Value::Array(values.iter().map(Json::to_value).collect()),
            Json::Object(members) => {
                Value::Object(members.iter().map(|(key, value)| (key.clone().into_owned(), value.to_value())).collect())
            }
        }
    }

    /// What the value is, for messages: "a string", "an array"...
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor { depth_left: usize::MAX })
    }
}

/// A [`Json`] that nests at most `DEPTH` arrays and objects, itself included; deeper input
/// is an error.
pub(super) struct Shallow<'a, const DEPTH: usize>(pub Json<'a>);

impl<'de, const DEPTH: usize> Deserialize<'de> for Shallow<'de, DEPTH> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor { depth_left: DEPTH }).map(Shallow)
    }
}

/// `serde_json::Value`'s visitor, building a [`Json`] instead, and seed of the values inside.
#[derive(Clone, Copy)]
struct JsonVisitor {
    /// How many more arrays and objects may open.
    depth_left: usize,
}

impl JsonVisitor {
    /// The seed of the values inside the array or object being opened.
    fn inside<E: de::Error>(self) -> Result<Self, E> {
        match self.depth_left.checked_sub(1) {
            Some(depth_left) => Ok(JsonVisitor { depth_left }),
            None => Err(E::custom("arrays and objects nested too deep")),
        }
    }
}

impl<'de> DeserializeSeed<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Json<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Json<'de>, E> {
        Ok(Json::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Json<'de>, E> {
        Ok(Json::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Json<'de>, E> {
        Ok(Number::from_f64(value).map_or(Json::Null, Json::Number))
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Borrowed(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(value.to_owned())))
    }

    fn visit_string<E>(self, value: String) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(value)))
    }

    fn visit_none<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Json<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut elements: A) -> Result<Json<'de>, A::Error> {
        let inside = self.inside()?;
        let mut values = Vec::new();
        while let Some(value) = elements.next_element_seed(inside)? {
            values.push(value);
        }
        Ok(Json::Array(values))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let inside = self.inside()?;
        let mut members = Vec::with_capacity(16);
        while let Some(Key(key)) = map.next_key()? {
            members.push((key, map.next_value_seed(inside)?));
        }
        Ok(Json::Object(members))
    }
}

/// An object's key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(key)))
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(key.to_owned())))
    }

    fn visit_string<E>(self, key: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(key)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `text` both ways: as `Json` from a slice and from a reader, and as a `Value`.
    fn check(text: &str) {
        let json = serde_json::from_slice::<Json<'_>>(text.as_bytes());
        let mut reader = serde_json::Deserializer::from_reader(text.as_bytes());
        let streamed = Json::deserialize(&mut reader).and_then(|json| reader.end().map(|()| json));
        let value = serde_json::from_str::<Value>(text);
        match (json, streamed, value) {
            (Ok(json), Ok(streamed), Ok(value)) => {
                assert_eq!(json.to_value(), value, "{text}");
                assert_eq!(streamed, json, "{text}");
            }
            (Err(json), Err(streamed), Err(value)) => {
                assert_eq!(json.to_string(), value.to_string(), "{text}");
                assert_eq!(streamed.to_string(), value.to_string(), "{text}");
            }
            (json, streamed, value) => panic!("{text}: {json:?} / {streamed:?} / {value:?}"),
        }
    }

    #[test]
    fn accepts_and_rejects_what_value_does() {
        for text in [
            r#"{"a": [1, -2, 3.5, 1e3, 18446744073709551616, true, null, "x\u00e8\n"], "b": {}}"#,
            r#"{"a": 1, "a": 2}"#,
            r#"{"caf\u00e9": "\ud83d\ude00"}"#,
            r#""\ud800""#,
            r#""\x""#,
            "\"\u{1}\"",
            "1e400",
            "[1, 2,]",
            "{\"a\" 1}",
            "[\"\\u00",
        ] {
            check(text);
        }
        for depth in [127, 128, 129] {
            check(&format!("{}{}", "[".repeat(depth), "]".repeat(depth)));
        }
        let invalid_utf8 = serde_json::from_slice::<Json<'_>>(b"\"\xff\"").map_err(|e| e.to_string());
        let value = serde_json::from_slice::<Value>(b"\"\xff\"").map_err(|e| e.to_string());
        assert_eq!(invalid_utf8.err(), value.err());
    }

    #[test]
    fn the_last_repeated_key_wins_and_strings_are_borrowed() {
        let json: Json<'_> = serde_json::from_str(r#"{"a": "first", "b": 0, "a": "last"}"#).unwrap();
        let Json::Object(members) = &json else { panic!("{json:?}") };
        assert_eq!(Json::get(members, "a"), Some(&Json::String(Cow::Borrowed("last"))));
        assert!(matches!(Json::get(members, "a"), Some(Json::String(Cow::Borrowed(_)))));
        assert_eq!(Json::get(members, "c"), None);
    }

    #[test]
    fn shallow_refuses_deeper_nesting() {
        let parse = |text: &str| serde_json::from_str::<Shallow<'_, 2>>(text).map(|_| ());
        assert!(parse(r#"{"a": [1, 2], "b": {}}"#).is_ok());
        assert!(parse(r#""scalar""#).is_ok());
        let error = parse(r#"{"a": [[1]]}"#).unwrap_err();
        assert!(error.to_string().starts_with("arrays and objects nested too deep"), "{error}");
    }
}
