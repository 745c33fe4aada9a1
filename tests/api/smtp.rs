//! A real SMTP listener inside the test process (RFC 5321: EHLO/HELO, MAIL, RCPT, DATA,
//! RSET, NOOP, QUIT), on a random port of 127.0.0.1. It keeps every message it accepts;
//! tests read links out of them. It can be stopped and started again on the same port
//! (an SMTP outage).
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// Recipients at this domain are refused with a permanent error (550), as a server
/// refuses an unknown mailbox.
pub const REJECTED_DOMAIN: &str = "@rejected.example";

/// One accepted message.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub raw: Vec<u8>,
}

impl Received {
    /// The subject, decoded.
    pub fn subject(&self) -> String {
        use mailparse::MailHeaderMap;
        let parsed = mailparse::parse_mail(&self.raw).expect("parse mail");
        parsed
            .headers
            .get_first_value("Subject")
            .unwrap_or_default()
    }

    /// The decoded body of the part with this MIME type (`text/plain`, `text/html`).
    pub fn part(&self, mime: &str) -> String {
        let parsed = mailparse::parse_mail(&self.raw).expect("parse mail");
        fn find(p: &mailparse::ParsedMail, mime: &str) -> Option<String> {
            if p.ctype.mimetype == mime {
                return p.get_body().ok();
            }
            p.subparts.iter().find_map(|s| find(s, mime))
        }
        find(&parsed, mime).unwrap_or_else(|| panic!("no {mime} part"))
    }

    /// A security notice whose text names `what`.
    pub fn kind_is_notice_naming(&self, what: &str) -> bool {
        self.subject() == "Security notice for your account" && self.text().contains(what)
    }

    /// The text part.
    pub fn text(&self) -> String {
        self.part("text/plain")
    }

    /// The first link in the text part that starts with `prefix` (e.g. the issuer plus
    /// `/reset-password`), up to the next whitespace.
    pub fn link(&self, prefix: &str) -> String {
        let text = self.text();
        let start = text
            .find(prefix)
            .unwrap_or_else(|| panic!("no link starting with {prefix} in:\n{text}"));
        text[start..]
            .split(|c: char| c.is_whitespace())
            .next()
            .expect("link")
            .to_owned()
    }

    /// The `token` query parameter of the first link starting with `prefix`.
    pub fn token(&self, prefix: &str) -> String {
        let link = self.link(prefix);
        let url = url::Url::parse(&link).expect("link url");
        url.query_pairs()
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("no token in {link}"))
    }
}

#[derive(Default)]
struct Inbox {
    messages: Mutex<Vec<Received>>,
    arrived: Notify,
}

/// The listener. Dropping it stops it.
pub struct SmtpSink {
    pub port: u16,
    inbox: Arc<Inbox>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl SmtpSink {
    /// Starts on a random port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind smtp");
        let port = listener.local_addr().expect("addr").port();
        let inbox = Arc::new(Inbox::default());
        let task = tokio::spawn(serve(listener, inbox.clone()));
        Self {
            port,
            inbox,
            task: Mutex::new(Some(task)),
        }
    }

    /// Stops listening: connections are refused until [`SmtpSink::resume`].
    pub fn stop(&self) {
        if let Some(task) = self.task.lock().expect("lock").take() {
            task.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn resume(&self) {
        self.stop();
        let mut listener = None;
        for _ in 0..50 {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => {
                    listener = Some(l);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        let listener = listener.expect("rebind smtp port");
        *self.task.lock().expect("lock") = Some(tokio::spawn(serve(listener, self.inbox.clone())));
    }

    /// Every message received so far.
    pub fn messages(&self) -> Vec<Received> {
        self.inbox.messages.lock().expect("lock").clone()
    }

    /// Messages received for `to`.
    pub fn messages_to(&self, to: &str) -> Vec<Received> {
        self.messages()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(to)))
            .collect()
    }

    /// Waits (up to 10 s) until `to` has received `n` messages; returns them all.
    pub async fn wait_for(&self, to: &str, n: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let arrived = self.inbox.arrived.notified();
            let got = self.messages_to(to);
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!("{to} received {} of {n} messages:\n{got:#?}", got.len());
            }
        }
    }

    /// The first message to `to` that `pred` accepts, waiting (up to 10 s) for it.
    pub async fn first_matching(&self, to: &str, pred: impl Fn(&Received) -> bool) -> Received {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let arrived = self.inbox.arrived.notified();
            if let Some(m) = self.messages_to(to).into_iter().find(|m| pred(m)) {
                return m;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!("no matching message to {to}:\n{:#?}", self.messages_to(to));
            }
        }
    }

    /// The last message `to` received, waiting for the `n`-th.
    pub async fn nth(&self, to: &str, n: usize) -> Received {
        self.wait_for(to, n).await[n - 1].clone()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve(listener: TcpListener, inbox: Arc<Inbox>) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(session(stream, inbox.clone()));
    }
}

async fn session(stream: TcpStream, inbox: Arc<Inbox>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink ESMTP\r\n").await?;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
        } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
            b"250 ok\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            from = address(&line[10..]);
            to.clear();
            b"250 ok\r\n"
        } else if upper.starts_with("RCPT TO:") {
            let rcpt = address(&line[8..]);
            if rcpt.to_ascii_lowercase().ends_with(REJECTED_DOMAIN) {
                b"550 5.1.1 no such mailbox\r\n"
            } else {
                to.push(rcpt);
                b"250 ok\r\n"
            }
        } else if upper.starts_with("RSET") {
            from.clear();
            to.clear();
            b"250 ok\r\n"
        } else if upper.starts_with("DATA") {
            write.write_all(b"354 go ahead\r\n").await?;
            let raw = read_data(&mut lines).await?;
            inbox.messages.lock().expect("lock").push(Received {
                from: from.clone(),
                to: std::mem::take(&mut to),
                raw,
            });
            inbox.arrived.notify_waiters();
            b"250 queued\r\n"
        } else if upper.starts_with("QUIT") {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            b"502 not implemented\r\n"
        };
        write.write_all(reply).await?;
    }
}

/// The message up to the lone `.` line, with dot-stuffing undone (RFC 5321 §4.5.2).
async fn read_data(
    lines: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if lines.read_until(b'\n', &mut line).await? == 0 {
            return Ok(raw);
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok(raw);
        }
        let body = if line.starts_with(b"..") {
            &line[1..]
        } else {
            &line[..]
        };
        raw.extend_from_slice(body);
    }
}

fn address(arg: &str) -> String {
    let arg = arg.trim();
    let inner = arg
        .strip_prefix('<')
        .and_then(|a| a.split_once('>'))
        .map_or(arg, |(a, _)| a);
    inner.to_owned()
}
