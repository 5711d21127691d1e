//! Data Lake.
use crate::state::Shared;
use axum::Router;
#[derive(Debug, Default)]
pub(crate) struct JobStore {}
pub(crate) fn routes() -> Router<Shared> {
    Router::new()
}
