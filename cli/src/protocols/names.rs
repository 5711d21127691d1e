//! Stream names that are file names on every platform.
//!
//! Targets name files (and tables) after a stream: `target-jsonl` writes `STREAM.jsonl`,
//! `target-csv` `STREAM.csv`. A connector's own names are not all file names: M3's
//! `table:MITMAS` has a `:`, LN's `tcapi.comBusinessPartner/BusinessPartners` a `/`,
//! both invalid on Windows (the `/` everywhere). So the protocols carry
//! [`file_safe`] of a name as the stream's id, and map an id back to the connector's
//! name with [`StreamIds`] built from the connector's discovery.
//!
//! The mapping: each of `<>:"/\|?*` and each control character becomes `__`
//! (`table:MITMAS` → `table__MITMAS`); a trailing `.` or space becomes `_`; a Windows
//! device name (`CON`, `NUL`, `COM1`, ...) before the first `.` gets a `_` after it. A
//! name that is already a file name is kept as it is, so every predefined task keeps its
//! name. Any name the mapping changed contains a `_`.

use std::borrow::Cow;
use std::collections::BTreeMap;

/// Characters Windows refuses in a file name (`/` is refused everywhere).
const INVALID: &[char] = &['<', '>', ':', '"', '/', '\\', '|', '?', '*'];

/// Windows device names, refused as a file name's stem whatever the extension.
const DEVICES: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM0", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7",
    "COM8", "COM9", "LPT0", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

fn is_invalid(c: char) -> bool {
    INVALID.contains(&c) || c.is_control()
}

/// `name` as a file name valid on Windows, macOS and Linux (see the module's rules).
pub fn file_safe(name: &str) -> Cow<'_, str> {
    let stem_len = name.find('.').unwrap_or(name.len());
    let device = DEVICES
        .iter()
        .any(|d| d.eq_ignore_ascii_case(&name[..stem_len]));
    let trailing = name.ends_with(['.', ' ']);
    if !device && !trailing && !name.contains(is_invalid) {
        return Cow::Borrowed(name);
    }
    let mut safe = String::with_capacity(name.len() + 8);
    for (i, c) in name.char_indices() {
        if i == stem_len && device {
            safe.push('_');
        }
        if is_invalid(c) {
            safe.push_str("__");
        } else {
            safe.push(c);
        }
    }
    if stem_len == name.len() && device {
        safe.push('_');
    }
    if safe.ends_with(['.', ' ']) {
        safe.pop();
        safe.push('_');
    }
    Cow::Owned(safe)
}

/// The stream ids of a connector's streams, both ways. A name that is a file name keeps
/// it; two names with one file-safe form (`a:b` and `a/b`) keep apart: the later one gets
/// `__2`, `__3`, ... in the order given.
#[derive(Debug, Default)]
pub struct StreamIds {
    to_name: BTreeMap<String, String>,
    to_id: BTreeMap<String, String>,
}

impl StreamIds {
    /// The ids of `names`, in their order.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut ids = Self::default();
        let (kept, mapped): (Vec<&str>, Vec<&str>) = names
            .into_iter()
            .partition(|n| matches!(file_safe(n), Cow::Borrowed(_)));
        for name in kept {
            ids.to_name.insert(name.to_owned(), name.to_owned());
            ids.to_id.insert(name.to_owned(), name.to_owned());
        }
        for name in mapped {
            if ids.to_id.contains_key(name) {
                continue;
            }
            let safe = file_safe(name).into_owned();
            let mut id = safe.clone();
            let mut n = 1;
            while ids.to_name.contains_key(&id) {
                n += 1;
                id = format!("{safe}__{n}");
            }
            ids.to_name.insert(id.clone(), name.to_owned());
            ids.to_id.insert(name.to_owned(), id);
        }
        ids
    }

    /// The stream id of the connector's `name`.
    pub fn id<'a>(&'a self, name: &'a str) -> Cow<'a, str> {
        match self.to_id.get(name) {
            Some(id) => Cow::Borrowed(id),
            None => file_safe(name),
        }
    }

    /// The connector's name of stream `id`, when `id` is one of these ids.
    pub fn name(&self, id: &str) -> Option<&str> {
        self.to_name.get(id).map(String::as_str)
    }
}

/// Whether `id` may be the file-safe form of another name: only those need the
/// connector's discovery to be read back.
pub fn may_be_mapped(id: &str) -> bool {
    id.contains('_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connector_names_become_file_names() {
        for (name, want) in [
            ("customers", "customers"),
            ("table:MITMAS", "table__MITMAS"),
            (
                "tcapi.comBusinessPartner/BusinessPartners",
                "tcapi.comBusinessPartner__BusinessPartners",
            ),
            (r#"a<b>c"d\e|f?g*h"#, "a__b__c__d__e__f__g__h"),
            ("tab\there", "tab__here"),
            ("CON", "CON_"),
            ("nul.items", "nul_.items"),
            ("COM1", "COM1_"),
            ("CONSOLE", "CONSOLE"),
            ("ends.", "ends_"),
            ("ends ", "ends_"),
        ] {
            assert_eq!(file_safe(name), want, "{name:?}");
            assert!(
                file_safe(name) == name || may_be_mapped(&file_safe(name)),
                "{name}"
            );
        }
    }

    #[test]
    fn names_sharing_a_file_safe_form_keep_apart() {
        let ids = StreamIds::new(["a:b", "a/b", "a__b", "items"]);
        assert_eq!(ids.id("a__b"), "a__b");
        assert_eq!(ids.id("a:b"), "a__b__2");
        assert_eq!(ids.id("a/b"), "a__b__3");
        assert_eq!(ids.name("a__b__3"), Some("a/b"));
        assert_eq!(ids.name("items"), Some("items"));
        assert_eq!(ids.name("table__X"), None);
        assert_eq!(ids.id("table:X"), "table__X");
    }
}
