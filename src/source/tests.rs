//! The paced retry loop under `tokio::time::pause`, with a seeded jitter RNG.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::*;

/// Answers each attempt from a script; past its end, a one-finding last page.
struct Scripted(Mutex<VecDeque<Result<Page>>>);

impl Scripted {
    fn new(script: Vec<Result<Page>>) -> Arc<Self> {
        Arc::new(Scripted(Mutex::new(script.into())))
    }
}

#[async_trait]
impl PageSource for Scripted {
    async fn attempt(&self, _token: Option<&str>, page: u64) -> Result<Page> {
        let next = self.0.lock().unwrap().pop_front();
        next.unwrap_or_else(|| Ok(page_of(page)))
    }
}

fn page_of(number: u64) -> Page {
    Page::parse(number, r#"{"Findings":[{"Id":"a"}]}"#.into(), 0).unwrap()
}

fn throttled() -> Result<Page> {
    Err(Error::Transient {
        throttled: true,
        message: "429 TooManyRequestsException".into(),
    })
}

fn fault() -> Result<Page> {
    Err(Error::Transient {
        throttled: false,
        message: "500 InternalException".into(),
    })
}

fn paced(script: Vec<Result<Page>>, policy: RetryPolicy, seed: u64) -> PacedSource {
    let limiter = Pace::new(1e6, 1000).unwrap().limiter();
    PacedSource::with_rng(
        Scripted::new(script),
        limiter,
        policy,
        SmallRng::seed_from_u64(seed),
    )
}

/// The delays the loop must sleep for `retries` retries with this seed.
fn expected_delays(policy: &RetryPolicy, seed: u64, retries: usize) -> Duration {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut delay = policy.base_delay;
    let mut total = Duration::ZERO;
    for _ in 0..retries {
        delay = policy.next_delay(delay, &mut rng);
        total += delay;
    }
    total
}

#[tokio::test(start_paused = true)]
async fn throttles_and_faults_are_retried_with_the_seeded_backoff_then_the_page_arrives() {
    let policy = RetryPolicy::default();
    let source = paced(vec![throttled(), fault(), throttled()], policy, 7);
    let started = tokio::time::Instant::now();
    let page = source.fetch(None, 1).await.unwrap();
    assert_eq!(page.len(), 1);
    // The paused clock advances each sleep to whole milliseconds.
    let expected = expected_delays(&policy, 7, 3);
    let waited = started.elapsed();
    assert!(
        waited >= expected && waited <= expected + Duration::from_millis(3),
        "{waited:?} vs {expected:?}"
    );
    let counts = source.stats().snapshot();
    assert_eq!(
        (
            counts.requests,
            counts.throttled,
            counts.faults,
            counts.pages
        ),
        (4, 2, 1, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn the_loop_gives_up_after_max_attempts_keeping_the_last_failure_as_source() {
    let policy = RetryPolicy {
        max_attempts: 4,
        ..RetryPolicy::default()
    };
    let source = paced((0..10).map(|_| throttled()).collect(), policy, 1);
    let err = source.fetch(Some("t"), 9).await.unwrap_err();
    assert!(matches!(err, Error::Source { page: 9, .. }), "{err}");
    assert!(err.is_retryable());
    let cause = std::error::Error::source(&err).expect("the last failure is kept");
    assert!(
        cause.to_string().contains("TooManyRequestsException"),
        "{cause}"
    );
    assert_eq!(source.stats().snapshot().requests, 4);
}

#[tokio::test(start_paused = true)]
async fn the_loop_gives_up_when_retries_have_taken_max_elapsed() {
    let policy = RetryPolicy {
        max_attempts: 1000,
        max_elapsed: Duration::from_secs(60),
        ..RetryPolicy::default()
    };
    let source = paced((0..1000).map(|_| fault()).collect(), policy, 3);
    let started = tokio::time::Instant::now();
    let err = source.fetch(None, 1).await.unwrap_err();
    assert!(matches!(err, Error::Source { .. }), "{err}");
    let waited = started.elapsed();
    assert!(
        waited >= policy.max_elapsed && waited < policy.max_elapsed + policy.max_delay,
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn errors_that_are_not_retryable_end_the_fetch_at_the_first_attempt() {
    let rejected = Err(Error::Rejected {
        page: 1,
        message: "400 InvalidInputException".into(),
    });
    let source = paced(vec![rejected], RetryPolicy::default(), 1);
    let started = tokio::time::Instant::now();
    let err = source.fetch(None, 1).await.unwrap_err();
    assert!(matches!(err, Error::Rejected { .. }) && !err.is_retryable());
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(source.stats().snapshot().requests, 1);
}

#[test]
fn a_pace_must_be_positive() {
    for (rate, burst) in [(0.0, 6), (-1.0, 6), (f64::NAN, 6), (3.0, 0)] {
        let err = Pace::new(rate, burst).unwrap_err();
        assert!(matches!(err, Error::Usage(_)), "{rate} {burst}: {err}");
    }
    assert!(Pace::new(3.0, 6).is_ok());
}

#[test]
fn the_limiter_keeps_one_request_of_the_burst_in_reserve() {
    let at_once = |burst| {
        let limiter = Pace::new(1.0, burst).unwrap().limiter();
        (0..10).take_while(|_| limiter.check().is_ok()).count()
    };
    assert_eq!(at_once(6), 5, "burst 6 sends 5 at once");
    assert_eq!(at_once(1), 1, "a burst of 1 has nothing to spare");
}
