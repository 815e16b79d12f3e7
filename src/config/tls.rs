//! Compiles the TLS parts of the config: `listeners[].tls` into a
//! [`TlsSpec`] (certificates are loaded and checked here, so `farmgate
//! check` proves them), and the farms' `https://` servers with `farms[].tls`
//! into the [`BackendTlsMap`] the connector uses.

use super::error::Problems;
use super::raw::{RawFarm, RawListenerTls};
use crate::farm::server::parse_address;
use crate::tls::acceptor::MinVersion;
use crate::tls::backend::{self, BackendTarget, BackendTlsError, BackendTlsMap};
use crate::tls::certs::{load_set, CertPaths};
use crate::tls::TlsSpec;
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_secs(2);
/// The ALPN ids farmgate can serve, in the default preference order.
pub const SUPPORTED_ALPN: [&str; 2] = ["h2", "http/1.1"];

/// `listeners[i].tls` (`at`) into a spec with its certificates loaded.
pub fn build_listener_tls(
    raw: &RawListenerTls,
    at: &str,
    p: &mut Problems,
) -> Option<Arc<TlsSpec>> {
    let before = p.0.len();
    if raw.certificates.is_empty() {
        p.add(
            format!("{at}.certificates"),
            "at least one certificate is needed (- cert: chain.pem\n  key: key.pem)",
        );
    }
    let paths: Vec<CertPaths> = raw
        .certificates
        .iter()
        .map(|c| CertPaths {
            cert: c.cert.clone(),
            key: c.key.clone().unwrap_or_else(|| c.cert.clone()),
        })
        .collect();

    let min_version = match raw.min_version.as_ref().map(|v| v.0.as_str()) {
        None | Some("1.2") => MinVersion::Tls12,
        Some("1.3") => MinVersion::Tls13,
        Some(v @ ("1.0" | "1.1")) => {
            p.add(
                format!("{at}.min_version"),
                format!("TLS {v} is not supported (it is broken); use \"1.2\" or \"1.3\""),
            );
            MinVersion::Tls12
        }
        Some(v) => {
            p.add(
                format!("{at}.min_version"),
                format!("unknown TLS version {v:?}; use \"1.2\" or \"1.3\""),
            );
            MinVersion::Tls12
        }
    };

    let alpn_text: Vec<String> = raw
        .alpn
        .clone()
        .unwrap_or_else(|| SUPPORTED_ALPN.iter().map(|s| s.to_string()).collect());
    for (j, id) in alpn_text.iter().enumerate() {
        if !SUPPORTED_ALPN.contains(&id.as_str()) {
            p.add(
                format!("{at}.alpn[{j}]"),
                format!("unknown protocol {id:?}; farmgate speaks \"h2\" and \"http/1.1\""),
            );
        } else if alpn_text[..j].contains(id) {
            p.add(format!("{at}.alpn[{j}]"), format!("{id:?} is listed twice"));
        }
    }

    let handshake_timeout = raw
        .handshake_timeout
        .map_or(DEFAULT_HANDSHAKE_TIMEOUT, |d| d.0);
    if handshake_timeout.is_zero() {
        p.add(format!("{at}.handshake_timeout"), "must be greater than 0");
    }
    let watch_interval = raw.watch_interval.map_or(DEFAULT_WATCH_INTERVAL, |d| d.0);

    let loaded = if paths.is_empty() {
        None
    } else {
        match load_set(&paths) {
            Ok(set) => Some(Arc::new(set)),
            Err(errors) => {
                for e in errors.0 {
                    let which = &paths[e.index];
                    let field = if e.error.file() == which.key && which.key != which.cert {
                        "key"
                    } else {
                        "cert"
                    };
                    p.add(
                        format!("{at}.certificates[{}].{field}", e.index),
                        e.error.to_string(),
                    );
                }
                None
            }
        }
    };
    if p.0.len() != before {
        return None;
    }
    Some(Arc::new(TlsSpec {
        certificates: paths,
        loaded: loaded?,
        min_version,
        alpn: alpn_text.into_iter().map(String::into_bytes).collect(),
        handshake_timeout,
        watch_interval,
    }))
}

/// Client TLS settings for every `https://` server of every farm.
pub fn build_backend_tls(farms: &[RawFarm], p: &mut Problems) -> BackendTlsMap {
    let mut map = BackendTlsMap::default();
    for (fi, f) in farms.iter().enumerate() {
        let at = format!("farms[{fi}]");
        let https: Vec<(usize, http::uri::Authority)> = f
            .servers
            .iter()
            .enumerate()
            .filter_map(|(si, s)| match parse_address(&s.address) {
                Ok((scheme, auth)) if scheme == http::uri::Scheme::HTTPS => Some((si, auth)),
                _ => None,
            })
            .collect();
        let raw_tls = f.tls.as_ref();
        let ca = raw_tls.and_then(|t| t.ca.clone());
        let insecure = raw_tls
            .and_then(|t| t.insecure_skip_verify)
            .unwrap_or(false);
        if raw_tls.is_some() && https.is_empty() {
            p.add(
                format!("{at}.tls"),
                "no server of this farm uses https://; write addresses as \"https://host:port\" to connect with TLS",
            );
            continue;
        }
        if insecure && ca.is_some() {
            p.add(
                format!("{at}.tls.insecure_skip_verify"),
                "give either ca or insecure_skip_verify, not both",
            );
            continue;
        }
        let Some((first, _)) = https.first() else {
            continue;
        };
        let config = match backend::client_config(ca.as_deref(), insecure) {
            Ok(c) => c,
            Err(e) => {
                let key = match e {
                    BackendTlsError::NoSystemRoots(_) => format!("{at}.servers[{first}].address"),
                    _ => format!("{at}.tls.ca"),
                };
                p.add(key, e.to_string());
                continue;
            }
        };
        let farm: Arc<str> = f.name.as_str().into();
        for (si, authority) in &https {
            let key = format!("{at}.servers[{si}].address");
            let server_name = match backend::server_name(authority.host()) {
                Ok(n) => n,
                Err(e) => {
                    p.add(key, e);
                    continue;
                }
            };
            let target = BackendTarget {
                config: config.clone(),
                server_name,
                farm: farm.clone(),
                ca: ca.clone(),
                insecure,
            };
            if let Err(other) = map.insert(authority.as_str(), target) {
                p.add(
                    key,
                    format!(
                        "https://{authority} is also a server of farm {other:?} with other tls settings; \
                         farms sharing a server share its connections, so give them the same tls"
                    ),
                );
            }
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use crate::config::load_str;
    use crate::farm::StateRegistry;
    use crate::tls::devcerts::{write_file, DevCa};
    use std::path::PathBuf;

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn dir(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("farmgate-cfgtls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        Dir(d)
    }

    fn errors(yaml: &str) -> Vec<String> {
        match load_str(yaml, "f.yaml", &StateRegistry::default()) {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    fn listener(tls: &str) -> String {
        format!(
            "listeners:\n  - bind: \"127.0.0.1:0\"\n    tls:\n{tls}\
             farms:\n  - name: web\n    servers:\n      - address: \"127.0.0.1:9\"\n"
        )
    }

    #[test]
    fn expired_and_unreadable_certificates_name_their_files() {
        let d = dir("expired");
        let ca = DevCa::generate("test CA").expect("ca");
        let now = time::OffsetDateTime::now_utc();
        let old = ca
            .issue_between(
                &["old.test"],
                now - time::Duration::days(90),
                now - time::Duration::days(1),
            )
            .expect("issue");
        let cert = d.0.join("old.crt");
        let key = d.0.join("old.key");
        write_file(&cert, &old.cert_pem, false).expect("write");
        write_file(&key, &old.key_pem, true).expect("write");
        let missing = d.0.join("missing.crt");
        let yaml = listener(&format!(
            "      certificates:\n        - cert: \"{}\"\n          key: \"{}\"\n        - cert: \"{}\"\n",
            cert.display(),
            key.display(),
            missing.display()
        ));
        let errs = errors(&yaml);
        assert_eq!(errs.len(), 2, "{errs:#?}");
        assert!(
            errs[0].starts_with(&format!(
                "f.yaml:5:17: listeners[0].tls.certificates[0].cert: the certificate in {} expired on ",
                cert.display()
            )),
            "{errs:#?}"
        );
        assert!(
            errs[1].starts_with(&format!(
                "f.yaml:7:17: listeners[0].tls.certificates[1].cert: cannot read {}:",
                missing.display()
            )),
            "{errs:#?}"
        );
    }

    #[test]
    fn one_file_may_hold_certificate_and_key() {
        let d = dir("combined");
        let ca = DevCa::generate("test CA").expect("ca");
        let issued = ca.issue(&["both.test"], 30).expect("issue");
        let pem = d.0.join("both.pem");
        write_file(
            &pem,
            &format!("{}{}", issued.cert_pem, issued.key_pem),
            true,
        )
        .expect("write");
        let yaml = listener(&format!(
            "      certificates:\n        - cert: \"{}\"\n",
            pem.display()
        ));
        let snap = load_str(&yaml, "f.yaml", &StateRegistry::default()).expect("valid");
        let tls = snap.listeners[0].tls.as_ref().expect("tls");
        assert_eq!(tls.loaded.certs()[0].dns_names, ["both.test"]);
        assert_eq!(tls.alpn, [b"h2".to_vec(), b"http/1.1".to_vec()]);

        // A PEM with no key in it says so.
        write_file(&pem, &issued.cert_pem, false).expect("write");
        let errs = errors(&yaml);
        assert!(
            errs[0].contains("certificates[0].cert:")
                && errs[0].contains("holds no PEM private key"),
            "{errs:#?}"
        );
    }

    #[test]
    fn settings_are_validated() {
        let errs = errors(&listener(
            "      certificates: []\n      min_version: \"1.1\"\n      alpn: [h2, spdy/3, h2]\n      handshake_timeout: 0\n",
        ));
        let joined = errs.join("\n");
        for want in [
            "listeners[0].tls.certificates: at least one certificate is needed",
            "listeners[0].tls.min_version: TLS 1.1 is not supported",
            "listeners[0].tls.alpn[1]: unknown protocol \"spdy/3\"",
            "listeners[0].tls.alpn[2]: \"h2\" is listed twice",
            "listeners[0].tls.handshake_timeout: must be greater than 0",
        ] {
            assert!(joined.contains(want), "missing {want:?} in\n{joined}");
        }
    }

    #[test]
    fn backend_tls_problems_are_placed() {
        let farm = |address: &str, tls: &str| {
            format!(
                "listeners:\n  - bind: \"127.0.0.1:0\"\nfarms:\n  - name: web\n    servers:\n      - address: \"{address}\"\n    tls:\n{tls}"
            )
        };
        let errs = errors(&farm("127.0.0.1:9", "      insecure_skip_verify: true\n"));
        assert!(
            errs[0].starts_with("f.yaml:8:7: farms[0].tls: no server of this farm uses https://"),
            "{errs:#?}"
        );

        let errs = errors(&farm(
            "https://127.0.0.1:9",
            "      ca: /nonexistent/ca.pem\n",
        ));
        assert!(
            errs[0].starts_with("f.yaml:8:11: farms[0].tls.ca: cannot read /nonexistent/ca.pem:"),
            "{errs:#?}"
        );

        let errs = errors(&farm(
            "https://127.0.0.1:9",
            "      ca: /x.pem\n      insecure_skip_verify: true\n",
        ));
        assert!(
            errs[0].contains("farms[0].tls.insecure_skip_verify: give either ca or"),
            "{errs:#?}"
        );
    }

    #[test]
    fn farms_sharing_an_https_server_must_agree_on_tls() {
        let d = dir("shared");
        let ca = DevCa::generate("test CA").expect("ca");
        let ca_path = d.0.join("ca.crt");
        write_file(&ca_path, &ca.cert_pem, false).expect("write");
        let yaml = format!(
            "listeners:\n  - bind: \"127.0.0.1:0\"\nfarms:\n\
             \x20 - name: a\n    servers: [ {{ address: \"https://127.0.0.1:9\" }} ]\n    tls: {{ insecure_skip_verify: true }}\n\
             \x20 - name: b\n    servers: [ {{ address: \"https://127.0.0.1:9\" }} ]\n    tls: {{ ca: \"{}\" }}\n",
            ca_path.display()
        );
        let errs = errors(&yaml);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(
            errs[0].starts_with("f.yaml:8:27: farms[1].servers[0].address: https://127.0.0.1:9 is also a server of farm \"a\""),
            "{errs:#?}"
        );
        let agreeing = yaml.replace(
            "tls: { insecure_skip_verify: true }",
            &format!("tls: {{ ca: \"{}\" }}", ca_path.display()),
        );
        assert!(errors(&agreeing).is_empty());
    }
}
