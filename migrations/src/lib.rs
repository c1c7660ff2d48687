//! # wal-migrations
//!
//! The schema of the namespace store, as [sea-orm-migration] migrations
//! written with the portable `SchemaManager`
//! API so that the same migrations run on PostgreSQL (production) and SQLite
//! (development, tests).
//!
//! * `namespaces` — one row per namespace: the columns an operator filters on
//!   (`name`, `backend`, `enabled`, …) plus a `config` text column holding the
//!   rest of the validated configuration as JSON (API keys only as SHA-256
//!   hashes), a `version` incremented on every update and the audit columns.
//! * `namespace_audit` — one row per create / update / delete, written in the
//!   same transaction as the change it records.
//!
//! The store (`wal-namespace`) runs [`Migrator::up`](MigratorTrait::up) when
//! it connects.
//!
//! [sea-orm-migration]: https://docs.rs/sea-orm-migration

pub use sea_orm_migration::prelude::MigratorTrait;
use sea_orm_migration::prelude::*;

mod m20250601_000001_create_namespaces;
mod m20250601_000002_create_namespace_audit;

/// All migrations of the namespace store, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20250601_000001_create_namespaces::Migration),
            Box::new(m20250601_000002_create_namespace_audit::Migration),
        ]
    }
}
