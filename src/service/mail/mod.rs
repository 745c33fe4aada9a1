//! Outgoing mail: messages are rendered from templates (a text and an HTML part), sealed,
//! and written to the outbox in the same transaction as the state change that sends them;
//! the [`worker`] delivers them through the configured [`transport`].

pub mod outbox;
mod templates;
pub mod transport;
pub mod worker;

use std::sync::Arc;

use minijinja::Environment;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::clock::UnixTime;
use crate::crypto::kek::MasterKey;
use crate::crypto::CryptoError;
use crate::domain::OutboxMail;

use super::ServiceError;

/// A rendered message, as sealed into the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rendered {
    /// Subject line.
    pub subject: String,
    /// The text part.
    pub text: String,
    /// The HTML part (auto-escaped by the engine).
    pub html: String,
}

/// Renders, seals and opens messages; shared by every request and the worker.
pub struct Mailer {
    seal: MasterKey,
    env: Environment<'static>,
    issuer: String,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// A mailer sealing with a sub-key of the key-encryption key; links start at `issuer`.
    pub fn new(master: &MasterKey, issuer: &str) -> Result<Self, CryptoError> {
        Ok(Self {
            seal: MasterKey::from_bytes(master.derive_key(b"mail-outbox")?),
            env: templates::environment(),
            issuer: issuer.trim_end_matches('/').to_owned(),
            wake: Arc::new(Notify::new()),
        })
    }

    /// An absolute link to `path` on this server (`path` starts with `/`), with the token
    /// (URL-safe base64, no escaping needed) as the `token` query parameter.
    pub fn link(&self, path: &str, token: &str) -> String {
        format!("{}{path}?token={token}", self.issuer)
    }

    /// The issuer, for templates that name the server.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Renders `kind` (`templates/mail/<kind>.txt` and `.html`; the text template's first
    /// line is `Subject: ...`) with `ctx` plus `issuer`, and seals it into a new outbox
    /// message to `to`, due at `now`.
    pub fn compose(
        &self,
        kind: &str,
        to: &str,
        ctx: minijinja::Value,
        now: UnixTime,
    ) -> Result<OutboxMail, ServiceError> {
        let rendered = self.render(kind, ctx)?;
        let mut mail = OutboxMail::new(kind, to, &rendered.subject, Vec::new(), now);
        let body = serde_json::to_vec(&rendered)
            .map_err(|e| ServiceError::Refused(format!("cannot encode message: {e}")))?;
        mail.body_sealed = Some(self.seal.seal(&body, mail.id.as_bytes())?);
        Ok(mail)
    }

    /// Opens a stored message (for the worker). `None` when its body was erased.
    pub fn open(&self, mail: &OutboxMail) -> Result<Option<Rendered>, ServiceError> {
        let Some(sealed) = &mail.body_sealed else {
            return Ok(None);
        };
        let body = self.seal.open(sealed, mail.id.as_bytes())?;
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| ServiceError::Refused(format!("stored message does not parse: {e}")))
    }

    /// Renders `kind` without sealing it (for tests and previews).
    pub fn render(&self, kind: &str, ctx: minijinja::Value) -> Result<Rendered, ServiceError> {
        let ctx = minijinja::context! { issuer => self.issuer.as_str(), ..ctx };
        let render = |name: String| {
            self.env
                .get_template(&name)
                .and_then(|t| t.render(&ctx))
                .map_err(|e| ServiceError::Refused(format!("mail template {name}: {e}")))
        };
        let text = render(format!("mail/{kind}.txt"))?;
        let html = render(format!("mail/{kind}.html"))?;
        let (first, rest) = text.split_once('\n').unwrap_or((text.as_str(), ""));
        let subject = first
            .strip_prefix("Subject:")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ServiceError::Refused(format!("mail/{kind}.txt must start with `Subject: `"))
            })?;
        Ok(Rendered {
            subject: subject.to_owned(),
            text: rest.trim_start_matches('\n').to_owned(),
            html,
        })
    }

    /// Wakes the outbox worker (call after a message was committed to the outbox).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// What the worker waits on between polls.
    pub fn wake_handle(&self) -> Arc<Notify> {
        self.wake.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailer() -> Mailer {
        Mailer::new(&MasterKey::from_bytes([7; 32]), "https://id.example.com/").unwrap()
    }

    #[test]
    fn a_notice_renders_both_parts_and_escapes_html() {
        let m = mailer();
        let r = m
            .render(
                "security_notice",
                minijinja::context! { username => "<alice>", what => "Your password was changed." },
            )
            .unwrap();
        assert_eq!(r.subject, "Security notice for your account");
        assert!(r.text.contains("<alice>"), "{}", r.text);
        assert!(r.html.contains("&lt;alice&gt;"), "{}", r.html);
        assert!(!r.html.contains("<alice>"));
        assert!(r.text.contains("https://id.example.com/account"));
    }

    #[test]
    fn a_sealed_body_opens_only_under_its_own_id() {
        let m = mailer();
        let ctx = minijinja::context! { username => "alice", what => "x" };
        let mut mail = m
            .compose("security_notice", "a@example.com", ctx, 100)
            .unwrap();
        let opened = m.open(&mail).unwrap().unwrap();
        assert_eq!(opened.subject, mail.subject);
        mail.id = "another".into();
        assert!(m.open(&mail).is_err());
        mail.body_sealed = None;
        assert_eq!(m.open(&mail).unwrap(), None);
    }

    #[test]
    fn links_start_at_the_issuer() {
        assert_eq!(
            mailer().link("/reset", "abc"),
            "https://id.example.com/reset?token=abc"
        );
    }
}
