//! A TOML document as a tree in which every key and value keeps its byte span, so that every error the
//! validator finds can be reported as `FILE:LINE:COL`, and all of them, not only the first.

use std::ops::Range;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use toml::Spanned;

/// The key under which `toml` hands a datetime to a visitor (its private convention).
const DATETIME_KEY: &str = "$__toml_private_datetime";

/// A value with its span in the source.
pub(crate) type Node = Spanned<Raw>;

/// A TOML value whose children carry spans.
#[derive(Debug)]
pub(crate) enum Raw {
    Str(String),
    Int(i64),
    Float,
    Bool,
    Datetime,
    Array(Vec<Node>),
    /// Entries in document order.
    Table(Vec<(Spanned<String>, Node)>),
}

impl Raw {
    /// The TOML type name, for "expected X, found Y" messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Raw::Str(_) => "a string",
            Raw::Int(_) => "an integer",
            Raw::Float => "a float",
            Raw::Bool => "a boolean",
            Raw::Datetime => "a datetime",
            Raw::Array(_) => "an array",
            Raw::Table(_) => "a table",
        }
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a TOML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Raw, E> {
        let _ = v;
        Ok(Raw::Bool)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
        i64::try_from(v)
            .map(Raw::Int)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw, E> {
        let _ = v;
        Ok(Raw::Float)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Raw::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            if key.get_ref() == DATETIME_KEY {
                let _text: String = map.next_value()?;
                return Ok(Raw::Datetime);
            }
            let value: Node = map.next_value()?;
            entries.push((key, value));
        }
        Ok(Raw::Table(entries))
    }
}

/// Byte offsets to 1-based line and column (columns count characters, as editors do).
pub(crate) struct LineIndex<'s> {
    src: &'s str,
    starts: Vec<usize>,
}

impl<'s> LineIndex<'s> {
    pub(crate) fn new(src: &'s str) -> Self {
        let mut starts = vec![0];
        starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { src, starts }
    }

    /// The position of byte `offset` (clamped to the source).
    pub(crate) fn position(&self, offset: usize) -> (u32, u32) {
        let offset = offset.min(self.src.len());
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        let start = self.starts[line];
        let col = self
            .src
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (
            u32::try_from(line + 1).unwrap_or(u32::MAX),
            u32::try_from(col + 1).unwrap_or(u32::MAX),
        )
    }

    pub(crate) fn span_position(&self, span: &Range<usize>) -> (u32, u32) {
        self.position(span.start)
    }
}
