//! Long-lived cache stores, one per farm name. A reload builds a new
//! snapshot whose farms take their store from here, so cached responses
//! survive for farms that remain. A store is only replaced when its
//! settings require it: a new size bound (entries carried over) or a new
//! key layout (`query_string`: emptied, as old keys mean something else).
//! The counters carry over either way.

use super::config::CacheSpec;
use super::store::CacheStore;
use crate::farm::Prune;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Default, Debug)]
pub struct CacheRegistry {
    map: Mutex<HashMap<String, Arc<CacheStore>>>,
}

impl CacheRegistry {
    /// The store for `farm` under `spec`. Only called while building a
    /// snapshot, never per request.
    pub fn get_or_create(&self, farm: &str, spec: &CacheSpec) -> Arc<CacheStore> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let old = map.get(farm).cloned();
        if let Some(s) = &old {
            if s.query == spec.query_string && s.capacity == spec.max_memory {
                return s.clone();
            }
        }
        let stats = old
            .as_ref()
            .map_or_else(Default::default, |s| s.stats.clone());
        let store = Arc::new(CacheStore::new(spec.max_memory, spec.query_string, stats));
        if let Some(s) = old.filter(|s| s.query == spec.query_string) {
            store.migrate_from(&s);
        }
        map.insert(farm.to_string(), store.clone());
        store
    }

    /// The store of `farm`, if it has one.
    pub fn get(&self, farm: &str) -> Option<Arc<CacheStore>> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(farm).cloned()
    }
}

impl Prune for CacheRegistry {
    /// Forgets stores no snapshot uses any more.
    fn prune(&self) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| Arc::strong_count(s) > 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::config::QueryString;

    #[test]
    fn stores_survive_unless_key_settings_change() {
        let r = CacheRegistry::default();
        let spec = CacheSpec::default();
        let a = r.get_or_create("web", &spec);
        assert!(Arc::ptr_eq(&a, &r.get_or_create("web", &spec)));
        let bigger = CacheSpec {
            max_memory: spec.max_memory * 2,
            ..spec
        };
        let b = r.get_or_create("web", &bigger);
        assert!(!Arc::ptr_eq(&a, &b));
        assert!(Arc::ptr_eq(&a.stats, &b.stats), "counters carry over");
        let ignore = CacheSpec {
            query_string: QueryString::Ignore,
            ..bigger
        };
        let c = r.get_or_create("web", &ignore);
        assert!(Arc::ptr_eq(&b.stats, &c.stats));
        drop((a, b, c));
        r.prune();
        assert!(r.get("web").is_none());
    }
}
