//! The token store: access tokens, rotating refresh tokens, revocation.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::util::random_token;

#[derive(Debug)]
struct AccessToken {
    expires_at: Instant,
    family: Option<u64>,
    revoked: bool,
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

/// All tokens issued by this emulator.
#[derive(Debug, Default)]
pub(crate) struct TokenStore {
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, RefreshToken>,
    next_family: u64,
}

impl TokenStore {
    /// Issues an access token and, when asked, a refresh token in a new family.
    pub fn issue(&mut self, ttl: Duration, with_refresh: bool) -> Issued {
        self.prune();
        self.next_family += 1;
        let family = self.next_family;
        self.issue_in(family, ttl, with_refresh)
    }

    fn issue_in(&mut self, family: u64, ttl: Duration, with_refresh: bool) -> Issued {
        let now = Instant::now();
        let access_token = random_token();
        self.access.insert(
            access_token.clone(),
            AccessToken {
                expires_at: now + ttl,
                family: with_refresh.then_some(family),
                revoked: false,
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
        let family = rt.family;
        Ok(self.issue_in(family, ttl, true))
    }

    /// Revokes a token (refresh or access). Revoking a refresh token revokes its whole
    /// family: every refresh token and access token issued from the same password grant.
    /// Returns whether anything was revoked.
    pub fn revoke(&mut self, token: &str) -> bool {
        if let Some(family) = self.refresh.get(token).map(|rt| rt.family) {
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
            return true;
        }
        if let Some(at) = self.access.get_mut(token) {
            at.revoked = true;
            return true;
        }
        false
    }

    /// Checks a bearer token.
    pub fn check(&self, token: &str) -> Result<(), BearerRefusal> {
        let at = self.access.get(token).ok_or(BearerRefusal::Unknown)?;
        if at.revoked {
            Err(BearerRefusal::Revoked)
        } else if Instant::now() >= at.expires_at {
            Err(BearerRefusal::Expired)
        } else {
            Ok(())
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
