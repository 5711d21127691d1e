//! `GET /{tenant}/ifsservice/usermgt/v2/users/me`: whom the bearer token was issued to —
//! the service account, or an emulated user signed in through the authorization-code or
//! SAML bearer grant.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde_json::json;

use crate::state::Shared;

/// The users of the emulated tenant who can sign in: the authorization endpoint signs in
/// the one named by `login_hint`, a SAML assertion names one as its subject.
pub(crate) const EMULATED_USERS: &[&str] = &["alice", "bob"];

/// Whom the request's bearer token was issued to (`None`: the service account), set by
/// the gateway guard.
#[derive(Debug, Clone)]
pub(crate) struct SignedInUser(pub Option<String>);

pub(crate) fn routes() -> Router<Shared> {
    Router::new().route("/{tenant}/ifsservice/usermgt/v2/users/me", get(me))
}

async fn me(State(st): State<Shared>, user: Option<Extension<SignedInUser>>) -> Response {
    let tenant = &st.config.tenant;
    let domain = tenant.to_ascii_lowercase();
    let user = match user.and_then(|Extension(u)| u.0) {
        Some(name) => json!({
            "id": format!("{tenant}-{name}"),
            "userName": format!("{name}@{domain}.invalid"),
            "displayName": format!("{name} (emulated user)"),
            "firstName": name,
            "lastName": "Emulated",
            "email": format!("{name}@{domain}.invalid"),
            "status": "Active",
            "tenant": tenant,
            "defaultCompany": crate::data::DEFAULT_COMPANY,
            "groups": [{"display": "GRID-RunAsM3User"}, {"display": "DATAFABRIC-User"}]
        }),
        None => json!({
            "id": format!("{tenant}-ionport-service-user"),
            "userName": format!("ionport.service@{domain}.invalid"),
            "displayName": "ionport service account",
            "firstName": "ionport",
            "lastName": "Service",
            "email": format!("ionport.service@{domain}.invalid"),
            "status": "Active",
            "tenant": tenant,
            "defaultCompany": crate::data::DEFAULT_COMPANY,
            "groups": [{"display": "GRID-RunAsM3User"}, {"display": "DATAFABRIC-User"}]
        }),
    };
    axum::Json(json!({"response": {"userlist": [user]}})).into_response()
}
