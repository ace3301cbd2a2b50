//! The plaintext byte format of a template, the thing that gets encrypted; versioned and validated.
//!
//! Layout, all little-endian:
//!
//! | bytes      | field                               |
//! |------------|-------------------------------------|
//! | 0..2       | format version, `u16`, currently 1  |
//! | 2          | modality code ([`Modality::code`])  |
//! | 3          | quality, 0 to 100                   |
//! | 4..8       | dimension `d`, `u32`, 1 to 4096     |
//! | 8..8+4d    | `d` finite `f32` values             |
//!
//! The model identifier is not part of the plaintext: it is stored beside the ciphertext and
//! bound to it as associated data. Decoding checks every length before allocating, so
//! arbitrary bytes give a [`TemplateError`], never a panic or a large allocation.

use ipseity_core::{Modality, Template};

/// Current plaintext format version.
pub const FORMAT_VERSION: u16 = 1;
/// Largest accepted vector dimension.
pub const MAX_DIM: usize = 4096;
/// Largest accepted model identifier, in bytes.
pub const MAX_MODEL_LEN: usize = 256;
const HEADER_LEN: usize = 8;

/// Why a template, or the bytes of one, were refused.
///
/// Never carries vector values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// Fewer bytes than the fixed header.
    #[error("truncated: {0} bytes, header needs {HEADER_LEN}")]
    Truncated(usize),
    /// A format version this build does not read.
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u16),
    /// A modality code this build does not know.
    #[error("unknown modality code {0}")]
    UnknownModality(u8),
    /// Quality above 100.
    #[error("quality {0} out of range 0..=100")]
    Quality(u8),
    /// Dimension zero or above [`MAX_DIM`].
    #[error("dimension {0} out of range 1..={MAX_DIM}")]
    Dimension(u64),
    /// The byte length does not match the declared dimension.
    #[error("length {actual} does not match declared dimension (expected {expected} bytes)")]
    Length {
        /// Bytes the header promised.
        expected: usize,
        /// Bytes present.
        actual: usize,
    },
    /// A NaN or infinite value.
    #[error("non-finite value at index {0}")]
    NonFinite(usize),
    /// Model identifier empty or longer than [`MAX_MODEL_LEN`] bytes.
    #[error("model identifier must be 1 to {MAX_MODEL_LEN} bytes")]
    Model,
}

/// Checks the invariants every stored template must hold.
pub fn validate(t: &Template) -> Result<(), TemplateError> {
    if t.model.is_empty() || t.model.len() > MAX_MODEL_LEN {
        return Err(TemplateError::Model);
    }
    if t.quality > 100 {
        return Err(TemplateError::Quality(t.quality));
    }
    if t.vector.is_empty() || t.vector.len() > MAX_DIM {
        return Err(TemplateError::Dimension(t.vector.len() as u64));
    }
    if let Some(i) = t.vector.iter().position(|v| !v.is_finite()) {
        return Err(TemplateError::NonFinite(i));
    }
    Ok(())
}

/// Validates and encodes a template's plaintext.
pub fn encode(t: &Template) -> Result<Vec<u8>, TemplateError> {
    validate(t)?;
    let mut out = Vec::with_capacity(HEADER_LEN + 4 * t.vector.len());
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.push(t.modality.code());
    out.push(t.quality);
    // Bounded by MAX_DIM above, so the cast cannot truncate.
    out.extend_from_slice(&(t.vector.len() as u32).to_le_bytes());
    for v in &t.vector {
        out.extend_from_slice(&v.to_le_bytes());
    }
    Ok(out)
}

/// Decodes and validates a template's plaintext; `model` comes from the record beside it.
pub fn decode(bytes: &[u8], model: &str) -> Result<Template, TemplateError> {
    let (header, body) = bytes
        .split_first_chunk::<HEADER_LEN>()
        .ok_or(TemplateError::Truncated(bytes.len()))?;
    let version = u16::from_le_bytes([header[0], header[1]]);
    if version != FORMAT_VERSION {
        return Err(TemplateError::UnsupportedVersion(version));
    }
    let modality =
        Modality::from_code(header[2]).ok_or(TemplateError::UnknownModality(header[2]))?;
    let quality = header[3];
    let dim = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if dim == 0 || dim as usize > MAX_DIM {
        return Err(TemplateError::Dimension(u64::from(dim)));
    }
    let dim = dim as usize;
    if body.len() != dim * 4 {
        return Err(TemplateError::Length {
            expected: HEADER_LEN + dim * 4,
            actual: bytes.len(),
        });
    }
    let vector = body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let t = Template {
        modality,
        model: model.to_owned(),
        vector,
        quality,
    };
    validate(&t)?;
    Ok(t)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Template {
        Template::new(Modality::Face, "dlib-resnet-v1", vec![0.25, -1.5, 3.0], 77).unwrap()
    }

    #[test]
    fn layout_is_stable() {
        let bytes = encode(&sample()).unwrap();
        assert_eq!(&bytes[..8], &[1, 0, 1, 77, 3, 0, 0, 0]);
        assert_eq!(&bytes[8..12], &0.25f32.to_le_bytes());
        assert_eq!(bytes.len(), 8 + 12);
    }

    #[test]
    fn refuses_malformed_bytes() {
        let good = encode(&sample()).unwrap();
        assert_eq!(decode(&good[..5], "m"), Err(TemplateError::Truncated(5)));
        let mut b = good.clone();
        b[0] = 2;
        assert_eq!(decode(&b, "m"), Err(TemplateError::UnsupportedVersion(2)));
        let mut b = good.clone();
        b[2] = 9;
        assert_eq!(decode(&b, "m"), Err(TemplateError::UnknownModality(9)));
        let mut b = good.clone();
        b[3] = 101;
        assert_eq!(decode(&b, "m"), Err(TemplateError::Quality(101)));
        let mut b = good.clone();
        b[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            decode(&b, "m"),
            Err(TemplateError::Dimension(u64::from(u32::MAX)))
        );
        let mut b = good.clone();
        b.push(0);
        assert!(matches!(decode(&b, "m"), Err(TemplateError::Length { .. })));
        let mut b = good.clone();
        b[12..16].copy_from_slice(&f32::NAN.to_le_bytes());
        assert_eq!(decode(&b, "m"), Err(TemplateError::NonFinite(1)));
        assert_eq!(decode(&good, ""), Err(TemplateError::Model));
    }

    #[test]
    fn refuses_invalid_templates() {
        let mut t = sample();
        t.vector[2] = f32::INFINITY;
        assert_eq!(encode(&t), Err(TemplateError::NonFinite(2)));
        let mut t = sample();
        t.vector = vec![0.0; MAX_DIM + 1];
        assert!(matches!(encode(&t), Err(TemplateError::Dimension(_))));
        let mut t = sample();
        t.model = "x".repeat(MAX_MODEL_LEN + 1);
        assert_eq!(encode(&t), Err(TemplateError::Model));
    }

    proptest! {
        #[test]
        fn encoding_round_trips(
            vector in prop::collection::vec(-1.0e6f32..1.0e6, 1..=512),
            quality in 0u8..=100,
            model in "[a-z0-9.-]{1,40}",
        ) {
            let t = Template { modality: Modality::Face, model: model.clone(), vector, quality };
            let bytes = encode(&t).unwrap();
            prop_assert_eq!(decode(&bytes, &model).unwrap(), t);
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes, "m");
        }

        #[test]
        fn decoding_a_plausible_header_never_panics(
            dim in any::<u32>(),
            quality in any::<u8>(),
            body in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut bytes = vec![1, 0, 1, quality];
            bytes.extend_from_slice(&dim.to_le_bytes());
            bytes.extend_from_slice(&body);
            let _ = decode(&bytes, "m");
        }
    }
}
