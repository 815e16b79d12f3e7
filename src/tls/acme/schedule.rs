//! When to renew: at two thirds of the certificate's lifetime with a little
//! jitter (so a fleet does not renew in step), and after a failure with a
//! back-off that doubles but stays well inside the time left.

use std::time::Duration;

/// Unix seconds at which a certificate valid from `not_before` to
/// `not_after` is renewed; `jitter` in [0, 1) spreads it over the 2% of
/// the lifetime before that point.
pub fn renew_at(not_before: i64, not_after: i64, jitter: f64) -> i64 {
    let lifetime = (not_after - not_before).max(0);
    let two_thirds = not_before + lifetime * 2 / 3;
    two_thirds - (lifetime as f64 * 0.02 * jitter.clamp(0.0, 1.0)) as i64
}

/// The wait after `failures` consecutive failures (1 = the first) of a
/// certificate with `lifetime` seconds: from a sixtieth of the lifetime
/// (at least a second, at most a minute), doubling, capped at an hour and
/// at a sixth of the lifetime, so even a short-lived certificate is retried
/// several times before it expires.
pub fn backoff(failures: u32, lifetime: i64) -> Duration {
    let lifetime = lifetime.max(1) as u64;
    let base = (lifetime / 60).clamp(1, 60);
    let cap = (lifetime / 6).clamp(1, 3600);
    let exp = failures.saturating_sub(1).min(20);
    Duration::from_secs(base.saturating_mul(1 << exp).min(cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_comes_at_two_thirds_minus_up_to_two_percent() {
        let day = 86_400;
        assert_eq!(renew_at(0, 90 * day, 0.0), 60 * day);
        let early = renew_at(0, 90 * day, 0.999);
        assert!(early < 60 * day && early > 60 * day - 2 * day, "{early}");
    }

    #[test]
    fn backoff_doubles_and_stays_within_the_lifetime() {
        let ninety_days = 90 * 86_400;
        assert_eq!(backoff(1, ninety_days), Duration::from_secs(60));
        assert_eq!(backoff(2, ninety_days), Duration::from_secs(120));
        assert_eq!(backoff(30, ninety_days), Duration::from_secs(3600));
        assert_eq!(backoff(1, 60), Duration::from_secs(1));
        assert_eq!(backoff(9, 60), Duration::from_secs(10));
    }
}
