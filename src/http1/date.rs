//! The `Date` field value (RFC 9110 §6.6.1), formatted at most once a
//! second per thread and copied from there into every response head.

use std::cell::Cell;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// An IMF-fixdate is always 29 bytes: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const DATE_LEN: usize = 29;

thread_local! {
    static CACHED: Cell<(u64, [u8; DATE_LEN])> = const { Cell::new((u64::MAX, [0; DATE_LEN])) };
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
}
