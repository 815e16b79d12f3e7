//! TLS session tickets a tier of instances can share: [`Ticketer`] seals
//! tickets with the newest key of a [`TierKeys`] set (AES-256-GCM, the key's
//! name in front, a random nonce) and opens any ticket whose name matches a
//! key of the set, so a client whose ticket came from instance A resumes on
//! instance B. The set is filled by `cluster::tickets` from Redis; until it
//! is (and without a `cluster:`), rustls' own rotating ticketer, local to
//! this process, seals and opens as before, and it still opens its tickets
//! after the tier's keys arrive.

use arc_swap::ArcSwap;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use rustls::server::ProducesTickets;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Length of a key's name, sent in front of every ticket it seals.
pub const NAME_LEN: usize = 16;
/// Length of a key's secret.
pub const SECRET_LEN: usize = 32;
const TAG_LEN: usize = 16;

/// One shared ticket key.
pub struct TicketKey {
    name: [u8; NAME_LEN],
    key: LessSafeKey,
}

impl TicketKey {
    pub fn new(name: [u8; NAME_LEN], secret: &[u8; SECRET_LEN]) -> Option<Self> {
        let key = UnboundKey::new(&AES_256_GCM, secret).ok()?;
        Some(TicketKey {
            name,
            key: LessSafeKey::new(key),
        })
    }
}

/// The tier's ticket keys, newest first; empty until the tier's arrive.
#[derive(Default)]
pub struct TierKeys {
    keys: ArcSwap<Vec<TicketKey>>,
    /// Seconds a ticket sealed now stays valid (told to clients).
    lifetime: AtomicU32,
}

impl std::fmt::Debug for TierKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TierKeys")
            .field("keys", &self.len())
            .finish()
    }
}

impl TierKeys {
    /// Installs `keys` (newest first) for the next handshakes.
    pub fn install(&self, keys: Vec<TicketKey>, lifetime_secs: u32) {
        self.lifetime.store(lifetime_secs, Ordering::Relaxed);
        self.keys.store(Arc::new(keys));
    }

    pub fn len(&self) -> usize {
        self.keys.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The names of the installed keys, newest first (to see a change).
    pub fn names(&self) -> Vec<[u8; NAME_LEN]> {
        self.keys.load().iter().map(|k| k.name).collect()
    }

    fn seal(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let keys = self.keys.load();
        let newest = keys.first()?;
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(NAME_LEN + NONCE_LEN + plain.len() + TAG_LEN);
        out.extend_from_slice(&newest.name);
        out.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        newest
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&newest.name),
                &mut body,
            )
            .ok()?;
        out.extend_from_slice(&body);
        Some(out)
    }

    /// Opens a ticket sealed by one of the keys; None when no key has its
    /// name (not a tier ticket) or it does not authenticate.
    fn open(&self, cipher: &[u8]) -> Option<Option<Vec<u8>>> {
        if cipher.len() < NAME_LEN + NONCE_LEN + TAG_LEN {
            return None;
        }
        let (name, rest) = cipher.split_at(NAME_LEN);
        let keys = self.keys.load();
        let key = keys.iter().find(|k| k.name == name)?;
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = sealed.to_vec();
        let plain = key
            .key
            .open_in_place(nonce, Aad::from(&key.name), &mut body)
            .ok()
            .map(|p| p.to_vec());
        Some(plain)
    }
}

/// A listener's ticketer: the tier's keys when there are any, else (and
/// for tickets it sealed) a local rustls ticketer.
pub struct Ticketer {
    local: Arc<dyn ProducesTickets>,
    tier: Arc<TierKeys>,
}

impl std::fmt::Debug for Ticketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticketer")
            .field("tier", &self.tier)
            .finish()
    }
}

impl Ticketer {
    pub fn shared(tier: Arc<TierKeys>) -> Result<Arc<dyn ProducesTickets>, rustls::Error> {
        Ok(Arc::new(Ticketer {
            local: rustls::crypto::aws_lc_rs::Ticketer::new()?,
            tier,
        }))
    }
}

impl ProducesTickets for Ticketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        if self.tier.is_empty() {
            self.local.lifetime()
        } else {
            self.tier.lifetime.load(Ordering::Relaxed)
        }
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        match self.tier.seal(plain) {
            Some(t) => Some(t),
            None => self.local.encrypt(plain),
        }
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        match self.tier.open(cipher) {
            Some(opened) => opened,
            None => self.local.decrypt(cipher),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> TicketKey {
        TicketKey::new([n; NAME_LEN], &[n; SECRET_LEN]).expect("key")
    }

    #[test]
    fn another_instance_with_the_same_keys_opens_a_ticket() {
        super::super::provider();
        let a_keys = Arc::new(TierKeys::default());
        let b_keys = Arc::new(TierKeys::default());
        a_keys.install(vec![key(2), key(1)], 7200);
        b_keys.install(vec![key(2), key(1)], 7200);
        let a = Ticketer::shared(a_keys.clone()).expect("a");
        let b = Ticketer::shared(b_keys.clone()).expect("b");
        let ticket = a.encrypt(b"session state").expect("sealed");
        assert_eq!(
            &ticket[..NAME_LEN],
            &[2; NAME_LEN],
            "sealed with the newest key"
        );
        assert_eq!(b.decrypt(&ticket).as_deref(), Some(&b"session state"[..]));
        assert_eq!(b.lifetime(), 7200);

        // After a rotation the previous key still opens it; once it is
        // dropped it does not.
        b_keys.install(vec![key(3), key(2)], 7200);
        assert!(b.decrypt(&ticket).is_some());
        b_keys.install(vec![key(4), key(3)], 7200);
        assert!(b.decrypt(&ticket).is_none());

        let mut forged = ticket.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert!(
            a.decrypt(&forged).is_none(),
            "a changed ticket does not open"
        );
    }

    #[test]
    fn without_tier_keys_the_local_ticketer_works_and_keeps_working() {
        super::super::provider();
        let keys = Arc::new(TierKeys::default());
        let t = Ticketer::shared(keys.clone()).expect("ticketer");
        let local = t.encrypt(b"x").expect("local ticket");
        keys.install(vec![key(9)], 3600);
        assert_eq!(t.decrypt(&local).as_deref(), Some(&b"x"[..]));
        assert_ne!(
            t.encrypt(b"x").expect("tier")[..NAME_LEN],
            local[..NAME_LEN]
        );
    }
}
