//! The one retry classifier for Security Hub calls, and the one retry loop: every attempt takes
//! a rate-limiter permit, retryable failures back off with decorrelated jitter bounded by
//! attempt count and wall time.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::Rng;

use super::{Limiter, SourceStats};
use crate::aws::Failure;
use crate::error::{Error, Result};

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The service said slow down (429 and its codes): retry through the rate limiter.
    Throttled,
    /// A server fault or a lost connection: retry after a backoff.
    Transient,
    /// The request itself is wrong or not allowed: do not retry.
    Fatal,
}

/// Error codes that mean "over quota" (the model declares LimitExceededException, the service
/// sends TooManyRequestsException; GetFindingsV2 sends ThrottlingException).
const THROTTLING_CODES: &[&str] = &[
    "TooManyRequestsException",
    "LimitExceededException",
    "ThrottlingException",
    "Throttling",
    "SlowDown",
    "RequestLimitExceeded",
];

/// Classifies a failed GetFindings attempt.
pub fn classify(failure: &Failure) -> Verdict {
    if failure.status == Some(429)
        || failure
            .code
            .as_deref()
            .is_some_and(|c| THROTTLING_CODES.contains(&c))
    {
        return Verdict::Throttled;
    }
    if failure.transport
        || failure.status.is_some_and(|s| s >= 500)
        || failure.code.as_deref() == Some("InternalException")
    {
        return Verdict::Transient;
    }
    Verdict::Fatal
}

/// The error a failed attempt becomes when it is worth retrying; `None` when it is not.
pub fn retryable_error(failure: &Failure) -> Option<Error> {
    let throttled = match classify(failure) {
        Verdict::Throttled => true,
        Verdict::Transient => false,
        Verdict::Fatal => return None,
    };
    Some(Error::Transient {
        throttled,
        message: failure.summary(),
    })
}

/// Bounds and pacing of retries for one page.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts at one page before giving up.
    pub max_attempts: u32,
    /// Give up on a page when its retries have taken this long.
    pub max_elapsed: Duration,
    /// The shortest backoff, and the first one's upper bound.
    pub base_delay: Duration,
    /// The longest backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 12,
            max_elapsed: Duration::from_secs(300),
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// The next delay after `previous`: uniform in [base, 3 * previous], capped (decorrelated jitter).
    pub fn next_delay(&self, previous: Duration, rng: &mut impl Rng) -> Duration {
        let low = self.base_delay.as_secs_f64();
        let high = (previous.as_secs_f64() * 3.0).max(low);
        let chosen = rng.random_range(low..=high);
        Duration::from_secs_f64(chosen).min(self.max_delay)
    }
}

/// One call's pacing and retry bounds, and where its attempts are counted.
pub struct Paced<'a> {
    /// The quota's limiter: every attempt waits for a permit.
    pub limiter: &'a Limiter,
    /// Attempt and time bounds.
    pub policy: RetryPolicy,
    /// Backoff jitter.
    pub rng: &'a Mutex<SmallRng>,
    /// Attempts, throttles and faults are counted here.
    pub stats: &'a SourceStats,
    /// Give up after this many server errors or lost connections (throttling still has the
    /// whole policy).
    pub fault_limit: Option<u32>,
}

impl Paced<'_> {
    /// Runs `attempt` until it succeeds, fails for good, or the bounds are spent; returns what
    /// it gave and how long the successful attempt took. `number` names the call in messages.
    pub async fn call<T, F, Fut>(&self, number: u64, mut attempt: F) -> Result<(T, Duration)>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let started = tokio::time::Instant::now();
        let mut delay = self.policy.base_delay;
        let mut attempts = 0;
        let mut faults = 0;
        loop {
            attempts += 1;
            self.limiter.until_ready().await;
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let sent = tokio::time::Instant::now();
            let failure = match attempt().await {
                Ok(value) => return Ok((value, sent.elapsed())),
                Err(err) if err.is_retryable() => err,
                Err(err) => return Err(err),
            };
            let throttled = matches!(
                failure,
                Error::Transient {
                    throttled: true,
                    ..
                }
            );
            if throttled {
                self.stats.throttled.fetch_add(1, Ordering::Relaxed);
            } else {
                self.stats.faults.fetch_add(1, Ordering::Relaxed);
                faults += 1;
            }
            let faulted_out = self.fault_limit.is_some_and(|limit| faults >= limit);
            if faulted_out
                || attempts >= self.policy.max_attempts
                || started.elapsed() >= self.policy.max_elapsed
            {
                return Err(Error::Source {
                    page: number,
                    message: format!(
                        "gave up after {attempts} attempts in {:.0?}; re-run the same command to resume from the last checkpoint",
                        started.elapsed()
                    ),
                    source: Some(Box::new(failure)),
                });
            }
            tracing::debug!(call = number, attempts, "retrying after {failure}");
            delay = {
                let mut rng = self.rng.lock().expect("rng lock");
                self.policy.next_delay(delay, &mut *rng)
            };
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(status: Option<u16>, code: Option<&str>, transport: bool) -> Failure {
        Failure {
            status,
            code: code.map(str::to_string),
            message: String::new(),
            transport,
        }
    }

    #[test]
    fn throttling_faults_and_lost_connections_are_retried_input_and_access_errors_are_not() {
        let cases = [
            (
                Some(429),
                Some("TooManyRequestsException"),
                false,
                Verdict::Throttled,
            ),
            (
                Some(400),
                Some("LimitExceededException"),
                false,
                Verdict::Throttled,
            ),
            (
                Some(400),
                Some("ThrottlingException"),
                false,
                Verdict::Throttled,
            ),
            (
                Some(500),
                Some("InternalException"),
                false,
                Verdict::Transient,
            ),
            (Some(503), None, false, Verdict::Transient),
            (None, None, true, Verdict::Transient),
            (
                Some(400),
                Some("InvalidInputException"),
                false,
                Verdict::Fatal,
            ),
            (
                Some(401),
                Some("InvalidAccessException"),
                false,
                Verdict::Fatal,
            ),
            (
                Some(403),
                Some("AccessDeniedException"),
                false,
                Verdict::Fatal,
            ),
        ];
        for (status, code, transport, verdict) in cases {
            assert_eq!(
                classify(&failure(status, code, transport)),
                verdict,
                "{status:?} {code:?} transport={transport}"
            );
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_stays_within_bounds() {
        let policy = RetryPolicy::default();
        let mut delay = policy.base_delay;
        let mut rng = rand::rng();
        for _ in 0..50 {
            let next = policy.next_delay(delay, &mut rng);
            assert!(
                next >= policy.base_delay && next <= policy.max_delay,
                "{next:?}"
            );
            assert!(next.as_secs_f64() <= (delay.as_secs_f64() * 3.0).max(0.1) + 1e-9);
            delay = next;
        }
    }
}
