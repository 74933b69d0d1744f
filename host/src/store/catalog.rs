//! Vendors, modules, versions, reviews and subscriptions.

use super::routing::next_generation;
use super::{Db, now_iso};
use crate::catalog::manifest::{Manifest, ProvidedInterface};
use anyhow::{Context, Result};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

#[derive(Debug, Clone, Serialize)]
pub struct Vendor {
    pub id: String,
    pub name: String,
    pub public_key: String,
    pub auto_approve: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VersionStatus {
    Pending,
    Approved,
    Rejected,
}

impl VersionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VersionStatus::Pending => "pending",
            VersionStatus::Approved => "approved",
            VersionStatus::Rejected => "rejected",
        }
    }
    fn parse(s: &str) -> Self {
        match s {
            "approved" => VersionStatus::Approved,
            "rejected" => VersionStatus::Rejected,
            _ => VersionStatus::Pending,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct VersionRecord {
    pub module_id: String,
    pub version: String,
    pub digest: String,
    pub status: VersionStatus,
    pub manifest: Manifest,
    pub published_by: String,
    pub published_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Review {
    pub module_id: String,
    pub version: String,
    pub decision: String,
    pub reason: String,
    pub reviewer: String,
    pub decided_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Subscription {
    pub lg_code: String,
    pub module_id: String,
    pub grants: Vec<String>,
    pub pinned: bool,
    pub version: String,
    pub previous_version: Option<String>,
    pub active: bool,
}

/// Why [`Db::upsert_subscription`] wrote nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeRefused {
    /// The version is no longer approved.
    NotApproved,
    /// The module is chosen to provide this interface here and the version does not
    /// declare it.
    StopsProviding(String),
    /// The municipality accepted this notice kind into the module and the version does not
    /// receive it.
    StopsReceiving(String),
    /// The grants would close a loop between providers (described).
    ProviderCycle(String),
}

/// What [`Db::insert_version`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    Yes,
    /// The version exists already.
    Duplicate,
    /// The module id belongs to this vendor.
    TakenBy(String),
}

/// What a compare-and-set state change found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Done,
    /// The thing was already in the state asked for (or not in the one expected).
    AlreadyThere,
    Unknown,
}

/// A new version as admission hands it over.
pub struct NewVersion<'a> {
    pub manifest: &'a Manifest,
    pub digest: &'a str,
    pub bytes: &'a [u8],
    /// The vendor's signature and the manifest as signed, kept for checks on other hosts.
    pub signature: Option<&'a str>,
    pub signed_manifest: Option<&'a str>,
    pub published_by: &'a str,
    pub approve_as: Option<&'a str>,
}

fn version_row(r: AnyRow) -> Result<VersionRecord> {
    let manifest: String = r.try_get(3)?;
    Ok(VersionRecord {
        module_id: r.try_get(0)?,
        version: r.try_get(1)?,
        digest: r.try_get(2)?,
        manifest: serde_json::from_str(&manifest).context("stored manifest")?,
        status: VersionStatus::parse(&r.try_get::<String, _>(4)?),
        published_by: r.try_get(5)?,
        published_at: r.try_get(6)?,
    })
}

const VERSION_COLUMNS: &str = "module_id, version, digest, manifest, status, published_by, published_at";

pub(super) fn subscription_row(r: AnyRow) -> Result<Subscription> {
    let grants: String = r.try_get(2)?;
    Ok(Subscription {
        lg_code: r.try_get(0)?,
        module_id: r.try_get(1)?,
        grants: serde_json::from_str(&grants)?,
        pinned: r.try_get::<i64, _>(3)? != 0,
        version: r.try_get(4)?,
        previous_version: r.try_get(5)?,
        active: r.try_get::<i64, _>(6)? != 0,
    })
}

pub(super) const SUBSCRIPTION_COLUMNS: &str = "lg_code, module_id, grants, pinned, version, previous_version, active";

impl Db {
    pub async fn insert_vendor(&self, v: &Vendor) -> Result<bool> {
        let r = sqlx::query("INSERT INTO vendors (id, name, public_key, auto_approve, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING")
            .bind(&v.id)
            .bind(&v.name)
            .bind(&v.public_key)
            .bind(v.auto_approve as i64)
            .bind(now_iso())
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn vendor(&self, id: &str) -> Result<Option<Vendor>> {
        let row = sqlx::query("SELECT id, name, public_key, auto_approve FROM vendors WHERE id = $1").bind(id).fetch_optional(self.pool()).await?;
        row.map(|r| {
            Ok(Vendor { id: r.try_get(0)?, name: r.try_get(1)?, public_key: r.try_get(2)?, auto_approve: r.try_get::<i64, _>(3)? != 0 })
        })
        .transpose()
    }

    /// The vendor that owns a module id, if the id is taken.
    pub async fn module_owner(&self, module_id: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT vendor_id FROM modules WHERE id = $1").bind(module_id).fetch_optional(self.pool()).await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    pub async fn module_suspension(&self, module_id: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT suspended_reason FROM modules WHERE id = $1").bind(module_id).fetch_optional(self.pool()).await?;
        Ok(row.and_then(|r| r.try_get::<Option<String>, _>(0).ok().flatten()))
    }

    /// Suspends (`Some(reason)`) or resumes (`None`) a module, only from the state the caller
    /// expects: suspending a suspended module or resuming a running one changes nothing.
    pub async fn set_module_suspension(&self, module_id: &str, reason: Option<&str>) -> Result<Transition> {
        let mut tx = self.pool().begin().await?;
        let generation = next_generation(&mut tx).await?;
        let expected = if reason.is_some() { "suspended_reason IS NULL" } else { "suspended_reason IS NOT NULL" };
        let r = sqlx::query(&format!("UPDATE modules SET suspended_reason = $1, generation = $2 WHERE id = $3 AND {expected}"))
            .bind(reason)
            .bind(generation)
            .bind(module_id)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 1 {
            tx.commit().await?;
            return Ok(Transition::Done);
        }
        tx.rollback().await?;
        Ok(if self.module_owner(module_id).await?.is_some() { Transition::AlreadyThere } else { Transition::Unknown })
    }

    /// Records an admitted version in one transaction: the module (first version), the
    /// component bytes, the version, and (auto-approve) its review. Writes nothing if the
    /// version already exists, or if the module id belongs to another vendor: that is
    /// decided here, in the same transaction as the insert, not beforehand.
    pub async fn insert_version(&self, new: &NewVersion<'_>) -> Result<Inserted> {
        let m = new.manifest;
        let now = now_iso();
        let mut tx = self.pool().begin().await?;
        sqlx::query("INSERT INTO modules (id, vendor_id, created_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING")
            .bind(&m.id)
            .bind(&m.vendor)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        let owner: String = sqlx::query("SELECT vendor_id FROM modules WHERE id = $1").bind(&m.id).fetch_one(&mut *tx).await?.try_get(0)?;
        if owner != m.vendor {
            tx.rollback().await?;
            return Ok(Inserted::TakenBy(owner));
        }
        sqlx::query("INSERT INTO components (digest, bytes) VALUES ($1, $2) ON CONFLICT (digest) DO NOTHING")
            .bind(new.digest)
            .bind(new.bytes.to_vec())
            .execute(&mut *tx)
            .await?;
        let status = if new.approve_as.is_some() { VersionStatus::Approved } else { VersionStatus::Pending };
        let inserted = sqlx::query(
            "INSERT INTO module_versions (module_id, version, digest, manifest, status, published_by, published_at, signature, signed_manifest)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (module_id, version) DO NOTHING",
        )
        .bind(&m.id)
        .bind(&m.version)
        .bind(new.digest)
        .bind(serde_json::to_string(m)?)
        .bind(status.as_str())
        .bind(new.published_by)
        .bind(&now)
        .bind(new.signature)
        .bind(new.signed_manifest)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(Inserted::Duplicate);
        }
        if let Some(reviewer) = new.approve_as {
            insert_review(&mut tx, &m.id, &m.version, "approved", "auto-approve policy for this vendor", reviewer).await?;
        }
        tx.commit().await?;
        Ok(Inserted::Yes)
    }

    pub async fn version(&self, module_id: &str, version: &str) -> Result<Option<VersionRecord>> {
        let row = sqlx::query(&format!("SELECT {VERSION_COLUMNS} FROM module_versions WHERE module_id = $1 AND version = $2"))
            .bind(module_id)
            .bind(version)
            .fetch_optional(self.pool())
            .await?;
        row.map(version_row).transpose()
    }

    /// Versions of a module, or of every module when `module_id` is `None`, by publication.
    pub async fn versions(&self, module_id: Option<&str>) -> Result<Vec<VersionRecord>> {
        let rows = match module_id {
            Some(id) => sqlx::query(&format!("SELECT {VERSION_COLUMNS} FROM module_versions WHERE module_id = $1 ORDER BY published_at, version"))
                .bind(id)
                .fetch_all(self.pool())
                .await?,
            None => sqlx::query(&format!("SELECT {VERSION_COLUMNS} FROM module_versions ORDER BY module_id, published_at, version"))
                .fetch_all(self.pool())
                .await?,
        };
        rows.into_iter().map(version_row).collect()
    }

    pub async fn component_bytes(&self, digest: &str) -> Result<Vec<u8>> {
        let row = sqlx::query("SELECT bytes FROM components WHERE digest = $1").bind(digest).fetch_one(self.pool()).await?;
        Ok(row.try_get(0)?)
    }

    /// Approves or rejects a pending version and records the decision, in one transaction.
    /// Returns false if the version is not pending.
    pub async fn decide(&self, module_id: &str, version: &str, approve: bool, reason: &str, reviewer: &str) -> Result<bool> {
        let decision = if approve { VersionStatus::Approved } else { VersionStatus::Rejected };
        let mut tx = self.pool().begin().await?;
        let r = sqlx::query("UPDATE module_versions SET status = $1 WHERE module_id = $2 AND version = $3 AND status = 'pending'")
            .bind(decision.as_str())
            .bind(module_id)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_review(&mut tx, module_id, version, decision.as_str(), reason, reviewer).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn reviews(&self, module_id: &str) -> Result<Vec<Review>> {
        let rows = sqlx::query("SELECT module_id, version, decision, reason, reviewer, decided_at FROM reviews WHERE module_id = $1 ORDER BY decided_at")
            .bind(module_id)
            .fetch_all(self.pool())
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(Review {
                    module_id: r.try_get(0)?,
                    version: r.try_get(1)?,
                    decision: r.try_get(2)?,
                    reason: r.try_get(3)?,
                    reviewer: r.try_get(4)?,
                    decided_at: r.try_get(5)?,
                })
            })
            .collect()
    }

    pub async fn subscription(&self, lg_code: &str, module_id: &str) -> Result<Option<Subscription>> {
        let row = sqlx::query(&format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE lg_code = $1 AND module_id = $2"))
            .bind(lg_code)
            .bind(module_id)
            .fetch_optional(self.pool())
            .await?;
        row.map(subscription_row).transpose()
    }

    /// Subscriptions filtered by municipality and/or module.
    pub async fn subscriptions(&self, lg_code: Option<&str>, module_id: Option<&str>) -> Result<Vec<Subscription>> {
        let rows = sqlx::query(&format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE ($1 = '' OR lg_code = $1) AND ($2 = '' OR module_id = $2) ORDER BY lg_code, module_id"
        ))
        .bind(lg_code.unwrap_or(""))
        .bind(module_id.unwrap_or(""))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(subscription_row).collect()
    }

    /// Creates or replaces a subscription (re-subscribing after an unplug keeps the data),
    /// if `version` is approved when the write happens, and, when the module provides an
    /// interface at the municipality, the version still declares it and its grants make no
    /// loop between providers (checked in the same transaction).
    pub async fn upsert_subscription(&self, s: &Subscription) -> Result<Result<(), SubscribeRefused>> {
        let mut tx = self.pool().begin().await?;
        let generation = next_generation(&mut tx).await?;
        let manifest = sqlx::query("SELECT manifest FROM module_versions WHERE module_id = $1 AND version = $2 AND status = 'approved'")
            .bind(&s.module_id)
            .bind(&s.version)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(manifest) = manifest else {
            tx.rollback().await?;
            return Ok(Err(SubscribeRefused::NotApproved));
        };
        let manifest: Manifest = serde_json::from_str(&manifest.try_get::<String, _>(0)?).context("stored manifest")?;
        let graph = super::providers::graph(&mut tx, &s.lg_code).await?;
        let provided: Vec<_> = graph.chosen.iter().filter(|(_, m)| **m == s.module_id).map(|(i, _)| *i).collect();
        if let Some(dropped) = provided.iter().find(|i| !manifest.provides.contains_key(i)) {
            return Ok(Err(SubscribeRefused::StopsProviding(dropped.name().to_string())));
        }
        let accepted: Vec<String> = sqlx::query("SELECT kind FROM notice_acceptances WHERE lg_code = $1 AND module_id = $2 ORDER BY kind")
            .bind(&s.lg_code)
            .bind(&s.module_id)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        if let Some(dropped) = accepted.into_iter().find(|k| !manifest.notices.receives.contains(k)) {
            return Ok(Err(SubscribeRefused::StopsReceiving(dropped)));
        }
        let capabilities = crate::plugins::lifecycle::effective_capabilities(&manifest, &s.grants);
        if let Some(path) = crate::plugins::providers::cycle(graph, crate::plugins::providers::Proposed::Grants(&s.module_id, capabilities)) {
            return Ok(Err(SubscribeRefused::ProviderCycle(path)));
        }
        sqlx::query(
            "INSERT INTO subscriptions (lg_code, module_id, grants, pinned, version, previous_version, active, updated_at, generation)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (lg_code, module_id) DO UPDATE SET grants = excluded.grants, pinned = excluded.pinned,
               version = excluded.version, previous_version = excluded.previous_version, active = excluded.active,
               updated_at = excluded.updated_at, generation = excluded.generation",
        )
        .bind(&s.lg_code)
        .bind(&s.module_id)
        .bind(serde_json::to_string(&s.grants)?)
        .bind(s.pinned as i64)
        .bind(&s.version)
        .bind(&s.previous_version)
        .bind(s.active as i64)
        .bind(now_iso())
        .bind(generation)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Moves the given subscriptions to `version` in one transaction, remembering what
    /// each ran before, if `version` is approved when the move happens; returns the
    /// municipalities moved.
    /// A municipality that chose the module to provide an interface the version lacks, or
    /// accepted a notice kind into it the version does not receive, does not move (`keeps`).
    pub async fn move_subscriptions(&self, module_id: &str, lg_codes: &[String], version: &str, keeps: &Keeps<'_>) -> Result<Vec<String>> {
        let mut tx = self.pool().begin().await?;
        let generation = next_generation(&mut tx).await?;
        let mut moved = Vec::new();
        let keeps_links = keeps.sql();
        for code in lg_codes {
            let r = sqlx::query(&format!(
                "UPDATE subscriptions SET previous_version = version, version = $1, updated_at = $2, generation = $3
                 WHERE lg_code = $4 AND module_id = $5 AND version <> $1{keeps_links}
                   AND EXISTS (SELECT 1 FROM module_versions v WHERE v.module_id = $5 AND v.version = $1 AND v.status = 'approved')",
            ))
            .bind(version)
            .bind(now_iso())
            .bind(generation)
            .bind(code)
            .bind(module_id)
            .execute(&mut *tx)
            .await?;
            if r.rows_affected() > 0 {
                moved.push(code.clone());
            }
        }
        tx.commit().await?;
        Ok(moved)
    }

    /// A release: moves every subscriber of `module_id` that follows the latest version to
    /// `version`, in one statement whose conditions are checked as it runs: the version is
    /// approved, the subscription active and not pinned (a pin made meanwhile holds), it runs
    /// one of `older` (never a move down), the municipality has every setting in
    /// `required`, and the version keeps the module's links there (`keeps`). Returns the
    /// municipalities moved.
    pub async fn release_subscriptions(&self, module_id: &str, version: &str, older: &[String], required: &[String], keeps: &Keeps<'_>) -> Result<Vec<String>> {
        if older.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool().begin().await?;
        let generation = next_generation(&mut tx).await?;
        let older_list = (0..older.len()).map(|i| format!("${}", i + 5)).collect::<Vec<_>>().join(", ");
        let base = 5 + older.len();
        let required_list = (0..required.len()).map(|i| format!("${}", i + base)).collect::<Vec<_>>().join(", ");
        let config_check = if required.is_empty() {
            String::new()
        } else {
            format!(
                " AND (SELECT COUNT(*) FROM module_config c WHERE c.lg_code = subscriptions.lg_code AND c.module_id = $4 AND c.key IN ({required_list})) = {}",
                required.len()
            )
        };
        let keeps_links = keeps.sql();
        let sql = format!(
            "UPDATE subscriptions SET previous_version = version, version = $1, updated_at = $2, generation = $3
             WHERE module_id = $4 AND active = 1 AND pinned = 0 AND version IN ({older_list}){config_check}{keeps_links}
               AND EXISTS (SELECT 1 FROM module_versions v WHERE v.module_id = $4 AND v.version = $1 AND v.status = 'approved')
             RETURNING lg_code"
        );
        let mut query = sqlx::query(&sql).bind(version).bind(now_iso()).bind(generation).bind(module_id);
        for v in older {
            query = query.bind(v);
        }
        for key in required {
            query = query.bind(key);
        }
        let mut moved: Vec<String> = query.fetch_all(&mut *tx).await?.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?;
        tx.commit().await?;
        moved.sort();
        Ok(moved)
    }
}

impl Db {
    /// Swaps version and previous version for the given subscriptions (one transaction);
    /// returns the municipalities that had a previous version to return to.
    pub async fn rollback_subscriptions(&self, module_id: &str, lg_codes: &[String]) -> Result<Vec<String>> {
        let mut tx = self.pool().begin().await?;
        let generation = next_generation(&mut tx).await?;
        let mut rolled = Vec::new();
        for code in lg_codes {
            let r = sqlx::query(
                "UPDATE subscriptions SET version = previous_version, previous_version = version, updated_at = $1, generation = $4
                 WHERE lg_code = $2 AND module_id = $3 AND previous_version IS NOT NULL
                   AND EXISTS (SELECT 1 FROM module_versions v WHERE v.module_id = $3 AND v.version = subscriptions.previous_version AND v.status = 'approved')",
            )
            .bind(now_iso())
            .bind(code)
            .bind(module_id)
            .bind(generation)
            .execute(&mut *tx)
            .await?;
            if r.rows_affected() > 0 {
                rolled.push(code.clone());
            }
        }
        tx.commit().await?;
        Ok(rolled)
    }

    /// Unplugs `module_id` from `lg_code` (its data stays): `Ok(false)` if it was not
    /// active; refused (with the interfaces) while the municipality has chosen it to provide
    /// any, so its consumers are not left without one. The notice kinds accepted into it
    /// are no longer accepted (subscribing again does not bring them back unasked).
    pub async fn unplug(&self, lg_code: &str, module_id: &str) -> Result<Result<bool, Vec<String>>> {
        let mut tx = self.pool().begin().await?;
        let generation = next_generation(&mut tx).await?;
        let provides: Vec<String> = sqlx::query("SELECT interface FROM providers WHERE lg_code = $1 AND module_id = $2 ORDER BY interface")
            .bind(lg_code)
            .bind(module_id)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        if !provides.is_empty() {
            return Ok(Err(provides));
        }
        let r = sqlx::query("UPDATE subscriptions SET active = 0, updated_at = $1, generation = $2 WHERE lg_code = $3 AND module_id = $4 AND active <> 0")
            .bind(now_iso())
            .bind(generation)
            .bind(lg_code)
            .bind(module_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM notice_acceptances WHERE lg_code = $1 AND module_id = $2").bind(lg_code).bind(module_id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(Ok(r.rows_affected() == 1))
    }
}

async fn insert_review(tx: &mut sqlx::Transaction<'_, sqlx::Any>, module_id: &str, version: &str, decision: &str, reason: &str, reviewer: &str) -> Result<()> {
    sqlx::query("INSERT INTO reviews (module_id, version, decision, reason, reviewer, decided_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(module_id)
        .bind(version)
        .bind(decision)
        .bind(reason)
        .bind(reviewer)
        .bind(now_iso())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// What a version keeps of a module's links at a municipality: the interfaces its manifest
/// provides and the notice kinds it receives.
pub struct Keeps<'a> {
    pub provides: &'a [ProvidedInterface],
    pub receives: &'a [String],
}

impl<'a> Keeps<'a> {
    pub fn of(manifest: &'a Manifest, provides: &'a [ProvidedInterface]) -> Self {
        Keeps { provides, receives: &manifest.notices.receives }
    }

    /// A condition on a `subscriptions` row: the municipality has chosen this module to
    /// provide no interface outside `provides`, and accepted no notice kind into it outside
    /// `receives` (interface names are the host's constants; kinds were checked by the
    /// manifest parser to be `a-z`, `0-9` and `-`, so both are safe as literals).
    fn sql(&self) -> String {
        let outside = |column: &str, names: Vec<String>| {
            if names.is_empty() { String::new() } else { format!(" AND {column} NOT IN ({})", names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ")) }
        };
        let interfaces = outside("p.interface", self.provides.iter().map(|i| i.name().to_string()).collect());
        let kinds = outside("a.kind", self.receives.iter().filter(|k| crate::catalog::manifest::is_valid_notice_kind(k)).cloned().collect());
        format!(
            " AND NOT EXISTS (SELECT 1 FROM providers p WHERE p.lg_code = subscriptions.lg_code AND p.module_id = subscriptions.module_id{interfaces})\
             AND NOT EXISTS (SELECT 1 FROM notice_acceptances a WHERE a.lg_code = subscriptions.lg_code AND a.module_id = subscriptions.module_id{kinds})"
        )
    }
}
