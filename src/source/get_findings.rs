//! GetFindings (ASFF) and GetFindingsV2 (OCSF) through the AWS SDK: one attempt per call, the
//! SDK's own retries off (the paced loop owns them), the job's frozen filters (and v2 scopes)
//! injected exactly as written, and the raw response body taken before the SDK deserializes it,
//! so findings are kept byte for byte. A refusal that may mean a service is not enabled asks
//! both services which is, so the message says which API to use.

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
use crate::request::{Api, IdOrder};

pub mod services;

/// The client of one source: the SDK's own retries off (the paced loop owns them).
pub(crate) fn client(config: &SdkConfig) -> aws_sdk_securityhub::Client {
    let client_config = aws_sdk_securityhub::config::Builder::from(config)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .operation_attempt_timeout(Duration::from_secs(90))
                .build(),
        )
        .build();
    aws_sdk_securityhub::Client::from_conf(client_config)
}

/// How long reading a page's body may take once its headers arrived (the SDK's attempt timeout
/// ends when the response starts, since the body is read outside its deserializer).
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(90);

/// Takes a successful response's body before the SDK deserializes it, leaving `{}` in its place:
/// the findings are parsed once, by `Page::parse`, instead of also into the SDK's typed structs.
/// Error responses keep their body, so the SDK still reads their error code.
#[derive(Debug, Clone, Default)]
struct CaptureBody(Arc<Mutex<Option<SdkBody>>>);

/// Puts the job's frozen filters (and scopes, and a chain's sort) into the request body, exactly
/// as written: each member replaces the one the SDK's builder serialized.
#[derive(Debug, Clone)]
pub(crate) struct InjectFilters(pub(crate) Arc<serde_json::Map<String, serde_json::Value>>);

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
        body.extend(self.0.iter().map(|(k, v)| (k.clone(), v.clone())));
        let bytes = serde_json::to_vec(&body)?;
        request
            .headers_mut()
            .insert("Content-Length", bytes.len().to_string());
        *request.body_mut() = SdkBody::from(bytes);
        Ok(())
    }
}

/// What one source asks for: the API, its filters (the request's, a shard's or a check's), the
/// v2 scopes and the page size.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// GetFindings or GetFindingsV2.
    pub api: Api,
    /// Filters in that API's dialect, sent as written.
    pub filters: serde_json::Value,
    /// GetFindingsV2 `Scopes`.
    pub scopes: Option<serde_json::Value>,
    /// The `Id` order asked for (`None`: the service's own order).
    pub sort: Option<IdOrder>,
    /// Findings a page.
    pub page_size: u32,
}

impl Query {
    /// The same query, its pages in `order` of `Id` (or the service's own, `None`).
    pub fn sorted(self, order: Option<IdOrder>) -> Query {
        Query {
            sort: order,
            ..self
        }
    }
}

/// Pages of one frozen query.
pub struct GetFindings {
    client: aws_sdk_securityhub::Client,
    api: Api,
    members: Arc<serde_json::Map<String, serde_json::Value>>,
    page_size: i32,
}

impl GetFindings {
    /// A source of `query` whose client never retries on its own: the paced loop owns retries.
    pub fn new(config: &SdkConfig, query: Query) -> Self {
        let mut members = serde_json::Map::new();
        members.insert("Filters".into(), query.filters);
        if let Some(scopes) = query.scopes {
            members.insert("Scopes".into(), scopes);
        }
        if let Some(order) = query.sort {
            members.insert("SortCriteria".into(), order.sort_criteria());
        }
        GetFindings {
            client: client(config),
            api: query.api,
            members: Arc::new(members),
            page_size: query.page_size as i32,
        }
    }

    /// Sends one attempt; the response body is left in `capture`.
    async fn send(&self, token: Option<&str>, capture: &CaptureBody) -> Result<(), Failure> {
        // The two operations' builders are different types with the same methods.
        macro_rules! send {
            ($builder:expr) => {
                $builder
                    .max_results(self.page_size)
                    .set_next_token(token.map(str::to_string))
                    .customize()
                    .interceptor(InjectFilters(self.members.clone()))
                    .interceptor(capture.clone())
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| Failure::of(&e))
            };
        }
        match self.api {
            Api::GetFindings => send!(self.client.get_findings()),
            Api::GetFindingsV2 => send!(self.client.get_findings_v2()),
        }
    }
}

#[async_trait]
impl PageSource for GetFindings {
    async fn attempt(&self, token: Option<&str>, number: u64) -> Result<Page> {
        let capture = CaptureBody::default();
        let result = self.send(token, &capture).await;
        let fetched_at_ms = chrono::Utc::now().timestamp_millis();
        if let Err(failure) = result {
            if let Some(retry) = retryable_error(&failure) {
                return Err(retry);
            }
            if may_be_disabled(&failure) {
                let services = services::enabled(&self.client).await;
                return Err(services::refusal(self.api, services, &failure));
            }
            return Err(fatal(self.api, &failure, number, token.is_some()));
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
        let findings_required = self.api == Api::GetFindings;
        Page::parse_with(number, text, fetched_at_ms, findings_required)
            .map_err(|e| unreadable(&e.to_string()))
    }
}

/// A body that arrived but does not read or parse was cut short: retry it.
fn unreadable(message: &str) -> Error {
    Error::Transient {
        throttled: false,
        message: format!("unreadable response ({message})"),
    }
}

/// A refusal that can mean the API's service is not enabled here (rather than a permission or
/// a bad request): GetFindings answers `InvalidAccessException`; for GetFindingsV2 the model
/// declares only AccessDenied, so both are asked about.
fn may_be_disabled(failure: &Failure) -> bool {
    failure.code.as_deref() == Some("InvalidAccessException")
        || failure.code.as_deref() == Some("ResourceNotFoundException")
        || failure.is_access_denied()
}

/// Maps any other non-retryable failure to the error the user sees.
fn fatal(api: Api, failure: &Failure, page: u64, had_token: bool) -> Error {
    let token_rejected = had_token && failure.message.to_ascii_lowercase().contains("nexttoken");
    if token_rejected {
        return Error::CursorDead {
            page,
            message: failure.summary(),
            advice: "nothing was lost: the checkpoint still ends at the last durable part, but the service will not continue from it. Re-run the same command with --restart to export the job's frozen query again from the first page; its parts are replaced, nothing is duplicated".into(),
        };
    }
    if failure.status == Some(404) && failure.code.is_none() {
        // No service answered: the endpoint has no such operation (moto has no GetFindingsV2).
        return Error::Rejected {
            page,
            message: format!(
                "the endpoint does not serve {api} (HTTP 404 without a Security Hub error): check --region and --endpoint-url{}",
                match api {
                    Api::GetFindings => "",
                    Api::GetFindingsV2 => ", and that the new Security Hub is offered in this Region",
                }
            ),
        };
    }
    Error::Rejected {
        page,
        message: format!(
            "Security Hub rejected the {api} request ({}); check --filters",
            failure.summary()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_without_the_operation_is_not_blamed_on_the_filters() {
        let failure = Failure {
            status: Some(404),
            code: None,
            message: "unexpected token '<'".into(),
            transport: false,
        };
        let err = fatal(Api::GetFindingsV2, &failure, 1, false).to_string();
        assert!(
            err.contains("does not serve GetFindingsV2") && !err.contains("--filters"),
            "{err}"
        );
        let invalid = Failure {
            status: Some(400),
            code: Some("ValidationException".into()),
            ..failure
        };
        let err = fatal(Api::GetFindingsV2, &invalid, 1, false).to_string();
        assert!(
            err.contains("rejected the GetFindingsV2 request") && err.contains("--filters"),
            "{err}"
        );
    }
}
