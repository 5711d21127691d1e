//! The stream API: an author declares streams, the SDK owns the loop.
//!
//! Modelled on singer-sdk's `RESTStream`. A connector on this API is a
//! [`StreamConnector`] (its id, its settings type, its streams and the request that tests a
//! connection) and, for each stream, a [`RestStream`]: the stream's name, record type,
//! primary key and cursor as constants, the request for one page and the parse of an
//! answer into records (and, for token paging, the next token). [`Streams`] turns it into a
//! [`crate::Connector`], so the author writes no `read` and no state JSON.
//!
//! What the SDK does for every stream ([`read`]):
//! - the loop, with a cancel check before every request and before every page is handed
//!   over ([`crate::ordered_pages`]);
//! - a commit per page with its checkpoint ([`crate::RecordWriter::commit`]): the typed
//!   [`StreamState`] says where an interrupted read goes on (an offset or the next token)
//!   and where an incremental read starts (the cursor's high-water mark);
//! - decode retries: an answer `parse` refuses is asked again ([`crate::retry::fetch_decoded`])
//!   and, if it stays refused, is an error of kind `unexpected_body` — never "no more data";
//! - the 504 contract: the host has retried a page that timed out and reports it as a
//!   `timeout` error; the SDK halves the page ([`crate::paging::AdaptivePageSize`]) and goes
//!   on one page at a time from the last page it committed;
//! - pages in flight when the paging is by offset ([`Paging::Offset`]): up to
//!   [`crate::inflight::pages_in_flight`] pages requested at once, handed over in order;
//! - the column selection of the read (fields outside it are dropped, key and cursor kept
//!   by the host's selection);
//! - a source listed in the order of a key and resumed at one is a [`KeyedStream`] instead
//!   ([`read_keyed`], `keyed.rs`): listed from a key (MI lists, EXPORTMI) with key ranges
//!   in flight, a watermark in the state and sub-requests per parent row, or queried after
//!   a key (an OData entity set, `after_key.rs`) with a high-water mark taken first, next
//!   links followed and windows in flight — [`KeyPaging`] says which; one read from several
//!   partitions of the source (companies) is [`read_partitioned`];
//! - the manifest's tasks and `discover` from the declared streams, the connection form
//!   from the settings type plus the credentials block, and `check` from
//!   [`StreamConnector::check_request`].
//!
//! A source that runs a query as a job on its side (submit, poll, fetch the result by
//! offset) is a [`QueryJobStream`] ([`read_query_job`]): the wait, result pages in flight,
//! a resume in the same job and one new job when the result expires.

mod adapter;
mod after_key;
mod keyed;
mod partitions;
mod query_job;
mod read;
mod state;

#[cfg(test)]
mod after_key_tests;
#[cfg(test)]
mod keyed_tests;
#[cfg(test)]
mod query_job_tests;
#[cfg(test)]
mod tests;

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::decode::decode_page;
use crate::retry::RetryPolicy;
use crate::{ConnectorError, GatewayRequest, GatewayResponse, ReadRequest};

pub use adapter::{AnyStream, StreamConnector, Streams, USERS_ME};
pub use after_key::{AfterKeyState, record_key};
pub use keyed::{AnyKeyed, KeyListing, KeyPaging, KeyStart, KeyedStream, PageAt, read_keyed};
pub use partitions::{Partition, PartitionedState, read_partitioned};
pub use query_job::{
    JobPage, JobState, JobStatus, QueryJobState, QueryJobStream, ResultRows, Submitted,
    read_query_job, wait_for_job,
};
pub use read::read;
pub use state::{Resume, StreamState, TypedState};

/// Refuses a read of one partition ([`ReadRequest::partition`]) of a stream whose reads
/// cannot be split: reading it whole for each partition would hand every record over once
/// per partition. The host asks partitions only of tasks that declare them; this keeps a
/// host that does not from doubling records.
pub(crate) fn refuse_partition(name: &str, request: &ReadRequest) -> Result<(), ConnectorError> {
    match request.partition {
        Some(p) => Err(ConnectorError::invalid_input(format!(
            "{name}: partition {} of {} was asked, but this stream's reads cannot be split \
             into partitions; read it whole",
            p.index, p.count
        ))),
        None => Ok(()),
    }
}

/// How a stream's pages are addressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paging {
    /// By offset (`$skip`, `offset=`): any page can be asked on its own, so several are
    /// kept in flight. The listing ends at a page shorter than asked.
    Offset,
    /// By a token the previous answer gives (a next link, a last key): one page after the
    /// other. The listing ends at an answer without a next token.
    Token,
}

/// What a stream's request for one page is built from.
#[derive(Debug, Clone)]
pub struct PageRequest<'a, T> {
    /// Records to ask for.
    pub size: u32,
    /// Records of this listing before the page (for [`Paging::Offset`], the page's offset).
    pub offset: u64,
    /// The token the previous answer gave ([`Paging::Token`]); `None` for the first page.
    pub token: Option<&'a T>,
    /// Where an incremental read starts, as text: the cursor's high-water mark of the
    /// last read. `None` in a full refresh and in the first incremental read.
    pub since: Option<&'a str>,
    /// The fields the read asks for (`None`: every field); a source that can select
    /// columns may send them, the SDK drops the others anyway.
    pub columns: Option<&'a [String]>,
}

impl<T> PageRequest<'_, T> {
    /// The page's number counted from 1, for sources paged by page number and size
    /// (`page=3&pageSize=100`) on [`Paging::Offset`]: `offset / size + 1`. `None` when the
    /// offset is not a whole number of pages (a resume point taken with another page
    /// size): asking the page that holds it would hand records over twice, so the
    /// stream refuses such a read instead ([`PageRequest::page_number_or_error`]).
    pub fn page_number(&self) -> Option<u64> {
        let size = u64::from(self.size.max(1));
        (self.offset % size == 0).then_some(self.offset / size + 1)
    }

    /// [`PageRequest::page_number`], or an error naming the offset and the size.
    pub fn page_number_or_error(&self) -> Result<u64, ConnectorError> {
        self.page_number().ok_or_else(|| {
            ConnectorError::invalid_input(format!(
                "record {} does not start a page of {} records: resume a page-numbered \
                 stream with the page size it was read with",
                self.offset, self.size
            ))
        })
    }
}

/// One parsed answer: its records and, for [`Paging::Token`], the next page's token.
#[derive(Debug, Clone)]
pub struct Page<R, T = ()> {
    /// The page's records, in the order of the answer.
    pub records: Vec<R>,
    /// The next page's token; `None` ends a token-paged listing.
    pub next: Option<T>,
}

impl<R, T> From<Vec<R>> for Page<R, T> {
    fn from(records: Vec<R>) -> Self {
        Page {
            records,
            next: None,
        }
    }
}

/// A success answer to a page request, for [`RestStream::parse`].
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    /// What was asked.
    pub request: &'a GatewayRequest,
    /// The answer (a `2xx`: other statuses never reach `parse`).
    pub response: &'a GatewayResponse,
}

impl Answer<'_> {
    /// The body decoded into `T`, `expected` naming its shape ("a page with an `items`
    /// array"): a body of another shape is an error of kind `unexpected_body` naming the
    /// request, never an empty page. `T` must not default the fields that make the page a
    /// page.
    pub fn json<T: DeserializeOwned>(&self, expected: &str) -> Result<T, ConnectorError> {
        decode_page(self.request, self.response, expected)
    }
}

/// One stream of a [`StreamConnector`] whose settings are `S`: what it is, how to ask for a
/// page, how to read the answer. The SDK does the rest (see the [module docs](self)).
pub trait RestStream<S>: Send + Sync + 'static {
    /// One record: its JSON Schema is the stream's record schema, its serialisation what
    /// the stream emits.
    type Record: Serialize + JsonSchema + Send;
    /// The page token of [`Paging::Token`] (a next link, a last key); `()` for offset
    /// paging. It is kept in the state, so an interrupted read goes on from it.
    type Token: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;

    /// The stream's (task's) name, e.g. `customers`.
    const NAME: &'static str;
    /// What the stream holds, one sentence.
    const DESCRIPTION: &'static str;
    /// The fields that identify a record.
    const PRIMARY_KEY: &'static [&'static str];
    /// The field incremental reads advance on; `None`: full refresh only.
    const CURSOR: Option<&'static str> = None;
    /// How pages are addressed.
    const PAGING: Paging = Paging::Offset;
    /// Records per page when the read does not say; the SDK halves it on timeouts.
    const PAGE_SIZE: u32 = 500;

    /// The request for one page.
    fn request(&self, settings: &S, page: &PageRequest<'_, Self::Token>) -> GatewayRequest;

    /// A success answer into records (and the next token). Refuse a body that is not a
    /// page ([`Answer::json`] does): the SDK asks again, then fails the read.
    fn parse(&self, answer: &Answer<'_>)
    -> Result<Page<Self::Record, Self::Token>, ConnectorError>;

    /// How often an answer `parse` refuses is asked again.
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::default()
    }

    // What a stream is, asked of the value rather than the type: a stream declared at run
    // time (the `infor-ionapi` connector's manifest) overrides these; a stream written in
    // Rust keeps the defaults, its constants.

    /// The stream's name: [`Self::NAME`].
    fn name(&self) -> &str {
        Self::NAME
    }
    /// What the stream holds: [`Self::DESCRIPTION`].
    fn description(&self) -> &str {
        Self::DESCRIPTION
    }
    /// The fields that identify a record: [`Self::PRIMARY_KEY`].
    fn primary_key(&self) -> Vec<String> {
        Self::PRIMARY_KEY.iter().map(|k| (*k).to_string()).collect()
    }
    /// The incremental cursor field: [`Self::CURSOR`].
    fn cursor(&self) -> Option<&str> {
        Self::CURSOR
    }
    /// How pages are addressed: [`Self::PAGING`].
    fn paging(&self) -> Paging {
        Self::PAGING
    }
    /// Records per page when the read does not say: [`Self::PAGE_SIZE`].
    fn page_size(&self) -> u32 {
        Self::PAGE_SIZE
    }
    /// The record schema: [`Self::Record`]'s JSON Schema.
    fn record_schema(&self) -> serde_json::Value {
        crate::form::record_schema::<Self::Record>()
    }
}
