//! When the serving certificate renews: inside the CA's window (ARI) when
//! it gave one, else at two thirds of the lifetime (with this certificate's
//! jitter); earlier while a failure is retried; the same rule, without
//! jitter, for the tier's re-check under the lock; and what the status
//! shows of it.

use super::ari::{Offer, Source};
use super::manager::Manager;
use super::schedule::renew_at;
use crate::tls::certs::unix_now;
use instant_acme::CertificateIdentifier;

impl Manager {
    /// The serving certificate's renewal time and what set it: the CA's
    /// window (ARI), else two thirds of the lifetime.
    pub(super) fn planned(&self) -> Option<(i64, Source)> {
        let c = self.current.as_ref().filter(|c| self.covers(c))?;
        Some(match self.ari.renew_at() {
            Some(at) => (at, Source::Ari),
            None => (
                renew_at(c.not_before, c.not_after, self.jitter),
                Source::TwoThirds,
            ),
        })
    }

    /// Unix seconds of the next attempt.
    pub(super) fn due(&self) -> i64 {
        if let Some(at) = self.retry_at {
            return at;
        }
        self.planned().map_or_else(unix_now, |(at, _)| at)
    }

    /// Whether the serving certificate should be renewed now (asked after
    /// taking the tier's lock, to skip an order another instance just made
    /// unnecessary): the CA's window has opened, or, without one, two
    /// thirds of the lifetime have passed (no jitter), so every instance
    /// decides alike.
    pub(super) fn is_due(&self) -> bool {
        let now = unix_now();
        match &self.current {
            Some(c) if self.covers(c) => self
                .ari
                .window_open(now)
                .unwrap_or_else(|| renew_at(c.not_before, c.not_after, 0.0) <= now),
            _ => true,
        }
    }

    /// The certificate a renewal's order `replaces` (ARI).
    pub(super) fn replaces(&self) -> Option<CertificateIdentifier<'static>> {
        self.current
            .as_ref()
            .filter(|c| self.covers(c))
            .and_then(|_| self.ari.replaces())
    }

    /// Shows the next attempt and the renewal plan in the status.
    pub(super) fn show_plan(&self, due: i64) {
        let planned = self.planned();
        let ari = &self.ari;
        self.update(|s| {
            s.next_attempt = due;
            s.next_renewal = planned.map_or(0, |(at, _)| at);
            s.renewal_by = planned.map_or("", |(_, by)| by.as_str());
            s.ari = ari.offer.map_or("", Offer::as_str);
            s.ari_window = ari.window.as_ref().map(|w| [w.start, w.end]);
            s.ari_explanation_url = ari.window.as_ref().and_then(|w| w.explanation.clone());
            s.ari_next_poll = if ari.id.is_some() { ari.next_poll } else { 0 };
        });
    }
}
