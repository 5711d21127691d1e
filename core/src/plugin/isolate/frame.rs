//! The frames of the channel between the host and a plugin's process.
//!
//! A frame is two big-endian `u32` lengths, a JSON header of that first length and a raw
//! body of the second: `[head_len][body_len][head JSON][body bytes]`. The header is one
//! [`Message`]; the body carries what the in-process ABI passes as text or bytes — a
//! call's JSON input and answer (the ABI's own `wire` payloads, unchanged), a record
//! batch's NDJSON, a gateway body, a checkpoint's state — as they are, never escaped into
//! a JSON string. That is why the frames are length-prefixed and not NDJSON: a record
//! batch is itself NDJSON (its newlines would need escaping, a copy and a scan per
//! record), and a gateway body is arbitrary bytes.
//!
//! Written by hand (40 lines) rather than with `tokio-util`'s `LengthDelimitedCodec`:
//! both ends read and write blocking pipes on plain threads, and the codec is async only.

use std::io::{self, Read, Write};

use ionport_plugin_abi::wire::GatewayRequestHead;
use serde::{Deserialize, Serialize};

/// The largest header accepted (a gateway request head, a log line, an error).
pub const MAX_HEAD: u32 = 1 << 20;
/// The largest body accepted (a record batch, a gateway answer).
pub const MAX_BODY: u32 = 1 << 30;

/// One frame's header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Message {
    // Child → host.
    /// The library loaded and its connector was created.
    Ready,
    /// The library could not be loaded (the loader's refusal); the process exits.
    LoadFailed {
        /// The refusal.
        message: String,
    },
    /// `FfiHost::gateway`; body: the request body. Answered by `GatewayAnswer` or
    /// `Refused` with the same id.
    Gateway {
        /// Pairs the answer with the request (the plugin may have several in flight).
        id: u64,
        /// The request head (the ABI's wire type).
        head: GatewayRequestHead,
    },
    /// `FfiHost::emit`; body: the batch's NDJSON. Answered by `Ack` or `Refused`.
    Emit {
        /// Pairs the answer.
        id: u64,
        /// The batch's stream.
        stream: String,
        /// The plugin's count (a hint only, as in process).
        count: u64,
    },
    /// `FfiHost::checkpoint`; body: the state's JSON. Answered by `Ack` or `Refused`.
    Checkpoint {
        /// Pairs the answer.
        id: u64,
    },
    /// `FfiHost::progress` (no answer).
    Progress {
        /// Pages handed over.
        pages: u64,
    },
    /// `FfiHost::log` (no answer).
    Log {
        /// `error`, `warn`, `info`, `debug` or `trace`.
        level: String,
        /// The line.
        message: String,
    },
    /// The call returned; body: its JSON answer.
    Done,
    /// The call returned an error value.
    Failed {
        /// One of the ABI's error kinds.
        kind: String,
        /// The plugin's message.
        message: String,
    },

    // Host → child.
    /// Run one connector method (`manifest`, `connection_form`, `tasks`, `check`,
    /// `discover`, `read`); body: its JSON input (empty for the descriptor methods).
    Call {
        /// The method.
        op: String,
        /// Whether the work is already cancelled.
        cancelled: bool,
    },
    /// The work was cancelled: `FfiHost::cancelled` answers `true` from now on. Sent
    /// once, so that asking costs the plugin no round trip.
    Cancel,
    /// A gateway answer; body: the response body.
    GatewayAnswer {
        /// The request's id.
        id: u64,
        /// HTTP status.
        status: u16,
        /// Response headers.
        headers: Vec<(String, String)>,
    },
    /// A host service succeeded (emit, checkpoint).
    Ack {
        /// The request's id.
        id: u64,
    },
    /// A host service refused (the ABI's `PluginError`).
    Refused {
        /// The request's id.
        id: u64,
        /// Its kind.
        kind: String,
        /// Its message.
        message: String,
    },
}

/// A header and its body.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The header.
    pub message: Message,
    /// The body (empty for none).
    pub body: Vec<u8>,
}

impl Frame {
    /// A frame without a body.
    pub fn bare(message: Message) -> Self {
        Self {
            message,
            body: Vec::new(),
        }
    }

    /// A frame with `body`.
    pub fn with(message: Message, body: Vec<u8>) -> Self {
        Self { message, body }
    }
}

/// Writes one frame and flushes it.
pub fn write_frame(w: &mut impl Write, message: &Message, body: &[u8]) -> io::Result<()> {
    let head = serde_json::to_vec(message).map_err(io::Error::other)?;
    let head_len = u32::try_from(head.len()).map_err(io::Error::other)?;
    let body_len = u32::try_from(body.len())
        .ok()
        .filter(|n| *n <= MAX_BODY)
        .ok_or_else(|| {
            io::Error::other(format!(
                "a frame body of {} bytes is over the 1 GiB limit",
                body.len()
            ))
        })?;
    w.write_all(&head_len.to_be_bytes())?;
    w.write_all(&body_len.to_be_bytes())?;
    w.write_all(&head)?;
    w.write_all(body)?;
    w.flush()
}

/// Reads one frame; `Ok(None)` at a clean end of the stream (between frames).
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<Frame>> {
    let mut lens = [0u8; 8];
    match r.read_exact(&mut lens[..1]) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    r.read_exact(&mut lens[1..])?;
    let head_len = u32::from_be_bytes([lens[0], lens[1], lens[2], lens[3]]);
    let body_len = u32::from_be_bytes([lens[4], lens[5], lens[6], lens[7]]);
    if head_len > MAX_HEAD || body_len > MAX_BODY {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "a frame of {head_len} + {body_len} bytes is over the limits ({MAX_HEAD} + {MAX_BODY})"
            ),
        ));
    }
    let mut head = vec![0u8; head_len as usize];
    r.read_exact(&mut head)?;
    let message: Message = serde_json::from_slice(&head).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a frame header is not a message: {e}"),
        )
    })?;
    let mut body = vec![0u8; body_len as usize];
    r.read_exact(&mut body)?;
    Ok(Some(Frame { message, body }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_with_raw_bodies() {
        let mut buf = Vec::new();
        let ndjson = b"{\"a\":1}\n{\"a\":2}\n".to_vec();
        let m = Message::Emit {
            id: 7,
            stream: "s".into(),
            count: 2,
        };
        write_frame(&mut buf, &m, &ndjson).unwrap();
        write_frame(&mut buf, &Message::Done, b"{}").unwrap();
        let mut r = &buf[..];
        let f = read_frame(&mut r).unwrap().unwrap();
        assert_eq!(f.message, m);
        assert_eq!(f.body, ndjson);
        assert_eq!(read_frame(&mut r).unwrap().unwrap().message, Message::Done);
        assert!(read_frame(&mut r).unwrap().is_none());
    }

    #[test]
    fn an_oversized_or_cut_frame_is_an_error() {
        let mut buf = Vec::new();
        buf.extend_from_slice(&(MAX_HEAD + 1).to_be_bytes());
        buf.extend_from_slice(&0u32.to_be_bytes());
        assert!(read_frame(&mut &buf[..]).is_err());
        let mut buf = Vec::new();
        write_frame(&mut buf, &Message::Done, b"12345").unwrap();
        buf.truncate(buf.len() - 2);
        assert!(read_frame(&mut &buf[..]).is_err());
    }
}
