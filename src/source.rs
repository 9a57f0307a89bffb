//! Source stage: GetFindings through the AWS SDK, one rate-limiter permit per HTTP attempt
//! (retries included), the raw response body captured so findings are kept byte for byte.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_securityhub::config::retry::RetryConfig;
use aws_sdk_securityhub::config::timeout::TimeoutConfig;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextMut,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use aws_smithy_types::config_bag::ConfigBag;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::aws::Failure;
use crate::error::{Error, Result};
use crate::page::Page;
use crate::request::FrozenRequest;
use crate::retry::{classify, RetryPolicy, Verdict};

/// The limiter paces this much under `--rate`, so timer and network jitter never land a request
/// just ahead of the service's own token bucket (which would answer 429).
pub const PACING_MARGIN: f64 = 0.005;

/// How long reading a page's body may take once its headers arrived (the SDK's attempt timeout
/// ends when the response starts, since the body is read outside its deserializer).
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(90);

/// Builds the limiter that gates every GetFindings attempt.
pub fn rate_limiter(rate: f64, burst: u32) -> Result<DefaultDirectRateLimiter> {
    let bad = || {
        Error::Usage(format!(
            "invalid --rate {rate} / --burst {burst}: both must be positive"
        ))
    };
    if !(rate.is_finite() && rate > 0.0) {
        return Err(bad());
    }
    let period = Duration::from_secs_f64((1.0 + PACING_MARGIN) / rate);
    let burst = NonZeroU32::new(burst).ok_or_else(bad)?;
    let quota = Quota::with_period(period)
        .ok_or_else(bad)?
        .allow_burst(burst);
    Ok(RateLimiter::direct(quota))
}

/// Counters of what the source sent and saw.
#[derive(Debug, Default)]
pub struct SourceStats {
    pub requests: AtomicU64,
    pub throttled: AtomicU64,
    pub faults: AtomicU64,
    pub pages: AtomicU64,
}

/// Takes a successful response's body before the SDK deserializes it, leaving `{}` in its place:
/// the findings are parsed once, by `Page::parse`, instead of also into the SDK's typed structs.
/// Error responses keep their body, so the SDK still reads their error code.
#[derive(Debug, Clone, Default)]
struct CaptureBody(Arc<Mutex<Option<SdkBody>>>);

/// Puts the job's frozen filters into the request body, exactly as the user wrote them.
#[derive(Debug, Clone)]
struct InjectFilters(Arc<serde_json::Value>);

impl Intercept for CaptureBody {
    fn name(&self) -> &'static str {
        "CaptureBody"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let response = context.response_mut();
        if response.status().is_success() {
            let body = std::mem::replace(response.body_mut(), SdkBody::from("{}"));
            *self.0.lock().expect("capture lock") = Some(body);
        }
        Ok(())
    }
}

impl Intercept for InjectFilters {
    fn name(&self) -> &'static str {
        "InjectFilters"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request_mut();
        let mut body: serde_json::Map<String, serde_json::Value> = match request.body().bytes() {
            Some(bytes) if !bytes.is_empty() => serde_json::from_slice(bytes)?,
            _ => serde_json::Map::new(),
        };
        body.insert("Filters".into(), (*self.0).clone());
        let bytes = serde_json::to_vec(&body)?;
        request
            .headers_mut()
            .insert("Content-Length", bytes.len().to_string());
        *request.body_mut() = SdkBody::from(bytes);
        Ok(())
    }
}

/// Fetches pages of one frozen request.
pub struct FindingsSource {
    client: aws_sdk_securityhub::Client,
    limiter: Arc<DefaultDirectRateLimiter>,
    filters: Arc<serde_json::Value>,
    page_size: i32,
    policy: RetryPolicy,
    pub stats: Arc<SourceStats>,
}

impl FindingsSource {
    /// A source whose client never retries on its own: this loop owns retries.
    pub fn new(
        config: &SdkConfig,
        request: &FrozenRequest,
        limiter: DefaultDirectRateLimiter,
        policy: RetryPolicy,
    ) -> Self {
        let client_config = aws_sdk_securityhub::config::Builder::from(config)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .operation_attempt_timeout(Duration::from_secs(90))
                    .build(),
            )
            .build();
        FindingsSource {
            client: aws_sdk_securityhub::Client::from_conf(client_config),
            limiter: Arc::new(limiter),
            filters: Arc::new(request.filters.clone()),
            page_size: request.identity.page_size as i32,
            policy,
            stats: Arc::new(SourceStats::default()),
        }
    }

    /// Fetches the page after `token` (`None`: the first page), retrying what is retryable.
    pub async fn fetch(&self, token: Option<&str>, number: u64) -> Result<Page> {
        let started = Instant::now();
        let mut delay = self.policy.base_delay;
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.limiter.until_ready().await;
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let failure = match self.attempt(token, number).await {
                Ok(page) => {
                    self.stats.pages.fetch_add(1, Ordering::Relaxed);
                    return Ok(page);
                }
                Err(AttemptError::Fatal(err)) => return Err(err),
                Err(AttemptError::Retryable(failure)) => failure,
            };
            let verdict = classify(&failure);
            let counter = if verdict == Verdict::Throttled {
                &self.stats.throttled
            } else {
                &self.stats.faults
            };
            counter.fetch_add(1, Ordering::Relaxed);
            if attempt >= self.policy.max_attempts || started.elapsed() >= self.policy.max_elapsed {
                return Err(Error::Source {
                    page: number,
                    message: format!(
                        "gave up after {attempt} attempts in {:.0?} (last: {}); re-run the same command to resume from the last checkpoint",
                        started.elapsed(),
                        failure.summary()
                    ),
                    source: None,
                });
            }
            tracing::debug!(
                page = number,
                attempt,
                "retrying after {}",
                failure.summary()
            );
            delay = self.policy.next_delay(delay);
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt(&self, token: Option<&str>, number: u64) -> Result<Page, AttemptError> {
        let capture = CaptureBody::default();
        let result = self
            .client
            .get_findings()
            .max_results(self.page_size)
            .set_next_token(token.map(str::to_string))
            .customize()
            .interceptor(InjectFilters(self.filters.clone()))
            .interceptor(capture.clone())
            .send()
            .await;
        let fetched_at_ms = chrono::Utc::now().timestamp_millis();
        match result {
            Ok(_) => {
                let body = capture.0.lock().expect("capture lock").take();
                let body = body.ok_or_else(|| truncated("no response body"))?;
                let read = ByteStream::new(body).collect();
                let bytes = match tokio::time::timeout(BODY_READ_TIMEOUT, read).await {
                    Ok(Ok(bytes)) => bytes.into_bytes(),
                    Ok(Err(err)) => return Err(truncated(&format!("body cut off: {err}"))),
                    Err(_) => return Err(truncated("body stalled")),
                };
                let text = String::from_utf8(Vec::from(bytes))
                    .map_err(|_| truncated("response body is not UTF-8"))?;
                Page::parse(number, text, fetched_at_ms).map_err(|e| truncated(&e.to_string()))
            }
            Err(err) => {
                let failure = Failure::of(&err);
                match classify(&failure) {
                    Verdict::Fatal => Err(AttemptError::Fatal(fatal(
                        &failure,
                        number,
                        token.is_some(),
                    ))),
                    _ => Err(AttemptError::Retryable(failure)),
                }
            }
        }
    }
}

enum AttemptError {
    Retryable(Failure),
    Fatal(Error),
}

/// A body that arrived but does not parse was cut short: retry it.
fn truncated(message: &str) -> AttemptError {
    AttemptError::Retryable(Failure {
        message: format!("unreadable response ({message})"),
        transport: true,
        ..Failure::default()
    })
}

/// Maps a non-retryable failure to the error the user sees.
fn fatal(failure: &Failure, page: u64, had_token: bool) -> Error {
    if failure.is_access_denied() {
        return Error::auth(
            format!(
                "Security Hub refused GetFindings ({}); enable Security Hub in this Region and allow securityhub:GetFindings for these credentials",
                failure.summary()
            ),
            None,
        );
    }
    let token_rejected = had_token && failure.message.to_ascii_lowercase().contains("nexttoken");
    if token_rejected {
        return Error::CursorDead {
            page,
            message: failure.summary(),
            advice: "nothing was lost: the checkpoint still ends at the last durable part, but the service will not continue from it. Re-run the same command with --restart to export the job's frozen query again from the first page; its parts are replaced, nothing is duplicated".into(),
        };
    }
    Error::Source {
        page,
        message: format!(
            "Security Hub rejected the request ({}); check --filters",
            failure.summary()
        ),
        source: None,
    }
}
