//! A lenient, borrowing view of the OCSF fields that become typed columns (Security Hub's OCSF
//! 1.x findings: Compliance, Vulnerability and Detection Finding classes). Fields the view does
//! not know, `unmapped` among them, stay only in `finding_json`.

use serde::Deserialize;

use crate::encode::lenient::{Lenient, Number, Text};
use crate::encode::timestamp::parse_iso8601;

/// The OCSF fields the typed columns are made of.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct OcsfView<'a> {
    pub(crate) class_uid: Lenient<Number>,
    #[serde(borrow)]
    pub(crate) class_name: Lenient<Text<'a>>,
    #[serde(borrow)]
    pub(crate) category_name: Lenient<Text<'a>>,
    pub(crate) type_uid: Lenient<Number>,
    #[serde(borrow)]
    pub(crate) activity_name: Lenient<Text<'a>>,
    #[serde(borrow)]
    pub(crate) severity: Lenient<Text<'a>>,
    pub(crate) severity_id: Lenient<Number>,
    #[serde(borrow)]
    pub(crate) status: Lenient<Text<'a>>,
    pub(crate) status_id: Lenient<Number>,
    #[serde(borrow)]
    pub(crate) finding_info: Lenient<FindingInfo<'a>>,
    #[serde(borrow)]
    pub(crate) metadata: Lenient<Metadata<'a>>,
    #[serde(borrow)]
    pub(crate) compliance: Lenient<Compliance<'a>>,
    #[serde(borrow)]
    pub(crate) cloud: Lenient<Cloud<'a>>,
    #[serde(borrow)]
    pub(crate) resources: Lenient<Vec<Resource<'a>>>,
    #[serde(borrow)]
    pub(crate) vulnerabilities: Lenient<Vec<Vulnerability<'a>>>,
}

/// `finding_info`: identity, text and the four times (epoch milliseconds, or the `_dt` form).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct FindingInfo<'a> {
    #[serde(borrow)]
    pub(crate) uid: Lenient<Text<'a>>,
    #[serde(borrow)]
    pub(crate) title: Lenient<Text<'a>>,
    #[serde(borrow)]
    pub(crate) desc: Lenient<Text<'a>>,
    pub(crate) created_time: Lenient<Number>,
    #[serde(borrow)]
    pub(crate) created_time_dt: Lenient<Text<'a>>,
    pub(crate) modified_time: Lenient<Number>,
    #[serde(borrow)]
    pub(crate) modified_time_dt: Lenient<Text<'a>>,
    pub(crate) first_seen_time: Lenient<Number>,
    #[serde(borrow)]
    pub(crate) first_seen_time_dt: Lenient<Text<'a>>,
    pub(crate) last_seen_time: Lenient<Number>,
    #[serde(borrow)]
    pub(crate) last_seen_time_dt: Lenient<Text<'a>>,
}

/// `metadata.product`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Metadata<'a> {
    #[serde(borrow)]
    pub(crate) product: Lenient<Product<'a>>,
}

/// `metadata.product`: the producer's uid (an ARN) and name.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Product<'a> {
    #[serde(borrow)]
    pub(crate) uid: Lenient<Text<'a>>,
    #[serde(borrow)]
    pub(crate) name: Lenient<Text<'a>>,
}

/// `compliance`: only the status is a column.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Compliance<'a> {
    #[serde(borrow)]
    pub(crate) status: Lenient<Text<'a>>,
}

/// `cloud`: the account and Region the finding belongs to.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Cloud<'a> {
    #[serde(borrow)]
    pub(crate) account: Lenient<Account<'a>>,
    #[serde(borrow)]
    pub(crate) region: Lenient<Text<'a>>,
}

/// `cloud.account`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Account<'a> {
    #[serde(borrow)]
    pub(crate) uid: Lenient<Text<'a>>,
}

/// One `resources[]` entry: type and uid (the rest stays in `finding_json`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Resource<'a> {
    #[serde(borrow)]
    pub(crate) r#type: Lenient<Text<'a>>,
    #[serde(borrow)]
    pub(crate) uid: Lenient<Text<'a>>,
}

/// One `vulnerabilities[]` entry: its CVE id.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Vulnerability<'a> {
    #[serde(borrow)]
    pub(crate) cve: Lenient<Cve<'a>>,
}

/// `vulnerabilities[].cve`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Cve<'a> {
    #[serde(borrow)]
    pub(crate) uid: Lenient<Text<'a>>,
}

impl<'a> OcsfView<'a> {
    /// Parses one finding's JSON text; a document that is not an object gives an empty view.
    pub(crate) fn parse(text: &'a str) -> Self {
        serde_json::from_str(text).unwrap_or_default()
    }

    /// `finding_info`, or an empty one.
    pub(crate) fn info(&self) -> Option<&FindingInfo<'a>> {
        self.finding_info.get()
    }
}

/// Milliseconds since the epoch of an OCSF time: the `timestamp_t` number when it is one, else
/// its `_dt` ISO-8601 form.
pub(crate) fn millis(number: &Lenient<Number>, dt: &Lenient<Text<'_>>) -> Option<i64> {
    let from_number = number
        .get()
        .map(|n| n.0)
        .filter(|n| n.is_finite() && n.abs() < 1e16)
        .map(|n| n.round() as i64);
    from_number.or_else(|| {
        dt.get()
            .and_then(|t| parse_iso8601(t))
            .map(|t| t.timestamp_millis())
    })
}
