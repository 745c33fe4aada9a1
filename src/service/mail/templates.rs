//! The mail templates, compiled into the binary. `.html` templates are auto-escaped by the
//! engine; `.txt` templates are not (they are sent as `text/plain`).

use minijinja::{AutoEscape, Environment};

/// Every mail template: `mail/<kind>.txt` and `mail/<kind>.html` for each kind.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "mail/base.html",
        include_str!("../../../templates/mail/base.html"),
    ),
    (
        "mail/security_notice.txt",
        include_str!("../../../templates/mail/security_notice.txt"),
    ),
    (
        "mail/security_notice.html",
        include_str!("../../../templates/mail/security_notice.html"),
    ),
    (
        "mail/password_reset.txt",
        include_str!("../../../templates/mail/password_reset.txt"),
    ),
    (
        "mail/password_reset.html",
        include_str!("../../../templates/mail/password_reset.html"),
    ),
    (
        "mail/new_sign_in.txt",
        include_str!("../../../templates/mail/new_sign_in.txt"),
    ),
    (
        "mail/new_sign_in.html",
        include_str!("../../../templates/mail/new_sign_in.html"),
    ),
    (
        "mail/invitation.txt",
        include_str!("../../../templates/mail/invitation.txt"),
    ),
    (
        "mail/invitation.html",
        include_str!("../../../templates/mail/invitation.html"),
    ),
    (
        "mail/verify_email.txt",
        include_str!("../../../templates/mail/verify_email.txt"),
    ),
    (
        "mail/verify_email.html",
        include_str!("../../../templates/mail/verify_email.html"),
    ),
    (
        "mail/change_email.txt",
        include_str!("../../../templates/mail/change_email.txt"),
    ),
    (
        "mail/change_email.html",
        include_str!("../../../templates/mail/change_email.html"),
    ),
    (
        "mail/address_in_use.txt",
        include_str!("../../../templates/mail/address_in_use.txt"),
    ),
    (
        "mail/address_in_use.html",
        include_str!("../../../templates/mail/address_in_use.html"),
    ),
    (
        "mail/username_taken.txt",
        include_str!("../../../templates/mail/username_taken.txt"),
    ),
    (
        "mail/username_taken.html",
        include_str!("../../../templates/mail/username_taken.html"),
    ),
    (
        "mail/mfa_recovery_confirm.txt",
        include_str!("../../../templates/mail/mfa_recovery_confirm.txt"),
    ),
    (
        "mail/mfa_recovery_confirm.html",
        include_str!("../../../templates/mail/mfa_recovery_confirm.html"),
    ),
    (
        "mail/mfa_recovery_requested.txt",
        include_str!("../../../templates/mail/mfa_recovery_requested.txt"),
    ),
    (
        "mail/mfa_recovery_requested.html",
        include_str!("../../../templates/mail/mfa_recovery_requested.html"),
    ),
    (
        "mail/mfa_recovery_reminder.txt",
        include_str!("../../../templates/mail/mfa_recovery_reminder.txt"),
    ),
    (
        "mail/mfa_recovery_reminder.html",
        include_str!("../../../templates/mail/mfa_recovery_reminder.html"),
    ),
    (
        "mail/mfa_recovery_cancelled.txt",
        include_str!("../../../templates/mail/mfa_recovery_cancelled.txt"),
    ),
    (
        "mail/mfa_recovery_cancelled.html",
        include_str!("../../../templates/mail/mfa_recovery_cancelled.html"),
    ),
    (
        "mail/mfa_recovery_effective.txt",
        include_str!("../../../templates/mail/mfa_recovery_effective.txt"),
    ),
    (
        "mail/mfa_recovery_effective.html",
        include_str!("../../../templates/mail/mfa_recovery_effective.html"),
    ),
];

/// The template engine for mail.
pub(super) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    for (name, source) in TEMPLATES {
        if let Err(e) = env.add_template(name, source) {
            tracing::error!(template = name, error = %e, "mail template does not compile");
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles_and_every_kind_has_both_parts() {
        let env = environment();
        for (name, _) in TEMPLATES {
            assert!(env.get_template(name).is_ok(), "{name}");
            if let Some(kind) = name.strip_suffix(".txt") {
                assert!(env.get_template(&format!("{kind}.html")).is_ok(), "{kind}");
            }
        }
    }
}
