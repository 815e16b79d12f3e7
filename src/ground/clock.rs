//! Time as farmgate's state machines count it: a process-relative
//! millisecond stamp cheap enough for the request path, and durations as
//! operators read them.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Milliseconds since the process first asked, never 0 (0 means "unset" in
/// the atomics that store these stamps).
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    start.elapsed().as_millis() as u64 + 1
}

/// Renders a duration for log lines and messages: `250ms`, `30s`, `2m30s`.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if !ms.is_multiple_of(1000) && ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else if ms < 60_000 {
        format!("{}s", ms / 1000)
    } else {
        let s = ms / 1000;
        match s % 60 {
            0 => format!("{}m", s / 60),
            r => format!("{}m{r}s", s / 60),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_millis(250)), "250ms");
        assert_eq!(human(Duration::from_millis(1500)), "1.5s");
        assert_eq!(human(Duration::from_secs(30)), "30s");
        assert_eq!(human(Duration::from_secs(150)), "2m30s");
        assert_eq!(human(Duration::from_secs(300)), "5m");
        assert!(now_ms() >= 1);
    }
}
