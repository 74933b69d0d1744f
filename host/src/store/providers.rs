//! Which subscribed module answers a provided interface at each municipality. A choice is a
//! routing change: it takes the next routing generation and stamps its row, so every host
//! applies it in one swap of its live table, in order with every other routing change.

use super::routing::next_generation;
use super::{Db, now_iso};
use crate::capabilities::Capability;
use crate::catalog::manifest::{Manifest, ProvidedInterface};
use crate::plugins::providers::{Graph, Proposed, cycle};
use anyhow::Result;
use sqlx::{AnyConnection, Row};
use std::collections::BTreeSet;

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
    /// The version the municipality runs does not declare `[provides.<interface>]`.
    DoesNotProvide(String),
    /// It would close a loop between providers (described).
    Cycle(String),
}

/// What a subscribed module runs at a municipality: its version and what it may call
/// (requested ∩ granted).
struct Running {
    version: String,
    manifest: Manifest,
    capabilities: BTreeSet<Capability>,
}

/// The active subscription of `module_id` at `lg_code` with its version's manifest, on
/// `conn`.
async fn running(conn: &mut AnyConnection, lg_code: &str, module_id: &str) -> Result<Option<Running>> {
    let row = sqlx::query(
        "SELECT s.grants, s.version, v.manifest FROM subscriptions s JOIN module_versions v ON v.module_id = s.module_id AND v.version = s.version
         WHERE s.lg_code = $1 AND s.module_id = $2 AND s.active = 1",
    )
    .bind(lg_code)
    .bind(module_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let grants: Vec<String> = serde_json::from_str(&row.try_get::<String, _>(0)?)?;
    let manifest: Manifest = serde_json::from_str(&row.try_get::<String, _>(2)?)?;
    let capabilities = crate::plugins::lifecycle::effective_capabilities(&manifest, &grants);
    Ok(Some(Running { version: row.try_get(1)?, manifest, capabilities }))
}

/// Who provides what at `lg_code`, and what each chosen provider may call, on `conn`
/// (inside a transaction that took the routing generation, so no routing change
/// interleaves).
pub async fn graph(conn: &mut AnyConnection, lg_code: &str) -> Result<Graph> {
    let rows = sqlx::query("SELECT lg_code, interface, module_id FROM providers WHERE lg_code = $1 AND module_id IS NOT NULL").bind(lg_code).fetch_all(&mut *conn).await?;
    let mut graph = Graph::default();
    for choice in rows.iter().map(choice_row).collect::<Result<Vec<_>>>()?.into_iter().flatten() {
        let module = choice.module_id.expect("selected non-null");
        if !graph.capabilities.contains_key(&module) {
            let capabilities = running(conn, lg_code, &module).await?.map(|r| r.capabilities).unwrap_or_default();
            graph.capabilities.insert(module.clone(), capabilities);
        }
        graph.chosen.insert(choice.interface, module);
    }
    Ok(graph)
}

fn choice_row(r: &sqlx::any::AnyRow) -> Result<Option<ProviderChoice>> {
    let interface: String = r.try_get("interface")?;
    // A row of an interface this host does not know (written by a newer host) is skipped.
    Ok(ProvidedInterface::parse(&interface).map(|interface| -> Result<ProviderChoice> {
        Ok(ProviderChoice { lg_code: r.try_get("lg_code")?, interface, module_id: r.try_get("module_id")? })
    }).transpose()?)
}

impl Db {
    /// Chooses `module_id` (or none) to provide `interface` at `lg_code`. The module must be
    /// actively subscribed there, in a version that declares the interface, and the choice
    /// must not close a loop between providers: checked in the transaction that writes it.
    pub async fn choose_provider(&self, lg_code: &str, interface: ProvidedInterface, module_id: Option<&str>, by: &str) -> Result<Result<(), ChoiceRefused>> {
        let mut tx = self.pool().begin().await?;
        let generation = next_generation(&mut tx).await?;
        let proposed = match module_id {
            None => Proposed::Choice(interface, None),
            Some(module) => {
                let Some(running) = running(&mut tx, lg_code, module).await? else { return Ok(Err(ChoiceRefused::NotSubscribed)) };
                if !running.manifest.provides.contains_key(&interface) {
                    return Ok(Err(ChoiceRefused::DoesNotProvide(running.version)));
                }
                Proposed::Choice(interface, Some((module, running.capabilities)))
            }
        };
        if let Some(path) = cycle(graph(&mut tx, lg_code).await?, proposed) {
            return Ok(Err(ChoiceRefused::Cycle(path)));
        }
        sqlx::query(
            "INSERT INTO providers (lg_code, interface, module_id, chosen_at, chosen_by, generation) VALUES ($1, $2, $3, $4, $5, $6)
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
}
