//! A short human label for a `User-Agent` header ("Firefox on Linux"), for the account
//! page's list of sessions. Display only: the header is whatever the client says, so
//! nothing may depend on the result.

/// Label for an empty or unrecognised header.
pub const UNKNOWN: &str = "Unknown device";
/// Longest label [`describe`] returns.
pub const MAX_LABEL_LEN: usize = 64;
/// Bytes of the header looked at; real browser headers are shorter, and a huge header
/// must not cost more than a small one.
const MAX_INPUT_LEN: usize = 512;

/// Browsers by a product token, in the order they must be tested: Edge, Opera and Samsung
/// Internet also send "Chrome/" and "Safari/", Chromium and Chrome send "Safari/", and
/// Firefox and Chrome on iOS send "Safari/" but not "Chrome/".
const BROWSERS: &[(&str, &str)] = &[
    ("Edg/", "Edge"),
    ("EdgA/", "Edge"),
    ("EdgiOS/", "Edge"),
    ("Edge/", "Edge"),
    ("OPR/", "Opera"),
    ("SamsungBrowser/", "Samsung Internet"),
    ("Firefox/", "Firefox"),
    ("FxiOS/", "Firefox"),
    ("CriOS/", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
];

/// Operating systems by a token, in order: iOS headers say "like Mac OS X", Android and
/// ChromeOS headers say "Linux".
const SYSTEMS: &[(&str, &str)] = &[
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("CrOS", "ChromeOS"),
    ("Windows", "Windows"),
    ("Macintosh", "macOS"),
    ("Mac OS X", "macOS"),
    ("Linux", "Linux"),
];

/// Command-line clients, recognised by the start of the header.
const TOOLS: &[(&str, &str)] = &[("curl/", "curl"), ("Wget/", "Wget")];

/// "Browser on System", the browser or the system alone when only one is recognised, a
/// tool's name, or [`UNKNOWN`]; never longer than [`MAX_LABEL_LEN`].
pub fn describe(user_agent: &str) -> String {
    let head = prefix(user_agent.trim_start(), MAX_INPUT_LEN);
    if let Some(tool) = find(TOOLS, |token| head.starts_with(token)) {
        return tool.to_owned();
    }
    let browser = find(BROWSERS, |token| head.contains(token));
    let system = find(SYSTEMS, |token| head.contains(token));
    let label = match (browser, system) {
        (Some(browser), Some(system)) => format!("{browser} on {system}"),
        (Some(name), None) | (None, Some(name)) => name.to_owned(),
        (None, None) => UNKNOWN.to_owned(),
    };
    // All labels are short constants; the cut only guards against a future long one.
    prefix(&label, MAX_LABEL_LEN).to_owned()
}

/// The label of the first entry whose token matches.
fn find(table: &[(&str, &'static str)], matches: impl Fn(&str) -> bool) -> Option<&'static str> {
    table
        .iter()
        .find(|(token, _)| matches(token))
        .map(|&(_, label)| label)
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const CASES: &[(&str, &str)] = &[
        (
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            "Firefox on Linux",
        ),
        (
            "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
            "Firefox on Linux",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
            "Firefox on Windows",
        ),
        (
            "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/131.0.0.0 Mobile Safari/537.36",
            "Chrome on Android",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/131.0.0.0 Safari/537.36",
            "Chrome on Windows",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 \
             (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            "Chrome on macOS",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 \
             (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
            "Safari on iPhone",
        ),
        (
            "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 \
             (KHTML, like Gecko) Version/17.7 Mobile/15E148 Safari/604.1",
            "Safari on iPad",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_7 like Mac OS X) AppleWebKit/605.1.15 \
             (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
            "Chrome on iPhone",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_7 like Mac OS X) AppleWebKit/605.1.15 \
             (KHTML, like Gecko) FxiOS/133.0 Mobile/15E148 Safari/605.1.15",
            "Firefox on iPhone",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 \
             (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
            "Safari on macOS",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
            "Edge on Windows",
        ),
        (
            "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/131.0.0.0 Mobile Safari/537.36 EdgA/131.0.0.0",
            "Edge on Android",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/131.0.0.0 Safari/537.36 OPR/114.0.0.0",
            "Opera on Windows",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 \
             (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
            "Samsung Internet on Android",
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Ubuntu Chromium/79.0.3945.79 Chrome/79.0.3945.79 Safari/537.36",
            "Chromium on Linux",
        ),
        (
            "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/131.0.0.0 Safari/537.36",
            "Chrome on ChromeOS",
        ),
        ("curl/8.5.0", "curl"),
        ("Wget/1.21.4", "Wget"),
        ("", "Unknown device"),
        ("   ", "Unknown device"),
        ("python-requests/2.32.3", "Unknown device"),
        ("Mozilla/5.0 (X11; Linux x86_64)", "Linux"),
        ("Mozilla/5.0 Firefox/128.0", "Firefox"),
    ];

    #[test]
    fn real_user_agents() {
        for (user_agent, expected) in CASES {
            assert_eq!(describe(user_agent), *expected, "{user_agent}");
        }
    }

    #[test]
    fn labels_are_short() {
        for (user_agent, _) in CASES {
            assert!(describe(user_agent).len() <= MAX_LABEL_LEN);
        }
        for (_, browser) in BROWSERS {
            for (_, system) in SYSTEMS {
                assert!(format!("{browser} on {system}").len() <= MAX_LABEL_LEN);
            }
        }
    }

    #[test]
    fn only_the_first_512_bytes_count() {
        let padding = "x".repeat(MAX_INPUT_LEN);
        assert_eq!(
            describe(&format!("{padding} Firefox/128.0 (Linux)")),
            UNKNOWN
        );
        let huge = format!("curl/8.5.0 {}", "é".repeat(5_000_000));
        assert_eq!(describe(&huge), "curl");
    }

    #[test]
    fn cuts_at_a_character_boundary() {
        // 511 ASCII bytes then a 2-byte character straddling the 512-byte limit.
        let user_agent = format!("{}é Firefox/1", "a".repeat(MAX_INPUT_LEN - 1));
        assert_eq!(describe(&user_agent), UNKNOWN);
        assert_eq!(prefix("héllo", 2), "h");
        assert_eq!(prefix("héllo", 3), "hé");
    }
}
