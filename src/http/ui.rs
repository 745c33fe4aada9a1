//! Server-rendered pages: minijinja templates compiled into the binary, HTML-escaped by
//! the engine (auto-escaping is on for `.html` templates).

use std::sync::OnceLock;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use minijinja::Environment;

use super::csp::{self, Page};

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/base.html")),
    ("login.html", include_str!("../../templates/login.html")),
    ("consent.html", include_str!("../../templates/consent.html")),
    ("error.html", include_str!("../../templates/error.html")),
    (
        "logout_confirm.html",
        include_str!("../../templates/logout_confirm.html"),
    ),
    (
        "signed_out.html",
        include_str!("../../templates/signed_out.html"),
    ),
    ("mfa.html", include_str!("../../templates/mfa.html")),
    (
        "mfa_required.html",
        include_str!("../../templates/mfa_required.html"),
    ),
    ("account.html", include_str!("../../templates/account.html")),
    (
        "totp_setup.html",
        include_str!("../../templates/totp_setup.html"),
    ),
    (
        "backup_codes.html",
        include_str!("../../templates/backup_codes.html"),
    ),
    ("reauth.html", include_str!("../../templates/reauth.html")),
    (
        "throttled.html",
        include_str!("../../templates/throttled.html"),
    ),
    (
        "forgot_password.html",
        include_str!("../../templates/forgot_password.html"),
    ),
    (
        "reset_password.html",
        include_str!("../../templates/reset_password.html"),
    ),
    (
        "invitation.html",
        include_str!("../../templates/invitation.html"),
    ),
    (
        "verify_email.html",
        include_str!("../../templates/verify_email.html"),
    ),
    (
        "link_message.html",
        include_str!("../../templates/link_message.html"),
    ),
    (
        "register.html",
        include_str!("../../templates/register.html"),
    ),
    (
        "mfa_recovery.html",
        include_str!("../../templates/mfa_recovery.html"),
    ),
];

const STYLESHEET: &str = include_str!("../../static/latchkey.css");
const PASSKEY_SCRIPT: &str = include_str!("../../static/passkey.js");

/// The policy of a page that offers passkeys when they are available (it loads the passkey
/// script), a plain one otherwise; its forms may end at `redirect_uri` (validated).
pub fn with_csp(res: HttpResponse, passkeys: bool, redirect_uri: Option<&str>) -> HttpResponse {
    let page = if passkeys {
        Page::PasskeyScript
    } else {
        Page::Plain
    };
    let targets: Vec<&str> = redirect_uri.into_iter().collect();
    csp::with_policy(res, page, &targets)
}

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(template = name, error = %e, "template does not compile");
            }
        }
        env
    })
}

/// Renders `template` with `ctx` as an HTML response with `status`.
pub fn page(status: StatusCode, template: &str, ctx: minijinja::Value) -> HttpResponse {
    let rendered = env().get_template(template).and_then(|t| t.render(ctx));
    match rendered {
        Ok(body) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body),
        Err(e) => super::error::internal(&e),
    }
}

/// What each scope means, in words, for the consent page.
pub fn describe_scope(scope: &str) -> String {
    match scope {
        "openid" => "Sign you in with your account".into(),
        "profile" => "See your username and profile".into(),
        "email" => "See your e-mail address".into(),
        "offline_access" => "Stay signed in when you are not using it".into(),
        "roles" => "See the roles you hold".into(),
        other => format!("Access \u{201c}{other}\u{201d}"),
    }
}

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/static/latchkey.css", web::get().to(stylesheet))
        .route("/static/passkey.js", web::get().to(passkey_script));
}

async fn passkey_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=86400"))
        .body(PASSKEY_SCRIPT)
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=86400"))
        .body(STYLESHEET)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles() {
        for (name, _) in TEMPLATES {
            assert!(env().get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn values_are_html_escaped() {
        let ctx =
            minijinja::context! { code => "x", description => "<script>alert(1)</script>\"'" };
        let html = env()
            .get_template("error.html")
            .and_then(|t| t.render(ctx))
            .unwrap_or_default();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }
}
