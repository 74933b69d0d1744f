//! The routing generation and what changed under it. Every write that changes what serves
//! where takes the next generation inside its own transaction ([`next_generation`]: the
//! `routing` row is written first, so such transactions commit one after another, in the
//! order of their numbers) and stamps the rows it wrote with it. A host that applied
//! generation `g` brings its table up to date by reading what was stamped after `g`.

use super::Db;
use super::catalog::Subscription;
use anyhow::Result;
use sqlx::{AnyConnection, Row};

/// Takes the next routing generation inside the caller's transaction.
pub async fn next_generation(conn: &mut AnyConnection) -> Result<i64> {
    let row = sqlx::query("UPDATE routing SET generation = generation + 1 WHERE id = 1 RETURNING generation").fetch_one(&mut *conn).await?;
    Ok(row.try_get(0)?)
}

/// What the database says about routing as of `generation`.
#[derive(Debug, Default)]
pub struct RoutingView {
    pub generation: i64,
    /// Subscriptions stamped after the generation asked about (all, for a full view).
    pub subscriptions: Vec<Subscription>,
    /// Modules whose suspension changed after it, with whether they are suspended now.
    pub modules: Vec<(String, bool)>,
    /// Every module suspended now.
    pub suspended: Vec<String>,
    /// Provider choices stamped after the generation asked about (all, for a full view).
    pub providers: Vec<super::providers::ProviderChoice>,
}

impl Db {
    /// The current routing generation.
    pub async fn routing_generation(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT generation FROM routing WHERE id = 1").fetch_one(self.pool()).await?.try_get(0)?)
    }

    /// What changed after `since` up to the current generation (everything for `None`).
    /// The generation is read first. For a change set, rows written later carry higher
    /// numbers and are left for the next call. A whole view (`None`) takes every row as it
    /// is now, also those a change committed after the generation was read: leaving such a
    /// row out would drop its route from the rebuilt table (a municipality answered 404
    /// until the next converge). Applying that change again later is harmless: every
    /// change sets what its row says.
    pub async fn routing_since(&self, since: Option<i64>) -> Result<RoutingView> {
        let generation = self.routing_generation().await?;
        let after = since.unwrap_or(-1);
        let upto = if since.is_some() { generation } else { i64::MAX };
        let subscriptions = sqlx::query(&format!(
            "SELECT {} FROM subscriptions WHERE generation > $1 AND generation <= $2 ORDER BY lg_code, module_id",
            super::catalog::SUBSCRIPTION_COLUMNS
        ))
        .bind(after)
        .bind(upto)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(super::catalog::subscription_row)
        .collect::<Result<Vec<_>>>()?;
        let modules = sqlx::query("SELECT id, suspended_reason FROM modules WHERE generation > $1 AND generation <= $2")
            .bind(after)
            .bind(upto)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get::<Option<String>, _>(1)?.is_some())))
            .collect::<Result<Vec<_>>>()?;
        let suspended = sqlx::query("SELECT id FROM modules WHERE suspended_reason IS NOT NULL")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| Ok(r.try_get(0)?))
            .collect::<Result<Vec<_>>>()?;
        let providers = self.provider_choices_between(after, upto).await?;
        Ok(RoutingView { generation, subscriptions, modules, suspended, providers })
    }
}
