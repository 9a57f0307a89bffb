//! AWS configuration (credential chain, profile, Region, endpoint) and a uniform view of SDK errors.

use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::streams::{regions, Role, Stream};

/// How to reach AWS: everything optional falls back to the standard chain and environment.
/// The same fields are command-line flags and event fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args, Serialize, Deserialize)]
pub struct AwsSettings {
    /// AWS Region (default: the standard chain, e.g. AWS_REGION or the profile).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Named profile from ~/.aws/config.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Send every AWS call to this endpoint (an emulator); S3 then uses path-style addressing.
    /// AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE> work as in every AWS SDK.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// Fixed dummy credentials (the demo's in-process emulator needs no real ones).
    #[arg(skip)]
    #[serde(skip)]
    pub demo_credentials: bool,
}

/// Loads the shared SDK config and checks that credentials resolve, before any request.
pub async fn load(settings: &AwsSettings) -> Result<SdkConfig> {
    if let Some(url) = &settings.endpoint_url {
        check_endpoint_url(url)?;
    }
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(profile) = &settings.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if settings.demo_credentials {
        let demo = aws_credential_types::Credentials::new(
            "demo",
            "demo",
            None,
            None,
            "sechub-export-demo",
        );
        loader = loader.credentials_provider(demo);
    }
    let config = loader.load().await;
    let Some(region) = config.region() else {
        return Err(Error::Usage(
            "no AWS Region configured; pass --region or set AWS_REGION".into(),
        ));
    };
    let flag = if settings.region.is_some() {
        "--region"
    } else {
        "the configured Region (AWS_REGION or the profile)"
    };
    regions::check(region.as_ref(), flag).map_err(Error::Usage)?;
    let provider = config.credentials_provider().ok_or_else(|| {
        Error::auth("no AWS credentials provider; configure credentials (aws configure, AWS_PROFILE, SSO or an instance role)", None)
    })?;
    if let Err(err) = provider.provide_credentials().await {
        let profile_hint = settings
            .profile
            .as_ref()
            .map(|p| format!(" for profile {p:?} (check ~/.aws/config)"))
            .unwrap_or_default();
        return Err(Error::auth(
            format!("no usable AWS credentials{profile_hint}; run `aws configure`, `aws sso login` or set AWS_ACCESS_KEY_ID"),
            Some(Box::new(err) as _),
        ));
    }
    Ok(config)
}

/// Refuses an endpoint URL without an http(s) scheme, before the SDK buries it in a dump.
fn check_endpoint_url(url: &str) -> Result<()> {
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "invalid --endpoint-url {url:?}: give the scheme, e.g. http://{}",
        url.split("://").last().unwrap_or(url)
    )))
}

/// The session name of every role a job assumes (CloudTrail shows it).
const SESSION_NAME: &str = "sechub-export";

/// The SDK config of one stream: the stream's Region, with the caller's own credentials in the
/// caller's account and the role assumed (and checked at once) in any other.
pub async fn stream_config(
    base: &SdkConfig,
    caller: &str,
    stream: &Stream,
    role: Option<&Role>,
) -> Result<SdkConfig> {
    let region = Region::new(stream.region.clone());
    let builder = base.to_builder().region(region.clone());
    if stream.account_id == caller {
        return Ok(builder.build());
    }
    let Some(role) = role else {
        return Err(Error::Usage(format!(
            "reading account {} needs --role-name",
            stream.account_id
        )));
    };
    let arn = format!(
        "arn:{}:iam::{}:role/{}",
        regions::partition(&stream.region),
        stream.account_id,
        role.name
    );
    // Assumed once here so a missing role or trust fails the stream at once with the
    // service's own words; the provider then assumes and refreshes it for the stream's calls.
    let sts = aws_sdk_sts::Client::new(base);
    let check = sts
        .assume_role()
        .role_arn(&arn)
        .role_session_name(SESSION_NAME)
        .set_external_id(role.external_id.clone())
        .send()
        .await;
    if let Err(err) = check {
        let failure = Failure::of(&err);
        if failure.transport {
            return Err(Error::Unreachable {
                service: "STS".into(),
                message: failure.message,
            });
        }
        return Err(Error::auth(
            format!(
                "cannot assume {arn} ({}); create the role in that account with a trust policy for the caller's account{} and securityhub:GetFindings, or leave the account out",
                failure.summary(),
                if role.external_id.is_some() { " and the external id" } else { "" }
            ),
            None,
        ));
    }
    let mut assume = AssumeRoleProvider::builder(arn)
        .session_name(SESSION_NAME)
        .configure(base);
    if let Some(id) = &role.external_id {
        assume = assume.external_id(id.clone());
    }
    let provider = assume.build().await;
    Ok(builder
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .build())
}

/// An S3 client; path-style addressing when an endpoint override points at an emulator.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    // Part uploads and state writes ride out bursts of 5xx / SlowDown / resets.
    let retry = aws_sdk_s3::config::retry::RetryConfig::standard()
        .with_max_attempts(8)
        .with_max_backoff(std::time::Duration::from_secs(20));
    let mut builder = aws_sdk_s3::config::Builder::from(config).retry_config(retry);
    let emulated = config.endpoint_url().is_some()
        || std::env::var_os("AWS_ENDPOINT_URL").is_some()
        || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
    if emulated {
        builder = builder.force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(builder.build())
}

/// What an SDK call failure was, independent of the operation.
#[derive(Debug, Clone, Default)]
pub struct Failure {
    /// HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// Service error code (`TooManyRequestsException`, `NoSuchBucket`...).
    pub code: Option<String>,
    /// The service's message, or the transport error.
    pub message: String,
    /// No response at all: timeout, connection refused or reset.
    pub transport: bool,
}

impl Failure {
    /// Describes an SDK error.
    pub fn of<E>(err: &SdkError<E, HttpResponse>) -> Failure
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let (code, message) = match err {
            SdkError::ServiceError(service) => (
                service.err().code().map(str::to_string),
                service
                    .err()
                    .message()
                    .map(str::to_string)
                    .unwrap_or_else(|| crate::error::one_line(service.err())),
            ),
            other => (None, crate::error::one_line(other)),
        };
        let transport = matches!(
            err,
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
        );
        Failure {
            status,
            code,
            message,
            transport,
        }
    }

    /// True for 401/403 and access-denied codes.
    pub fn is_access_denied(&self) -> bool {
        matches!(self.status, Some(401 | 403))
            || self.code.as_deref().is_some_and(|c| {
                c.contains("AccessDenied")
                    || c == "InvalidAccessException"
                    || c.contains("UnrecognizedClient")
                    || c.contains("InvalidClientTokenId")
                    || c.contains("SignatureDoesNotMatch")
                    || c.contains("ExpiredToken")
            })
    }

    /// A one-line summary: `404 NoSuchBucket: The specified bucket does not exist`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(status) = self.status {
            parts.push(status.to_string());
        }
        if let Some(code) = &self.code {
            parts.push(code.clone());
        }
        if parts.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", parts.join(" "), self.message)
        }
    }
}

/// Who runs a job: the SDK config, its account (which also proves the credentials work) and
/// its Region.
pub struct Caller {
    /// The shared SDK config.
    pub config: SdkConfig,
    /// The caller's account id.
    pub account_id: String,
    /// The caller's Region (`--region` or the chain's).
    pub region: String,
}

/// Loads the SDK config and asks STS whose credentials they are.
pub async fn caller(settings: &AwsSettings) -> Result<Caller> {
    let config = load(settings).await?;
    let account_id = account_id(&config).await?;
    let region = config.region().map(|r| r.to_string()).unwrap_or_default();
    Ok(Caller {
        config,
        account_id,
        region,
    })
}

/// The caller's account id (STS GetCallerIdentity); also proves the credentials work.
pub async fn account_id(config: &SdkConfig) -> Result<String> {
    let sts = aws_sdk_sts::Client::new(config);
    match sts.get_caller_identity().send().await {
        Ok(identity) => identity
            .account()
            .map(str::to_string)
            .ok_or_else(|| Error::auth("STS returned no account id", None)),
        Err(err) => {
            let failure = Failure::of(&err);
            if failure.transport {
                Err(Error::Unreachable {
                    service: "STS".into(),
                    message: format!(
                        "{}; check --endpoint-url, the network and the Region",
                        failure.message
                    ),
                })
            } else {
                Err(Error::auth(
                    format!("the credentials were rejected by STS ({}); refresh them (aws sso login) or pick another --profile", failure.summary()),
                    None,
                ))
            }
        }
    }
}
