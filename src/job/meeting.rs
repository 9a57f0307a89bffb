//! Two chains that read one query from its two ends and meet in the middle, so a slow stream
//! keeps two requests in flight with no tail: one chain asks for the findings in ascending `Id`
//! order, its partner in descending order, and every page each one receives is checked against
//! the Ids the other has delivered most recently. A page holding an Id the other delivered has
//! crossed into the other's half: it is cut before that Id (in the chain's own order, everything
//! from there on was the other's), and both chains end. Only Id identity is compared, never the
//! service's collation, and an Id never changes, so a finding cannot move between the halves.
//!
//! The other's most recent Ids are enough: a page holds consecutive findings of the order, so
//! the first of them the other delivered is at the other's frontier (its last [`TAIL`] Ids also
//! cover findings that left the window since). Each chain's last durable Ids are kept in the
//! checkpoint, so a resumed chain meets its partner where the durable parts end; a page read
//! again after a crash is cut again the same way. Whichever of two crossing pages is checked
//! second is the one cut, so pages in flight on both chains at once are never both kept.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::checkpoint::ShardCursor;
use super::shards::finding_id;
use crate::source::Page;

/// Ids of each chain kept to meet its partner (two pages).
pub const TAIL: usize = 200;

/// What the two chains of a pair have delivered near where they meet.
#[derive(Debug, Default)]
pub struct Meeting {
    tails: [VecDeque<String>; 2],
    met: bool,
}

impl Meeting {
    /// A pair whose chains have durably delivered `tails` (each in its own order).
    pub fn new(tails: [Vec<String>; 2]) -> Meeting {
        Meeting {
            tails: tails.map(VecDeque::from),
            met: false,
        }
    }

    /// Takes side `side`'s next page, given its findings' Ids in order: how many findings to
    /// keep (those before the first Id the other side delivered), and whether the pair has met
    /// (then this side ends after them). Once the pair has met, a page keeps nothing.
    pub fn accept(&mut self, side: usize, ids: &[Option<String>]) -> (usize, bool) {
        if self.met {
            return (0, true);
        }
        let other = &self.tails[1 - side];
        let cut = ids
            .iter()
            .position(|id| id.as_ref().is_some_and(|id| other.contains(id)));
        let keep = cut.unwrap_or(ids.len());
        let own = &mut self.tails[side];
        own.extend(ids[..keep].iter().flatten().cloned());
        let excess = own.len().saturating_sub(TAIL);
        own.drain(..excess);
        self.met = cut.is_some();
        (keep, self.met)
    }

    /// Whether the pair has met.
    pub fn met(&self) -> bool {
        self.met
    }
}

/// One side of a meeting pair, as its chain's fetcher holds it.
#[derive(Debug, Clone)]
pub struct Pairing {
    meeting: Arc<Mutex<Meeting>>,
    side: usize,
    met_signal: CancellationToken,
}

impl Pairing {
    /// The two sides of one pair (side 0 reads ascending, side 1 descending).
    pub fn pair(tails: [Vec<String>; 2]) -> [Pairing; 2] {
        let meeting = Arc::new(Mutex::new(Meeting::new(tails)));
        let met_signal = CancellationToken::new();
        [0, 1].map(|side| Pairing {
            meeting: meeting.clone(),
            side,
            met_signal: met_signal.clone(),
        })
    }

    /// `page` as this side keeps it, with the Ids it keeps: cut before the first finding the
    /// other side delivered, and then (or once the pair has met) the side's last page.
    pub fn admit(&self, page: Page) -> (Page, Vec<String>) {
        let ids: Vec<Option<String>> = page.findings().map(finding_id).collect();
        let (keep, met) = self
            .meeting
            .lock()
            .expect("meeting")
            .accept(self.side, &ids);
        let kept = ids.into_iter().take(keep).flatten().collect();
        let page = if met {
            self.met_signal.cancel();
            page.cut(keep)
        } else {
            page
        };
        (page, kept)
    }

    /// Resolves once the pair has met (at once if it has): the side's page in flight then
    /// holds nothing it keeps, so the side stops waiting for it (or for a permit to send it)
    /// and fetches no further page.
    pub async fn until_met(&self) {
        self.met_signal.cancelled().await
    }
}

/// Each paired chain's side of its meeting, by chain index, from the chains' checkpoint
/// cursors (their durable tails).
pub fn pairings(chains: &[ShardCursor]) -> HashMap<usize, Pairing> {
    let mut sides = HashMap::new();
    for (index, chain) in chains.iter().enumerate() {
        let Some(partner) = chain.partner.filter(|&p| p > index && p < chains.len()) else {
            continue;
        };
        let tails = [chain.tail.clone(), chains[partner].tail.clone()];
        let [first, second] = Pairing::pair(tails);
        sides.insert(index, first);
        sides.insert(partner, second);
    }
    sides
}

#[cfg(test)]
mod tests;
