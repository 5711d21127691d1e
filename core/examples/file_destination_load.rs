//! Measures a file destination under load: `N` records in commits of 1,000, with one key
//! in ten re-sent (an upsert), then `finish`. Prints the wall time per record for the
//! first and the last tenth of the commits, the `finish` time and the peak RSS (VmHWM).
//! A measurement, not a test: `cargo run -p ionport-core --example file_destination_load
//! -- jsonl 1000000 /tmp/out`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use ionport_core::destination::{self, DestinationConfig, StreamSpec};
use ionport_core::read::Records;
use serde_json::{Map, Value, json};

fn record(i: u64) -> Map<String, Value> {
    let v = json!({
        "CONO": 100,
        "ITNO": format!("ITEM{i:010}"),
        "ITDS": format!("Item number {i} of the load test"),
        "STAT": "20",
        "UNMS": "EA",
        "PRICE": (i % 9973) as f64 * 1.25,
        "ACTIVE": i % 3 != 0,
        "LMDT": 20260101 + (i % 28),
        "NOTE": "a little text so that a record is about two hundred bytes long",
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (kind, n, dir) = match args.as_slice() {
        [_, kind, n, dir] => (kind.clone(), n.parse::<u64>().expect("N"), dir.into()),
        _ => panic!("usage: file_destination_load jsonl|parquet N DIR"),
    };
    let config = match kind.as_str() {
        "jsonl" => DestinationConfig::Jsonl { path: dir },
        "parquet" => DestinationConfig::Parquet { path: dir },
        _ => panic!("jsonl or parquet"),
    };
    let spec = StreamSpec {
        name: "items".into(),
        record_schema: json!({"type": "object", "properties": {
            "CONO": {"type": "integer"}, "ITNO": {"type": "string"}, "ITDS": {"type": "string"},
            "STAT": {"type": "string"}, "UNMS": {"type": "string"}, "PRICE": {"type": "number"},
            "ACTIVE": {"type": "boolean"}, "LMDT": {"type": "integer"}, "NOTE": {"type": "string"}
        }}),
        primary_key: vec!["CONO".into(), "ITNO".into()],
        cursor_field: None,
    };
    let d = destination::open(&config).expect("open");
    d.prepare(&spec).expect("prepare");
    let batch = 1000u64;
    let commits = n.div_ceil(batch);
    let tenth = (commits / 10).max(1);
    let (mut first, mut last) = (0f64, 0f64);
    let started = Instant::now();
    for c in 0..commits {
        let t = Instant::now();
        let mut rows: Vec<_> = (c * batch..((c + 1) * batch).min(n)).map(record).collect();
        // One key in ten of the batch is an earlier record sent again.
        rows.extend((0..batch / 10).map(|j| record((c * batch + j * 7) / 2)));
        d.commit(
            &spec,
            &Records::from_maps(&rows).expect("records"),
            &json!({ "commit": c }),
        )
        .expect("commit");
        let s = t.elapsed().as_secs_f64();
        if c < tenth {
            first += s;
        } else if c >= commits - tenth {
            last += s;
        }
    }
    let t = Instant::now();
    d.finish(&spec).expect("finish");
    let finish = t.elapsed().as_secs_f64();
    let per = |s: f64| s * 1e6 / (tenth * batch) as f64;
    println!(
        "{kind} N={n}: first tenth {:.1} µs/record, last tenth {:.1} µs/record, finish {finish:.1} s, total {:.1} s, peak RSS {} MiB",
        per(first),
        per(last),
        started.elapsed().as_secs_f64(),
        peak_rss_kib() / 1024
    );
}
