//! Creates the `namespace_audit` table: who created, updated or deleted which
//! namespace, and when. The actor is a short non-secret fingerprint of the
//! admin key (never the key itself).

use sea_orm_migration::prelude::*;

/// Creates `namespace_audit` and its index on `(namespace, id)`.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// Columns of `namespace_audit`.
#[derive(DeriveIden)]
enum NamespaceAudit {
    Table,
    Id,
    Namespace,
    Action,
    Actor,
    At,
    Detail,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(NamespaceAudit::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(NamespaceAudit::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(NamespaceAudit::Namespace)
                            .string_len(100)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(NamespaceAudit::Action)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(NamespaceAudit::Actor)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(NamespaceAudit::At)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(NamespaceAudit::Detail).text().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_namespace_audit_namespace")
                    .table(NamespaceAudit::Table)
                    .col(NamespaceAudit::Namespace)
                    .col(NamespaceAudit::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(NamespaceAudit::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
