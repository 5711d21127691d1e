//! Paging and cursors: the loops every connector writes, written once.
//!
//! - [`AdaptivePageSize`]: halves the page size when the gateway times out (HTTP 504: the
//!   page was too big for the target timeout) and grows it back after fast pages.
//! - [`KeyPager`]: paging by key for APIs without a cursor (M3 MI list transactions): ask
//!   again from the last key, drop the repeated first row, stop on a short page.
//! - [`CursorTracker`]: the high-water mark of an incremental read, compared as numbers
//!   when both sides are numbers and as text otherwise (ISO-8601 stamps sort as text).

use std::time::Duration;

use serde_json::Value;

use crate::{ConnectorError, GatewayRequest, GatewayResponse, Host};

/// A page size that adapts to the gateway's target timeout.
#[derive(Debug, Clone)]
pub struct AdaptivePageSize {
    current: u32,
    min: u32,
    max: u32,
    fast_streak: u32,
    grow_after: u32,
    fast_below: Duration,
    timeouts_at_min: u32,
}

/// How many timeouts in a row at the minimum page size end the read: one may be the
/// gateway's bad moment, three are a page that cannot be served.
const TIMEOUTS_AT_MIN: u32 = 3;

impl AdaptivePageSize {
    /// Starts at `initial`, stays within `[min, max]`.
    pub fn new(initial: u32, min: u32, max: u32) -> Self {
        let min = min.max(1);
        let max = max.max(min);
        Self {
            current: initial.clamp(min, max),
            min,
            max,
            fast_streak: 0,
            grow_after: 3,
            fast_below: Duration::from_secs(10),
            timeouts_at_min: 0,
        }
    }

    /// The page size to ask for now.
    pub fn get(&self) -> u32 {
        self.current
    }

    /// The gateway timed out: halve the page. Fails after a few timeouts in a row at the
    /// minimum.
    pub fn on_timeout(&mut self) -> Result<(), ConnectorError> {
        self.fast_streak = 0;
        if self.current <= self.min {
            self.timeouts_at_min += 1;
            if self.timeouts_at_min >= TIMEOUTS_AT_MIN {
                return Err(ConnectorError::gateway(format!(
                    "the gateway timed out (HTTP 504) {TIMEOUTS_AT_MIN} times in a row even for pages of {} records",
                    self.current
                )));
            }
            return Ok(());
        }
        self.current = (self.current / 2).max(self.min);
        Ok(())
    }

    /// A page came back in `elapsed`: after a few fast pages in a row, grow by half.
    pub fn on_success(&mut self, elapsed: Duration) {
        self.timeouts_at_min = 0;
        if elapsed < self.fast_below {
            self.fast_streak += 1;
            if self.fast_streak >= self.grow_after && self.current < self.max {
                self.current = (self
                    .current
                    .saturating_add(self.current / 2)
                    .max(self.current + 1))
                .min(self.max);
                self.fast_streak = 0;
            }
        } else {
            self.fast_streak = 0;
        }
    }

    /// Sends the request `build(page_size)` builds; on a 504 shrinks the page and tries
    /// again. Returns the response (any other status) and the page size it was for.
    pub fn fetch(
        &mut self,
        host: &Host,
        build: impl Fn(u32) -> GatewayRequest,
    ) -> Result<(GatewayResponse, u32), ConnectorError> {
        loop {
            host.check_cancelled()?;
            let size = self.get();
            let started = std::time::Instant::now();
            let resp = host.gateway(&build(size))?;
            if resp.status == 504 {
                host.warn(&format!(
                    "the gateway timed out on a page of {size} records; asking for smaller pages"
                ));
                self.on_timeout()?;
                continue;
            }
            self.on_success(started.elapsed());
            return Ok((resp, size));
        }
    }
}

/// Paging by key: the state of a listing that asks again from the last key it saw.
///
/// MI list transactions return records from a key onwards, including the key itself; the
/// pager drops that repeated first row and says when the listing is done (a short page).
#[derive(Debug, Clone, Default)]
pub struct KeyPager {
    last_key: Option<Vec<String>>,
    done: bool,
}

impl KeyPager {
    /// A pager starting at the beginning, or after `last_key` (resuming from a state).
    pub fn new(last_key: Option<Vec<String>>) -> Self {
        Self {
            last_key,
            done: false,
        }
    }

    /// The key to ask from (`None`: from the beginning).
    pub fn from_key(&self) -> Option<&[String]> {
        self.last_key.as_deref()
    }

    /// Whether the listing is complete.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Takes one page of `rows` asked with page size `asked`; `key_of` gives a row's key.
    /// Returns the rows that are new (the repeated first row removed) and records the last
    /// key. A page shorter than `asked` ends the listing; so does a page that brings
    /// nothing new (a key that does not advance would otherwise loop forever).
    pub fn take<T>(
        &mut self,
        mut rows: Vec<T>,
        asked: u32,
        key_of: impl Fn(&T) -> Vec<String>,
    ) -> Vec<T> {
        let fetched = rows.len();
        if let (Some(last), Some(first)) = (&self.last_key, rows.first())
            && &key_of(first) == last
        {
            rows.remove(0);
        }
        if fetched < asked as usize || rows.is_empty() {
            self.done = true;
        }
        if let Some(last) = rows.last() {
            self.last_key = Some(key_of(last));
        }
        rows
    }

    /// The last key seen (for the state).
    pub fn last_key(&self) -> Option<&[String]> {
        self.last_key.as_deref()
    }
}

/// The high-water mark of a cursor field during an incremental read.
#[derive(Debug, Clone, Default)]
pub struct CursorTracker {
    max: Option<Value>,
}

impl CursorTracker {
    /// Starts from the state's cursor value, if any.
    pub fn new(start: Option<Value>) -> Self {
        Self {
            max: start.filter(|v| !v.is_null()),
        }
    }

    /// Sees one record's cursor value.
    pub fn observe(&mut self, v: &Value) {
        if v.is_null() {
            return;
        }
        let newer = match &self.max {
            None => true,
            Some(m) => compare(v, m) == std::cmp::Ordering::Greater,
        };
        if newer {
            self.max = Some(v.clone());
        }
    }

    /// The highest value seen (or the start value).
    pub fn value(&self) -> Option<&Value> {
        self.max.as_ref()
    }
}

/// Orders cursor values: numbers numerically, anything else as text.
pub fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
        _ => text(a).cmp(&text(b)),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn adaptive_page_size_halves_on_timeout_and_grows_back() {
        let mut p = AdaptivePageSize::new(1000, 10, 1000);
        p.on_timeout().expect("can shrink");
        assert_eq!(p.get(), 500);
        p.on_timeout().expect("can shrink");
        assert_eq!(p.get(), 250);
        for _ in 0..3 {
            p.on_success(Duration::from_millis(5));
        }
        assert_eq!(p.get(), 375);
        for _ in 0..30 {
            p.on_success(Duration::from_millis(5));
        }
        assert_eq!(p.get(), 1000, "never above the maximum");
        let mut tiny = AdaptivePageSize::new(10, 10, 10);
        assert!(tiny.on_timeout().is_ok() && tiny.on_timeout().is_ok());
        assert!(
            tiny.on_timeout().is_err(),
            "the third 504 in a row at the minimum is an error"
        );
    }

    #[test]
    fn key_pager_drops_the_repeated_row_and_stops_on_a_short_page() {
        let key = |r: &u32| vec![format!("{r:03}")];
        let mut p = KeyPager::new(None);
        assert_eq!(p.take(vec![1, 2, 3], 3, key), vec![1, 2, 3]);
        assert!(!p.is_done());
        assert_eq!(p.from_key(), Some(&["003".to_string()][..]));
        assert_eq!(p.take(vec![3, 4, 5], 3, key), vec![4, 5]);
        assert!(!p.is_done());
        assert_eq!(p.take(vec![5, 6], 3, key), vec![6]);
        assert!(p.is_done());
        let mut stuck = KeyPager::new(Some(vec!["007".into()]));
        assert!(stuck.take(vec![7], 1, key).is_empty());
        assert!(
            stuck.is_done(),
            "a key that does not advance ends the listing"
        );
    }

    #[test]
    fn cursor_tracker_compares_numbers_as_numbers_and_stamps_as_text() {
        let mut c = CursorTracker::new(Some(json!(9)));
        c.observe(&json!(10));
        c.observe(&json!(2));
        assert_eq!(c.value(), Some(&json!(10)));
        let mut t = CursorTracker::new(None);
        t.observe(&json!("2026-01-02T00:00:00Z"));
        t.observe(&json!("2025-12-31T23:59:59Z"));
        assert_eq!(t.value(), Some(&json!("2026-01-02T00:00:00Z")));
    }
}
