//! GetFindings (ASFF) through the AWS SDK: one attempt per call, the SDK's own retries off (the
//! paced loop owns them), the job's frozen filters injected exactly as written, and the raw
//! response body taken before the SDK deserializes it, so findings are kept byte for byte.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
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

use super::retry::retryable_error;
use super::{Page, PageSource};
use crate::aws::Failure;
use crate::error::{Error, Result};
use crate::request::FrozenRequest;

/// How long reading a page's body may take once its headers arrived (the SDK's attempt timeout
/// ends when the response starts, since the body is read outside its deserializer).
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(90);

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

/// Pages of one frozen GetFindings request.
pub struct GetFindings {
    client: aws_sdk_securityhub::Client,
    filters: Arc<serde_json::Value>,
    page_size: i32,
}

impl GetFindings {
    /// A source of the frozen request whose client never retries on its own: the paced loop
    /// owns retries.
    pub fn new(config: &SdkConfig, request: &FrozenRequest) -> Self {
        Self::with_filters(config, request.filters.clone(), request.identity.page_size)
    }

    /// A source of `filters` (a shard's sub-query), `page_size` findings a page.
    pub fn with_filters(config: &SdkConfig, filters: serde_json::Value, page_size: u32) -> Self {
        let client_config = aws_sdk_securityhub::config::Builder::from(config)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .operation_attempt_timeout(Duration::from_secs(90))
                    .build(),
            )
            .build();
        GetFindings {
            client: aws_sdk_securityhub::Client::from_conf(client_config),
            filters: Arc::new(filters),
            page_size: page_size as i32,
        }
    }
}

#[async_trait]
impl PageSource for GetFindings {
    async fn attempt(&self, token: Option<&str>, number: u64) -> Result<Page> {
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
        if let Err(err) = result {
            let failure = Failure::of(&err);
            return Err(retryable_error(&failure)
                .unwrap_or_else(|| fatal(&failure, number, token.is_some())));
        }
        let body = capture.0.lock().expect("capture lock").take();
        let body = body.ok_or_else(|| unreadable("no response body"))?;
        let read = ByteStream::new(body).collect();
        let bytes = match tokio::time::timeout(BODY_READ_TIMEOUT, read).await {
            Ok(Ok(bytes)) => bytes.into_bytes(),
            Ok(Err(err)) => return Err(unreadable(&format!("body cut off: {err}"))),
            Err(_) => return Err(unreadable("body stalled")),
        };
        let text = String::from_utf8(Vec::from(bytes))
            .map_err(|_| unreadable("response body is not UTF-8"))?;
        Page::parse(number, text, fetched_at_ms).map_err(|e| unreadable(&e.to_string()))
    }
}

/// A body that arrived but does not read or parse was cut short: retry it.
fn unreadable(message: &str) -> Error {
    Error::Transient {
        throttled: false,
        message: format!("unreadable response ({message})"),
    }
}

/// Maps a non-retryable failure to the error the user sees.
fn fatal(failure: &Failure, page: u64, had_token: bool) -> Error {
    if failure.code.as_deref() == Some("InvalidAccessException") {
        // The account is not subscribed to Security Hub CSPM (the service whose ASFF findings
        // GetFindings reads) in this Region; an account on the new Security Hub alone answers so.
        return Error::auth(
            format!(
                "Security Hub CSPM is not enabled for this account in this Region ({}): GetFindings reads Security Hub CSPM's ASFF findings; enable Security Hub CSPM here, or check --region. An account that uses only the new Security Hub (OCSF findings, GetFindingsV2) cannot be exported by this build",
                failure.summary()
            ),
            None,
        );
    }
    if failure.is_access_denied() {
        return Error::auth(
            format!(
                "Security Hub refused GetFindings ({}); allow securityhub:GetFindings for these credentials",
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
    Error::Rejected {
        page,
        message: format!(
            "Security Hub rejected the request ({}); check --filters",
            failure.summary()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16, code: &str) -> String {
        let failure = Failure {
            status: Some(status),
            code: Some(code.into()),
            message: "refused".into(),
            transport: false,
        };
        let err = fatal(&failure, 1, false);
        assert!(matches!(err, Error::Auth { .. }), "{err}");
        err.to_string()
    }

    #[test]
    fn a_hub_not_enabled_and_a_missing_permission_get_different_advice() {
        let not_enabled = refused(401, "InvalidAccessException");
        assert!(
            not_enabled.contains("Security Hub CSPM is not enabled"),
            "{not_enabled}"
        );
        assert!(not_enabled.contains("new Security Hub"), "{not_enabled}");
        let denied = refused(403, "AccessDeniedException");
        assert!(denied.contains("allow securityhub:GetFindings"), "{denied}");
        assert!(!denied.contains("not enabled"), "{denied}");
    }
}
