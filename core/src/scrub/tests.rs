#![allow(clippy::unwrap_used)]
//! Oracles are written out by hand (or by a different encoder than the one the scrubber
//! uses): the scrubber never checks itself.

use super::*;

const CS: &str = "cs +/&\"\\é=x";
const CI: &str = "TENANT~client id";

fn scrubber() -> Scrubber {
    let s = Scrubber::new();
    s.add_client(CI, CS);
    s
}

#[test]
fn masks_each_encoding_of_a_secret() {
    let s = scrubber();
    let forms = [
        CS.to_string(),
        // form encoding, written out
        "cs+%2B%2F%26%22%5C%C3%A9%3Dx".to_string(),
        // percent with %20, lower-case hex, some characters left raw
        "cs%20+%2f&%22%5c%c3%a9=x".to_string(),
        // JSON-escaped by serde_json
        serde_json::to_string(CS)
            .unwrap()
            .trim_matches('"')
            .to_string(),
        // JSON-escaped with \u escapes everywhere it can
        r#"cs\u0020+\/&\u0022\\\u00e9=x"#.to_string(),
    ];
    for f in forms {
        let out = s.scrub(&format!("before {f} after"));
        assert_eq!(out, format!("before {MASK} after"), "form {f:?}");
    }
}

#[test]
fn masks_the_basic_pair_and_base64() {
    let s = scrubber();
    // base64("TENANT~client id:cs +/&\"\\é=x"), computed with `base64` of coreutils.
    let basic = "VEVOQU5UfmNsaWVudCBpZDpjcyArLyYiXMOpPXg=";
    let out = s.scrub(&format!("authorization was {basic}."));
    assert!(!out.contains(basic), "{out}");
    assert!(!out.contains(&basic[..20]), "{out}");
}

#[test]
fn masks_secret_shapes_without_knowing_them() {
    let s = Scrubber::new();
    let cases = [
        (
            "Authorization: Bearer abc.DEF-123_~+/=",
            "Authorization: Bearer ********",
        ),
        (
            "authorization=Basic%20dXNlcjpwYXNz&x=1",
            "authorization=Basic%20********&x=1",
        ),
        (
            r#"{"access_token":"tok-1","n":1}"#,
            r#"{"access_token":"********","n":1}"#,
        ),
        (
            r#"{\"refresh_token\":\"rt-2\"}"#,
            r#"{\"refresh_token\":\"********\"}"#,
        ),
        (
            "grant_type=refresh_token&refresh_token=rt-3&token_type_hint=x",
            "grant_type=refresh_token&refresh_token=********&token_type_hint=x",
        ),
        (
            "token=abc&password=p%40ss",
            "token=********&password=********",
        ),
        (
            "seen eyJhbGciOi.eyJzdWIiOiIx.c2lnbmF0dXJl here",
            "seen ******** here",
        ),
        (
            "postgres://u:pw@h:5432/db and https://x@y/",
            "postgres://********@h:5432/db and https://********@y/",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(s.scrub(input), want, "input {input:?}");
    }
}

#[test]
fn leaves_ordinary_text_alone() {
    let s = scrubber();
    let text = "M3 answered 404 Not Found for /M3/m3api-rest/v2/execute/CRS610MI (token type hint)";
    assert_eq!(s.scrub(text), text);
}

#[test]
fn clones_share_what_is_learned_later() {
    let s = Scrubber::new();
    let clone = s.clone();
    s.add("learned-later-9f");
    assert_eq!(clone.scrub("x learned-later-9f y"), format!("x {MASK} y"));
    let other = Scrubber::with_secrets(["other-7c"]);
    other.extend_from(&s);
    assert_eq!(
        other.scrub("learned-later-9f other-7c"),
        format!("{MASK} {MASK}")
    );
}

#[test]
fn userinfo_is_dropped_from_urls() {
    let u = url::Url::parse("https://user:pw@host.example/ti").unwrap();
    assert_eq!(url_without_userinfo(&u), "https://host.example/ti");
}
