//! Two servers on one PostgreSQL database, as behind a load balancer: what one node
//! learns about an attacker, a used TOTP step or an ended session, the other node obeys.
//! Each node has its own ManualClock; the test moves them together.

use latchkey::clock::Clock;

use crate::accounts_support::*;
use crate::helpers::{spawn_app_with, spawn_second_node, Backend, TestApp};
use crate::oauth::*;

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn throttle_totp_replay_and_session_revocation_hold_across_two_nodes() {
        if crate::helpers::postgres_available().await {
            super::throttle_totp_replay_and_session_revocation_hold_across_two_nodes().await
        }
    }
}

/// Moves both nodes' clocks on by `secs`, and checks they agree.
fn advance_both(a: &TestApp, b: &TestApp, secs: i64) {
    a.clock.advance(secs);
    b.clock.advance(secs);
    assert_eq!(
        a.clock.now(),
        b.clock.now(),
        "the nodes' clocks are in step"
    );
}

async fn throttle_totp_replay_and_session_revocation_hold_across_two_nodes() {
    let a = spawn_app_with(Backend::Postgres, |s| {
        s.login.free_failures_per_account_address = 3;
    })
    .await;
    let b = spawn_second_node(&a).await;
    assert_ne!(a.address, b.address, "two servers");
    assert_eq!(b.state.settings.database.url, a.state.settings.database.url);
    assert_eq!(b.state.settings.login.free_failures_per_account_address, 3);
    advance_both(&a, &b, 0);
    alice(&a).await;

    // 1. Failures on A slow the same client on B.
    let on_a = Browser::new(&a);
    for _ in 0..3 {
        let res = sign_in(&a, &on_a, USERNAME, "wrong password").await;
        assert_eq!(res.status(), 401);
    }
    let res = sign_in(&b, &Browser::new(&b), USERNAME, PASSWORD).await;
    assert_eq!(res.status(), 429, "node B knows node A's failures");
    assert!(res.headers().contains_key("retry-after"));

    // 2. A TOTP code used on A is refused on B; the next step's code works there.
    let secret = user_with_totp(&a, "carol").await.1.secret;
    b.clock.advance(30); // user_with_totp moved A's clock one step on
    advance_both(&a, &b, 0);
    let used = code_now(&a, &secret);
    sign_in_with_totp(&a, "carol", &secret).await;
    let on_b = Browser::new(&b);
    let page = assert_mfa_page(sign_in(&b, &on_b, "carol", PASSWORD).await).await;
    let res = submit_mfa(&b, &on_b, &page, "totp", &used).await;
    assert_eq!(res.status(), 401, "a replayed code");
    let page = assert_mfa_page(res).await;
    advance_both(&a, &b, 30);
    let res = submit_mfa(&b, &on_b, &page, "totp", &code_now(&b, &secret)).await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    account_page(&b, &on_b).await;

    // 3. A session from A works on B until it is ended on A.
    create_user(&a, "dave", &[]).await;
    let first = Browser::new(&a);
    sign_in_ok(&a, &first, "dave").await;
    let cookie = first.cookie("latchkey_session").expect("a session cookie");
    let carried = Browser::new(&b);
    carried.plant_cookie("latchkey_session", &cookie);
    let page = account_page(&b, &carried).await;
    assert!(page.contains("dave"), "{page}");
    let second = Browser::new(&a);
    sign_in_ok(&a, &second, "dave").await;
    let page = account_page(&a, &second).await;
    let sid = hidden(&page, "/account/sessions/end", "sid").expect("the other session");
    let res = post_account(&a, &second, "/account/sessions/end", &[("sid", &sid)]).await;
    assert_eq!(res.status(), 303);
    for (node, browser) in [(&b, &carried), (&a, &first)] {
        let res = browser.http.get(node.url("/account")).send().await.unwrap();
        let page = res.text().await.unwrap();
        assert!(
            has_control(&page, "/login", "password", None),
            "the login page: {page}"
        );
        assert!(!page.contains("action=\"/account/password\""), "{page}");
    }
    account_page(&a, &second).await;
}
