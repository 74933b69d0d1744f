//! The municipalities (tenants) table.

use super::{Db, now_iso};
use crate::lgcode::LgCode;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Municipality {
    pub lg_code: LgCode,
    /// Official name, stored byte for byte.
    pub name: String,
    pub prefecture: String,
    pub population: i64,
}

/// What happened on an insert.
#[derive(Debug, PartialEq, Eq)]
pub enum Inserted {
    Created,
    AlreadyExists,
}

impl Db {
    pub async fn insert_municipality(&self, m: &Municipality) -> Result<Inserted> {
        let result = sqlx::query(
            "INSERT INTO municipalities (lg_code, name, prefecture, population, created_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (lg_code) DO NOTHING",
        )
        .bind(m.lg_code.as_str())
        .bind(&m.name)
        .bind(&m.prefecture)
        .bind(m.population)
        .bind(now_iso())
        .execute(self.pool())
        .await?;
        Ok(if result.rows_affected() == 1 { Inserted::Created } else { Inserted::AlreadyExists })
    }

    pub async fn list_municipalities(&self) -> Result<Vec<Municipality>> {
        let rows = sqlx::query("SELECT lg_code, name, prefecture, population FROM municipalities ORDER BY lg_code")
            .fetch_all(self.pool())
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(Municipality {
                    lg_code: LgCode::parse(&r.try_get::<String, _>(0)?)?,
                    name: r.try_get(1)?,
                    prefecture: r.try_get(2)?,
                    population: r.try_get(3)?,
                })
            })
            .collect()
    }
}
