use super::*;

fn key(id: &str, product: &str) -> FindingKey {
    FindingKey {
        id: id.into(),
        product_arn: product.into(),
    }
}

/// The sorted service's findings `range` (one product each).
fn keys(range: impl Iterator<Item = u32>) -> Vec<Option<FindingKey>> {
    range
        .map(|i| Some(key(&format!("id-{i:04}"), "p")))
        .collect()
}

fn kept(page: &[Option<FindingKey>], admission: &Admission) -> Vec<FindingKey> {
    admission
        .keep
        .iter()
        .map(|&i| page[i].clone().unwrap())
        .collect()
}

/// Reads `all` (sorted by Id, ties in any order) with a pair taking pages of `size` in the
/// order `turns` gives (0 ascending, 1 descending); the descending side lists ties in the same
/// order as the ascending one when `same_ties` (not reversed). Returns every kept finding.
fn read(
    all: &[FindingKey],
    size: usize,
    turns: impl Iterator<Item = usize>,
    same_ties: bool,
) -> Vec<FindingKey> {
    let mut desc: Vec<FindingKey> = all.to_vec();
    desc.reverse();
    if same_ties {
        desc.sort_by(|a, b| b.id.cmp(&a.id));
    }
    let orders = [all.to_vec(), desc];
    let mut meeting = Meeting::new([Vec::new(), Vec::new()]);
    let mut positions = [0usize, 0usize];
    let mut ended = [false, false];
    let mut kept_all = Vec::new();
    for side in turns {
        if ended[side] {
            continue;
        }
        let start = positions[side];
        let end = (start + size).min(all.len());
        let page: Vec<Option<FindingKey>> =
            orders[side][start..end].iter().cloned().map(Some).collect();
        positions[side] = end;
        let admission = meeting.accept(side, &page, end < all.len()).unwrap();
        kept_all.extend(kept(&page, &admission));
        ended[side] = admission.ends;
        if ended == [true, true] {
            break;
        }
    }
    kept_all
}

fn sorted(mut found: Vec<FindingKey>) -> Vec<(String, String)> {
    found.sort_by(|a, b| (&a.id, &a.product_arn).cmp(&(&b.id, &b.product_arn)));
    found.into_iter().map(|k| (k.id, k.product_arn)).collect()
}

#[test]
fn two_chains_meeting_anywhere_deliver_every_finding_once() {
    for n in [1u32, 99, 100, 101, 250, 1_000, 1_234] {
        let all: Vec<FindingKey> = keys(0..n).into_iter().flatten().collect();
        for pattern in [
            vec![0, 1],
            vec![0, 0, 1],
            vec![1, 1, 1, 0],
            vec![0],
            vec![1],
        ] {
            let turns = pattern.iter().copied().cycle().take(4 * n as usize + 8);
            let found = read(&all, 100, turns, false);
            assert_eq!(sorted(found), sorted(all.clone()), "n {n}, {pattern:?}");
        }
    }
}

#[test]
fn findings_sharing_an_id_are_told_apart_by_product_wherever_the_pair_meets() {
    // Every Id used by up to three products: the groups fall across page ends.
    let mut all = Vec::new();
    for i in 0..300u32 {
        for product in 0..(i % 3 + 1) {
            all.push(key(&format!("id-{i:04}"), &format!("p{product}")));
        }
    }
    for size in [1, 2, 3, 7, 100] {
        for same_ties in [false, true] {
            for pattern in [vec![0, 1], vec![0, 0, 1], vec![1, 1, 0]] {
                let turns = pattern.iter().copied().cycle().take(4 * all.len() + 8);
                let found = read(&all, size, turns, same_ties);
                assert_eq!(
                    sorted(found),
                    sorted(all.clone()),
                    "size {size}, same ties {same_ties}, {pattern:?}"
                );
            }
        }
    }
}

#[test]
fn the_page_checked_second_keeps_nothing_past_the_frontier() {
    let mut meeting = Meeting::new([Vec::new(), Vec::new()]);
    // Both pages were in flight at once: ascending 100..200, descending 249..150.
    let up = keys(100..200);
    assert_eq!(meeting.accept(0, &up, true).unwrap().keep.len(), 100);
    let down = keys((150..250).rev());
    let admission = meeting.accept(1, &down, true).unwrap();
    assert_eq!(admission.keep, (0..50).collect::<Vec<_>>(), "249..200 kept");
    assert!(admission.ends);
    let after = meeting.accept(0, &keys(200..300), true).unwrap();
    assert!(
        after.keep.is_empty() && after.ends,
        "nothing after the meeting"
    );
}

#[test]
fn findings_gone_from_the_window_near_the_frontier_do_not_hide_the_meeting() {
    let mut meeting = Meeting::new([Vec::new(), Vec::new()]);
    meeting.accept(1, &keys((100..500).rev()), true).unwrap();
    // 300 findings at the descending chain's frontier (100..400) left the window before the
    // ascending chain got there: more than a tail holds.
    let page = keys((0..100).chain(400..410));
    let admission = meeting.accept(0, &page, true).unwrap();
    assert_eq!(admission.keep.len(), 100);
    assert!(admission.ends && meeting.met());
}

#[test]
fn a_page_out_of_order_or_behind_its_chain_breaks_the_order() {
    let mut meeting = Meeting::new([Vec::new(), Vec::new()]);
    meeting.accept(0, &keys(100..200), true).unwrap();
    // Sorted within itself, but behind the previous page: a service sorting each page only.
    assert!(meeting.accept(0, &keys(50..150), true).is_err());
    let mut meeting = Meeting::new([Vec::new(), Vec::new()]);
    assert!(
        meeting.accept(1, &keys(0..10), true).is_err(),
        "ascending on the descending side"
    );
    let twice = vec![Some(key("a", "p")), Some(key("a", "p"))];
    assert!(
        meeting.accept(0, &twice, true).is_err(),
        "one finding twice"
    );
    assert!(meeting.accept(0, &[None], true).is_err(), "no identity");
}

#[test]
fn a_resumed_pair_meets_at_its_durable_tails() {
    // Durable: ascending 0..300 (tail 100..300), descending 999..700 (tail 899..700).
    let asc: Vec<FindingKey> = keys(100..300).into_iter().flatten().collect();
    let desc: Vec<FindingKey> = keys((700..900).rev()).into_iter().flatten().collect();
    let mut meeting = Meeting::new([asc, desc]);
    let mut found = Vec::new();
    let (mut up, mut down) = (300, 700);
    while !meeting.met() {
        let page = keys(up..up + 100);
        found.extend(kept(&page, &meeting.accept(0, &page, true).unwrap()));
        up += 100;
        if meeting.met() {
            break;
        }
        let page = keys((down - 100..down).rev());
        found.extend(kept(&page, &meeting.accept(1, &page, true).unwrap()));
        down -= 100;
    }
    let rest: Vec<FindingKey> = keys(300..700).into_iter().flatten().collect();
    assert_eq!(sorted(found), sorted(rest));
}

#[test]
fn tails_keep_only_the_most_recent_findings() {
    let mut meeting = Meeting::new([Vec::new(), Vec::new()]);
    for start in (0..1_000).step_by(100) {
        meeting.accept(0, &keys(start..start + 100), true).unwrap();
    }
    assert_eq!(meeting.tails[0].len(), TAIL);
    assert_eq!(meeting.tails[0].front().unwrap().id, "id-0800");
}
