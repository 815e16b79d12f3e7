//! Access lines to syslog: the `log.access_syslog` section (serde shape,
//! compiler, runtime spec) and the RFC 5424 sender the access-log writer
//! thread uses. One datagram per line, to a local Unix datagram socket
//! (`/dev/log`, rsyslog, syslog-ng, journald) or over UDP.

use crate::ground::error::Problems;
use serde::Deserialize;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::SystemTime;

/// `log.access_syslog` as written in the file.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSyslog {
    /// `unix:/dev/log` (a datagram socket) or `udp:HOST:PORT`.
    pub address: String,
    /// `local0` .. `local7`, `user` or `daemon`; default `local7`.
    #[serde(default)]
    pub facility: Option<String>,
    /// The APP-NAME field; default `farmgate`.
    #[serde(default)]
    pub app_name: Option<String>,
}

/// Where and how access lines are sent to syslog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogSpec {
    pub target: Target,
    /// The facility code (RFC 5424 table 1); lines go at severity info.
    pub facility: u8,
    pub app_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Unix(PathBuf),
    Udp(SocketAddr),
}

const FACILITIES: &[(&str, u8)] = &[
    ("user", 1),
    ("daemon", 3),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

const SEVERITY_INFO: u8 = 6;

/// Compiles `log.access_syslog`; problems are reported under `at`.
pub fn build(raw: &RawSyslog, at: &str, p: &mut Problems) -> Option<SyslogSpec> {
    let target = if let Some(path) = raw.address.strip_prefix("unix:") {
        Some(Target::Unix(PathBuf::from(path)))
    } else if let Some(addr) = raw.address.strip_prefix("udp:") {
        match addr.parse::<SocketAddr>() {
            Ok(a) => Some(Target::Udp(a)),
            Err(_) => {
                p.add(
                    format!("{at}.address"),
                    format!("{addr:?} is not an IP:PORT (e.g. udp:127.0.0.1:514)"),
                );
                None
            }
        }
    } else {
        p.add(
            format!("{at}.address"),
            format!(
                "{:?}: expected unix:/path/to/socket or udp:IP:PORT",
                raw.address
            ),
        );
        None
    };
    let name = raw.facility.as_deref().unwrap_or("local7");
    let facility = FACILITIES.iter().find(|(n, _)| *n == name).map(|f| f.1);
    if facility.is_none() {
        p.add(
            format!("{at}.facility"),
            format!("unknown facility {name:?}; expected local0..local7, user or daemon"),
        );
    }
    let app_name = raw.app_name.clone().unwrap_or_else(|| "farmgate".into());
    // RFC 5424 APP-NAME: 1-48 printable US-ASCII characters, no space.
    if app_name.is_empty() || app_name.len() > 48 || !app_name.bytes().all(|b| b.is_ascii_graphic())
    {
        p.add(
            format!("{at}.app_name"),
            "must be 1 to 48 printable ASCII characters without spaces",
        );
    }
    Some(SyslogSpec {
        target: target?,
        facility: facility?,
        app_name,
    })
}

/// An open connection to the syslog receiver.
pub struct Sender {
    spec: SyslogSpec,
    socket: Option<Socket>,
    /// `<PRI>1 ` .. up to the timestamp, and ` HOST APP PROCID access - `.
    pri: String,
    after_time: String,
}

enum Socket {
    Unix(UnixDatagram),
    Udp(UdpSocket),
}

impl Sender {
    pub fn new(spec: SyslogSpec) -> Self {
        let host = hostname();
        let pri = format!("<{}>1 ", spec.facility * 8 + SEVERITY_INFO);
        let after_time = format!(" {host} {} {} access - ", spec.app_name, std::process::id());
        let mut s = Sender {
            spec,
            socket: None,
            pri,
            after_time,
        };
        if let Err(e) = s.connect() {
            tracing::warn!("access log: syslog receiver not reachable yet: {e}");
        }
        s
    }

    fn connect(&mut self) -> io::Result<()> {
        self.socket = None;
        self.socket = Some(match &self.spec.target {
            Target::Unix(path) => {
                let s = UnixDatagram::unbound()?;
                s.connect(path)?;
                Socket::Unix(s)
            }
            Target::Udp(addr) => {
                let bind: SocketAddr = if addr.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let s = UdpSocket::bind(bind)?;
                s.connect(addr)?;
                Socket::Udp(s)
            }
        });
        Ok(())
    }

    /// Reconnects (a restarted syslog daemon has a new socket).
    pub fn reopen(&mut self) {
        if let Err(e) = self.connect() {
            tracing::warn!("access log: cannot reach the syslog receiver: {e}");
        }
    }

    /// Sends one line (its trailing newline dropped) as one message. A line
    /// the receiver refuses is lost after one reconnect attempt: the access
    /// log never holds up traffic.
    pub fn send(&mut self, line: &str, time: SystemTime) {
        let msg = self.frame(line, time);
        if self.try_send(msg.as_bytes()).is_err() {
            self.reopen();
            let _ = self.try_send(msg.as_bytes());
        }
    }

    fn try_send(&self, msg: &[u8]) -> io::Result<()> {
        match &self.socket {
            Some(Socket::Unix(s)) => s.send(msg).map(drop),
            Some(Socket::Udp(s)) => s.send(msg).map(drop),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// `<190>1 2026-12-06T21:32:41.123Z host farmgate 4242 access - LINE`.
    pub fn frame(&self, line: &str, time: SystemTime) -> String {
        let line = line.trim_end_matches('\n');
        let mut s = String::with_capacity(self.pri.len() + 24 + self.after_time.len() + line.len());
        s.push_str(&self.pri);
        s.push_str(&super::format::rfc3339(time));
        s.push_str(&self.after_time);
        s.push_str(line);
        s
    }
}

/// The HOSTNAME field: the kernel's host name, or `-` (RFC 5424's nil).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && h.len() <= 255 && h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn raw(address: &str, facility: Option<&str>) -> RawSyslog {
        RawSyslog {
            address: address.into(),
            facility: facility.map(Into::into),
            app_name: None,
        }
    }

    #[test]
    fn addresses_and_facilities() {
        let mut p = Problems::default();
        let s = build(&raw("udp:127.0.0.1:514", None), "x", &mut p).expect("spec");
        assert_eq!(
            s.target,
            Target::Udp("127.0.0.1:514".parse().expect("addr"))
        );
        assert_eq!(s.facility, 23);
        let s = build(&raw("unix:/dev/log", Some("daemon")), "x", &mut p).expect("spec");
        assert_eq!(s.target, Target::Unix("/dev/log".into()));
        assert_eq!(s.facility, 3);
        assert!(p.is_empty());
        assert!(build(&raw("/dev/log", None), "x", &mut p).is_none());
        assert!(build(&raw("udp:localhost", None), "x", &mut p).is_none());
        assert!(build(&raw("unix:/dev/log", Some("kern")), "x", &mut p).is_none());
        let paths: Vec<_> = p.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(paths, ["x.address", "x.address", "x.facility"]);
    }

    #[test]
    fn rfc5424_frame() {
        let mut p = Problems::default();
        let spec = build(&raw("udp:127.0.0.1:9", Some("local0")), "x", &mut p).expect("spec");
        let s = Sender::new(spec);
        let f = s.frame(
            "hello\n",
            UNIX_EPOCH + Duration::from_millis(1_795_242_000_123),
        );
        assert!(f.starts_with("<134>1 2026-11-21T06:20:00.123Z "), "{f}");
        assert!(
            f.ends_with(&format!(" farmgate {} access - hello", std::process::id())),
            "{f}"
        );
    }
}
