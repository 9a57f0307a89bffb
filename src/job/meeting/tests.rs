use super::*;

/// Ids 0..n as the sorted service would hold them.
fn ids(range: impl Iterator<Item = u32>) -> Vec<Option<String>> {
    range.map(|i| Some(format!("id-{i:04}"))).collect()
}

/// Runs a pair over `n` findings, the two sides taking pages of `page` in the order `turns`
/// gives (0 ascending, 1 descending), each page read from the side's own position; returns
/// every kept Id.
fn read(n: u32, page: u32, turns: impl Iterator<Item = usize>) -> Vec<String> {
    let mut meeting = Meeting::new([Vec::new(), Vec::new()]);
    let mut positions = [0u32, 0u32];
    let mut kept = Vec::new();
    for side in turns {
        if meeting.met() || positions[side] >= n {
            continue;
        }
        let start = positions[side];
        let end = (start + page).min(n);
        let page_ids = match side {
            0 => ids(start..end),
            _ => ids((n - end..n - start).rev()),
        };
        positions[side] = end;
        let (keep, _) = meeting.accept(side, &page_ids);
        kept.extend(page_ids.into_iter().take(keep).flatten());
    }
    kept
}

#[test]
fn two_chains_meeting_anywhere_deliver_every_id_once() {
    for n in [1, 99, 100, 101, 250, 1_000, 1_234] {
        for pattern in [
            vec![0, 1],
            vec![0, 0, 1],
            vec![1, 1, 1, 0],
            vec![0],
            vec![1],
        ] {
            let turns = pattern.iter().copied().cycle().take(4 * n as usize);
            let mut kept = read(n, 100, turns);
            kept.sort();
            let all: Vec<String> = ids(0..n).into_iter().flatten().collect();
            assert_eq!(kept, all, "n {n}, turns {pattern:?}");
        }
    }
}

#[test]
fn the_page_checked_second_is_cut_where_the_other_side_began() {
    let mut meeting = Meeting::new([Vec::new(), Vec::new()]);
    // Both pages were in flight at once: ascending 100..200, descending 250..150.
    assert_eq!(meeting.accept(0, &ids(100..200)), (100, false));
    assert_eq!(
        meeting.accept(1, &ids((150..250).rev())),
        (50, true),
        "250..200 kept"
    );
    assert_eq!(
        meeting.accept(0, &ids(200..300)),
        (0, true),
        "nothing after the meeting"
    );
}

#[test]
fn a_finding_gone_from_the_window_at_the_frontier_does_not_hide_the_meeting() {
    let mut meeting = Meeting::new([Vec::new(), Vec::new()]);
    meeting.accept(1, &ids((100..200).rev()));
    // Ids 100..110 left the window (updated after it) before the ascending chain got there.
    let (keep, met) = meeting.accept(0, &ids((0..100).chain(110..120)));
    assert_eq!((keep, met), (100, true));
}

#[test]
fn a_resumed_pair_meets_at_its_durable_tails() {
    // Durable: ascending 0..300 (tail 100..300), descending 999..700 (tail 899..700).
    let asc: Vec<String> = ids(100..300).into_iter().flatten().collect();
    let desc: Vec<String> = ids((700..900).rev()).into_iter().flatten().collect();
    let mut meeting = Meeting::new([asc, desc]);
    let mut kept = Vec::new();
    let mut up = 300;
    let mut down = 700;
    while !meeting.met() {
        let page = ids(up..up + 100);
        let (keep, _) = meeting.accept(0, &page);
        kept.extend(page.into_iter().take(keep).flatten());
        up += 100;
        if meeting.met() {
            break;
        }
        let page = ids((down - 100..down).rev());
        let (keep, _) = meeting.accept(1, &page);
        kept.extend(page.into_iter().take(keep).flatten());
        down -= 100;
    }
    kept.sort();
    let rest: Vec<String> = ids(300..700).into_iter().flatten().collect();
    assert_eq!(kept, rest);
}

#[test]
fn tails_keep_only_the_most_recent_ids() {
    let mut meeting = Meeting::new([Vec::new(), Vec::new()]);
    for start in (0..1_000).step_by(100) {
        meeting.accept(0, &ids(start..start + 100));
    }
    assert_eq!(meeting.tails[0].len(), TAIL);
    assert_eq!(
        meeting.tails[0].front().map(String::as_str),
        Some("id-0800")
    );
}
