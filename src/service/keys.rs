//! The key ring: the parsed signing key and the published documents, held in memory and
//! swapped atomically when the stored key set changes. Every node re-reads the key set
//! every `keys.refresh_interval_secs`, so a rotation made by the CLI or another node is
//! picked up within that bound (see `docs/key-rotation.md`).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;

use crate::clock::{Clock, UnixTime};
use crate::config::Settings;
use crate::crypto::jwk::{JwkSet, PublicJwk};
use crate::crypto::jwt::{encode_jws, VerifyingKeys};
use crate::crypto::kek::MasterKey;
use crate::crypto::rsa_keys::generate_rsa_key;
use crate::crypto::signer::{default_signer, JwsSigner};
use crate::crypto::{alg, CryptoError};
use crate::domain::{KeyState, SigningKeyRecord};
use crate::store::{Rotation, Store};

use super::ServiceError;

mod binding;

pub use binding::key_aad;

/// What every request reads: built once per key change, served from memory.
pub struct Published {
    /// The `current` key's id.
    pub signing_kid: String,
    /// The `current` key, parsed once.
    pub signer: Arc<dyn JwsSigner>,
    /// Every published key, for verifying our own tokens.
    pub verifying: VerifyingKeys,
    /// The JWKS document.
    pub jwks: Document,
    /// The OpenID Connect Discovery document.
    pub openid_configuration: Document,
    /// The RFC 8414 metadata document.
    pub oauth_metadata: Document,
    fingerprint: Fingerprint,
}

/// What decides whether the key set changed: each row's id, state and public key.
type Fingerprint = Vec<(String, KeyState, String, String)>;

/// A legacy-sealed key to re-seal under [`key_aad`]: kid, old and new sealed bytes.
struct Reseal {
    kid: String,
    old: Vec<u8>,
    new: Vec<u8>,
}

/// A serialised JSON document and its strong ETag, built once and served from memory.
#[derive(Debug, Clone)]
pub struct Document {
    /// The bytes sent.
    pub bytes: Vec<u8>,
    /// `"` + base64url(first 128 bits of SHA-256(bytes)) + `"`.
    pub etag: String,
}

impl Document {
    /// Serialises `value` and computes its ETag.
    pub fn json<T: Serialize>(value: &T) -> Result<Self, CryptoError> {
        let bytes = serde_json::to_vec(value).map_err(|e| CryptoError::Encoding(e.to_string()))?;
        let digest = crate::crypto::token::sha256(&bytes);
        let etag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest[..16]));
        Ok(Self { bytes, etag })
    }
}

/// The in-memory key ring.
pub struct KeyRing {
    store: Arc<dyn Store>,
    master: Arc<MasterKey>,
    issuer: String,
    published: ArcSwap<Published>,
}

impl KeyRing {
    /// Creates the first `current` and `next` keys if the store has none, then loads.
    pub async fn init(
        store: Arc<dyn Store>,
        master: Arc<MasterKey>,
        settings: &Settings,
        now: UnixTime,
    ) -> Result<Arc<Self>, ServiceError> {
        ensure_initial_keys(store.as_ref(), &master, settings, now).await?;
        let records = store.list_published_keys().await?;
        let (published, reseal) = build_published(&records, &master, &settings.issuer)?;
        reseal_legacy(store.as_ref(), reseal).await;
        Ok(Arc::new(Self {
            store,
            master,
            issuer: settings.issuer.clone(),
            published: ArcSwap::from_pointee(published),
        }))
    }

    /// The documents and signer in force now.
    pub fn published(&self) -> Arc<Published> {
        self.published.load_full()
    }

    /// Signs `claims` as a JWS with the `current` key.
    pub fn sign<C: Serialize>(&self, typ: &str, claims: &C) -> Result<String, CryptoError> {
        let p = self.published.load();
        encode_jws(p.signer.as_ref(), &p.signing_kid, typ, claims)
    }

    /// Re-reads the key set and swaps in new documents if it changed. Returns whether it did.
    pub async fn reload(&self) -> Result<bool, ServiceError> {
        let records = self.store.list_published_keys().await?;
        if fingerprint(&records) == self.published.load().fingerprint {
            return Ok(false);
        }
        let (published, reseal) = build_published(&records, &self.master, &self.issuer)?;
        reseal_legacy(self.store.as_ref(), reseal).await;
        tracing::info!(signing_kid = %published.signing_kid, keys = records.len(), "key set changed");
        self.published.store(Arc::new(published));
        Ok(true)
    }

    /// Reloads every `interval` until the process ends.
    pub fn spawn_refresher(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let ring = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = ring.reload().await {
                    tracing::error!(error = %e, "reloading signing keys failed; keeping the old set");
                }
            }
        })
    }
}

fn fingerprint(records: &[SigningKeyRecord]) -> Fingerprint {
    records
        .iter()
        .map(|r| {
            (
                r.kid.clone(),
                r.state,
                r.public_n.clone(),
                r.public_e.clone(),
            )
        })
        .collect()
}

/// Builds what is served from the rows that pass [`binding::open_checked`]; a row that
/// fails is logged and left out, never published nor used. Without a usable `current` key
/// nothing is built.
fn build_published(
    records: &[SigningKeyRecord],
    master: &MasterKey,
    issuer: &str,
) -> Result<(Published, Vec<Reseal>), ServiceError> {
    let mut signer = None;
    let mut jwks = Vec::new();
    let mut reseal = Vec::new();
    for r in records.iter().filter(|r| r.state.is_published()) {
        let opened = match binding::open_checked(r, master) {
            Ok(opened) => opened,
            Err(why) => {
                tracing::error!(kid = %r.kid, state = r.state.as_str(),
                    "signing key rejected, neither published nor used: {why}");
                continue;
            }
        };
        if opened.legacy {
            let aad = key_aad(&r.kid, &r.alg, &r.public_n, &r.public_e);
            let new = master.seal(&opened.der, &aad)?;
            let (kid, old) = (r.kid.clone(), r.private_key_sealed.clone());
            reseal.push(Reseal { kid, old, new });
        }
        if r.state == KeyState::Current {
            signer = Some((r.kid.clone(), default_signer(&opened.der)?));
        }
        jwks.push(PublicJwk::rsa(&r.kid, &r.public_n, &r.public_e, &r.alg));
    }
    let Some((signing_kid, signer)) = signer else {
        return Err(ServiceError::Conflict(
            "no usable current signing key: it is missing or failed verification (see the \
             error logged above); restore the signing_keys row from a backup or run \
             `latchkey keys rotate --force`"
                .into(),
        ));
    };
    let published = publish(signing_kid, signer, jwks, records, issuer)?;
    Ok((published, reseal))
}

fn publish(
    signing_kid: String,
    signer: Arc<dyn JwsSigner>,
    jwks: Vec<PublicJwk>,
    records: &[SigningKeyRecord],
    issuer: &str,
) -> Result<Published, ServiceError> {
    let verifying = VerifyingKeys::from_jwks(&jwks)?;
    let algs: Vec<&str> = alg::ALLOWED_ALGORITHMS
        .iter()
        .map(|a| alg::name(*a))
        .collect();
    Ok(Published {
        signing_kid,
        signer,
        verifying,
        jwks: Document::json(&JwkSet { keys: jwks })?,
        openid_configuration: Document::json(&crate::oidc::openid_configuration(issuer, &algs))?,
        oauth_metadata: Document::json(&crate::oidc::authorization_server_metadata(issuer))?,
        fingerprint: fingerprint(records),
    })
}

/// Re-seals keys sealed before their public key was bound; only if the row is unchanged.
async fn reseal_legacy(store: &dyn Store, keys: Vec<Reseal>) {
    for k in keys {
        match store.reseal_key(&k.kid, &k.old, &k.new).await {
            Ok(_) => {
                tracing::info!(kid = %k.kid, "signing key re-sealed with its public key bound")
            }
            Err(e) => {
                tracing::warn!(kid = %k.kid, error = %e, "re-sealing a signing key failed; will retry")
            }
        }
    }
}

/// Generates a key and seals its private half under the key-encryption key.
pub async fn new_key_record(
    master: &MasterKey,
    bits: usize,
    state: KeyState,
    now: UnixTime,
) -> Result<SigningKeyRecord, ServiceError> {
    let generated = tokio::task::spawn_blocking(move || generate_rsa_key(bits))
        .await
        .map_err(|e| CryptoError::TaskJoin(e.to_string()))??;
    let alg = alg::name(alg::DEFAULT_ALGORITHM).to_owned();
    let aad = key_aad(&generated.kid, &alg, &generated.n, &generated.e);
    let sealed = master.seal(&generated.pkcs8_der, &aad)?;
    Ok(SigningKeyRecord {
        kid: generated.kid.clone(),
        state,
        alg,
        bits: i64::try_from(bits).unwrap_or(2048),
        private_key_sealed: sealed,
        public_n: generated.n.clone(),
        public_e: generated.e.clone(),
        created_at: now,
        activated_at: (state == KeyState::Current).then_some(now),
        deactivated_at: None,
        retires_at: None,
    })
}

async fn ensure_initial_keys(
    store: &dyn Store,
    master: &MasterKey,
    settings: &Settings,
    now: UnixTime,
) -> Result<(), ServiceError> {
    let keys = store.list_published_keys().await?;
    if keys.iter().any(|k| k.state == KeyState::Current) {
        return Ok(());
    }
    let bits = settings.keys.rsa_bits;
    let current = new_key_record(master, bits, KeyState::Current, now).await?;
    let next = new_key_record(master, bits, KeyState::Next, now).await?;
    if store.insert_initial_keys(&current, &next).await? {
        tracing::info!(current = %current.kid, next = %next.kid, "created the first signing keys");
    }
    Ok(())
}

/// What `keys rotate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationOutcome {
    /// The key that now signs.
    pub current: String,
    /// The key that stopped signing.
    pub previous: Option<String>,
    /// The new key waiting its turn.
    pub next: String,
    /// When `previous` may be retired.
    pub previous_retires_at: UnixTime,
}

/// `keys rotate`: next -> current, current -> previous, a new next.
///
/// Refused (unless `force`) while the `next` key has been published for less than
/// `refresh_interval + jwks_max_age`: a resource server could still hold a cached JWKS
/// without it and would see an unknown `kid`.
pub async fn rotate(
    store: &dyn Store,
    master: &MasterKey,
    settings: &Settings,
    clock: &dyn Clock,
    force: bool,
) -> Result<RotationOutcome, ServiceError> {
    let now = clock.now();
    let keys = store.list_published_keys().await?;
    let next = keys
        .iter()
        .find(|k| k.state == KeyState::Next)
        .ok_or_else(|| {
            ServiceError::Conflict("there is no next key; start the server once".into())
        })?;
    let previous = keys
        .iter()
        .find(|k| k.state == KeyState::Current)
        .map(|k| k.kid.clone());
    // A row someone replaced in the database never signs.
    binding::open_checked(next, master).map_err(|why| {
        ServiceError::Refused(format!("key {} cannot be promoted: {why}", next.kid))
    })?;
    let ready_at = next.created_at + settings.keys.publication_delay_secs();
    if now < ready_at && !force {
        return Err(ServiceError::Refused(format!(
            "key {} has been published for {}s only; rotating before {}s (refresh interval + JWKS max-age) \
             could break resource servers with a cached JWKS. Wait {}s or pass --force",
            next.kid,
            now - next.created_at,
            settings.keys.publication_delay_secs(),
            ready_at - now
        )));
    }
    let new_next = new_key_record(master, settings.keys.rsa_bits, KeyState::Next, now).await?;
    // The demoted key may still sign on nodes that have not refreshed yet, for one
    // refresh interval; every token it signed expires within the longest token lifetime.
    let retires_at = now
        + i64::try_from(settings.keys.refresh_interval_secs).unwrap_or(i64::MAX / 4)
        + settings.tokens.longest_signed_ttl_secs();
    store
        .rotate_keys(&Rotation {
            promote_kid: &next.kid,
            new_next: &new_next,
            now,
            previous_retires_at: retires_at,
        })
        .await?;
    Ok(RotationOutcome {
        current: next.kid.clone(),
        previous,
        next: new_next.kid,
        previous_retires_at: retires_at,
    })
}

/// `keys retire KID`: only a `previous` key whose tokens have all expired, unless `force`.
pub async fn retire(
    store: &dyn Store,
    kid: &str,
    clock: &dyn Clock,
    force: bool,
) -> Result<(), ServiceError> {
    let keys = store.list_published_keys().await?;
    let key = keys
        .iter()
        .find(|k| k.kid == kid)
        .ok_or_else(|| ServiceError::NotFound(format!("published key {kid}")))?;
    if key.state != KeyState::Previous {
        return Err(ServiceError::Refused(format!(
            "key {kid} is {}; only a previous key can be retired (rotate first)",
            key.state.as_str()
        )));
    }
    let now = clock.now();
    if let Some(at) = key.retires_at {
        if now < at && !force {
            return Err(ServiceError::Refused(format!(
                "tokens signed by {kid} may be valid until {at} ({}s from now); wait or pass --force",
                at - now
            )));
        }
    }
    if store.retire_key(kid, KeyState::Previous).await? {
        Ok(())
    } else {
        Err(ServiceError::Conflict(format!(
            "key {kid} changed state meanwhile"
        )))
    }
}

/// `keys list`: every key, retired ones included.
pub async fn list(store: &dyn Store) -> Result<Vec<SigningKeyRecord>, ServiceError> {
    Ok(store.list_all_keys().await?)
}
