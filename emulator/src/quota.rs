//! The per-token quota (fixed window), answered with 429 and `Retry-After`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::config::Quota;

/// Counts requests per access token in fixed windows.
#[derive(Debug, Default)]
pub(crate) struct QuotaTracker {
    windows: HashMap<String, (Instant, u32)>,
}

impl QuotaTracker {
    /// Records one request of `token`; `Err(retry_after)` when the quota is exhausted.
    pub fn hit(&mut self, token: &str, quota: Quota) -> Result<(), Duration> {
        let now = Instant::now();
        if self.windows.len() > 50_000 {
            self.windows
                .retain(|_, (start, _)| now.duration_since(*start) < quota.per);
        }
        let entry = self.windows.entry(token.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= quota.per {
            *entry = (now, 0);
        }
        if entry.1 >= quota.requests {
            return Err((entry.0 + quota.per).saturating_duration_since(now));
        }
        entry.1 += 1;
        Ok(())
    }

    pub fn clear(&mut self) {
        self.windows.clear();
    }
}
