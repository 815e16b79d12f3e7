//! Hosts-style files (`/etc/hosts` format): `IP name [alias...]` per line,
//! `#` starts a comment. A name listed on several lines has every address
//! listed for it, which is how one name stands for several servers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

/// Names (lower case) to their addresses, in file order.
pub type Hosts = HashMap<String, Vec<IpAddr>>;

/// Parses hosts-file text; a bad line is an error naming its number.
pub fn parse(text: &str) -> Result<Hosts, String> {
    let mut hosts = Hosts::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else { continue };
        let ip: IpAddr = first
            .parse()
            .map_err(|_| format!("line {}: {first:?} is not an IP address", i + 1))?;
        let mut named = false;
        for name in words {
            named = true;
            let v = hosts.entry(name.to_ascii_lowercase()).or_default();
            if !v.contains(&ip) {
                v.push(ip);
            }
        }
        if !named {
            return Err(format!("line {}: {first} names no host", i + 1));
        }
    }
    Ok(hosts)
}

/// Reads and parses the file at `path`; errors name the file.
pub fn read(path: &Path) -> Result<Hosts, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read hosts file {}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_gather_every_address_listed() {
        let h = parse(
            "# backends\n127.0.0.1 api.test api\n\n127.0.0.2\tAPI.test  # second\n::1 v6.test\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let ips: Vec<String> = h["api.test"].iter().map(ToString::to_string).collect();
        assert_eq!(ips, ["127.0.0.1", "127.0.0.2"]);
        assert_eq!(h["api"].len(), 1);
        assert_eq!(h["v6.test"][0].to_string(), "::1");
    }

    #[test]
    fn bad_lines_name_their_number() {
        assert_eq!(
            parse("127.0.0.1 a\nnot-an-ip b\n").err().as_deref(),
            Some("line 2: \"not-an-ip\" is not an IP address")
        );
        assert_eq!(
            parse("10.0.0.1\n").err().as_deref(),
            Some("line 1: 10.0.0.1 names no host")
        );
    }
}
