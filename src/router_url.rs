//! How the command-line clients read a router's address (`sluice query`, `tail` and
//! `alerts --url`, `sluice ship` and `run --to`), and what they say when nothing answers
//! there.

use std::borrow::Cow;

/// Ends the clients' "cannot reach …" errors: the usual reason is that no router runs at
/// that address.
pub const START_HINT: &str = "start one with: sluice up";

/// `url` with `http://` in front when it names no scheme, so that `127.0.0.1:8686` or
/// `router:8080` (how addresses are written in pipelines) work as given.
pub fn with_scheme(url: &str) -> Cow<'_, str> {
    let has_scheme = url.split_once("://").is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    if has_scheme {
        Cow::Borrowed(url)
    } else {
        Cow::Owned(format!("http://{url}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_http_only_when_no_scheme_is_given() {
        let table = [
            ("127.0.0.1:8686", "http://127.0.0.1:8686"),
            ("router:8080/v1/logs", "http://router:8080/v1/logs"),
            ("localhost", "http://localhost"),
            ("[::1]:8686", "http://[::1]:8686"),
            ("http://127.0.0.1:8686", "http://127.0.0.1:8686"),
            // Other schemes stay, for the caller to refuse with its own message.
            ("https://router", "https://router"),
            // `://` in a query is not a scheme.
            (
                "router:8080/?next=http://x",
                "http://router:8080/?next=http://x",
            ),
        ];
        for (given, expected) in table {
            assert_eq!(with_scheme(given), expected, "{given}");
        }
    }
}
