//! A local HTTP receiver for what `ionport serve` posts out (webhooks, OpenLineage): an
//! axum server on loopback, on its own runtime, that records every request and answers
//! as told (accept, fail a number of times first, or never answer).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

/// How the receiver answers.
#[derive(Debug, Clone, Copy)]
pub enum Behaviour {
    /// 200 to everything.
    Accept,
    /// 500 to the first N requests, 200 after.
    FailFirst(usize),
    /// Never answers (holds every request open).
    Hang,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Header names lower-cased.
    pub headers: HashMap<String, String>,
    pub body: String,
    /// The receiver's clock when it arrived (seconds since the Unix epoch).
    pub at: u64,
    /// The status it was answered with (None while held open).
    pub answered: Option<u16>,
}

#[derive(Debug)]
struct Shared {
    behaviour: Behaviour,
    seen: AtomicUsize,
    held: AtomicUsize,
    received: Mutex<Vec<Received>>,
}

/// A running receiver; stopped on drop.
#[derive(Debug)]
pub struct Receiver {
    /// `http://127.0.0.1:PORT/hook`.
    pub url: String,
    shared: Arc<Shared>,
    rt: Option<tokio::runtime::Runtime>,
}

async fn receive(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let n = s.seen.fetch_add(1, Ordering::SeqCst);
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let headers = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let status = match s.behaviour {
        Behaviour::Accept => Some(StatusCode::OK),
        Behaviour::FailFirst(k) if n < k => Some(StatusCode::INTERNAL_SERVER_ERROR),
        Behaviour::FailFirst(_) => Some(StatusCode::OK),
        Behaviour::Hang => None,
    };
    if let Ok(mut r) = s.received.lock() {
        r.push(Received {
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            at,
            answered: status.map(|s| s.as_u16()),
        });
    }
    match status {
        Some(st) => st,
        None => {
            s.held.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK
        }
    }
}

impl Receiver {
    pub fn start(behaviour: Behaviour) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let shared = Arc::new(Shared {
            behaviour,
            seen: AtomicUsize::new(0),
            held: AtomicUsize::new(0),
            received: Mutex::new(Vec::new()),
        });
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("a loopback port");
        let addr = listener.local_addr().expect("its address");
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(shared.clone());
        rt.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("http://{addr}/hook"),
            shared,
            rt: Some(rt),
        }
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared
            .received
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Requests held open right now (for [`Behaviour::Hang`]).
    pub fn held(&self) -> usize {
        self.shared.held.load(Ordering::SeqCst)
    }

    /// Waits until `done` holds for the requests received, or panics after `limit`.
    pub fn wait_for(
        &self,
        limit: Duration,
        what: &str,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let start = Instant::now();
        loop {
            let r = self.received();
            if done(&r) {
                return r;
            }
            assert!(
                start.elapsed() < limit,
                "the receiver never got {what}; it got {r:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
