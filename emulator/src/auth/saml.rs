//! The SAML 2.0 bearer grant (RFC 7522): `grant_type=urn:ietf:params:oauth:grant-type:saml2-bearer`
//! with `assertion`, for users signed in to the emulated Infor Ming.le.
//!
//! The emulated assertion is SAML-shaped XML, base64url-encoded (padding optional):
//!
//! ```text
//! <saml2:Assertion xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion" Version="2.0">
//!   <saml2:Issuer>ionport-emulator-mingle</saml2:Issuer>
//!   <saml2:Subject><saml2:NameID>alice</saml2:NameID></saml2:Subject>
//!   <saml2:Conditions NotOnOrAfter="2026-12-07T12:00:00Z">
//!     <saml2:AudienceRestriction><saml2:Audience>{token URL}</saml2:Audience></saml2:AudienceRestriction>
//!   </saml2:Conditions>
//!   <saml2:Signature>{hex HMAC-SHA256}</saml2:Signature>
//! </saml2:Assertion>
//! ```
//!
//! Instead of an XML-DSig over a certificate, the signature is the lowercase hex
//! HMAC-SHA256, under [`MINGLE_SIGNING_KEY`], of the decoded text with the whole
//! `<saml2:Signature>…</saml2:Signature>` element removed. Elements are found by these
//! exact names; the issuer must be [`MINGLE_ISSUER`], the subject one of the emulated
//! users, the audience the tenant's token endpoint URL, and `NotOnOrAfter` (RFC 3339, UTC)
//! in the future. Anything else is `invalid_grant`. No refresh token is issued (RFC 7521
//! §5.2 advises against it): the embedder presents a fresh assertion instead.

use std::collections::HashMap;
use std::time::SystemTime;

use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use hmac::{KeyInit as _, Mac as _};

use super::{oauth_error, token_response};
use crate::state::{Shared, lock};
use crate::users::EMULATED_USERS;

/// The grant type of RFC 7522.
pub(super) const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:saml2-bearer";
/// The issuer of the emulated Ming.le's assertions.
pub(crate) const MINGLE_ISSUER: &str = "ionport-emulator-mingle";
/// The key the emulated Ming.le signs assertions with (published, not a secret).
pub(crate) const MINGLE_SIGNING_KEY: &str = "ionport-emulator-mingle-signing-key";

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The text between `<saml2:{name}…>` and `</saml2:{name}>`, and the opening tag.
fn element<'a>(xml: &'a str, name: &str) -> Option<(&'a str, &'a str)> {
    let open = format!("<saml2:{name}");
    let close = format!("</saml2:{name}>");
    // `<saml2:Audience` must not find `<saml2:AudienceRestriction`.
    let start = xml.match_indices(&open).map(|(i, _)| i).find(|&i| {
        xml[i + open.len()..]
            .chars()
            .next()
            .is_some_and(|c| c == '>' || c.is_whitespace())
    })?;
    let tag_end = start + xml[start..].find('>')?;
    let end = tag_end + xml[tag_end..].find(&close)?;
    Some((&xml[start..=tag_end], &xml[tag_end + 1..end]))
}

fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

/// The signed-in user of a valid assertion, or why it is refused.
fn verify(assertion: &str, audience: &str) -> Result<String, &'static str> {
    let trimmed = assertion.trim().trim_end_matches('=');
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(trimmed)
        .map_err(|_| "Malformed assertion: not base64url")?;
    let xml = String::from_utf8(bytes).map_err(|_| "Malformed assertion: not UTF-8 text")?;
    if !xml.trim_start().starts_with("<saml2:Assertion") {
        return Err("Malformed assertion: no saml2:Assertion element");
    }
    let (sig_tag, sig_hex) =
        element(&xml, "Signature").ok_or("Malformed assertion: no saml2:Signature element")?;
    let sig_start = xml.find(sig_tag).unwrap_or_default();
    let sig_end = sig_start + sig_tag.len() + sig_hex.len() + "</saml2:Signature>".len();
    let signed = format!("{}{}", &xml[..sig_start], &xml[sig_end..]);
    let sig = decode_hex(sig_hex.trim()).ok_or("Malformed assertion: the signature is not hex")?;
    let mut mac = HmacSha256::new_from_slice(MINGLE_SIGNING_KEY.as_bytes())
        .map_err(|_| "Signing key unusable")?;
    mac.update(signed.as_bytes());
    mac.verify_slice(&sig)
        .map_err(|_| "Assertion signature does not verify")?;
    let (_, issuer) = element(&xml, "Issuer").ok_or("Malformed assertion: no saml2:Issuer")?;
    if issuer.trim() != MINGLE_ISSUER {
        return Err("Assertion issuer is not a trusted identity provider");
    }
    let (_, name_id) = element(&xml, "NameID").ok_or("Malformed assertion: no saml2:NameID")?;
    let user = name_id.trim();
    if !EMULATED_USERS.contains(&user) {
        return Err("Assertion subject is not a user of this tenant");
    }
    let (conditions, _) =
        element(&xml, "Conditions").ok_or("Malformed assertion: no saml2:Conditions")?;
    let not_after = attribute(conditions, "NotOnOrAfter")
        .and_then(|t| humantime::parse_rfc3339(t).ok())
        .ok_or("Malformed assertion: Conditions has no RFC 3339 NotOnOrAfter")?;
    if SystemTime::now() >= not_after {
        return Err("Assertion expired (NotOnOrAfter is past)");
    }
    let (_, aud) = element(&xml, "Audience").ok_or("Malformed assertion: no saml2:Audience")?;
    if aud.trim() != audience {
        return Err("Assertion audience is not this authorization server's token endpoint");
    }
    Ok(user.to_owned())
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The SAML bearer grant (the client is already authenticated).
pub(super) fn grant(st: &Shared, form: &HashMap<String, String>) -> Response {
    let Some(assertion) = form.get("assertion").filter(|a| !a.is_empty()) else {
        return oauth_error(
            st,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "assertion is missing",
        );
    };
    let audience = format!("{}/{}/as/token.oauth2", st.base_url, st.config.tenant);
    match verify(assertion, &audience) {
        Ok(user) => {
            let (_, issued) = lock(&st.tokens).issue_for(st.config.token_ttl, false, Some(user));
            token_response(st, issued)
        }
        Err(why) => {
            tracing::info!(why, "SAML assertion refused");
            oauth_error(st, StatusCode::BAD_REQUEST, "invalid_grant", why)
        }
    }
}
