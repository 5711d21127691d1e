//! The host's side: a plugin's processes, the calls into them and the host services
//! served back.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, BufWriter};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ionport_plugin_abi::{LogLevel, PluginError, RecordBatch, error_kind};

use super::frame::{Frame, Message, read_frame, write_frame};
use super::{CANCEL_GRACE, IsolationLimits, ProcessFailure, signal_name};
use crate::host::HostCallbacks;

/// How often a waiting call looks at the clock and the cancellation flag.
const TICK: Duration = Duration::from_millis(50);
/// Lines of a process's stderr kept for its error.
const STDERR_LINES: usize = 8;

/// Why a call into a plugin's process failed.
#[derive(Debug)]
pub enum ProcessCallError {
    /// The plugin returned an error value, as in process.
    Plugin(PluginError),
    /// The process failed (and was dropped).
    Failure(ProcessFailure),
    /// A new process failed while loading the library, before the call.
    Load(ProcessFailure),
}

/// A plugin run in child processes: one per call in progress, idle ones kept for the
/// next call, a failed one dropped (the next call starts a new one).
#[derive(Debug)]
pub struct ProcessConnector {
    lib: PathBuf,
    limits: IsolationLimits,
    idle: Mutex<Vec<Child>>,
}

impl ProcessConnector {
    /// A connector for `lib`; no process starts before the first call.
    pub fn new(lib: &Path, limits: IsolationLimits) -> Self {
        Self {
            lib: lib.to_path_buf(),
            limits,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The library.
    pub fn lib(&self) -> &Path {
        &self.lib
    }

    /// The bounds of its processes.
    pub fn limits(&self) -> &IsolationLimits {
        &self.limits
    }

    /// Runs connector method `op` with its JSON `input` in a process, serving the host's
    /// services from `host`; `plugin` names the plugin in log lines. Blocks.
    pub fn call(
        &self,
        plugin: &str,
        op: &str,
        input: &str,
        host: &Arc<dyn HostCallbacks>,
    ) -> Result<String, ProcessCallError> {
        let idle = self.idle.lock().ok().and_then(|mut v| v.pop());
        let mut child = match idle {
            Some(c) => c,
            None => self.spawn(plugin).map_err(|failure| {
                tracing::warn!(plugin, library = %self.lib.display(), "loading the library in its process: {failure}");
                ProcessCallError::Load(failure)
            })?,
        };
        match child.call(plugin, op, input, host, &self.limits) {
            Ok(r) => {
                if let Ok(mut v) = self.idle.lock() {
                    v.push(child);
                }
                r
            }
            Err(failure) => {
                tracing::warn!(plugin, library = %self.lib.display(), "{op}: {failure}; the next call starts a new process");
                Err(ProcessCallError::Failure(failure))
            }
        }
    }

    fn spawn(&self, plugin: &str) -> Result<Child, ProcessFailure> {
        let program = self.limits.program().map_err(|e| ProcessFailure::Spawn {
            program: "the running executable".into(),
            message: e.to_string(),
        })?;
        let mut proc = Command::new(&program)
            .arg("plugin-host")
            .arg(&self.lib)
            .arg("--memory-limit-mib")
            .arg(self.limits.memory_limit_mib.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| ProcessFailure::Spawn {
                program: program.display().to_string(),
                message: e.to_string(),
            })?;
        let pid = proc.id();
        let (stdin, stdout, stderr) =
            match (proc.stdin.take(), proc.stdout.take(), proc.stderr.take()) {
                (Some(i), Some(o), Some(e)) => (i, o, e),
                _ => {
                    let _ = proc.kill();
                    let _ = proc.wait();
                    return Err(ProcessFailure::Spawn {
                        program: program.display().to_string(),
                        message: "its pipes were not opened".into(),
                    });
                }
            };
        let (tx, frames) = channel();
        let reader = std::thread::Builder::new()
            .name(format!("plugin-{pid}-out"))
            .spawn(move || {
                let mut r = BufReader::with_capacity(1 << 16, stdout);
                loop {
                    match read_frame(&mut r) {
                        Ok(Some(f)) => {
                            if tx.send(Ok(f)).is_err() {
                                return;
                            }
                        }
                        Ok(None) => return,
                        Err(e) => {
                            let _ = tx.send(Err(e.to_string()));
                            return;
                        }
                    }
                }
            });
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let t = tail.clone();
        let who = plugin.to_string();
        let errs = std::thread::Builder::new()
            .name(format!("plugin-{pid}-err"))
            .spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    tracing::debug!(plugin = %who, pid, "plugin host: {line}");
                    // A backtrace (RUST_BACKTRACE set) would push the lines that say what
                    // happened (a panic message, a failed allocation) out of the tail.
                    if is_backtrace_line(&line) {
                        continue;
                    }
                    if let Ok(mut t) = t.lock() {
                        if t.len() == STDERR_LINES {
                            t.pop_front();
                        }
                        t.push_back(line.chars().take(300).collect::<String>());
                    }
                }
            });
        let mut child = Child {
            proc,
            pid,
            stdin: Arc::new(Mutex::new(Some(BufWriter::with_capacity(1 << 16, stdin)))),
            frames,
            stderr: tail,
            memory_limit_mib: self.limits.memory_limit_mib,
        };
        if reader.is_err() || errs.is_err() {
            return Err(child.kill_with(ProcessFailure::Spawn {
                program: program.display().to_string(),
                message: "its reader threads could not be started".into(),
            }));
        }
        // The library loads and its connector is created before anything else.
        match child.frames.recv_timeout(self.limits.call_timeout) {
            Ok(Ok(Frame {
                message: Message::Ready,
                ..
            })) => Ok(child),
            Ok(Ok(Frame {
                message: Message::LoadFailed { message },
                ..
            })) => {
                child.reap();
                Err(ProcessFailure::LoadRefused(message))
            }
            Ok(Ok(f)) => Err(child.kill_with(ProcessFailure::Protocol {
                pid,
                message: format!("expected Ready, got {:?}", f.message),
            })),
            Ok(Err(e)) => Err(child.kill_with(ProcessFailure::Protocol { pid, message: e })),
            Err(RecvTimeoutError::Timeout) => Err(child.kill_with(ProcessFailure::TimedOut {
                pid,
                after: self.limits.call_timeout,
            })),
            Err(RecvTimeoutError::Disconnected) => Err(child.died()),
        }
    }
}

impl Drop for ProcessConnector {
    fn drop(&mut self) {
        if let Ok(mut idle) = self.idle.lock() {
            for c in idle.drain(..) {
                c.close();
            }
        }
    }
}

type Stdin = Arc<Mutex<Option<BufWriter<ChildStdin>>>>;

#[derive(Debug)]
struct Child {
    proc: std::process::Child,
    pid: u32,
    stdin: Stdin,
    frames: Receiver<Result<Frame, String>>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    memory_limit_mib: u64,
}

fn write(stdin: &Stdin, message: &Message, body: &[u8]) -> bool {
    let Ok(mut g) = stdin.lock() else {
        return false;
    };
    match g.as_mut() {
        Some(w) => write_frame(w, message, body).is_ok(),
        None => false,
    }
}

fn refused(id: u64, e: PluginError) -> Message {
    Message::Refused {
        id,
        kind: e.kind.into_string(),
        message: e.message.into_string(),
    }
}

impl Child {
    /// One call: the request, then the process's frames until its answer, serving its
    /// host requests on the way (gateway requests each on a thread of their own, as a
    /// plugin may have several in flight; emits and checkpoints in their order).
    fn call(
        &mut self,
        plugin: &str,
        op: &str,
        input: &str,
        host: &Arc<dyn HostCallbacks>,
        limits: &IsolationLimits,
    ) -> Result<Result<String, ProcessCallError>, ProcessFailure> {
        let mut cancel_sent = host.cancelled();
        let call = Message::Call {
            op: op.to_string(),
            cancelled: cancel_sent,
        };
        if !write(&self.stdin, &call, input.as_bytes()) {
            return Err(self.died());
        }
        let outstanding = Arc::new(AtomicUsize::new(0));
        let mut last_word = Instant::now();
        let mut cancelled_at: Option<Instant> = cancel_sent.then(Instant::now);
        std::thread::scope(|scope| {
            loop {
                if !cancel_sent && host.cancelled() {
                    cancel_sent = true;
                    cancelled_at = Some(Instant::now());
                    write(&self.stdin, &Message::Cancel, &[]);
                }
                let busy = outstanding.load(Ordering::SeqCst) > 0;
                if busy {
                    last_word = Instant::now();
                }
                if let Some(at) = cancelled_at
                    && !busy
                    && at.elapsed() > CANCEL_GRACE
                    && last_word.elapsed() > CANCEL_GRACE
                {
                    self.kill();
                    return Ok(Err(ProcessCallError::Plugin(PluginError::new(
                        error_kind::CANCELLED,
                        format!(
                            "cancelled; the plugin did not stop within {} of the cancellation, so its process (pid {}) was killed",
                            humantime::format_duration(CANCEL_GRACE),
                            self.pid
                        ),
                    ))));
                }
                if !busy && last_word.elapsed() > limits.call_timeout {
                    return Err(self.kill_with(ProcessFailure::TimedOut {
                        pid: self.pid,
                        after: limits.call_timeout,
                    }));
                }
                let frame = match self.frames.recv_timeout(TICK) {
                    Ok(Ok(f)) => f,
                    Ok(Err(e)) => {
                        return Err(self.kill_with(ProcessFailure::Protocol {
                            pid: self.pid,
                            message: e,
                        }));
                    }
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return Err(self.died()),
                };
                match frame.message {
                    Message::Done => {
                        return Ok(String::from_utf8(frame.body).map_err(|e| {
                            ProcessCallError::Plugin(PluginError::new(
                                error_kind::CONNECTOR,
                                format!("the answer is not UTF-8: {e}"),
                            ))
                        }));
                    }
                    Message::Failed { kind, message } => {
                        return Ok(Err(ProcessCallError::Plugin(PluginError::new(
                            &kind, message,
                        ))));
                    }
                    Message::Gateway { id, head } => {
                        outstanding.fetch_add(1, Ordering::SeqCst);
                        let (stdin, outstanding, host) =
                            (self.stdin.clone(), outstanding.clone(), host.clone());
                        scope.spawn(move || {
                            let answer = host.gateway(head, frame.body);
                            match answer {
                                Ok(r) => write(
                                    &stdin,
                                    &Message::GatewayAnswer {
                                        id,
                                        status: r.status,
                                        headers: r.headers,
                                    },
                                    &r.body,
                                ),
                                Err(e) => write(&stdin, &refused(id, e), &[]),
                            };
                            outstanding.fetch_sub(1, Ordering::SeqCst);
                        });
                    }
                    Message::Emit { id, stream, count } => {
                        let batch = RecordBatch {
                            stream: stream.into(),
                            count,
                            ndjson: frame.body.into(),
                        };
                        let answer = match host.emit(batch) {
                            Ok(()) => Message::Ack { id },
                            Err(e) => refused(id, e),
                        };
                        write(&self.stdin, &answer, &[]);
                    }
                    Message::Checkpoint { id } => {
                        let state = String::from_utf8_lossy(&frame.body);
                        let answer = match host.checkpoint(&state) {
                            Ok(()) => Message::Ack { id },
                            Err(e) => refused(id, e),
                        };
                        write(&self.stdin, &answer, &[]);
                    }
                    Message::Progress { pages } => host.progress(pages),
                    Message::Log { level, message } => {
                        let level = match level.as_str() {
                            "error" => LogLevel::Error,
                            "warn" => LogLevel::Warn,
                            "info" => LogLevel::Info,
                            "debug" => LogLevel::Debug,
                            _ => LogLevel::Trace,
                        };
                        host.log(plugin, level, &message);
                    }
                    other => {
                        return Err(self.kill_with(ProcessFailure::Protocol {
                            pid: self.pid,
                            message: format!("unexpected message during a call: {other:?}"),
                        }));
                    }
                }
                last_word = Instant::now();
            }
        })
    }

    fn kill(&mut self) {
        let _ = self.proc.kill();
        let _ = self.proc.wait();
    }

    fn kill_with(&mut self, failure: ProcessFailure) -> ProcessFailure {
        self.kill();
        failure
    }

    fn reap(&mut self) -> Option<ExitStatus> {
        self.proc.wait().ok()
    }

    fn stderr_text(&self) -> String {
        // The stderr thread may still be reading the last lines of a process that died.
        std::thread::sleep(Duration::from_millis(20));
        self.stderr
            .lock()
            .map(|t| t.iter().cloned().collect::<Vec<_>>().join(" | "))
            .unwrap_or_default()
    }

    /// What happened to a process whose channel closed.
    fn died(&mut self) -> ProcessFailure {
        let status = self.reap();
        let stderr = self.stderr_text();
        let pid = self.pid;
        match status {
            Some(s) if s.signal().is_some() => {
                let n = s.signal().unwrap_or_default();
                if n == 6
                    && let Some(line) = stderr
                        .split(" | ")
                        .find(|l| l.contains("memory allocation of") && l.contains("failed"))
                    && self.memory_limit_mib > 0
                {
                    return ProcessFailure::MemoryLimit {
                        pid,
                        limit_mib: self.memory_limit_mib,
                        detail: line.trim().to_string(),
                    };
                }
                let (name, description) = signal_name(n);
                ProcessFailure::Signal {
                    pid,
                    name,
                    description: description.to_string(),
                    stderr,
                }
            }
            Some(s) => ProcessFailure::Exit {
                pid,
                code: s.code().unwrap_or(-1),
                stderr,
            },
            None => ProcessFailure::Exit {
                pid,
                code: -1,
                stderr,
            },
        }
    }

    /// Ends an idle process: its stdin closed, a moment to exit, then killed.
    fn close(mut self) {
        if let Ok(mut g) = self.stdin.lock() {
            g.take();
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.proc.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.kill();
    }
}

/// A line of a Rust backtrace: `stack backtrace:`, a numbered frame, a frame's `at FILE`,
/// or the note after it.
fn is_backtrace_line(line: &str) -> bool {
    let t = line.trim_start();
    if t == "stack backtrace:" || t.starts_with("at ") || t.starts_with("note: Some details") {
        return true;
    }
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && t[digits..].starts_with(':')
}
