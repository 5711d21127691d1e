//! Pages of one read fetched by several threads and handed over in order.
//!
//! For APIs whose pages can be addressed on their own (a result offset, `$skip`), the
//! next pages can be on their way while the caller decodes and commits the current one.
//! [`fetch_in_order`] asks for page `i` with `fetch(i)` (the caller maps the index to its
//! offset: `start + i × size`) on up to `in_flight` threads and hands the pages to `take`
//! **in index order, on the caller's thread**. So the caller emits and checkpoints exactly
//! as a sequential read does: a checkpoint after page `k` covers pages `0..=k`, and a
//! crash after it repeats nothing and loses nothing.
//!
//! The rules:
//! - **Bounded memory**: a page is requested only while fewer than `in_flight` pages are
//!   requested and not yet taken (the one `take` works on counts), so at most `in_flight`
//!   pages are held at once.
//! - **The first page goes alone.** It proves the page size before more go out: a size
//!   the gateway cannot serve in its target timeout costs one timed-out page, not
//!   `in_flight` of them (the host↔connector contract's "two 504s per oversized size").
//! - **The end**: `take` answers [`Flow::End`] (a short page, a known total reached), or
//!   `pages` pages were taken. Pages requested past the end are dropped unread.
//! - **Errors keep their place**: an error of page `k` stops new requests; the pages
//!   before `k` are still handed over, then the error is returned — what a sequential read
//!   would have done. Pages after `k` are dropped.
//! - **Cancellation** ([`Host::check_cancelled`]) is checked before every request and
//!   before every page is handed over.
//! - With `in_flight` 1 it is the sequential read: no thread, one request after the other.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use crate::{ConnectorError, Host};

/// What the caller wants after taking a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Hand over the next page.
    Next,
    /// The read (or this run of it) is over; pages still in flight are dropped.
    End,
}

/// Fetches pages `0, 1, 2, …` with `fetch` on up to `in_flight` threads and hands them to
/// `take` in index order (see the [module docs](self) for the rules). `pages` is how many
/// pages there are, when the caller knows (no page at or past it is requested).
///
/// Each page taken is reported to the host ([`Host::report_pages`]) as `take` returns.
/// Returns how many pages were taken, or the first error in index order (of `fetch` or of
/// `take`).
pub fn fetch_in_order<P, F, T>(
    host: &Host,
    in_flight: usize,
    pages: Option<u64>,
    fetch: F,
    take: T,
) -> Result<u64, ConnectorError>
where
    P: Send,
    F: Fn(u64) -> Result<P, ConnectorError> + Sync,
    T: FnMut(u64, P) -> Result<Flow, ConnectorError>,
{
    let limit = pages.unwrap_or(u64::MAX);
    if in_flight <= 1 {
        return sequential(host, limit, fetch, take);
    }
    let shared = Shared {
        window: in_flight,
        state: Mutex::new(State {
            next: 0,
            taken: 0,
            limit,
            ready: BTreeMap::new(),
        }),
        changed: Condvar::new(),
    };
    let workers = usize::try_from(limit).map_or(in_flight, |l| l.clamp(1, in_flight));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| shared.work(host, &fetch));
        }
        // Whatever way the caller's side ends (the end, an error, a panic in `take`), the
        // workers must be told, or the scope would wait for them forever.
        let _stop = StopOnDrop(&shared);
        shared.hand_over(host, take)
    })
}

fn sequential<P>(
    host: &Host,
    limit: u64,
    fetch: impl Fn(u64) -> Result<P, ConnectorError>,
    mut take: impl FnMut(u64, P) -> Result<Flow, ConnectorError>,
) -> Result<u64, ConnectorError> {
    let mut index = 0;
    while index < limit {
        host.check_cancelled()?;
        let page = fetch(index)?;
        host.check_cancelled()?;
        let flow = take(index, page)?;
        host.report_pages(1);
        index += 1;
        if flow == Flow::End {
            break;
        }
    }
    Ok(index)
}

struct State<P> {
    /// The next index to request.
    next: u64,
    /// Pages taken by the caller (the index it waits for next).
    taken: u64,
    /// No index at or past this is requested: the known end, an error's index + 1, or 0
    /// once the caller stopped.
    limit: u64,
    /// Pages fetched and not yet taken, and errors, by index.
    ready: BTreeMap<u64, Result<P, ConnectorError>>,
}

struct Shared<P> {
    window: usize,
    state: Mutex<State<P>>,
    changed: Condvar,
}

impl<P> Shared<P> {
    // Nothing panics while the lock is held, so a poisoned lock still has a sound state.
    fn lock(&self) -> MutexGuard<'_, State<P>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State<P>>) -> MutexGuard<'a, State<P>> {
        self.changed
            .wait(guard)
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn stop(&self) {
        self.lock().limit = 0;
        self.changed.notify_all();
    }

    /// One worker: takes the next index while the window allows, fetches it, files it.
    fn work(&self, host: &Host, fetch: &(impl Fn(u64) -> Result<P, ConnectorError> + Sync)) {
        loop {
            let index = {
                let mut s = self.lock();
                loop {
                    if s.next >= s.limit {
                        return;
                    }
                    let window = if s.taken == 0 { 1 } else { self.window as u64 };
                    if s.next < s.taken.saturating_add(window) {
                        break;
                    }
                    s = self.wait(s);
                }
                s.next += 1;
                s.next - 1
            };
            let result = host.check_cancelled().and_then(|()| {
                // A panic on this thread would leave the caller waiting for a page that
                // never comes: it becomes this page's error instead.
                catch_unwind(AssertUnwindSafe(|| fetch(index))).unwrap_or_else(|_| {
                    Err(ConnectorError::connector(format!(
                        "fetching page {index} panicked"
                    )))
                })
            });
            let mut s = self.lock();
            if result.is_err() {
                s.limit = s.limit.min(index + 1);
            }
            s.ready.insert(index, result);
            drop(s);
            self.changed.notify_all();
        }
    }

    /// The caller's side: waits for each page in index order and hands it to `take`.
    fn hand_over(
        &self,
        host: &Host,
        mut take: impl FnMut(u64, P) -> Result<Flow, ConnectorError>,
    ) -> Result<u64, ConnectorError> {
        let mut index = 0;
        loop {
            let page = {
                let mut s = self.lock();
                loop {
                    if index >= s.limit && !s.ready.contains_key(&index) {
                        return Ok(index);
                    }
                    if let Some(page) = s.ready.remove(&index) {
                        break page;
                    }
                    s = self.wait(s);
                }
            };
            host.check_cancelled()?;
            let flow = take(index, page?)?;
            host.report_pages(1);
            index += 1;
            if flow == Flow::End {
                return Ok(index);
            }
            self.lock().taken = index;
            self.changed.notify_all();
        }
    }
}

struct StopOnDrop<'a, P>(&'a Shared<P>);

impl<P> Drop for StopOnDrop<'_, P> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::offline_host;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    /// A source of `rows` rows in pages of `size`, counting requests and the most that
    /// were outstanding at once.
    struct Source {
        rows: u64,
        size: u64,
        requests: AtomicU64,
        now: AtomicU64,
        most: AtomicU64,
        fail_at: Option<u64>,
    }

    impl Source {
        fn new(rows: u64, size: u64) -> Self {
            Self {
                rows,
                size,
                requests: AtomicU64::new(0),
                now: AtomicU64::new(0),
                most: AtomicU64::new(0),
                fail_at: None,
            }
        }

        fn page(&self, index: u64) -> Result<Vec<u64>, ConnectorError> {
            self.requests.fetch_add(1, Ordering::SeqCst);
            let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            // Later pages answer sooner, so that out-of-order arrival is the rule here.
            std::thread::sleep(Duration::from_millis(8u64.saturating_sub(index % 8)));
            self.now.fetch_sub(1, Ordering::SeqCst);
            if self.fail_at == Some(index) {
                return Err(ConnectorError::gateway(format!("page {index} failed")));
            }
            let start = index * self.size;
            Ok((start..(start + self.size).min(self.rows)).collect())
        }

        /// Reads everything; returns the rows in the order taken and the pages taken.
        fn read(&self, in_flight: usize) -> (Result<u64, ConnectorError>, Vec<u64>) {
            let host = offline_host();
            let mut got = Vec::new();
            let r = fetch_in_order(
                &host,
                in_flight,
                None,
                |i| self.page(i),
                |_, rows: Vec<u64>| {
                    let short = (rows.len() as u64) < self.size;
                    got.extend(rows);
                    Ok(if short { Flow::End } else { Flow::Next })
                },
            );
            (r, got)
        }
    }

    #[test]
    fn pages_come_in_order_and_complete_for_sizes_that_do_and_do_not_divide_the_rows() {
        for (rows, size) in [(100, 7), (100, 10), (100, 100), (100, 1000), (0, 5)] {
            let want: Vec<u64> = (0..rows).collect();
            for in_flight in [1, 2, 4, 8] {
                let source = Source::new(rows, size);
                let (r, got) = source.read(in_flight);
                let taken = r.expect("the read succeeds");
                assert_eq!(
                    got, want,
                    "{rows} rows, pages of {size}, {in_flight} in flight"
                );
                assert_eq!(taken, rows / size + 1, "the short page ends the read");
                let most = source.most.load(Ordering::SeqCst);
                assert!(
                    most <= in_flight as u64,
                    "{most} outstanding of {in_flight}"
                );
                if in_flight == 1 {
                    assert_eq!(
                        source.requests.load(Ordering::SeqCst),
                        taken,
                        "sequential: no request past the end"
                    );
                }
            }
        }
    }

    #[test]
    fn several_pages_really_are_in_flight_and_no_more_than_asked() {
        let source = Source::new(1000, 10);
        let (r, got) = source.read(4);
        assert_eq!(r.expect("the read succeeds"), 101);
        assert_eq!(got.len(), 1000);
        let most = source.most.load(Ordering::SeqCst);
        assert!((2..=4).contains(&most), "{most} outstanding at most");
        // Requests past the end are bounded by the window.
        let requests = source.requests.load(Ordering::SeqCst);
        assert!((101..=101 + 3).contains(&requests), "{requests} requests");
    }

    #[test]
    fn an_error_is_returned_after_the_pages_before_it_and_nothing_after_it_is_taken() {
        for in_flight in [1, 3, 8] {
            let mut source = Source::new(1000, 10);
            source.fail_at = Some(5);
            let (r, got) = source.read(in_flight);
            let e = r.expect_err("page 5 fails");
            assert_eq!(e.message(), "page 5 failed");
            assert_eq!(got, (0..50).collect::<Vec<_>>(), "{in_flight} in flight");
            // No request starts after the error is known, so few pages follow it.
            let requests = source.requests.load(Ordering::SeqCst);
            assert!(requests <= 6 + in_flight as u64, "{requests} requests");
        }
    }

    #[test]
    fn a_known_number_of_pages_is_never_exceeded_and_end_stops_early() {
        let host = offline_host();
        let source = Source::new(1000, 10);
        let mut seen = Vec::new();
        let taken = fetch_in_order(
            &host,
            8,
            Some(3),
            |i| source.page(i),
            |i, _| {
                seen.push(i);
                Ok(Flow::Next)
            },
        )
        .expect("three pages");
        assert_eq!((taken, seen), (3, vec![0, 1, 2]));
        assert_eq!(source.requests.load(Ordering::SeqCst), 3);

        let taken = fetch_in_order(
            &host,
            4,
            None,
            |i| source.page(i),
            |i, _| Ok(if i == 4 { Flow::End } else { Flow::Next }),
        )
        .expect("ends at page 4");
        assert_eq!(taken, 5);
    }

    #[test]
    fn the_first_page_goes_alone_and_an_error_of_take_stops_the_workers() {
        let host = offline_host();
        let source = Source::new(1000, 10);
        let e = fetch_in_order(
            &host,
            8,
            None,
            |i| source.page(i),
            |i, _| {
                if i == 0 {
                    assert_eq!(source.requests.load(Ordering::SeqCst), 1, "alone");
                    Err(ConnectorError::timeout("page 0 timed out"))
                } else {
                    Ok(Flow::Next)
                }
            },
        )
        .expect_err("take refuses page 0");
        assert!(e.is_timeout());
        assert_eq!(source.requests.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_panicking_fetch_is_an_error_not_a_hang() {
        let host = offline_host();
        let e = fetch_in_order(
            &host,
            4,
            None,
            |i| {
                if i == 2 {
                    panic!("boom");
                }
                Ok(i)
            },
            |_, _| Ok(Flow::Next),
        )
        .expect_err("page 2 panics");
        assert!(e.message().contains("page 2 panicked"), "{e}");
    }
}
