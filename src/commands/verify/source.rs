//! `verify --source`: each stream reconciled with Security Hub under its own account's
//! credentials (the caller's, or the role assumed in the stream's account), its explanation
//! printed, its problems added to the verification's.

use crate::aws::{self, AwsSettings};
use crate::error::{Error, Result};
use crate::job::checkpoint::{Checkpoint, PartRecord};
use crate::job::Cancel;
use crate::reconcile::{self, StreamToCheck, Verdict};
use crate::request::Api;
use crate::sink::ObjectStore;
use crate::source::counts::{insight, Counter};
use crate::streams::{Role, Stream};

use super::VerifyArgs;

/// A stream whose parts were checked, ready to reconcile.
pub(super) struct Checked {
    stream: Stream,
    checkpoint: Checkpoint,
    parts: Vec<PartRecord>,
}

impl Checked {
    /// A single-stream job.
    pub(super) fn single(checkpoint: Checkpoint, parts: Vec<PartRecord>) -> Checked {
        let identity = &checkpoint.request.identity;
        let stream = Stream::new(&identity.account_id, &identity.region);
        Checked {
            stream,
            checkpoint,
            parts,
        }
    }

    /// One stream of a job over several accounts or Regions.
    pub(super) fn stream(
        stream: Stream,
        checkpoint: Checkpoint,
        parts: Vec<PartRecord>,
    ) -> Checked {
        Checked {
            stream,
            checkpoint,
            parts,
        }
    }
}

/// Reconciles every stream, printing each one's explanation; returns the summary.
pub(super) async fn reconcile(
    args: &VerifyArgs,
    store: &dyn ObjectStore,
    streams: &[Checked],
    problems: &mut Vec<String>,
) -> Result<String> {
    let settings = AwsSettings {
        region: args
            .aws
            .region
            .clone()
            .or_else(|| streams.first().map(|s| s.stream.region.clone())),
        ..args.aws.clone()
    };
    let base = aws::load(&settings).await?;
    let caller = aws::account_id(&base).await?;
    let role = args.role_name.as_ref().map(|name| Role {
        name: name.clone(),
        external_id: args.external_id.clone(),
    });
    let cancel = Cancel::new();
    let signals = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("interrupted: deleting the temporary insight, if any, then stopping...");
                cancel.cancel("interrupted");
            }
        })
    };
    let result = reconcile_all(args, store, streams, &base, &caller, role.as_ref(), &cancel).await;
    signals.abort();
    let total = result?;
    if cancel.is_cancelled() {
        return Err(Error::Interrupted(
            "verify --source was interrupted; nothing was changed".into(),
        ));
    }
    problems.extend(total.problems);
    Ok(format!(
        "Security Hub counts {} findings for the job's frozen request{}, the lake holds {} distinct: {} missing, {} updated after the freeze, {} deleted since",
        total.service,
        if streams.len() > 1 { "s" } else { "" },
        total.lake,
        total.missing,
        total.updated_after,
        total.gone
    ))
}

/// Reconciles the streams one after the other; the sum of their verdicts.
async fn reconcile_all(
    args: &VerifyArgs,
    store: &dyn ObjectStore,
    streams: &[Checked],
    base: &aws_config::SdkConfig,
    caller: &str,
    role: Option<&Role>,
    cancel: &Cancel,
) -> Result<Verdict> {
    let mut total = Verdict::default();
    for checked in streams {
        let config = aws::stream_config(base, caller, &checked.stream, role)
            .await
            .map_err(|err| match err {
                Error::Usage(_) => Error::Usage(format!(
                    "stream {} is account {}: pass --role-name (the role the export assumed there), or run verify with that account's credentials",
                    checked.stream.label(),
                    checked.stream.account_id
                )),
                other => other,
            })?;
        if checked.checkpoint.request.identity.api == Api::GetFindings {
            remove_leftovers(&Counter::new(&config, &args.job_id), &checked.stream).await;
        }
        let check = StreamToCheck {
            label: checked.stream.label(),
            config,
            checkpoint: &checked.checkpoint,
            parts: checked.parts.clone(),
        };
        let verdict =
            reconcile::stream(store, &check, &args.job_id, args.list_missing, cancel).await?;
        verdict.lines.iter().for_each(|line| println!("{line}"));
        total.service += verdict.service;
        total.lake += verdict.lake;
        total.missing += verdict.missing;
        total.updated_after += verdict.updated_after;
        total.gone += verdict.gone;
        total.problems.extend(verdict.problems);
    }
    Ok(total)
}

/// Removes the job's temporary insights left by a killed count (a failure only warns: the
/// count itself does not need it).
async fn remove_leftovers(counter: &Counter, stream: &Stream) {
    match insight::remove_leftovers(counter).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            "stream {}: removed {n} temporary insights left by an earlier count",
            stream.label()
        ),
        Err(err) => tracing::warn!(
            "stream {}: cannot look for temporary insights left by an earlier count ({}); allow securityhub:GetInsights to have them removed",
            stream.label(),
            crate::error::one_line(&err)
        ),
    }
}
