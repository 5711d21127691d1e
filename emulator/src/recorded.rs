//! The API requests the emulator served, kept for tests that check what a client asked
//! the source for (an M3 `returncols`, an EXPORTMI field list, an OData `$select`, a
//! Compass `SELECT`): method, path, decoded query and, for a Compass job, its SQL text.
//! Never a header or a credential: only requests that passed the gateway's token check
//! are kept, and the authorization server's are not. The log is bounded (the latest
//! [`MAX_RECORDED`]), so a long benchmark run does not grow it.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// How many requests the log keeps (the latest).
pub const MAX_RECORDED: usize = 10_000;

/// One API request as the emulator received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, M3 v1 matrix parameters (`;returncols=…`) included.
    pub path: String,
    /// The query string's parameters, decoded, in order.
    pub query: Vec<(String, String)>,
    /// The SQL text of a Compass job submission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
}

impl RecordedRequest {
    /// The value of query parameter `name` (the first), when present.
    #[must_use]
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The bounded log.
#[derive(Debug, Default)]
pub(crate) struct RequestLog(VecDeque<RecordedRequest>);

impl RequestLog {
    pub fn push(&mut self, r: RecordedRequest) {
        if self.0.len() == MAX_RECORDED {
            self.0.pop_front();
        }
        self.0.push_back(r);
    }

    pub fn snapshot(&self) -> Vec<RecordedRequest> {
        self.0.iter().cloned().collect()
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }
}

/// Whether a request's body is worth keeping: a Compass job's SQL.
pub(crate) fn is_compass_submit(method: &str, path: &str) -> bool {
    method == "POST" && path.trim_end_matches('/').ends_with("/compass/v2/jobs")
}
