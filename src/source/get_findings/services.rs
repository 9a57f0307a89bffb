//! Which Security Hub services an account has enabled in a Region: Security Hub CSPM (ASFF,
//! `GetFindings`, asked with `DescribeHub`) and the new Security Hub (OCSF, `GetFindingsV2`,
//! asked with `DescribeSecurityHubV2`). Asked only after a read was refused, so the message
//! tells the user which of the four situations they are in and what to run.

use crate::aws::Failure;
use crate::error::Error;
use crate::request::Api;

/// What the two describe calls said: `Some(enabled)`, or `None` when a call did not tell (no
/// permission for it, or a failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enabled {
    /// Security Hub CSPM.
    pub cspm: Option<bool>,
    /// The new Security Hub.
    pub v2: Option<bool>,
}

/// Asks both services whether they are enabled for the caller in the client's Region.
pub async fn enabled(client: &aws_sdk_securityhub::Client) -> Enabled {
    let cspm = match client.describe_hub().send().await {
        Ok(_) => Some(true),
        Err(err) => {
            let failure = Failure::of(&err);
            (failure.code.as_deref() == Some("InvalidAccessException")).then_some(false)
        }
    };
    let v2 = match client.describe_security_hub_v2().send().await {
        Ok(_) => Some(true),
        Err(err) => {
            let failure = Failure::of(&err);
            (failure.code.as_deref() == Some("ResourceNotFoundException")).then_some(false)
        }
    };
    Enabled { cspm, v2 }
}

/// The error for a read of `api` that `failure` refused, given what is enabled.
pub fn refusal(api: Api, enabled: Enabled, failure: &Failure) -> Error {
    let summary = failure.summary();
    let (this, other) = match api {
        Api::GetFindings => (enabled.cspm, enabled.v2),
        Api::GetFindingsV2 => (enabled.v2, enabled.cspm),
    };
    let message = match (api, this, other) {
        (_, Some(false), Some(false)) => format!(
            "neither Security Hub CSPM nor the new Security Hub is enabled for this account in this Region ({summary}): enable one of them here, or check --region"
        ),
        (Api::GetFindings, Some(false), Some(true)) => format!(
            "this account uses only the new Security Hub in this Region ({summary}): its findings are OCSF; export them with --api v2 (GetFindingsV2, table findings_ocsf)"
        ),
        (Api::GetFindingsV2, Some(false), Some(true)) => format!(
            "this account uses only Security Hub CSPM in this Region ({summary}): its findings are ASFF; export them without --api v2 (GetFindings, table findings), or enable the new Security Hub"
        ),
        (_, Some(true), _) => format!(
            "Security Hub refused {api} although the service is enabled here ({summary}); allow securityhub:GetFindings (the IAM action of both GetFindings and GetFindingsV2) for these credentials"
        ),
        (Api::GetFindings, _, _) if failure.code.as_deref() == Some("InvalidAccessException") => format!(
            "Security Hub CSPM is not enabled for this account in this Region ({summary}): GetFindings reads Security Hub CSPM's ASFF findings; enable Security Hub CSPM here, check --region, or, if the account uses only the new Security Hub, export with --api v2"
        ),
        _ => format!(
            "Security Hub refused {api} ({summary}); allow securityhub:GetFindings for these credentials, and check that {} is enabled in this Region",
            match api {
                Api::GetFindings => "Security Hub CSPM",
                Api::GetFindingsV2 => "the new Security Hub",
            }
        ),
    };
    Error::auth(message, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(api: Api, code: &str, cspm: Option<bool>, v2: Option<bool>) -> String {
        let failure = Failure {
            status: Some(403),
            code: Some(code.into()),
            message: "refused".into(),
            transport: false,
        };
        let err = refusal(api, Enabled { cspm, v2 }, &failure);
        assert!(matches!(err, Error::Auth { .. }), "{err}");
        err.to_string()
    }

    #[test]
    fn each_service_situation_gets_its_own_advice() {
        use Api::{GetFindings as V1, GetFindingsV2 as V2};
        let only_new = refused(V1, "InvalidAccessException", Some(false), Some(true));
        assert!(
            only_new.contains("uses only the new Security Hub") && only_new.contains("--api v2"),
            "{only_new}"
        );
        let only_cspm = refused(V2, "AccessDeniedException", Some(true), Some(false));
        assert!(
            only_cspm.contains("uses only Security Hub CSPM")
                && only_cspm.contains("without --api v2"),
            "{only_cspm}"
        );
        for api in [V1, V2] {
            let neither = refused(api, "InvalidAccessException", Some(false), Some(false));
            assert!(
                neither.contains("neither Security Hub CSPM nor the new Security Hub"),
                "{neither}"
            );
            let both = refused(api, "AccessDeniedException", Some(true), Some(true));
            assert!(
                both.contains("allow securityhub:GetFindings") && !both.contains("not enabled"),
                "{both}"
            );
        }
        let unknown = refused(V1, "InvalidAccessException", None, None);
        assert!(
            unknown.contains("Security Hub CSPM is not enabled") && unknown.contains("--api v2"),
            "{unknown}"
        );
        let denied = refused(V1, "AccessDeniedException", None, None);
        assert!(denied.contains("allow securityhub:GetFindings"), "{denied}");
    }
}
