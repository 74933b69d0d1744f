//! Per-municipality configuration of modules.

use super::Db;
use crate::lgcode::LgCode;
use anyhow::Result;
use sqlx::Row;
use std::collections::BTreeMap;

impl Db {
    pub async fn module_config(&self, lg_code: &LgCode, module_id: &str) -> Result<BTreeMap<String, String>> {
        let rows = sqlx::query("SELECT key, value FROM module_config WHERE lg_code = $1 AND module_id = $2")
            .bind(lg_code.as_str())
            .bind(module_id)
            .fetch_all(self.pool())
            .await?;
        rows.into_iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// Replaces the whole configuration in one transaction: readers see the old or the new
    /// settings, never a mix.
    pub async fn replace_module_config(
        &self,
        lg_code: &LgCode,
        module_id: &str,
        settings: &BTreeMap<String, String>,
    ) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        // Replacements of one municipality's config run one after the other: this write
        // takes SQLite's write lock, and the municipality's row lock on PostgreSQL, before
        // the delete (two replacements would otherwise merge, or collide on a key).
        sqlx::query("UPDATE municipalities SET name = name WHERE lg_code = $1").bind(lg_code.as_str()).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM module_config WHERE lg_code = $1 AND module_id = $2")
            .bind(lg_code.as_str())
            .bind(module_id)
            .execute(&mut *tx)
            .await?;
        for (key, value) in settings {
            sqlx::query("INSERT INTO module_config (lg_code, module_id, key, value) VALUES ($1, $2, $3, $4)")
                .bind(lg_code.as_str())
                .bind(module_id)
                .bind(key)
                .bind(value)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
