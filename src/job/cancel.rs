//! Cancellation shared by every stage of a run (and later every stream): cloneable, the first
//! reason given wins, and stages stop at the next part boundary when it fires.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// A stop request with its reason (`interrupted`, `--max-duration reached`, a deadline...).
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    token: CancellationToken,
    reason: Arc<OnceLock<String>>,
}

impl Cancel {
    /// A token nobody has cancelled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every holder to stop at the next part boundary; the first reason is kept.
    pub fn cancel(&self, reason: impl Into<String>) {
        let _ = self.reason.set(reason.into());
        self.token.cancel();
    }

    /// Resolves once cancelled.
    pub async fn cancelled(&self) {
        self.token.cancelled().await
    }

    /// True once cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Why it was cancelled, if it was.
    pub fn reason(&self) -> Option<String> {
        self.reason.get().cloned()
    }

    /// Cancels with `reason` after `after`, unless the returned guard is dropped first.
    pub fn cancel_after(&self, after: Duration, reason: &str) -> TimerGuard {
        let cancel = self.clone();
        let reason = reason.to_string();
        TimerGuard(tokio::spawn(async move {
            tokio::time::sleep(after).await;
            cancel.cancel(reason);
        }))
    }
}

/// Stops a pending [`Cancel::cancel_after`] timer when dropped.
#[derive(Debug)]
pub struct TimerGuard(tokio::task::JoinHandle<()>);

impl Drop for TimerGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_first_reason_wins_and_clones_see_it() {
        let cancel = Cancel::new();
        let clone = cancel.clone();
        let _timer = cancel.cancel_after(Duration::from_secs(5), "--max-duration reached");
        clone.cancelled().await;
        cancel.cancel("interrupted");
        assert_eq!(clone.reason().as_deref(), Some("--max-duration reached"));
        assert!(cancel.is_cancelled());
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_timer_never_fires() {
        let cancel = Cancel::new();
        drop(cancel.cancel_after(Duration::from_secs(1), "late"));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!cancel.is_cancelled());
    }
}
