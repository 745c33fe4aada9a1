use super::*;

fn user() -> User {
    User {
        id: UserId::from_stored("u-1".into()),
        username: Username::parse("bob").unwrap(),
        email: Email::parse("bob@example.com").unwrap(),
        email_verified: false,
        password_hash: None,
        disabled: false,
        roles: Vec::new(),
        created_at: 0,
        updated_at: 0,
        credentials_changed_at: 0,
        credentials_epoch: 1,
        must_enrol_factor: false,
    }
}

fn token(purpose: TokenPurpose) -> AccountToken {
    AccountToken {
        token_hash: vec![1; 32],
        purpose,
        user_id: "u-1".into(),
        email: Some("Bob@example.com".into()),
        credentials_epoch: 1,
        created_at: 100,
        expires_at: 200,
        used_at: None,
    }
}

fn check(t: &AccountToken, purpose: TokenPurpose, u: &User, now: i64) -> Result<(), LinkRefusal> {
    check_link(Some(t), purpose, Some(u), now)
}

#[test]
fn a_fresh_link_of_the_right_purpose_passes() {
    for p in [
        TokenPurpose::Invitation,
        TokenPurpose::VerifyEmail,
        TokenPurpose::ChangeEmail,
    ] {
        assert_eq!(check(&token(p), p, &user(), 150), Ok(()), "{p:?}");
    }
}

#[test]
fn a_token_of_another_purpose_or_user_is_unknown() {
    let t = token(TokenPurpose::PasswordReset);
    assert_eq!(
        check(&t, TokenPurpose::Invitation, &user(), 150),
        Err(LinkRefusal::Unknown)
    );
    let mut other = user();
    other.id = UserId::from_stored("u-2".into());
    let t = token(TokenPurpose::Invitation);
    assert_eq!(
        check(&t, TokenPurpose::Invitation, &other, 150),
        Err(LinkRefusal::Unknown)
    );
    assert_eq!(
        check_link(None, TokenPurpose::Invitation, Some(&user()), 150),
        Err(LinkRefusal::Unknown)
    );
    assert_eq!(
        check_link(Some(&t), TokenPurpose::Invitation, None, 150),
        Err(LinkRefusal::Unknown)
    );
}

#[test]
fn used_expired_and_disabled_are_refused() {
    let p = TokenPurpose::Invitation;
    let mut t = token(p);
    assert_eq!(check(&t, p, &user(), 200), Err(LinkRefusal::Expired));
    t.used_at = Some(120);
    assert_eq!(check(&t, p, &user(), 150), Err(LinkRefusal::Used));
    let mut u = user();
    u.disabled = true;
    assert_eq!(check(&token(p), p, &u, 150), Err(LinkRefusal::Disabled));
}

#[test]
fn an_invitation_is_stale_once_a_password_exists_or_the_epoch_moved() {
    let p = TokenPurpose::Invitation;
    let mut u = user();
    u.password_hash = Some("$argon2id$...".into());
    assert_eq!(check(&token(p), p, &u, 150), Err(LinkRefusal::Stale));
    let mut u = user();
    u.credentials_epoch = 2;
    assert_eq!(check(&token(p), p, &u, 150), Err(LinkRefusal::Stale));
}

#[test]
fn address_links_follow_their_own_rules() {
    // An address change dies with a credential change.
    let p = TokenPurpose::ChangeEmail;
    let mut u = user();
    u.credentials_epoch = 2;
    assert_eq!(check(&token(p), p, &u, 150), Err(LinkRefusal::Stale));
    // A verification applies only to the address it was sent to.
    let p = TokenPurpose::VerifyEmail;
    let mut u = user();
    u.email = Email::parse("robert@example.com").unwrap();
    assert_eq!(check(&token(p), p, &u, 150), Err(LinkRefusal::Stale));
}

#[test]
fn lifetimes_read_well() {
    assert_eq!(lifetime(72 * 3_600), "72 hours");
    assert_eq!(lifetime(3_600), "60 minutes");
    assert_eq!(lifetime(30), "30 seconds");
}
