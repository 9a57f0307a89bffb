use std::sync::Arc;

use chrono::TimeZone;
use serde_json::json;

use super::*;
use crate::feed::{next_run, window_filters, FeedOptions};
use crate::sink::local::LocalStore;

fn identity(filters: Value) -> FamilyIdentity {
    FamilyIdentity {
        api: Api::GetFindings,
        account_id: "123456789012".into(),
        region: "us-east-1".into(),
        streams: StreamArgs {
            accounts: vec![],
            regions: vec![],
            role_name: None,
            external_id: None,
            max_streams: 16,
        },
        filters_as_given: filters,
        destination: "file:///tmp/lake".into(),
    }
}

fn options(every_days: u64, overlap_mins: u64) -> FeedOptions {
    FeedOptions {
        snapshot_every: std::time::Duration::from_secs(every_days * 86_400),
        overlap: std::time::Duration::from_secs(overlap_mins * 60),
        family: None,
        invocation: None,
    }
}

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap()
}

#[test]
fn a_family_starts_with_a_snapshot_then_reads_from_the_watermark_minus_the_overlap() {
    let mut state = FeedState::new("fam", identity(json!({})));
    let options = options(7, 60);
    let first = next_run(&state, "fam", &options, at(1, 2));
    assert_eq!(first.kind, RunKind::Snapshot);
    assert_eq!(first.window_start, None);
    assert_eq!(first.job_id, "feed-fam-20261101T020000Z");
    state.current = Some(first.clone());
    state.complete(first, 500, at(1, 3));
    assert_eq!(
        (
            state.watermark,
            state.last_snapshot,
            state.current.is_none()
        ),
        (Some(at(1, 2)), Some(at(1, 2)), true)
    );

    let second = next_run(&state, "fam", &options, at(2, 2));
    assert_eq!(second.kind, RunKind::Incremental);
    assert_eq!(
        second.window_start,
        Some(at(1, 1)),
        "the watermark minus an hour"
    );
    assert_eq!(second.window_end, at(2, 2));
    state.complete(second.clone(), 7, at(2, 3));
    state.complete(second, 7, at(2, 4));
    assert_eq!(state.runs.len(), 2, "recording a run twice changes nothing");
    assert_eq!(state.watermark, Some(at(2, 2)));
    assert_eq!(
        state.last_snapshot,
        Some(at(1, 2)),
        "an incremental run is not a snapshot"
    );

    let weekly = next_run(&state, "fam", &options, at(8, 2));
    assert_eq!(
        weekly.kind,
        RunKind::Snapshot,
        "seven days after the last snapshot"
    );
}

#[test]
fn a_window_is_the_users_filters_and_updated_at_inclusive_at_both_ends() {
    let user = json!({"RecordState": [{"Value": "ACTIVE", "Comparison": "EQUALS"}]});
    let run = FeedRun {
        job_id: "feed-fam-x".into(),
        kind: RunKind::Incremental,
        window_start: Some(at(1, 1)),
        window_end: at(2, 2),
        rows: None,
        completed_at: None,
        repairs: 0,
        settled: None,
        started_by: None,
    };
    assert_eq!(
        window_filters(&user, &run),
        json!({
            "RecordState": [{"Value": "ACTIVE", "Comparison": "EQUALS"}],
            "UpdatedAt": [{"Start": "2026-11-01T01:00:00.000Z", "End": "2026-11-02T02:00:00.000Z"}]
        })
    );
    let created = json!({"CreatedAt": [{"DateRange": {"Value": 30, "Unit": "DAYS"}}]});
    assert_eq!(
        window_filters(&created, &run)["CreatedAt"],
        json!([{"Start": "2026-10-03T02:00:00.000Z", "End": "2026-11-02T02:00:00.000Z"}]),
        "a relative range of the user's is resolved at the run's start"
    );
    let snapshot = FeedRun {
        window_start: None,
        kind: RunKind::Snapshot,
        ..run
    };
    assert_eq!(
        window_filters(&json!({}), &snapshot)["UpdatedAt"][0]["Start"],
        "1970-01-01T00:00:00.000Z"
    );
}

#[test]
fn the_family_name_ignores_how_many_streams_run_at_once_but_not_the_filters() {
    let a = identity(json!({}));
    let mut b = a.clone();
    b.streams.max_streams = 4;
    assert_eq!(a.default_family(), b.default_family());
    assert!(a.same_as(&b));
    let c = identity(json!({"RecordState": [{"Value": "ACTIVE", "Comparison": "EQUALS"}]}));
    assert_ne!(a.default_family(), c.default_family());
    assert!(!a.same_as(&c));
    assert!(a.default_family().starts_with("123456789012-us-east-1-"));
}

#[tokio::test]
async fn of_two_runs_that_start_a_window_from_the_same_state_only_one_writes_it() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()));
    let id = identity(json!({}));
    let mut first = Stored::load(store.as_ref(), "fam", &id).await.unwrap();
    let mut second = Stored::load(store.as_ref(), "fam", &id).await.unwrap();
    let mut begun = first.state.clone();
    begun.current = Some(next_run(&begun, "fam", &options(7, 60), at(1, 2)));
    assert!(first.save(store.as_ref(), begun.clone()).await.unwrap());
    let mut other = second.state.clone();
    other.current = Some(next_run(&other, "fam", &options(7, 60), at(1, 3)));
    assert!(
        !second.save(store.as_ref(), other).await.unwrap(),
        "the second create is refused"
    );

    let reloaded = Stored::load(store.as_ref(), "fam", &id).await.unwrap();
    assert_eq!(reloaded.state, begun);
    let stale = first.state.clone();
    assert!(
        first.save(store.as_ref(), stale.clone()).await.unwrap(),
        "the holder of the version writes on"
    );
    let err = Stored::load(
        store.as_ref(),
        "fam",
        &identity(json!({"Title": [{"Value": "x", "Comparison": "EQUALS"}]})),
    )
    .await
    .err()
    .expect("another request under the same family");
    assert!(matches!(err, Error::JobConflict { .. }), "{err}");
}

#[test]
fn a_run_whose_reads_never_settled_leaves_the_watermark_and_the_snapshot_where_they_were() {
    let family = "fam";
    let mut state = FeedState::new(family, identity(json!({})));
    let options = FeedOptions {
        snapshot_every: std::time::Duration::from_secs(7 * 86_400),
        overlap: std::time::Duration::from_secs(3_600),
        family: None,
        invocation: None,
    };
    let mut first = next_run(&state, family, &options, at(1, 0));
    first.settled = Some(true);
    state.complete(first, 10, at(1, 1));
    let mut unsettled = next_run(&state, family, &options, at(2, 0));
    assert_eq!(unsettled.kind, RunKind::Incremental);
    unsettled.settled = Some(false);
    unsettled.repairs = 2;
    state.complete(unsettled.clone(), 5, at(2, 1));
    assert_eq!(
        state.watermark,
        Some(at(1, 0)),
        "not moved past the unsettled window"
    );
    assert_eq!(state.runs.last().unwrap().repairs, 2);
    let next = next_run(&state, family, &options, at(3, 0));
    assert_eq!(
        next.window_start,
        Some(at(1, 0) - chrono::Duration::hours(1)),
        "the next window covers the unsettled one"
    );
    let repair = unsettled.repair(1);
    assert_eq!(repair.job_id, format!("{}-r1", unsettled.job_id));
    assert_eq!(repair.kind, RunKind::Repair);
    assert_eq!(
        (repair.window_start, repair.window_end),
        (unsettled.window_start, unsettled.window_end)
    );
}

#[test]
fn a_scheduled_invocation_finishes_its_own_run_and_starts_no_other() {
    use crate::feed::{next_step, Step};
    let mut state = FeedState::new("fam", identity(json!({})));
    let scheduled = FeedOptions {
        invocation: Some("exec-1".into()),
        ..options(7, 60)
    };
    assert_eq!(next_step(&state, Some("exec-1")), Step::Begin);
    // A run another invocation (here the command line) left unfinished is resumed, not owned.
    let left = next_run(&state, "fam", &options(7, 60), at(1, 2));
    assert_eq!(left.started_by, None);
    state.current = Some(left.clone());
    assert_eq!(
        next_step(&state, Some("exec-1")),
        Step::Resume {
            run: left.clone(),
            mine: false
        }
    );
    state.complete(left, 10, at(1, 3));
    assert_eq!(next_step(&state, Some("exec-1")), Step::Begin);
    let own = next_run(&state, "fam", &scheduled, at(1, 4));
    assert_eq!(own.started_by.as_deref(), Some("exec-1"));
    state.current = Some(own.clone());
    assert_eq!(
        next_step(&state, Some("exec-1")),
        Step::Resume {
            run: own.clone(),
            mine: true
        }
    );
    assert_eq!(
        next_step(&state, Some("exec-2")),
        Step::Resume {
            run: own.clone(),
            mine: false
        },
        "another execution only resumes it"
    );
    state.complete(own.clone(), 3, at(1, 5));
    // Called again after its run completed (a retried last slice): nothing more to do.
    assert_eq!(next_step(&state, Some("exec-1")), Step::Done(own.job_id));
    assert_eq!(next_step(&state, Some("exec-2")), Step::Begin);
    assert_eq!(
        next_step(&state, None),
        Step::Begin,
        "the command line always begins"
    );
    let saved: FeedState = serde_json::from_value(serde_json::to_value(&state).unwrap()).unwrap();
    assert_eq!(saved, state, "started_by is kept in the state object");
}
