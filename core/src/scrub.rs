//! The one secret scrubber: every text that may quote something a server or a library
//! saw (an error body, a driver message, a connector's error) passes through
//! [`Scrubber::scrub`] before it is shown, logged or returned by an API.
//!
//! Two kinds of rules, both always applied:
//!
//! - **Known secrets** (a client secret, a service-account key, a password, every token
//!   the token manager received). A secret is matched in each of its encodings at once,
//!   character by character: raw, percent-encoded (any subset of its characters, upper or
//!   lower hex, `+` for a space: form encoding), JSON-escaped (`\"`, `\\`, `\/`, `\uXXXX`),
//!   and base64 (the whole secret; for a client, `ci:cs` as in a `Basic` header).
//! - **Shapes** that are secrets whoever holds them: whatever follows `Bearer ` or
//!   `Basic `; the values of `access_token`, `refresh_token`, `id_token`, `token`,
//!   `client_secret`, `password` and `authorization` in JSON or in a form/query; JWTs; and
//!   the userinfo of a URL (`scheme://user:pw@` becomes `scheme://********@`).
//!
//! A [`Scrubber`] is a cheap handle (clones share the same set), so that a token learned
//! by the token manager after an error path was set up is still masked there.
//! [`Scrubber::process`] is the set of the whole process: every token manager adds its
//! credentials and tokens to it, so that a text built far from any connection (a
//! connector's error in a run summary) is still scrubbed of them. It keeps the most
//! recent [`PROCESS_LIMIT`] patterns.

use std::fmt;
use std::sync::{Arc, LazyLock, RwLock};

use base64::Engine as _;
use regex::{Captures, Regex};

/// The mask printed in place of a secret.
pub use crate::credentials::MASK;

/// How many patterns the process-wide scrubber keeps (each secret is two or three; a
/// long-running server learns an access token an hour per connection).
pub const PROCESS_LIMIT: usize = 4096;

/// A set of secrets to mask, plus the shape rules. Cloning shares the set.
#[derive(Clone, Default)]
pub struct Scrubber {
    known: Arc<RwLock<Known>>,
}

#[derive(Default)]
struct Known {
    /// Longest pattern first, each with the order it was added in.
    patterns: Vec<(u64, Regex)>,
    added: u64,
    /// The most patterns kept (`None`: all).
    limit: Option<usize>,
}

impl fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.known.read().map(|k| k.patterns.len()).unwrap_or(0);
        f.debug_struct("Scrubber").field("secrets", &n).finish()
    }
}

impl Scrubber {
    /// A scrubber with only the shape rules.
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide scrubber: every token manager's credentials and tokens.
    pub fn process() -> &'static Scrubber {
        static PROCESS: LazyLock<Scrubber> = LazyLock::new(|| Scrubber {
            known: Arc::new(RwLock::new(Known {
                limit: Some(PROCESS_LIMIT),
                ..Known::default()
            })),
        });
        &PROCESS
    }

    /// A scrubber that masks each of `secrets` (empty ones are ignored).
    pub fn with_secrets<S: AsRef<str>>(secrets: impl IntoIterator<Item = S>) -> Self {
        let s = Self::new();
        for secret in secrets {
            s.add(secret.as_ref());
        }
        s
    }

    /// Masks `secret` from now on, in every encoding; also its base64.
    pub fn add(&self, secret: &str) {
        if secret.is_empty() {
            return;
        }
        let mut patterns = vec![encodings(secret)];
        patterns.extend(base64_forms(secret.as_bytes()));
        self.push(&patterns);
    }

    /// Masks a client id and secret as they travel together: each alone, and
    /// `base64(ci:cs)` of an HTTP `Basic` header (plain and with both form-encoded, as
    /// RFC 6749 §2.3.1 asks).
    pub fn add_client(&self, client_id: &str, client_secret: &str) {
        self.add(client_id);
        self.add(client_secret);
        let form = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let mut patterns = Vec::new();
        for pair in [
            format!("{client_id}:{client_secret}"),
            format!("{}:{}", form(client_id), form(client_secret)),
        ] {
            patterns.extend(base64_forms(pair.as_bytes()));
        }
        self.push(&patterns);
    }

    /// Adds the secrets of another scrubber (the patterns are shared, not copied twice).
    pub fn extend_from(&self, other: &Scrubber) {
        if Arc::ptr_eq(&self.known, &other.known) {
            return;
        }
        let theirs: Vec<Regex> = other
            .known
            .read()
            .map(|k| k.patterns.iter().map(|(_, r)| r.clone()).collect())
            .unwrap_or_default();
        if let Ok(mut mine) = self.known.write() {
            for r in theirs {
                mine.insert(r);
            }
            mine.settle();
        }
    }

    fn push(&self, patterns: &[String]) {
        let Ok(mut known) = self.known.write() else {
            return;
        };
        for p in patterns {
            if known.patterns.iter().any(|(_, k)| k.as_str() == p) {
                continue;
            }
            // Every piece is escaped or a fixed class, so the pattern compiles unless it
            // is over the regex size limit (a secret of many kilobytes): then its raw
            // text is masked at least.
            match Regex::new(p) {
                Ok(r) => known.insert(r),
                Err(_) => {
                    tracing::warn!("a secret too long to match in all its encodings");
                    if let Ok(r) = Regex::new(&regex::escape(p)) {
                        known.insert(r);
                    }
                }
            }
        }
        known.settle();
    }

    /// `text` with every known secret and every secret-shaped value masked.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        if let Ok(known) = self.known.read() {
            for (_, r) in &known.patterns {
                if r.is_match(&out) {
                    out = r.replace_all(&out, MASK).into_owned();
                }
            }
        }
        scrub_shapes(&out)
    }
}

impl Known {
    fn insert(&mut self, r: Regex) {
        if self.patterns.iter().any(|(_, k)| k.as_str() == r.as_str()) {
            return;
        }
        self.added += 1;
        self.patterns.push((self.added, r));
    }

    /// Drops the oldest patterns over the limit, then orders the rest longest first, so
    /// that a secret containing another is masked whole.
    fn settle(&mut self) {
        if let Some(limit) = self.limit
            && self.patterns.len() > limit
        {
            self.patterns
                .sort_by_key(|(seq, _)| std::cmp::Reverse(*seq));
            self.patterns.truncate(limit);
        }
        self.patterns
            .sort_by_key(|(_, r)| std::cmp::Reverse(r.as_str().len()));
    }
}

/// `text` with the secret-shaped values masked (no known secrets needed): what follows
/// `Bearer `/`Basic `, token and password values in JSON and forms, JWTs, URL userinfo.
pub fn scrub_shapes(text: &str) -> String {
    static SCHEME: LazyLock<Regex> =
        LazyLock::new(|| re(r#"(?i)\b(bearer|basic)(\s+|\+|%20)(?:[A-Za-z0-9\-._~+/=%]|\\/)+"#));
    static JSON_KEY: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r#"(?i)(\\*"(?:access_token|refresh_token|id_token|token|client_secret|password|authorization)\\*"\s*:\s*\\*")[^"\\]*"#,
        )
    });
    static FORM_KEY: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r#"(?i)\b((?:access_token|refresh_token|id_token|token|client_secret|password)\s*(?:=|%3D))[^&\s"'<>;,]*"#,
        )
    });
    static JWT: LazyLock<Regex> =
        LazyLock::new(|| re(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"));
    static USERINFO: LazyLock<Regex> =
        LazyLock::new(|| re(r#"(?i)\b([a-z][a-z0-9+.\-]*://)[^/?#\s@"'<>]+@"#));
    let out = SCHEME.replace_all(text, |c: &Captures<'_>| format!("{}{}{MASK}", &c[1], &c[2]));
    let out = JSON_KEY.replace_all(&out, |c: &Captures<'_>| format!("{}{MASK}", &c[1]));
    let out = FORM_KEY.replace_all(&out, |c: &Captures<'_>| format!("{}{MASK}", &c[1]));
    let out = JWT.replace_all(&out, MASK);
    let out = USERINFO.replace_all(&out, |c: &Captures<'_>| format!("{}{MASK}@", &c[1]));
    out.into_owned()
}

/// `url` without its userinfo (user name and password), for messages.
pub fn url_without_userinfo(url: &url::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

fn re(pattern: &str) -> Regex {
    // Only the fixed patterns above come here; the unit tests run every one of them.
    #[allow(clippy::expect_used)]
    Regex::new(pattern).expect("a fixed pattern compiles")
}

/// A pattern matching `secret` with each character raw, percent-encoded, form-encoded
/// (space as `+`) or JSON-escaped.
fn encodings(secret: &str) -> String {
    let mut p = String::new();
    for c in secret.chars() {
        let mut alts = vec![regex::escape(c.encode_utf8(&mut [0; 4]))];
        let mut bytes = [0; 4];
        let pct: String = c
            .encode_utf8(&mut bytes)
            .bytes()
            .map(|b| format!("%{}{}", hex_class(b >> 4), hex_class(b & 0xf)))
            .collect();
        alts.push(pct);
        let mut units = [0u16; 2];
        let json: String = c
            .encode_utf16(&mut units)
            .iter()
            .map(|u| {
                format!(
                    r"\\u{}{}{}{}",
                    hex_class((u >> 12) as u8 & 0xf),
                    hex_class((u >> 8) as u8 & 0xf),
                    hex_class((u >> 4) as u8 & 0xf),
                    hex_class(*u as u8 & 0xf)
                )
            })
            .collect();
        alts.push(json);
        match c {
            ' ' => alts.push(r"\+".into()),
            '"' | '\\' | '/' => alts.push(format!(r"\\{}", regex::escape(&c.to_string()))),
            '\n' => alts.push(r"\\n".into()),
            '\t' => alts.push(r"\\t".into()),
            '\r' => alts.push(r"\\r".into()),
            _ => {}
        }
        p.push_str("(?:");
        p.push_str(&alts.join("|"));
        p.push(')');
    }
    p
}

/// One hex digit in either case.
fn hex_class(n: u8) -> String {
    let d = char::from_digit(u32::from(n), 16).unwrap_or('0');
    if d.is_ascii_alphabetic() {
        format!("[{}{}]", d, d.to_ascii_uppercase())
    } else {
        d.to_string()
    }
}

/// The base64 of `bytes` in standard and URL-safe alphabets, padding optional.
fn base64_forms(bytes: &[u8]) -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let mut out = Vec::new();
    for text in [STANDARD_NO_PAD.encode(bytes), URL_SAFE_NO_PAD.encode(bytes)] {
        // Too short and the base64 would match ordinary words.
        if text.len() >= 8 {
            out.push(format!("{}=*", regex::escape(&text)));
        }
    }
    out
}

#[cfg(test)]
mod tests;
