//! Two chains that read one query from its two ends and meet in the middle, so a slow stream
//! keeps two requests in flight with no tail: one chain asks for the findings in ascending `Id`
//! order, its partner in descending order.
//!
//! The service's order is trusted only as far as each page proves it. The API reference says
//! nothing of the order of pages, so every page a paired chain receives must be in the chain's
//! order (by `Id`, byte order; findings that share an `Id` may come in any order, but no finding
//! twice) and must continue past the chain's previous page. A page that does not is an
//! [`OrderBroken`]: the stream then falls back to a reading that does not depend on the order.
//!
//! With both chains proven sorted, the partner's frontier (the last `Id` it delivered) splits the
//! findings: everything past it in this chain's order was the partner's. A page reaching the
//! frontier is cut there, and both chains end. The findings that share the frontier's `Id` (two
//! products may use one `Id`) are settled by identity, `(Id, ProductArn)`: the cutting chain
//! keeps those the partner did not deliver, and when its page ends inside that group it reads on
//! until the group ends, keeping only the group. Findings that leave the window near the
//! meeting cannot hide it (the cut compares the order, not membership). Each chain's last
//! durable findings are kept in the checkpoint, so a resumed chain meets its partner where the
//! durable parts end. Whichever of two crossing pages is checked second keeps nothing, so pages
//! in flight on both chains at once are never both kept.

use std::cmp::Ordering;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::checkpoint::ShardCursor;
use crate::source::Page;

/// Findings of each chain kept to meet its partner (two pages).
pub const TAIL: usize = 200;

/// A finding's identity, as the service defines it (`AwsSecurityFindingIdentifier`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FindingKey {
    /// `Id`.
    pub id: String,
    /// `ProductArn`.
    pub product_arn: String,
}

impl FindingKey {
    /// The identity of a finding's JSON text (`None`: it lacks `Id` or `ProductArn`).
    pub fn of(text: &str) -> Option<FindingKey> {
        #[derive(Deserialize)]
        struct Identity {
            #[serde(rename = "Id")]
            id: String,
            #[serde(rename = "ProductArn")]
            product_arn: String,
        }
        serde_json::from_str::<Identity>(text)
            .ok()
            .map(|f| FindingKey {
                id: f.id,
                product_arn: f.product_arn,
            })
    }
}

/// A page that breaks its chain's order: the service's order is not proven.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderBroken(pub String);

/// What a side keeps of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// Positions on the page kept, ascending.
    pub keep: Vec<usize>,
    /// The side ends after this page.
    pub ends: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Open,
    /// `side` cut at the partner's frontier `id` and reads on to the end of that `Id`'s group.
    Finishing {
        side: usize,
        id: String,
    },
    Met,
}

/// What the two chains of a pair have delivered near where they meet.
#[derive(Debug)]
pub struct Meeting {
    tails: [VecDeque<FindingKey>; 2],
    state: State,
}

/// True when `a` comes after `b` in side `side`'s order (0 ascending, 1 descending).
fn after(side: usize, a: &str, b: &str) -> bool {
    match side {
        0 => a > b,
        _ => a < b,
    }
}

impl Meeting {
    /// A pair whose chains have durably delivered `tails` (each in its own order).
    pub fn new(tails: [Vec<FindingKey>; 2]) -> Meeting {
        Meeting {
            tails: tails.map(VecDeque::from),
            state: State::Open,
        }
    }

    /// Takes side `side`'s next page, given its findings' identities in order and whether it
    /// has a NextToken: which findings to keep and whether the side ends after them, or
    /// [`OrderBroken`] when the page is not in the side's order after its previous page.
    pub fn accept(
        &mut self,
        side: usize,
        keys: &[Option<FindingKey>],
        has_next: bool,
    ) -> Result<Admission, OrderBroken> {
        let keys = self.checked(side, keys)?;
        let admission = match self.state.clone() {
            State::Met => Admission {
                keep: Vec::new(),
                ends: true,
            },
            State::Finishing {
                side: finishing, ..
            } if finishing != side => Admission {
                keep: Vec::new(),
                ends: true,
            },
            State::Finishing { id, .. } => self.finish_group(side, &keys, &id, 0, has_next),
            State::Open => {
                // Where the page reaches the partner's frontier (the last Id it delivered).
                let frontier = self.tails[1 - side].back().map(|k| k.id.clone());
                let cut = frontier.and_then(|frontier| {
                    let at = keys
                        .iter()
                        .position(|k| !after(1 - side, &k.id, &frontier))?;
                    Some((at, frontier))
                });
                match cut {
                    None => Admission {
                        keep: (0..keys.len()).collect(),
                        ends: !has_next,
                    },
                    Some((at, frontier)) => {
                        let mut group = self.finish_group(side, &keys, &frontier, at, has_next);
                        group.keep.splice(0..0, 0..at);
                        group
                    }
                }
            }
        };
        if admission.ends && self.state == State::Open {
            // A chain that reached its end without meeting its partner read everything the
            // partner has not (its partner delivered nothing yet, or only findings since gone).
            self.state = State::Met;
        }
        let own = &mut self.tails[side];
        own.extend(admission.keep.iter().map(|&i| keys[i].clone()));
        let excess = own.len().saturating_sub(TAIL);
        own.drain(..excess);
        Ok(admission)
    }

    /// From position `from` on, the findings of `side`'s page sharing `id` (the partner's
    /// frontier) that the partner has not delivered; the pair has met when the page goes past
    /// that `Id` or ends the chain, else `side` reads on to the end of the group.
    fn finish_group(
        &mut self,
        side: usize,
        keys: &[FindingKey],
        id: &str,
        from: usize,
        has_next: bool,
    ) -> Admission {
        let other = &self.tails[1 - side];
        let own = &self.tails[side];
        let keep = (from..keys.len())
            .take_while(|&i| keys[i].id == id)
            .filter(|&i| !other.contains(&keys[i]) && !own.contains(&keys[i]))
            .collect();
        let passed = keys[from..].iter().any(|k| k.id != id);
        self.state = if passed || !has_next {
            State::Met
        } else {
            State::Finishing {
                side,
                id: id.to_string(),
            }
        };
        Admission {
            keep,
            ends: self.state == State::Met || !has_next,
        }
    }

    /// The page's identities, when it is in `side`'s order and continues past its previous page.
    fn checked(
        &self,
        side: usize,
        keys: &[Option<FindingKey>],
    ) -> Result<Vec<FindingKey>, OrderBroken> {
        let order = ["ascending", "descending"][side];
        let keys: Vec<FindingKey> =
            keys.iter().cloned().collect::<Option<_>>().ok_or_else(|| {
                OrderBroken(
                    "a finding without an Id or ProductArn cannot be placed in the order".into(),
                )
            })?;
        let own = &self.tails[side];
        let previous = own.back();
        let mut last: Option<&FindingKey> = previous;
        for key in &keys {
            if let Some(before) = last {
                match key.id.cmp(&before.id) {
                    Ordering::Equal if key == before || own.contains(key) => {
                        return Err(OrderBroken(format!(
                            "finding {} came twice in one {order} chain",
                            key.id
                        )))
                    }
                    Ordering::Equal => {}
                    _ if after(side, &key.id, &before.id) => {}
                    _ => {
                        return Err(OrderBroken(format!(
                            "the {order} chain got Id {} after {}",
                            key.id, before.id
                        )))
                    }
                }
            }
            last = Some(key);
        }
        Ok(keys)
    }

    /// Whether the pair has met.
    pub fn met(&self) -> bool {
        self.state == State::Met
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
    pub fn pair(tails: [Vec<FindingKey>; 2]) -> [Pairing; 2] {
        let meeting = Arc::new(Mutex::new(Meeting::new(tails)));
        let met_signal = CancellationToken::new();
        [0, 1].map(|side| Pairing {
            meeting: meeting.clone(),
            side,
            met_signal: met_signal.clone(),
        })
    }

    /// `page` as this side keeps it, with the identities it keeps: checked against the side's
    /// order, cut where the partner's findings begin, and then (or once the pair has met) the
    /// side's last page.
    pub fn admit(&self, page: Page) -> Result<(Page, Vec<FindingKey>), OrderBroken> {
        let keys: Vec<Option<FindingKey>> = page.findings().map(FindingKey::of).collect();
        let admission = {
            let mut meeting = self.meeting.lock().expect("meeting");
            let admission = meeting.accept(self.side, &keys, page.next_token.is_some())?;
            // The partner stops once the pair has met, or once this side is the one to finish.
            if meeting.state != State::Open {
                self.met_signal.cancel();
            }
            admission
        };
        let kept = admission
            .keep
            .iter()
            .filter_map(|&i| keys[i].clone())
            .collect();
        let whole = admission.keep.len() == page.len();
        let page = match (admission.ends, whole) {
            (false, true) => page,
            (false, false) => page.retain(&admission.keep),
            (true, _) => page.retain(&admission.keep).last(),
        };
        Ok((page, kept))
    }

    /// Resolves once the partner has taken the rest of the pair's findings (at once if it
    /// has): the side's page in flight then holds nothing it keeps, so the side stops waiting
    /// for it (or for a permit to send it) and fetches no further page.
    pub async fn until_met(&self) {
        self.met_signal.cancelled().await;
        let finishing_here = {
            let meeting = self.meeting.lock().expect("meeting");
            matches!(&meeting.state, State::Finishing { side, .. } if *side == self.side)
        };
        if finishing_here {
            std::future::pending::<()>().await;
        }
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
