//! Whether a job's window held still while it was read. Every job bounds its window with an
//! `UpdatedAt` end at its freeze time, so a finding updated during the job leaves the window
//! (its new state is the next window's). Against a service whose cursor is an offset into a
//! result list computed again at each call, such a departure shifts the findings behind it, and
//! an unchanged finding can be skipped. Once a job has read its last page, one more call asks
//! for any finding of the same request updated since the later of the window's end and the
//! job's creation (a finding updated before the job began was out of its window all along):
//! none means nothing left the window while it was read, so the read was exact whatever the
//! cursor; some means it may not have been (the feed then reads the window again). This takes
//! the service's `UpdatedAt` (OCSF: `finding_info.modified_time`) and this machine's clock to
//! agree.

use aws_config::SdkConfig;
use chrono::{DateTime, Duration, Utc};

use super::checkpoint::{Checkpoint, JobState};
use super::manifest;
use crate::error::Result;
use crate::request::FrozenRequest;
use crate::sink::ObjectStore;
use crate::source::get_findings::GetFindings;
use crate::source::retry::RetryPolicy;
use crate::source::{Limiter, PacedSource};

/// One call for a finding of `filters` updated after the window's end and `started`:
/// `Some(true)` when there is none. A failed call answers `None` (not known), with a warning.
pub async fn check(
    config: &SdkConfig,
    limiter: &Limiter,
    request: &FrozenRequest,
    started: DateTime<Utc>,
) -> Option<bool> {
    // Up to a day ahead: the filter needs an end, and a change the check races counts too.
    let api = request.identity.api;
    let until = Utc::now() + Duration::days(1);
    let (changed, since) = api.changed_since_filters(&request.filters, started, until)?;
    let source = GetFindings::new(config, request.query(changed, 1));
    let paced = PacedSource::new(
        std::sync::Arc::new(source),
        limiter.clone(),
        RetryPolicy::default(),
    );
    match paced.fetch(None, 1).await {
        // Judged on what the findings carry, not on the filter alone: a service that ignored
        // the filter (moto does) answers with findings that did not change.
        Ok(page) => Some(!page.findings().any(|text| {
            let updated = api.format().updated_at(text);
            updated.is_some_and(|updated| updated >= since)
        })),
        Err(err) => {
            tracing::warn!("could not check whether findings changed during the job: {err}");
            None
        }
    }
}

/// For a complete job: its manifest's answer if it has one, or else the check's (when a
/// client is given, with the limiter the job's pages drew on) written into the manifest it
/// creates.
pub async fn complete(
    store: &dyn ObjectStore,
    checkpoint: &Checkpoint,
    client: Option<(&SdkConfig, &Limiter)>,
) -> Result<Option<bool>> {
    if checkpoint.state != JobState::Complete {
        return Ok(None);
    }
    if let Some(existing) = manifest::load(store, &checkpoint.job_id).await? {
        return Ok(existing.settled);
    }
    let settled = match client {
        Some((config, limiter)) => {
            check(config, limiter, &checkpoint.request, checkpoint.created_at).await
        }
        None => None,
    };
    if settled == Some(false) {
        tracing::warn!(
            "job {}: findings of its request were updated while it read its window; their new state is for the next window, and if the service's cursor shifted under them an unchanged finding may be missing (export the window again under a new --job-id; a feed does this itself)",
            checkpoint.job_id
        );
    }
    manifest::ensure(store, checkpoint, settled).await?;
    Ok(settled)
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use serde_json::json;

    use crate::request::filters::{changed_since_filters, iso};

    #[test]
    fn the_check_asks_for_the_same_request_after_the_window_end() {
        let now: DateTime<Utc> = "2026-11-23T12:00:00Z".parse().unwrap();
        let filters = json!({
            "SeverityLabel": [{"Value": "HIGH", "Comparison": "EQUALS"}],
            "UpdatedAt": [{"Start": "1970-01-01T00:00:00.000Z", "End": "2026-11-23T10:00:00.000Z"}],
        });
        let long_ago: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let (changed, since) = changed_since_filters(&filters, long_ago, now).unwrap();
        assert_eq!(iso(since), "2026-11-23T10:00:00.001Z");
        assert_eq!(changed["SeverityLabel"], filters["SeverityLabel"]);
        assert_eq!(
            changed["UpdatedAt"],
            json!([{"Start": "2026-11-23T10:00:00.001Z", "End": "2026-11-23T12:00:00.000Z"}])
        );
        let later: DateTime<Utc> = "2026-11-23T11:00:00Z".parse().unwrap();
        assert_eq!(
            changed_since_filters(&filters, later, now).unwrap().0["UpdatedAt"][0]["Start"],
            "2026-11-23T11:00:00.001Z",
            "a read that began after the window's end asks from its start"
        );
        let open = json!({"UpdatedAt": [{"DateRange": {"Value": 1, "Unit": "DAYS"}}]});
        assert_eq!(changed_since_filters(&open, now, now), None);
        assert_eq!(changed_since_filters(&json!({}), now, now), None);
    }
}
