//! RP-Initiated Logout (OpenID Connect RP-Initiated Logout 1.0 §2, §3).

use crate::domain::Client;

/// Where to send the browser after logout. §3: the OP redirects only when the
/// `post_logout_redirect_uri` "has been previously registered with the OP", which needs an
/// identified client (`client_id` or an `id_token_hint`); the match is exact. `state` is
/// appended as a query parameter (§2: "the OP passes this value to the RP using the state
/// parameter when redirecting"). `None` means: show the logged-out page.
pub fn post_logout_redirect(
    client: Option<&Client>,
    uri: Option<&str>,
    state: Option<&str>,
) -> Option<String> {
    let client = client?;
    let uri = uri?;
    if !client
        .post_logout_redirect_uris
        .iter()
        .any(|r| r.as_str() == uri)
    {
        return None;
    }
    let mut url = url::Url::parse(uri).ok()?;
    if let Some(state) = state {
        url.query_pairs_mut().append_pair("state", state);
    }
    Some(url.into())
}

/// §2: "When both client_id and id_token_hint are present, the OP MUST verify that the Client
/// Identifier from the client_id parameter matches the Client Identifier for which the ID
/// Token was issued" — `client_id` must be among the hint's `aud`.
pub fn hint_matches_client(hint_aud: &[String], client_id: Option<&str>) -> bool {
    match client_id {
        Some(id) => hint_aud.iter().any(|aud| aud == id),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::test_support::{client, LOGOUT_REDIRECT};

    #[test]
    fn redirects_to_registered_uri() {
        let c = client();
        assert_eq!(
            post_logout_redirect(Some(&c), Some(LOGOUT_REDIRECT), None),
            Some(LOGOUT_REDIRECT.to_owned())
        );
    }

    #[test]
    fn appends_encoded_state() {
        let c = client();
        assert_eq!(
            post_logout_redirect(Some(&c), Some(LOGOUT_REDIRECT), Some("a b&c=d/é")),
            Some(format!("{LOGOUT_REDIRECT}?state=a+b%26c%3Dd%2F%C3%A9"))
        );
    }

    #[test]
    fn keeps_existing_query() {
        let mut c = client();
        let uri = "https://app.example/bye?from=idp";
        c.post_logout_redirect_uris =
            vec![crate::domain::RedirectUri::parse("post_logout_redirect_uri", uri).unwrap()];
        assert_eq!(
            post_logout_redirect(Some(&c), Some(uri), Some("s")),
            Some(format!("{uri}&state=s"))
        );
    }

    #[test]
    fn no_client_no_redirect() {
        assert_eq!(
            post_logout_redirect(None, Some(LOGOUT_REDIRECT), None),
            None
        );
    }

    #[test]
    fn no_uri_no_redirect() {
        assert_eq!(post_logout_redirect(Some(&client()), None, Some("s")), None);
    }

    #[test]
    fn unregistered_uri_no_redirect() {
        let c = client();
        for uri in [
            "https://app.example/bye/",
            "https://app.example/bye?x=1",
            "https://evil.example/bye",
            // A login redirect URI is not a logout redirect URI.
            crate::oidc::test_support::REDIRECT,
        ] {
            assert_eq!(
                post_logout_redirect(Some(&c), Some(uri), None),
                None,
                "{uri}"
            );
        }
    }

    #[test]
    fn hint_must_name_client() {
        let aud = vec!["app".to_owned()];
        assert!(hint_matches_client(&aud, Some("app")));
        assert!(hint_matches_client(&aud, None));
        assert!(!hint_matches_client(&aud, Some("other")));
        assert!(!hint_matches_client(&[], Some("app")));
    }
}
