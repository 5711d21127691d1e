//! M3 MI REST.
use crate::state::Shared;
use axum::Router;
pub(crate) fn routes() -> Router<Shared> {
    Router::new()
}
