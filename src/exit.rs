//! The exit statuses kimage ends with (documented in README.md and docs/cli.md). 0 is success. Every
//! stage's error type says which of these it ends with (`exit_code()`).

/// A failure while working: I/O, network, an external program.
pub const FAILURE: u8 = 1;
/// Invalid input: the profile, an argument or a flag. Nothing was written.
pub const INVALID: u8 = 2;
/// Prerequisite state is missing or stale: run the command the message names (kimage lock, fetch, pki).
pub const STATE: u8 = 3;
/// Verification failed: a digest mismatch or corrupt state. Nothing unverified was used.
pub const VERIFY: u8 = 4;
