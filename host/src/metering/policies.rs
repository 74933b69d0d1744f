//! The cost policy an operator publishes for a month, so each municipality can see its own
//! share while the month runs. Only the policy is stored; shares follow from it and the
//! month's usage whenever they are asked for.

use super::cost::Policy;
use crate::store::Db;
use anyhow::Result;
use serde::Serialize;
use sqlx::Row;

/// A month's published policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Published {
    pub month: String,
    #[serde(flatten)]
    pub policy: Policy,
    /// `requests` or `cpu-time`: what the usage share is split by.
    pub measure: String,
    pub published_at: String,
}

/// Publishes (or replaces) the policy for `month`.
pub async fn publish(db: &Db, month: &str, policy: Policy, measure: &str) -> Result<Published> {
    let published_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    sqlx::query(
        "INSERT INTO cost_policies (month, total, fixed_weight, population_weight, usage_weight, measure, published_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (month) DO UPDATE SET total = excluded.total, fixed_weight = excluded.fixed_weight,
           population_weight = excluded.population_weight, usage_weight = excluded.usage_weight,
           measure = excluded.measure, published_at = excluded.published_at",
    )
    .bind(month)
    .bind(policy.total)
    .bind(i64::from(policy.fixed_weight))
    .bind(i64::from(policy.population_weight))
    .bind(i64::from(policy.usage_weight))
    .bind(measure)
    .bind(&published_at)
    .execute(db.pool())
    .await?;
    Ok(Published { month: month.to_string(), policy, measure: measure.to_string(), published_at })
}

/// The policy published for `month`, if any.
pub async fn published(db: &Db, month: &str) -> Result<Option<Published>> {
    let row = sqlx::query("SELECT total, fixed_weight, population_weight, usage_weight, measure, published_at FROM cost_policies WHERE month = $1")
        .bind(month)
        .fetch_optional(db.pool())
        .await?;
    let Some(r) = row else { return Ok(None) };
    let weight = |i: usize| -> Result<u32> { Ok(u32::try_from(r.try_get::<i64, _>(i)?)?) };
    Ok(Some(Published {
        month: month.to_string(),
        policy: Policy { total: r.try_get(0)?, fixed_weight: weight(1)?, population_weight: weight(2)?, usage_weight: weight(3)? },
        measure: r.try_get(4)?,
        published_at: r.try_get(5)?,
    }))
}
