//! One GetFindings response page: the raw body, where each finding's exact text sits in it, and
//! the token that follows it. The unit passed from the source to the encoder.

use std::ops::Range;

use serde::Deserialize;
use serde_json::value::RawValue;

/// A page of findings kept exactly as the service sent them.
#[derive(Debug, Clone)]
pub struct Page {
    /// 1-based page number within this run (for messages).
    pub number: u64,
    /// The token for the page after this one; `None` on the last page.
    pub next_token: Option<String>,
    /// When the page was received, in milliseconds since the epoch.
    pub fetched_at_ms: i64,
    body: String,
    findings: Vec<Range<usize>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Body<'a> {
    /// Required by GetFindings' model: a 200 answer without it is not a page (a proxy's or a
    /// broken body), and taking it as an empty last page would end the job early.
    /// GetFindingsV2's model requires no member, so there it may be absent: no findings.
    #[serde(borrow, default)]
    findings: Option<Vec<&'a RawValue>>,
    #[serde(default)]
    next_token: Option<String>,
}

impl Page {
    /// Parses a GetFindings response body, keeping each finding's byte range.
    pub fn parse(number: u64, body: String, fetched_at_ms: i64) -> Result<Page, serde_json::Error> {
        Page::parse_with(number, body, fetched_at_ms, true)
    }

    /// As [`Page::parse`]; `findings_required` false (GetFindingsV2, whose response model
    /// requires no member) reads a body without `Findings` as a page of none.
    pub fn parse_with(
        number: u64,
        body: String,
        fetched_at_ms: i64,
        findings_required: bool,
    ) -> Result<Page, serde_json::Error> {
        if !body.trim_start().starts_with('{') {
            return Err(serde::de::Error::custom(
                "the response is not a JSON object",
            ));
        }
        let parsed: Body<'_> = serde_json::from_str(&body)?;
        let findings = match parsed.findings {
            Some(findings) => findings,
            None if findings_required => {
                return Err(serde::de::Error::custom("the response has no Findings"))
            }
            None => Vec::new(),
        };
        let base = body.as_ptr() as usize;
        let findings = findings
            .iter()
            .map(|raw| {
                let start = raw.get().as_ptr() as usize - base;
                start..start + raw.get().len()
            })
            .collect();
        let next_token = parsed.next_token.filter(|t| !t.is_empty());
        Ok(Page {
            number,
            next_token,
            fetched_at_ms,
            body,
            findings,
        })
    }

    /// This page with only the findings at positions `keep` (ascending), in their order.
    pub fn retain(mut self, keep: &[usize]) -> Page {
        self.findings = keep.iter().map(|&i| self.findings[i].clone()).collect();
        self
    }

    /// This page as the last page of its chain (a meeting pair's chain ends here).
    pub fn last(mut self) -> Page {
        self.next_token = None;
        self
    }

    /// An empty last page: a chain that ends without another page (its partner met it).
    pub fn empty_last(number: u64) -> Page {
        Page {
            number,
            next_token: None,
            fetched_at_ms: chrono::Utc::now().timestamp_millis(),
            body: String::new(),
            findings: Vec::new(),
        }
    }

    /// Each finding's JSON text, byte for byte as received.
    pub fn findings(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.findings.iter().map(|range| &self.body[range.clone()])
    }

    /// Number of findings on the page.
    pub fn len(&self) -> usize {
        self.findings.len()
    }

    /// True when the page holds no findings.
    pub fn is_empty(&self) -> bool {
        self.findings.is_empty()
    }

    /// Bytes of finding JSON on the page.
    pub fn finding_bytes(&self) -> usize {
        self.findings.iter().map(|r| r.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_keep_their_exact_text_including_escapes_and_spacing() {
        let body = r#"{"Findings":[ {"Id":"a","T":"caf\u00e9 \ud83d\ude00"} , {"Id" : "b"}],"NextToken":"tok"}"#;
        let page = Page::parse(1, body.to_string(), 0).unwrap();
        let texts: Vec<&str> = page.findings().collect();
        assert_eq!(
            texts,
            [
                r#"{"Id":"a","T":"caf\u00e9 \ud83d\ude00"}"#,
                r#"{"Id" : "b"}"#
            ]
        );
        assert_eq!(page.next_token.as_deref(), Some("tok"));
    }

    #[test]
    fn a_body_without_findings_is_not_a_page() {
        for body in [
            r#"{}"#,
            r#"{"NextToken":"t"}"#,
            r#"{"Findings":null}"#,
            r#"[]"#,
        ] {
            assert!(Page::parse(1, body.to_string(), 0).is_err(), "{body}");
        }
    }

    #[test]
    fn a_get_findings_v2_body_without_findings_is_a_page_of_none() {
        let last = Page::parse_with(1, "{}".into(), 0, false).unwrap();
        assert!(last.is_empty() && last.next_token.is_none());
        let more = Page::parse_with(1, r#"{"NextToken":"t"}"#.into(), 0, false).unwrap();
        assert!(more.is_empty() && more.next_token.as_deref() == Some("t"));
        assert!(Page::parse_with(1, "[]".into(), 0, false).is_err());
    }

    #[test]
    fn an_empty_or_missing_next_token_ends_the_job() {
        for body in [
            r#"{"Findings":[]}"#,
            r#"{"Findings":[],"NextToken":""}"#,
            r#"{"Findings":[],"NextToken":null}"#,
        ] {
            let page = Page::parse(1, body.to_string(), 0).unwrap();
            assert!(page.next_token.is_none() && page.is_empty());
        }
    }
}
