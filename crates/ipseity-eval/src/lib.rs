//! Placeholder, filled in shortly.
