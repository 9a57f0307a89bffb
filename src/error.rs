//! The library's one error type, with the exit code each kind of failure maps to.

use std::fmt;

/// A boxed source error (SDK, I/O, Parquet...).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Documented process exit codes (see docs/export.md, "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Unexpected internal failure.
    Internal = 1,
    /// Bad command line or input (flags, filters, destination, durations).
    Usage = 2,
    /// Credentials missing or rejected, or access denied by AWS.
    Auth = 3,
    /// The destination (S3 bucket, local folder) is missing or failed.
    Destination = 4,
    /// The job's state forbids running: another run holds it, the request differs, state is corrupt.
    JobConflict = 5,
    /// Security Hub (or AWS) unreachable, failed after retries, or rejected the request or cursor.
    Source = 6,
    /// `verify` found the lake disagreeing with the manifest, checkpoint or SSM count.
    Verify = 7,
    /// Some streams of a job over several accounts or Regions failed; the others completed.
    Partial = 8,
    /// The job is complete and its relative date range was resolved on an earlier day: a
    /// re-run would export nothing new.
    WindowDone = 9,
    /// Every page was read, but findings of the request changed while it was read, so the
    /// service's cursor may have skipped an unchanged one: the lake is not proven exact.
    Unsettled = 10,
    /// `deploy`: CloudFormation could not create or update the stack (it rolled back), or the
    /// stack is in a state no deploy can start from.
    Deploy = 11,
    /// `export` or `feed` stopped before the job was complete (`--max-duration`, Ctrl-C,
    /// SIGTERM), at a part boundary: re-running the same command continues it
    /// (`--exit-zero-when-stopped` exits 0 instead).
    Stopped = 12,
    /// Interrupted (Ctrl-C or SIGTERM) where stopping early leaves nothing to resume: a
    /// `verify --source` count (its temporary insight deleted first).
    Interrupted = 130,
}

/// Every way the library can fail. Each message says what went wrong and what to do.
/// (Fields are named for what they hold; `source` keeps the underlying error.)
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[allow(missing_docs)]
pub enum Error {
    /// A bad flag, event field, destination, job id or duration.
    #[error("{0}")]
    Usage(String),

    /// Filters that break the API's rules.
    #[error("invalid filters: {0}")]
    Filters(String),

    /// Credentials missing or rejected, or access denied.
    #[error("{message}")]
    Auth {
        message: String,
        #[source]
        source: Option<BoxError>,
    },

    /// The destination is missing or failed.
    #[error("destination {location}: {message}")]
    Destination {
        location: String,
        message: String,
        #[source]
        source: Option<BoxError>,
    },

    /// Another run holds the job, or the job was created with another request.
    #[error("job {job_id}: {message}")]
    JobConflict { job_id: String, message: String },

    /// Some streams of a multi-stream job failed (each named with its reason); the rest are
    /// complete, and re-running resumes only the unfinished ones.
    #[error("partial: job {job_id}: {message}")]
    Partial { job_id: String, message: String },

    /// A complete job whose relative date range was resolved on an earlier day: the window it
    /// exported is done, and a re-run exports nothing new.
    #[error("job {job_id}: {message}")]
    WindowDone { job_id: String, message: String },

    /// Every page was read, but findings changed while they were: not proven exact.
    #[error("job {job_id}: {message}")]
    Unsettled { job_id: String, message: String },

    /// The run stopped at a part boundary before the job was complete; the same command
    /// continues it.
    #[error("job {job_id}: {message}")]
    Stopped { job_id: String, message: String },

    /// Another run holds the job's lock (or took it from this run); a later run resumes.
    #[error("job {job_id}: {message}")]
    JobBusy { job_id: String, message: String },

    /// The job's state is corrupt, foreign or from a newer build.
    #[error("job {job_id}: the checkpoint at {location} cannot be used: {message}")]
    CorruptState {
        job_id: String,
        location: String,
        message: String,
    },

    /// One attempt failed in a way a later attempt may not: throttled, a server fault, a lost
    /// connection or a cut-off body. The source's retry loop retries these.
    #[error("{}{message}", if *throttled { "throttled: " } else { "" })]
    Transient { throttled: bool, message: String },

    /// The service refused the request itself (not retried; the message says what to change).
    #[error("Security Hub page {page}: {message}")]
    Rejected { page: u64, message: String },

    /// The source gave up on a page after its retries; the last failure is the source.
    #[error("Security Hub page {page}: {message}")]
    Source {
        page: u64,
        message: String,
        #[source]
        source: Option<BoxError>,
    },

    /// The service rejected the saved NextToken on resume.
    #[error("Security Hub page {page}: the saved NextToken was rejected ({message}); {advice}")]
    CursorDead {
        page: u64,
        message: String,
        advice: String,
    },

    /// A page of a chain that relied on the service's order broke it (the job falls back to a
    /// reading that does not depend on the order; this escapes only if that is impossible).
    #[error("Security Hub page {page} of chain {chain} broke the order the reading relied on ({message}); re-run with --restart --max-shards 1")]
    OrderUnproven {
        chain: usize,
        page: u64,
        message: String,
    },

    /// A service could not be reached at all.
    #[error("cannot reach {service}: {message}")]
    Unreachable { service: String, message: String },

    /// CloudFormation could not create or update the stack, or cannot start from its state.
    #[error("stack {stack}: {message}")]
    Deploy { stack: String, message: String },

    /// `verify` found discrepancies.
    #[error("job {job_id}: verify found {}: {}", crate::job::observer::plural(problems.len() as u64, "discrepancy", "discrepancies"), problems.join("; "))]
    Verify {
        job_id: String,
        problems: Vec<String>,
    },

    /// Parquet encoding failed.
    #[error("encoding part {part}: {source}")]
    Encode {
        part: u64,
        #[source]
        source: BoxError,
    },

    /// A bug or an impossible state.
    #[error("{0}")]
    Internal(String),

    /// Stopped by Ctrl-C or SIGTERM before it could finish.
    #[error("{0}")]
    Interrupted(String),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Usage(_) | Error::Filters(_) => ExitCode::Usage,
            Error::Auth { .. } => ExitCode::Auth,
            Error::Destination { .. } => ExitCode::Destination,
            Error::JobConflict { .. } | Error::JobBusy { .. } | Error::CorruptState { .. } => {
                ExitCode::JobConflict
            }
            Error::Source { .. }
            | Error::Rejected { .. }
            | Error::Transient { .. }
            | Error::CursorDead { .. }
            | Error::OrderUnproven { .. }
            | Error::Unreachable { .. } => ExitCode::Source,
            Error::Verify { .. } => ExitCode::Verify,
            Error::Deploy { .. } => ExitCode::Deploy,
            Error::Partial { .. } => ExitCode::Partial,
            Error::WindowDone { .. } => ExitCode::WindowDone,
            Error::Unsettled { .. } => ExitCode::Unsettled,
            Error::Stopped { .. } => ExitCode::Stopped,
            Error::Encode { .. } | Error::Internal(_) => ExitCode::Internal,
            Error::Interrupted(_) => ExitCode::Interrupted,
        }
    }

    /// True when trying the same thing again later may succeed with nothing changed: a throttled
    /// or faulty attempt, a source that gave up after its retries, an unreachable service. The
    /// retry loop retries these attempts; a runner (a Lambda slice) may re-run the job after them.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Transient { .. } | Error::Source { .. } | Error::Unreachable { .. }
        )
    }

    /// The error's kind as a stable name, for machines (a Lambda slice's `errorType`, which a
    /// state machine's Retry and Catch match on): `SechubExport.<Kind>`.
    pub fn kind(&self) -> &'static str {
        match self {
            err if err.is_retryable() => "SechubExport.Retryable",
            Error::Usage(_) | Error::Filters(_) => "SechubExport.BadRequest",
            Error::Auth { .. } => "SechubExport.AccessDenied",
            Error::Destination { .. } => "SechubExport.Destination",
            Error::JobBusy { .. } => "SechubExport.JobBusy",
            Error::JobConflict { .. } | Error::CorruptState { .. } => "SechubExport.JobConflict",
            Error::Rejected { .. } | Error::CursorDead { .. } | Error::OrderUnproven { .. } => {
                "SechubExport.SourceRejected"
            }
            Error::Verify { .. } => "SechubExport.Verify",
            Error::Deploy { .. } => "SechubExport.Deploy",
            Error::Partial { .. } => "SechubExport.Partial",
            Error::WindowDone { .. } => "SechubExport.WindowDone",
            Error::Unsettled { .. } => "SechubExport.Unsettled",
            Error::Stopped { .. } => "SechubExport.Stopped",
            Error::Interrupted(_) => "SechubExport.Interrupted",
            _ => "SechubExport.Internal",
        }
    }

    /// A destination error with a source.
    pub fn destination(
        location: impl fmt::Display,
        message: impl Into<String>,
        source: impl Into<Option<BoxError>>,
    ) -> Self {
        Error::Destination {
            location: location.to_string(),
            message: message.into(),
            source: source.into(),
        }
    }

    /// An authentication / authorization error with a source.
    pub fn auth(message: impl Into<String>, source: impl Into<Option<BoxError>>) -> Self {
        Error::Auth {
            message: message.into(),
            source: source.into(),
        }
    }
}

/// Shorthand result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error and its sources on one line, as printed to the user.
pub fn one_line(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        next = cause.source();
    }
    line.replace('\n', " ")
}
