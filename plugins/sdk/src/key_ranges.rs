//! Key ranges: one key-paged listing (M3 MI `Lst*`) read as several ranges side by side.
//!
//! An MI list has no cursor and no offset: it lists from a start key onwards, one page per
//! call. One task reading one page at a time at 150 ms per answer gets about 6 pages per
//! second, far below a tenant's quota. But a start key can be any string, so the listing
//! can be cut into ranges `[s_j, s_j+1)` that are read at the same time, each by its own
//! key paging, and the answers put back together.
//!
//! How the ranges are cut: the first page is read alone. Its first and last keys, read as
//! numbers (base 95 over printable ASCII), give the key density; range `j` starts at the
//! last key plus `j` times the span of [`PAGES_PER_RANGE`] and a half pages at that
//! density (the half page: evenly spread keys end a range in a page half full, not in a
//! full page followed by one that only shows the range is over). Ranges
//! are handed out in order to `pages_in_flight` readers; a range ends at the first key at
//! or past its end, or at the end of the list (a short page), after which no later range
//! is started. A range found empty (its first answer starts past its end) lets the
//! readers skip every later range that ends before that key. The density only decides how
//! well the work is balanced; which range a record belongs to is decided by comparing its
//! key's bytes with the range's bounds, so every record belongs to exactly one range.
//!
//! What it relies on: the list is ordered by the key's bytes (M3's keys are uppercase
//! text and digits, listed in that order). The first page is checked: keys not strictly
//! ascending by bytes make the read go on one page at a time; a later page out of order is
//! an error that says to set `pages_in_flight = 1`.
//!
//! A source that can also end a page at a key (EXPORTMI: `where KEY >= start and KEY <
//! end`) is read with [`read_bounded`]: a range's first request is open, as above (if
//! the range holds less than a page, its answer shows where the next keys are or where
//! the listing ends), and every later one carries the range's end, so the range's last
//! page ends at its end instead of reaching past it, and a short page ends only its range.
//!
//! Checkpoints: the caller's thread receives every page (in any range order) with a
//! *watermark*: a key such that every record at or below it has been handed over. The
//! state keeps the watermark as the last key, so a restart resumes from it exactly as a
//! sequential read would; records of later ranges already handed over are read again and
//! land once more on their primary key (destinations upsert).

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::{ConnectorError, Host};

/// How many pages (at the first page's key density) one range spans. Each range wastes
/// part of its last page (the records past its end); 8 pages keeps that near 6%.
pub const PAGES_PER_RANGE: u128 = 8;

/// One page of a listing: its rows and the page size that was asked for (a shorter page
/// ends the listing).
#[derive(Debug)]
pub struct KeyPage<R> {
    /// The rows, in the listing's order.
    pub rows: Vec<R>,
    /// The page size asked for.
    pub asked: u32,
    /// The next page's link, when the answer gives one (a listing after a key,
    /// [`crate::stream::KeyPaging::Links`]); key ranges never ask for one.
    pub next: Option<String>,
}

impl<R> KeyPage<R> {
    /// A page of `rows` asked for `asked`, without a next link.
    pub fn new(rows: Vec<R>, asked: u32) -> Self {
        Self {
            rows,
            asked,
            next: None,
        }
    }
}

/// What the caller learns with each page.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// Every record whose key is at or below this one has been handed over (`None`: no
    /// record yet beyond the read's start).
    pub watermark: Option<&'a str>,
}

/// Reads a key-paged listing with up to `pages_in_flight` pages requested at once.
///
/// - `resume`: the last key already handed over in an earlier run (exclusive start), or
///   `None` to start at the beginning;
/// - `fetch(from)`: one page listed from key `from` onwards, *including* `from` (the MI
///   rule), `None` for the start of the list; called from several threads;
/// - `key_of(row)`: the row's key;
/// - `on_page(rows, progress)`: called on the caller's thread for every page's new rows,
///   one at a time (emit and checkpoint here).
///
/// Every page fetched is reported to the host as it arrives ([`Host::report_pages`]), so
/// the host's live count ends equal to the returned one.
/// Returns the number of pages fetched once the whole listing has been handed over. With
/// `pages_in_flight` 1 the listing is read one page at a time, as before.
pub fn read<R, F, K, P>(
    host: &Host,
    pages_in_flight: usize,
    resume: Option<String>,
    fetch: F,
    key_of: K,
    on_page: P,
) -> Result<u64, ConnectorError>
where
    R: Send,
    F: Fn(Option<&str>) -> Result<KeyPage<R>, ConnectorError> + Sync,
    K: Fn(&R) -> &str + Sync,
    P: FnMut(Vec<R>, Progress<'_>) -> Result<(), ConnectorError>,
{
    let source = Source {
        fetch: |from: Option<&str>, _end: Option<&str>| fetch(from),
        bounded: false,
    };
    run(host, pages_in_flight, resume, &source, key_of, on_page)
}

/// [`read`] for a source that can also end a page before a key: `fetch(from, end)` lists
/// from `from` (included, `None`: the start) up to `end` (excluded, `None`: the end of
/// the listing). A page shorter than asked ends its range only; the end of the listing is
/// learnt from a range's first request, which is sent without its end (see the module's
/// docs).
pub fn read_bounded<R, F, K, P>(
    host: &Host,
    pages_in_flight: usize,
    resume: Option<String>,
    fetch: F,
    key_of: K,
    on_page: P,
) -> Result<u64, ConnectorError>
where
    R: Send,
    F: Fn(Option<&str>, Option<&str>) -> Result<KeyPage<R>, ConnectorError> + Sync,
    K: Fn(&R) -> &str + Sync,
    P: FnMut(Vec<R>, Progress<'_>) -> Result<(), ConnectorError>,
{
    let source = Source {
        fetch,
        bounded: true,
    };
    run(host, pages_in_flight, resume, &source, key_of, on_page)
}

/// A listing's pages: `fetch(from, end)`, and whether it honours `end`.
struct Source<F> {
    fetch: F,
    bounded: bool,
}

impl<F> Source<F> {
    /// The end to send with a range's request: only to a source that honours it.
    fn end<'e>(&self, end: Option<&'e str>) -> Option<&'e str> {
        end.filter(|_| self.bounded)
    }
}

fn run<R, F, K, P>(
    host: &Host,
    pages_in_flight: usize,
    resume: Option<String>,
    source: &Source<F>,
    key_of: K,
    mut on_page: P,
) -> Result<u64, ConnectorError>
where
    R: Send,
    F: Fn(Option<&str>, Option<&str>) -> Result<KeyPage<R>, ConnectorError> + Sync,
    K: Fn(&R) -> &str + Sync,
    P: FnMut(Vec<R>, Progress<'_>) -> Result<(), ConnectorError>,
{
    host.check_cancelled()?;
    let fetch = |from: Option<&str>| (source.fetch)(from, None);
    let first = fetch(resume.as_deref())?;
    let mut pages = 1u64;
    host.report_pages(1);
    let short = first.rows.len() < first.asked as usize;
    let rows = after(first.rows, resume.as_deref(), &key_of);
    let plan = if pages_in_flight > 1 && !short {
        Plan::from_page(&rows, first.asked, &key_of)
    } else {
        None
    };
    let (Some(plan), Some(last)) = (plan, rows.last().map(|r| key_of(r).to_string())) else {
        if pages_in_flight > 1 && !short {
            host.debug(
                "key ranges: the first page's keys give no range plan; reading one page at a time",
            );
        }
        return sequential(
            host,
            resume,
            rows,
            short,
            pages,
            &fetch,
            &key_of,
            &mut on_page,
        );
    };
    on_page(
        rows,
        Progress {
            watermark: Some(&last),
        },
    )?;
    pages += parallel(
        host,
        pages_in_flight,
        plan,
        last,
        source,
        &key_of,
        &mut on_page,
    )?;
    Ok(pages)
}

/// The rows of `rows` after key `from` (MI repeats the start key's row).
fn after<R>(mut rows: Vec<R>, from: Option<&str>, key_of: &impl Fn(&R) -> &str) -> Vec<R> {
    if let (Some(from), Some(first)) = (from, rows.first())
        && key_of(first) == from
    {
        rows.remove(0);
    }
    rows
}

#[allow(clippy::too_many_arguments)]
fn sequential<R>(
    host: &Host,
    resume: Option<String>,
    mut rows: Vec<R>,
    mut done: bool,
    mut pages: u64,
    fetch: &impl Fn(Option<&str>) -> Result<KeyPage<R>, ConnectorError>,
    key_of: &impl Fn(&R) -> &str,
    on_page: &mut impl FnMut(Vec<R>, Progress<'_>) -> Result<(), ConnectorError>,
) -> Result<u64, ConnectorError> {
    let mut last = resume;
    loop {
        // A page that brings nothing new ends the listing: a key that does not advance
        // would otherwise loop forever.
        done |= rows.is_empty();
        if let Some(r) = rows.last() {
            last = Some(key_of(r).to_string());
        }
        on_page(
            rows,
            Progress {
                watermark: last.as_deref(),
            },
        )?;
        if done {
            return Ok(pages);
        }
        host.check_cancelled()?;
        let page = fetch(last.as_deref())?;
        pages += 1;
        host.report_pages(1);
        done = page.rows.len() < page.asked as usize;
        rows = after(page.rows, last.as_deref(), key_of);
    }
}

/// Keys as numbers, to cut the key space: base 95 over `' '..='~'`, the first `digits`
/// bytes. The order of the numbers is the order of the keys' bytes.
#[derive(Debug, Clone)]
struct Plan {
    /// The first page's last key, as a number: range 1 starts one width after it.
    base: u128,
    /// The first width: [`PAGES_PER_RANGE`] and a half pages at the first page's key density.
    width: u128,
    digits: usize,
    /// Records a range should hold ([`PAGES_PER_RANGE`] and a half pages).
    target: u64,
}

impl Plan {
    const MAX_DIGITS: usize = 19; // 95^19 < 2^128

    fn from_page<R>(rows: &[R], asked: u32, key_of: &impl Fn(&R) -> &str) -> Option<Self> {
        let (first, last) = (key_of(rows.first()?), key_of(rows.last()?));
        let ascending = rows
            .windows(2)
            .all(|w| key_of(&w[0]).as_bytes() < key_of(&w[1]).as_bytes());
        if rows.len() < 2 || !ascending {
            return None;
        }
        let digits = rows
            .iter()
            .map(|r| key_of(r).len())
            .max()?
            .min(Self::MAX_DIGITS);
        let (lo, hi) = (Self::number(first, digits), Self::number(last, digits));
        let per_record = (hi - lo) / (rows.len() as u128 - 1);
        let target = u64::from(asked) * PAGES_PER_RANGE as u64 + u64::from(asked / 2);
        let width = per_record.checked_mul(u128::from(target))?;
        (width > 0).then_some(Self {
            base: hi,
            width,
            digits,
            target,
        })
    }

    fn number(key: &str, digits: usize) -> u128 {
        let mut bytes = key.bytes();
        (0..digits).fold(0u128, |n, _| {
            let d = bytes.next().map_or(0, |b| b.clamp(b' ', b'~') - b' ');
            n * 95 + u128::from(d)
        })
    }

    fn key(n: u128, digits: usize) -> String {
        let mut out = vec![b' '; digits];
        let mut n = n;
        for slot in out.iter_mut().rev() {
            *slot = b' ' + (n % 95) as u8;
            n /= 95;
        }
        String::from_utf8_lossy(&out).trim_end().to_string()
    }

    /// The number one past the last key of `digits` bytes.
    fn space(&self) -> u128 {
        95u128.pow(self.digits as u32)
    }

    /// `n` as a key, `None` at or past the end of the key space (an open end).
    fn bound(&self, n: Option<u128>) -> Option<String> {
        n.filter(|n| *n < self.space())
            .map(|n| Self::key(n, self.digits))
    }
}

/// What a reader sends the caller's thread.
enum Msg<R> {
    Page {
        range: u64,
        rows: Vec<R>,
        last: Option<String>,
        range_done: bool,
    },
    Failed(ConnectorError),
}

/// The ranges still to hand out, shared by the readers. Ranges are handed out in key
/// order, each starting where the one before ends; the width of the next one follows
/// what the finished ones held, since the first page's density can be far off (keys of
/// digits leave most of the byte space empty).
struct Dispatch {
    /// The index of the next range.
    next: u64,
    /// Where the next range starts.
    start: u128,
    width: u128,
    /// The last range (open to the end of the key space) was handed out.
    exhausted: bool,
    /// The listing's last key, once a short page has shown it: no range starting past
    /// it has records. (A short page can end past its own range's end, so the range it
    /// was read for says nothing about the ranges after it.)
    list_end: Option<String>,
    stop: bool,
}

impl Dispatch {
    /// A range found empty up to `key` (its first key at or past its end): nothing lies
    /// between, so the next range may start there.
    fn skip_to(&mut self, plan: &Plan, key: &str) {
        self.start = self.start.max(Plan::number(key, plan.digits));
    }

    /// A range held `records`: widen the next ranges if it held far fewer than a range
    /// should, narrow them if far more.
    fn observe(&mut self, plan: &Plan, records: u64) {
        if records < plan.target / 4 {
            self.width = self.width.saturating_mul(2).min(plan.space());
        } else if records > plan.target * 2 {
            self.width = (self.width / 2).max(1);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn parallel<R>(
    host: &Host,
    readers: usize,
    plan: Plan,
    first_last: String,
    source: &Source<
        impl Fn(Option<&str>, Option<&str>) -> Result<KeyPage<R>, ConnectorError> + Sync,
    >,
    key_of: &(impl Fn(&R) -> &str + Sync),
    on_page: &mut impl FnMut(Vec<R>, Progress<'_>) -> Result<(), ConnectorError>,
) -> Result<u64, ConnectorError>
where
    R: Send,
{
    let first_end = plan.base.checked_add(plan.width);
    let dispatch = Mutex::new(Dispatch {
        next: 1,
        start: first_end.unwrap_or(u128::MAX),
        width: plan.width,
        exhausted: first_end.is_none_or(|n| n >= plan.space()),
        list_end: None,
        stop: false,
    });
    let range0_end = plan.bound(first_end);
    let pages = std::sync::atomic::AtomicU64::new(0);
    let (tx, rx) = sync_channel::<Msg<R>>(readers);
    std::thread::scope(|scope| {
        for reader in 0..readers {
            let tx = tx.clone();
            let ctx = Reader {
                host,
                plan: &plan,
                dispatch: &dispatch,
                pages: &pages,
                source,
                key_of,
            };
            // Reader 0 goes on with range 0 after the first page; the others take ranges.
            let first = (reader == 0).then(|| (0, Some(first_last.clone()), range0_end.clone()));
            scope.spawn(move || ctx.run(first, &tx));
        }
        drop(tx);
        let result = collect(&rx, first_last, on_page);
        if result.is_err() {
            lock(&dispatch).stop = true;
            while rx.recv().is_ok() {} // let blocked readers finish
        }
        result
    })?;
    Ok(pages.into_inner())
}

/// A range to read: its index, its start key and its end key (exclusive; `None`: open).
type Range = (u64, Option<String>, Option<String>);

struct Reader<'a, F, K> {
    host: &'a Host,
    plan: &'a Plan,
    dispatch: &'a Mutex<Dispatch>,
    pages: &'a std::sync::atomic::AtomicU64,
    source: &'a Source<F>,
    key_of: &'a K,
}

impl<R, F, K> Reader<'_, F, K>
where
    F: Fn(Option<&str>, Option<&str>) -> Result<KeyPage<R>, ConnectorError> + Sync,
    K: Fn(&R) -> &str + Sync,
{
    fn run(&self, first: Option<Range>, tx: &SyncSender<Msg<R>>) {
        let mut job = first;
        loop {
            let Some((range, from, end)) = job.take().or_else(|| self.take_range()) else {
                return;
            };
            if let Err(e) = self.read_range(range, from, end, tx) {
                lock(self.dispatch).stop = true;
                let _ = tx.send(Msg::Failed(e));
                return;
            }
        }
    }

    fn take_range(&self) -> Option<Range> {
        let mut d = lock(self.dispatch);
        if d.stop || d.exhausted {
            return None;
        }
        let start = Plan::key(d.start, self.plan.digits);
        if d.list_end
            .as_ref()
            .is_some_and(|e| start.as_bytes() > e.as_bytes())
        {
            return None;
        }
        let j = d.next;
        d.next += 1;
        let end = d
            .start
            .checked_add(d.width)
            .filter(|n| *n < self.plan.space());
        match end {
            Some(n) => d.start = n,
            None => d.exhausted = true,
        }
        Some((j, Some(start), self.plan.bound(end)))
    }

    /// Reads range `range` from `from` (`after` set: exclusive, as a key already handed
    /// over; else inclusive) up to `end`.
    fn read_range(
        &self,
        range: u64,
        from: Option<String>,
        end: Option<String>,
        tx: &SyncSender<Msg<R>>,
    ) -> Result<(), ConnectorError> {
        let key_of = self.key_of;
        let start = from.clone();
        let mut last: Option<String> = if range == 0 { from.clone() } else { None };
        let mut ask = from;
        let mut held = 0u64;
        let mut requests = 0u32;
        loop {
            if lock(self.dispatch).stop {
                return Ok(());
            }
            self.host.check_cancelled()?;
            // The range's first request is open: its answer is what shows where the next
            // keys are when the range holds less than a page.
            let bound = self.source.end(end.as_deref()).filter(|_| requests > 0);
            let page = (self.source.fetch)(ask.as_deref(), bound)?;
            requests += 1;
            self.pages
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.host.report_pages(1);
            let short = page.rows.len() < page.asked as usize;
            // A page that ends at its range's end says nothing about the listing's end.
            let ends_list = short && bound.is_none();
            // On a short page, the listing ends at its last row (or before the key asked).
            let list_end = ends_list
                .then(|| {
                    page.rows
                        .last()
                        .map(|r| key_of(r).to_string())
                        .or(ask.clone())
                })
                .flatten();
            let mut past_end = None;
            let mut prev = last.clone();
            let mut rows = Vec::with_capacity(page.rows.len());
            for row in page.rows {
                let key = key_of(&row);
                if let Some(p) = &prev
                    && key.as_bytes() <= p.as_bytes()
                {
                    if Some(key) == last.as_deref() {
                        continue; // the repeated start row
                    }
                    return Err(out_of_order(p, key));
                }
                if range > 0
                    && rows.is_empty()
                    && last.is_none()
                    && start
                        .as_deref()
                        .is_some_and(|s| key.as_bytes() < s.as_bytes())
                {
                    continue; // before the range (a start key the server rounded down)
                }
                if end
                    .as_deref()
                    .is_some_and(|e| key.as_bytes() >= e.as_bytes())
                {
                    past_end = Some(key.to_string());
                    break;
                }
                prev = Some(key.to_string());
                rows.push(row);
            }
            let new_last = rows.last().map(|r| key_of(r).to_string()).or(last.clone());
            let progressed = new_last != last;
            let range_done = short || past_end.is_some() || !progressed;
            held += rows.len() as u64;
            {
                let mut d = lock(self.dispatch);
                if let Some(e) = list_end
                    && d.list_end
                        .as_ref()
                        .is_none_or(|l| l.as_bytes() < e.as_bytes())
                {
                    d.list_end = Some(e);
                }
                if range_done && range > 0 {
                    if let (0, Some(k)) = (held, &past_end) {
                        d.skip_to(self.plan, k);
                    }
                    d.observe(self.plan, held);
                }
            }
            last = new_last;
            if tx
                .send(Msg::Page {
                    range,
                    rows,
                    last: last.clone(),
                    range_done,
                })
                .is_err()
            {
                return Ok(());
            }
            if range_done {
                return Ok(());
            }
            ask = last.clone();
        }
    }
}

fn out_of_order(before: &str, key: &str) -> ConnectorError {
    ConnectorError::connector(format!(
        "the listing returned key {key:?} after {before:?}: its keys are not in byte order, \
         which reading in key ranges relies on; set pages_in_flight = 1 for this task"
    ))
}

/// The caller's side: hands every page over with the watermark.
fn collect<R>(
    rx: &Receiver<Msg<R>>,
    first_last: String,
    on_page: &mut impl FnMut(Vec<R>, Progress<'_>) -> Result<(), ConnectorError>,
) -> Result<(), ConnectorError> {
    // Per range from the lowest unfinished: (last key handed over, finished).
    let mut ranges: std::collections::BTreeMap<u64, (Option<String>, bool)> =
        std::collections::BTreeMap::new();
    let mut floor = first_last; // the highest key handed over by the finished ranges below
    let mut lowest = 0u64; // every range below is finished
    ranges.insert(0, (Some(floor.clone()), false));
    while let Ok(msg) = rx.recv() {
        let (range, rows, last, range_done) = match msg {
            Msg::Page {
                range,
                rows,
                last,
                range_done,
            } => (range, rows, last, range_done),
            Msg::Failed(e) => return Err(e),
        };
        let entry = ranges.entry(range).or_insert((None, false));
        if last.is_some() {
            entry.0 = last;
        }
        entry.1 |= range_done;
        // Advance past finished ranges; a range never seen yet is unfinished.
        while let Some((l, true)) = ranges.get(&lowest).cloned() {
            if let Some(l) = l {
                floor = l;
            }
            ranges.remove(&lowest);
            lowest += 1;
        }
        let watermark = match ranges.get(&lowest) {
            Some((Some(l), _)) => l.clone(),
            _ => floor.clone(),
        };
        on_page(
            rows,
            Progress {
                watermark: Some(&watermark),
            },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::conformance::offline_host;

    /// A listing over `keys` (sorted by bytes): from a key onwards, that key included;
    /// `bounded`: read with [`read_bounded`], each page ending before its range's end.
    struct List {
        keys: Vec<String>,
        page: u32,
        bounded: bool,
        calls: AtomicUsize,
        /// Rows answered, over all calls.
        served: AtomicUsize,
        in_flight: AtomicUsize,
        max_in_flight: AtomicUsize,
        fail_from: Option<String>,
    }

    impl List {
        fn new(mut keys: Vec<String>, page: u32) -> Self {
            keys.sort();
            keys.dedup();
            Self {
                keys,
                page,
                bounded: false,
                calls: AtomicUsize::new(0),
                served: AtomicUsize::new(0),
                in_flight: AtomicUsize::new(0),
                max_in_flight: AtomicUsize::new(0),
                fail_from: None,
            }
        }

        fn bounded(mut self) -> Self {
            self.bounded = true;
            self
        }

        fn fetch(&self, from: Option<&str>) -> Result<KeyPage<String>, ConnectorError> {
            self.fetch_to(from, None)
        }

        fn fetch_to(
            &self,
            from: Option<&str>,
            end: Option<&str>,
        ) -> Result<KeyPage<String>, ConnectorError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            // Give other readers a chance to be in flight at the same time (not a timing
            // assertion: the test that counts overlap waits for it explicitly).
            std::thread::yield_now();
            let at = from.map_or(0, |f| self.keys.partition_point(|k| k.as_str() < f));
            let rows: Vec<String> = self.keys[at..]
                .iter()
                .take_while(|k| end.is_none_or(|e| k.as_str() < e))
                .take(self.page as usize)
                .cloned()
                .collect();
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            self.served.fetch_add(rows.len(), Ordering::SeqCst);
            if let (Some(bad), Some(from)) = (&self.fail_from, from)
                && from >= bad.as_str()
            {
                return Err(ConnectorError::gateway("injected failure"));
            }
            Ok(KeyPage::new(rows, self.page))
        }
    }

    /// Reads `list` and checks the watermark rule on every page: every key at or below
    /// the watermark has been handed over. Returns the keys handed over, in order.
    fn read_all(
        list: &List,
        readers: usize,
        resume: Option<&str>,
    ) -> Result<Vec<String>, ConnectorError> {
        let mut seen = Vec::new();
        let mut got = BTreeSet::new();
        let on_page = |rows: Vec<String>, progress: Progress<'_>| {
            for r in rows {
                seen.push(r.clone());
                got.insert(r);
            }
            if let Some(w) = progress.watermark {
                let below = list
                    .keys
                    .iter()
                    .filter(|k| k.as_str() <= w && resume.is_none_or(|r| k.as_str() > r));
                for k in below {
                    assert!(got.contains(k), "watermark {w} passed {k}, not handed over");
                }
            }
            Ok(())
        };
        let resume = resume.map(str::to_string);
        fn key_of(k: &String) -> &str {
            k
        }
        if list.bounded {
            read_bounded(
                &offline_host(),
                readers,
                resume,
                |from, end| list.fetch_to(from, end),
                key_of,
                on_page,
            )?;
        } else {
            read(
                &offline_host(),
                readers,
                resume,
                |from| list.fetch(from),
                key_of,
                on_page,
            )?;
        }
        Ok(seen)
    }

    fn dense(n: u64) -> Vec<String> {
        (1..=n).map(|i| format!("C{i:09}")).collect()
    }

    fn ragged() -> Vec<String> {
        // Mixed lengths, clusters and gaps, as customer numbers that grew over the years.
        let mut keys: Vec<String> = (0..400).map(|i| format!("{}", 1000 + i * 7)).collect();
        keys.extend((0..300).map(|i| format!("A{i}")));
        keys.extend((0..250).map(|i| format!("K{:05}X", i * i)));
        keys.extend(["Z", "Z0", "ZZZZZZZZZZ", "~", "B", "B "].map(String::from));
        keys
    }

    #[test]
    fn every_key_once_at_every_page_size_and_reader_count() {
        for keys in [dense(1003), dense(1000), ragged()] {
            for (page, bounded) in [2, 7, 10, 100, 2000]
                .into_iter()
                .flat_map(|p| [(p, false), (p, true)])
            {
                for readers in [1, 2, 3, 8] {
                    let list = List::new(keys.clone(), page);
                    let list = if bounded { list.bounded() } else { list };
                    let seen = read_all(&list, readers, None).unwrap();
                    let unique: BTreeSet<&String> = seen.iter().collect();
                    assert_eq!(
                        unique.len(),
                        seen.len(),
                        "duplicates at page {page}, {readers} readers, bounded {bounded}"
                    );
                    let missing: Vec<&String> = list
                        .keys
                        .iter()
                        .filter(|k| !unique.contains(k))
                        .take(5)
                        .collect();
                    assert_eq!(
                        seen.len(),
                        list.keys.len(),
                        "page {page}, {readers} readers, bounded {bounded}, missing {missing:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_resumed_read_hands_over_exactly_the_keys_after_the_resume_key() {
        for list in [
            List::new(dense(5000), 50),
            List::new(dense(5000), 50).bounded(),
        ] {
            let resume = "C000001234";
            let seen = read_all(&list, 4, Some(resume)).unwrap();
            let expected: Vec<&String> = list.keys.iter().filter(|k| k.as_str() > resume).collect();
            let mut got: Vec<&String> = seen.iter().collect();
            got.sort();
            assert_eq!(got.len(), expected.len());
            assert!(got == expected, "not the same keys");
        }
    }

    #[test]
    fn bounded_ranges_take_about_the_requests_of_open_ones_and_fewer_rows() {
        // Ranges whose later requests end at the range's end take about as many requests
        // as open ones, and their last pages hold no records past the end.
        for (keys, keys_ragged) in [
            (dense(10_000), false),
            (dense(10_050), false),
            (ragged(), true),
        ] {
            let n = keys.len();
            let counts = |list: List, readers| {
                read_all(&list, readers, None).unwrap();
                (list.calls.into_inner(), list.served.into_inner())
            };
            let (one, _) = counts(List::new(keys.clone(), 100), 1);
            let (open, open_rows) = counts(List::new(keys.clone(), 100), 4);
            let (bounded, bounded_rows) = counts(List::new(keys, 100).bounded(), 4);
            // What bounded ranges may add: the listing's end is seen only by a range's
            // first request, so up to one more range per reader past it.
            assert!(
                bounded <= open + 4 && (keys_ragged || bounded <= one + one / 4 + 8),
                "{bounded} requests; open ranges {open}, one at a time {one}"
            );
            assert!(
                bounded_rows < open_rows,
                "{bounded_rows} rows served; open ranges {open_rows}, {n} keys"
            );
        }
    }

    #[test]
    fn several_pages_are_really_in_flight_at_once() {
        let list = List::new(dense(20_000), 100);
        // Wait (bounded) inside each fetch until a second one has started, so the count
        // does not depend on the scheduler's timing.
        let seen = {
            let mut seen = 0usize;
            read(
                &offline_host(),
                4,
                None,
                |from| {
                    let page = list.fetch(from);
                    let started = Instant::now();
                    list.in_flight.fetch_add(1, Ordering::SeqCst);
                    while list.in_flight.load(Ordering::SeqCst) < 2
                        && started.elapsed() < Duration::from_millis(200)
                    {
                        std::thread::yield_now();
                    }
                    let now = list.in_flight.load(Ordering::SeqCst);
                    list.max_in_flight.fetch_max(now, Ordering::SeqCst);
                    list.in_flight.fetch_sub(1, Ordering::SeqCst);
                    page
                },
                |k: &String| k.as_str(),
                |rows, _| {
                    seen += rows.len();
                    Ok(())
                },
            )
            .unwrap();
            seen
        };
        assert_eq!(seen, 20_000);
        assert!(list.max_in_flight.load(Ordering::SeqCst) >= 2);
    }

    #[test]
    fn keys_out_of_byte_order_on_the_first_page_read_one_page_at_a_time() {
        // A list whose order is not the bytes' (e.g. another collation): never cut.
        let keys: Vec<String> = ["b", "a", "d", "c", "f", "e"].map(String::from).to_vec();
        let mut seen = Vec::new();
        let pages = read(
            &offline_host(),
            8,
            None,
            |from| {
                let at = from.map_or(0, |f| keys.iter().position(|k| k == f).unwrap_or(0));
                Ok(KeyPage::new(
                    keys[at..].iter().take(2).cloned().collect(),
                    2,
                ))
            },
            |k: &String| k.as_str(),
            |rows, _| {
                seen.extend(rows);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(seen, keys);
        // One call per key after the first page: each page repeats its start key, and a
        // page of 2 brings one new key; the last call brings none (short).
        assert_eq!(pages, 6);
    }

    #[test]
    fn a_failed_page_stops_the_read_and_the_watermark_never_passes_it() {
        for list in [
            List::new(dense(10_000), 100),
            List::new(dense(10_000), 100).bounded(),
        ] {
            let mut list = list;
            list.fail_from = Some("C000006000".into());
            let e = read_all(&list, 4, None).unwrap_err();
            assert!(e.message().contains("injected"), "{e:?}");
        }
    }

    #[test]
    fn keys_as_numbers_keep_their_order() {
        let keys = ["", " ", "!", "A", "A ", "A!", "AB", "B", "~~"];
        let n: Vec<u128> = keys.iter().map(|k| Plan::number(k, 4)).collect();
        assert!(n.windows(2).all(|w| w[0] <= w[1]), "{n:?}");
        for k in ["A", "AB", "C000000123", "~"] {
            assert_eq!(Plan::key(Plan::number(k, 10), 10), k);
        }
    }
}
