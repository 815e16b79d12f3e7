//! `listeners[].tls` and `farms[].tls` compiled from YAML: certificates
//! checked with their files named, backend TLS settings per farm.

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
        errs[0].contains("certificates[0].cert:") && errs[0].contains("holds no PEM private key"),
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
