//! A per-node cache of registered clients for the token hot path. Looking a client up in
//! the database on every token request costs more than signing the token; with the cache,
//! the signer is the bound (see `docs/performance.md`).
//!
//! Staleness is bounded: every client mutation bumps the `clients` generation in the same
//! transaction, and each node polls it every `clients.cache_refresh_secs`, dropping the
//! whole cache when it moved. A deleted client or a rotated secret stops working on every
//! node within that time. Only found clients are cached; secrets are still checked on
//! every request against the cached keyed hash.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::domain::{Client, ClientId};
use crate::service::{AppState, ServiceError};
use crate::store::{Store, StoreError};

/// More distinct clients than this and the cache starts over (it only ever holds what
/// requests asked for, but an attacker may ask for many).
const MAX_ENTRIES: usize = 10_000;

/// The cache.
pub struct ClientCache {
    entries: RwLock<HashMap<ClientId, Arc<Client>>>,
    generation: AtomicI64,
}

impl ClientCache {
    /// An empty cache at the store's current generation.
    pub async fn new(store: &dyn Store) -> Result<Self, StoreError> {
        Ok(Self {
            entries: RwLock::new(HashMap::new()),
            generation: AtomicI64::new(store.clients_generation().await?),
        })
    }

    /// The client, from memory or from the store.
    pub async fn get(
        &self,
        store: &dyn Store,
        id: &ClientId,
    ) -> Result<Option<Arc<Client>>, StoreError> {
        if let Some(c) = self.entries.read().ok().and_then(|m| m.get(id).cloned()) {
            return Ok(Some(c));
        }
        let seen = self.generation.load(Ordering::SeqCst);
        let Some(client) = store.get_client(id).await? else {
            return Ok(None);
        };
        let client = Arc::new(client);
        if let Ok(mut m) = self.entries.write() {
            // A refresh that ran while we read may have dropped what we read: keep it out.
            if self.generation.load(Ordering::SeqCst) == seen {
                if m.len() >= MAX_ENTRIES {
                    m.clear();
                }
                m.insert(id.clone(), client.clone());
            }
        }
        Ok(Some(client))
    }

    /// Drops everything if the stored generation moved. Returns whether it did.
    pub async fn refresh(&self, store: &dyn Store) -> Result<bool, StoreError> {
        let current = store.clients_generation().await?;
        if current == self.generation.load(Ordering::SeqCst) {
            return Ok(false);
        }
        if let Ok(mut m) = self.entries.write() {
            self.generation.store(current, Ordering::SeqCst);
            m.clear();
        }
        Ok(true)
    }

    /// Polls the generation every `every` until the process ends.
    pub fn spawn_refresher(
        self: &Arc<Self>,
        store: Arc<dyn Store>,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let cache = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = cache.refresh(store.as_ref()).await {
                    tracing::warn!(error = %e, "client cache refresh failed; dropping the cache");
                    // Fail safe: without a generation we cannot know what changed.
                    if let Ok(mut m) = cache.entries.write() {
                        m.clear();
                    }
                }
            }
        })
    }
}

/// The client a request names by `client_id`, through the cache like the token endpoint
/// (a deleted client stops being offered within `clients.cache_refresh_secs`, and its
/// codes are refused at the token endpoint, which authenticates it); `None` for a
/// missing, malformed or unknown id.
pub async fn named(state: &AppState, id: Option<&str>) -> Result<Option<Client>, ServiceError> {
    match id.map(ClientId::parse) {
        Some(Ok(id)) => Ok(state
            .clients
            .get(state.store.as_ref(), &id)
            .await?
            .map(|c| Client::clone(&c))),
        _ => Ok(None),
    }
}
