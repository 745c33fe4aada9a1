//! The Content-Security-Policy of every page, written once.
//!
//! `form-action` (CSP3 §6.4.1) limits where a page's forms may post. Browsers (Chrome)
//! apply it to the redirects that follow a submission too, so a page whose form ends in a
//! redirect to a client (login, second factor, consent, logout confirmation) also names the
//! origin of that client's redirect URI, taken from the already-validated request; every
//! other page allows `'self'` only.

use actix_web::http::header::{HeaderValue, CONTENT_SECURITY_POLICY};
use actix_web::HttpResponse;
use url::{Host, Url};

/// What a page needs beyond the base policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// Plain server-rendered HTML: the default of every response.
    Plain,
    /// Runs the passkey script: `script-src 'self'` (the file, never inline code) and
    /// `connect-src 'self'` (its requests for ceremony options).
    PasskeyScript,
    /// Shows its QR code as a `data:` PNG (the TOTP page).
    DataImages,
}

/// The policy for `page`, whose forms may end in a redirect to `redirect_uris` (validated
/// redirect URIs; empty when they post only to Latchkey).
///
/// When a redirect URI has no CSP source expression (an IPv6 loopback literal: CSP3
/// §2.3.1's `host-part` has no IPv6 form), the page has no `form-action` at all rather
/// than one that would block the client's own redirect.
pub fn policy(page: Page, redirect_uris: &[&str]) -> String {
    let mut p = String::from("default-src 'none'; ");
    if page == Page::PasskeyScript {
        p.push_str("script-src 'self'; connect-src 'self'; ");
    }
    p.push_str("style-src 'self'; ");
    p.push_str(match page {
        Page::DataImages => "img-src 'self' data:; ",
        _ => "img-src 'self'; ",
    });
    p.push_str("frame-ancestors 'none'; base-uri 'none'");
    if let Some(sources) = form_sources(redirect_uris) {
        p.push_str("; form-action ");
        p.push_str(&sources.join(" "));
    }
    p
}

/// `res` with the policy for `page` and `redirect_uris` (see [`policy`]).
pub fn with_policy(mut res: HttpResponse, page: Page, redirect_uris: &[&str]) -> HttpResponse {
    if let Ok(v) = HeaderValue::from_str(&policy(page, redirect_uris)) {
        res.headers_mut().insert(CONTENT_SECURITY_POLICY, v);
    }
    res
}

/// `'self'` and one source per distinct redirect origin; `None` if one has no syntax.
fn form_sources(redirect_uris: &[&str]) -> Option<Vec<String>> {
    let mut sources = vec!["'self'".to_owned()];
    for uri in redirect_uris {
        let source = source_of(uri)?;
        if !sources.contains(&source) {
            sources.push(source);
        }
    }
    Some(sources)
}

/// The CSP source expression (CSP3 §2.3.1) that matches redirects to `uri`:
/// - `https://host[:port]` (an origin: paths are not matched after a redirect anyway);
/// - `http://127.0.0.1:*` for a loopback IP literal, whose redirects accept any port
///   (RFC 8252 §7.3);
/// - `com.example.app:`, a scheme source, for a private-use scheme (RFC 8252 §7.1).
///
/// `None` for what has no source syntax: an IPv6 literal, or anything whose characters
/// could not stand in a header value (never expected from a validated URI).
pub fn source_of(uri: &str) -> Option<String> {
    let url = Url::parse(uri).ok()?;
    let scheme = url.scheme();
    if scheme != "https" && scheme != "http" {
        // `Url` keeps schemes lower-case and within ALPHA *( ALPHA / DIGIT / "+" / "-" /
        // "." ), CSP's `scheme-part`.
        return Some(format!("{scheme}:"));
    }
    let host = match url.host()? {
        Host::Domain(d)
            if d.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') =>
        {
            d.to_owned()
        }
        Host::Domain(_) | Host::Ipv6(_) => return None,
        Host::Ipv4(ip) if scheme == "http" && ip.is_loopback() => {
            return Some(format!("http://{ip}:*"));
        }
        Host::Ipv4(ip) => ip.to_string(),
    };
    Some(match url.port() {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_https_redirect_is_its_origin() {
        assert_eq!(
            source_of("https://client.example/cb?x=1").as_deref(),
            Some("https://client.example")
        );
        assert_eq!(
            source_of("https://Client.Example:8443/a/b").as_deref(),
            Some("https://client.example:8443")
        );
        assert_eq!(
            source_of("https://client.example:443/cb").as_deref(),
            Some("https://client.example"),
            "the default port is the origin's"
        );
        assert_eq!(
            source_of("https://bücher.example/cb").as_deref(),
            Some("https://xn--bcher-kva.example")
        );
    }

    #[test]
    fn a_loopback_ip_redirect_accepts_any_port() {
        assert_eq!(
            source_of("http://127.0.0.1:51004/cb").as_deref(),
            Some("http://127.0.0.1:*")
        );
        assert_eq!(
            source_of("http://127.0.0.1/cb").as_deref(),
            Some("http://127.0.0.1:*")
        );
    }

    #[test]
    fn a_private_use_scheme_is_a_scheme_source() {
        assert_eq!(
            source_of("com.example.app:/oauth2redirect").as_deref(),
            Some("com.example.app:")
        );
        assert_eq!(
            source_of("Com.Example.App://cb").as_deref(),
            Some("com.example.app:")
        );
    }

    #[test]
    fn what_csp_cannot_express_has_no_source() {
        assert_eq!(source_of("http://[::1]:8080/cb"), None);
        assert_eq!(source_of("not a uri"), None);
    }

    #[test]
    fn every_page_allows_forms_to_itself_only_by_default() {
        assert_eq!(
            policy(Page::Plain, &[]),
            "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; \
             base-uri 'none'; form-action 'self'"
        );
    }

    #[test]
    fn a_page_that_redirects_to_a_client_names_its_origin_once() {
        let p = policy(
            Page::Plain,
            &["https://client.example/cb", "https://client.example/other"],
        );
        assert!(
            p.ends_with("; form-action 'self' https://client.example"),
            "{p}"
        );
    }

    #[test]
    fn script_and_data_image_pages_keep_their_extras() {
        let p = policy(Page::PasskeyScript, &["com.example.app:/cb"]);
        assert!(p.contains("script-src 'self'; connect-src 'self';"), "{p}");
        assert!(p.ends_with("form-action 'self' com.example.app:"), "{p}");
        let p = policy(Page::DataImages, &[]);
        assert!(p.contains("img-src 'self' data:;"), "{p}");
        assert!(!p.contains("script-src"), "{p}");
        assert!(p.ends_with("form-action 'self'"), "{p}");
    }

    #[test]
    fn an_inexpressible_redirect_drops_form_action_rather_than_break_the_flow() {
        let p = policy(Page::Plain, &["http://[::1]:8080/cb"]);
        assert!(!p.contains("form-action"), "{p}");
        assert!(p.contains("default-src 'none'"), "{p}");
    }
}
