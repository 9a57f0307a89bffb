//! The Athena views, created right after the stack: `<table>_archive` and `<table>_latest` of
//! both tables (ASFF `findings`, OCSF `findings_ocsf`), from the same generator as the
//! template's saved queries, run in the stack's workgroup. `CREATE OR REPLACE VIEW` makes a
//! second deploy harmless.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_athena::types::{QueryExecutionContext, QueryExecutionState};

use super::stack::Deployed;
use crate::athena::{views, TableSpec};
use crate::aws::Failure;
use crate::encode::Format;
use crate::error::{Error, Result};
use crate::sink::Destination;

/// Longest a view's query may run (creating a view reads no data: seconds).
const MAX_QUERY_WAIT: Duration = Duration::from_secs(300);

/// Creates the four views; returns a line per view.
pub(super) async fn create(
    config: &SdkConfig,
    stack: &str,
    deployed: &Deployed,
) -> Result<Vec<String>> {
    let deploy_error = |message: String| {
        Error::Deploy {
        stack: stack.to_string(),
        message: format!("{message}; the stack is deployed: run its saved view queries in the Athena console, or deploy again"),
    }
    };
    let output = |key: &str| {
        deployed
            .output(key)
            .ok_or_else(|| deploy_error(format!("the stack has no {key} output")))
    };
    let (database, _) = output("FindingsTable")?
        .split_once('.')
        .map(|(d, t)| (d.to_string(), t.to_string()))
        .ok_or_else(|| deploy_error("FindingsTable is not database.table".into()))?;
    let work_group = work_group_of(stack);
    let destination = Destination::parse(&output("Destination")?)?;
    let athena = aws_sdk_athena::Client::new(config);
    let mut lines = Vec::new();
    for format in [
        &crate::encode::asff::ASFF as &'static dyn Format,
        &crate::encode::ocsf::OCSF,
    ] {
        let spec = TableSpec::new(&database, format.table().dir, &destination, format)?;
        for (view, sql) in [
            (spec.archive_view(), views::create_archive_view(&spec)),
            (spec.latest_view(), views::create_latest_view(&spec)),
        ] {
            let execution = run_query(&athena, &sql, &database, &work_group)
                .await
                .map_err(|(failure, message)| match failure {
                    Some(f) if f.is_access_denied() => Error::auth(message, None),
                    _ => deploy_error(format!("view {database}.{view}: {message}")),
                })?;
            lines.push(format!(
                "view {database}.{view} created (Athena query {execution})"
            ));
        }
    }
    Ok(lines)
}

/// The stack's Athena workgroup: the template names it `<stack>-findings` (a test holds the
/// template to it), so the views need no output a partial stack may lack.
pub(super) fn work_group_of(stack: &str) -> String {
    format!("{stack}-findings")
}

/// Runs `sql` and waits for it; its execution id, or why it failed.
async fn run_query(
    athena: &aws_sdk_athena::Client,
    sql: &str,
    database: &str,
    work_group: &str,
) -> std::result::Result<String, (Option<Failure>, String)> {
    let sdk = |what: &str, failure: Failure| {
        let message = format!("{what} ({})", failure.summary());
        (Some(failure), message)
    };
    let started = athena
        .start_query_execution()
        .query_string(sql)
        .work_group(work_group)
        .query_execution_context(QueryExecutionContext::builder().database(database).build())
        .send()
        .await
        .map_err(|e| sdk("starting its query", Failure::of(&e)))?;
    let execution = started.query_execution_id().unwrap_or_default().to_string();
    let waited = std::time::Instant::now();
    loop {
        let got = athena
            .get_query_execution()
            .query_execution_id(&execution)
            .send()
            .await
            .map_err(|e| sdk("watching its query", Failure::of(&e)))?;
        let status = got.query_execution().and_then(|q| q.status());
        match status.and_then(|s| s.state()) {
            Some(QueryExecutionState::Succeeded) => return Ok(execution),
            Some(QueryExecutionState::Failed | QueryExecutionState::Cancelled) => {
                let reason = status
                    .and_then(|s| s.state_change_reason())
                    .unwrap_or("no reason given");
                return Err((None, format!("failed in Athena: {reason}")));
            }
            _ if waited.elapsed() > MAX_QUERY_WAIT => {
                return Err((
                    None,
                    format!("query {execution} still running after 5 minutes"),
                ))
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}
