//! Human units in the config file: durations (`500ms`, `5s`, `2m`, `1h`) and
//! sizes (`64KiB`, `8MiB`, `1GB`, plain bytes). Parsed once at load time.

use serde::de::{self, Deserializer, Visitor};
use std::fmt;
use std::time::Duration;

/// Parses `500ms`, `5s`, `1.5s`, `2m`, `1h`, `1d`, or `0`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("duration {t:?} needs a unit: ms, s, m, h or d (e.g. \"5s\")"))?;
    let (num, unit) = t.split_at(split);
    // Exact decimal arithmetic in nanoseconds: through f64, "299ms" came
    // out as 298.999...ms (found by fuzzing).
    let unit_ns: u128 = match unit.trim() {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        other => {
            return Err(format!(
                "duration {t:?} has unknown unit {other:?}; use ms, s, m, h or d"
            ))
        }
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
        return Err(format!("duration {t:?} does not start with a number"));
    }
    let out_of_range = || format!("duration {t:?} is out of range");
    let whole: u128 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| out_of_range())?
    };
    // Digits past the 20th are below a nanosecond for every unit.
    let (mut frac_value, mut frac_scale) = (0u128, 1u128);
    for d in frac.bytes().take(20) {
        frac_value = frac_value * 10 + u128::from(d - b'0');
        frac_scale *= 10;
    }
    let nanos = whole
        .checked_mul(unit_ns)
        .and_then(|n| n.checked_add(frac_value * unit_ns / frac_scale))
        .filter(|n| *n <= 10 * 365 * 86_400_000_000_000)
        .ok_or_else(out_of_range)?;
    Ok(Duration::from_nanos(nanos as u64))
}

/// Parses `64KiB`, `8MiB`, `1GiB`, `10KB`, `512B` or a plain number of bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: u64 = num
        .parse()
        .map_err(|_| format!("size {t:?} does not start with a whole number"))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "k" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "size {t:?} has unknown unit {other:?}; use B, KiB, MiB, GiB, KB, MB or GB"
            ))
        }
    };
    value
        .checked_mul(scale)
        .ok_or_else(|| format!("size {t:?} is out of range"))
}

/// A duration read from YAML as a string like `"5s"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub Duration);

/// A byte size read from YAML as a string like `"8MiB"` or a plain number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Size(pub u64);

impl<'de> serde::Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"500ms\", \"5s\" or \"2m\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                parse_duration(v).map(Dur).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
                if v == 0 {
                    Ok(Dur(Duration::ZERO))
                } else {
                    Err(E::custom(format!(
                        "duration {v} needs a unit: ms, s, m, h or d (e.g. \"{v}s\")"
                    )))
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
                match u64::try_from(v) {
                    Ok(u) => self.visit_u64(u),
                    Err(_) => Err(E::custom("a duration cannot be negative")),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> serde::Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as \"64KiB\" or \"8MiB\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                parse_size(v).map(Size).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn durations_are_exact() {
        // Regression (fuzz target `units`): f64 scaling lost a millisecond.
        assert_eq!(parse_duration("299ms"), Ok(Duration::from_millis(299)));
        assert_eq!(
            parse_duration("88888888.3s"),
            Ok(Duration::from_millis(88_888_888_300))
        );
        assert_eq!(
            parse_duration("88888888299ms"),
            Ok(Duration::from_millis(88_888_888_299))
        );
        assert_eq!(parse_duration("0.001s"), Ok(Duration::from_millis(1)));
        assert_eq!(parse_duration(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.s"), Ok(Duration::from_secs(1)));
        assert_eq!(
            parse_duration("3650d"),
            Ok(Duration::from_secs(3650 * 86400))
        );
        assert!(parse_duration("3651d").is_err());
        assert!(parse_duration("99999999999999999999999999999999999999999s").is_err());
        assert!(parse_duration(".s").is_err());
        assert!(parse_duration("1.2.3s").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64KiB"), Ok(64 * 1024));
        assert_eq!(parse_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("9999999999999GiB").is_err());
    }
}
