//! The audit log's hash chain: each entry carries the hash of the one before it and its own,
//! an HMAC-SHA256 over its fields and that previous hash.
//!
//! The MAC key is derived from the template key, so someone who can write to the database
//! but does not hold the key file cannot forge an entry or recompute the chain after an
//! edit. Whoever holds the key could rewrite the whole chain; an exported head
//! ([`ChainHead`], `ipseity audit head`) kept outside (a ticket, a notary, a write-once
//! bucket) catches that, and also a deleted tail, which leaves a chain that is still whole.
//! When the template key gains a master key above it (envelope encryption), the chain key
//! is to be kept as a data key of its own so that it survives a rotation.

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use std::collections::HashMap;

use crate::key::KeyBytes;
use crate::store::to_hex;

/// Length of a chain hash.
pub const HASH_LEN: usize = 32;

/// The previous hash of the first entry.
pub(crate) const GENESIS: [u8; HASH_LEN] = [0; HASH_LEN];

const KEY_LABEL: &[u8] = b"ipseity-audit-chain-key-v1";
const ENTRY_TAG: &[u8] = b"ipseity-audit-entry-v1";

/// The key that MACs audit entries.
pub(crate) struct ChainKey([u8; HASH_LEN]);

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChainKey(..)")
    }
}

impl Drop for ChainKey {
    fn drop(&mut self) {
        // Best effort: the key does not outlive the store in memory that is reused.
        self.0 = [0; HASH_LEN];
    }
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail.
    match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    }
}

impl ChainKey {
    /// Derived from the template key with a label of its own, so the two never coincide.
    /// Since envelope encryption the key is kept wrapped by the master key in the database
    /// (so that rotating the master key leaves the chain valid); a store's first chain key
    /// is still derived this way, which keeps the chains of older stores valid.
    pub(crate) fn derive(key: &KeyBytes) -> Self {
        let mut m = mac(&key.0);
        m.update(KEY_LABEL);
        Self(m.finalize().into_bytes().into())
    }

    pub(crate) fn from_key(key: &KeyBytes) -> Self {
        Self(key.0)
    }

    pub(crate) fn to_key(&self) -> KeyBytes {
        KeyBytes(self.0)
    }
}

/// What every audit write needs besides the row: the chain key and who is acting.
#[derive(Debug)]
pub(crate) struct Auditor {
    pub chain: ChainKey,
    pub actor: Option<String>,
}

impl Auditor {
    pub(crate) fn new(chain: ChainKey) -> Self {
        Self { chain, actor: None }
    }
}

/// One audit row ready to insert after `prev`: its outcome, detail and hash.
pub(crate) struct NewRow {
    pub outcome: String,
    pub detail: Option<String>,
    pub hash: [u8; HASH_LEN],
}

impl Auditor {
    /// The row for `event`, chained after `prev` (the newest row's stored hash, if any).
    pub(crate) fn row(
        &self,
        prev: &[u8; HASH_LEN],
        at: &str,
        event: &ipseity_core::AuditEvent,
        subject: Option<&str>,
        purpose: Option<&str>,
    ) -> NewRow {
        let detail = event.detail();
        let detail = (!detail.is_empty()).then_some(detail);
        let outcome = event.outcome();
        let hash = entry_hash(
            &self.chain,
            prev,
            &Fields {
                at,
                operation: event.operation(),
                subject,
                purpose,
                outcome: &outcome,
                detail: detail.as_deref(),
                actor: self.actor.as_deref(),
            },
        );
        NewRow {
            outcome,
            detail,
            hash,
        }
    }
}

/// Longest actor name stored.
pub const MAX_ACTOR: usize = 256;

/// The fields an entry's hash covers: who, what, purpose, when and outcome.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields<'a> {
    pub at: &'a str,
    pub operation: &'a str,
    pub subject: Option<&'a str>,
    pub purpose: Option<&'a str>,
    pub outcome: &'a str,
    pub detail: Option<&'a str>,
    pub actor: Option<&'a str>,
}

/// The hash of one entry: a tag, the previous hash, then each field length-prefixed (a
/// missing one as a length of `u32::MAX`), so that no two different entries give the same
/// bytes.
pub(crate) fn entry_hash(key: &ChainKey, prev: &[u8; HASH_LEN], f: &Fields) -> [u8; HASH_LEN] {
    let mut m = mac(&key.0);
    m.update(ENTRY_TAG);
    m.update(prev);
    for v in [
        Some(f.at),
        Some(f.operation),
        f.subject,
        f.purpose,
        Some(f.outcome),
        f.detail,
        f.actor,
    ] {
        match v {
            Some(s) => {
                let len = u32::try_from(s.len()).unwrap_or(u32::MAX - 1);
                m.update(&len.to_be_bytes());
                m.update(s.as_bytes());
            }
            None => m.update(&u32::MAX.to_be_bytes()),
        }
    }
    m.finalize().into_bytes().into()
}

/// One stored entry as the verifier reads it.
#[derive(Debug, Clone)]
pub(crate) struct StoredEntry {
    pub id: i64,
    pub at: String,
    pub operation: String,
    pub subject: Option<String>,
    pub purpose: Option<String>,
    pub outcome: String,
    pub detail: Option<String>,
    pub actor: Option<String>,
    pub prev_hash: Option<Vec<u8>>,
    pub hash: Option<Vec<u8>>,
}

impl StoredEntry {
    /// The fields as stored (an upgrade chains old rows with these).
    pub(crate) fn fields(&self) -> Fields<'_> {
        Fields {
            at: &self.at,
            operation: &self.operation,
            subject: self.subject.as_deref(),
            purpose: self.purpose.as_deref(),
            outcome: &self.outcome,
            detail: self.detail.as_deref(),
            actor: self.actor.as_deref(),
        }
    }
}

/// The newest entry of the chain: export it, and a later `verify` against it shows that
/// nothing up to it changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ChainHead {
    /// The entry's row number.
    pub id: i64,
    /// When it was written.
    pub at: String,
    /// Its hash, lowercase hex.
    pub hash: String,
}

/// What kind of change a break shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakKind {
    /// The entry's fields no longer match its hash (or it has none).
    Edited,
    /// The entry before this one is missing.
    Deleted,
    /// This entry follows one that is not the entry just before it: something was inserted
    /// (or copied) in between.
    Inserted,
    /// This entry names as previous an entry that comes after it.
    Reordered,
    /// The exported head given to check against is missing or differs.
    Anchor,
}

/// Where the chain breaks and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainBreak {
    /// The row at which the break shows.
    pub id: i64,
    /// What it shows.
    pub kind: BreakKind,
    /// In words, for an auditor.
    pub message: String,
}

/// The result of checking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// Entries read.
    pub entries: u64,
    /// The newest entry, if any.
    pub head: Option<ChainHead>,
    /// Every break found, in row order; empty when the chain is intact.
    pub breaks: Vec<ChainBreak>,
}

impl ChainReport {
    /// Whether no break was found.
    pub fn intact(&self) -> bool {
        self.breaks.is_empty()
    }
}

pub(crate) fn to_hash(v: Option<&[u8]>) -> Option<[u8; HASH_LEN]> {
    v.and_then(|b| <[u8; HASH_LEN]>::try_from(b).ok())
}

/// Checks entries given in row order; `anchor` is an exported head to hold the chain to.
pub(crate) fn verify(
    key: &ChainKey,
    entries: impl IntoIterator<Item = StoredEntry>,
    anchor: Option<&ChainHead>,
) -> ChainReport {
    let mut breaks = Vec::new();
    // Stored hash -> position, for entries seen so far.
    let mut seen: HashMap<[u8; HASH_LEN], i64> = HashMap::new();
    // Entries whose previous hash was unknown when read: resolved at the end.
    let mut dangling: Vec<(i64, [u8; HASH_LEN])> = Vec::new();
    let mut expected = GENESIS;
    let mut count = 0u64;
    let mut last: Option<StoredEntry> = None;
    let mut anchor_seen = false;
    for e in entries {
        count += 1;
        let prev = to_hash(e.prev_hash.as_deref());
        let stored = to_hash(e.hash.as_deref());
        match (prev, stored) {
            (Some(p), Some(h)) if entry_hash(key, &p, &e.fields()) == h => {}
            _ => breaks.push(ChainBreak {
                id: e.id,
                kind: BreakKind::Edited,
                message: format!("entry {} does not match its hash: it was edited", e.id),
            }),
        }
        if let Some(p) = prev {
            if p != expected {
                match seen.get(&p) {
                    Some(&before) => breaks.push(ChainBreak {
                        id: e.id,
                        kind: BreakKind::Inserted,
                        message: format!(
                            "entry {} follows entry {before}, not the entry just before it: \
                             entries were inserted or moved in between",
                            e.id
                        ),
                    }),
                    None => dangling.push((e.id, p)),
                }
            }
        }
        if let Some(a) = anchor {
            if a.id == e.id {
                anchor_seen = true;
                if stored.map(|h| to_hex(&h)).as_deref() != Some(a.hash.as_str()) {
                    breaks.push(ChainBreak {
                        id: e.id,
                        kind: BreakKind::Anchor,
                        message: format!(
                            "entry {} differs from the exported head: the chain up to it was \
                             rewritten",
                            e.id
                        ),
                    });
                }
            }
        }
        // Follow the stored hash, so that one edit is reported once, not at every later entry.
        expected = stored.unwrap_or(GENESIS);
        if let Some(h) = stored {
            seen.insert(h, e.id);
        }
        last = Some(e);
    }
    for (id, p) in dangling {
        let (kind, message) = match seen.get(&p) {
            Some(&after) => (
                BreakKind::Reordered,
                format!("entry {id} names entry {after}, which comes after it, as its previous"),
            ),
            None => (
                BreakKind::Deleted,
                format!("the entry before entry {id} is missing: entries were deleted"),
            ),
        };
        breaks.push(ChainBreak { id, kind, message });
    }
    if let Some(a) = anchor {
        if !anchor_seen {
            breaks.push(ChainBreak {
                id: a.id,
                kind: BreakKind::Anchor,
                message: format!(
                    "entry {} named by the exported head is missing: entries were deleted",
                    a.id
                ),
            });
        }
    }
    breaks.sort_by_key(|b| b.id);
    let head = last.map(|e| ChainHead {
        id: e.id,
        at: e.at.clone(),
        hash: e.hash.as_deref().map(to_hex).unwrap_or_default(),
    });
    ChainReport {
        entries: count,
        head,
        breaks,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    fn key() -> ChainKey {
        ChainKey([7; HASH_LEN])
    }

    fn chain(n: i64) -> Vec<StoredEntry> {
        let k = key();
        let mut prev = GENESIS;
        (1..=n)
            .map(|id| {
                let mut e = StoredEntry {
                    id,
                    at: format!("2026-12-03T00:00:{id:02}Z"),
                    operation: "verify".into(),
                    subject: Some(format!("s{id}")),
                    purpose: Some("kyc".into()),
                    outcome: "accept".into(),
                    detail: None,
                    actor: Some("desk-1".into()),
                    prev_hash: Some(prev.to_vec()),
                    hash: None,
                };
                let h = entry_hash(&k, &prev, &e.fields());
                e.hash = Some(h.to_vec());
                prev = h;
                e
            })
            .collect()
    }

    fn kinds(r: &ChainReport) -> Vec<(i64, BreakKind)> {
        r.breaks.iter().map(|b| (b.id, b.kind)).collect()
    }

    #[test]
    fn an_intact_chain_verifies_and_names_its_head() {
        let c = chain(5);
        let r = verify(&key(), c.clone(), None);
        assert!(r.intact(), "{r:?}");
        assert_eq!(r.entries, 5);
        let head = r.head.unwrap();
        assert_eq!(head.id, 5);
        assert_eq!(
            head.hash,
            to_hex(c[4].hash.as_deref().unwrap()),
            "the head is the newest entry's hash"
        );
        assert!(verify(&key(), Vec::new(), None).intact());
    }

    #[test]
    fn each_kind_of_change_is_found_where_it_is() {
        let mut c = chain(6);
        c[2].outcome = "reject".into();
        assert_eq!(kinds(&verify(&key(), c, None)), [(3, BreakKind::Edited)]);

        let mut c = chain(6);
        c.remove(2);
        assert_eq!(kinds(&verify(&key(), c, None)), [(4, BreakKind::Deleted)]);

        // A copy of entry 2 appended: its own hash is valid, its place is not.
        let mut c = chain(6);
        let mut copy = c[1].clone();
        copy.id = 7;
        c.push(copy);
        assert_eq!(kinds(&verify(&key(), c, None)), [(7, BreakKind::Inserted)]);

        // Entries 3 and 4 swapped.
        let mut c = chain(6);
        c.swap(2, 3);
        c[2].id = 3;
        c[3].id = 4;
        let k = kinds(&verify(&key(), c, None));
        assert!(k.contains(&(3, BreakKind::Reordered)), "{k:?}");

        // The wrong key (a forger without the key file) breaks every entry.
        let r = verify(&ChainKey([8; HASH_LEN]), chain(3), None);
        assert_eq!(r.breaks.len(), 3);
    }

    #[test]
    fn an_exported_head_catches_a_deleted_tail_and_a_rewrite() {
        let c = chain(6);
        let head = verify(&key(), c.clone(), None).head.unwrap();
        assert!(verify(&key(), c.clone(), Some(&head)).intact());
        // The tail deleted: the rest is a whole chain, the anchor is not there.
        let short: Vec<_> = c.iter().take(4).cloned().collect();
        assert!(verify(&key(), short.clone(), None).intact());
        assert_eq!(
            kinds(&verify(&key(), short, Some(&head))),
            [(6, BreakKind::Anchor)]
        );
        // Rewritten by whoever holds the key: whole again, but not the exported one.
        let mut other = chain(6);
        other[0].outcome = "reject".into();
        let k = key();
        let mut prev = GENESIS;
        for e in &mut other {
            e.prev_hash = Some(prev.to_vec());
            let h = entry_hash(&k, &prev, &e.fields());
            e.hash = Some(h.to_vec());
            prev = h;
        }
        assert!(verify(&key(), other.clone(), None).intact());
        assert_eq!(
            kinds(&verify(&key(), other, Some(&head))),
            [(6, BreakKind::Anchor)]
        );
    }
}
