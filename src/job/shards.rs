//! Keeping the quota full when calls are slow. A NextToken chain has one request in flight, so
//! at a latency L it reads at most 1/L pages a second: below the quota once L x rate nears 1.
//! A new stream measures L on its first pages; when it is slow, it is read by a meeting pair
//! (see [`super::meeting`]), or, slower still, the frozen query is split into disjoint shards
//! whose union is exactly the query, each read by a meeting pair (or one chain, where the
//! service does not sort), all under the stream's one limiter.
//!
//! The shard key is the finding `Id`, which never changes (BatchUpdateFindings changes
//! severity, workflow and notes, never the Id), so no finding can move from a shard not yet
//! read to one already read: shard k holds the Ids starting with prefix p_k (`PREFIX`), and
//! one more shard holds every other Id (`PREFIX_NOT_EQUALS` each p_k). No p_k is a prefix of
//! another, so every finding is in exactly one shard. The prefixes split a sample (the probe's
//! Ids) into parts of about equal size: the sample only balances the shards, it never decides
//! whether a finding is read.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use super::checkpoint::ShardCursor;
use super::meeting::FindingKey;
use crate::error::{Error, Result};
use crate::request::filters::{MAX_ATTRIBUTES, MAX_VALUES};
use crate::request::narrow::string_conditions_match;
use crate::request::IdOrder;
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
/// The same for shards each read by a meeting pair: a pair has no tail of its own, so one shard
/// per two calls in flight (plus the one every count rounds up to) keeps the quota full while
/// the largest shard's pair ends.
const PAIRED_SHARDS_PER_CHAIN: f64 = 0.5;

/// How a new stream starts.
#[derive(Debug)]
pub enum Start {
    /// One chain (asking for `order` of `Id`, if any), beginning with the probe's pages.
    Unsharded {
        /// The chain's sort.
        order: Option<IdOrder>,
        /// Its first pages.
        pages: Vec<Page>,
    },
    /// These chains (a meeting pair, or prefix shards), each beginning with its first page (a
    /// shard's read to check that the service applies the shard's filter; the probe's pages
    /// are then read again by the shards).
    Sharded {
        /// Every chain.
        shards: Vec<ShardCursor>,
        /// Each chain's first pages, in chain order.
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

/// Makes a stream's paced source of a filter set, in an `Id` order (or the service's own).
pub type Sources<'a> = &'a dyn Fn(Value, Option<IdOrder>) -> PacedSource;

/// Fetches a new stream's first page, in ascending `Id` order, and decides how the stream runs.
/// A fast stream goes on as that one chain. A slow one reads its last page too (descending
/// order, asked for as soon as the first call is known to be slow, which also measures the
/// latency a second time): when both pages show
/// the service sorted them, the two become a meeting pair (see [`super::meeting`]), up to a
/// latency one pair can keep the quota full at; otherwise (a service that ignores the sort, or
/// slower calls) the stream is split into prefix shards as [`prefix_shards`] does. A service
/// that refuses the sort is read in its own order. The first page is read in every case, so a
/// refused read fails the run before it writes. `max_shards` 1 never splits.
pub async fn probe(
    paced: Sources<'_>,
    pace: &Pace,
    filters: &Value,
    max_shards: u32,
) -> Result<Start> {
    if max_shards < 2 || !shardable(filters) {
        let (first, _) = paced(filters.clone(), None).fetch_timed(None, 1).await?;
        return Ok(unsharded(None, vec![first]));
    }
    // A service may answer a sort it does not support with server errors: after a few, the
    // stream is read in the service's own order instead of spending the whole retry budget.
    let ascending = paced(filters.clone(), Some(IdOrder::Asc)).with_fault_limit(SORT_FAULTS);
    let descending = paced(filters.clone(), Some(IdOrder::Desc)).with_fault_limit(SORT_FAULTS);
    // A first page not back within a fast call's time is slow: the last page is asked for
    // then, beside it, so a pair starts about one call after the stream does.
    let first_call = ascending.fetch_timed(None, 1);
    tokio::pin!(first_call);
    let fast_call = Duration::from_secs_f64(SLOW / pace.rate);
    let (first, last) = match tokio::time::timeout(fast_call, &mut first_call).await {
        Ok(first) => (first, None),
        Err(_) => {
            let (first, last) = tokio::join!(first_call, descending.fetch_timed(None, 1));
            (first, Some(last))
        }
    };
    let (first, took) = match first {
        Err(Error::Rejected { message, .. }) => {
            tracing::warn!("GetFindings refused to sort on Id ({message}): the stream is read in the service's order");
            return probe_unsorted(paced, pace, filters, max_shards, None).await;
        }
        Err(err @ Error::Source { .. }) => {
            tracing::warn!("GetFindings failed {SORT_FAULTS} times when asked to sort on Id ({}): the stream is read in the service's order", crate::error::one_line(&err));
            return probe_unsorted(paced, pace, filters, max_shards, None).await;
        }
        other => other?,
    };
    let slow = |seconds: f64| seconds * pace.rate > SLOW;
    let mut latency = took.as_secs_f64();
    if first.next_token.is_none() || !slow(latency) {
        return Ok(unsharded(Some(IdOrder::Asc), vec![first]));
    }
    let last = match last {
        Some(last) => last,
        None => descending.fetch_timed(None, 1).await,
    };
    let (last, took) = match last {
        Err(Error::Rejected { .. } | Error::Source { .. }) => {
            tracing::warn!(
                "GetFindings failed a descending sort on Id: the stream is read in one chain"
            );
            return Ok(unsharded(Some(IdOrder::Asc), vec![first]));
        }
        other => other?,
    };
    latency = latency.min(took.as_secs_f64());
    let sorted = sorted_both_ways(&first, &last);
    // Paired prefix shards take at least six chains; with fewer allowed, the pair is the most.
    if sorted && (latency * pace.rate <= PAIR_LIMIT || max_shards < 6) {
        tracing::info!(
            "GetFindings answers in {:.0} ms, too slow for one chain of calls to use {:.0} requests/s: two chains read at once, one from each end of the findings' Ids (every page is checked to be in order)",
            latency * 1000.0,
            pace.rate
        );
        return Ok(meeting_pair(first, last));
    }
    if !sorted {
        tracing::info!("GetFindings did not sort on Id: the stream is not read from both ends");
    }
    if !slow(latency) {
        return Ok(unsharded(Some(IdOrder::Asc), vec![first]));
    }
    // The sorted pages hold the two ends of the Ids: a page in the service's own order is a
    // fair sample to balance prefix shards on. A sorted service's shards are each read by a
    // meeting pair, so no shard has a tail of its own.
    let (sample, _) = paced(filters.clone(), None).fetch_timed(None, 1).await?;
    let sharded = prefix_shards(
        paced,
        pace,
        filters,
        max_shards,
        sorted,
        latency,
        &[&sample],
    )
    .await?;
    Ok(match sharded {
        Some(sharded) => sharded,
        None if sorted => meeting_pair(first, last),
        None => unsharded(Some(IdOrder::Asc), vec![first]),
    })
}

/// Server errors a sorted probe call takes before the stream is read unsorted.
const SORT_FAULTS: u32 = 3;

/// Latency x rate up to which a meeting pair alone keeps the quota full (two requests in
/// flight; the probe's latency is the faster of two calls, below the mean).
const PAIR_LIMIT: f64 = 2.4;

fn unsharded(order: Option<IdOrder>, pages: Vec<Page>) -> Start {
    Start::Unsharded { order, pages }
}

/// A meeting pair over the whole request, starting with the probe's two pages.
fn meeting_pair(first: Page, last: Page) -> Start {
    Start::Sharded {
        shards: paired(vec![ShardCursor::default()]),
        firsts: vec![vec![first], vec![last]],
    }
}

/// Each shard as the two chains of a meeting pair (ascending then descending `Id`, partners).
fn paired(shards: Vec<ShardCursor>) -> Vec<ShardCursor> {
    let half = |shard: &ShardCursor, sort, partner| ShardCursor {
        sort: Some(sort),
        partner: Some(partner),
        ..shard.clone()
    };
    shards
        .iter()
        .enumerate()
        .flat_map(|(i, shard)| {
            [
                half(shard, IdOrder::Asc, 2 * i + 1),
                half(shard, IdOrder::Desc, 2 * i),
            ]
        })
        .collect()
}

/// True when `first` is ascending and `last` descending in `Id` (byte order; findings sharing
/// an `Id` in any order), with `first` starting below `last`, and the two share no finding
/// while both have more pages: the service may have sorted the whole query (one that ignores
/// the sort answers both in the same order; one that sorts each page of its own order answers
/// the same findings both ways). Too few findings to tell is false. Only the first pages are
/// seen here: every later page is checked by the meeting (see [`super::meeting`]).
fn sorted_both_ways(first: &Page, last: &Page) -> bool {
    let keys = |page: &Page| {
        page.findings()
            .map(FindingKey::of)
            .collect::<Option<Vec<_>>>()
    };
    let (Some(up), Some(down)) = (keys(first), keys(last)) else {
        return false;
    };
    let shared = up.iter().any(|key| down.contains(key));
    up.len() >= 2
        && down.len() >= 2
        && up.windows(2).all(|w| w[0].id <= w[1].id && w[0] != w[1])
        && down.windows(2).all(|w| w[0].id >= w[1].id && w[0] != w[1])
        && up[0].id < down[0].id
        && !(shared && first.next_token.is_some() && last.next_token.is_some())
}

/// The probe in the service's own order (the default, which relies on no order, and a service
/// that refuses `SortCriteria` on `Id`): the first page (`first` when already read, with its
/// latency; and a second when the first was only a little slow, its connection then warm),
/// then prefix shards when slow.
pub async fn probe_unsorted(
    paced: Sources<'_>,
    pace: &Pace,
    filters: &Value,
    max_shards: u32,
    first: Option<(Page, Duration)>,
) -> Result<Start> {
    let source = paced(filters.clone(), None);
    let slow = |seconds: f64| seconds * pace.rate > SLOW;
    let (first, took) = match first {
        Some(read) => read,
        None => source.fetch_timed(None, 1).await?,
    };
    let mut latency = took.as_secs_f64();
    if first.next_token.is_none() || !slow(latency) {
        return Ok(unsharded(None, vec![first]));
    }
    let mut pages = vec![first];
    if latency * pace.rate < CLEARLY_SLOW {
        let (second, took) = source
            .fetch_timed(pages[0].next_token.as_deref(), 2)
            .await?;
        latency = latency.min(took.as_secs_f64());
        let last = second.next_token.is_none();
        pages.push(second);
        if last || !slow(latency) {
            return Ok(unsharded(None, pages));
        }
    }
    let sample: Vec<&Page> = pages.iter().collect();
    let sharded = prefix_shards(paced, pace, filters, max_shards, false, latency, &sample).await?;
    Ok(sharded.unwrap_or_else(|| unsharded(None, pages)))
}

/// Prefix shards for a stream at `latency`, balanced on the Ids of `sample`, each chain with
/// its first page (read, and checked against its shard's conditions, before anything is
/// committed); `None` when the sample does not split or the service ignored a shard's filter
/// (with a warning). At most `max_shards` chains; `paired_shards`: each shard is read by a
/// meeting pair (two of those chains), otherwise by one chain.
async fn prefix_shards(
    paced: Sources<'_>,
    pace: &Pace,
    filters: &Value,
    max_shards: u32,
    paired_shards: bool,
    latency: f64,
    sample: &[&Page],
) -> Result<Option<Start>> {
    let ids: Vec<String> = sample
        .iter()
        .flat_map(|page| page.findings().filter_map(finding_id))
        .collect();
    let (chains_per_shard, shards_per_chain) = match paired_shards {
        true => (2, PAIRED_SHARDS_PER_CHAIN),
        false => (1, SHARDS_PER_CHAIN),
    };
    let most = max_shards as usize / chains_per_shard;
    if most < 3 {
        return Ok(None); // two prefixes and the rest shard at least
    }
    let wanted = (latency * pace.rate * shards_per_chain).ceil() as usize + 1;
    let groups = pack(&ids, wanted.clamp(2, most - 1));
    if groups.len() < 2 {
        return Ok(None);
    }
    let shards = match paired_shards {
        true => paired(shards_of(&groups)),
        false => shards_of(&groups),
    };
    // Every chain's first page at once (the limiter spaces them).
    let firsts = futures::future::try_join_all(shards.iter().map(|shard| {
        let source = paced(with_id_filter(filters, &shard.id_filter), shard.sort);
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
            return Ok(None);
        }
    }
    tracing::info!(
        "GetFindings takes {:.0} ms a call, more than {:.0} requests/s allow one chain: {} shards on Id prefixes{}",
        latency * 1000.0,
        pace.rate,
        shards.len() / chains_per_shard,
        if paired_shards { ", each read from both ends" } else { "" }
    );
    Ok(Some(Start::Sharded {
        shards,
        firsts: firsts.into_iter().map(|page| vec![page]).collect(),
    }))
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
        ..ShardCursor::default()
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
