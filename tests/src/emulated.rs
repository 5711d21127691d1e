//! An emulator on its own runtime, for tests and benches, and [`Recorder`]s of core's
//! host services connected to it.

use std::sync::Arc;

use serde_json::Value;

use crate::recorder::Recorder;

/// An emulator running on its own runtime, for tests and benches.
#[derive(Debug)]
pub struct Emulated {
    /// The running emulator (dropped before the runtime).
    pub emu: ionport_emulator::RunningEmulator,
    /// The runtime it runs on; also drives the recorders' gateway calls.
    pub rt: tokio::runtime::Runtime,
}

impl Emulated {
    /// Starts an emulator with `config` on a fresh two-thread runtime.
    pub fn start(config: ionport_emulator::EmulatorConfig) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let emu = rt
            .block_on(ionport_emulator::Emulator::start(config))
            .expect("the emulator starts");
        Self { emu, rt }
    }

    /// Core's host services on a connection from the emulator's own `.ionapi`, recorded.
    pub fn host(&self) -> Arc<Recorder> {
        self.host_with(|_| {})
    }

    /// The same, from an `.ionapi` that `edit` changed (wrong secrets, …).
    pub fn host_with(&self, edit: impl FnOnce(&mut Value)) -> Arc<Recorder> {
        let mut v = self.emu.ionapi_json();
        edit(&mut v);
        Arc::new(Recorder::open(self.rt.handle().clone(), &v))
    }

    /// An access token from a password grant with the emulator's own `.ionapi` (for
    /// benches that measure the emulator's ceiling with plain HTTP, no host in between).
    pub async fn bearer(&self, client: &reqwest::Client) -> Arc<str> {
        let ionapi = self.emu.ionapi_json();
        let s = |k: &str| ionapi[k].as_str().unwrap_or_default().to_string();
        let token: Value = client
            .post(format!("{}{}", s("pu"), s("ot")))
            .form(&[
                ("grant_type", "password".to_string()),
                ("username", s("saak")),
                ("password", s("sask")),
                ("client_id", s("ci")),
                ("client_secret", s("cs")),
            ])
            .send()
            .await
            .expect("the emulator answers a password grant")
            .json()
            .await
            .expect("a token answer");
        token["access_token"]
            .as_str()
            .expect("an access token")
            .into()
    }

    /// Calls a control endpoint (`/__emulator/{path}`) and returns its JSON answer.
    pub fn control(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!(
            "{}/__emulator/{}",
            self.emu.base_url(),
            path.trim_start_matches('/')
        );
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        self.rt.block_on(async {
            let client = reqwest::Client::new();
            let mut rb = client.request(method, &url);
            if let Some(b) = body {
                rb = rb.json(&b);
            }
            let resp = rb.send().await.expect("the control endpoint answers");
            let status = resp.status();
            let v: Value = resp.json().await.unwrap_or(Value::Null);
            assert!(status.is_success(), "{url}: HTTP {status}: {v}");
            v
        })
    }
}
