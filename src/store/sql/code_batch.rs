//! SQLite's code-flow writes, run in batches on the store's thread (`write_batch`, a
//! group commit): the authorization codes that `/authorize` inserts, and their
//! redemptions at the token endpoint, each kind with the writes of its kind that wait for
//! the writer beside it. A redemption in a batch is the same statements as one alone
//! (`REDEEM_ITEM_SQLITE`): its first consumes the code only if it is unconsumed, so a
//! code presented twice in one batch is redeemed by the first and writes nothing for the
//! second (RFC 6749 §4.1.2: a code is used once).

use sqlx::Row;
use sqlx::SqlitePool;

use super::grants::{
    bind_code, bind_grant, bind_redemption, redemption_label, INSERT_CODE, REDEEM_ITEM_SQLITE,
    REDEEM_WITH_REFRESH_ITEM_SQLITE,
};
use super::write_batch::{Batches, Command, Kind};
use crate::clock::UnixTime;
use crate::domain::{AuthorizationCode, Grant, RefreshToken};
use crate::store::StoreError;

/// The store's queues of code-flow writes.
#[derive(Debug, Clone)]
pub(in crate::store) struct CodeWrites {
    inserts: Batches<CodeInsert>,
    redemptions: Batches<Redemption<false>>,
    /// With `offline_access`: the first refresh token too.
    redemptions_with_refresh: Batches<Redemption<true>>,
}

impl CodeWrites {
    /// Starts their tasks on `runtime` (the store's thread), writing through `pool` (the
    /// single writer).
    pub(in crate::store) fn start(runtime: &tokio::runtime::Handle, pool: &SqlitePool) -> Self {
        Self {
            inserts: Batches::start(runtime, pool.clone()),
            redemptions: Batches::start(runtime, pool.clone()),
            redemptions_with_refresh: Batches::start(runtime, pool.clone()),
        }
    }

    /// Inserts `c` in the next batch of code inserts.
    pub(super) async fn insert(&self, c: &AuthorizationCode) -> Result<(), StoreError> {
        self.inserts.write(c.clone()).await.map(drop)
    }

    /// Consumes the code of `code_hash` and inserts `grant` (and `refresh`) in the next
    /// batch of redemptions; false if the code was consumed already (nothing written).
    pub(super) async fn redeem(
        &self,
        code_hash: &[u8],
        grant: &Grant,
        refresh: Option<&RefreshToken>,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let item = OwnedRedemption {
            grant: grant.clone(),
            now,
            code_hash: code_hash.to_vec(),
            refresh: refresh.cloned(),
        };
        let row = if item.refresh.is_some() {
            self.redemptions_with_refresh.write(item).await?
        } else {
            self.redemptions.write(item).await?
        };
        // No row cannot happen (the last statement always answers); it would count as
        // not redeemed, which the token endpoint answers `invalid_grant`.
        let done: Option<i64> = row
            .map(|row| row.try_get("done"))
            .transpose()
            .map_err(super::backend)?;
        Ok(done == Some(1))
    }

    /// How many code inserts and redemptions so far were answered by a batch of more
    /// than one.
    pub(in crate::store) fn answered_together(&self) -> u64 {
        self.inserts.answered_together()
            + self.redemptions.answered_together()
            + self.redemptions_with_refresh.answered_together()
    }
}

/// An authorization code's insert; it answers no row.
struct CodeInsert;

impl Kind for CodeInsert {
    type Item = AuthorizationCode;
    const PARAMS: usize = 16;
    const ITEM: &'static str = INSERT_CODE;
    const WHAT: &'static str = "authorization code";

    fn bind<'q>(query: Command<'q>, c: &'q AuthorizationCode) -> Command<'q> {
        bind_code!(query, c)
    }
}

/// A code's redemption with the grant it creates (and with `REFRESH` the first refresh
/// token); it answers a row whose `done` is 1 if it redeemed the code.
struct Redemption<const REFRESH: bool>;

/// A redemption's values, owned to cross into the store's thread.
struct OwnedRedemption {
    grant: Grant,
    now: UnixTime,
    code_hash: Vec<u8>,
    refresh: Option<RefreshToken>,
}

impl<const REFRESH: bool> Kind for Redemption<REFRESH> {
    type Item = OwnedRedemption;
    /// The grant (`$1`-`$13`), the time, the code's hash, and the refresh token's six.
    const PARAMS: usize = if REFRESH { 21 } else { 15 };
    const ITEM: &'static str = if REFRESH {
        REDEEM_WITH_REFRESH_ITEM_SQLITE
    } else {
        REDEEM_ITEM_SQLITE
    };
    const WHAT: &'static str = redemption_label(REFRESH);

    /// Always `PARAMS` arguments, whatever the item holds: a batch's later items take
    /// theirs by position, so one item binding six too many or too few would give every
    /// item after it another's values. `CodeWrites::redeem` queues by `refresh`, so the
    /// two agree; if they did not, a refresh token's six would be NULL here and its insert
    /// would fail on its own (`NOT NULL`), and one that is not wanted is left out.
    fn bind<'q>(query: Command<'q>, r: &'q OwnedRedemption) -> Command<'q> {
        let refresh = r.refresh.as_ref().filter(|_| REFRESH);
        let query = bind_redemption!(query, r.grant, r.now, r.code_hash.as_slice(), refresh);
        if REFRESH && refresh.is_none() {
            (0..6).fold(query, |query, _| query.bind(None::<String>))
        } else {
            query
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sql::write_batch::{
        assert_each_item_has_its_own_parameters, bound_arguments,
    };

    #[test]
    fn each_write_of_a_batch_binds_its_own_parameters() {
        assert_each_item_has_its_own_parameters::<CodeInsert>();
        assert_each_item_has_its_own_parameters::<Redemption<false>>();
        assert_each_item_has_its_own_parameters::<Redemption<true>>();
    }

    fn redemption(refresh: bool) -> OwnedRedemption {
        let grant = Grant {
            id: "g".into(),
            client_id: crate::domain::ClientId::parse("web").unwrap(),
            user_id: crate::domain::UserId::from_stored("u".into()),
            sid: "s".into(),
            scope: crate::domain::Scope::parse("openid offline_access").unwrap(),
            resource: None,
            auth_time: 1,
            credentials_epoch: 1,
            amr: vec![],
            created_at: 1,
            last_used_at: 1,
            expires_at: 2,
            revoked_at: None,
        };
        let token = RefreshToken {
            token_hash: b"rt".to_vec(),
            grant_id: "g".into(),
            client_id: grant.client_id.clone(),
            scope: grant.scope.clone(),
            created_at: 1,
            expires_at: 2,
            spent_at: None,
        };
        OwnedRedemption {
            grant,
            now: 1,
            code_hash: b"c".to_vec(),
            refresh: refresh.then_some(token),
        }
    }

    /// Every item binds exactly its kind's `PARAMS`, even one queued with the wrong kind.
    #[test]
    fn every_item_binds_its_kinds_count_of_arguments() {
        for refresh in [false, true] {
            let item = redemption(refresh);
            assert_eq!(bound_arguments::<Redemption<false>>(&item), 15);
            assert_eq!(bound_arguments::<Redemption<true>>(&item), 21);
        }
        let code = AuthorizationCode {
            code_hash: b"c".to_vec(),
            grant_id: "g".into(),
            client_id: crate::domain::ClientId::parse("web").unwrap(),
            user_id: crate::domain::UserId::from_stored("u".into()),
            sid: "s".into(),
            redirect_uri: "https://app.example/cb".into(),
            scope: crate::domain::Scope::parse("openid").unwrap(),
            nonce: None,
            code_challenge: "c".repeat(43),
            resource: None,
            auth_time: 1,
            credentials_epoch: 1,
            amr: vec![],
            created_at: 1,
            expires_at: 2,
            consumed_at: None,
        };
        assert_eq!(bound_arguments::<CodeInsert>(&code), CodeInsert::PARAMS);
    }
}
