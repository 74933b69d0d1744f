//! Persistent state through sqlx: SQLite embedded by default, PostgreSQL at scale.
//!
//! One SQL dialect serves both: queries use `$1` placeholders (SQLite accepts them too) and
//! `ON CONFLICT … DO UPDATE`, and run on sqlx's `Any` pool. Schema differences (BLOB vs
//! BYTEA) live only in the two migration directories, which must stay equivalent.

pub mod backup;
pub mod catalog;
pub mod deliveries;
pub(crate) mod dump;
pub mod events;
pub mod kv;
pub mod linkage;
pub mod module_config;
pub mod municipalities;
pub mod municipality_archive;
pub mod notices;
pub mod providers;
pub mod routing;
pub mod sign_in;
mod placeholders;

use anyhow::{Context, Result};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};
use std::path::Path;
use std::time::Duration;

/// Which database engine backs the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A handle to the platform database; cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

impl Db {
    /// Opens the database at `url` (`sqlite://…` or `postgres://…`), or the embedded SQLite
    /// file in `data_dir` when `url` is `None`, and brings its schema up to date.
    pub async fn open(url: Option<&str>, data_dir: &Path) -> Result<Self> {
        install_default_drivers();
        let url = match url {
            Some(url) => url.to_string(),
            None => {
                std::fs::create_dir_all(data_dir)
                    .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
                format!("sqlite://{}?mode=rwc", data_dir.join("nukisashi.db").display())
            }
        };
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            anyhow::bail!("unsupported database URL `{url}`: use sqlite://PATH or postgres://…");
        };
        let options = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
            .acquire_timeout(Duration::from_secs(10));
        let options = if backend == Backend::Sqlite {
            options.after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL lets readers run beside the writer; busy_timeout makes writers queue
                    // instead of failing; NORMAL sync is durable across process crashes in WAL.
                    conn.execute("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
                        .await?;
                    Ok(())
                })
            })
        } else {
            options
        };
        let pool = options
            .connect(&url)
            .await
            .with_context(|| format!("cannot connect to the database at {}", redact(&url)))?;
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&pool).await.context("database migration failed")?;
        Ok(Self { pool, backend })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// True if the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}

/// The URL without its password, for error messages and logs.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Now as an ISO 8601 UTC timestamp, the format every `*_at` column holds.
pub fn now_iso() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    /// The two migration sets must describe the same schema: PostgreSQL's differs only in
    /// BYTEA for BLOB, BIGSERIAL for AUTOINCREMENT and the byte-order collation of
    /// text keys that are range-scanned.
    #[test]
    fn migrations_stay_equivalent() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut names: Vec<_> = std::fs::read_dir(dir.join("sqlite")).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert!(!names.is_empty());
        for name in names {
            let sqlite = std::fs::read_to_string(dir.join("sqlite").join(&name)).unwrap();
            let postgres = std::fs::read_to_string(dir.join("postgres").join(&name))
                .unwrap_or_else(|_| panic!("postgres/{} is missing", name.to_string_lossy()));
            let normalised = postgres
                .replace("BYTEA", "BLOB")
                .replace("    -- Byte order, as in SQLite, so key listing and paging agree on both backends.\n", "")
                .replace("TEXT COLLATE \"C\" NOT NULL", "TEXT NOT NULL")
                .replace("BIGSERIAL PRIMARY KEY", "INTEGER PRIMARY KEY AUTOINCREMENT");
            assert_eq!(normalised, sqlite, "{} differs between backends", name.to_string_lossy());
        }
    }
}
