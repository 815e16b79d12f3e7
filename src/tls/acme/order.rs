//! One certificate order against an ACME server with `instant-acme`: the
//! account (created once, then read from storage), the order, each
//! authorization's challenge published in the [`ChallengeBook`] and
//! withdrawn afterwards, finalization with a fresh key, the chain.

use super::challenges::{book, ChallengeBook};
use super::config::{AcmeSpec, ChallengeKind};
use super::store::AcmeStore;
use super::tier::{AcmeTier, Challenge};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, CertificateIdentifier, ChallengeType,
    ExternalAccountKey, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use rustls::sign::CertifiedKey;
use std::sync::Arc;
use std::time::Duration;

/// Why an order did not give a certificate.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error("ACME server: {0}")]
    Acme(#[from] instant_acme::Error),
    #[error("storage: {0}")]
    Storage(#[from] std::io::Error),
    #[error("{0}")]
    Protocol(String),
}

/// An issued certificate: the PEM chain and its PEM private key.
#[derive(Debug)]
pub struct Issued {
    pub chain_pem: String,
    pub key_pem: String,
}

/// How long to wait for the CA to validate and to issue.
const POLL: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(250))
    .backoff(1.5)
    .timeout(Duration::from_secs(90));

/// The storage key of the account for `directory` (one account per CA).
fn account_key(directory: &str) -> String {
    let safe: String = directory
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("accounts/{safe}.json")
}

fn account_builder(spec: &AcmeSpec) -> Result<instant_acme::AccountBuilder, OrderError> {
    Ok(match &spec.ca {
        Some(ca) => Account::builder_with_root(ca)?,
        None => Account::builder()?,
    })
}

/// The stored account for the spec's directory, if there is one, on the
/// client `builder` gives.
pub async fn stored_account(
    spec: &AcmeSpec,
    store: &dyn AcmeStore,
    builder: impl FnOnce() -> Result<instant_acme::AccountBuilder, OrderError>,
) -> Result<Option<Account>, OrderError> {
    let key = account_key(&spec.directory);
    let Some(saved) = store.get(&key).await? else {
        return Ok(None);
    };
    let creds: AccountCredentials = serde_json::from_slice(&saved)
        .map_err(|e| OrderError::Protocol(format!("stored account {key} is unreadable: {e}")))?;
    Ok(Some(builder()?.from_credentials(creds).await?))
}

/// The account for the spec's directory: read from storage (unless
/// `fresh`), or created and stored.
pub async fn load_account(
    spec: &AcmeSpec,
    store: &dyn AcmeStore,
    fresh: bool,
) -> Result<Account, OrderError> {
    if !fresh {
        if let Some(account) = stored_account(spec, store, || account_builder(spec)).await? {
            return Ok(account);
        }
    }
    let key = account_key(&spec.directory);
    let contact: Vec<&str> = spec.contact.iter().map(String::as_str).collect();
    let eab = spec
        .eab
        .as_ref()
        .map(|e| ExternalAccountKey::new(e.kid.clone(), &e.hmac_key));
    let (account, creds) = account_builder(spec)?
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            spec.directory.clone(),
            eab.as_ref(),
        )
        .await?;
    let json = serde_json::to_vec(&creds)
        .map_err(|e| OrderError::Protocol(format!("account credentials: {e}")))?;
    store.put(&key, &json).await?;
    tracing::info!(directory = %spec.directory, "ACME account created: {}", account.id());
    Ok(account)
}

/// Orders a certificate for the spec's domains and waits for it. With a
/// `tier`, each challenge answer is published to every instance before the
/// CA is told to validate, so the validation may reach any of them. A
/// renewal names the certificate it `replaces` (ARI, RFC 9773 §5).
pub async fn obtain(
    spec: &AcmeSpec,
    store: &dyn AcmeStore,
    tier: Option<Arc<dyn AcmeTier>>,
    replaces: Option<CertificateIdentifier<'static>>,
) -> Result<Issued, OrderError> {
    let identifiers: Vec<Identifier> = spec
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let account = load_account(spec, store, false).await?;
    let mut order = match place(&account, &identifiers, replaces.as_ref()).await {
        // The CA forgot the stored account (a reset test CA, a deactivated
        // account): make a new one rather than fail forever. The old
        // account's certificate is not the new one's to replace.
        Err(e) if account_gone(&e) => {
            tracing::warn!(directory = %spec.directory, "the ACME server does not know the stored account; creating a new one");
            load_account(spec, store, true)
                .await?
                .new_order(&NewOrder::new(&identifiers))
                .await?
        }
        r => r?,
    };
    let mut published = Published::new(book(), tier);
    let kind = match spec.challenge {
        ChallengeKind::Http01 => ChallengeType::Http01,
        ChallengeKind::TlsAlpn01 => ChallengeType::TlsAlpn01,
    };
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz?;
        match authz.status {
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            other => {
                return Err(OrderError::Protocol(format!(
                    "authorization for {} is {other:?}",
                    authz.identifier()
                )))
            }
        }
        let domain = authz.identifier().to_string();
        let mut challenge = authz.challenge(kind.clone()).ok_or_else(|| {
            OrderError::Protocol(format!(
                "the server offers no {} challenge for {domain}",
                spec.challenge.as_str()
            ))
        })?;
        let key_auth = challenge.key_authorization();
        let answer = match spec.challenge {
            ChallengeKind::Http01 => Challenge::Http01 {
                token: challenge.token.clone(),
                key_authorization: key_auth.as_str().to_string(),
            },
            ChallengeKind::TlsAlpn01 => Challenge::TlsAlpn01 {
                domain: domain.clone(),
                digest: key_auth.digest().as_ref().to_vec(),
            },
        };
        published.publish(answer).await?;
        challenge.set_ready().await?;
    }
    match order.poll_ready(&POLL).await? {
        OrderStatus::Ready => {}
        status => {
            let why = order
                .state()
                .error
                .as_ref()
                .map_or_else(|| format!("{status:?}"), |p| p.to_string());
            return Err(OrderError::Protocol(format!(
                "the order did not become ready: {why}"
            )));
        }
    }
    drop(published);
    let key_pem = order.finalize().await?;
    let chain_pem = order.poll_certificate(&POLL).await?;
    Ok(Issued { chain_pem, key_pem })
}

fn account_gone(e: &instant_acme::Error) -> bool {
    matches!(e, instant_acme::Error::Api(p)
        if p.r#type.as_deref() == Some("urn:ietf:params:acme:error:accountDoesNotExist"))
}

/// A new order, naming the certificate it `replaces` when there is one.
/// An order the CA refuses with it (`alreadyReplaced`: another order
/// replaced it first; a CA that does not echo the field) is placed again
/// without it: a renewal must not fail over a hint.
async fn place(
    account: &Account,
    identifiers: &[Identifier],
    replaces: Option<&CertificateIdentifier<'static>>,
) -> Result<instant_acme::Order, instant_acme::Error> {
    let Some(id) = replaces else {
        return account.new_order(&NewOrder::new(identifiers)).await;
    };
    match account
        .new_order(&NewOrder::new(identifiers).replaces(id.clone()))
        .await
    {
        Err(e) if !account_gone(&e) => {
            tracing::info!(cert = %id, "ACME: the order replacing the current certificate was refused ({e}); ordering without `replaces`");
            account.new_order(&NewOrder::new(identifiers)).await
        }
        r => r,
    }
}

/// The self-signed certificate TLS-ALPN-01 answers with (RFC 8737 §3): the
/// domain as its only SAN and the key authorization's digest in the
/// critical acmeIdentifier extension.
pub fn validation_cert(domain: &str, digest: &[u8]) -> Result<Arc<CertifiedKey>, OrderError> {
    let bad = |e: rcgen::Error| OrderError::Protocol(format!("TLS-ALPN-01 certificate: {e}"));
    let mut params = rcgen::CertificateParams::new(vec![domain.to_string()]).map_err(bad)?;
    params
        .custom_extensions
        .push(rcgen::CustomExtension::new_acme_identifier(digest));
    let key = rcgen::KeyPair::generate().map_err(bad)?;
    let cert = params.self_signed(&key).map_err(bad)?;
    let der = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signing = crate::tls::provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| OrderError::Protocol(format!("TLS-ALPN-01 key: {e}")))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    )))
}

/// The challenge answers one order published (here and, with a tier, on
/// every instance); withdrawn when dropped, so an order that fails
/// half-way leaves nothing behind.
struct Published {
    book: &'static ChallengeBook,
    tier: Option<Arc<dyn AcmeTier>>,
    answers: Vec<Challenge>,
}

impl Published {
    fn new(book: &'static ChallengeBook, tier: Option<Arc<dyn AcmeTier>>) -> Self {
        Published {
            book,
            tier,
            answers: Vec::new(),
        }
    }

    async fn publish(&mut self, answer: Challenge) -> Result<(), OrderError> {
        add_to_book(self.book, &answer)?;
        self.answers.push(answer.clone());
        if let Some(tier) = &self.tier {
            tier.publish(&answer).await?;
        }
        Ok(())
    }
}

/// Puts `answer` in this instance's book.
pub fn add_to_book(book: &ChallengeBook, answer: &Challenge) -> Result<(), OrderError> {
    match answer {
        Challenge::Http01 {
            token,
            key_authorization,
        } => book.add_http01(token, key_authorization),
        Challenge::TlsAlpn01 { domain, digest } => {
            book.add_tls_alpn01(domain, validation_cert(domain, digest)?)
        }
    }
    Ok(())
}

/// Takes `answer` out of this instance's book.
pub fn remove_from_book(book: &ChallengeBook, answer: &Challenge) {
    match answer {
        Challenge::Http01 { token, .. } => book.remove_http01(token),
        Challenge::TlsAlpn01 { domain, .. } => book.remove_tls_alpn01(domain),
    }
}

impl Drop for Published {
    fn drop(&mut self) {
        for a in &self.answers {
            remove_from_book(self.book, a);
        }
        if let Some(tier) = &self.tier {
            if !self.answers.is_empty() {
                tier.withdraw(std::mem::take(&mut self.answers));
            }
        }
    }
}
