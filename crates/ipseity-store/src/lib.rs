//! Embedded, crash-safe store of enrolled subjects, encrypted templates and the audit log.
//!
//! A store is one directory holding two files:
//!
//! - `ipseity.db`, an SQLite database in WAL mode with `synchronous=FULL`, foreign keys and
//!   `secure_delete` on, whose schema is versioned by [`schema`] migrations;
//! - `template.key`, a 0600 key file (magic, 32 random bytes, CRC-32; see [`key`]).
//!
//! Templates are encoded by [`codec`] (versioned, validated) and sealed with AES-256-GCM
//! under a random nonce, with the subject, modality and model as associated data, so a
//! ciphertext moved to another record fails to open. Every write is one transaction that
//! also appends an audit row.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ipseity_core::{Modality, SubjectId, Template};
//! use ipseity_store::Store;
//!
//! let mut store = Store::open(std::path::Path::new("/var/lib/ipseity"))?;
//! let alice = SubjectId::new("alice")?;
//! let t = Template::new(Modality::Face, "dlib-resnet-v1", vec![0.1; 128], 90)?;
//! store.enroll(&alice, &[t], Some("access-control"))?;
//! assert_eq!(store.templates(&alice)?.len(), 1);
//! # Ok(()) }
//! ```
//!
//! Both backends, the embedded [`Store`] and [`PgStore`] on PostgreSQL, implement
//! [`Backend`]; the engine and the service work on that trait.
//!
//! **Architecture invariant:** this is the only crate that knows SQL or touches the key.
//! It never logs or prints, and neither its errors nor its audit rows carry template
//! values or similarity scores.
#![deny(missing_docs)]
// No SIMD kernels live here, so nothing needs unsafe code (the tidy test holds every
// crate without them to this).
#![forbid(unsafe_code)]

pub mod attempts;
mod backend;
pub mod chain;
mod clock;
pub mod codec;
mod crypto;
pub mod envelope;
mod error;
pub mod key;
pub mod keys;
mod pg;
pub mod schema;
mod source;
mod store;
mod write;

pub use backend::{Backend, WriteOps};
pub use codec::TemplateError;
pub use error::StoreError;
pub use pg::{PgStore, PG_SCHEMA_VERSION};
pub use store::{
    AuditEntry, Erasure, PendingReview, ReviewOutcome, Store, SubjectSummary, DB_FILE, MAX_PURPOSE,
    MIN_FREE_BYTES,
};
pub use write::{TemplateMark, WriteTx};
