//! Schema migrations: the numbered files of `infra/migrations/`, embedded in
//! the binary, applied in order, each recorded in `schema_migrations` with a
//! checksum. Applying twice is a no-op; a shipped migration whose text
//! changed is refused (migrations are append-only).
//!
//! All pending migrations apply in one transaction under a transaction-scoped
//! advisory lock, so concurrent migrators (two Lambdas cold-starting, a deploy
//! and a CLI) serialize, and nothing session-scoped is left behind.

use sha2::{Digest, Sha256};
use tokio_postgres::types::Type;

use super::StoreError;

#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

macro_rules! migration {
    ($version:literal, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../../../infra/migrations/", $name, ".sql")),
        }
    };
}

/// Every migration, in order. Add new files here (a test checks the folder
/// and this list agree).
pub const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_jobs"),
    migration!(2, "0002_operator_views"),
    migration!(3, "0003_dead_letter_replays"),
    migration!(4, "0004_workers"),
    migration!(5, "0005_worker_types"),
    migration!(6, "0006_served_types"),
    migration!(7, "0007_lean_claims"),
    migration!(8, "0008_fewer_indexes"),
    migration!(9, "0009_job_counts"),
    migration!(10, "0010_sql_api"),
    migration!(11, "0011_dashboard"),
];

/// An arbitrary constant: the advisory lock key migrators serialize on.
const LOCK_KEY: i64 = 0x006a_6f62_6c69_6e65;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrateReport {
    pub applied: Vec<i32>,
    pub already_applied: usize,
}

impl Migration {
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }
}

/// Applies every pending migration.
pub async fn run(client: &mut tokio_postgres::Client) -> Result<MigrateReport, StoreError> {
    run_list(client, MIGRATIONS).await
}

pub async fn run_list(
    client: &mut tokio_postgres::Client,
    migrations: &[Migration],
) -> Result<MigrateReport, StoreError> {
    let db = |e| StoreError::from_db("migrate", e);
    let tx = client.transaction().await.map_err(db)?;
    tx.query_typed("SELECT pg_advisory_xact_lock($1)", &[(&LOCK_KEY, Type::INT8)])
        .await
        .map_err(db)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    integer     PRIMARY KEY,
             name       text        NOT NULL,
             checksum   text        NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(db)?;
    let applied: Vec<(i32, String)> = tx
        .query_typed(
            "SELECT version, checksum FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .map_err(db)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut report = MigrateReport::default();
    for m in migrations {
        if let Some((_, checksum)) = applied.iter().find(|(v, _)| *v == m.version) {
            if *checksum != m.checksum() {
                return Err(StoreError::Migration {
                    version: m.version,
                    name: m.name,
                    reason:
                        "its file changed after it was applied; migrations are append-only, add a new one"
                            .into(),
                });
            }
            report.already_applied += 1;
            continue;
        }
        tx.batch_execute(m.sql).await.map_err(|e| StoreError::Migration {
            version: m.version,
            name: m.name,
            reason: e
                .as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_owned()),
        })?;
        let (version, name, checksum) = (m.version, m.name.to_owned(), m.checksum());
        tx.query_typed(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[
                (&version, Type::INT4),
                (&name, Type::TEXT),
                (&checksum, Type::TEXT),
            ],
        )
        .await
        .map_err(db)?;
        report.applied.push(m.version);
    }
    tx.commit().await.map_err(db)?;
    Ok(report)
}

/// Connects once (outside any pool) and migrates.
pub async fn run_url(url: &str) -> Result<MigrateReport, StoreError> {
    let pool = super::pool::build(&super::pool::PoolOptions::new(url, 1))?;
    let mut client = pool.get().await.map_err(StoreError::from_pool)?;
    let client: &mut tokio_postgres::Client = &mut client;
    run(client).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_matches_the_migrations_folder() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .expect("infra/migrations exists")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<String> = MIGRATIONS.iter().map(|m| format!("{}.sql", m.name)).collect();
        assert_eq!(files, listed);
    }

    #[test]
    fn versions_are_numbered_one_by_one_and_match_file_names() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1);
            assert!(m.name.starts_with(&format!("{:04}_", m.version)), "{}", m.name);
        }
    }
}
