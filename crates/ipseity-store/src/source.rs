//! An enrolment's source ([`EnrolmentSource`]: a travel document's issuing state, number,
//! expiry and signer, say) as the store keeps it: one row per subject in `sources`, its
//! plaintext sealed like a template (AES-256-GCM under a data key of its own, wrapped by
//! the master key, re-wrapped by a rotation), the subject and kind bound as associated
//! data, deleted with the subject.
//!
//! Plaintext layout, little-endian:
//!
//! | bytes | field                                              |
//! |-------|----------------------------------------------------|
//! | 0..2  | format version, `u16`, currently 1                 |
//! | 2     | kind code ([`SourceKind::code`])                   |
//! | 3     | attribute count, at most 32                        |
//! | ...   | per attribute: name length `u8`, name, value length `u16`, value |
//!
//! Decoding checks every length against the bytes left before reading, and the result
//! is validated again through [`EnrolmentSource::with`].

use ipseity_core::{EnrolmentSource, SourceKind, SubjectId};

use crate::envelope::MasterKey;
use crate::StoreError;

/// Current plaintext format version.
pub const SOURCE_FORMAT_VERSION: u16 = 1;
const AAD_TAG: &[u8] = b"ipseity-source-v1";

/// Encodes a source's plaintext (already valid: [`EnrolmentSource`] checks on the way in).
pub(crate) fn encode(s: &EnrolmentSource) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&SOURCE_FORMAT_VERSION.to_le_bytes());
    out.push(s.kind.code());
    let attrs: Vec<_> = s.attributes().collect();
    // Bounded by EnrolmentSource: at most 32 attributes, names of 64 and values of 512 bytes.
    out.push(attrs.len() as u8);
    for (k, v) in attrs {
        out.push(k.len() as u8);
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(&(v.len() as u16).to_le_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    out
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if bytes.len() < n {
        return Err(format!("truncated: {n} bytes wanted, {} left", bytes.len()));
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Ok(head)
}

/// Decodes and validates a source's plaintext; a malformed one is [`StoreError::Corrupt`].
pub(crate) fn decode(bytes: &[u8]) -> Result<EnrolmentSource, StoreError> {
    decode_inner(bytes).map_err(|e| StoreError::Corrupt(format!("enrolment source: {e}")))
}

fn decode_inner(mut bytes: &[u8]) -> Result<EnrolmentSource, String> {
    let b = &mut bytes;
    let head = take(b, 4)?;
    let version = u16::from_le_bytes([head[0], head[1]]);
    if version != SOURCE_FORMAT_VERSION {
        return Err(format!("unsupported format version {version}"));
    }
    let kind = SourceKind::from_code(head[2]).ok_or(format!("unknown kind {}", head[2]))?;
    let count = usize::from(head[3]);
    if count > EnrolmentSource::MAX_ATTRIBUTES {
        return Err(format!("{count} attributes"));
    }
    let mut s = EnrolmentSource::new(kind);
    for _ in 0..count {
        let n = usize::from(take(b, 1)?[0]);
        let name = std::str::from_utf8(take(b, n)?).map_err(|_| "a name is not UTF-8")?;
        let len = take(b, 2)?;
        let len = usize::from(u16::from_le_bytes([len[0], len[1]]));
        let value = std::str::from_utf8(take(b, len)?).map_err(|_| "a value is not UTF-8")?;
        if s.get(name).is_some() {
            return Err("an attribute given twice".into());
        }
        s = s.with(name, value).map_err(|e| e.to_string())?;
    }
    if !b.is_empty() {
        return Err(format!("{} bytes after the last attribute", b.len()));
    }
    Ok(s)
}

/// Associated data: tag, then length-prefixed subject, then the kind code.
pub(crate) fn aad(subject: &SubjectId, kind: SourceKind) -> Vec<u8> {
    let s = subject.as_str().as_bytes();
    let mut aad = Vec::with_capacity(AAD_TAG.len() + 5 + s.len());
    aad.extend_from_slice(AAD_TAG);
    aad.extend_from_slice(&(s.len() as u32).to_le_bytes());
    aad.extend_from_slice(s);
    aad.push(kind.code());
    aad
}

/// A sealed source: the kind code (stored in the clear: it says nothing of the person),
/// nonce, ciphertext, wrapped data key.
pub(crate) struct SealedSource {
    pub(crate) kind: i64,
    pub(crate) nonce: Vec<u8>,
    pub(crate) ciphertext: Vec<u8>,
    pub(crate) wrapped: Vec<u8>,
}

/// Seals a source for `subject` under a fresh data key.
pub(crate) fn seal(
    master: &MasterKey,
    subject: &SubjectId,
    source: &EnrolmentSource,
) -> Result<SealedSource, StoreError> {
    let mut plain = encode(source);
    let sealed = master.seal_template(&plain, &aad(subject, source.kind));
    plain.fill(0);
    let (nonce, ciphertext, wrapped) = sealed?;
    Ok(SealedSource {
        kind: i64::from(source.kind.code()),
        nonce: nonce.to_vec(),
        ciphertext,
        wrapped,
    })
}

/// The kind of a stored row.
pub(crate) fn kind_from_sql(code: i64) -> Result<SourceKind, StoreError> {
    u8::try_from(code)
        .ok()
        .and_then(SourceKind::from_code)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown enrolment source kind {code}")))
}

impl SealedSource {
    /// Opens the row of `subject`: [`StoreError::Crypto`] when it was moved, altered or the
    /// key is wrong.
    pub(crate) fn unseal(
        &self,
        master: &MasterKey,
        subject: &SubjectId,
    ) -> Result<EnrolmentSource, StoreError> {
        let kind = kind_from_sql(self.kind)?;
        let mut plain = master.open_template(
            &self.nonce,
            &self.ciphertext,
            Some(&self.wrapped),
            &aad(subject, kind),
        )?;
        let s = decode(&plain);
        plain.fill(0);
        let s = s?;
        if s.kind != kind {
            return Err(StoreError::Corrupt(
                "enrolment source: kind differs from its record".into(),
            ));
        }
        Ok(s)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;
    use crate::key::KeyBytes;

    fn sample() -> EnrolmentSource {
        EnrolmentSource::new(SourceKind::Document)
            .with("issuing_state", "UTO")
            .unwrap()
            .with("document_number", "L898902C3")
            .unwrap()
    }

    #[test]
    fn layout_is_stable() {
        // A compatibility fixture: version 1, kind 1, two attributes in name order.
        let mut want = vec![1, 0, 1, 2];
        want.push(15);
        want.extend_from_slice(b"document_number");
        want.extend_from_slice(&[9, 0]);
        want.extend_from_slice(b"L898902C3");
        want.push(13);
        want.extend_from_slice(b"issuing_state");
        want.extend_from_slice(&[3, 0]);
        want.extend_from_slice(b"UTO");
        assert_eq!(encode(&sample()), want);
        assert_eq!(decode(&want).unwrap(), sample());
    }

    #[test]
    fn malformed_bytes_are_refused_without_panic() {
        let good = encode(&sample());
        for n in 0..good.len() {
            assert!(decode(&good[..n]).is_err(), "truncated at {n}");
        }
        let mut extra = good.clone();
        extra.push(0);
        assert!(decode(&extra).is_err());
        let mut version = good.clone();
        version[0] = 2;
        assert!(decode(&version).is_err());
        let mut kind = good.clone();
        kind[2] = 9;
        assert!(decode(&kind).is_err());
        let mut count = good.clone();
        count[3] = 200;
        assert!(decode(&count).is_err());
        // A name that is not allowed (upper case) is refused as EnrolmentSource refuses it.
        let mut name = good;
        name[5] = b'D';
        assert!(decode(&name).is_err());
        // Arbitrary bytes never panic.
        for seed in 0u8..=255 {
            let junk: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(seed) ^ seed).collect();
            let _ = decode(&junk);
        }
    }

    #[test]
    fn a_sealed_source_opens_only_for_its_subject() {
        let master = MasterKey::new(&KeyBytes([7; 32]));
        let alice = SubjectId::new("alice").unwrap();
        let bob = SubjectId::new("bob").unwrap();
        let sealed = seal(&master, &alice, &sample()).unwrap();
        assert!(!sealed.ciphertext.windows(9).any(|w| w == b"L898902C3"));
        assert_eq!(sealed.unseal(&master, &alice).unwrap(), sample());
        assert!(matches!(
            sealed.unseal(&master, &bob),
            Err(StoreError::Crypto)
        ));
        let other = MasterKey::new(&KeyBytes([8; 32]));
        assert!(sealed.unseal(&other, &alice).is_err());
    }
}
