//! Content negotiation by `Accept-Encoding` (RFC 9110 §12.5.3): which of
//! the configured algorithms a client gets, from its q-values, with ties
//! broken by the configured order of preference.

use http::header::{HeaderMap, ACCEPT_ENCODING};

/// A content coding farmgate can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Gzip,
    Brotli,
    Zstd,
}

impl Algorithm {
    pub const ALL: [Algorithm; 3] = [Algorithm::Brotli, Algorithm::Zstd, Algorithm::Gzip];

    /// The token in `Accept-Encoding`, `Content-Encoding` and the config.
    pub fn token(self) -> &'static str {
        match self {
            Algorithm::Gzip => "gzip",
            Algorithm::Brotli => "br",
            Algorithm::Zstd => "zstd",
        }
    }

    pub fn from_token(t: &str) -> Option<Algorithm> {
        match t {
            "gzip" => Some(Algorithm::Gzip),
            "br" => Some(Algorithm::Brotli),
            "zstd" => Some(Algorithm::Zstd),
            _ => None,
        }
    }

    /// A small dense index (per-algorithm counters and cached variants).
    #[inline]
    pub fn index(self) -> usize {
        match self {
            Algorithm::Gzip => 0,
            Algorithm::Brotli => 1,
            Algorithm::Zstd => 2,
        }
    }
}

/// q-values in thousandths, as RFC 9110 writes them (at most 3 decimals).
type Q = u16;

/// The algorithm to use for a request whose head is `headers`, among
/// `preference` (best first). `None`: send the body as it is, which is
/// also the answer when the client accepts nothing we offer, even
/// `identity;q=0` (a 415 or 406 would help nobody).
pub fn choose(headers: &HeaderMap, preference: &[Algorithm]) -> Option<Algorithm> {
    let mut q = [None::<Q>; 3];
    let mut star = None::<Q>;
    let mut any = false;
    for value in headers.get_all(ACCEPT_ENCODING) {
        let Ok(text) = value.to_str() else { continue };
        for item in text.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            if coding.is_empty() {
                continue;
            }
            // `identity` needs no work: whatever its weight, a client that
            // accepts nothing we offer gets the body as it is.
            let Some(weight) = parse_q(parts) else {
                continue;
            };
            any = true;
            let slot = if coding == "*" {
                &mut star
            } else if let Some(a) = lookup(coding) {
                &mut q[a.index()]
            } else {
                continue;
            };
            // A coding listed twice: the higher weight wins.
            *slot = Some(slot.map_or(weight, |old: Q| old.max(weight)));
        }
    }
    if !any {
        return None;
    }
    let mut best: Option<(Algorithm, Q)> = None;
    for &a in preference {
        let w = q[a.index()].or(star).unwrap_or(0);
        if w > 0 && best.is_none_or(|(_, bw)| w > bw) {
            best = Some((a, w));
        }
    }
    best.map(|(a, _)| a)
}

fn lookup(coding: &str) -> Option<Algorithm> {
    Algorithm::ALL
        .into_iter()
        .find(|a| coding.eq_ignore_ascii_case(a.token()))
        // x-gzip is gzip (RFC 9110 §8.4.1.3).
        .or_else(|| {
            coding
                .eq_ignore_ascii_case("x-gzip")
                .then_some(Algorithm::Gzip)
        })
}

/// The weight of one list member from its parameters; `None` when it is
/// malformed (the member is ignored, as if absent).
fn parse_q<'a>(params: impl Iterator<Item = &'a str>) -> Option<Q> {
    let mut weight = 1000;
    for p in params {
        let Some((name, value)) = p.split_once('=') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case("q") {
            continue;
        }
        weight = parse_qvalue(value.trim())?;
    }
    Some(weight)
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`
fn parse_qvalue(v: &str) -> Option<Q> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: Q = 0;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += Q::from(b - b'0') * [100, 10, 1][i];
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use Algorithm::*;

    const PREF: [Algorithm; 3] = [Brotli, Zstd, Gzip];

    fn pick(ae: &str) -> Option<Algorithm> {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT_ENCODING, HeaderValue::from_str(ae).expect("valid"));
        choose(&h, &PREF)
    }

    #[test]
    fn no_header_means_identity() {
        assert_eq!(choose(&HeaderMap::new(), &PREF), None);
    }

    #[test]
    fn ties_follow_the_configured_order() {
        assert_eq!(pick("gzip, deflate, br, zstd"), Some(Brotli));
        assert_eq!(pick("gzip, zstd"), Some(Zstd));
        let mut h = HeaderMap::new();
        h.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip, br"));
        assert_eq!(choose(&h, &[Gzip, Brotli]), Some(Gzip));
    }

    #[test]
    fn q_values_outrank_the_order() {
        assert_eq!(pick("br;q=0.5, gzip;q=0.8"), Some(Gzip));
        assert_eq!(pick("br;q=0.999, gzip;Q=1.000"), Some(Gzip));
        assert_eq!(pick("br;q=0, gzip"), Some(Gzip));
        assert_eq!(pick("br;q=0, gzip;q=0"), None);
    }

    #[test]
    fn star_covers_what_is_not_named() {
        assert_eq!(pick("*"), Some(Brotli));
        assert_eq!(pick("br;q=0, *;q=0.5"), Some(Zstd));
        assert_eq!(pick("*;q=0"), None);
        assert_eq!(pick("gzip;q=0.2, *;q=0.1"), Some(Gzip));
    }

    #[test]
    fn identity_and_unknown_codings_pick_nothing() {
        assert_eq!(pick("identity"), None);
        assert_eq!(pick("identity;q=0"), None);
        assert_eq!(pick("deflate, compress"), None);
        assert_eq!(pick("identity;q=0, gzip"), Some(Gzip));
    }

    #[test]
    fn malformed_members_are_ignored() {
        assert_eq!(pick("br;q=2, gzip"), Some(Gzip));
        assert_eq!(pick("br;q=0.1234, gzip;q=0.1"), Some(Gzip));
        assert_eq!(pick("br;q=abc"), None);
        assert_eq!(pick(" , ,GZIP ,"), Some(Gzip));
        assert_eq!(pick("x-gzip"), Some(Gzip));
    }

    #[test]
    fn a_coding_listed_twice_keeps_its_best_weight() {
        assert_eq!(pick("br;q=0, br;q=0.9, gzip;q=0.5"), Some(Brotli));
    }
}
