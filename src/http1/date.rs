//! The `Date` field value (RFC 9110 §6.6.1), formatted at most once a
//! second per thread and copied from there into every response head.

use std::cell::Cell;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// An IMF-fixdate is always 29 bytes: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const DATE_LEN: usize = 29;

thread_local! {
    static CACHED: Cell<(u64, [u8; DATE_LEN])> = const { Cell::new((u64::MAX, [0; DATE_LEN])) };
    /// Until when (on the monotonic clock) [`at_instant`]'s last value
    /// holds: the wall clock's next second.
    static UNTIL: Cell<Option<(Instant, [u8; DATE_LEN])>> = const { Cell::new(None) };
}

/// The HTTP date at `t`, an instant the caller read already: no clock read
/// while `t` falls in the second of the last value (nginx reads the wall
/// clock once per event loop turn for the same reason). The wall clock is
/// read once a second, so a step of it shows within a second.
pub fn at_instant(t: Instant) -> [u8; DATE_LEN] {
    UNTIL.with(|c| {
        if let Some((until, value)) = c.get() {
            if t < until {
                return value;
            }
        }
        let wall = SystemTime::now();
        let value = at(wall);
        let into = wall
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        // `t` was read before `wall`: the value is retired a little early,
        // never late.
        let until = t + Duration::from_nanos(u64::from(1_000_000_000 - into.min(999_999_999)));
        c.set(Some((until, value)));
        value
    })
}

/// Now, as an HTTP date.
pub fn now() -> [u8; DATE_LEN] {
    at(SystemTime::now())
}

/// `t` as an HTTP date, from this thread's cache when `t` falls in the
/// second last formatted.
pub fn at(t: SystemTime) -> [u8; DATE_LEN] {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    CACHED.with(|c| {
        let (cached_secs, value) = c.get();
        if cached_secs == secs {
            return value;
        }
        let mut value = [0u8; DATE_LEN];
        let mut w = &mut value[..];
        // 29 bytes for every date from 1970 to 9999: cannot fall short.
        let _ = write!(
            w,
            "{}",
            httpdate::HttpDate::from(UNIX_EPOCH + std::time::Duration::from_secs(secs))
        );
        c.set((secs, value));
        value
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_and_caches_per_second() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(&at(t), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            &at(t + Duration::from_millis(999)),
            b"Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            &at(t + Duration::from_secs(1)),
            b"Sun, 06 Nov 1994 08:49:38 GMT"
        );
        let parsed = httpdate::parse_http_date(std::str::from_utf8(&now()).unwrap_or(""));
        assert!(parsed.is_ok(), "{:?}", String::from_utf8_lossy(&now()));
    }

    #[test]
    fn an_instants_date_is_the_wall_clocks_and_moves_on_with_it() {
        let secs = |v: [u8; DATE_LEN]| {
            let text = String::from_utf8_lossy(&v).into_owned();
            httpdate::parse_http_date(&text)
                .map(|t| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
                .unwrap_or(0)
        };
        let wall = |d: Duration| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or(d)
                .as_secs()
        };
        let before = wall(Duration::ZERO);
        let t = Instant::now();
        let first = secs(at_instant(t));
        assert!((before..=wall(Duration::ZERO)).contains(&first));
        // The same instant again: the cached value.
        assert_eq!(at_instant(t), at_instant(t));
        // Two seconds on: a later second, read from the wall clock again.
        let later = secs(at_instant(t + Duration::from_secs(2)));
        assert!(later >= first, "{later} after {first}");
        let until = UNTIL.with(|c| c.get()).map(|(u, _)| u);
        assert!(until.is_some_and(|u| u > t + Duration::from_secs(2)));
    }
}
