use super::*;
use crate::request::test_identity;
use crate::sink::local::LocalStore;

fn sample(job_id: &str) -> Checkpoint {
    let identity = test_identity(serde_json::json!({}));
    Checkpoint::new(job_id.into(), identity.freeze(Utc::now()), Utc::now())
}

fn part(number: u64, rows: u64) -> PartRecord {
    PartRecord {
        number,
        key: layout::part_key("findings", "2026-11-22", "j", number),
        rows,
        bytes: 10,
        sha256: "00".into(),
    }
}

#[tokio::test]
async fn commits_round_trip_and_a_second_writer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()));
    let mut mine = CheckpointStore::new(store.clone(), "j");
    let mut checkpoint = sample("j");
    mine.commit(&checkpoint).await.unwrap();

    let mut other = CheckpointStore::new(store.clone(), "j");
    let loaded = other.load().await.unwrap().unwrap();
    assert_eq!(loaded, checkpoint);

    checkpoint.advance(part(1, 100), 1, &[(0, Some("t1".into()))], Utc::now());
    mine.commit(&checkpoint).await.unwrap();
    let err = other.commit(&loaded).await.unwrap_err();
    assert!(matches!(err, Error::JobConflict { .. }), "{err}");
    assert_eq!(
        CheckpointStore::new(store, "j")
            .load()
            .await
            .unwrap()
            .unwrap()
            .exported_count,
        100
    );
}

#[test]
fn the_last_part_completes_the_job() {
    let mut checkpoint = sample("j");
    checkpoint.advance(part(1, 100), 1, &[(0, Some("t".into()))], Utc::now());
    assert_eq!(checkpoint.state, JobState::Running);
    checkpoint.advance(part(2, 5), 1, &[(0, None)], Utc::now());
    assert_eq!(
        (
            checkpoint.state,
            checkpoint.exported_count,
            checkpoint.next_part
        ),
        (JobState::Complete, 105, 3)
    );
}

#[test]
fn a_complete_relative_window_is_done_only_on_a_later_day() {
    let at = |text: &str| {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    };
    let frozen = at("2026-11-22T23:00:00Z");
    let last_day = serde_json::json!({"UpdatedAt": [{"DateRange": {"Value": 1, "Unit": "DAYS"}}]});
    let mut relative = Checkpoint::new("j".into(), test_identity(last_day).freeze(frozen), frozen);
    let mut absolute = Checkpoint::new(
        "j".into(),
        test_identity(serde_json::json!({})).freeze(frozen),
        frozen,
    );
    let next_day = at("2026-11-23T00:30:00Z");
    assert_eq!(relative.window_done("j", next_day), None, "still running");
    for checkpoint in [&mut relative, &mut absolute] {
        checkpoint.advance(part(1, 5), 1, &[(0, None)], frozen);
    }
    assert_eq!(
        relative.window_done("j", at("2026-11-22T23:59:00Z")),
        None,
        "the same day"
    );
    assert_eq!(
        absolute.window_done("j", next_day),
        None,
        "no relative range"
    );
    let message = relative
        .window_done("j", next_day)
        .expect("done on a later day");
    assert!(
        message.contains("2026-11-22T23:00:00.000Z") && message.contains("--job-id j-20261123"),
        "{message}"
    );
}

#[test]
fn corrupt_newer_foreign_and_edited_checkpoints_are_refused() {
    let mut good = sample("j");
    good.advance(part(1, 100), 1, &[(0, Some("t".into()))], Utc::now());
    let text = serde_json::to_string(&good).unwrap();
    assert!(parse(text.as_bytes(), "j", "x").is_ok());
    let truncated = &text[..text.len() / 2];
    let newer = text.replace(
        &format!("\"format_version\":{FORMAT_VERSION}"),
        "\"format_version\":99",
    );
    assert_ne!(newer, text);
    let edited = text.replace("\"exported_count\":100", "\"exported_count\":250");
    for (bytes, job, needle) in [
        (truncated, "j", "not valid JSON"),
        (newer.as_str(), "j", "newer sechub-export"),
        (text.as_str(), "other", "belongs to job"),
        (edited.as_str(), "j", "inconsistent counts"),
    ] {
        let err = parse(bytes.as_bytes(), job, "x").unwrap_err();
        assert!(
            matches!(err, Error::CorruptState { .. }) && err.to_string().contains(needle),
            "{err}"
        );
    }
}

#[test]
fn a_sharded_job_completes_when_every_shard_is_finished() {
    let mut checkpoint = sample("j");
    let prefix = |p: &str| vec![serde_json::json!({"Value": p, "Comparison": "PREFIX"})];
    checkpoint.shards = ["a", "b"]
        .iter()
        .map(|p| ShardCursor {
            id_filter: prefix(p),
            ..ShardCursor::default()
        })
        .collect();
    assert_eq!(checkpoint.open_chains(), vec![(0, None), (1, None)]);
    assert_eq!(
        checkpoint.chain_filters(1)["Id"],
        serde_json::json!(prefix("b"))
    );
    checkpoint.advance(
        part(1, 100),
        2,
        &[(0, None), (1, Some("b2".into()))],
        Utc::now(),
    );
    assert_eq!(checkpoint.open_chains(), vec![(1, Some("b2".into()))]);
    assert_eq!(checkpoint.state, JobState::Running);
    checkpoint.finish_pages(1, &[(1, None)], Utc::now());
    assert_eq!(checkpoint.state, JobState::Complete);
    assert!(checkpoint.open_chains().is_empty());
    assert_eq!(checkpoint.pages_fetched, 3);
}
