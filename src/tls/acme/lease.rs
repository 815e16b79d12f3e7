//! One attempt to get a certificate: alone, an order; in a tier, an order
//! only under the tier's lock for the domain set, whose lease is renewed
//! while the order runs (an instance that crashes mid-order frees the lock
//! when its lease runs out), and only when the certificate another
//! instance may have stored meanwhile is not already fresh.

use super::manager::Manager;
use super::order::obtain;
use super::tier::{AcmeTier, Lock};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long the order lock holds without a renewal.
pub const LEASE: Duration = Duration::from_secs(30);
/// How often the holder renews it.
const RENEW_EVERY: Duration = Duration::from_secs(10);
/// How soon an instance that found the lock taken looks again (the
/// holder's certificate usually arrives first, announced).
const BUSY_RETRY: Duration = Duration::from_secs(5);

/// What an attempt came to, short of failing.
#[derive(Debug)]
pub enum Attempt {
    /// A certificate is serving: issued here, or stored by another instance.
    Done,
    /// Another instance holds the order lock.
    Busy { holder: String, retry: Duration },
}

/// A failed attempt; `quiet` when it was already logged (the tier's Redis
/// unreachable again: said once per outage, counted every time).
#[derive(Debug)]
pub struct Failure {
    pub why: String,
    pub quiet: bool,
}

impl From<String> for Failure {
    fn from(why: String) -> Self {
        Failure { why, quiet: false }
    }
}

/// Gets a certificate for `m`'s domains (see the module doc).
pub(super) async fn attempt(m: &mut Manager) -> Result<Attempt, Failure> {
    let Some(tier) = m.tier.clone() else {
        return order(m, None).await.map(|()| Attempt::Done);
    };
    let name = m.spec.name().to_string();
    let token = match tier.lock(&name, LEASE).await {
        Ok(Lock::Held(token)) => token,
        Ok(Lock::Busy(holder)) => {
            m.tier_reachable();
            return Ok(Attempt::Busy {
                holder,
                retry: BUSY_RETRY,
            });
        }
        Err(e) => {
            let quiet = m.tier_down;
            if !quiet {
                tracing::error!(listener = %m.tls.name, "ACME: the tier's Redis is unreachable ({e}); the current certificate keeps serving, retrying");
                m.tier_down = true;
            }
            return Err(Failure {
                why: format!("the tier's order lock: {e}"),
                quiet,
            });
        }
    };
    m.tier_reachable();
    // Another instance may have renewed between our last look and the lock.
    let result = if m.install_newer().await && !m.is_due() {
        Ok(())
    } else {
        tokio::select! {
            r = order(m, Some(tier.clone())) => r,
            why = hold(&*tier, &name, &token) => Err(why.into()),
        }
    };
    // Released only now: the certificate is stored and announced, so an
    // instance that takes the lock next finds it.
    tier.unlock(&name, &token).await;
    result.map(|()| Attempt::Done)
}

/// One order, and the certificate kept and served.
async fn order(m: &mut Manager, tier: Option<Arc<dyn AcmeTier>>) -> Result<(), Failure> {
    m.update(|s| s.orders_total += 1);
    let issued = obtain(&m.spec, &*m.store, tier, m.replaces())
        .await
        .map_err(|e| e.to_string())?;
    m.keep(issued).await?;
    Ok(())
}

/// Renews the lease until it is lost; returns why. A renewal Redis does
/// not answer is tried again while the lease may still hold.
async fn hold(tier: &dyn AcmeTier, name: &str, token: &str) -> String {
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        match tier.renew(name, token, LEASE).await {
            Ok(true) => renewed = Instant::now(),
            Ok(false) => return "the tier's order lock was lost (its lease ran out)".into(),
            Err(e) if renewed.elapsed() + RENEW_EVERY >= LEASE => {
                return format!("cannot renew the tier's order lock: {e}")
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::store::AcmeStore;
    use super::super::tier::Challenge;
    use super::*;
    use futures_util::future::BoxFuture;
    use std::collections::VecDeque;
    use std::io;
    use std::sync::Mutex;

    /// A tier whose renewals answer from a script; counts them.
    #[derive(Debug, Default)]
    struct Scripted {
        renewals: Mutex<VecDeque<io::Result<bool>>>,
        asked: Mutex<u32>,
    }

    impl AcmeStore for Scripted {
        fn get<'a>(&'a self, _: &'a str) -> BoxFuture<'a, io::Result<Option<Vec<u8>>>> {
            Box::pin(async { Ok(None) })
        }
        fn put<'a>(&'a self, _: &'a str, _: &'a [u8]) -> BoxFuture<'a, io::Result<()>> {
            Box::pin(async { Ok(()) })
        }
    }

    impl AcmeTier for Scripted {
        fn instance(&self) -> String {
            "me".into()
        }
        fn lock<'a>(&'a self, _: &'a str, _: Duration) -> BoxFuture<'a, io::Result<Lock>> {
            Box::pin(async { Ok(Lock::Held("t".into())) })
        }
        fn renew<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
            lease: Duration,
        ) -> BoxFuture<'a, io::Result<bool>> {
            assert_eq!(lease, LEASE);
            *self.asked.lock().unwrap_or_else(|p| p.into_inner()) += 1;
            let next = self
                .renewals
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop_front()
                .unwrap_or(Ok(true));
            Box::pin(async move { next })
        }
        fn unlock<'a>(&'a self, _: &'a str, _: &'a str) -> BoxFuture<'a, ()> {
            Box::pin(async {})
        }
        fn publish<'a>(&'a self, _: &'a Challenge) -> BoxFuture<'a, io::Result<()>> {
            Box::pin(async { Ok(()) })
        }
        fn withdraw(&self, _: Vec<Challenge>) {}
        fn announce<'a>(&'a self, _: &'a str) -> BoxFuture<'a, ()> {
            Box::pin(async {})
        }
    }

    fn scripted(answers: Vec<io::Result<bool>>) -> Scripted {
        Scripted {
            renewals: Mutex::new(answers.into()),
            asked: Mutex::new(0),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_lease_is_renewed_until_another_instance_has_the_lock() {
        let tier = scripted(vec![Ok(true), Ok(true), Ok(false)]);
        let started = tokio::time::Instant::now();
        let why = hold(&tier, "example.com", "t").await;
        assert!(why.contains("lost"), "{why}");
        assert_eq!(*tier.asked.lock().unwrap_or_else(|p| p.into_inner()), 3);
        assert_eq!(started.elapsed(), RENEW_EVERY * 3);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unanswered_renewal_is_retried_while_the_lease_may_hold() {
        let down = || Err(io::Error::other("Redis: connection refused"));
        // One blip: renewed at the next try, the order goes on.
        let tier = scripted(vec![down(), Ok(true), Ok(false)]);
        let why = hold(&tier, "example.com", "t").await;
        assert!(why.contains("lost"), "{why}");
        // Redis gone for good: given up before the lease could have run out.
        let tier = scripted((0..10).map(|_| down()).collect());
        let started = tokio::time::Instant::now();
        let why = hold(&tier, "example.com", "t").await;
        assert!(why.contains("cannot renew"), "{why}");
        assert!(started.elapsed() <= LEASE, "{:?}", started.elapsed());
    }
}
