//! An uploaded `.ionapi` file → the connection form's credentials block, with every
//! missing or malformed key reported (not only the first).

use ionport_core::credentials::Credentials;
use serde_json::{Map, Value};

/// The keys every `.ionapi` file of a backend-service app has, and what each is.
const REQUIRED: &[(&str, &str)] = &[
    ("ti", "tenant"),
    ("ci", "client id"),
    ("cs", "client secret"),
    ("iu", "ION API base URL"),
    ("pu", "authorization server URL"),
    ("ot", "token path"),
    ("saak", "service account access key"),
    ("sask", "service account secret key"),
];

const ORIGIN: &str = "the uploaded .ionapi file";

/// What an import gave.
#[derive(Debug, Default)]
pub struct Imported {
    /// The credentials block's values (`service_url`, `token_url`, `username`,
    /// `password`, `client_id`, `client_secret`), when the file was usable.
    pub block: Option<Map<String, Value>>,
    /// Each problem, naming its key (never a value).
    pub problems: Vec<String>,
}

/// Reads the text of an `.ionapi` file.
pub fn import(text: &str) -> Imported {
    let map = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return problem("the top level is not a JSON object"),
        Err(e) => {
            return problem(&format!(
                "not JSON (line {} column {}): expected the file downloaded from Infor OS > API Gateway > Authorized Apps",
                e.line(),
                e.column()
            ));
        }
    };
    let mut problems = Vec::new();
    for (key, meaning) in REQUIRED {
        match map.get(*key) {
            None => problems.push(format!("{ORIGIN}: the key `{key}` ({meaning}) is missing")),
            Some(Value::String(s)) if s.trim().is_empty() => {
                problems.push(format!("{ORIGIN}: the key `{key}` ({meaning}) is empty"));
            }
            Some(Value::String(_)) => {}
            Some(_) => problems.push(format!(
                "{ORIGIN}: the key `{key}` ({meaning}) is not a string"
            )),
        }
    }
    if !problems.is_empty() {
        return Imported {
            block: None,
            problems,
        };
    }
    // The same checks as every other reader of .ionapi files (URLs, paths); its
    // messages name keys, never values.
    if let Err(e) = Credentials::from_ionapi_map(&map, ORIGIN) {
        return problem(&e.to_string());
    }
    let s = |k: &str| {
        map.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()
    };
    let mut block = Map::new();
    block.insert(
        "service_url".into(),
        format!("{}/{}", s("iu").trim_end_matches('/'), s("ti")).into(),
    );
    block.insert("token_url".into(), join_url(s("pu"), s("ot")).into());
    block.insert("username".into(), s("saak").into());
    block.insert("password".into(), s("sask").into());
    block.insert("client_id".into(), s("ci").into());
    block.insert("client_secret".into(), s("cs").into());
    Imported {
        block: Some(block),
        problems: Vec::new(),
    }
}

/// `pu` + `ot`, as Infor's own clients join them (one slash between).
fn join_url(base: &str, path: &str) -> String {
    if base.ends_with('/') || path.starts_with('/') {
        format!("{base}{path}")
    } else {
        format!("{base}/{path}")
    }
}

fn problem(p: &str) -> Imported {
    Imported {
        block: None,
        problems: vec![format!("{ORIGIN}: {p}")],
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_missing_key_is_named_and_no_value_is_quoted() {
        let i = import(r#"{"ti": "T", "cs": "SECRET-x", "iu": "", "pu": 3}"#);
        assert!(i.block.is_none());
        let all = i.problems.join("\n");
        for k in ["`ci`", "`iu`", "`pu`", "`ot`", "`saak`", "`sask`"] {
            assert!(all.contains(k), "{k} in {all}");
        }
        assert!(!all.contains("SECRET-x"));
        assert!(import("nope").problems[0].contains("not JSON"));
    }

    #[test]
    fn a_whole_file_fills_the_block() {
        let i = import(
            r#"{"ti": "T", "ci": "T~c", "cs": "s", "iu": "https://h/", "pu": "https://sso/T/as/",
                "ot": "token.oauth2", "saak": "T#a", "sask": "p"}"#,
        );
        let b = i.block.unwrap();
        assert_eq!(b["service_url"], "https://h/T");
        assert_eq!(b["token_url"], "https://sso/T/as/token.oauth2");
        assert_eq!(b["password"], "p");
    }
}
