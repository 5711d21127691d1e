//! The child's side: `ionport plugin-host LIB` loads one library and serves calls from
//! the host over stdin/stdout until stdin closes.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use ionport_plugin_abi::abi_stable::std_types::{RResult, RStr, RString};
use ionport_plugin_abi::wire::GatewayRequestHead;
use ionport_plugin_abi::{FfiConnectorBox, LogLevel, PluginError, RecordBatch, error_kind, load};

use super::frame::{Frame, Message, read_frame, write_frame};
use crate::host::{HostCallbacks, HostResponse, ffi_host};

/// Runs the plugin host: loads `lib` under an address-space limit of `memory_limit_mib`
/// MiB (`0`: none) and serves the host's calls over stdin/stdout. Returns when stdin
/// closes; an error when the library cannot be loaded (after telling the host).
pub fn serve_plugin_host(lib: &Path, memory_limit_mib: u64) -> Result<(), String> {
    // Frames own stdout: a plugin that prints would corrupt them, so fd 1 becomes a copy
    // of stderr and the frames go to a duplicate of the original stdout.
    let out = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| format!("duplicating stdout: {e}"))?;
    rustix::stdio::dup2_stdout(std::io::stderr().as_fd())
        .map_err(|e| format!("redirecting stdout to stderr: {e}"))?;
    let out = Arc::new(Mutex::new(BufWriter::with_capacity(
        1 << 16,
        File::from(out),
    )));
    if memory_limit_mib > 0 {
        let bytes = memory_limit_mib.saturating_mul(1 << 20);
        rustix::process::setrlimit(
            rustix::process::Resource::As,
            rustix::process::Rlimit {
                current: Some(bytes),
                maximum: Some(bytes),
            },
        )
        .map_err(|e| format!("setting the memory limit of {memory_limit_mib} MiB: {e}"))?;
    }
    let connector = match open(lib) {
        Ok(c) => c,
        Err(message) => {
            let _ = send(
                &out,
                &Message::LoadFailed {
                    message: message.clone(),
                },
                &[],
            );
            return Err(message);
        }
    };
    send(&out, &Message::Ready, &[]).map_err(|e| format!("writing to the host: {e}"))?;

    let host = Arc::new(PipeHost {
        out: out.clone(),
        pending: Mutex::new(HashMap::new()),
        next: AtomicU64::new(1),
        cancelled: AtomicBool::new(false),
    });
    let (calls_tx, calls_rx) = channel::<(String, bool, Vec<u8>)>();
    {
        let host = host.clone();
        std::thread::Builder::new()
            .name("plugin-host-reader".into())
            .spawn(move || reader(host, calls_tx))
            .map_err(|e| format!("starting the reader thread: {e}"))?;
    }
    serve_calls(&connector, &host, &out, calls_rx);
    Ok(())
}

fn open(lib: &Path) -> Result<FfiConnectorBox, String> {
    let module = load::open(lib).map_err(|e| e.to_string())?;
    match (module.new_connector())() {
        RResult::ROk(c) => Ok(c),
        RResult::RErr(e) => Err(format!(
            "{}: creating the connector failed: {e}",
            lib.display()
        )),
    }
}

type Out = Arc<Mutex<BufWriter<File>>>;

fn send(out: &Out, message: &Message, body: &[u8]) -> std::io::Result<()> {
    let mut w = out
        .lock()
        .map_err(|_| std::io::Error::other("the frame writer is poisoned"))?;
    write_frame(&mut *w, message, body)
}

fn serve_calls(
    connector: &FfiConnectorBox,
    host: &Arc<PipeHost>,
    out: &Out,
    calls: Receiver<(String, bool, Vec<u8>)>,
) {
    for (op, cancelled, body) in calls {
        host.cancelled.store(cancelled, Ordering::SeqCst);
        let input = String::from_utf8_lossy(&body);
        let callbacks: Arc<dyn HostCallbacks> = host.clone();
        let input = RStr::from_str(&input);
        let result: RResult<RString, PluginError> = match op.as_str() {
            "manifest" => connector.manifest(),
            "connection_form" => connector.connection_form(),
            "tasks" => connector.tasks(),
            "check" => connector.check(ffi_host("", callbacks), input),
            "discover" => connector.discover(ffi_host("", callbacks), input),
            "read" => connector.read(ffi_host("", callbacks), input),
            other => RResult::RErr(PluginError::new(
                error_kind::HOST,
                format!("the plugin host has no call '{other}'"),
            )),
        };
        let sent = match result {
            RResult::ROk(s) => send(out, &Message::Done, s.as_bytes()),
            RResult::RErr(e) => send(
                out,
                &Message::Failed {
                    kind: e.kind.into_string(),
                    message: e.message.into_string(),
                },
                &[],
            ),
        };
        if sent.is_err() {
            return;
        }
    }
}

/// Reads the host's frames: calls go to the serving loop, answers to the plugin thread
/// waiting for them.
fn reader(host: Arc<PipeHost>, calls: Sender<(String, bool, Vec<u8>)>) {
    let mut stdin = BufReader::with_capacity(1 << 16, std::io::stdin().lock());
    while let Ok(Some(Frame { message, body })) = read_frame(&mut stdin) {
        match message {
            Message::Call { op, cancelled } => {
                let sent = calls.send((op, cancelled, body));
                if sent.is_err() {
                    return;
                }
            }
            Message::Cancel => host.cancelled.store(true, Ordering::SeqCst),
            Message::GatewayAnswer { id, .. }
            | Message::Ack { id }
            | Message::Refused { id, .. } => {
                let waiter = host.pending.lock().ok().and_then(|mut p| p.remove(&id));
                if let Some(w) = waiter {
                    let _ = w.send(Frame { message, body });
                }
            }
            // Anything else is a child → host message: ignored here.
            _ => {}
        }
    }
    // stdin closed: waiting plugin threads get an error, the serving loop ends.
    if let Ok(mut p) = host.pending.lock() {
        p.clear();
    }
}

/// The host services inside the child: each is a frame to the host and, for those that
/// answer, a wait for the answer with the same id.
struct PipeHost {
    out: Out,
    pending: Mutex<HashMap<u64, Sender<Frame>>>,
    next: AtomicU64,
    cancelled: AtomicBool,
}

impl PipeHost {
    fn ask(&self, message: impl FnOnce(u64) -> Message, body: &[u8]) -> Result<Frame, PluginError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(id, tx);
        }
        send(&self.out, &message(id), body).map_err(gone)?;
        let frame = rx.recv().map_err(gone)?;
        match frame.message {
            Message::Refused { kind, message, .. } => Err(PluginError::new(&kind, message)),
            _ => Ok(frame),
        }
    }
}

fn gone(e: impl std::fmt::Display) -> PluginError {
    PluginError::new(error_kind::HOST, format!("the host went away: {e}"))
}

impl HostCallbacks for PipeHost {
    fn gateway(
        &self,
        head: GatewayRequestHead,
        body: Vec<u8>,
    ) -> Result<HostResponse, PluginError> {
        let frame = self.ask(|id| Message::Gateway { id, head }, &body)?;
        match frame.message {
            Message::GatewayAnswer {
                status, headers, ..
            } => Ok(HostResponse {
                status,
                headers,
                body: frame.body,
            }),
            other => Err(PluginError::new(
                error_kind::HOST,
                format!("the host answered a gateway request with {other:?}"),
            )),
        }
    }

    fn emit(&self, batch: RecordBatch) -> Result<(), PluginError> {
        let stream = batch.stream.into_string();
        let count = batch.count;
        self.ask(|id| Message::Emit { id, stream, count }, &batch.ndjson)
            .map(|_| ())
    }

    fn checkpoint(&self, state: &str) -> Result<(), PluginError> {
        self.ask(|id| Message::Checkpoint { id }, state.as_bytes())
            .map(|_| ())
    }

    fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    fn progress(&self, pages: u64) {
        let _ = send(&self.out, &Message::Progress { pages }, &[]);
    }

    fn log(&self, _plugin: &str, level: LogLevel, message: &str) {
        let level = match level {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        };
        let _ = send(
            &self.out,
            &Message::Log {
                level: level.into(),
                message: message.into(),
            },
            &[],
        );
    }
}
