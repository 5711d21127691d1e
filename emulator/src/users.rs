//! `GET /{tenant}/ifsservice/usermgt/v2/users/me`: the service account's user.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::state::Shared;

pub(crate) fn routes() -> Router<Shared> {
    Router::new().route("/{tenant}/ifsservice/usermgt/v2/users/me", get(me))
}

async fn me(State(st): State<Shared>) -> Response {
    let tenant = &st.config.tenant;
    axum::Json(json!({
        "response": {
            "userlist": [{
                "id": format!("{tenant}-ionport-service-user"),
                "userName": format!("ionport.service@{}.invalid", tenant.to_ascii_lowercase()),
                "displayName": "ionport service account",
                "firstName": "ionport",
                "lastName": "Service",
                "email": format!("ionport.service@{}.invalid", tenant.to_ascii_lowercase()),
                "status": "Active",
                "tenant": tenant,
                "defaultCompany": crate::data::DEFAULT_COMPANY,
                "groups": [{"display": "GRID-RunAsM3User"}, {"display": "DATAFABRIC-User"}]
            }]
        }
    }))
    .into_response()
}
