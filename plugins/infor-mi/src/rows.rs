//! An MI answer's rows kept beside the body they were read from ([`MiRows`]): a field's
//! text is a slice of the body (owned only when the JSON string had escapes), so a page
//! costs a few allocations, not two per field.
//!
//! Rows of one answer nearly always list the same fields in the same order, so the names
//! are kept once per distinct field list (a *shape*), and a row is its shape and its
//! values. Field types are resolved once per shape ([`MiRows::typed`]), so writing a row
//! looks no field name up.

use std::borrow::Cow;
use std::collections::HashMap;

use yoke::{Yoke, Yokeable};

use crate::{MiAnswer, MiType};
use ionport_plugin_sdk::ConnectorError;
use ionport_plugin_sdk::{EncodedKey, RowWriter};

/// The field names of rows, and the order their fields are written in.
#[derive(Debug, Default)]
pub(super) struct Shape<'a> {
    /// As the answer lists them.
    names: Vec<Cow<'a, str>>,
    /// Positions in `names`, in the order the row's fields are written.
    order: Vec<usize>,
}

/// Rows read from one body.
#[derive(Debug, Default, Yokeable)]
pub(super) struct Decoded<'a> {
    /// Whether the body was of the shape the borrowing reader decides ([`super::fast`]).
    common: bool,
    shapes: Vec<Shape<'a>>,
    /// Every row's values, one row after the other, as its shape lists the names.
    values: Vec<Cow<'a, str>>,
    /// Per row: its shape and the position of its first value.
    rows: Vec<(usize, usize)>,
}

/// How a row's fields are ordered when written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Order {
    /// By name, the last of a repeated name counting: as a v2 record read into a map.
    ByName,
    /// As answered, repeated names kept: as v1 `NameValue` lists are read.
    AsAnswered,
}

/// Builds [`Decoded`] one field at a time, matching each row against the previous row's
/// shape, so the names of a row are compared, never stored again, while they repeat.
pub(super) struct Builder<'a> {
    out: Decoded<'a>,
    order: Order,
    /// The previous row's shape.
    current: Option<usize>,
    /// Fields of the row being read.
    pos: usize,
    /// The names of the row being read once they left `current` (reused across rows).
    own: Vec<Cow<'a, str>>,
    diverged: bool,
}

impl<'a> Builder<'a> {
    pub(super) fn new(order: Order) -> Self {
        Self {
            out: Decoded::default(),
            order,
            current: None,
            pos: 0,
            own: Vec::new(),
            diverged: false,
        }
    }

    pub(super) fn reserve(&mut self, rows: usize) {
        let per_row = self.current.map_or(0, |s| self.out.shapes[s].names.len());
        self.out.rows.reserve(rows);
        self.out.values.reserve(rows * per_row);
    }

    pub(super) fn field(&mut self, name: Cow<'a, str>, value: Cow<'a, str>) {
        if self.diverged {
            self.own.push(name);
        } else {
            let names = self
                .current
                .map_or(&[][..], |s| &self.out.shapes[s].names[..]);
            if names.get(self.pos) != Some(&name) {
                self.diverged = true;
                self.own.clear();
                self.own.extend(names[..self.pos].iter().cloned());
                self.own.push(name);
            }
        }
        self.pos += 1;
        self.out.values.push(value);
    }

    pub(super) fn end_row(&mut self) {
        let start = self.out.values.len() - self.pos;
        let same = self
            .current
            .filter(|&s| !self.diverged && self.out.shapes[s].names.len() == self.pos);
        let shape = match same {
            Some(s) => s,
            None => {
                if !self.diverged {
                    // A row that lists a prefix of the previous row's names.
                    let names = self
                        .current
                        .map_or(&[][..], |s| &self.out.shapes[s].names[..]);
                    self.own.clear();
                    self.own.extend(names[..self.pos].iter().cloned());
                }
                self.shape_of_own()
            }
        };
        self.out.rows.push((shape, start));
        self.current = Some(shape);
        self.pos = 0;
        self.diverged = false;
    }

    /// The shape with the names in `own`: one seen before, or a new one.
    fn shape_of_own(&mut self) -> usize {
        if let Some(s) = self.out.shapes.iter().position(|s| s.names == self.own) {
            return s;
        }
        let names = std::mem::take(&mut self.own);
        let order = order_of(&names, self.order);
        self.out.shapes.push(Shape { names, order });
        self.out.shapes.len() - 1
    }

    pub(super) fn finish(mut self) -> Decoded<'a> {
        self.out.common = true;
        self.out
    }
}

impl<'a> Decoded<'a> {
    fn row(&self, i: usize) -> Option<MiRow<'_>> {
        let &(shape, start) = self.rows.get(i)?;
        let shape = self.shapes.get(shape)?;
        Some(MiRow {
            shape,
            values: self.values.get(start..start + shape.names.len())?,
        })
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = MiRow<'_>> {
        (0..self.rows.len()).filter_map(|i| self.row(i))
    }
}

fn order_of(names: &[Cow<'_, str>], order: Order) -> Vec<usize> {
    let mut positions: Vec<usize> = (0..names.len()).collect();
    if order == Order::AsAnswered || names.windows(2).all(|w| w[0] < w[1]) {
        return positions;
    }
    // Stable: of a repeated name, the last position ends its run and is the one kept.
    positions.sort_by(|&a, &b| names[a].cmp(&names[b]));
    let mut kept: Vec<usize> = Vec::with_capacity(positions.len());
    for p in positions {
        match kept.last_mut() {
            Some(last) if names[*last] == names[p] => *last = p,
            _ => kept.push(p),
        }
    }
    kept
}

/// The rows of one MI answer, borrowing from its body. Made by [`super::MiCall::parse_rows`].
pub struct MiRows {
    rows: Yoke<Decoded<'static>, Vec<u8>>,
    /// Field types from the answer's metadata (v1 only).
    types: HashMap<String, MiType>,
}

impl std::fmt::Debug for MiRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiRows")
            .field("rows", self.rows.get())
            .field("types", &self.types)
            .finish()
    }
}

impl MiRows {
    /// Reads `body` with `decode`; when it is not of the shape `decode` reads, gives the
    /// body back for the general reader.
    pub(super) fn borrowing(
        body: Vec<u8>,
        decode: impl for<'b> FnOnce(&'b [u8]) -> Option<Decoded<'b>>,
    ) -> Result<Self, Vec<u8>> {
        let rows: Yoke<Decoded<'static>, Vec<u8>> =
            Yoke::attach_to_cart(body, |b| decode(b).unwrap_or_default());
        if rows.get().common {
            Ok(Self {
                rows,
                types: HashMap::new(),
            })
        } else {
            Err(rows.into_backing_cart())
        }
    }

    /// Rows read the general way, owned, their fields in the order that reader gave them.
    pub(super) fn owned(answer: MiAnswer) -> Self {
        let rows = Yoke::attach_to_cart(Vec::new(), move |_| {
            let mut b = Builder::new(Order::AsAnswered);
            b.reserve(answer.rows.len());
            for row in answer.rows {
                for (name, value) in row {
                    b.field(Cow::Owned(name), Cow::Owned(value));
                }
                b.end_row();
            }
            b.finish()
        });
        Self {
            rows,
            types: answer.types,
        }
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.rows.get().rows.len()
    }

    /// Whether there is no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> Option<MiRow<'_>> {
        self.rows.get().row(i)
    }

    /// Every row, in the answer's order.
    pub fn iter(&self) -> impl Iterator<Item = MiRow<'_>> {
        self.rows.get().iter()
    }

    /// Field types from the answer's own metadata (v1 answers; empty for v2).
    pub fn types(&self) -> &HashMap<String, MiType> {
        &self.types
    }

    /// The rows with every field's type resolved once per shape, as [`super::typed_row`]
    /// types a field: by the answer's own metadata when it had some, else by `types`;
    /// then by `fallback`; else text.
    pub fn typed(
        self,
        types: &HashMap<String, MiType>,
        fallback: &HashMap<String, MiType>,
    ) -> TypedRows {
        let primary = if self.types.is_empty() {
            types
        } else {
            &self.types
        };
        let shape_fields = self
            .rows
            .get()
            .shapes
            .iter()
            .map(|shape| {
                shape
                    .order
                    .iter()
                    .map(|&p| {
                        let name = shape.names[p].as_ref();
                        let ty = primary
                            .get(name)
                            .or_else(|| fallback.get(name))
                            .copied()
                            .unwrap_or(MiType::Alpha);
                        (EncodedKey::new(name), ty)
                    })
                    .collect()
            })
            .collect();
        TypedRows {
            rows: self,
            shape_fields,
        }
    }
}

/// One row of [`MiRows`].
#[derive(Debug, Clone, Copy)]
pub struct MiRow<'r> {
    shape: &'r Shape<'r>,
    values: &'r [Cow<'r, str>],
}

impl<'r> MiRow<'r> {
    /// The fields as (name, text without trailing blanks), in the order they are written:
    /// by name for v2 answers (a repeated name counting once, with its last value), as
    /// answered for v1.
    pub fn fields(&self) -> impl Iterator<Item = (&'r str, &'r str)> + 'r {
        let (shape, values) = (self.shape, self.values);
        shape
            .order
            .iter()
            .map(move |&p| (shape.names[p].as_ref(), values[p].as_ref()))
    }

    /// The text of field `name`, if the row has it.
    pub fn get(&self, name: &str) -> Option<&'r str> {
        self.fields().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

/// [`MiRows`] with each shape's field types resolved ([`MiRows::typed`]).
#[derive(Debug)]
pub struct TypedRows {
    rows: MiRows,
    /// Per shape, each field's key as JSON and its type, in write order.
    shape_fields: Vec<Vec<(EncodedKey, MiType)>>,
}

impl TypedRows {
    /// The rows, untyped.
    pub fn rows(&self) -> &MiRows {
        &self.rows
    }

    /// Writes row `i` into a batch, typed as [`super::write_typed_row`] would type it.
    pub fn write(&self, i: usize, w: &mut RowWriter<'_>) -> Result<(), ConnectorError> {
        let d = self.rows.rows.get();
        let Some(&(shape, start)) = d.rows.get(i) else {
            return Err(ConnectorError::connector(format!(
                "no row {i} in an answer of {} rows",
                d.rows.len()
            )));
        };
        let s = &d.shapes[shape];
        for (&p, (key, ty)) in s.order.iter().zip(&self.shape_fields[shape]) {
            let value = &d.values[start + p];
            // Text borrowed from the body had no escapes there and needs none here.
            ty.write_encoded(w, key, value, matches!(value, Cow::Borrowed(_)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use crate::*;
    use crate::{MiCall, typed_row};
    use ionport_plugin_sdk::GatewayResponse;

    fn resp(status: u16, body: &[u8]) -> GatewayResponse {
        GatewayResponse {
            status,
            headers: vec![],
            body: body.to_vec(),
        }
    }

    fn call() -> MiCall {
        MiCall::new("CRS610MI", "LstByNumber")
    }

    fn types() -> HashMap<String, MiType> {
        HashMap::from([
            ("CONO".to_string(), MiType::Numeric),
            ("RGDT".to_string(), MiType::Date),
            ("CRLM".to_string(), MiType::Numeric),
        ])
    }

    /// Every row of `body` written as the connectors write it, each line as text.
    fn written(body: &[u8], fallback: &HashMap<String, MiType>) -> Vec<String> {
        let rows = call()
            .parse_rows(resp(200, body))
            .unwrap_or_else(|e| panic!("{e}"))
            .typed(&types(), fallback);
        (0..rows.rows().len())
            .map(|i| {
                let mut buf = Vec::new();
                let mut w = RowWriter::open(&mut buf);
                rows.write(i, &mut w).unwrap();
                w.close().unwrap();
                String::from_utf8(buf).unwrap().trim_end().to_string()
            })
            .collect()
    }

    fn v2(records: &str) -> Vec<u8> {
        format!(r#"{{"results":[{{"transaction":"LstByNumber","records":{records},"errorMessage":"","errorCode":"","errorField":"","errorType":"","notProcessed":false}}],"wasTerminated":false}}"#).into_bytes()
    }

    #[test]
    fn escaped_and_unicode_text_reads_unescaped_and_trimmed_at_the_end() {
        let body = v2(
            r#"[{"CUNO":"A\"B\\C\n\t  ","CUNM":"Z\u00fcrich \u2603 ","TOWN":"Zürich  ","CSCD":"日本","K\u0045Y":" x"}]"#,
        );
        let rows = call().parse_rows(resp(200, &body)).unwrap();
        let row = rows.row(0).unwrap();
        let fields: Vec<(&str, &str)> = row.fields().collect();
        assert_eq!(
            fields,
            [
                ("CSCD", "日本"),
                ("CUNM", "Zürich ☃"),
                ("CUNO", "A\"B\\C"),
                ("KEY", " x"),
                ("TOWN", "Zürich"),
            ]
        );
        // Written: text trimmed on both sides, escaped again as JSON.
        assert_eq!(
            written(&body, &HashMap::new()),
            [r#"{"CSCD":"日本","CUNM":"Zürich ☃","CUNO":"A\"B\\C","KEY":"x","TOWN":"Zürich"}"#]
        );
    }

    #[test]
    fn empty_null_and_missing_fields() {
        let body = v2(
            r#"[{"CONO":"100","CUNO":"C1","CUNM":"","RGDT":"","CRLM":null},{"CONO":"   ","CUNO":"C2"},{}]"#,
        );
        assert_eq!(
            written(&body, &HashMap::new()),
            [
                r#"{"CONO":100,"CRLM":null,"CUNM":null,"CUNO":"C1","RGDT":null}"#,
                r#"{"CONO":null,"CUNO":"C2"}"#,
                "{}",
            ]
        );
        let rows = call().parse_rows(resp(200, &body)).unwrap();
        let second = rows.row(1).unwrap();
        assert_eq!(second.get("CUNO"), Some("C2"));
        assert_eq!(second.get("CUNM"), None);
        assert_eq!(rows.row(0).unwrap().get("CRLM"), Some(""));
        assert!(rows.row(3).is_none());
    }

    #[test]
    fn types_follow_the_names_when_the_field_order_changes() {
        let fallback = HashMap::from([("CUTP".to_string(), MiType::Numeric)]);
        // Within one page: the order changes, a field goes missing, one is added, a name
        // is repeated (the last counts).
        let one_page = v2(r#"[{"CONO":"1","CUNO":"A","RGDT":"20260131","CUTP":"5"},
                {"RGDT":"20250101","CONO":"2","CUNO":"B","CUTP":"6"},
                {"CUNO":"C","CONO":"3"},
                {"CONO":"4","CUNO":"D","RGDT":"0","CUTP":"7","CRLM":"12,5"},
                {"CONO":"5","CUNO":"E","CONO":"6"}]"#);
        let expected = [
            r#"{"CONO":1,"CUNO":"A","CUTP":5,"RGDT":"2026-01-31"}"#,
            r#"{"CONO":2,"CUNO":"B","CUTP":6,"RGDT":"2025-01-01"}"#,
            r#"{"CONO":3,"CUNO":"C"}"#,
            r#"{"CONO":4,"CRLM":12.5,"CUNO":"D","CUTP":7,"RGDT":null}"#,
            r#"{"CONO":6,"CUNO":"E"}"#,
        ];
        assert_eq!(written(&one_page, &fallback), expected);
        // Between pages: each page is typed by its own names.
        let first = v2(r#"[{"CONO":"1","CUNO":"A","RGDT":"20260131","CUTP":"5"}]"#);
        let second = v2(r#"[{"CUTP":"6","RGDT":"20250101","CUNO":"B","CONO":"2"}]"#);
        assert_eq!(written(&first, &fallback), expected[..1]);
        assert_eq!(written(&second, &fallback), expected[1..2]);
    }

    #[test]
    fn borrowed_rows_write_what_the_general_reader_and_typed_row_make() {
        let fallback = HashMap::from([("N".to_string(), MiType::Numeric)]);
        for records in [
            r#"[{"B":" b ","A":"a  ","N":1.0,"I":-0,"Z":null,"T":true,"O":{"x":[1]}}]"#,
            r#"[{"K":"1","K":"2","A":"\u00e9\n"},{"A":"x","K":"3"},{"K":"4"}]"#,
            r#"[{"CONO":"100","RGDT":"20260131","N":"12,50"},{"RGDT":"x","CONO":"1e3"}]"#,
            "[{\"A\":\"\u{a0}x\u{3000}\",\"N\":\"\u{2003}12 \",\"B\":\"\\u00a0y\"}]",
        ] {
            let body = v2(records);
            let general = call().parse_general(&resp(200, &body)).unwrap();
            let oracle: Vec<Value> = general
                .rows
                .iter()
                .map(|row| Value::Object(typed_row(row, &types(), &fallback)))
                .collect();
            let got: Vec<Value> = written(&body, &fallback)
                .iter()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(got, oracle, "{records}");
        }
    }

    #[test]
    fn a_v1_answer_keeps_its_order_and_its_own_types() {
        let body = br#"{"Program":"CRS610MI","Transaction":"LstByNumber","Metadata":{"Field":[{"@name":"CUNO","@type":"A"},{"@name":"CONO","@type":"N"},{"@name":"LMDT","@type":"D"}]},"MIRecord":[{"RowIndex":0,"NameValue":[{"Name":"CUNO","Value":"Y3  "},{"Name":"CONO","Value":"100"},{"Name":"LMDT","Value":"20260102"}]}]}"#;
        let rows = call().parse_rows(resp(200, body)).unwrap();
        assert_eq!(rows.types().get("CONO"), Some(&MiType::Numeric));
        // The task's types say otherwise: the answer's own metadata counts.
        let task = HashMap::from([("CONO".to_string(), MiType::Alpha)]);
        let typed = rows.typed(&task, &HashMap::new());
        let mut buf = Vec::new();
        let mut w = RowWriter::open(&mut buf);
        typed.write(0, &mut w).unwrap();
        w.close().unwrap();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "{\"CUNO\":\"Y3\",\"CONO\":100,\"LMDT\":\"2026-01-02\"}\n"
        );
        let mut buf = Vec::new();
        let mut w = RowWriter::open(&mut buf);
        assert!(typed.write(1, &mut w).is_err(), "no row 1");
    }

    #[test]
    fn an_answer_of_the_wrong_shape_is_an_error_never_rows() {
        for body in [
            &b"{}"[..],
            br#"{"results":{}}"#,
            br#"{"results":[]}"#,
            br#"{"results":[{"records":[1]}]}"#,
            br#"{"results":[{"records":{}}]}"#,
            br#"{"results":[{"transaction":"T"}]}"#,
            br#"[{"results":[{"records":[]}]}]"#,
            br#"{"results":[{"records":[]}]} x"#,
            br#"{"@odata.context":"$metadata#X","value":[]}"#,
            b"{\"results\":[{\"records\":[{\"A\":\"\xff\"}]}]}",
            b"<html>",
        ] {
            let e = call().parse_rows(resp(200, body)).unwrap_err();
            assert!(e.is_unexpected_body(), "{body:?}: {e}");
        }
        let failed = v2(r#"[]"#);
        let failed = String::from_utf8(failed)
            .unwrap()
            .replace(r#""errorCode":"""#, r#""errorCode":"XAU0008""#);
        let e = call().parse_rows(resp(200, failed.as_bytes())).unwrap_err();
        assert!(
            !e.is_unexpected_body() && e.message().contains("XAU0008"),
            "{e}"
        );
        let e = call().parse_rows(resp(500, b"boom")).unwrap_err();
        assert!(e.message().contains("HTTP 500"), "{e}");
    }

    #[test]
    fn rows_of_one_shape_share_it() {
        let body =
            v2(r#"[{"A":"1","B":"2"},{"A":"3","B":"4"},{"B":"5","A":"6"},{"A":"7","B":"8"}]"#);
        let rows = call().parse_rows(resp(200, &body)).unwrap();
        let d = rows.rows.get();
        assert_eq!(d.shapes.len(), 2, "{d:?}");
        assert_eq!(d.rows.iter().map(|r| r.0).collect::<Vec<_>>(), [0, 0, 1, 0]);
        let texts: Vec<Vec<(&str, &str)>> = rows.iter().map(|r| r.fields().collect()).collect();
        assert_eq!(
            texts,
            [
                [("A", "1"), ("B", "2")],
                [("A", "3"), ("B", "4")],
                [("A", "6"), ("B", "5")],
                [("A", "7"), ("B", "8")]
            ]
        );
    }
}
