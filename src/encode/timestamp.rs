//! Parses the ISO-8601 timestamp forms ASFF findings carry into UTC instants.

use chrono::{DateTime, NaiveDateTime, Utc};

/// Parses `Z`, `±HH:MM`, `±HHMM` or `±HH` offsets with 0-9 fractional digits; a string without an offset is
/// taken as UTC. Returns `None` for anything else (the column is then null, never an error).
pub fn parse_iso8601(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    // Offsets without a colon (+0000) or without minutes (+05), and a space separator.
    for format in ["%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z"] {
        if let Ok(time) = DateTime::parse_from_str(text, format) {
            return Some(time.with_timezone(&Utc));
        }
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Some(naive.and_utc());
        }
    }
    None
}

/// Milliseconds since the Unix epoch, as Athena's `TIMESTAMP(MILLIS)` stores them.
pub fn parse_millis(text: &str) -> Option<i64> {
    parse_iso8601(text).map(|t| t.timestamp_millis())
}

/// The `UpdatedAt` of a finding's JSON text, read without building the finding.
pub fn updated_at_of(text: &str) -> Option<DateTime<Utc>> {
    #[derive(serde::Deserialize)]
    struct UpdatedOnly {
        #[serde(rename = "UpdatedAt")]
        updated_at: Option<String>,
    }
    serde_json::from_str::<UpdatedOnly>(text)
        .ok()?
        .updated_at
        .as_deref()
        .and_then(parse_iso8601)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asff_timestamp_form_parses_to_the_same_utc_instant() {
        let expected = 1_700_000_000_123;
        for form in [
            "2023-11-14T22:13:20.123Z",
            "2023-11-14T22:13:20.123000Z",
            "2023-11-14T22:13:20.123456789Z",
            "2023-11-14T23:13:20.123+01:00",
            "2023-11-14T17:13:20.123-05:00",
            "2023-11-14t22:13:20.123z",
            "2023-11-14T22:13:20.123+0000",
            "2023-11-15T03:13:20.123+05",
            "2023-11-14T19:13:20.123-03",
            "2023-11-14T22:13:20.123",
        ] {
            assert_eq!(parse_millis(form), Some(expected), "{form}");
        }
        assert_eq!(
            parse_millis("2023-11-14T22:13:20Z"),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            parse_millis("2023-11-14T22:13:20.1Z"),
            Some(1_700_000_000_100)
        );
    }

    #[test]
    fn unparseable_timestamps_are_none_not_errors() {
        for bad in ["", "yesterday", "2023-13-40T00:00:00Z", "1700000000"] {
            assert_eq!(parse_millis(bad), None, "{bad}");
        }
    }
}
