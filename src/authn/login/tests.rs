use super::*;

const NOW: UnixTime = 1_000_000;

fn account() -> Resume {
    Resume::Account {
        next: "/account".into(),
    }
}

fn authorize() -> Resume {
    Resume::Authorize {
        request: "client_id=app".into(),
    }
}

fn password_ok(user: &str, enrolled: &[FactorKind]) -> Event {
    Event::PasswordVerified {
        user_id: user.into(),
        enrolled: enrolled.to_vec(),
        credentials_epoch: 7,
    }
}

fn second_factor(next: Next) -> PendingLogin {
    match next {
        Next::SecondFactor(p) => p,
        other => panic!("expected the second-factor step, got {other:?}"),
    }
}

fn done(next: Next) -> Completed {
    match next {
        Next::Done(c) => c,
        other => panic!("expected done, got {other:?}"),
    }
}

#[test]
fn password_alone_is_done_without_a_second_factor() {
    let p = PendingLogin::start(authorize(), false, NOW);
    let c = done(p.apply(password_ok("u1", &[]), NOW + 1).unwrap());
    assert_eq!(c.user_id, "u1");
    assert_eq!(
        c.factors,
        [FactorUse {
            kind: FactorKind::Password,
            at: NOW + 1
        }]
    );
    assert_eq!(c.resume, authorize());
    assert_eq!(c.session_sid, None);
    assert_eq!(
        c.credentials_epoch, 7,
        "the epoch read with the password hash"
    );
}

#[test]
fn an_enrolled_second_factor_is_always_asked() {
    let p = PendingLogin::start(authorize(), false, NOW);
    let p = second_factor(
        p.apply(
            password_ok("u1", &[FactorKind::Totp, FactorKind::BackupCode]),
            NOW,
        )
        .unwrap(),
    );
    assert_eq!(p.stage, Stage::SecondFactor);
    assert!(p.offers(FactorKind::Totp));
    assert!(p.offers(FactorKind::BackupCode));
    assert!(!p.offers(FactorKind::Password));
    let c = done(
        p.apply(Event::SecondFactorVerified(FactorKind::Totp), NOW + 5)
            .unwrap(),
    );
    let kinds: Vec<FactorKind> = c.factors.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, [FactorKind::Password, FactorKind::Totp]);
    assert_eq!(c.factors[1].at, NOW + 5);
}

#[test]
fn the_password_never_counts_as_a_second_factor() {
    let p = PendingLogin::start(authorize(), false, NOW);
    let p = second_factor(
        p.apply(
            password_ok("u1", &[FactorKind::Password, FactorKind::Totp]),
            NOW,
        )
        .unwrap(),
    );
    assert_eq!(p.enrolled, [FactorKind::Totp]);
    assert_eq!(
        p.apply(Event::SecondFactorVerified(FactorKind::Password), NOW),
        Err(LoginError::FactorNotEnrolled)
    );
}

#[test]
fn mfa_demanded_without_a_second_factor_is_unavailable() {
    let p = PendingLogin::start(authorize(), true, NOW);
    assert_eq!(
        p.apply(password_ok("u1", &[]), NOW).unwrap(),
        Next::MfaUnavailable {
            resume: authorize()
        }
    );
}

#[test]
fn a_factor_the_user_does_not_have_is_refused() {
    let p = PendingLogin::start(authorize(), false, NOW);
    let p = second_factor(
        p.apply(password_ok("u1", &[FactorKind::Totp]), NOW)
            .unwrap(),
    );
    assert!(!p.offers(FactorKind::BackupCode));
    assert_eq!(
        p.apply(Event::SecondFactorVerified(FactorKind::BackupCode), NOW),
        Err(LoginError::FactorNotEnrolled)
    );
}

#[test]
fn failed_second_factors_are_counted_and_end_the_login() {
    let p = PendingLogin::start(authorize(), false, NOW);
    let mut p = second_factor(
        p.apply(password_ok("u1", &[FactorKind::Totp]), NOW)
            .unwrap(),
    );
    for attempt in 1..MAX_ATTEMPTS {
        p = second_factor(p.apply(Event::SecondFactorFailed, NOW).unwrap());
        assert_eq!(p.attempts, attempt);
    }
    assert_eq!(
        p.apply(Event::SecondFactorFailed, NOW),
        Err(LoginError::TooManyAttempts)
    );
}

#[test]
fn an_expired_pending_login_is_refused() {
    let p = PendingLogin::start(authorize(), false, NOW);
    let p = second_factor(
        p.apply(password_ok("u1", &[FactorKind::Totp]), NOW)
            .unwrap(),
    );
    assert_eq!(p.expires_at(), NOW + PENDING_TTL);
    assert!(p
        .clone()
        .apply(
            Event::SecondFactorVerified(FactorKind::Totp),
            NOW + PENDING_TTL - 1
        )
        .is_ok());
    assert_eq!(
        p.clone().apply(
            Event::SecondFactorVerified(FactorKind::Totp),
            NOW + PENDING_TTL
        ),
        Err(LoginError::Expired)
    );
    // A clock that went backwards does not stretch it either.
    assert_eq!(
        p.apply(Event::SecondFactorVerified(FactorKind::Totp), NOW - 1),
        Err(LoginError::Expired)
    );
}

#[test]
fn events_out_of_stage_are_refused() {
    let p = PendingLogin::start(authorize(), false, NOW);
    assert_eq!(
        p.clone()
            .apply(Event::SecondFactorVerified(FactorKind::Totp), NOW),
        Err(LoginError::WrongStage)
    );
    assert_eq!(
        p.apply(Event::SecondFactorFailed, NOW),
        Err(LoginError::WrongStage)
    );
    let p = PendingLogin::start(authorize(), false, NOW);
    let p = second_factor(
        p.apply(password_ok("u1", &[FactorKind::Totp]), NOW)
            .unwrap(),
    );
    // A replayed password step cannot skip or restart the second factor.
    assert_eq!(
        p.apply(password_ok("u1", &[]), NOW),
        Err(LoginError::WrongStage)
    );
}

#[test]
fn a_step_up_asks_only_the_second_factor_and_keeps_the_earlier_ones() {
    let earlier = [FactorUse {
        kind: FactorKind::Password,
        at: NOW - 100,
    }];
    let next = PendingLogin::step_up(
        "u1",
        "sid-1",
        3,
        &earlier,
        vec![FactorKind::Totp],
        authorize(),
        NOW,
    );
    let p = second_factor(next);
    assert_eq!(p.stage, Stage::SecondFactor);
    assert_eq!(p.session_sid.as_deref(), Some("sid-1"));
    let c = done(
        p.apply(Event::SecondFactorVerified(FactorKind::Totp), NOW)
            .unwrap(),
    );
    assert_eq!(c.session_sid.as_deref(), Some("sid-1"));
    assert_eq!(c.credentials_epoch, 3, "the session's epoch carries over");
    assert_eq!(c.factors[0], earlier[0]);
    assert_eq!(c.factors[1].kind, FactorKind::Totp);
}

#[test]
fn a_step_up_without_a_second_factor_is_unavailable() {
    assert_eq!(
        PendingLogin::step_up(
            "u1",
            "sid",
            3,
            &[],
            vec![FactorKind::Password],
            account(),
            NOW
        ),
        Next::MfaUnavailable { resume: account() }
    );
}

#[test]
fn reauthentication_needs_the_same_users_password() {
    let p = PendingLogin::reauthenticate("u1", "sid-1", account(), NOW);
    assert_eq!(
        p.clone().apply(password_ok("u2", &[]), NOW),
        Err(LoginError::WrongUser)
    );
    let c = done(p.clone().apply(password_ok("u1", &[]), NOW).unwrap());
    assert_eq!(c.session_sid.as_deref(), Some("sid-1"));
    // ... and then the second factor when the user has one.
    let p = second_factor(
        p.apply(password_ok("u1", &[FactorKind::Totp]), NOW)
            .unwrap(),
    );
    assert!(p.offers(FactorKind::Totp));
}

#[test]
fn the_state_survives_storage_as_json() {
    let p = PendingLogin::start(authorize(), true, NOW);
    let p = second_factor(
        p.apply(password_ok("u1", &[FactorKind::Totp]), NOW)
            .unwrap(),
    );
    let json = serde_json::to_string(&p).unwrap();
    let back: PendingLogin = serde_json::from_str(&json).unwrap();
    assert_eq!(back, p);
}

#[test]
fn a_passkey_alone_signs_in_with_no_other_step() {
    let p = PendingLogin::start(authorize(), true, NOW);
    let c = done(
        p.apply(
            Event::PasskeyVerified {
                user_id: "u1".into(),
                credentials_epoch: 7,
            },
            NOW,
        )
        .unwrap(),
    );
    assert_eq!(c.user_id, "u1");
    assert_eq!(c.credentials_epoch, 7);
    assert_eq!(
        c.factors.iter().map(|f| f.kind).collect::<Vec<_>>(),
        [FactorKind::Passkey]
    );
}

#[test]
fn a_passkey_is_offered_as_a_second_factor_only_when_enrolled() {
    let p = PendingLogin::start(authorize(), false, NOW);
    let p = second_factor(
        p.apply(password_ok("u1", &[FactorKind::Passkey]), NOW)
            .unwrap(),
    );
    assert!(p.offers(FactorKind::Passkey));
    assert!(!p.offers(FactorKind::Totp));
    let c = done(
        p.apply(Event::SecondFactorVerified(FactorKind::Passkey), NOW)
            .unwrap(),
    );
    assert_eq!(c.factors[1].kind, FactorKind::Passkey);
    // A passkey sign-in cannot replace the second factor of a login in progress.
    let p = PendingLogin::start(authorize(), false, NOW);
    let p = second_factor(
        p.apply(password_ok("u1", &[FactorKind::Totp]), NOW)
            .unwrap(),
    );
    assert_eq!(
        p.apply(
            Event::PasskeyVerified {
                user_id: "u1".into(),
                credentials_epoch: 7,
            },
            NOW
        ),
        Err(LoginError::WrongStage)
    );
}

#[test]
fn reauthentication_with_another_users_passkey_is_refused() {
    let p = PendingLogin::reauthenticate("u1", "sid", account(), NOW);
    assert_eq!(
        p.apply(
            Event::PasskeyVerified {
                user_id: "u2".into(),
                credentials_epoch: 7,
            },
            NOW
        ),
        Err(LoginError::WrongUser)
    );
}
