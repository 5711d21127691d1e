//! The server's ceiling in this run: the task read once in process through core's
//! `read_task` into a sink that only counts (recording every gateway request), then those
//! exact requests replayed by a minimal client — one at a time and with the task's pages
//! in flight — bodies read and dropped.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hash, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ionport_core::connection::{Cancel, Connection, ConnectionSettings, CredentialSource};
use ionport_core::host::HostCallbacks;
use ionport_core::plugin::LoadedPlugin;
use ionport_core::read::{ReadHandler, Records, read_task};
use ionport_plugin_abi::wire::{ConnectionConfig, GatewayRequestHead, ReadRequest, SyncMode};
use ionport_tests::emulated::Emulated;
use serde_json::Value;

use crate::tasks::BenchTask;

pub fn read_request(task: &BenchTask, page: u32, pages_in_flight: u32) -> ReadRequest {
    ReadRequest {
        connection: ConnectionConfig {
            settings: task.settings_json(),
        },
        task: task.task.into(),
        sync_mode: SyncMode::FullRefresh,
        state: None,
        page_size: Some(page),
        pages_in_flight: Some(pages_in_flight),
        options: Value::Null,
        columns: None,
        include_deleted: false,
        partition: None,
    }
}

/// Counts what a read hands over and its distinct keys, records the head of every gateway
/// request and keeps a few batches as NDJSON (to time the runner's parsing on).
struct CountSink {
    key: Vec<String>,
    records: AtomicU64,
    keys: Mutex<(HashSet<u64>, std::hash::RandomState)>,
    heads: Mutex<Vec<GatewayRequestHead>>,
    sample: Mutex<Vec<Vec<u8>>>,
}

impl ReadHandler for CountSink {
    fn records(&self, _stream: &str, records: Records) -> Result<(), String> {
        self.records
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        {
            let mut keys = self.keys.lock().unwrap();
            let (set, state) = &mut *keys;
            for r in records.iter() {
                let mut h = state.build_hasher();
                for k in &self.key {
                    r.get(k).map(|v| v.text()).hash(&mut h);
                }
                set.insert(h.finish());
            }
        }
        let mut s = self.sample.lock().unwrap();
        if s.len() < 10 {
            let mut ndjson = Vec::new();
            for r in records.iter() {
                ndjson.extend_from_slice(r.line().as_bytes());
                ndjson.push(b'\n');
            }
            s.push(ndjson);
        }
        Ok(())
    }
    fn checkpoint(&self, _stream: &str, _state: Value) -> Result<(), String> {
        Ok(())
    }
    fn request(&self, head: &GatewayRequestHead) {
        self.heads.lock().unwrap().push(head.clone());
    }
}

pub struct Recorded {
    /// The plugin's read through core's gateway (no rate limit), seconds.
    pub seconds: f64,
    /// The same requests through core's gateway alone, one at a time, seconds (only
    /// when asked for: the stage breakdown needs it).
    pub gateway_seconds: f64,
    pub records: u64,
    pub distinct_keys: u64,
    pub heads: Vec<GatewayRequestHead>,
    pub sample: Vec<Vec<u8>>,
}

/// The task read in process through core's `read_task` into a counting sink.
pub fn record(
    emu: &Emulated,
    plugin: &Arc<LoadedPlugin>,
    ionapi: &Path,
    req: ReadRequest,
    through_gateway: bool,
) -> Recorded {
    let mut settings = ConnectionSettings::default();
    settings.gateway.rate_limit = None;
    let connection =
        Connection::open(CredentialSource::IonApiFile(ionapi.to_path_buf()), settings).unwrap();
    let key = plugin
        .task(&req.task)
        .unwrap_or_else(|| panic!("the plugin has no task {}", req.task))
        .primary_key
        .clone();
    let sink = Arc::new(CountSink {
        key,
        records: AtomicU64::new(0),
        keys: Mutex::default(),
        heads: Mutex::default(),
        sample: Mutex::default(),
    });
    let started = Instant::now();
    emu.rt
        .block_on(read_task(
            plugin,
            &connection,
            req,
            sink.clone(),
            Cancel::default(),
        ))
        .unwrap_or_else(|e| panic!("the in-process read failed: {e}"));
    let seconds = started.elapsed().as_secs_f64();
    let heads = std::mem::take(&mut *sink.heads.lock().unwrap());
    let sample = std::mem::take(&mut *sink.sample.lock().unwrap());
    // The same requests through core's gateway alone, no plugin (replayable ones only).
    let host = connection.host(emu.rt.handle().clone());
    let started = Instant::now();
    for h in heads.iter().filter(|h| through_gateway && replayable(h)) {
        let r = HostCallbacks::gateway(&host, h.clone(), Vec::new()).unwrap();
        assert!((200..300).contains(&r.status), "{}: {}", h.path, r.status);
    }
    let gateway_seconds = started.elapsed().as_secs_f64();
    let distinct_keys = sink.keys.lock().unwrap().0.len() as u64;
    Recorded {
        seconds,
        gateway_seconds,
        records: sink.records.load(Ordering::Relaxed),
        distinct_keys,
        heads,
        sample,
    }
}

/// Requests a replay can send again as they were: GETs. (A Compass job submit carries a
/// body the head does not keep and would start another job; a cancel has nothing left to
/// cancel.) The Data Lake ceiling is so the result pages and status polls, not the job's
/// own run time.
pub fn replayable(h: &GatewayRequestHead) -> bool {
    h.method.eq_ignore_ascii_case("GET")
}

/// Replays the GET requests against the emulator with `in_flight` requests at a time,
/// reading and dropping the bodies; returns seconds and bytes.
pub fn replay(emu: &Emulated, requests: &[GatewayRequestHead], in_flight: usize) -> (f64, u64) {
    let base = emu.emu.api_base();
    let requests: Arc<Vec<GatewayRequestHead>> =
        Arc::new(requests.iter().filter(|h| replayable(h)).cloned().collect());
    emu.rt.block_on(async {
        let client = reqwest::Client::new();
        let bearer = emu.bearer(&client).await;
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        // `in_flight` workers take the next request off a shared index, as a task's
        // pages in flight do.
        let workers: Vec<_> = (0..in_flight.max(1))
            .map(|_| {
                let (client, bearer, next, requests, base) = (
                    client.clone(),
                    bearer.clone(),
                    next.clone(),
                    requests.clone(),
                    base.clone(),
                );
                tokio::spawn(async move {
                    let mut bytes = 0u64;
                    while let Some(h) = requests.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let m = reqwest::Method::from_bytes(h.method.as_bytes()).unwrap();
                        let mut rb = client
                            .request(m, format!("{base}/{}", h.path.trim_start_matches('/')))
                            .query(&h.query)
                            .bearer_auth(&*bearer);
                        for (k, v) in &h.headers {
                            rb = rb.header(k, v);
                        }
                        let resp = rb.send().await.unwrap();
                        assert!(resp.status().is_success(), "{}: {}", h.path, resp.status());
                        bytes += resp.bytes().await.unwrap().len() as u64;
                    }
                    bytes
                })
            })
            .collect();
        let mut bytes = 0;
        for w in workers {
            bytes += w.await.unwrap();
        }
        (started.elapsed().as_secs_f64(), bytes)
    })
}
