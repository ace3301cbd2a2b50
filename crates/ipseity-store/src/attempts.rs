//! Limits on failed verifications of one subject (NIST SP 800-63B, 5.2.2): after
//! [`AttemptPolicy::free_failures`] consecutive failures each attempt waits a back-off that
//! starts at [`AttemptPolicy::base_backoff_s`] and doubles; after
//! [`AttemptPolicy::max_failures`] verification is disabled until an administrator unlocks
//! the subject. The state lives in the database, so it holds across restarts and across
//! every process on one database.
//!
//! An attempt is counted as failed when it begins ([`Backend::begin_attempt`]) and cleared
//! when it ends in an accept ([`Backend::finish_attempt`]), inside the writers' lock: a
//! burst of parallel attempts is counted in full, and an attempt cut off by a crash counts
//! as failed.
//!
//! [`Backend::begin_attempt`]: crate::Backend::begin_attempt
//! [`Backend::finish_attempt`]: crate::Backend::finish_attempt

use serde::Serialize;

/// The limits in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptPolicy {
    /// Consecutive failures allowed before a back-off.
    pub free_failures: u32,
    /// The first back-off, seconds; each further failure doubles it.
    pub base_backoff_s: u64,
    /// Consecutive failures after which verification is disabled.
    pub max_failures: u32,
}

impl Default for AttemptPolicy {
    fn default() -> Self {
        Self {
            free_failures: 5,
            base_backoff_s: 30,
            max_failures: 100,
        }
    }
}

/// Whether a verification may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "gate")]
pub enum AttemptGate {
    /// Go ahead (the attempt is counted as failed until it is finished as accepted).
    Open,
    /// Backing off: try again in this many seconds.
    Locked {
        /// Seconds to wait.
        retry_after_s: u64,
    },
    /// Disabled until an administrator unlocks the subject.
    Disabled,
}

impl AttemptGate {
    /// The audit event of a refused attempt; `None` when the attempt may go ahead.
    pub fn refusal(self) -> Option<ipseity_core::AuditEvent> {
        match self {
            AttemptGate::Open => None,
            AttemptGate::Locked { retry_after_s } => {
                Some(ipseity_core::AuditEvent::VerificationLocked {
                    disabled: false,
                    retry_after_s,
                })
            }
            AttemptGate::Disabled => Some(ipseity_core::AuditEvent::VerificationLocked {
                disabled: true,
                retry_after_s: 0,
            }),
        }
    }
}

/// A subject's row: consecutive failures so far, back-off end (Unix seconds), disabled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct AttemptState {
    pub failures: i64,
    pub locked_until: Option<i64>,
    pub disabled: bool,
}

/// The gate for an attempt at `now`, and the state to write if it goes ahead (or becomes
/// disabled).
pub(crate) fn begin(
    state: AttemptState,
    now: i64,
    p: &AttemptPolicy,
) -> (AttemptGate, Option<AttemptState>) {
    if state.disabled {
        return (AttemptGate::Disabled, None);
    }
    if let Some(until) = state.locked_until {
        if until > now {
            let wait = u64::try_from(until - now).unwrap_or(u64::MAX);
            return (
                AttemptGate::Locked {
                    retry_after_s: wait,
                },
                None,
            );
        }
    }
    if state.failures >= i64::from(p.max_failures) {
        let next = AttemptState {
            disabled: true,
            ..state
        };
        return (AttemptGate::Disabled, Some(next));
    }
    let failures = state.failures + 1;
    let locked_until = (failures >= i64::from(p.free_failures.max(1))).then(|| {
        // Doubling stops at 2^20 (a year from 30 s): the cap on failures ends it anyway.
        let doublings = (failures - i64::from(p.free_failures.max(1))).clamp(0, 20) as u32;
        let wait = p.base_backoff_s.saturating_mul(1u64 << doublings);
        now.saturating_add(i64::try_from(wait).unwrap_or(i64::MAX))
    });
    (
        AttemptGate::Open,
        Some(AttemptState {
            failures,
            locked_until,
            disabled: false,
        }),
    )
}

/// Seconds since the Unix epoch (0 if the clock is before it): the limits' clock.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A budget's use after spending `amount` of `limit` on top of `used`, or `None` when that
/// would go over.
pub(crate) fn budget_after(used: i64, amount: u64, limit: u64) -> Option<i64> {
    let used = u64::try_from(used).unwrap_or(0);
    let next = used.checked_add(amount)?;
    (next <= limit).then(|| i64::try_from(next).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(state: &mut AttemptState, now: i64, accept: bool) -> AttemptGate {
        let (gate, next) = begin(*state, now, &AttemptPolicy::default());
        if let Some(n) = next {
            *state = n;
        }
        if gate == AttemptGate::Open && accept {
            *state = AttemptState::default();
        }
        gate
    }

    #[test]
    fn five_failures_then_a_doubling_back_off_then_disabled() {
        let mut s = AttemptState::default();
        for _ in 0..4 {
            assert_eq!(run(&mut s, 1000, false), AttemptGate::Open);
        }
        // The fifth goes ahead; failing, it starts a 30 s back-off.
        assert_eq!(run(&mut s, 1000, false), AttemptGate::Open);
        assert_eq!(
            run(&mut s, 1010, false),
            AttemptGate::Locked { retry_after_s: 20 }
        );
        assert_eq!(run(&mut s, 1030, false), AttemptGate::Open);
        assert_eq!(
            run(&mut s, 1031, false),
            AttemptGate::Locked { retry_after_s: 59 }
        );
        // An accept clears everything.
        assert_eq!(run(&mut s, 1090, true), AttemptGate::Open);
        assert_eq!(s, AttemptState::default());
        // 100 failures, each after its back-off: the 101st is refused for good.
        let mut now = 0i64;
        for k in 0..100 {
            assert_eq!(run(&mut s, now, false), AttemptGate::Open, "attempt {k}");
            now = s.locked_until.unwrap_or(now);
        }
        assert_eq!(run(&mut s, now, false), AttemptGate::Disabled);
        assert_eq!(
            run(&mut s, now + 1_000_000_000, true),
            AttemptGate::Disabled
        );
    }
}
