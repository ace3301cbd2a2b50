//! Where an enrolment's identity came from: a short record kept beside the subject (the
//! store seals it like a template), so a programme can show later on what evidence a
//! subject was enrolled. Its values are personal data (a document number, an expiry), so
//! `Debug` names the attributes and never shows them.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::CoreError;

/// What vouched for an enrolled subject's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SourceKind {
    /// An electronic travel document: its chip passed passive authentication and its
    /// portrait matched the live capture that was enrolled.
    Document,
}

impl SourceKind {
    /// Stable code used in persisted records.
    pub fn code(self) -> u8 {
        match self {
            SourceKind::Document => 1,
        }
    }

    /// Inverse of [`SourceKind::code`].
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(SourceKind::Document),
            _ => None,
        }
    }

    /// The word used in audit rows and answers: `document`.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Document => "document",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An enrolment's source: its kind and named attributes of short text, e.g.
/// `issuing_state = UTO`. Serialises as one object: `kind` and the attributes beside it.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct EnrolmentSource {
    /// What vouched for the identity.
    pub kind: SourceKind,
    #[serde(flatten)]
    attributes: BTreeMap<String, String>,
}

impl fmt::Debug for EnrolmentSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The values are personal data; only the names are shown.
        f.debug_struct("EnrolmentSource")
            .field("kind", &self.kind)
            .field("attributes", &self.attributes.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl EnrolmentSource {
    /// Most attributes one source holds.
    pub const MAX_ATTRIBUTES: usize = 32;
    /// Longest attribute name, in bytes.
    pub const MAX_NAME: usize = 64;
    /// Longest attribute value, in bytes.
    pub const MAX_VALUE: usize = 512;

    /// A source with no attribute yet.
    pub fn new(kind: SourceKind) -> Self {
        Self {
            kind,
            attributes: BTreeMap::new(),
        }
    }

    /// Adds (or replaces) an attribute. Names are 1 to [`Self::MAX_NAME`] bytes of
    /// `a-z 0-9 _`, never `kind`; values at most [`Self::MAX_VALUE`] bytes with no control
    /// character; at most [`Self::MAX_ATTRIBUTES`] of them. The error names the attribute,
    /// never its value.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Result<Self, CoreError> {
        let value = value.into();
        let bad = |why: &str| CoreError::InvalidSource(format!("attribute {name:?}: {why}"));
        let name_ok = !name.is_empty()
            && name.len() <= Self::MAX_NAME
            && name != "kind"
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !name_ok {
            return Err(bad("names are 1 to 64 characters of a-z 0-9 _, not `kind`"));
        }
        if value.len() > Self::MAX_VALUE {
            return Err(bad("value over 512 bytes"));
        }
        if value.chars().any(char::is_control) {
            return Err(bad("value holds a control character"));
        }
        if !self.attributes.contains_key(name) && self.attributes.len() >= Self::MAX_ATTRIBUTES {
            return Err(bad("more than 32 attributes"));
        }
        self.attributes.insert(name.to_owned(), value);
        Ok(self)
    }

    /// The value of an attribute.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }

    /// Every attribute, by name.
    pub fn attributes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.attributes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    #[test]
    fn attributes_are_bounded_and_debug_hides_values() {
        let s = EnrolmentSource::new(SourceKind::Document)
            .with("document_number", "L898902C3")
            .unwrap();
        assert_eq!(s.get("document_number"), Some("L898902C3"));
        let shown = format!("{s:?}");
        assert!(shown.contains("document_number"), "{shown}");
        assert!(!shown.contains("L898902C3"), "{shown}");
        for (name, value) in [
            ("", "x"),
            ("Upper", "x"),
            ("kind", "x"),
            ("ok", "line\nbreak"),
            ("ok", &"x".repeat(513)),
        ] {
            let e = EnrolmentSource::new(SourceKind::Document)
                .with(name, value)
                .unwrap_err();
            assert!(!e.to_string().contains("break"), "{e}");
        }
        let mut many = EnrolmentSource::new(SourceKind::Document);
        for i in 0..EnrolmentSource::MAX_ATTRIBUTES {
            many = many.with(&format!("a{i}"), "v").unwrap();
        }
        assert!(many.clone().with("one_more", "v").is_err());
        // Replacing an attribute is not adding one.
        assert!(many.with("a0", "w").is_ok());
        assert_eq!(
            SourceKind::from_code(SourceKind::Document.code()),
            Some(SourceKind::Document)
        );
        assert_eq!(SourceKind::from_code(0), None);
    }
}
