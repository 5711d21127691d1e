//! The token store: access tokens, rotating refresh tokens, revocation.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::util::random_token;

#[derive(Debug)]
struct AccessToken {
    expires_at: Instant,
    family: Option<u64>,
    revoked: bool,
    /// The signed-in user of an authorization-code or SAML grant; `None` for the service
    /// account.
    subject: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefreshState {
    Active,
    Rotated,
    Revoked,
}

#[derive(Debug)]
struct RefreshToken {
    family: u64,
    state: RefreshState,
    last_used: Instant,
    subject: Option<String>,
}

/// A newly issued token pair.
#[derive(Debug)]
pub(crate) struct Issued {
    pub access_token: String,
    pub refresh_token: Option<String>,
}

/// Why a refresh token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefreshRefusal {
    Unknown,
    Reused,
    Revoked,
    Idle,
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BearerRefusal {
    Unknown,
    Expired,
    Revoked,
}

/// What an authorization code was issued for: the token request must present the same
/// client and redirect URI, and a verifier whose S256 is the challenge.
#[derive(Debug, Clone)]
pub(crate) struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: String,
    /// `BASE64URL(SHA256(code_verifier))`, as sent to the authorization endpoint.
    pub challenge: String,
    /// The signed-in user.
    pub subject: String,
}

#[derive(Debug)]
struct AuthCode {
    grant: CodeGrant,
    expires_at: Instant,
    /// Set once a token request presented it: codes are single-use.
    spent: bool,
    /// The family issued from it, revoked if the code is presented again (RFC 6749 §4.1.2).
    family: Option<u64>,
}

/// Why an authorization code was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodeRefusal {
    Unknown,
    Expired,
    Reused,
    OtherClient,
    OtherRedirect,
    WrongVerifier,
}

/// All tokens issued by this emulator.
#[derive(Debug, Default)]
pub(crate) struct TokenStore {
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, RefreshToken>,
    codes: HashMap<String, AuthCode>,
    next_family: u64,
}

impl TokenStore {
    /// Issues an access token and, when asked, a refresh token in a new family, for the
    /// service account.
    pub fn issue(&mut self, ttl: Duration, with_refresh: bool) -> Issued {
        self.issue_for(ttl, with_refresh, None).1
    }

    /// Issues a pair in a new family for `subject` (a signed-in user; `None` for the
    /// service account); returns the family too, so that a reused authorization code can
    /// revoke what it issued.
    pub fn issue_for(
        &mut self,
        ttl: Duration,
        with_refresh: bool,
        subject: Option<String>,
    ) -> (u64, Issued) {
        self.prune();
        self.next_family += 1;
        let family = self.next_family;
        (family, self.issue_in(family, ttl, with_refresh, subject))
    }

    fn issue_in(
        &mut self,
        family: u64,
        ttl: Duration,
        with_refresh: bool,
        subject: Option<String>,
    ) -> Issued {
        let now = Instant::now();
        let access_token = random_token();
        self.access.insert(
            access_token.clone(),
            AccessToken {
                expires_at: now + ttl,
                family: Some(family),
                revoked: false,
                subject: subject.clone(),
            },
        );
        let refresh_token = with_refresh.then(|| {
            let rt = random_token();
            self.refresh.insert(
                rt.clone(),
                RefreshToken {
                    family,
                    state: RefreshState::Active,
                    last_used: now,
                    subject,
                },
            );
            rt
        });
        Issued {
            access_token,
            refresh_token,
        }
    }

    /// Rotates a refresh token: the presented one dies, a new pair is issued in its family.
    pub fn refresh(
        &mut self,
        token: &str,
        ttl: Duration,
        idle: Duration,
    ) -> Result<Issued, RefreshRefusal> {
        let rt = self.refresh.get_mut(token).ok_or(RefreshRefusal::Unknown)?;
        match rt.state {
            RefreshState::Rotated => return Err(RefreshRefusal::Reused),
            RefreshState::Revoked => return Err(RefreshRefusal::Revoked),
            RefreshState::Active => {}
        }
        if rt.last_used.elapsed() > idle {
            rt.state = RefreshState::Revoked;
            return Err(RefreshRefusal::Idle);
        }
        rt.state = RefreshState::Rotated;
        let (family, subject) = (rt.family, rt.subject.clone());
        Ok(self.issue_in(family, ttl, true, subject))
    }

    /// Revokes a token (refresh or access). Revoking a refresh token revokes its whole
    /// family: every refresh token and access token issued from the same password grant.
    /// Returns whether anything was revoked.
    pub fn revoke(&mut self, token: &str) -> bool {
        if let Some(family) = self.refresh.get(token).map(|rt| rt.family) {
            self.revoke_family(family);
            return true;
        }
        if let Some(at) = self.access.get_mut(token) {
            at.revoked = true;
            return true;
        }
        false
    }

    /// A new authorization code for `grant`, good for `lifetime`.
    pub fn new_code(&mut self, grant: CodeGrant, lifetime: Duration) -> String {
        let now = Instant::now();
        self.codes
            .retain(|_, c| c.expires_at > now || c.family.is_some());
        let code = random_token();
        self.codes.insert(
            code.clone(),
            AuthCode {
                grant,
                expires_at: now + lifetime,
                spent: false,
                family: None,
            },
        );
        code
    }

    /// Redeems an authorization code. Any presentation spends it, a failed one too (a
    /// verifier cannot be guessed on one code); a second presentation of a redeemed code
    /// also revokes what it issued. `verifies` says whether the request's verifier
    /// matches the code's challenge.
    pub fn redeem(
        &mut self,
        code: &str,
        client_id: &str,
        redirect_uri: &str,
        verifies: impl FnOnce(&str) -> bool,
        ttl: Duration,
        with_refresh: bool,
    ) -> Result<Issued, CodeRefusal> {
        let c = self.codes.get_mut(code).ok_or(CodeRefusal::Unknown)?;
        if c.spent {
            if let Some(family) = c.family {
                self.revoke_family(family);
            }
            return Err(CodeRefusal::Reused);
        }
        c.spent = true;
        if Instant::now() >= c.expires_at {
            return Err(CodeRefusal::Expired);
        }
        if c.grant.client_id != client_id {
            return Err(CodeRefusal::OtherClient);
        }
        if c.grant.redirect_uri != redirect_uri {
            return Err(CodeRefusal::OtherRedirect);
        }
        if !verifies(&c.grant.challenge) {
            return Err(CodeRefusal::WrongVerifier);
        }
        let subject = c.grant.subject.clone();
        let (family, issued) = self.issue_for(ttl, with_refresh, Some(subject));
        if let Some(c) = self.codes.get_mut(code) {
            c.family = Some(family);
        }
        Ok(issued)
    }

    /// Revokes every refresh and access token of `family`.
    pub fn revoke_family(&mut self, family: u64) {
        for rt in self.refresh.values_mut().filter(|rt| rt.family == family) {
            rt.state = RefreshState::Revoked;
        }
        for at in self
            .access
            .values_mut()
            .filter(|at| at.family == Some(family))
        {
            at.revoked = true;
        }
    }

    /// Checks a bearer token; `Ok` carries the signed-in user it was issued to (`None`:
    /// the service account).
    pub fn check(&self, token: &str) -> Result<Option<String>, BearerRefusal> {
        let at = self.access.get(token).ok_or(BearerRefusal::Unknown)?;
        if at.revoked {
            Err(BearerRefusal::Revoked)
        } else if Instant::now() >= at.expires_at {
            Err(BearerRefusal::Expired)
        } else {
            Ok(at.subject.clone())
        }
    }

    /// Number of access tokens that are still valid.
    pub fn active_access_tokens(&self) -> usize {
        let now = Instant::now();
        self.access
            .values()
            .filter(|t| !t.revoked && t.expires_at > now)
            .count()
    }

    fn prune(&mut self) {
        if self.access.len() > 50_000 {
            let now = Instant::now();
            self.access.retain(|_, t| t.expires_at > now && !t.revoked);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_and_revocation() {
        let mut s = TokenStore::default();
        let ttl = Duration::from_secs(60);
        let idle = Duration::from_secs(60);
        let first = s.issue(ttl, true);
        let rt1 = first.refresh_token.clone().unwrap_or_default();
        let second = s.refresh(&rt1, ttl, idle).ok();
        let rt2 = second.and_then(|i| i.refresh_token).unwrap_or_default();
        assert_eq!(
            s.refresh(&rt1, ttl, idle).err(),
            Some(RefreshRefusal::Reused)
        );
        assert!(s.check(&first.access_token).is_ok());
        assert!(s.revoke(&rt2));
        assert_eq!(s.check(&first.access_token), Err(BearerRefusal::Revoked));
        assert_eq!(
            s.refresh(&rt2, ttl, idle).err(),
            Some(RefreshRefusal::Revoked)
        );
    }
}
