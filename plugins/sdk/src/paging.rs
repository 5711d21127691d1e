//! Paging and cursors: the loops every connector writes, written once.
//!
//! - [`AdaptivePageSize`]: halves the page size when a read times out (the host's
//!   `timeout` error kind: the gateway answered 504 however often the host asked, so the
//!   page is too big for the target timeout) and grows it back after fast pages.
//! - [`KeyPager`]: paging by key for APIs without a cursor (M3 MI list transactions): ask
//!   again from the last key, drop the repeated first row, stop on a short page.
//! - [`CursorTracker`]: the high-water mark of an incremental read, compared as numbers
//!   when both sides are numbers and as text otherwise (ISO-8601 stamps sort as text).

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{ConnectorError, GatewayRequest, GatewayResponse, Host};

/// A page size that adapts to the gateway's target timeout.
///
/// The host has already retried a timed-out read (the host↔connector contract in
/// `ionport_plugin_abi`), so one timeout error is enough to halve the page, and one at
/// the minimum ends the read. A size that started below the maximum grows by half after
/// a few fast pages; after a timeout it never grows above the size it shrank to: every
/// timeout costs the gateway's whole target timeout (a minute or more), twice, which a
/// few more pages never do.
#[derive(Debug, Clone)]
pub struct AdaptivePageSize {
    current: u32,
    min: u32,
    max: u32,
    fast_streak: u32,
    grow_after: u32,
    fast_below: Duration,
}

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
        }
    }

    /// The page size to ask for now.
    pub fn get(&self) -> u32 {
        self.current
    }

    /// A read of the current size ended in `timeout` (an error of the timeout kind):
    /// halve the page, which becomes the most it grows to. At the minimum size there is
    /// nothing left to shrink: the error is returned, saying so.
    pub fn on_timeout(&mut self, timeout: ConnectorError) -> Result<(), ConnectorError> {
        self.fast_streak = 0;
        if self.current <= self.min {
            return Err(
                timeout.context(&format!("even pages of {} records time out", self.current))
            );
        }
        self.current = (self.current / 2).max(self.min);
        self.max = self.current;
        Ok(())
    }

    /// A page came back in `elapsed`: after a few fast pages in a row, grow by half.
    pub fn on_success(&mut self, elapsed: Duration) {
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

    /// Runs `page(page_size)` until it ends in something other than a timeout error:
    /// after each timeout the page shrinks ([`Self::on_timeout`]). Returns the result and
    /// the page size it was for.
    pub fn run<T>(
        &mut self,
        host: &Host,
        mut page: impl FnMut(u32) -> Result<T, ConnectorError>,
    ) -> Result<(T, u32), ConnectorError> {
        loop {
            host.check_cancelled()?;
            let size = self.get();
            let started = Instant::now();
            match page(size) {
                Ok(v) => {
                    self.on_success(started.elapsed());
                    return Ok((v, size));
                }
                Err(e) if e.is_timeout() => {
                    warn_timeout(host, size);
                    self.on_timeout(e)?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends the request `build(page_size)` builds, shrinking the page on timeouts
    /// ([`Self::run`]). Returns the response (any status) and the page size it was for.
    pub fn fetch(
        &mut self,
        host: &Host,
        build: impl Fn(u32) -> GatewayRequest,
    ) -> Result<(GatewayResponse, u32), ConnectorError> {
        self.run(host, |size| host.gateway(&build(size)))
    }
}

fn warn_timeout(host: &Host, size: u32) {
    host.warn(&format!(
        "the gateway timed out on a page of {size} records; asking for smaller pages"
    ));
}

/// An [`AdaptivePageSize`] shared by the threads of one read that keeps several pages in
/// flight: each page is asked at the size of the moment, and a timeout halves it for all.
#[derive(Debug)]
pub struct SharedPageSize(Mutex<AdaptivePageSize>);

impl SharedPageSize {
    /// Shares `size`.
    pub fn new(size: AdaptivePageSize) -> Self {
        Self(Mutex::new(size))
    }

    fn lock(&self) -> MutexGuard<'_, AdaptivePageSize> {
        // The size is plain data, valid whatever a panicking holder was doing.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The page size to ask for now.
    pub fn get(&self) -> u32 {
        self.lock().get()
    }

    /// [`AdaptivePageSize::run`] from any thread: `page(page_size)` until it ends in
    /// something other than a timeout, the size halved (once for all threads) after each
    /// timeout. The lock is not held while `page` runs. Returns the result and the size.
    pub fn run<T>(
        &self,
        host: &Host,
        mut page: impl FnMut(u32) -> Result<T, ConnectorError>,
    ) -> Result<(T, u32), ConnectorError> {
        loop {
            host.check_cancelled()?;
            let size = self.get();
            let started = Instant::now();
            match page(size) {
                Ok(v) => {
                    self.lock().on_success(started.elapsed());
                    return Ok((v, size));
                }
                Err(e) if e.is_timeout() => {
                    let mut shared = self.lock();
                    if shared.get() >= size {
                        warn_timeout(host, size);
                        shared.on_timeout(e)?;
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// [`AdaptivePageSize::fetch`] from any thread: the lock is not held during the
    /// request. Pages in flight at the old size that time out too halve it only once:
    /// a timeout at a size already halved by another page is just asked again smaller.
    pub fn fetch(
        &self,
        host: &Host,
        build: impl Fn(u32) -> GatewayRequest,
    ) -> Result<(GatewayResponse, u32), ConnectorError> {
        self.run(host, |size| host.gateway(&build(size)))
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

    fn timeout() -> ConnectorError {
        ConnectorError::timeout("GET x: timed out on 2 attempt(s)")
    }

    #[test]
    fn adaptive_page_size_grows_to_its_maximum_and_after_a_timeout_stays_halved() {
        let mut p = AdaptivePageSize::new(100, 10, 1000);
        for _ in 0..3 {
            p.on_success(Duration::from_millis(5));
        }
        assert_eq!(p.get(), 150);
        p.on_success(Duration::from_secs(11));
        for _ in 0..2 {
            p.on_success(Duration::from_millis(5));
        }
        assert_eq!(p.get(), 150, "a slow page restarts the streak");
        for _ in 0..60 {
            p.on_success(Duration::from_millis(5));
        }
        assert_eq!(p.get(), 1000, "never above the maximum");
        p.on_timeout(timeout()).expect("can shrink");
        assert_eq!(p.get(), 500);
        p.on_timeout(timeout()).expect("can shrink");
        assert_eq!(p.get(), 250);
        for _ in 0..30 {
            p.on_success(Duration::from_millis(5));
        }
        assert_eq!(p.get(), 250, "never back towards a size that timed out");
        let mut tiny = AdaptivePageSize::new(10, 10, 10);
        let e = tiny
            .on_timeout(timeout())
            .expect_err("nothing left to shrink");
        assert!(e.is_timeout(), "{e:?}");
        assert!(
            e.message().contains("even pages of 10 records"),
            "{}",
            e.message()
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
