//! Browser sign-in state (`crate::signin`): sessions, the cookies a session has on module
//! origins, one-time handoff codes and forms waiting to be posted again (flows in progress
//! live in the browser's flow cookie, not here). Every secret is stored as its SHA-256
//! only; everything single-use is taken with `DELETE … RETURNING`, so two replicas cannot
//! both use it, and a flow's session is inserted once (`flow_hash` is unique).

use super::Db;
use crate::auth::Principal;
use anyhow::Result;
use sqlx::Row;

/// A session, as a module origin's cookie finds it.
#[derive(Debug, Clone)]
pub struct Session {
    pub id_hash: String,
    pub principal: Principal,
    pub last_seen: i64,
    pub expires_at: i64,
}

/// What a handoff code carries to the module origin.
#[derive(Debug, Clone)]
pub struct Handoff {
    pub session_hash: String,
    pub origin: String,
    pub return_path: String,
    pub binding: String,
    pub expires_at: i64,
}

/// A form posted before sign-in.
#[derive(Debug, Clone)]
pub struct Replay {
    pub binding: String,
    pub origin: String,
    pub path: String,
    pub body: String,
    pub expires_at: i64,
}

impl Db {
    /// A new session, made by the flow whose state hashes to `flow_hash`; `false` if that flow
    /// already made one (its cookie was used again).
    pub async fn insert_sign_in_session(&self, id_hash: &str, flow_hash: &str, lg_code: &str, principal: &Principal, now: i64, expires_at: i64) -> Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO sign_in_sessions (id_hash, flow_hash, lg_code, subject, principal, created_at, last_seen, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $6, $7)
             ON CONFLICT (flow_hash) DO NOTHING",
        )
            .bind(id_hash)
            .bind(flow_hash)
            .bind(lg_code)
            .bind(&principal.subject)
            .bind(serde_json::to_string(principal)?)
            .bind(now)
            .bind(expires_at)
            .execute(self.pool())
            .await?;
        Ok(inserted.rows_affected() == 1)
    }

    /// The session of the platform origin's cookie at `lg_code`.
    pub async fn sign_in_session(&self, id_hash: &str, lg_code: &str) -> Result<Option<Session>> {
        let row = sqlx::query("SELECT id_hash, principal, last_seen, expires_at FROM sign_in_sessions WHERE id_hash = $1 AND lg_code = $2")
            .bind(id_hash)
            .bind(lg_code)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| session_from(&r)).transpose()
    }

    /// The session of a module origin's cookie, only on the origin it was made for.
    pub async fn origin_session(&self, cookie_hash: &str, origin: &str) -> Result<Option<Session>> {
        let row = sqlx::query(
            "SELECT s.id_hash, s.principal, s.last_seen, s.expires_at FROM sign_in_origins o
             JOIN sign_in_sessions s ON s.id_hash = o.session_hash
             WHERE o.cookie_hash = $1 AND o.origin = $2",
        )
        .bind(cookie_hash)
        .bind(origin)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| session_from(&r)).transpose()
    }

    /// Records activity for the idle expiry.
    pub async fn touch_sign_in_session(&self, id_hash: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE sign_in_sessions SET last_seen = $2 WHERE id_hash = $1").bind(id_hash).bind(now).execute(self.pool()).await?;
        Ok(())
    }

    /// Ends a session everywhere: its row, its module-origin cookies, its handoff codes.
    pub async fn end_sign_in_session(&self, id_hash: &str) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM sign_in_origins WHERE session_hash = $1").bind(id_hash).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM sign_in_handoffs WHERE session_hash = $1").bind(id_hash).execute(&mut *tx).await?;
        let ended = sqlx::query("DELETE FROM sign_in_sessions WHERE id_hash = $1").bind(id_hash).execute(&mut *tx).await?.rows_affected() > 0;
        tx.commit().await?;
        Ok(ended)
    }

    /// How many handoff codes of this session are still good.
    pub async fn open_sign_in_handoffs(&self, session_hash: &str, now: i64) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) FROM sign_in_handoffs WHERE session_hash = $1 AND expires_at >= $2").bind(session_hash).bind(now).fetch_one(self.pool()).await?.try_get(0)?)
    }

    pub async fn insert_sign_in_handoff(&self, code_hash: &str, h: &Handoff) -> Result<()> {
        sqlx::query("INSERT INTO sign_in_handoffs (code_hash, session_hash, origin, return_path, binding, expires_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(code_hash)
            .bind(&h.session_hash)
            .bind(&h.origin)
            .bind(&h.return_path)
            .bind(&h.binding)
            .bind(h.expires_at)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Takes (deletes and returns) a handoff code, only for the origin it was made for, the
    /// browser that started the sign-in (`binding`), and before it expires: anyone else's
    /// attempt leaves it for its browser.
    pub async fn take_sign_in_handoff(&self, code_hash: &str, origin: &str, binding: &str, now: i64) -> Result<Option<Handoff>> {
        let row = sqlx::query("DELETE FROM sign_in_handoffs WHERE code_hash = $1 AND origin = $2 AND binding = $3 AND expires_at >= $4 RETURNING session_hash, origin, return_path, binding, expires_at")
            .bind(code_hash)
            .bind(origin)
            .bind(binding)
            .bind(now)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| Ok(Handoff { session_hash: r.try_get(0)?, origin: r.try_get(1)?, return_path: r.try_get(2)?, binding: r.try_get(3)?, expires_at: r.try_get(4)? }))
            .transpose()
    }

    /// The session's cookie on `origin`, replacing the one it had there: a session has at
    /// most one per module origin.
    pub async fn insert_sign_in_origin(&self, cookie_hash: &str, session_hash: &str, origin: &str) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM sign_in_origins WHERE session_hash = $1 AND origin = $2").bind(session_hash).bind(origin).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO sign_in_origins (cookie_hash, session_hash, origin) VALUES ($1, $2, $3)")
            .bind(cookie_hash)
            .bind(session_hash)
            .bind(origin)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// How many posted forms wait at `origin`.
    pub async fn waiting_sign_in_replays(&self, origin: &str, now: i64) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) FROM sign_in_replays WHERE origin = $1 AND expires_at >= $2").bind(origin).bind(now).fetch_one(self.pool()).await?.try_get(0)?)
    }

    pub async fn insert_sign_in_replay(&self, id_hash: &str, r: &Replay) -> Result<()> {
        sqlx::query("INSERT INTO sign_in_replays (id_hash, binding, origin, path, body, expires_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(id_hash)
            .bind(&r.binding)
            .bind(&r.origin)
            .bind(&r.path)
            .bind(&r.body)
            .bind(r.expires_at)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Takes a kept form, under the same conditions as [`Self::take_sign_in_handoff`].
    pub async fn take_sign_in_replay(&self, id_hash: &str, origin: &str, binding: &str, now: i64) -> Result<Option<Replay>> {
        let row = sqlx::query("DELETE FROM sign_in_replays WHERE id_hash = $1 AND origin = $2 AND binding = $3 AND expires_at >= $4 RETURNING binding, origin, path, body, expires_at")
            .bind(id_hash)
            .bind(origin)
            .bind(binding)
            .bind(now)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| Ok(Replay { binding: r.try_get(0)?, origin: r.try_get(1)?, path: r.try_get(2)?, body: r.try_get(3)?, expires_at: r.try_get(4)? })).transpose()
    }

    /// Drops what has expired: handoffs and replays past their time, sessions past
    /// their absolute expiry or idle since `idle_before`, and those sessions' cookies.
    pub async fn forget_expired_sign_ins(&self, now: i64, idle_before: i64) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        for table in ["sign_in_handoffs", "sign_in_replays"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE expires_at < $1")).bind(now).execute(&mut *tx).await?;
        }
        sqlx::query("DELETE FROM sign_in_sessions WHERE expires_at < $1 OR last_seen < $2").bind(now).bind(idle_before).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM sign_in_origins WHERE session_hash NOT IN (SELECT id_hash FROM sign_in_sessions)").execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }
}

fn session_from(r: &sqlx::any::AnyRow) -> Result<Session> {
    let principal: String = r.try_get(1)?;
    Ok(Session { id_hash: r.try_get(0)?, principal: serde_json::from_str(&principal)?, last_seen: r.try_get(2)?, expires_at: r.try_get(3)? })
}
