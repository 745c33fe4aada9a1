//! How a message leaves: lettre's SMTP client (plain, STARTTLS or implicit TLS, with
//! optional credentials) or its file transport (one `.eml` file per message).

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{MailSettings, MailTransportKind, SmtpTls};

use super::Rendered;

/// Why a message could not be sent. The text is logged and listed by `latchkey mail list`;
/// it never holds the message body.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The message could not be built (a bad recipient address, ...): retrying will not help.
    #[error("message refused: {0}")]
    Permanent(String),
    /// The transport failed (connection refused, timeout, 4xx reply, disk full, ...).
    #[error("delivery failed: {0}")]
    Transient(String),
}

/// The configured transport.
#[derive(Clone)]
pub enum Transport {
    /// `.eml` files in a folder.
    File(AsyncFileTransport<Tokio1Executor>),
    /// An SMTP server.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::File(_) => "Transport::File",
            Self::Smtp(_) => "Transport::Smtp",
        })
    }
}

impl Transport {
    /// Builds the transport the settings describe (creating the `file` transport's folder).
    pub fn from_settings(m: &MailSettings) -> Result<Self, String> {
        match m.transport {
            MailTransportKind::File => {
                std::fs::create_dir_all(&m.dir)
                    .map_err(|e| format!("cannot create mail.dir {}: {e}", m.dir.display()))?;
                Ok(Self::File(AsyncFileTransport::new(&m.dir)))
            }
            MailTransportKind::Smtp => {
                let host = m.smtp_host.as_str();
                let builder = match m.smtp_tls {
                    SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
                    SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                        .map_err(|e| format!("mail.smtp_host: {e}"))?,
                    SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                        .map_err(|e| format!("mail.smtp_host: {e}"))?,
                };
                let mut builder = builder
                    .port(m.port())
                    .timeout(Some(Duration::from_secs(m.smtp_timeout_secs)));
                if let (Some(user), Some(pass)) = (&m.smtp_username, &m.smtp_password) {
                    builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
                }
                Ok(Self::Smtp(builder.build()))
            }
        }
    }

    /// Sends one message with a text and an HTML part.
    pub async fn send(&self, from: &Mailbox, to: &str, body: &Rendered) -> Result<(), SendError> {
        let to: Mailbox = to
            .parse()
            .map_err(|e| SendError::Permanent(format!("recipient: {e}")))?;
        let message = Message::builder()
            .from(from.clone())
            .to(to)
            .subject(body.subject.as_str())
            .multipart(MultiPart::alternative_plain_html(
                body.text.clone(),
                body.html.clone(),
            ))
            .map_err(|e| SendError::Permanent(e.to_string()))?;
        match self {
            Self::File(t) => t
                .send(message)
                .await
                .map(drop)
                .map_err(|e| SendError::Transient(e.to_string())),
            Self::Smtp(t) => t.send(message).await.map(drop).map_err(|e| {
                if e.is_permanent() {
                    SendError::Permanent(e.to_string())
                } else {
                    SendError::Transient(e.to_string())
                }
            }),
        }
    }
}
