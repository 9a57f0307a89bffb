//! How a run of a job reads: the chains it fetches, all under one limiter, and how a new
//! stream starts, from its size (Security Hub's count) and its latency (one chain, a meeting
//! pair or prefix shards).

use std::sync::Arc;

use super::checkpoint::Checkpoint;
use super::{meeting, pipeline, shards, total, Job};
use crate::error::Result;
use crate::request::{Api, IdOrder};
use crate::source::get_findings::GetFindings;
use crate::source::retry::RetryPolicy;
use crate::source::{Limiter, PacedSource, Page, SourceStats};

impl Job<'_> {
    /// The chains to fetch, all under one limiter: a new job first probes its latency and is
    /// sharded when one chain could not keep up with the quota (see [`shards`]).
    pub(super) async fn chains(
        &self,
        checkpoint: &mut Checkpoint,
        limiter: &Limiter,
    ) -> Result<Vec<pipeline::Chain>> {
        let stats = Arc::new(SourceStats::default());
        let page_size = checkpoint.request.identity.page_size;
        let request = checkpoint.request.clone();
        let paced = |filters: serde_json::Value, order: Option<IdOrder>| {
            let query = request.query(filters, page_size).sorted(order);
            let source = GetFindings::new(self.config, query);
            PacedSource::new(Arc::new(source), limiter.clone(), RetryPolicy::default())
                .with_stats(stats.clone())
        };
        // Pages already fetched, by chain: the probe's (one chain) or each chain's first.
        let mut prefetched: Vec<(usize, Vec<Page>)> = Vec::new();
        if checkpoint.is_new() {
            let probe = self.start(checkpoint, &paced).await?;
            match probe {
                shards::Start::Unsharded { order, pages } => {
                    checkpoint.sort = order;
                    prefetched.push((0, pages));
                }
                shards::Start::Sharded { shards, firsts } => {
                    checkpoint.shards = shards;
                    prefetched.extend(firsts.into_iter().enumerate());
                }
            }
        }
        let mut pairings = meeting::pairings(&checkpoint.shards);
        Ok(checkpoint
            .open_chains()
            .into_iter()
            .map(|(index, start)| pipeline::Chain {
                index,
                source: paced(
                    checkpoint.chain_filters(index),
                    checkpoint.chain_sort(index),
                ),
                start,
                prefetched: prefetched
                    .iter_mut()
                    .find(|(chain, _)| *chain == index)
                    .map(|(_, pages)| std::mem::take(pages))
                    .unwrap_or_default(),
                id_filter: checkpoint
                    .shards
                    .get(index)
                    .map(|shard| shard.id_filter.clone())
                    .unwrap_or_default(),
                pairing: pairings.remove(&index),
            })
            .collect())
    }

    /// How a new stream starts, from its size (counted by Security Hub, see [`total`]) and its
    /// latency (see [`shards`]): every page within the burst is one chain with no probe. With
    /// no order trusted, the count and the first page are asked at once: that page begins the
    /// one chain, or is the probe's first.
    async fn start(
        &self,
        checkpoint: &mut Checkpoint,
        paced: shards::Sources<'_>,
    ) -> Result<shards::Start> {
        let request = checkpoint.request.clone();
        let filters = &request.filters;
        let page_size = u64::from(request.identity.page_size);
        let known = checkpoint.expected_count;
        let count = async {
            match known {
                Some(count) => Some(count),
                None => total::expected(self.plan, self.config, &request, self.job_id).await,
            }
        };
        // Shards are ASFF sub-queries; a GetFindingsV2 stream reads one chain (its first page
        // still read first).
        let max_shards = match request.identity.api {
            Api::GetFindings => self.plan.max_shards,
            Api::GetFindingsV2 => 1,
        };
        let pace = &self.plan.pace;
        // After a fallback the stream is read again without relying on any order.
        if self.plan.trust_id_order && checkpoint.order_fallback.is_none() {
            checkpoint.expected_count = count.await;
            let pages = checkpoint.expected_count.map(|n| n.div_ceil(page_size));
            if total::fits_in_burst(pages, pace) {
                return Ok(shards::Start::Unsharded {
                    order: None,
                    pages: Vec::new(),
                });
            }
            let max_shards = total::max_shards_for(pages, max_shards);
            return shards::probe(paced, pace, filters, max_shards).await;
        }
        let source = paced(filters.clone(), None);
        let (expected, first) = tokio::join!(count, source.fetch_timed(None, 1));
        checkpoint.expected_count = expected;
        let first = first?;
        let pages = expected.map(|n| n.div_ceil(page_size));
        if total::fits_in_burst(pages, pace) {
            return Ok(shards::Start::Unsharded {
                order: None,
                pages: vec![first.0],
            });
        }
        let max_shards = total::max_shards_for(pages, max_shards);
        shards::probe_unsorted(paced, pace, filters, max_shards, Some(first)).await
    }
}
