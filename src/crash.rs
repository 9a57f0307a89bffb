//! Crash points: places the reliability suite can abort the process (`failpoints` feature,
//! `FAILPOINTS` environment variable); compiled to nothing otherwise.

/// Aborts the process here when the crash point `name` is armed.
#[cfg_attr(not(feature = "failpoints"), allow(unused_variables))]
pub fn crash_point(name: &str) {
    fail::fail_point!(name, |_| std::process::abort());
}
