//! Finding the place of a key in the TOML text, for diagnostics.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// One step of a path into the document.
#[derive(Debug, Clone, Copy)]
pub enum Seg<'a> {
    /// A table key.
    Key(&'a str),
    /// An array index.
    Index(usize),
}

/// The parsed document with its spans.
pub struct Located<'i> {
    root: toml::Spanned<DeTable<'i>>,
}

impl<'i> Located<'i> {
    /// Parses `text`; a syntax error is returned with its span.
    pub fn parse(text: &'i str) -> Result<Self, toml::de::Error> {
        Ok(Self {
            root: DeTable::parse(text)?,
        })
    }

    /// The span of the value at `path` (or of the deepest part of it that exists).
    pub fn span(&self, path: &[Seg<'_>]) -> Option<Range<usize>> {
        let mut best = None;
        let mut current: Option<&toml::Spanned<DeValue<'i>>> = None;
        for (i, seg) in path.iter().enumerate() {
            let next = if i == 0 {
                match seg {
                    Seg::Key(k) => self
                        .root
                        .get_ref()
                        .iter()
                        .find(|(key, _)| key.get_ref().as_ref() == *k)
                        .map(|(_, v)| v),
                    Seg::Index(_) => None,
                }
            } else {
                current.and_then(|v| match seg {
                    Seg::Key(k) => v.get_ref().get(*k),
                    // A JSON pointer cannot tell an index from a numeric key.
                    Seg::Index(n) => v
                        .get_ref()
                        .get(*n)
                        .or_else(|| v.get_ref().get(n.to_string().as_str())),
                })
            };
            match next {
                Some(v) => {
                    best = Some(v.span());
                    current = Some(v);
                }
                None => break,
            }
        }
        best
    }
}
