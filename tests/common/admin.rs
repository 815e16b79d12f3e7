//! Admin-listener helpers for end-to-end tests: a config with the admin
//! listener on port 0, GET/POST to it, and a parser for the Prometheus
//! exposition that `/metrics` serves.

use super::{send, TestClient};
use bytes::Bytes;
use farmgate::Running;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::Full;

/// Turns `farm_config`'s disabled admin section into one on 127.0.0.1:0,
/// with `token` when given.
pub fn with_admin(cfg: &str, token: Option<&str>) -> String {
    let admin = match token {
        Some(t) => format!("admin:\n  bind: \"127.0.0.1:0\"\n  token: \"{t}\"\n"),
        None => "admin:\n  bind: \"127.0.0.1:0\"\n".to_string(),
    };
    assert!(
        cfg.contains("admin:\n  enabled: false\n"),
        "not a farm_config"
    );
    cfg.replace("admin:\n  enabled: false\n", &admin)
}

pub fn admin_url(fg: &Running, path: &str) -> String {
    format!("http://{}{path}", fg.admin_addr().expect("admin listener"))
}

pub async fn admin_get(
    c: &TestClient,
    fg: &Running,
    path: &str,
) -> (StatusCode, HeaderMap, String) {
    super::get(c, &admin_url(fg, path)).await
}

/// POSTs to the admin listener, with `Authorization: Bearer <token>` when given.
pub async fn admin_post(
    c: &TestClient,
    fg: &Running,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, HeaderMap, String) {
    let mut req = Request::post(admin_url(fg, path));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    send(c, req.body(Full::new(Bytes::new())).unwrap()).await
}

/// `/api/status` as JSON.
pub async fn status_json(c: &TestClient, fg: &Running) -> serde_json::Value {
    let (status, _, body) = admin_get(c, fg, "/api/status").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// `/api/status` of the admin listener at `addr` (a farmgate process).
pub async fn status_json_at(addr: std::net::SocketAddr) -> serde_json::Value {
    let (status, _, body) =
        super::get(&super::client(), &format!("http://{addr}/api/status")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The server `server` of farm `farm` in a status document.
pub fn server<'a>(st: &'a serde_json::Value, farm: &str, server: &str) -> &'a serde_json::Value {
    st["farms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == farm)
        .and_then(|f| {
            f["servers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == server)
        })
        .unwrap_or_else(|| panic!("no server {farm}/{server} in {st:#}"))
}

/// One sample of the exposition: name, labels in order, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// A scraped exposition.
#[derive(Debug)]
pub struct Scrape(pub Vec<Sample>);

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        assert!(text.ends_with("# EOF\n"), "exposition must end with # EOF");
        let mut out = Vec::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, parse_labels(rest.strip_suffix('}').unwrap())),
                None => (series, Vec::new()),
            };
            let value = match value {
                "+Inf" => f64::INFINITY,
                v => v
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value in {line:?}")),
            };
            out.push(Sample {
                name: name.to_string(),
                labels,
                value,
            });
        }
        Scrape(out)
    }

    /// The value of the sample `name` whose labels include all of `labels`
    /// and no others; None when there is none.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<_> = self
            .0
            .iter()
            .filter(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
            })
            .collect();
        assert!(
            found.len() <= 1,
            "{name} {labels:?} is not unique: {found:?}"
        );
        found.first().map(|s| s.value)
    }

    /// Like `get`, failing the test when the sample is missing.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no sample {name} {labels:?} in the scrape"))
    }

    /// Every sample named `name`.
    pub fn all(&self, name: &str) -> Vec<&Sample> {
        self.0.iter().filter(|s| s.name == name).collect()
    }
}

fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").unwrap();
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().unwrap() {
                (_, '\\') => match chars.next().unwrap().1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        out.push((key.to_string(), value));
        rest = after[end + 1..].trim_start_matches(',');
    }
    out
}

/// Scrapes `/metrics`.
pub async fn scrape(c: &TestClient, fg: &Running) -> Scrape {
    let (status, headers, body) = admin_get(c, fg, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    Scrape::parse(&body)
}
