//! Keeping the quota full when calls are slow. A NextToken chain has one request in flight, so
//! at a latency L it reads at most 1/L pages a second: below the quota once L x rate nears 1.
//! A new stream measures L on its first pages; when it is slow, the frozen query is split into
//! disjoint shards whose union is exactly the query, each its own chain, all under the stream's
//! one limiter.
//!
//! The shard key is the finding `Id`, which never changes (BatchUpdateFindings changes
//! severity, workflow and notes, never the Id), so no finding can move from a shard not yet
//! read to one already read: shard k holds the Ids starting with prefix p_k (`PREFIX`), and
//! one more shard holds every other Id (`PREFIX_NOT_EQUALS` each p_k). No p_k is a prefix of
//! another, so every finding is in exactly one shard. The prefixes split a sample (the probe's
//! Ids) into parts of about equal size: the sample only balances the shards, it never decides
//! whether a finding is read.

use serde::Deserialize;
use serde_json::{json, Value};

use super::checkpoint::ShardCursor;
use crate::error::Result;
use crate::request::filters::{MAX_ATTRIBUTES, MAX_VALUES};
use crate::request::narrow::string_conditions_match;
use crate::source::{Pace, PacedSource, Page};

/// Most shards of one stream (the rest shard lists every other prefix, within the service's
/// 20 values per attribute).
pub const MAX_SHARDS: u32 = 16;
/// A chain is slow when latency x rate exceeds this: it could not keep up with the quota.
const SLOW: f64 = 0.75;
/// Above this, one call is enough to decide (below, a second call confirms).
const CLEARLY_SLOW: f64 = 1.5;
/// Prefix shards per chain needed to keep the quota full: spare chains absorb slower calls and
/// uneven shards, and each shard costs about half a request more (its last page is partial).
const SHARDS_PER_CHAIN: f64 = 2.0;

/// How a new stream starts.
#[derive(Debug)]
pub enum Start {
    /// One chain, beginning with the probe's pages.
    Unsharded(Vec<Page>),
    /// These shards, each beginning with its first page (read to check that the service applies
    /// the shard's filter; the probe's pages are read again by the shards).
    Sharded {
        /// Every shard.
        shards: Vec<ShardCursor>,
        /// Each shard's first pages, in shard order.
        firsts: Vec<Vec<Page>>,
    },
}

/// Whether a request can be sharded on `Id`: the user's filters leave `Id` and one attribute
/// free.
pub fn shardable(filters: &Value) -> bool {
    filters
        .as_object()
        .is_some_and(|f| !f.contains_key("Id") && f.len() < MAX_ATTRIBUTES)
}

/// `filters` with a shard's `Id` conditions.
pub fn with_id_filter(filters: &Value, id_filter: &[Value]) -> Value {
    let mut filters = filters.clone();
    if let Some(fields) = filters.as_object_mut() {
        fields.insert("Id".into(), Value::Array(id_filter.to_vec()));
    }
    filters
}

/// Fetches a new stream's first page (and a second when the first was only a little slow, its
/// connection then warm) and decides how the stream runs; `paced` makes the stream's source of
/// a filter set. A sharded start reads every shard's first page: a service that did not apply
/// a shard's `Id` filter (its answer then holds Ids of other shards: the probe's page always
/// has them) leaves the stream unsharded, with a warning. `max_shards` 1 never shards. The
/// first page is read in every case, so a refused read fails the run before it writes.
pub async fn probe(
    paced: &dyn Fn(Value) -> PacedSource,
    pace: &Pace,
    filters: &Value,
    max_shards: u32,
) -> Result<Start> {
    let source = paced(filters.clone());
    let (first, took) = source.fetch_timed(None, 1).await?;
    if max_shards < 2 || !shardable(filters) {
        return Ok(Start::Unsharded(vec![first]));
    }
    let slow = |seconds: f64| seconds * pace.rate > SLOW;
    let mut latency = took.as_secs_f64();
    if first.next_token.is_none() || !slow(latency) {
        return Ok(Start::Unsharded(vec![first]));
    }
    let mut pages = vec![first];
    // A first call only a little slow may have paid for the connection: a second one decides.
    if latency * pace.rate < CLEARLY_SLOW {
        let (second, took) = source
            .fetch_timed(pages[0].next_token.as_deref(), 2)
            .await?;
        latency = latency.min(took.as_secs_f64());
        let last = second.next_token.is_none();
        pages.push(second);
        if last || !slow(latency) {
            return Ok(Start::Unsharded(pages));
        }
    }
    let ids: Vec<String> = pages
        .iter()
        .flat_map(|page| page.findings().filter_map(finding_id))
        .collect();
    let wanted = (latency * pace.rate * SHARDS_PER_CHAIN).ceil() as usize + 1;
    let groups = pack(&ids, wanted.clamp(2, max_shards as usize - 1));
    if groups.len() < 2 {
        return Ok(Start::Unsharded(pages));
    }
    let shards = shards_of(&groups);
    // Every shard's first page at once (the limiter spaces them): they are kept, and each is
    // checked against its shard's conditions before anything is committed.
    let firsts = futures::future::try_join_all(shards.iter().map(|shard| {
        let source = paced(with_id_filter(filters, &shard.id_filter));
        async move { source.fetch(None, 1).await }
    }))
    .await?;
    for (shard, page) in shards.iter().zip(&firsts) {
        let stray = page
            .findings()
            .map(finding_id)
            .find(|id| !string_conditions_match(id.as_deref(), &shard.id_filter));
        if let Some(stray) = stray {
            tracing::warn!(
                "GetFindings is slow ({:.0} ms a call) but ignored a shard's Id filter (it returned {}): exporting the stream as one chain",
                latency * 1000.0,
                stray.as_deref().unwrap_or("a finding without an Id")
            );
            return Ok(Start::Unsharded(pages));
        }
    }
    tracing::info!(
        "GetFindings takes {:.0} ms a call, more than {:.0} requests/s allow one chain: {} shards on Id prefixes",
        latency * 1000.0,
        pace.rate,
        shards.len()
    );
    Ok(Start::Sharded {
        shards,
        firsts: firsts.into_iter().map(|page| vec![page]).collect(),
    })
}

/// The `Id` of a finding's JSON text.
pub fn finding_id(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct IdOnly {
        #[serde(rename = "Id")]
        id: String,
    }
    serde_json::from_str::<IdOnly>(text).ok().map(|f| f.id)
}

/// One shard per group of prefixes (`PREFIX` each, OR-ed), and the rest (`PREFIX_NOT_EQUALS`
/// every prefix of every group).
pub fn shards_of(groups: &[Vec<String>]) -> Vec<ShardCursor> {
    let condition =
        |value: &str, comparison: &str| json!({"Value": value, "Comparison": comparison});
    let cursor = |id_filter| ShardCursor {
        id_filter,
        next_token: None,
        done: false,
    };
    let mut shards: Vec<ShardCursor> = groups
        .iter()
        .map(|group| cursor(group.iter().map(|p| condition(p, "PREFIX")).collect()))
        .collect();
    shards.push(cursor(
        groups
            .iter()
            .flatten()
            .map(|p| condition(p, "PREFIX_NOT_EQUALS"))
            .collect(),
    ));
    shards
}

/// The Ids split into `bins` groups of prefixes of about equal size: the finest prefixes the
/// service allows ([`split_by_prefix`] to 20), packed largest first into the lightest group.
pub fn pack(ids: &[String], bins: usize) -> Vec<Vec<String>> {
    let prefixes = split_by_prefix(ids, MAX_VALUES);
    let mut weighted: Vec<(usize, String)> = prefixes
        .into_iter()
        .map(|p| (ids.iter().filter(|id| id.starts_with(&p)).count(), p))
        .collect();
    weighted.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let mut groups: Vec<(usize, Vec<String>)> = Vec::new();
    for (weight, prefix) in weighted {
        if groups.len() < bins {
            groups.push((weight, vec![prefix]));
            continue;
        }
        let lightest = groups
            .iter_mut()
            .min_by_key(|(total, _)| *total)
            .expect("bins > 0");
        lightest.0 += weight;
        lightest.1.push(prefix);
    }
    groups.into_iter().map(|(_, group)| group).collect()
}

/// At most `max` prefixes, none a prefix of another, splitting `ids` into groups of about
/// equal size: the heaviest group is split on the character after its common prefix until the
/// budget is spent (when a split has more branches than room, the largest branches are kept and
/// the others left to the rest shard). A branch of one sampled Id keeps only the split's
/// character, so the prefixes cover what the sample saw, not just the sampled Ids themselves.
pub fn split_by_prefix(ids: &[String], max: usize) -> Vec<String> {
    let max = max.min(MAX_VALUES);
    let all: Vec<&str> = ids.iter().map(String::as_str).collect();
    if all.is_empty() || max == 0 {
        return Vec::new();
    }
    let mut leaves: Vec<(String, Vec<&str>)> = vec![(common_prefix(&all), all)];
    loop {
        let room = max - leaves.len();
        let heaviest = leaves
            .iter()
            .enumerate()
            .filter(|(_, (prefix, members))| members.iter().any(|m| m.len() > prefix.len()))
            .max_by_key(|(_, (_, members))| members.len())
            .map(|(index, _)| index);
        let Some(index) = heaviest.filter(|_| room > 0) else {
            break;
        };
        let (prefix, members) = leaves.swap_remove(index);
        let mut branches: Vec<Vec<&str>> = Vec::new();
        for member in members {
            let Some(next) = member[prefix.len()..].chars().next() else {
                continue; // an Id equal to the prefix itself: left to the rest shard
            };
            let key = &member[..prefix.len() + next.len_utf8()];
            match branches.iter_mut().find(|b| b[0].starts_with(key)) {
                Some(branch) => branch.push(member),
                None => branches.push(vec![member]),
            }
        }
        branches.sort_by_key(|b| std::cmp::Reverse(b.len()));
        branches.truncate(room + 1);
        let split_at = prefix.len();
        leaves.extend(
            branches
                .into_iter()
                .map(|b| (branch_prefix(&b, split_at), b)),
        );
    }
    let mut prefixes: Vec<String> = leaves.into_iter().map(|(prefix, _)| prefix).collect();
    prefixes.sort();
    prefixes
}

/// The prefix of a branch split off at byte `split_at`: its members' common prefix, but only the
/// split's own character for a branch of one member (its whole Id would hold no other finding,
/// and the Ids around it, never sampled, would all fall to the rest shard).
fn branch_prefix(members: &[&str], split_at: usize) -> String {
    match members {
        [only] => {
            let next = only[split_at..].chars().next().map_or(0, char::len_utf8);
            only[..split_at + next].to_string()
        }
        _ => common_prefix(members),
    }
}

fn common_prefix(texts: &[&str]) -> String {
    let first = texts[0];
    let mut end = first.len();
    for text in &texts[1..] {
        end = first[..end]
            .char_indices()
            .zip(text.chars())
            .find(|((_, a), b)| a != b)
            .map_or(end.min(text.len()), |((i, _), _)| i);
    }
    first[..end].to_string()
}

#[cfg(test)]
mod tests;
