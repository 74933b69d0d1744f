//! Which subscribed module answers a provided interface at each municipality. A choice is a
//! routing change: it takes the next routing generation and stamps its row, so every host
//! applies it in one swap of its live table, in order with every other routing change.

use super::routing::next_generation;
use super::{Db, now_iso};
use crate::catalog::manifest::ProvidedInterface;
use anyhow::Result;
use sqlx::Row;

/// One municipality's choice for one interface; `module_id` none: no module chosen (the
/// platform's own data where it has some).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderChoice {
    pub lg_code: String,
    pub interface: ProvidedInterface,
    pub module_id: Option<String>,
}

/// Why a choice was not written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChoiceRefused {
    /// The module is not subscribed (actively) by the municipality.
    NotSubscribed,
}

fn choice_row(r: &sqlx::any::AnyRow) -> Result<Option<ProviderChoice>> {
    let interface: String = r.try_get("interface")?;
    // A row of an interface this host does not know (written by a newer host) is skipped.
    Ok(ProvidedInterface::parse(&interface).map(|interface| -> Result<ProviderChoice> {
        Ok(ProviderChoice { lg_code: r.try_get("lg_code")?, interface, module_id: r.try_get("module_id")? })
    }).transpose()?)
}

impl Db {
    /// Chooses `module_id` (or none) to provide `interface` at `lg_code`. A module must be
    /// actively subscribed there, checked in the same statement that writes the choice.
    pub async fn choose_provider(&self, lg_code: &str, interface: ProvidedInterface, module_id: Option<&str>, by: &str) -> Result<Result<(), ChoiceRefused>> {
        let mut tx = self.pool().begin().await?;
        let generation = next_generation(&mut tx).await?;
        let written = sqlx::query(
            "INSERT INTO providers (lg_code, interface, module_id, chosen_at, chosen_by, generation)
             SELECT $1, $2, CAST($3 AS TEXT), $4, $5, $6
             WHERE CAST($3 AS TEXT) IS NULL OR EXISTS (SELECT 1 FROM subscriptions WHERE lg_code = $1 AND module_id = $3 AND active = 1)
             ON CONFLICT (lg_code, interface) DO UPDATE SET module_id = excluded.module_id, chosen_at = excluded.chosen_at,
                chosen_by = excluded.chosen_by, generation = excluded.generation",
        )
        .bind(lg_code)
        .bind(interface.name())
        .bind(module_id)
        .bind(now_iso())
        .bind(by)
        .bind(generation)
        .execute(&mut *tx)
        .await?;
        if written.rows_affected() == 0 {
            return Ok(Err(ChoiceRefused::NotSubscribed));
        }
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Every choice of `lg_code` (or of every municipality).
    pub async fn provider_choices(&self, lg_code: Option<&str>) -> Result<Vec<ProviderChoice>> {
        let rows = sqlx::query("SELECT lg_code, interface, module_id FROM providers WHERE CAST($1 AS TEXT) IS NULL OR lg_code = $1 ORDER BY lg_code, interface")
            .bind(lg_code)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(choice_row).collect::<Result<Vec<_>>>()?.into_iter().flatten().collect())
    }

    /// Choices stamped after `after`, up to `upto` (the routing view's window).
    pub(super) async fn provider_choices_between(&self, after: i64, upto: i64) -> Result<Vec<ProviderChoice>> {
        let rows = sqlx::query("SELECT lg_code, interface, module_id FROM providers WHERE generation > $1 AND generation <= $2 ORDER BY lg_code, interface")
            .bind(after)
            .bind(upto)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(choice_row).collect::<Result<Vec<_>>>()?.into_iter().flatten().collect())
    }

    /// The interfaces `module_id` is chosen to provide at `lg_code`.
    pub async fn provides_at(&self, lg_code: &str, module_id: &str) -> Result<Vec<ProvidedInterface>> {
        Ok(self.provider_choices(Some(lg_code)).await?.into_iter().filter(|c| c.module_id.as_deref() == Some(module_id)).map(|c| c.interface).collect())
    }
}
