//! Check reports: what [`crate::Connector::check`] answers, built the same way by every
//! connector.

use serde_json::Value;

use crate::retry::host_failure;
use crate::{CheckReport, ConnectorError};

/// A failed check: `part` is what failed (`token`, `rights`, `product`, `company`,
/// `settings` or `network`), `message` what to do about it.
pub fn failed(part: &str, message: impl Into<String>) -> CheckReport {
    failed_with(part, message, Value::Null)
}

/// A failed check that also tells what was found before the failure (`details`).
pub fn failed_with(part: &str, message: impl Into<String>, details: Value) -> CheckReport {
    CheckReport {
        success: false,
        message: message.into(),
        failed_part: Some(part.into()),
        details,
    }
}

/// A passed check: `message` says who is connected to what, `details` the facts found.
pub fn passed(message: impl Into<String>, details: Value) -> CheckReport {
    CheckReport {
        success: true,
        message: message.into(),
        failed_part: None,
        details,
    }
}

/// A gateway call that got no answer, as a check report ([`host_failure`]): a
/// cancellation stays an error, for the check is not to report on what it did not finish.
pub fn unanswered(e: ConnectorError) -> Result<CheckReport, ConnectorError> {
    unanswered_with(e, Value::Null)
}

/// [`unanswered`], with what was found before the call (`details`).
pub fn unanswered_with(e: ConnectorError, details: Value) -> Result<CheckReport, ConnectorError> {
    if e.is_cancelled() {
        return Err(e);
    }
    let (part, message) = host_failure(&e);
    Ok(failed_with(part, message, details))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_report_names_its_part_and_a_passed_one_none() {
        let f = failed("rights", "no rights");
        assert!(!f.success && f.failed_part.as_deref() == Some("rights"));
        let p = passed("connected", Value::from(1));
        assert!(p.success && p.failed_part.is_none() && p.details == 1);
        let d = failed_with("company", "no company", Value::from(2));
        assert!(!d.success && d.failed_part.as_deref() == Some("company") && d.details == 2);
    }

    #[test]
    fn a_cancelled_call_stays_an_error_and_any_other_is_a_network_report() {
        assert!(unanswered(ConnectorError::cancelled()).is_err());
        let r = unanswered(ConnectorError::gateway("connection refused")).unwrap();
        assert_eq!(r.failed_part.as_deref(), Some("network"));
        assert!(r.message.contains("connection refused"), "{}", r.message);
        let d = unanswered_with(ConnectorError::gateway("refused"), Value::from(3)).unwrap();
        assert!(d.failed_part.as_deref() == Some("network") && d.details == 3);
    }
}
