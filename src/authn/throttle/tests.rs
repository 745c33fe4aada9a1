use super::*;

const NOW: UnixTime = 1_000_000;

const GROWING: Rule = Rule {
    free: 3,
    base_delay: 1,
    max_delay: 900,
    window: 86_400,
};

const FIXED: Rule = Rule {
    free: 5,
    base_delay: 0,
    max_delay: 0,
    window: 300,
};

fn counted(rule: Rule) -> Check {
    Check::counted(rule)
}

/// Runs `n` attempts at `now`, feeding each result into the next.
fn attempts(
    checks: &[Check],
    mut buckets: Vec<Option<ThrottleBucket>>,
    n: usize,
    now: UnixTime,
) -> (Vec<Verdict>, Vec<Option<ThrottleBucket>>) {
    let mut verdicts = Vec::new();
    for _ in 0..n {
        let a = acquire(checks, &buckets, now);
        verdicts.push(a.verdict);
        buckets = a.buckets;
    }
    (verdicts, buckets)
}

#[test]
fn free_attempts_then_a_delay_that_doubles() {
    let checks = [counted(GROWING)];
    let (v, b) = attempts(&checks, vec![None], 5, NOW);
    assert_eq!(&v[..3], &[Verdict::Allowed; 3]);
    assert_eq!(v[3], Verdict::Throttled { retry_after: 1 });
    assert_eq!(v[4], Verdict::Throttled { retry_after: 1 });
    // After the first delay one attempt passes, and the next delay is twice as long.
    let a = acquire(&checks, &b, NOW + 1);
    assert_eq!(a.verdict, Verdict::Allowed);
    assert!(a.started_delay[0]);
    let a = acquire(&checks, &a.buckets, NOW + 1);
    assert_eq!(a.verdict, Verdict::Throttled { retry_after: 2 });
    let a = acquire(&checks, &a.buckets, NOW + 3);
    assert_eq!(a.verdict, Verdict::Allowed);
    assert_eq!(
        acquire(&checks, &a.buckets, NOW + 3).verdict,
        Verdict::Throttled { retry_after: 4 }
    );
}

#[test]
fn the_delay_is_capped_and_never_a_lockout() {
    let checks = [counted(GROWING)];
    let mut buckets = vec![None];
    let mut now = NOW;
    for _ in 0..100 {
        let a = acquire(&checks, &buckets, now);
        if let Verdict::Throttled { retry_after } = a.verdict {
            assert!(retry_after <= 900, "{retry_after}");
            now += retry_after;
        }
        buckets = a.buckets;
    }
    assert_eq!(
        acquire(&checks, &buckets, now + 900).verdict,
        Verdict::Allowed
    );
}

#[test]
fn a_throttled_attempt_changes_nothing() {
    let checks = [counted(GROWING)];
    let (_, b) = attempts(&checks, vec![None], 3, NOW);
    let a = acquire(&checks, &b, NOW);
    assert!(matches!(a.verdict, Verdict::Throttled { .. }));
    assert_eq!(a.buckets, b);
    assert_eq!(a.started_delay, [false]);
}

#[test]
fn any_blocked_bucket_throttles_and_counts_nowhere() {
    let checks = [counted(GROWING), counted(FIXED)];
    let (_, b) = attempts(&[counted(GROWING)], vec![None], 3, NOW);
    let a = acquire(&checks, &[b[0], None], NOW);
    assert!(matches!(a.verdict, Verdict::Throttled { .. }));
    assert_eq!(a.buckets[1], None, "the other bucket was not counted");
}

#[test]
fn a_fixed_window_blocks_until_it_ends() {
    let checks = [counted(FIXED)];
    let (v, b) = attempts(&checks, vec![None], 6, NOW);
    assert_eq!(&v[..5], &[Verdict::Allowed; 5]);
    assert_eq!(v[5], Verdict::Throttled { retry_after: 300 });
    assert_eq!(
        acquire(&checks, &b, NOW + 299).verdict,
        Verdict::Throttled { retry_after: 1 }
    );
    assert_eq!(acquire(&checks, &b, NOW + 300).verdict, Verdict::Allowed);
}

#[test]
fn a_gate_is_checked_but_not_counted() {
    let gate = Check::gate(FIXED);
    let (v, b) = attempts(&[gate], vec![None], 20, NOW);
    assert!(v.iter().all(|v| *v == Verdict::Allowed));
    assert_eq!(b, [None]);
    let full = count(&FIXED, None, NOW);
    let full = (1..5).fold(full, |b, _| count(&FIXED, Some(b), NOW));
    assert!(matches!(
        acquire(&[gate], &[Some(full)], NOW).verdict,
        Verdict::Throttled { .. }
    ));
}

#[test]
fn refund_takes_back_an_attempt_and_the_delay_it_caused() {
    let checks = [counted(GROWING)];
    let (_, b) = attempts(&checks, vec![None], 3, NOW);
    assert!(b[0].unwrap().blocked_until > NOW);
    let r = refund(&GROWING, b[0], NOW).unwrap();
    assert_eq!(r.count, 2);
    assert_eq!(r.blocked_until, 0);
    assert_eq!(acquire(&checks, &[Some(r)], NOW).verdict, Verdict::Allowed);
    assert_eq!(
        refund(&GROWING, count(&GROWING, None, NOW).into(), NOW),
        None
    );
    assert_eq!(refund(&GROWING, None, NOW), None);
}

#[test]
fn old_buckets_are_forgotten_after_their_window() {
    let checks = [counted(GROWING)];
    let (_, b) = attempts(&checks, vec![None], 2, NOW);
    let a = acquire(&checks, &b, NOW + 86_400);
    assert_eq!(a.buckets[0].unwrap().count, 1, "a new window");
}

#[test]
fn missing_buckets_are_treated_as_empty() {
    let a = acquire(&[counted(GROWING), counted(FIXED)], &[], NOW);
    assert_eq!(a.verdict, Verdict::Allowed);
    assert_eq!(a.buckets.len(), 2);
}

#[test]
fn an_unenforced_bucket_counts_but_never_holds_back() {
    let quiet = Check {
        rule: GROWING,
        count: true,
        enforce: false,
    };
    let (v, b) = attempts(&[quiet], vec![None], 10, NOW);
    assert!(v.iter().all(|v| *v == Verdict::Allowed), "{v:?}");
    assert_eq!(b[0].unwrap().count, 10);
    assert!(
        b[0].unwrap().blocked_until > NOW,
        "the delay runs for those it holds back"
    );
    assert!(matches!(
        acquire(&[counted(GROWING)], &b, NOW).verdict,
        Verdict::Throttled { .. }
    ));
}
