//! What a relying party's API key may do: its scopes (operations) and purposes.

use std::fmt;

use serde::Serialize;

/// An operation a key may be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Create subjects and enrol samples.
    Enrol,
    /// 1:1 verification.
    Verify,
    /// 1:N identification.
    Identify,
    /// Erasure, keys and the audit log.
    Admin,
    /// Resolve enrolments held for review (possible duplicates).
    Review,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 5] = [
        Scope::Enrol,
        Scope::Verify,
        Scope::Identify,
        Scope::Admin,
        Scope::Review,
    ];

    /// The scope's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Enrol => "enrol",
            Scope::Verify => "verify",
            Scope::Identify => "identify",
            Scope::Admin => "admin",
            Scope::Review => "review",
        }
    }

    /// Parses a scope's word (`enroll` is accepted for `enrol`).
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "enrol" | "enroll" => Some(Scope::Enrol),
            "verify" => Some(Scope::Verify),
            "identify" => Some(Scope::Identify),
            "admin" => Some(Scope::Admin),
            "review" => Some(Scope::Review),
            _ => None,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An API key as stored: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    /// The public part of the key, shown in listings.
    pub id: String,
    /// The relying party's name for it, e.g. `bank-a`.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// The purposes it may state; an operation with another purpose is refused.
    pub purposes: Vec<String>,
    /// When it was created, RFC 3339 UTC.
    pub created_at: String,
    /// When it was revoked, if it was.
    pub revoked_at: Option<String>,
}

impl ApiKey {
    /// Whether the key grants `scope` (admin grants none but its own).
    pub fn allows(&self, scope: Scope) -> bool {
        self.revoked_at.is_none() && self.scopes.contains(&scope)
    }

    /// Whether the key may state `purpose`.
    pub fn allows_purpose(&self, purpose: &str) -> bool {
        self.purposes.iter().any(|p| p == purpose)
    }
}
