//! Refresh tokens, client credentials, /token hygiene, revocation, introspection, userinfo.

use latchkey::oidc::{AccessTokenClaims, IdTokenClaims};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, Backend};
use crate::oauth::*;

crate::both_stores!(
    refresh_rotates_and_replay_revokes_the_family,
    refresh_issues_a_new_id_token,
    refresh_scope_may_narrow_but_not_widen,
    refresh_token_is_bound_to_its_client,
    disabled_user_cannot_refresh,
    client_credentials_issues_an_access_token_only,
    client_credentials_scope_and_resource_rules,
    client_credentials_needs_the_grant,
    token_endpoint_refuses_malformed_requests,
    userinfo_returns_claims_for_the_scope,
    userinfo_refuses_bad_tokens,
    revoking_an_access_token,
    revoking_a_refresh_token_revokes_its_family,
    revocation_of_unknown_or_revoked_tokens_succeeds,
    revocation_needs_the_owning_client,
    introspection_describes_active_tokens,
    introspection_reports_inactive_tokens,
);

async fn refresh_rotates_and_replay_revokes_the_family(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (_, _, t0) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    let rt0 = s(&t0, "refresh_token").to_owned();

    let t1 = assert_tokens(refresh(&app, &client, &rt0).await).await;
    let rt1 = s(&t1, "refresh_token").to_owned();
    assert_ne!(rt1, rt0, "rotation");
    assert_ne!(s(&t1, "access_token"), s(&t0, "access_token"));
    assert_eq!(scope_set(s(&t1, "scope")), scope_set(FULL_SCOPE));
    assert_active(&app, &client, s(&t1, "access_token")).await;

    // The new token works once more, so rotation continues.
    let t2 = assert_tokens(refresh(&app, &client, &rt1).await).await;
    let rt2 = s(&t2, "refresh_token").to_owned();

    // Replay of an already-used token: invalid_grant, and the whole family dies.
    assert_refresh_dead(&app, &client, &rt0).await;
    assert_refresh_dead(&app, &client, &rt2).await;
    assert_refresh_dead(&app, &client, &rt1).await;
}

async fn refresh_issues_a_new_id_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    let user = alice(&app).await;
    let (_, _, t0) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    let first: IdTokenClaims = verify_jwt(&app, s(&t0, "id_token"), &client.id, None).await;
    app.clock.advance(5);
    let t1 = assert_tokens(refresh(&app, &client, s(&t0, "refresh_token")).await).await;
    let id: IdTokenClaims = verify_jwt(&app, s(&t1, "id_token"), &client.id, None).await;
    assert_eq!(id.sub, user.id.as_str());
    assert_eq!(id.auth_time, first.auth_time, "no new authentication");
    let at = s(&t1, "access_token");
    assert_eq!(
        id.at_hash.as_deref(),
        Some(latchkey::oidc::at_hash(at).as_str())
    );
    let atc: AccessTokenClaims = verify_jwt(&app, at, &app.address, Some("at+jwt")).await;
    assert_eq!(atc.sub, user.id.as_str());
    assert_eq!(atc.client_id, client.id);
    assert_eq!(atc.iat, first.iat + 5, "issued now");
}

async fn refresh_scope_may_narrow_but_not_widen(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (_, _, t0) = full_flow(&app, &client, USERNAME, "openid offline_access profile").await;
    let rt = s(&t0, "refresh_token");

    // `roles` and `email` are allowed for the client but were not granted.
    for wider in ["openid offline_access profile roles", "email"] {
        let res = token(
            &app,
            &client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt),
                ("scope", wider),
            ],
        )
        .await;
        assert_error(res, 400, "invalid_scope").await;
    }

    // The token is still usable, and may narrow.
    let res = token(
        &app,
        &client,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("scope", "openid"),
        ],
    )
    .await;
    let t1 = assert_tokens(res).await;
    assert_eq!(s(&t1, "scope"), "openid");
    let atc: AccessTokenClaims =
        verify_jwt(&app, s(&t1, "access_token"), &app.address, Some("at+jwt")).await;
    assert_eq!(atc.scope, "openid");
    let id: IdTokenClaims = verify_jwt(&app, s(&t1, "id_token"), &client.id, None).await;
    assert!(
        id.user.get("preferred_username").is_none(),
        "profile dropped"
    );
}

async fn refresh_token_is_bound_to_its_client(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    let other = register(&app, confidential_input("Other App")).await;
    alice(&app).await;
    let (_, _, t0) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    let rt = s(&t0, "refresh_token");
    assert_refresh_dead(&app, &other, rt).await;
    // Not a replay: the owner still refreshes.
    let t1 = assert_tokens(refresh(&app, &client, rt).await).await;
    assert_tokens(refresh(&app, &client, s(&t1, "refresh_token")).await).await;
}

async fn disabled_user_cannot_refresh(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (_, _, t0) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    let t1 = assert_tokens(refresh(&app, &client, s(&t0, "refresh_token")).await).await;
    disable_user(&app, USERNAME).await;
    assert_refresh_dead(&app, &client, s(&t1, "refresh_token")).await;
}

async fn cc(
    app: &crate::helpers::TestApp,
    client: &TestClient,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut params = vec![("grant_type", "client_credentials")];
    params.extend_from_slice(extra);
    token(app, client, &params).await
}

async fn client_credentials_issues_an_access_token_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = cc_client(&app, &[]).await;
    let t = assert_tokens(cc(&app, &client, &[]).await).await;
    assert!(t.get("refresh_token").is_none_or(Value::is_null), "{t}");
    assert!(t.get("id_token").is_none_or(Value::is_null), "{t}");
    assert_eq!(t["expires_in"], 900);
    assert_eq!(
        scope_set(s(&t, "scope")),
        scope_set("reports.read reports.write")
    );
    let at: AccessTokenClaims =
        verify_jwt(&app, s(&t, "access_token"), &app.address, Some("at+jwt")).await;
    assert_eq!(at.sub, client.id, "RFC 9068 §2.2: sub is the client");
    assert_eq!(at.client_id, client.id);
    assert_eq!(at.aud, vec![app.address.clone()]);
    assert!(at.auth_time.is_none() && at.sid.is_none() && at.roles.is_none());

    // client_secret_post works as well.
    let res = client_post(
        &app,
        "/token",
        &client,
        Auth::Post,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "reports.read"),
        ],
    )
    .await;
    let t = assert_tokens(res).await;
    assert_eq!(s(&t, "scope"), "reports.read");

    // Introspection of a client token.
    let v = introspect(&app, &client, s(&t, "access_token")).await;
    assert_eq!(v["active"], true);
    assert_eq!(v["sub"], client.id.as_str());
    assert_eq!(v["client_id"], client.id.as_str());
}

async fn client_credentials_scope_and_resource_rules(backend: Backend) {
    let app = spawn_app(backend).await;
    let api = "https://api.example/reports";
    let client = cc_client(&app, &[api]).await;

    let t = assert_tokens(cc(&app, &client, &[("resource", api)]).await).await;
    let at: AccessTokenClaims = verify_jwt(&app, s(&t, "access_token"), api, Some("at+jwt")).await;
    assert_eq!(at.aud, vec![api.to_owned()]);

    for resource in [
        "https://evil.example/",
        "https://api.example/reports/x",
        "not a uri",
    ] {
        assert_error(
            cc(&app, &client, &[("resource", resource)]).await,
            400,
            "invalid_target",
        )
        .await;
    }
    for scope in [
        "openid",
        "offline_access",
        "reports.read admin",
        "openid reports.read",
    ] {
        assert_error(
            cc(&app, &client, &[("scope", scope)]).await,
            400,
            "invalid_scope",
        )
        .await;
    }
}

async fn client_credentials_needs_the_grant(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    assert_error(cc(&app, &client, &[]).await, 400, "unauthorized_client").await;
    // And a machine client cannot use the code grant.
    let machine = cc_client(&app, &[]).await;
    let res = token(
        &app,
        &machine,
        &[
            ("grant_type", "authorization_code"),
            ("code", "whatever"),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &pkce().verifier),
        ],
    )
    .await;
    assert_error(res, 400, "unauthorized_client").await;
}

async fn token_endpoint_refuses_malformed_requests(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = cc_client(&app, &[]).await;
    let auth = basic(&client.id, client.secret.as_deref().unwrap());
    let send = |content_type: &'static str, body: Vec<u8>| {
        let auth = auth.clone();
        let url = app.url("/token");
        async move {
            reqwest::Client::new()
                .post(url)
                .header(AUTHORIZATION, auth)
                .header(CONTENT_TYPE, content_type)
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let cases: Vec<(&'static str, Vec<u8>, &str)> = vec![
        (FORM, b"scope=reports.read".to_vec(), "invalid_request"),
        (
            FORM,
            b"grant_type=password&username=a&password=b".to_vec(),
            "unsupported_grant_type",
        ),
        (
            FORM,
            b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer".to_vec(),
            "unsupported_grant_type",
        ),
        (
            FORM,
            b"grant_type=client_credentials&grant_type=client_credentials".to_vec(),
            "invalid_request",
        ),
        (
            "application/json",
            br#"{"grant_type":"client_credentials"}"#.to_vec(),
            "invalid_request",
        ),
        (
            FORM,
            b"\xff\xfe\x00garbage%%%zz&&==".to_vec(),
            "invalid_request",
        ),
        (
            FORM,
            {
                // Over 64 KiB in total, yet every value short and few parameters: only
                // the body limit refuses it.
                let mut b = b"grant_type=client_credentials".to_vec();
                for i in 0..60 {
                    b.extend(format!("&pad{i}=").bytes());
                    b.extend(std::iter::repeat_n(b'a', 1200));
                }
                assert!(b.len() > 64 * 1024);
                b
            },
            "invalid_request",
        ),
    ];
    for (content_type, body, error) in cases {
        let len = body.len();
        let res = send(content_type, body).await;
        assert!(res.status().as_u16() < 500, "never a 5xx");
        assert_no_store(res.headers());
        let status = res.status();
        let text = res.text().await.unwrap();
        assert_eq!(status, 400, "{content_type} {len} bytes: {text}");
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON: {text}"));
        assert_eq!(v["error"], error, "{content_type} {len} bytes: {text}");
    }
    // A well-formed request still works.
    assert_tokens(send(FORM, b"grant_type=client_credentials".to_vec()).await).await;
}

async fn userinfo_returns_claims_for_the_scope(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    let user = alice(&app).await;
    let (_, _, t) = full_flow(&app, &client, USERNAME, "openid profile email").await;
    let at = s(&t, "access_token");

    let res = userinfo(&app, at).await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["sub"], user.id.as_str());
    assert_eq!(v["preferred_username"], USERNAME);
    assert_eq!(v["email"], EMAIL);
    assert!(v["email_verified"].is_boolean());
    assert!(v.get("roles").is_none());

    // POST works as well (OIDC Core §5.3.1).
    let res = reqwest::Client::new()
        .post(app.url("/userinfo"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let posted: Value = res.json().await.unwrap();
    assert_eq!(posted, v);

    // openid alone: sub only (no profile/email claims).
    let (_, _, t) = full_flow(&app, &client, USERNAME, "openid").await;
    let v: Value = userinfo(&app, s(&t, "access_token"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["sub"], user.id.as_str());
    assert!(
        v.get("email").is_none() && v.get("preferred_username").is_none(),
        "{v}"
    );
}

async fn userinfo_refuses_bad_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (_, _, t) = full_flow(&app, &client, USERNAME, "openid profile").await;
    let at = s(&t, "access_token").to_owned();

    // No token at all: 401 with a Bearer challenge.
    let res = reqwest::get(app.url("/userinfo")).await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));

    assert_userinfo_refused(&app, "garbage").await;
    // A tampered token (signature of another payload).
    let parts: Vec<&str> = at.split('.').collect();
    let other = full_flow(&app, &client, USERNAME, "openid").await.2;
    let other_at = s(&other, "access_token").to_owned();
    let other_parts: Vec<&str> = other_at.split('.').collect();
    assert_userinfo_refused(
        &app,
        &format!("{}.{}.{}", parts[0], parts[1], other_parts[2]),
    )
    .await;
    // The ID token is not an access token.
    assert_userinfo_refused(&app, s(&t, "id_token")).await;
    // A client_credentials token has no user.
    let machine = cc_client(&app, &[]).await;
    let ct =
        assert_tokens(token(&app, &machine, &[("grant_type", "client_credentials")]).await).await;
    assert_eq!(userinfo(&app, s(&ct, "access_token")).await.status(), 401);

    // Still valid before the clock moves.
    assert_eq!(userinfo(&app, &at).await.status(), 200);
    // Disabled user.
    disable_user(&app, USERNAME).await;
    assert_userinfo_refused(&app, &at).await;
}

async fn revoking_an_access_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (_, _, t) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    let at = s(&t, "access_token");
    assert_active(&app, &client, at).await;

    let res = revoke(&app, &client, at).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().is_empty());
    assert_inactive(&app, &client, at).await;
    assert_userinfo_refused(&app, at).await;

    // Revoking it again, with the hint and client_secret_post: still 200.
    let res = client_post(
        &app,
        "/revoke",
        &client,
        Auth::Post,
        &[("token", at), ("token_type_hint", "access_token")],
    )
    .await;
    assert_eq!(res.status(), 200);
}

async fn revoking_a_refresh_token_revokes_its_family(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (_, _, t0) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    let t1 = assert_tokens(refresh(&app, &client, s(&t0, "refresh_token")).await).await;
    let rt = s(&t1, "refresh_token");
    let at = s(&t1, "access_token");
    assert_active(&app, &client, rt).await;

    let res = client_post(
        &app,
        "/revoke",
        &client,
        Auth::Basic,
        &[("token", rt), ("token_type_hint", "refresh_token")],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_refresh_dead(&app, &client, rt).await;
    assert_inactive(&app, &client, rt).await;
    assert_inactive(&app, &client, at).await;
    assert_inactive(&app, &client, s(&t0, "access_token")).await;
    assert_userinfo_refused(&app, at).await;
}

async fn revocation_of_unknown_or_revoked_tokens_succeeds(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (_, _, t) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    for token in [
        "no-such-token",
        "a.b.c",
        s(&t, "refresh_token"),
        s(&t, "refresh_token"),
    ] {
        let res = revoke(&app, &client, token).await;
        assert_eq!(res.status(), 200, "{token}");
        assert!(res.text().await.unwrap().is_empty());
    }
    // Missing token parameter is a malformed request.
    assert_error(
        client_post(&app, "/revoke", &client, Auth::Basic, &[]).await,
        400,
        "invalid_request",
    )
    .await;
}

async fn revocation_needs_the_owning_client(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    let other = register(&app, confidential_input("Other App")).await;
    alice(&app).await;
    let (_, _, t) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    let at = s(&t, "access_token");
    let rt = s(&t, "refresh_token");

    let bad = TestClient {
        secret: Some("wrong-secret".into()),
        ..client.clone()
    };
    let headers = assert_error(revoke(&app, &bad, rt).await, 401, "invalid_client").await;
    assert!(headers["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    assert_error(
        client_post(&app, "/revoke", &bad, Auth::Post, &[("token", at)]).await,
        401,
        "invalid_client",
    )
    .await;

    // Another client's tokens.
    assert_error(revoke(&app, &other, rt).await, 400, "invalid_request").await;
    assert_error(revoke(&app, &other, at).await, 400, "invalid_request").await;

    // Nothing was revoked.
    assert_active(&app, &client, at).await;
    assert_eq!(userinfo(&app, at).await.status(), 200);
    assert_tokens(refresh(&app, &client, rt).await).await;
}

async fn introspection_describes_active_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    let user = alice(&app).await;
    let (_, _, t) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    let at = s(&t, "access_token");
    let atc: AccessTokenClaims = verify_jwt(&app, at, &app.address, Some("at+jwt")).await;

    let res = client_post(&app, "/introspect", &client, Auth::Basic, &[("token", at)]).await;
    assert_eq!(res.status(), 200);
    assert_no_store(res.headers());
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["active"], true);
    assert_eq!(scope_set(s(&v, "scope")), scope_set(FULL_SCOPE));
    assert_eq!(v["client_id"], client.id.as_str());
    assert_eq!(v["sub"], user.id.as_str());
    assert_eq!(v["exp"], atc.exp);
    assert_eq!(v["iat"], atc.iat);
    assert_eq!(v["iss"], app.address.as_str());
    assert_eq!(v["aud"], json!(atc.aud));
    assert_eq!(v["jti"], atc.jti.as_str());
    assert_eq!(v["token_type"], "Bearer");

    // The refresh token, with client_secret_post.
    let res = client_post(
        &app,
        "/introspect",
        &client,
        Auth::Post,
        &[
            ("token", s(&t, "refresh_token")),
            ("token_type_hint", "refresh_token"),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(v["client_id"], client.id.as_str());
    assert_eq!(v["sub"], user.id.as_str());
    assert_eq!(v["token_type"], "refresh_token");
    assert!(v["exp"].is_i64() && v["iat"].is_i64());
    // Introspection does not consume the refresh token.
    assert_tokens(refresh(&app, &client, s(&t, "refresh_token")).await).await;
}

async fn introspection_reports_inactive_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = confidential_client(&app).await;
    alice(&app).await;
    let (_, _, t) = full_flow(&app, &client, USERNAME, FULL_SCOPE).await;
    let at = s(&t, "access_token").to_owned();
    let atc: AccessTokenClaims = verify_jwt(&app, &at, &app.address, Some("at+jwt")).await;

    // Wrong credentials: 401 invalid_client, nothing about the token.
    let bad = TestClient {
        secret: Some("wrong-secret".into()),
        ..client.clone()
    };
    let headers = assert_error(
        client_post(&app, "/introspect", &bad, Auth::Basic, &[("token", &at)]).await,
        401,
        "invalid_client",
    )
    .await;
    assert!(headers["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    assert_error(
        client_post(&app, "/introspect", &bad, Auth::Post, &[("token", &at)]).await,
        401,
        "invalid_client",
    )
    .await;

    // Garbage.
    for garbage in ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."] {
        assert_inactive(&app, &client, garbage).await;
    }

    // Signed by a foreign key: once under its own kid, once claiming ours.
    let foreign = tokio::task::spawn_blocking(|| {
        latchkey::crypto::generate_rsa_key(2048).expect("generate key")
    })
    .await
    .unwrap();
    let signer = latchkey::crypto::default_signer(&foreign.pkcs8_der).unwrap();
    let our_kid = jsonwebtoken::decode_header(&at).unwrap().kid.unwrap();
    for kid in [foreign.kid.as_str(), our_kid.as_str()] {
        let forged = latchkey::crypto::encode_jws(&*signer, kid, "at+jwt", &atc).unwrap();
        assert_inactive(&app, &client, &forged).await;
        assert_userinfo_refused(&app, &forged).await;
    }

    // The real token is active until it expires.
    assert_active(&app, &client, &at).await;
    app.clock.advance(atc.exp - atc.iat + 1);
    assert_inactive(&app, &client, &at).await;
    assert_userinfo_refused(&app, &at).await;
}
