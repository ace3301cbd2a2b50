//! AES-256-GCM sealing of template plaintexts, bound to the record they belong to.
//!
//! The associated data names the subject, modality and model, so a ciphertext copied to
//! another subject's row (or relabelled with another model) fails to open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use ipseity_core::{Modality, SubjectId};
use rand::RngCore;

use crate::key::KeyBytes;
use crate::StoreError;

/// Length of the random per-template nonce.
pub const NONCE_LEN: usize = 12;
const AAD_TAG: &[u8] = b"ipseity-template-v1";
const KEY_CHECK_AAD: &[u8] = b"ipseity-key-check-v1";
const KEY_CHECK_PLAINTEXT: &[u8] = b"ipseity store key check";

/// The cipher built from the template key.
pub(crate) struct Sealer {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

/// Associated data for a template: tag, then length-prefixed subject, modality code,
/// length-prefixed model, so no two different triples give the same bytes.
pub(crate) fn template_aad(subject: &SubjectId, modality: Modality, model: &str) -> Vec<u8> {
    let s = subject.as_str().as_bytes();
    let m = model.as_bytes();
    let mut aad = Vec::with_capacity(AAD_TAG.len() + 9 + s.len() + m.len());
    aad.extend_from_slice(AAD_TAG);
    aad.extend_from_slice(&(s.len() as u32).to_le_bytes());
    aad.extend_from_slice(s);
    aad.push(modality.code());
    aad.extend_from_slice(&(m.len() as u32).to_le_bytes());
    aad.extend_from_slice(m);
    aad
}

impl Sealer {
    pub(crate) fn new(key: &KeyBytes) -> Self {
        Self {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key.0)),
        }
    }

    /// Encrypts under a fresh random nonce; returns `(nonce, ciphertext)`.
    pub(crate) fn seal(
        &self,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<([u8; NONCE_LEN], Vec<u8>), StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng
            .try_fill_bytes(&mut nonce)
            .map_err(|_| StoreError::Crypto)?;
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| StoreError::Crypto)?;
        Ok((nonce, ct))
    }

    /// Decrypts and authenticates; any mismatch is [`StoreError::Crypto`].
    pub(crate) fn open(
        &self,
        nonce: &[u8],
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        if nonce.len() != NONCE_LEN {
            return Err(StoreError::Crypto);
        }
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| StoreError::Crypto)
    }

    /// A sealed constant stored in the database, so a wrong key is caught at open.
    pub(crate) fn make_key_check(&self) -> Result<Vec<u8>, StoreError> {
        let (nonce, ct) = self.seal(KEY_CHECK_PLAINTEXT, KEY_CHECK_AAD)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Whether `check` was made by [`Sealer::make_key_check`] with this key.
    pub(crate) fn verify_key_check(&self, check: &[u8]) -> bool {
        if check.len() < NONCE_LEN {
            return false;
        }
        let (nonce, ct) = check.split_at(NONCE_LEN);
        matches!(self.open(nonce, ct, KEY_CHECK_AAD), Ok(p) if p == KEY_CHECK_PLAINTEXT)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;
    use crate::key::KEY_LEN;

    fn sealer(b: u8) -> Sealer {
        Sealer::new(&KeyBytes([b; KEY_LEN]))
    }

    #[test]
    fn seal_open_and_bindings() {
        let s = sealer(1);
        let alice = SubjectId::new("alice").unwrap();
        let bob = SubjectId::new("bob").unwrap();
        let aad = template_aad(&alice, Modality::Face, "m1");
        let (nonce, ct) = s.seal(b"secret", &aad).unwrap();
        assert_eq!(s.open(&nonce, &ct, &aad).unwrap(), b"secret");
        let moved = template_aad(&bob, Modality::Face, "m1");
        assert!(matches!(
            s.open(&nonce, &ct, &moved),
            Err(StoreError::Crypto)
        ));
        let relabelled = template_aad(&alice, Modality::Face, "m2");
        assert!(matches!(
            s.open(&nonce, &ct, &relabelled),
            Err(StoreError::Crypto)
        ));
        assert!(matches!(
            sealer(2).open(&nonce, &ct, &aad),
            Err(StoreError::Crypto)
        ));
        assert!(matches!(
            s.open(&nonce[..11], &ct, &aad),
            Err(StoreError::Crypto)
        ));
    }

    #[test]
    fn nonces_are_fresh() {
        let s = sealer(1);
        let (n1, _) = s.seal(b"x", b"").unwrap();
        let (n2, _) = s.seal(b"x", b"").unwrap();
        assert_ne!(n1, n2);
    }

    #[test]
    fn aad_is_unambiguous() {
        let a = template_aad(&SubjectId::new("ab").unwrap(), Modality::Face, "c");
        let b = template_aad(&SubjectId::new("a").unwrap(), Modality::Face, "bc");
        assert_ne!(a, b);
    }

    #[test]
    fn key_check_detects_a_wrong_key() {
        let check = sealer(1).make_key_check().unwrap();
        assert!(sealer(1).verify_key_check(&check));
        assert!(!sealer(2).verify_key_check(&check));
        assert!(!sealer(1).verify_key_check(&check[..5]));
    }
}
