//! What the emulator has served, for tests: `GET /__emulator/counters` and
//! [`crate::RunningEmulator::counters`] return the same [`Counters`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A snapshot of the emulator's counters since start or the last reset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Token requests by grant type.
    pub token_requests: TokenRequestCounts,
    /// Token and revoke errors by RFC 6749 error code (`invalid_grant`, `invalid_client`, …).
    pub token_errors: BTreeMap<String, u64>,
    /// Refresh grants that presented an already rotated (dead) refresh token.
    pub refresh_token_reuse: u64,
    /// Successful revocation requests.
    pub revocations: u64,
    /// Requests received, by API.
    pub requests: ApiRequestCounts,
    /// 401 responses served (gateway and authorization server).
    pub unauthorized: u64,
    /// 429 responses served.
    pub rate_limited: u64,
    /// Faults injected.
    pub faults_injected: u64,
    /// Records changed through the control endpoint.
    pub records_changed: u64,
    /// Compass jobs submitted.
    pub jobs_submitted: u64,
}

/// Token requests by `grant_type`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenRequestCounts {
    /// `grant_type=password`.
    pub password: u64,
    /// `grant_type=refresh_token`.
    pub refresh_token: u64,
    /// Any other or missing grant type.
    pub other: u64,
}

/// Requests by API (the first path segment after the tenant).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiRequestCounts {
    /// `/{tenant}/as/…`: token and revoke.
    pub auth: u64,
    /// `/{tenant}/ifsservice/…`.
    pub users: u64,
    /// `/{tenant}/M3/…`.
    pub m3: u64,
    /// `/{tenant}/LN/…`.
    pub ln: u64,
    /// `/{tenant}/DATAFABRIC/…`.
    pub datalake: u64,
    /// Anything else except the control endpoints.
    pub other: u64,
}

/// The API a path belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// Authorization server.
    Auth,
    /// User management.
    Users,
    /// M3.
    M3,
    /// LN.
    Ln,
    /// Data Lake / Data Fabric.
    Datalake,
    /// Anything else.
    Other,
}

impl Api {
    /// Classifies a request path (`/{tenant}/{api}/…`).
    #[must_use]
    pub fn of_path(path: &str) -> Self {
        let mut segs = path.trim_start_matches('/').split('/');
        let _tenant = segs.next();
        match segs.next() {
            Some("as") => Self::Auth,
            Some("ifsservice") => Self::Users,
            Some("M3") => Self::M3,
            Some("LN") => Self::Ln,
            // The Data Fabric suite, and the ION API suite's older Compass and catalog.
            Some("DATAFABRIC") => Self::Datalake,
            Some("IONSERVICES") if matches!(segs.next(), Some("datalakeapi" | "datacatalog")) => {
                Self::Datalake
            }
            _ => Self::Other,
        }
    }
}

impl ApiRequestCounts {
    pub(crate) fn bump(&mut self, api: Api) {
        let slot = match api {
            Api::Auth => &mut self.auth,
            Api::Users => &mut self.users,
            Api::M3 => &mut self.m3,
            Api::Ln => &mut self.ln,
            Api::Datalake => &mut self.datalake,
            Api::Other => &mut self.other,
        };
        *slot += 1;
    }
}
