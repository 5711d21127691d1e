use super::*;
use crate::destination::jsonl::JsonlDestination;
use serde_json::json;

fn spec(key: bool) -> StreamSpec {
    StreamSpec {
        name: if key { "keyed" } else { "append" }.into(),
        record_schema: json!({"type": "object", "properties": {
            "id": {"type": "integer"}, "v": {"type": "string"}
        }}),
        primary_key: if key { vec!["id".into()] } else { vec![] },
        cursor_field: None,
    }
}

/// Ten commits of a window of one byte: ten segments, each with ids 0..5 and 10·c..10·c+3.
fn ten_segments(d: &JsonlDestination, s: &StreamSpec) {
    for c in 0..10i64 {
        let mut text = String::new();
        for id in (0..5).chain(10 * c..10 * c + 3) {
            text.push_str(&format!("{{\"id\":{id},\"v\":\"c{c}\"}}\n"));
        }
        let records = Records::parse(&s.name, text.into_bytes()).unwrap();
        d.commit(s, &records, &json!(c)).unwrap();
    }
}

fn listed_and_on_disk(d: &JsonlDestination, s: &StreamSpec) -> (usize, usize) {
    let files = d.stream(&s.name).unwrap();
    let files = lock(&files);
    let on_disk = std::fs::read_dir(&files.dir)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().starts_with("seg-")
        })
        .count();
    (files.saved.segments.len(), on_disk)
}

fn output(dir: &Path, s: &StreamSpec) -> Vec<Value> {
    std::fs::read_to_string(dir.join(format!("{}.jsonl", s.name)))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn many_segments_are_merged_in_runs_then_into_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = JsonlDestination::open(dir.path())
        .unwrap()
        .with_compact_window(1);
    let s = spec(true);
    ten_segments(&d, &s);
    assert_eq!(listed_and_on_disk(&d, &s), (10, 10));
    {
        let files = d.stream(&s.name).unwrap();
        let mut files = lock(&files);
        let table = d.table(&mut files, &s).unwrap().clone();
        d.merge_segments(&mut files, &table, 3).unwrap();
    }
    // 10 → runs of 3 → 4 → 2: the merged runs replaced theirs, nothing else is left.
    let (listed, on_disk) = listed_and_on_disk(&d, &s);
    assert!(listed <= 3, "{listed} segments");
    assert_eq!(on_disk, listed);
    d.finish(&s).unwrap();
    let rows = output(dir.path(), &s);
    // Ids 0..5 from every commit, the newest (c9) winning; ids 10..93 once each.
    let mut want: Vec<Value> = (0..5).map(|id| json!({"id": id, "v": "c9"})).collect();
    for c in 1..10 {
        want.extend((10 * c..10 * c + 3).map(|id| json!({"id": id, "v": format!("c{c}")})));
    }
    // Commit 0's own ids are 0..3: already among 0..5.
    let mut got = rows.clone();
    got.sort_by_key(|r| r["id"].as_i64());
    assert_eq!(got, want);
    assert_eq!(listed_and_on_disk(&d, &s), (0, 0));
}

#[test]
fn without_a_key_merged_runs_keep_every_record_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = JsonlDestination::open(dir.path())
        .unwrap()
        .with_compact_window(1);
    let s = spec(false);
    ten_segments(&d, &s);
    {
        let files = d.stream(&s.name).unwrap();
        let mut files = lock(&files);
        let table = d.table(&mut files, &s).unwrap().clone();
        d.merge_segments(&mut files, &table, 4).unwrap();
    }
    d.finish(&s).unwrap();
    let got: Vec<String> = output(dir.path(), &s)
        .iter()
        .map(|r| format!("{}{}", r["v"].as_str().unwrap(), r["id"]))
        .collect();
    let mut want = Vec::new();
    for c in 0..10i64 {
        want.extend(
            (0..5)
                .chain(10 * c..10 * c + 3)
                .map(|id| format!("c{c}{id}")),
        );
    }
    assert_eq!(got, want);
}
