//! The library's one error type, with the exit code each kind of failure maps to.

use std::fmt;

/// A boxed source error (SDK, I/O, Parquet...).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Documented process exit codes (see README "Exit codes").
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
}

/// Every way the library can fail. Each message says what went wrong and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{0}")]
    Usage(String),

    #[error("invalid filters: {0}")]
    Filters(String),

    #[error("{message}")]
    Auth {
        message: String,
        #[source]
        source: Option<BoxError>,
    },

    #[error("destination {location}: {message}")]
    Destination {
        location: String,
        message: String,
        #[source]
        source: Option<BoxError>,
    },

    #[error("job {job_id}: {message}")]
    JobConflict { job_id: String, message: String },

    #[error("job {job_id}: the checkpoint at {location} cannot be used: {message}")]
    CorruptState {
        job_id: String,
        location: String,
        message: String,
    },

    #[error("GetFindings page {page}: {message}")]
    Source {
        page: u64,
        message: String,
        #[source]
        source: Option<BoxError>,
    },

    #[error("GetFindings page {page}: the saved NextToken was rejected ({message}); {advice}")]
    CursorDead {
        page: u64,
        message: String,
        advice: String,
    },

    #[error("cannot reach {service}: {message}")]
    Unreachable { service: String, message: String },

    #[error("job {job_id}: verify found {} discrepancies: {}", problems.len(), problems.join("; "))]
    Verify {
        job_id: String,
        problems: Vec<String>,
    },

    #[error("encoding part {part}: {source}")]
    Encode {
        part: u64,
        #[source]
        source: BoxError,
    },

    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Usage(_) | Error::Filters(_) => ExitCode::Usage,
            Error::Auth { .. } => ExitCode::Auth,
            Error::Destination { .. } => ExitCode::Destination,
            Error::JobConflict { .. } | Error::CorruptState { .. } => ExitCode::JobConflict,
            Error::Source { .. } | Error::CursorDead { .. } | Error::Unreachable { .. } => {
                ExitCode::Source
            }
            Error::Verify { .. } => ExitCode::Verify,
            Error::Encode { .. } | Error::Internal(_) => ExitCode::Internal,
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
