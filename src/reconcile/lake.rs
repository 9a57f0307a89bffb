//! The lake's side of a reconciliation: one stream's parts read back (only the account,
//! product and identity columns), counted per account and per product over distinct findings,
//! with duplicates counted apart and, when asked, each account's finding identities.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use crate::error::{Error, Result};
use crate::job::checkpoint::PartRecord;
use crate::request::Api;
use crate::sink::ObjectStore;
use crate::source::counts::GroupBy;

/// A finding's identity: `Id` and `ProductArn` (OCSF: `finding_info.uid` and
/// `metadata.product.uid`).
pub type Identity = (String, String);

/// What one stream's parts hold.
#[derive(Debug, Default)]
pub struct LakeSide {
    /// Distinct findings per account, then per product.
    pub by_account: BTreeMap<String, u64>,
    /// Distinct findings per product (rows without one are in no group).
    pub by_product: BTreeMap<String, u64>,
    /// Rows read.
    pub rows: u64,
    /// Rows whose identity an earlier row of the stream already had.
    pub duplicates: u64,
    /// Each account's identities, when asked for.
    pub identities: HashMap<String, HashSet<Identity>>,
}

impl LakeSide {
    /// The counts grouped by `group`.
    pub fn groups(&self, group: GroupBy) -> &BTreeMap<String, u64> {
        match group {
            GroupBy::Account => &self.by_account,
            GroupBy::Product => &self.by_product,
        }
    }
}

/// The identity columns of each format's table.
fn identity_columns(api: Api) -> [&'static str; 2] {
    match api {
        Api::GetFindings => ["id", "product_arn"],
        Api::GetFindingsV2 => ["finding_uid", "product_uid"],
    }
}

/// Reads `parts` of a stream of `api`; `keep_identities` keeps every account's identities.
pub async fn read(
    store: &dyn ObjectStore,
    api: Api,
    parts: &[PartRecord],
    keep_identities: bool,
) -> Result<LakeSide> {
    let mut side = LakeSide::default();
    let mut seen: HashSet<u64> = HashSet::new();
    for part in parts {
        let Some((body, _)) = store.get(&part.key).await? else {
            continue; // reported by the manifest check as a missing part
        };
        let rows = columns(api, body).map_err(|e| {
            Error::destination(
                store.location(&part.key),
                format!("cannot read the part's columns ({e}); run verify without --source to check the parts"),
                None,
            )
        })?;
        for [account, product, id, product_key] in rows {
            side.rows += 1;
            let mut hasher = DefaultHasher::new();
            (&id, &product_key).hash(&mut hasher);
            if !seen.insert(hasher.finish()) {
                side.duplicates += 1;
                continue;
            }
            let account = account.unwrap_or_default();
            if let Some(product) = product {
                *side.by_product.entry(product).or_insert(0) += 1;
            }
            *side.by_account.entry(account.clone()).or_insert(0) += 1;
            if keep_identities {
                side.identities
                    .entry(account)
                    .or_default()
                    .insert((id.unwrap_or_default(), product_key.unwrap_or_default()));
            }
        }
    }
    Ok(side)
}

/// The account, product and identity cells of every row of one part.
fn columns(api: Api, body: bytes::Bytes) -> std::result::Result<Vec<[Option<String>; 4]>, String> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(body).map_err(|e| e.to_string())?;
    let [id, product_key] = identity_columns(api);
    let wanted = [
        GroupBy::Account.column(api),
        GroupBy::Product.column(api),
        id,
        product_key,
    ];
    let schema = builder.parquet_schema();
    let indexes: Vec<usize> = wanted
        .iter()
        .map(|name| {
            schema
                .columns()
                .iter()
                .position(|c| c.path().string() == *name)
                .ok_or_else(|| format!("no column {name}"))
        })
        .collect::<std::result::Result<_, _>>()?;
    let mask = ProjectionMask::leaves(schema, indexes);
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        let mut cells: Vec<Vec<Option<String>>> = Vec::new();
        for name in wanted {
            let column = batch
                .column_by_name(name)
                .ok_or_else(|| format!("no column {name}"))?;
            let text = arrow::compute::cast(column, &DataType::Utf8).map_err(|e| e.to_string())?;
            let strings = text.as_string::<i32>();
            cells.push(
                (0..strings.len())
                    .map(|i| (!strings.is_null(i)).then(|| strings.value(i).to_string()))
                    .collect(),
            );
        }
        let [accounts, products, ids, keys]: [Vec<Option<String>>; 4] =
            cells.try_into().expect("four columns");
        let cells = accounts.into_iter().zip(products).zip(ids).zip(keys);
        rows.extend(cells.map(|(((a, p), i), k)| [a, p, i, k]));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{asff::ASFF, encode_pages, Compression, RowOrigin};
    use crate::sink::memory::MemoryStore;

    #[tokio::test]
    async fn distinct_findings_are_counted_per_account_and_product_and_repeats_apart() {
        let body = r#"{"Findings":[
            {"Id":"a","ProductArn":"p1","AwsAccountId":"111111111111","ProductName":"GuardDuty"},
            {"Id":"a","ProductArn":"p2","AwsAccountId":"111111111111","ProductName":"Inspector"},
            {"Id":"b","ProductArn":"p1","AwsAccountId":"222222222222"},
            {"Id":"a","ProductArn":"p1","AwsAccountId":"111111111111","ProductName":"GuardDuty"}]}"#;
        let page = crate::source::Page::parse(1, body.to_string(), 0).unwrap();
        let part = encode_pages(&ASFF, &[page], &RowOrigin::job("j"), Compression::Zstd).unwrap();
        let store = MemoryStore::new();
        store
            .put("p", bytes::Bytes::from(part.clone()), "x")
            .await
            .unwrap();
        let record = PartRecord {
            number: 1,
            key: "p".into(),
            rows: 4,
            bytes: part.len() as u64,
            sha256: String::new(),
        };
        let side = read(&store, Api::GetFindings, &[record], true)
            .await
            .unwrap();
        assert_eq!((side.rows, side.duplicates), (4, 1));
        assert_eq!(side.by_account["111111111111"], 2);
        assert_eq!(side.by_account["222222222222"], 1);
        assert_eq!(side.by_product.get("GuardDuty"), Some(&1));
        assert_eq!(side.by_product.len(), 2, "no product, no group");
        assert!(side.identities["111111111111"].contains(&("a".into(), "p2".into())));
    }
}
