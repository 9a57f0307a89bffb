//! Lenient, borrowing field types for reading a finding's typed columns: every field is optional
//! and tolerant of the wrong JSON type (it is then `None`), so a finding is never dropped for its
//! shape; the full text always lands in `finding_json`.

use std::borrow::Cow;

use serde::de::{Deserializer, Error as _};
use serde::Deserialize;
use serde_json::value::RawValue;

/// A value that deserialises to `None` instead of failing when its JSON has the wrong shape.
#[derive(Debug, Default)]
pub(crate) struct Lenient<T>(pub(crate) Option<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw: &'de RawValue = Deserialize::deserialize(deserializer)?;
        Ok(Lenient(serde_json::from_str(raw.get()).ok()))
    }
}

impl<T> Lenient<T> {
    pub(crate) fn get(&self) -> Option<&T> {
        self.0.as_ref()
    }
}

/// A text field's value, if it has one.
pub(crate) fn text<'v>(field: &'v Lenient<Text<'_>>) -> Option<&'v str> {
    field.get().map(|t| t.as_ref())
}

/// A borrowed string (owned only when the JSON has escapes).
pub(crate) type Text<'a> = Cow<'a, str>;

/// Any JSON value as text: a string's content, anything else its JSON text (a map value that is
/// not a string is kept, not dropped with its whole map).
#[derive(Debug)]
pub(crate) struct AnyText<'a>(pub(crate) Text<'a>);

impl<'de: 'a, 'a> Deserialize<'de> for AnyText<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw: &'de RawValue = Deserialize::deserialize(deserializer)?;
        let text = raw.get();
        if !text.starts_with('"') {
            return Ok(AnyText(Cow::Borrowed(text)));
        }
        // Borrowed when the string has no escapes, unescaped into an owned copy otherwise.
        let string = match serde_json::from_str::<&'a str>(text) {
            Ok(borrowed) => Cow::Borrowed(borrowed),
            Err(_) => Cow::Owned(serde_json::from_str::<String>(text).map_err(D::Error::custom)?),
        };
        Ok(AnyText(string))
    }
}

/// A number given as a JSON number or as a numeric string (`"70"`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Number(pub(crate) f64);

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either<'a> {
            Number(f64),
            Text(&'a str),
        }
        match Either::deserialize(deserializer)? {
            Either::Number(n) => Ok(Number(n)),
            Either::Text(text) => text
                .trim()
                .parse()
                .map(Number)
                .map_err(|_| serde::de::Error::custom("not a number")),
        }
    }
}
