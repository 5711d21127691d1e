//! A partition of an offset-paged read ([`crate::ReadRequest::partition`]): partition `i`
//! of `N` reads pages `i`, `i + N`, `i + 2N`... of the listing, so the N partitions read
//! every page once without knowing the total, each ending at its first short page. Its
//! checkpoint is its own next offset (the host keeps a state per partition).
//!
//! Only a full read is partitioned: an incremental one filters the listing from the last
//! high-water mark, and partitions with marks of their own would page different
//! listings, where page `i` of one is not page `i` of another. The host refuses the
//! combination; a request that still has it is refused here.
//!
//! The page size is the stride: every partition must read pages of one size, so a page
//! that keeps timing out fails the partition instead of being asked smaller (the other
//! partitions' pages would no longer meet it). Give a partitioned task a page size the
//! gateway answers in time.

use super::{Flow, Read, RestStream, Resume, Sink, fetch_in_order, pages_in_flight};
use crate::{ConnectorError, ReadPartition, ReadRequest, SyncMode};

/// Why `request`'s partition cannot be read by a stream with `offset_paged` pages and an
/// incremental cursor `cursor`, if it cannot.
pub(crate) fn check(
    name: &str,
    offset_paged: bool,
    cursor: Option<&str>,
    request: &ReadRequest,
    part: ReadPartition,
) -> Result<(), ConnectorError> {
    let refuse = |why: String| {
        Err(ConnectorError::invalid_input(format!(
            "{name}: partition {} of {}: {why}",
            part.index, part.count
        )))
    };
    if part.count == 0 || part.index >= part.count {
        return refuse("expected an index from 0 to the count less one".into());
    }
    if !offset_paged {
        return refuse(
            "the stream is paged by a token, so its pages cannot be split (it does not declare \
             itself partitionable)"
                .into(),
        );
    }
    if request.sync_mode == SyncMode::Incremental && cursor.is_some() {
        return refuse(
            "an incremental read cannot be partitioned (each partition's listing would start \
             from its own high-water mark); read it in full"
                .into(),
        );
    }
    Ok(())
}

/// The pages of partition `part`: pages of `size` records, `part.count` pages apart,
/// from the partition's first page or the offset its state resumes at. Offset-paged
/// streams and the after-key windows of a keyed listing ([`super::super::after_key`]) both
/// page by it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stride {
    size: u64,
    stride: u64,
    start: u64,
}

impl Stride {
    /// Partition `part` of stream `name` in pages of `size`, from `resume` (its own next
    /// offset) or its first page. A resume offset that does not start one of the
    /// partition's pages was saved with another page size or partition count.
    pub(crate) fn new(
        name: &str,
        size: u32,
        part: ReadPartition,
        resume: Option<u64>,
    ) -> Result<Self, ConnectorError> {
        let size = u64::from(size.max(1));
        let stride = size.saturating_mul(u64::from(part.count));
        let first = size.saturating_mul(u64::from(part.index));
        let start = resume.unwrap_or(first);
        if start % size != 0 || (start / size) % u64::from(part.count) != u64::from(part.index) {
            return Err(ConnectorError::invalid_input(format!(
                "{name}: partition {} of {}: the state resumes at record {start}, which does \
                 not start one of this partition's pages of {size} records; resume a \
                 partitioned read with the page size and partitions it was read with",
                part.index, part.count
            )));
        }
        Ok(Self {
            size,
            stride,
            start,
        })
    }

    /// The offset of the partition's `k`-th page of this read.
    pub(crate) fn offset(&self, k: u64) -> u64 {
        self.start.saturating_add(k.saturating_mul(self.stride))
    }

    /// Whether a page of `n` records ends the partition (a short page ends the listing).
    pub(crate) fn ends(&self, n: u64) -> bool {
        n < self.size
    }

    /// Refuses a page of more records than asked: the records past the page's size are
    /// the next partition's, and taking them would hand them over twice.
    pub(crate) fn refuse_overfull(&self, name: &str, k: u64, n: u64) -> Result<(), ConnectorError> {
        if n > self.size {
            return Err(ConnectorError::unexpected_body(format!(
                "{name}: the page of {} records at record {} answered {n} records: more than \
                 asked, so the pages of a partitioned read would overlap",
                self.size,
                self.offset(k)
            )));
        }
        Ok(())
    }
}

impl<S: Sync, R: RestStream<S>> Read<'_, S, R> {
    /// Partition `part`'s pages of `size` records, from `resume` (its own next offset) or
    /// its first page, up to the request's pages in flight, handed over in order.
    pub(super) fn by_stride(
        &self,
        sink: &mut Sink<'_>,
        size: u32,
        part: ReadPartition,
        resume: Option<u64>,
    ) -> Result<(), ConnectorError> {
        let pages = Stride::new(self.stream.name(), size, part, resume)?;
        let since = sink.since_text.clone();
        fetch_in_order(
            self.host,
            pages_in_flight(self.request),
            None,
            |k| self.fetch(&self.page(size, pages.offset(k), None, since.as_deref())),
            |k, page| {
                pages.refuse_overfull(self.stream.name(), k, page.records.len() as u64)?;
                let n = sink.write(page.records)?;
                if pages.ends(n) {
                    sink.commit::<R::Token>(None)?;
                    return Ok(Flow::End);
                }
                sink.commit(Some(Resume::<R::Token>::Offset(pages.offset(k + 1))))?;
                Ok(Flow::Next)
            },
        )
        .map(|_| ())
    }
}

/// The record schema of a stream with `offset_paged` pages: `schema`, declared
/// partitionable when it is ([`crate::PARTITIONABLE_KEY`]).
pub(crate) fn declare(mut schema: serde_json::Value, offset_paged: bool) -> serde_json::Value {
    if let (true, serde_json::Value::Object(root)) = (offset_paged, &mut schema) {
        root.insert(crate::PARTITIONABLE_KEY.into(), true.into());
    }
    schema
}

#[cfg(test)]
mod tests {
    //! Partitions of an offset-paged read against a scripted host; the expected pages and
    //! records are written out by hand from the source's ten items.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::{Value, json};

    use crate::stream::tests::{Event, Query, items, request, scripted};
    use crate::stream::{Answer, Page, PageRequest, RestStream, read};
    use crate::{ConnectorError, GatewayRequest, ReadPartition, SyncMode};

    /// `items?offset=&limit=` over ten items, answered as a bare array.
    struct Ten;

    impl RestStream<()> for Ten {
        type Record = Value;
        type Token = ();
        const NAME: &'static str = "items";
        const DESCRIPTION: &'static str = "Ten items.";
        const PRIMARY_KEY: &'static [&'static str] = &["id"];
        const CURSOR: Option<&'static str> = Some("at");

        fn request(&self, _: &(), page: &PageRequest<'_, ()>) -> GatewayRequest {
            GatewayRequest::get("api/items")
                .query("offset", page.offset.to_string())
                .query("limit", page.size.to_string())
        }

        fn parse(&self, answer: &Answer<'_>) -> Result<Page<Value>, ConnectorError> {
            Ok(answer.json::<Vec<Value>>("an array of items")?.into())
        }
    }

    fn serve(q: &Query) -> Result<(u16, String), ionport_plugin_abi::PluginError> {
        let offset: usize = q["offset"].parse().unwrap();
        let limit: usize = q["limit"].parse().unwrap();
        let rows: Vec<Value> = items(10).into_iter().skip(offset).take(limit).collect();
        Ok((200, Value::Array(rows).to_string()))
    }

    /// What a partition's read did: the ids handed over, the offsets asked and the resume
    /// offsets checkpointed (`None`: the partition's end).
    type Read = (Vec<u64>, Vec<u64>, Vec<Option<u64>>);

    /// Reads partition `index` of `count` in pages of 3.
    fn part(
        index: u32,
        count: u32,
        in_flight: u32,
        state: Option<Value>,
    ) -> Result<Read, ConnectorError> {
        let (host, seen) = scripted(usize::MAX, serve);
        let mut req = request(SyncMode::FullRefresh, 3, in_flight, state);
        req.partition = Some(ReadPartition { index, count });
        read(&Ten, &host, &(), &req)?;
        let mut ids = Vec::new();
        let mut resumes = Vec::new();
        for e in seen.events.lock().unwrap().iter() {
            match e {
                Event::Records(r) => ids.extend(r.iter().map(|r| r["id"].as_u64().unwrap())),
                Event::Checkpoint(s) => resumes.push(s["resume"]["offset"].as_u64()),
            }
        }
        let mut asked: Vec<u64> = seen
            .asked
            .lock()
            .unwrap()
            .iter()
            .map(|q| q["offset"].parse().unwrap())
            .collect();
        asked.sort_unstable();
        Ok((ids, asked, resumes))
    }

    #[test]
    fn two_partitions_read_alternate_pages_and_every_item_once() {
        // Pages of 3: [1-3] [4-6] [7-9] [10]; partition 0 has pages 0 and 2 (and finds the
        // end at offset 12), partition 1 pages 1 and 3 (the short one ends it).
        let (ids, asked, resumes) = part(0, 2, 1, None).unwrap();
        assert_eq!(ids, vec![1, 2, 3, 7, 8, 9]);
        assert_eq!(asked, vec![0, 6, 12]);
        assert_eq!(resumes, vec![Some(6), Some(12), None]);
        let (ids, asked, resumes) = part(1, 2, 1, None).unwrap();
        assert_eq!(ids, vec![4, 5, 6, 10]);
        assert_eq!(asked, vec![3, 9]);
        assert_eq!(resumes, vec![Some(9), None]);
    }

    #[test]
    fn pages_in_flight_within_a_partition_keep_its_stride_and_order() {
        let (ids, _, _) = part(0, 3, 4, None).unwrap();
        assert_eq!(ids, vec![1, 2, 3, 10]);
        let (ids, _, _) = part(1, 3, 4, None).unwrap();
        assert_eq!(ids, vec![4, 5, 6]);
        let (ids, _, _) = part(2, 3, 4, None).unwrap();
        assert_eq!(ids, vec![7, 8, 9]);
    }

    #[test]
    fn a_partition_resumes_at_its_own_next_page_and_refuses_another_s() {
        let (ids, asked, _) = part(1, 2, 1, Some(json!({"resume": {"offset": 9}}))).unwrap();
        assert_eq!((ids, asked), (vec![10], vec![9]));
        // Offset 6 starts page 2, partition 0's: resuming partition 1 there would read
        // partition 0's records and skip its own.
        let e = part(1, 2, 1, Some(json!({"resume": {"offset": 6}}))).unwrap_err();
        assert!(
            e.message()
                .contains("does not start one of this partition's pages"),
            "{e}"
        );
    }

    #[test]
    fn an_incremental_or_malformed_partition_is_refused_before_any_request() {
        let (host, seen) = scripted(usize::MAX, serve);
        let mut req = request(SyncMode::Incremental, 3, 1, None);
        req.partition = Some(ReadPartition { index: 0, count: 2 });
        let e = read(&Ten, &host, &(), &req).unwrap_err();
        assert!(
            e.message()
                .contains("incremental read cannot be partitioned"),
            "{e}"
        );
        let mut req = request(SyncMode::FullRefresh, 3, 1, None);
        req.partition = Some(ReadPartition { index: 2, count: 2 });
        let e = read(&Ten, &host, &(), &req).unwrap_err();
        assert!(e.message().contains("expected an index from 0"), "{e}");
        assert!(seen.asked.lock().unwrap().is_empty());
    }

    #[test]
    fn a_page_of_more_records_than_asked_is_an_error_not_an_overlap() {
        // The source ignores `limit` and answers 4 records for pages of 3: the 4th is the
        // next partition's first.
        let (host, seen) = scripted(usize::MAX, |q: &Query| {
            let offset: usize = q["offset"].parse().unwrap();
            let rows: Vec<Value> = items(10).into_iter().skip(offset).take(4).collect();
            Ok((200, Value::Array(rows).to_string()))
        });
        let mut req = request(SyncMode::FullRefresh, 3, 1, None);
        req.partition = Some(ReadPartition { index: 0, count: 2 });
        let e = read(&Ten, &host, &(), &req).unwrap_err();
        assert_eq!(
            e.kind(),
            ionport_plugin_abi::error_kind::UNEXPECTED_BODY,
            "{e}"
        );
        assert!(e.message().contains("answered 4 records"), "{e}");
        assert!(
            !seen
                .events
                .lock()
                .unwrap()
                .iter()
                .any(|e| matches!(e, Event::Records(_))),
            "nothing of the overfull page was handed over"
        );
    }

    #[test]
    fn an_offset_paged_stream_declares_itself_partitionable() {
        use crate::stream::AnyStream;
        assert!(AnyStream::<()>::spec(&Ten).partitionable());
    }
}
