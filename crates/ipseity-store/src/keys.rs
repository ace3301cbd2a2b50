//! Relying parties' API keys. A key is `ipk_<id>_<secret>`: the id is public (it names the
//! row), the secret is 256 random bits of which only the SHA-256 is kept, so a copy of the
//! database lets no one call the service. A high-entropy secret needs no slow password
//! hash; the comparison is constant-time.

use ipseity_core::{ApiKey, AuditEvent, Scope};
use rand::RngCore as _;
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use sha2::{Digest as _, Sha256};

use crate::store::insert_audit;
use crate::{clock, Store, StoreError};

/// The prefix of every key, so that a leaked key is recognisable by secret scanners.
pub const KEY_PREFIX: &str = "ipk_";

/// Longest key name, in bytes.
pub const MAX_KEY_NAME: usize = 64;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Constant-time equality of two digests.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_KEY_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

pub(crate) fn join_scopes(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn row_to_key(
    id: String,
    name: String,
    scopes: String,
    purposes: String,
    created_at: String,
    revoked_at: Option<String>,
) -> Result<ApiKey, StoreError> {
    let scopes = scopes
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| Scope::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown scope {s:?}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let purposes = purposes
        .split('\n')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(ApiKey {
        id,
        name,
        scopes,
        purposes,
        created_at,
        revoked_at,
    })
}

/// Checks a new key's fields and draws its id and secret.
pub(crate) fn new_key_material(
    name: &str,
    scopes: &[Scope],
    purposes: &[String],
) -> Result<(String, String), StoreError> {
    if !valid_name(name) {
        return Err(StoreError::InvalidInput(format!(
            "key name {name:?}: use 1 to {MAX_KEY_NAME} characters from A-Z a-z 0-9 . _ -"
        )));
    }
    if scopes.is_empty() {
        return Err(StoreError::InvalidInput(
            "a key needs at least one scope".into(),
        ));
    }
    if purposes
        .iter()
        .any(|p| p.is_empty() || p.len() > crate::MAX_PURPOSE || p.contains('\n'))
    {
        return Err(StoreError::InvalidInput(format!(
            "purposes must be 1 to {} bytes on one line",
            crate::MAX_PURPOSE
        )));
    }
    let mut id = [0u8; 6];
    let mut secret = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut id)
        .and_then(|()| rand::rngs::OsRng.try_fill_bytes(&mut secret))
        .map_err(|e| StoreError::KeyFile(format!("no operating-system randomness: {e}")))?;
    let (id, secret) = (hex(&id), hex(&secret));
    Ok((id, secret))
}

/// The id and secret of a well-formed presented key.
pub(crate) fn split_presented(presented: &str) -> Option<(&str, &str)> {
    let (id, secret) = presented.strip_prefix(KEY_PREFIX)?.split_once('_')?;
    (id.len() == 12 && secret.len() == 64).then_some((id, secret))
}

/// The key a stored row describes, if `secret` is its secret and it is not revoked.
#[allow(clippy::too_many_arguments)] // One row of `api_keys`, column by column.
pub(crate) fn check_presented(
    secret: &str,
    id: String,
    name: String,
    hash: &[u8],
    scopes: String,
    purposes: String,
    created_at: String,
    revoked_at: Option<String>,
) -> Result<Option<ApiKey>, StoreError> {
    if !same(hash, &digest(secret)) || revoked_at.is_some() {
        return Ok(None);
    }
    row_to_key(id, name, scopes, purposes, created_at, revoked_at).map(Some)
}

impl Store {
    /// Creates a key and returns it; it is never shown again. The creation is audited
    /// under the key's name.
    pub fn create_key(
        &mut self,
        name: &str,
        scopes: &[Scope],
        purposes: &[String],
    ) -> Result<(ApiKey, String), StoreError> {
        let (id, secret) = new_key_material(name, scopes, purposes)?;
        let now = clock::now_rfc3339();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let inserted = tx.execute(
            "INSERT INTO api_keys (id, name, secret_sha256, scopes, purposes, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(name) DO NOTHING",
            params![
                id,
                name,
                digest(&secret),
                join_scopes(scopes),
                purposes.join("\n"),
                now
            ],
        )?;
        if inserted == 0 {
            return Err(StoreError::InvalidInput(format!(
                "a key named {name:?} exists already; revoke it or choose another name"
            )));
        }
        insert_audit(
            &tx,
            &self.auditor,
            &now,
            &AuditEvent::KeyCreated {
                name: name.to_owned(),
            },
            None,
            None,
        )?;
        tx.commit()?;
        let key = ApiKey {
            id: id.clone(),
            name: name.to_owned(),
            scopes: scopes.to_vec(),
            purposes: purposes.to_vec(),
            created_at: now,
            revoked_at: None,
        };
        Ok((key, format!("{KEY_PREFIX}{id}_{secret}")))
    }

    /// Every key, revoked ones included, by name.
    pub fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, name, scopes, purposes, created_at, revoked_at FROM api_keys ORDER BY name",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(a, b, c, d, e, f)| row_to_key(a, b, c, d, e, f))
            .collect()
    }

    /// Revokes a key by name (audited). Unknown names are [`StoreError::InvalidInput`].
    pub fn revoke_key(&mut self, name: &str) -> Result<(), StoreError> {
        let now = clock::now_rfc3339();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE api_keys SET revoked_at = ?1 WHERE name = ?2 AND revoked_at IS NULL",
            params![now, name],
        )?;
        if n == 0 {
            return Err(StoreError::InvalidInput(format!(
                "no active key named {name:?}"
            )));
        }
        insert_audit(
            &tx,
            &self.auditor,
            &now,
            &AuditEvent::KeyRevoked {
                name: name.to_owned(),
            },
            None,
            None,
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The active key a presented key string names, or `None` for anything else
    /// (malformed, unknown, wrong secret, revoked).
    pub fn authenticate(&self, presented: &str) -> Result<Option<ApiKey>, StoreError> {
        let Some((id, secret)) = split_presented(presented) else {
            return Ok(None);
        };
        let row = self
            .conn
            .query_row(
                "SELECT id, name, secret_sha256, scopes, purposes, created_at, revoked_at
                 FROM api_keys WHERE id = ?1",
                [id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, Option<String>>(6)?,
                    ))
                },
            )
            .optional()?;
        let Some((id, name, hash, scopes, purposes, created_at, revoked_at)) = row else {
            return Ok(None);
        };
        check_presented(
            secret, id, name, &hash, scopes, purposes, created_at, revoked_at,
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    #[test]
    fn a_key_authenticates_until_revoked_and_only_its_hash_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let (info, key) = s
            .create_key(
                "bank-a",
                &[Scope::Verify, Scope::Identify],
                &["onboarding".to_owned()],
            )
            .unwrap();
        assert!(key.starts_with(KEY_PREFIX));
        let found = s.authenticate(&key).unwrap().unwrap();
        assert_eq!(found, info);
        assert!(found.allows(Scope::Verify) && !found.allows(Scope::Admin));
        assert!(found.allows_purpose("onboarding") && !found.allows_purpose("marketing"));
        // A wrong secret, a malformed key and another id are all just "no key".
        let mut wrong = key.clone();
        wrong.pop();
        wrong.push(if key.ends_with('0') { '1' } else { '0' });
        assert_eq!(s.authenticate(&wrong).unwrap(), None);
        assert_eq!(s.authenticate("ipk_nonsense").unwrap(), None);
        assert_eq!(s.authenticate("").unwrap(), None);
        // The secret is nowhere in the database file.
        drop(s);
        let raw = std::fs::read(dir.path().join(crate::DB_FILE)).unwrap();
        let secret = key.rsplit('_').next().unwrap();
        assert!(!raw.windows(secret.len()).any(|w| w == secret.as_bytes()));
        let mut s = Store::open(dir.path()).unwrap();
        assert!(s.create_key("bank-a", &[Scope::Verify], &[]).is_err());
        s.revoke_key("bank-a").unwrap();
        assert_eq!(s.authenticate(&key).unwrap(), None);
        assert!(s.revoke_key("bank-a").is_err());
        let ops: Vec<String> = s
            .audit_log(10)
            .unwrap()
            .into_iter()
            .map(|e| e.operation)
            .collect();
        assert_eq!(ops, ["key_revoke", "key_create"]);
        assert!(s.list_keys().unwrap()[0].revoked_at.is_some());
    }
}
