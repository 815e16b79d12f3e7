//! Servers by DNS name through the real config pipeline: one member per
//! address, what each member keeps, a name that does not resolve, and a
//! rebuild that keeps the members' state.

use crate::config::load_str;
use crate::farm::resolve::NameRegistry;
use crate::farm::StateRegistry;
use crate::proxy::pool::PoolRegistry;
use std::sync::Arc;

fn config(hosts: &std::path::Path) -> String {
    format!(
        "listeners:\n  - bind: \"127.0.0.1:0\"\n\
         resolve:\n  hosts_file: \"{}\"\n  system: false\n\
         farms:\n  - name: web\n    resolve_interval: 5s\n    servers:\n      \
         - {{ name: api, address: \"http://api.test:8080\", weight: 3 }}\n      \
         - {{ address: \"10.0.0.9:80\" }}\n      \
         - {{ address: \"gone.test:80\", resolve_interval: 1s }}\n",
        hosts.display()
    )
}

#[test]
fn a_host_name_becomes_a_member_per_address() {
    let dir = std::env::temp_dir().join(format!("fg-servers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let hosts = dir.join("hosts");
    std::fs::write(
        &hosts,
        "10.0.0.8 api.test\n10.0.0.7 api.test\nfd00::7 api.test\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let registry = Arc::new(StateRegistry::default());
    let snap = load_str(&config(&hosts), "f.yaml", &registry).unwrap_or_else(|e| panic!("{e}"));
    let f = &snap.farms[0];
    let names: Vec<&str> = f.servers.iter().map(|s| &*s.name).collect();
    assert_eq!(
        names,
        [
            "api#10.0.0.7:8080",
            "api#10.0.0.8:8080",
            "api#[fd00::7]:8080",
            "10.0.0.9:80",
            "gone.test:80"
        ]
    );
    let m = &f.servers[0];
    assert_eq!(m.weight, 3);
    assert_eq!(m.host_header, "api.test:8080");
    assert_eq!(
        m.connect_to().map(|a| a.to_string()).as_deref(),
        Some("10.0.0.7:8080")
    );
    let dns = m.dns.as_ref().unwrap_or_else(|| unreachable!());
    assert_eq!((&*dns.parent, &*dns.name.host), ("api", "api.test"));
    assert_eq!(dns.interval, std::time::Duration::from_secs(5));
    assert!(f.servers[3].dns.is_none() && f.servers[3].connect_to().is_none());
    // Each address has its own pool.
    assert!(!Arc::ptr_eq(&f.pools[0], &f.pools[1]));
    let pools = registry.attached::<PoolRegistry>();
    assert!(Arc::ptr_eq(&pools.for_server(&f.servers[1]), &f.pools[1]));

    // A name that does not resolve: the server under its own name, tried
    // by name, and a warning placed in the file.
    let gone = &f.servers[4];
    assert!(gone.connect_to().is_none());
    assert_eq!(gone.dns.as_ref().map(|d| d.interval.as_secs()), Some(1));
    let w: Vec<String> = snap.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("f.yaml:12:20: farms[0].servers[2].address: gone.test does not resolve now (not listed in "),
        "{w:?}"
    );

    // One address leaves: a rebuild keeps the others' state.
    let kept = f.servers[1].state.clone();
    std::fs::write(&hosts, "10.0.0.8 api.test\n").unwrap_or_else(|e| panic!("{e}"));
    let name = registry
        .attached::<NameRegistry>()
        .get_or_create("api.test");
    let spec = snap.resolve.clone();
    assert_eq!(name.lookup(&*spec), crate::farm::resolve::Lookup::Changed);
    let again = snap
        .rebuild
        .run(&registry)
        .unwrap_or_else(|e| panic!("{e}"));
    let f = &again.farms[0];
    assert_eq!(&*f.servers[0].name, "api#10.0.0.8:8080");
    assert!(Arc::ptr_eq(&f.servers[0].state, &kept));
    assert_eq!(f.servers.len(), 3);
    let _ = std::fs::remove_dir_all(&dir);
}
