//! A feed over several accounts or Regions in Step Functions: each run's job, and each repair,
//! runs its streams through the Distributed Map like an export, never many streams in one
//! invocation. The plan step finds the family's job to run next; the state machine runs its
//! streams and finishes it, then plans again; once the run's jobs are complete (and settled,
//! or out of repairs) the slice loop records the run and moves the watermark, answering at
//! once from the jobs' checkpoints.

use super::{next_step, Family, Feed, FeedOptions, Step, Stored, MAX_REPAIRS};
use crate::error::{Error, Result};
use crate::job::fanout::distributed::{self, Planned};
use crate::job::{self, Cancel};
use crate::plan::{ExportPlan, ExportRequest};

/// What a feed's plan step found.
#[derive(Debug)]
pub enum MapStep {
    /// Nothing for the Map: the slice loop records the run (its jobs are complete), finds the
    /// invocation's run done, or leaves the family to the run that holds it.
    Slices,
    /// Run this job's streams through the Map: its export request, and its items.
    Job {
        /// The job's request (the run's window), what each child runs.
        request: Box<ExportRequest>,
        /// Its frozen streams and items file.
        planned: Planned,
    },
}

/// Finds the family's job to run next: the invocation's run (started here when there is none
/// to finish), or the first of its repairs still to read.
pub async fn plan(request: &ExportRequest, options: &FeedOptions) -> Result<MapStep> {
    let Family {
        identity,
        family,
        store,
    } = Family::open(request, options).await?;
    // Checks the jobs' checkpoints without reading a page: every stream is left as it is.
    let look_only = Cancel::new();
    look_only.cancel("the plan step only looks at the run's jobs");
    let feed = Feed {
        request,
        options,
        store: store.as_ref(),
        family: &family,
        identity: &identity,
        quiet: true,
        cancel: &look_only,
    };
    let mut stored = Stored::load(store.as_ref(), &family, &identity).await?;
    let run = match next_step(&stored.state, options.invocation.as_deref()) {
        Step::Done(_) => return Ok(MapStep::Slices),
        Step::Resume { run, .. } => run,
        Step::Begin => match feed.begin(&mut stored).await {
            Ok(run) => run,
            Err(Error::JobBusy { .. }) => return Ok(MapStep::Slices),
            Err(err) => return Err(err),
        },
    };
    // The run, then its repairs while findings changed under the last read (as the command
    // walks them): the first job not complete is the Map's.
    for repair in 0..=MAX_REPAIRS {
        let job = match repair {
            0 => run.clone(),
            n => run.repair(n),
        };
        let job_request = feed.job_request(&job);
        let job_plan = ExportPlan::new(&job_request)?;
        let looked = job::run_plan(&job_plan, true, &look_only).await?;
        if !looked.complete {
            let planned = distributed::plan(&job_plan).await?;
            return Ok(MapStep::Job {
                request: Box::new(job_request),
                planned,
            });
        }
        if !looked.unsettled {
            break;
        }
    }
    Ok(MapStep::Slices)
}
