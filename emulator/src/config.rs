//! The emulator's configuration: tenant, port, data size, token rules, quota, credentials.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The default tenant id.
pub const DEFAULT_TENANT: &str = "IONPORT_DEMO";
/// The default seed of the data generator.
pub const DEFAULT_SEED: u64 = 42;
/// The default scale: number of M3 customers of the main company.
pub const DEFAULT_SCALE: u64 = 1_000;

/// Everything an emulator instance is started with. `Default` gives the demo tenant on a
/// free port with fixed demo credentials.
#[derive(Clone)]
pub struct EmulatorConfig {
    /// Tenant id (`ti`), the first path segment of every API.
    pub tenant: String,
    /// TCP port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Seed of the deterministic data generator.
    pub seed: u64,
    /// Number of M3 customers (LN business partners) of company 100; other tables are sized
    /// from it (see [`crate::data::Dataset`]).
    pub scale: u64,
    /// Access-token lifetime (`expires_in`), 7200 s by default.
    pub token_ttl: Duration,
    /// Whether token responses carry a refresh token ("Issue Refresh Token" on the app).
    pub issue_refresh_tokens: bool,
    /// Whether the app may use the password grant (off: 400 `unauthorized_client`, as
    /// for an app whose grant was disabled).
    pub password_grant: bool,
    /// A refresh token idle for longer than this is dead (about 30 days on the real system).
    pub refresh_token_idle: Duration,
    /// Per-token quota; `None` for no quota (the real gateway's default is 1000 per 60 s).
    pub quota: Option<Quota>,
    /// Count the quota for the whole tenant instead of per access token (a gateway
    /// policy can be global as well as per user); off by default.
    pub quota_per_tenant: bool,
    /// The credentials the authorization server accepts.
    pub credentials: EmulatorCredentials,
    /// How long a Compass job stays `RUNNING` before it is `FINISHED` (or `FAILED`).
    pub job_run_time: Duration,
    /// The gateway's target timeout: a backend slower than this is answered with 504.
    pub gateway_timeout: Duration,
    /// LN OData page size when the client sends no `Prefer: odata.maxpagesize`.
    pub ln_default_page_size: usize,
    /// Time every API call takes before it is answered, as a real gateway's round trip
    /// does (100–300 ms against a cloud tenant); zero on loopback by default.
    pub latency: Duration,
    /// Up to this much more, drawn uniformly per call.
    pub latency_jitter: Duration,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            tenant: DEFAULT_TENANT.to_owned(),
            port: 0,
            seed: DEFAULT_SEED,
            scale: DEFAULT_SCALE,
            token_ttl: Duration::from_secs(7200),
            issue_refresh_tokens: true,
            password_grant: true,
            refresh_token_idle: Duration::from_secs(30 * 24 * 3600),
            quota: None,
            quota_per_tenant: false,
            credentials: EmulatorCredentials::default(),
            job_run_time: Duration::from_millis(500),
            gateway_timeout: Duration::from_secs(60),
            ln_default_page_size: 1000,
            latency: Duration::ZERO,
            latency_jitter: Duration::ZERO,
        }
    }
}

impl fmt::Debug for EmulatorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatorConfig")
            .field("tenant", &self.tenant)
            .field("port", &self.port)
            .field("seed", &self.seed)
            .field("scale", &self.scale)
            .field("token_ttl", &self.token_ttl)
            .field("issue_refresh_tokens", &self.issue_refresh_tokens)
            .field("password_grant", &self.password_grant)
            .field("refresh_token_idle", &self.refresh_token_idle)
            .field("quota", &self.quota)
            .field("credentials", &self.credentials)
            .field("latency", &self.latency)
            .field("latency_jitter", &self.latency_jitter)
            .field("job_run_time", &self.job_run_time)
            .field("gateway_timeout", &self.gateway_timeout)
            .field("ln_default_page_size", &self.ln_default_page_size)
            .finish()
    }
}

/// A quota: at most `requests` per `per`, counted per access token (fixed window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests allowed per window.
    pub requests: u32,
    /// The window.
    pub per: Duration,
}

impl FromStr for Quota {
    type Err = String;

    /// Parses `N/SECONDS`, e.g. `1000/60`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (n, secs) = s
            .split_once('/')
            .ok_or_else(|| format!("quota '{s}' is not N/SECONDS"))?;
        let requests: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("quota '{s}': '{n}' is not a request count"))?;
        let per = parse_duration(secs)?;
        if requests == 0 || per.is_zero() {
            return Err(format!("quota '{s}' must be positive"));
        }
        Ok(Self { requests, per })
    }
}

/// Parses a duration: a number of seconds (`7200`, `0.5`) or a number with a unit
/// (`500ms`, `30s`, `2m`, `1h`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (e.g. 7200, 500ms, 30s, 2m)"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("'{s}' is not a duration"));
    }
    Ok(Duration::from_secs_f64(v * mult))
}

/// The credentials of the emulated tenant: the authorized app's client id and secret and the
/// service account's access and secret keys. `Debug` masks the secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct EmulatorCredentials {
    /// OAuth client id (`ci`), `TENANT~…`.
    pub client_id: String,
    /// OAuth client secret (`cs`).
    pub client_secret: String,
    /// Service-account access key (`saak`), `TENANT#…`.
    pub saak: String,
    /// Service-account secret key (`sask`).
    pub sask: String,
}

impl EmulatorCredentials {
    /// The fixed demo credentials for a tenant. They are published in the README and are
    /// not secrets.
    #[must_use]
    pub fn demo(tenant: &str) -> Self {
        Self {
            client_id: format!("{tenant}~ionport-demo-client"),
            client_secret: "ionport-demo-client-secret".to_owned(),
            saak: format!("{tenant}#ionport-demo-service-account"),
            sask: "ionport-demo-service-secret".to_owned(),
        }
    }
}

impl Default for EmulatorCredentials {
    fn default() -> Self {
        Self::demo(DEFAULT_TENANT)
    }
}

impl fmt::Debug for EmulatorCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatorCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"***")
            .field("saak", &self.saak)
            .field("sask", &"***")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quota_and_durations() {
        assert_eq!(
            "5/60".parse::<Quota>(),
            Ok(Quota {
                requests: 5,
                per: Duration::from_secs(60)
            })
        );
        assert!("5".parse::<Quota>().is_err());
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("x").is_err());
    }

    #[test]
    fn debug_masks_secrets() {
        let text = format!("{:?}", EmulatorConfig::default());
        assert!(!text.contains("ionport-demo-client-secret"));
        assert!(!text.contains("ionport-demo-service-secret"));
    }
}
