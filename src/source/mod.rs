//! Source stage: a [`PageSource`] makes one attempt at one page of one API; [`PacedSource`] is
//! the one loop around it that takes a rate-limiter permit for every attempt (retries included)
//! and retries what [`Error::is_retryable`] allows, with decorrelated jitter.

pub mod counts;
pub mod get_findings;
pub mod page;
pub mod retry;

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use page::Page;
use retry::RetryPolicy;

/// The limiter paces this much under the rate, so timer and network jitter never land a request
/// just ahead of the service's own token bucket (which would answer 429).
pub const PACING_MARGIN: f64 = 0.005;

/// Requests of the burst the limiter keeps unused (when the burst allows): a request delayed in
/// transit and the next one arriving together then find a token in the service's bucket instead
/// of a 429. Costs one request interval per run, at the start.
pub const BURST_RESERVE: u32 = 1;

/// A rate limiter shared by everything that draws on one quota.
pub type Limiter = Arc<DefaultDirectRateLimiter>;

/// Requests per second and burst, checked once; every attempt takes a permit at this pace.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pace {
    /// Requests per second.
    pub rate: f64,
    /// Requests allowed at once before the rate applies.
    pub burst: u32,
}

impl Pace {
    /// A pace, or a usage error when either value is not positive.
    pub fn new(rate: f64, burst: u32) -> Result<Pace> {
        let pace = Pace { rate, burst };
        pace.quota().map(|_| pace)
    }

    fn quota(&self) -> Result<Quota> {
        let bad = || {
            Error::Usage(format!(
                "invalid --rate {} / --burst {}: both must be positive",
                self.rate, self.burst
            ))
        };
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return Err(bad());
        }
        let period = Duration::from_secs_f64((1.0 + PACING_MARGIN) / self.rate);
        if self.burst == 0 {
            return Err(bad());
        }
        let burst =
            NonZeroU32::new(self.burst.saturating_sub(BURST_RESERVE)).unwrap_or(NonZeroU32::MIN);
        Ok(Quota::with_period(period)
            .ok_or_else(bad)?
            .allow_burst(burst))
    }

    /// A fresh limiter at this pace.
    pub fn limiter(&self) -> Limiter {
        let quota = self.quota().expect("a Pace is validated when made");
        Arc::new(RateLimiter::direct(quota))
    }
}

/// One attempt at one page of one API. An error for which [`Error::is_retryable`] holds is
/// retried by [`PacedSource`]; any other ends the run.
#[async_trait]
pub trait PageSource: Send + Sync {
    /// Fetches the page after `token` (`None`: the first page) once; `page` numbers messages.
    async fn attempt(&self, token: Option<&str>, page: u64) -> Result<Page>;
}

/// Counters of what a source sent and saw.
#[derive(Debug, Default)]
pub struct SourceStats {
    requests: AtomicU64,
    throttled: AtomicU64,
    faults: AtomicU64,
    pages: AtomicU64,
    findings: AtomicU64,
}

/// A copy of [`SourceStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SourceCounts {
    /// Attempts sent (every one took a limiter permit).
    pub requests: u64,
    /// Attempts the service throttled.
    pub throttled: u64,
    /// Attempts that failed otherwise and were retried.
    pub faults: u64,
    /// Pages received.
    pub pages: u64,
    /// Findings on the pages received (read, not yet necessarily written).
    pub findings: u64,
}

impl SourceStats {
    /// The counters now.
    pub fn snapshot(&self) -> SourceCounts {
        SourceCounts {
            requests: self.requests.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            faults: self.faults.load(Ordering::Relaxed),
            pages: self.pages.load(Ordering::Relaxed),
            findings: self.findings.load(Ordering::Relaxed),
        }
    }
}

/// The one limiter + retry loop: every attempt waits for a permit, retryable failures back off.
pub struct PacedSource {
    inner: Arc<dyn PageSource>,
    limiter: Limiter,
    policy: RetryPolicy,
    rng: Mutex<SmallRng>,
    stats: Arc<SourceStats>,
    fault_limit: Option<u32>,
}

impl PacedSource {
    /// Paces `inner` with `limiter` (shared by every source drawing on the same quota).
    pub fn new(inner: Arc<dyn PageSource>, limiter: Limiter, policy: RetryPolicy) -> Self {
        Self::with_rng(inner, limiter, policy, SmallRng::from_os_rng())
    }

    /// As [`PacedSource::new`], with the backoff jitter drawn from `rng` (tests seed it).
    pub fn with_rng(
        inner: Arc<dyn PageSource>,
        limiter: Limiter,
        policy: RetryPolicy,
        rng: SmallRng,
    ) -> Self {
        PacedSource {
            inner,
            limiter,
            policy,
            rng: Mutex::new(rng),
            stats: Arc::default(),
            fault_limit: None,
        }
    }

    /// Counts into `stats` (shared by every chain of a stream) instead of its own counters.
    pub fn with_stats(mut self, stats: Arc<SourceStats>) -> Self {
        self.stats = stats;
        self
    }

    /// Gives up on a page after `faults` server errors or lost connections (throttling still
    /// has the whole policy): for a request the service may not support, such as a sort.
    pub fn with_fault_limit(mut self, faults: u32) -> Self {
        self.fault_limit = Some(faults);
        self
    }

    /// The counters of this source.
    pub fn stats(&self) -> Arc<SourceStats> {
        self.stats.clone()
    }

    /// Fetches the page after `token`, retrying what is retryable within the policy's bounds.
    pub async fn fetch(&self, token: Option<&str>, number: u64) -> Result<Page> {
        self.fetch_timed(token, number).await.map(|(page, _)| page)
    }

    /// As [`PacedSource::fetch`], with how long the successful attempt took (the service's
    /// latency, without permits waited for or failed attempts).
    pub async fn fetch_timed(&self, token: Option<&str>, number: u64) -> Result<(Page, Duration)> {
        let paced = retry::Paced {
            limiter: &self.limiter,
            policy: self.policy,
            rng: &self.rng,
            stats: &self.stats,
            fault_limit: self.fault_limit,
        };
        let (page, took) = paced
            .call(number, || self.inner.attempt(token, number))
            .await?;
        self.stats.pages.fetch_add(1, Ordering::Relaxed);
        self.stats
            .findings
            .fetch_add(page.len() as u64, Ordering::Relaxed);
        Ok((page, took))
    }
}

#[cfg(test)]
mod tests;
