//! The comparison, the policies' decisions, retyping and mid-run fields.

use super::mid_run::{value_type, without};
use super::*;
use crate::read::Records;
use ColumnType::{Boolean, Integer, Json, Number, Text};

fn col(name: &str, ty: ColumnType) -> Column {
    Column {
        name: name.into(),
        ty,
    }
}

#[test]
fn names_are_as_serialized() {
    for k in [
        ChangeKind::Added,
        ChangeKind::TypeChanged,
        ChangeKind::Removed,
    ] {
        assert_eq!(serde_json::to_value(k).ok(), Some(json!(k.as_str())));
    }
    for a in [
        ChangeAction::AddedColumn,
        ChangeAction::Widened,
        ChangeAction::Kept,
        ChangeAction::Dropped,
        ChangeAction::Stopped,
    ] {
        assert_eq!(serde_json::to_value(a).ok(), Some(json!(a.as_str())));
    }
}

#[test]
fn fields_met_mid_run_are_typed_by_their_values_and_dropped_as_text() {
    let records = Records::parse(
        "s",
        b"{\"K\":1,\"N\":\"a\\\"b\",\"X\":1.5}\n{\"X\":2,\"K\":2,\"B\":true,\"O\":[1]}\n".to_vec(),
    )
    .expect("records");
    let types: Vec<ColumnType> = records
        .iter()
        .flat_map(|r| r.fields().map(|(_, v)| value_type(v)).collect::<Vec<_>>())
        .collect();
    assert_eq!(
        types,
        [
            Integer,
            Text,
            Number,
            Integer,
            Integer,
            ColumnType::Boolean,
            Json
        ]
    );
    let kept = without("s", &records, &["X".to_string(), "O".to_string()]).expect("rebuilt");
    let lines: Vec<&str> = kept.iter().map(|r| r.line()).collect();
    assert_eq!(
        lines,
        ["{\"K\":1,\"N\":\"a\\\"b\"}", "{\"K\":2,\"B\":true}"]
    );
}

#[test]
fn widening_rules() {
    assert_eq!(Integer.wider(Number), Number);
    assert_eq!(Number.wider(Integer), Number);
    assert_eq!(Integer.wider(Text), Text);
    assert_eq!(Number.wider(Text), Text);
    assert_eq!(Boolean.wider(Text), Text);
    assert_eq!(Boolean.wider(Integer), Text);
    assert_eq!(Boolean.wider(Number), Text);
    assert_eq!(Text.wider(Json), Json);
    assert_eq!(Integer.wider(Json), Json);
    for t in [Text, Integer, Number, Boolean, Json] {
        assert_eq!(t.wider(t), t);
        assert!(!t.widens_to(t));
        for u in [Text, Integer, Number, Boolean, Json] {
            assert_eq!(t.wider(u), u.wider(t), "{t:?} {u:?}");
            // The wider type is at least as wide as both.
            assert_eq!(t.wider(u).wider(t), t.wider(u));
        }
    }
    assert!(Integer.widens_to(Number));
    assert!(!Number.widens_to(Integer));
    assert!(!Text.widens_to(Integer));
}

#[test]
fn comparing_finds_added_changed_and_removed_columns() {
    let existing = [col("K", Text), col("A", Integer), col("GONE", Text)];
    let read = [col("K", Text), col("A", Number), col("NEW", Text)];
    let offered: Vec<String> = ["K", "A", "NEW", "UNSELECTED"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let d = compare(&existing, &read, &offered);
    let kinds: Vec<(&str, ChangeKind)> = d.iter().map(|d| (d.column.as_str(), d.change)).collect();
    assert_eq!(
        kinds,
        [
            ("A", ChangeKind::TypeChanged),
            ("NEW", ChangeKind::Added),
            ("GONE", ChangeKind::Removed)
        ]
    );
    // A column the selection leaves out is not gone.
    let existing = [col("K", Text), col("UNSELECTED", Text)];
    assert!(compare(&existing, &[col("K", Text)], &offered).is_empty());
}

#[test]
fn evolve_adds_widens_and_keeps_wider_columns() {
    let existing = [col("K", Text), col("A", Integer), col("B", Text)];
    let read = [
        col("K", Text),
        col("A", Number),
        col("B", Integer),
        col("N", Boolean),
    ];
    let offered: Vec<String> = read.iter().map(|c| c.name.clone()).collect();
    let d = decide(
        SchemaPolicy::Evolve,
        "s",
        &read,
        compare(&existing, &read, &offered),
    )
    .expect("evolve never stops");
    assert_eq!(d.columns, None);
    // A narrowing keeps the destination's text column; the widening needs no override.
    assert_eq!(d.types, BTreeMap::from([("B".to_string(), Text)]));
    let actions: Vec<(&str, ChangeAction)> = d
        .changes
        .iter()
        .map(|c| (c.column.as_str(), c.action))
        .collect();
    assert_eq!(
        actions,
        [
            ("A", ChangeAction::Widened),
            ("B", ChangeAction::Kept),
            ("N", ChangeAction::AddedColumn)
        ]
    );
    // Boolean → integer: neither holds the other, both become text.
    let d = decide(
        SchemaPolicy::Evolve,
        "s",
        &[col("A", Integer)],
        compare(&[col("A", Boolean)], &[col("A", Integer)], &["A".into()]),
    )
    .expect("evolve");
    assert_eq!(d.types, BTreeMap::from([("A".to_string(), Text)]));
    assert_eq!(d.changes[0].action, ChangeAction::Widened);
}

#[test]
fn freeze_drops_new_fields_and_refuses_values_that_would_not_fit() {
    let existing = [col("K", Text), col("A", Number)];
    let read = [col("K", Text), col("A", Integer), col("N", Text)];
    let offered: Vec<String> = read.iter().map(|c| c.name.clone()).collect();
    let d = decide(
        SchemaPolicy::Freeze,
        "s",
        &read,
        compare(&existing, &read, &offered),
    )
    .expect("integers fit a number column");
    assert_eq!(d.columns, Some(vec!["K".to_string(), "A".to_string()]));
    assert_eq!(d.types, BTreeMap::from([("A".to_string(), Number)]));
    assert_eq!(d.changes[1].action, ChangeAction::Dropped);

    let err = decide(
        SchemaPolicy::Freeze,
        "s",
        &[col("A", Number)],
        compare(&[col("A", Integer)], &[col("A", Number)], &["A".into()]),
    )
    .expect_err("numbers do not fit an integer column");
    let text = err.to_string();
    assert!(text.contains("`A`") && text.contains("integer"), "{text}");
    assert!(text.contains("schema_changes = \"evolve\""), "{text}");
}

#[test]
fn fail_names_every_change_and_the_way_out() {
    let read = [col("K", Text), col("A", Number), col("N", Text)];
    let offered: Vec<String> = read.iter().map(|c| c.name.clone()).collect();
    let err = decide(
        SchemaPolicy::Fail,
        "table:OCUSMA",
        &read,
        compare(&[col("K", Text), col("A", Integer)], &read, &offered),
    )
    .expect_err("fail stops on any change");
    let text = err.to_string();
    for part in [
        "table:OCUSMA",
        "column `A` changed type from integer to number",
        "column `N` added (string)",
        "schema_changes = \"evolve\"",
    ] {
        assert!(text.contains(part), "{part} not in {text}");
    }
    if let DriftError::Changed { changes, .. } = &err {
        assert!(changes.iter().all(|c| c.action == ChangeAction::Stopped));
    }
    // No change, nothing to stop.
    let same = decide(SchemaPolicy::Fail, "s", &read, Vec::new()).expect("no change");
    assert_eq!(same, Decision::default());
    // What needs nothing of the destination is reported, not stopped: a column gone at
    // the source and a type its column holds stay that way on every later run.
    let existing = [col("K", Text), col("A", Text), col("GONE", Integer)];
    let read = [col("K", Text), col("A", Integer)];
    let kept = decide(
        SchemaPolicy::Fail,
        "s",
        &read,
        compare(&existing, &read, &["K".into(), "A".into()]),
    )
    .expect("nothing to take");
    assert!(kept.changes.iter().all(|c| c.action == ChangeAction::Kept));
    assert_eq!(kept.changes.len(), 2);
    assert_eq!(kept.types, BTreeMap::from([("A".to_string(), Text)]));
}

#[test]
fn retyping_a_spec_changes_only_the_named_properties() {
    let spec = TaskSpec {
        name: "s".into(),
        description: String::new(),
        record_schema: json!({"type": "object", "properties": {
            "K": {"type": "integer"}, "A": {"type": ["integer", "null"]}, "B": {"type": "string"}
        }}),
        primary_key: vec!["K".into()],
        cursor_field: None,
        sync_modes: Vec::new(),
        requests_per_1000_records: None,
    };
    let out = retype(
        &spec,
        &BTreeMap::from([("K".into(), Number), ("A".into(), Text), ("B".into(), Json)]),
    );
    assert_eq!(
        out.record_schema["properties"],
        json!({"K": {"type": "number"}, "A": {"type": ["string", "null"]}, "B": {}})
    );
}
