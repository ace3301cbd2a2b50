//! Envelope encryption: every template is sealed under a data key of its own, and the
//! master key only wraps data keys (and the audit chain key).
//!
//! - The data key dies with its row: an erased template's ciphertext, wherever a copy
//!   survives (a WAL segment, a dead PostgreSQL tuple, a backup), opens only with its
//!   wrapped data key and the master key that wrapped it. Rotating the master key after an
//!   erasure and destroying the old one shreds every such copy.
//! - Rotation ([`Keyring`] with the backends' `rotate_master`) re-wraps 60-byte data keys
//!   in one write transaction; no template is re-encrypted, and readers keep reading.
//!
//! The master key comes from a 0600 key file in the key directory (see [`crate::key`]) or,
//! when [`MASTER_KEY_ENV`] is set, from the environment. All the master key ever does here
//! is `wrap`, `unwrap` and the key check, so a PKCS#11 module (`C_WrapKey`/`C_UnwrapKey`
//! on a key that never leaves the HSM) can take [`MasterKey`]'s place without touching the
//! backends.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rand::RngCore;

use crate::chain::ChainKey;
use crate::crypto::{Sealer, NONCE_LEN};
use crate::key::{self, KeyBytes, KEY_FILE, KEY_LEN};
use crate::store::{from_hex, to_hex};
use crate::StoreError;

/// Environment variable holding the master key as 64 hex digits; when set, it is used
/// instead of the key file.
pub const MASTER_KEY_ENV: &str = "IPSEITY_MASTER_KEY";
/// Environment variable holding the next master key (64 hex digits) for a rotation when
/// the master key comes from the environment.
pub const NEW_MASTER_KEY_ENV: &str = "IPSEITY_NEW_MASTER_KEY";
/// The next master key while a rotation is under way, beside [`KEY_FILE`].
pub const NEXT_KEY_FILE: &str = "template.key.next";

const DEK_TAG: &[u8] = b"ipseity-dek-v1";
const AUDIT_KEY_AAD: &[u8] = b"ipseity-audit-key-v1";
/// Length of a wrapped key: nonce, 32 key bytes, GCM tag.
pub const WRAPPED_LEN: usize = NONCE_LEN + KEY_LEN + 16;

/// The key-encryption key. Software AES-256-GCM here; the seam for an HSM.
pub(crate) struct MasterKey {
    sealer: Sealer,
    /// The chain key derived from this key, as stores made it before envelope encryption.
    first_chain: ChainKey,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

fn dek_aad(template_aad: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(DEK_TAG.len() + template_aad.len());
    aad.extend_from_slice(DEK_TAG);
    aad.extend_from_slice(template_aad);
    aad
}

fn random_key() -> Result<KeyBytes, StoreError> {
    let mut k = KeyBytes([0; KEY_LEN]);
    rand::rngs::OsRng
        .try_fill_bytes(&mut k.0)
        .map_err(|_| StoreError::Crypto)?;
    Ok(k)
}

impl MasterKey {
    pub(crate) fn new(key: &KeyBytes) -> Self {
        Self {
            sealer: Sealer::new(key),
            first_chain: ChainKey::derive(key),
        }
    }

    fn wrap_bytes(&self, key: &KeyBytes, aad: &[u8]) -> Result<Vec<u8>, StoreError> {
        let (nonce, ct) = self.sealer.seal(&key.0, aad)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    fn unwrap_bytes(&self, wrapped: &[u8], aad: &[u8]) -> Result<KeyBytes, StoreError> {
        if wrapped.len() != WRAPPED_LEN {
            return Err(StoreError::Crypto);
        }
        let (nonce, ct) = wrapped.split_at(NONCE_LEN);
        let mut plain = self.sealer.open(nonce, ct, aad)?;
        let mut k = KeyBytes([0; KEY_LEN]);
        k.0.copy_from_slice(&plain);
        plain.fill(0);
        Ok(k)
    }

    /// Seals a template plaintext under a fresh data key; returns nonce, ciphertext and
    /// the wrapped data key.
    pub(crate) fn seal_template(
        &self,
        plaintext: &[u8],
        template_aad: &[u8],
    ) -> Result<SealedTemplate, StoreError> {
        let dek = random_key()?;
        let (nonce, ct) = Sealer::new(&dek).seal(plaintext, template_aad)?;
        let wrapped = self.wrap_bytes(&dek, &dek_aad(template_aad))?;
        Ok((nonce, ct, wrapped))
    }

    /// Opens a template sealed by [`MasterKey::seal_template`]. A row from before envelope
    /// encryption (no wrapped key) was sealed under the master key itself.
    pub(crate) fn open_template(
        &self,
        nonce: &[u8],
        ciphertext: &[u8],
        wrapped: Option<&[u8]>,
        template_aad: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        match wrapped {
            Some(w) => {
                let dek = self.unwrap_bytes(w, &dek_aad(template_aad))?;
                Sealer::new(&dek).open(nonce, ciphertext, template_aad)
            }
            None => self.sealer.open(nonce, ciphertext, template_aad),
        }
    }

    /// Re-wraps a template's data key from `self` to `next`.
    pub(crate) fn rewrap(
        &self,
        next: &MasterKey,
        wrapped: &[u8],
        template_aad: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let aad = dek_aad(template_aad);
        let dek = self.unwrap_bytes(wrapped, &aad)?;
        next.wrap_bytes(&dek, &aad)
    }

    /// Wraps the audit chain key for `meta`.
    pub(crate) fn wrap_audit_key(&self, key: &KeyBytes) -> Result<Vec<u8>, StoreError> {
        self.wrap_bytes(key, AUDIT_KEY_AAD)
    }

    pub(crate) fn unwrap_audit_key(&self, wrapped: &[u8]) -> Result<KeyBytes, StoreError> {
        self.unwrap_bytes(wrapped, AUDIT_KEY_AAD)
    }

    pub(crate) fn make_key_check(&self) -> Result<Vec<u8>, StoreError> {
        self.sealer.make_key_check()
    }

    pub(crate) fn verify_key_check(&self, check: &[u8]) -> bool {
        self.sealer.verify_key_check(check)
    }
}

/// A sealed template: nonce, ciphertext, wrapped data key.
pub(crate) type SealedTemplate = ([u8; NONCE_LEN], Vec<u8>, Vec<u8>);

/// Where the master key comes from.
#[derive(Debug, Clone)]
enum Source {
    /// `template.key` (and, during a rotation, `template.key.next`) in this directory.
    File(PathBuf),
    /// [`MASTER_KEY_ENV`].
    Env,
}

fn parse_hex_key(value: &str, var: &str) -> Result<KeyBytes, StoreError> {
    let v = value.trim();
    let bad = || StoreError::KeyFile(format!("{var} must hold 64 hex digits (a 256-bit key)"));
    if v.len() != 2 * KEY_LEN || !v.is_ascii() {
        return Err(bad());
    }
    let mut k = KeyBytes([0; KEY_LEN]);
    for (i, b) in k.0.iter_mut().enumerate() {
        *b = u8::from_str_radix(&v[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(k)
}

fn env_key(var: &str) -> Result<Option<KeyBytes>, StoreError> {
    match std::env::var(var) {
        Ok(v) => parse_hex_key(&v, var).map(Some),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(StoreError::KeyFile(format!(
            "{var} must hold 64 hex digits (a 256-bit key)"
        ))),
    }
}

/// A new master key made ready by [`Keyring::prepare_next`]; installed after the
/// re-wrapping commits, discarded otherwise.
pub(crate) struct NextMaster {
    pub(crate) master: MasterKey,
    file: Option<PathBuf>,
}

impl std::fmt::Debug for NextMaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NextMaster(..)")
    }
}

/// The store's master key, reloadable: another process may rotate it while this one runs.
#[derive(Debug)]
pub(crate) struct Keyring {
    source: Source,
    current: RwLock<Arc<MasterKey>>,
}

impl Keyring {
    /// Opens the master key for a store whose key directory is `dir`. `sealed_data` says
    /// the database already holds data sealed under some key, when a missing key file is
    /// an error rather than a first run.
    pub(crate) fn open(dir: &Path, sealed_data: bool) -> Result<Self, StoreError> {
        let (source, key) = match env_key(MASTER_KEY_ENV)? {
            Some(k) => (Source::Env, k),
            None => (
                Source::File(dir.to_path_buf()),
                key::load_or_create_in(dir, sealed_data)?,
            ),
        };
        Ok(Self {
            source,
            current: RwLock::new(Arc::new(MasterKey::new(&key))),
        })
    }

    /// The master key in use.
    pub(crate) fn current(&self) -> Arc<MasterKey> {
        match self.current.read() {
            Ok(g) => Arc::clone(&g),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    fn set(&self, m: MasterKey) {
        let m = Arc::new(m);
        match self.current.write() {
            Ok(mut g) => *g = m,
            Err(p) => *p.into_inner() = m,
        }
    }

    /// What to say when no key we can load matches the database.
    fn mismatch(&self) -> StoreError {
        match &self.source {
            Source::File(dir) => StoreError::KeyFile(format!(
                "{} in {} does not match the database",
                KEY_FILE,
                dir.display()
            )),
            Source::Env => StoreError::KeyFile(format!(
                "{MASTER_KEY_ENV} does not match the database (was the master key rotated? \
                 restart with the new key)"
            )),
        }
    }

    /// Makes sure the key in use matches `check` (the database's key check), loading the
    /// key again when another process rotated it. Returns the matching key.
    pub(crate) fn matching(&self, check: &[u8]) -> Result<Arc<MasterKey>, StoreError> {
        let cur = self.current();
        if cur.verify_key_check(check) {
            return Ok(cur);
        }
        let candidates: Vec<KeyBytes> = match &self.source {
            Source::Env => env_key(MASTER_KEY_ENV)?.into_iter().collect(),
            // The rotating process renames `.next` into place just after its commit, so
            // between the two the new key is only in `.next`.
            Source::File(dir) => [KEY_FILE, NEXT_KEY_FILE]
                .iter()
                .filter_map(|name| key::load(&dir.join(name)).ok())
                .collect(),
        };
        for k in candidates {
            let m = MasterKey::new(&k);
            if m.verify_key_check(check) {
                self.set(m);
                return Ok(self.current());
            }
        }
        Err(self.mismatch())
    }

    /// Finishes or abandons a rotation that a crash interrupted. The caller holds the
    /// store's write lock (so no rotation is under way) and passes the database's check.
    pub(crate) fn settle(&self, check: &[u8]) -> Result<(), StoreError> {
        let Source::File(dir) = &self.source else {
            return Ok(());
        };
        let next = dir.join(NEXT_KEY_FILE);
        if !key::present(&next) {
            return Ok(());
        }
        if self.current().verify_key_check(check) {
            // The rotation never committed: its key was never used.
            key::remove(&next)?;
            return Ok(());
        }
        let k = key::load(&next)?;
        let m = MasterKey::new(&k);
        if !m.verify_key_check(check) {
            return Err(self.mismatch());
        }
        key::install(&next, &dir.join(KEY_FILE))?;
        self.set(m);
        Ok(())
    }

    /// A new master key: a fresh random key written to [`NEXT_KEY_FILE`] (file source), or
    /// the operator's [`NEW_MASTER_KEY_ENV`]. The caller holds the write lock.
    pub(crate) fn prepare_next(&self) -> Result<NextMaster, StoreError> {
        match &self.source {
            Source::Env => {
                let k = env_key(NEW_MASTER_KEY_ENV)?.ok_or_else(|| {
                    StoreError::InvalidInput(format!(
                        "the master key comes from {MASTER_KEY_ENV}: set {NEW_MASTER_KEY_ENV} \
                         to the new key (64 hex digits) for the rotation"
                    ))
                })?;
                Ok(NextMaster {
                    master: MasterKey::new(&k),
                    file: None,
                })
            }
            Source::File(dir) => {
                let path = dir.join(NEXT_KEY_FILE);
                // Left by a rotation that never committed (settled at open otherwise).
                if key::present(&path) {
                    key::remove(&path)?;
                }
                let k = key::create(&path)?;
                Ok(NextMaster {
                    master: MasterKey::new(&k),
                    file: Some(path),
                })
            }
        }
    }

    /// Puts the new key in place once the re-wrapping has committed.
    pub(crate) fn install(&self, next: NextMaster) -> Result<(), StoreError> {
        if let (Some(path), Source::File(dir)) = (&next.file, &self.source) {
            key::install(path, &dir.join(KEY_FILE))?;
        }
        self.set(next.master);
        Ok(())
    }

    /// Throws away a new key whose re-wrapping did not commit.
    pub(crate) fn discard(&self, next: NextMaster) {
        if let Some(path) = next.file {
            let _ = key::remove(&path);
        }
    }
}

/// The rotation's new `meta` records, as hex: the audit chain key re-wrapped from
/// `current` to `next` (from its stored hex), and the key check made by `next`.
pub(crate) fn rotated_meta(
    current: &MasterKey,
    next: &MasterKey,
    stored_audit_key: Option<String>,
) -> Result<(String, String), StoreError> {
    let stored = stored_audit_key
        .ok_or_else(|| StoreError::Corrupt("the audit key record is missing".into()))?;
    let audit_key = current.unwrap_audit_key(&from_hex(&stored)?)?;
    Ok((
        to_hex(&next.wrap_audit_key(&audit_key)?),
        to_hex(&next.make_key_check()?),
    ))
}

/// `meta` key of the wrapped audit chain key.
pub(crate) const AUDIT_KEY: &str = "audit_key";

/// The audit chain key from its wrapped copy in `meta` (hex). Without one (a new store, or
/// one from before envelope encryption), the key derived from the master key, as before,
/// with the hex to store.
pub(crate) fn chain_key(
    master: &MasterKey,
    stored: Option<&str>,
) -> Result<(ChainKey, Option<String>), StoreError> {
    match stored {
        Some(hex) => {
            let k = master.unwrap_audit_key(&from_hex(hex)?)?;
            Ok((ChainKey::from_key(&k), None))
        }
        None => {
            let wrapped = master.wrap_audit_key(&master.first_chain.to_key())?;
            Ok((
                ChainKey::from_key(&master.first_chain.to_key()),
                Some(to_hex(&wrapped)),
            ))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    fn master(b: u8) -> MasterKey {
        MasterKey::new(&KeyBytes([b; KEY_LEN]))
    }

    #[test]
    fn templates_open_only_with_their_wrapped_key_and_record() {
        let m = master(1);
        let (nonce, ct, wrapped) = m.seal_template(b"plain", b"aad-a").unwrap();
        assert_eq!(wrapped.len(), WRAPPED_LEN);
        assert_eq!(
            m.open_template(&nonce, &ct, Some(&wrapped), b"aad-a")
                .unwrap(),
            b"plain"
        );
        assert!(m
            .open_template(&nonce, &ct, Some(&wrapped), b"aad-b")
            .is_err());
        assert!(master(2)
            .open_template(&nonce, &ct, Some(&wrapped), b"aad-a")
            .is_err());
        // Another template's data key does not open this one.
        let (_, _, other) = m.seal_template(b"plain", b"aad-a").unwrap();
        assert!(m
            .open_template(&nonce, &ct, Some(&other), b"aad-a")
            .is_err());
        assert!(m
            .open_template(&nonce, &ct, Some(&wrapped[1..]), b"aad-a")
            .is_err());
    }

    #[test]
    fn rewrapping_moves_a_data_key_to_the_next_master() {
        let (old, new) = (master(1), master(2));
        let (nonce, ct, wrapped) = old.seal_template(b"plain", b"aad").unwrap();
        let rewrapped = old.rewrap(&new, &wrapped, b"aad").unwrap();
        assert_eq!(
            new.open_template(&nonce, &ct, Some(&rewrapped), b"aad")
                .unwrap(),
            b"plain"
        );
        assert!(old
            .open_template(&nonce, &ct, Some(&rewrapped), b"aad")
            .is_err());
    }

    #[test]
    fn hex_keys_are_checked() {
        let good = "ab".repeat(32);
        assert_eq!(parse_hex_key(&good, "V").unwrap().0, [0xab; KEY_LEN]);
        for bad in ["ab".repeat(31), "zz".repeat(32), "é".repeat(32)] {
            let e = parse_hex_key(&bad, "V").unwrap_err().to_string();
            assert!(e.contains("64 hex digits"), "{e}");
        }
    }
}
