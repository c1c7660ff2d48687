//! Creates the `namespaces` table: one row per namespace, the filterable
//! settings as columns and the rest of the validated configuration as JSON
//! text in `config`.

use sea_orm_migration::prelude::*;

/// Creates `namespaces`, its unique index on `name` and an index on `updated_at`.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// Columns of `namespaces`.
#[derive(DeriveIden)]
enum Namespaces {
    Table,
    Id,
    Name,
    Backend,
    TopicName,
    Description,
    Enabled,
    MaxMessageSize,
    MessageTtlSeconds,
    Config,
    Version,
    CreatedAt,
    UpdatedAt,
    CreatedBy,
    UpdatedBy,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Namespaces::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Namespaces::Id)
                            .string_len(32)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Namespaces::Name).string_len(100).not_null())
                    .col(
                        ColumnDef::new(Namespaces::Backend)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Namespaces::TopicName)
                            .string_len(255)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Namespaces::Description).text().null())
                    .col(ColumnDef::new(Namespaces::Enabled).boolean().not_null())
                    .col(
                        ColumnDef::new(Namespaces::MaxMessageSize)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Namespaces::MessageTtlSeconds)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Namespaces::Config).text().not_null())
                    .col(ColumnDef::new(Namespaces::Version).big_integer().not_null())
                    .col(
                        ColumnDef::new(Namespaces::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Namespaces::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Namespaces::CreatedBy)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Namespaces::UpdatedBy)
                            .string_len(64)
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_namespaces_name")
                    .table(Namespaces::Table)
                    .col(Namespaces::Name)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_namespaces_updated_at")
                    .table(Namespaces::Table)
                    .col(Namespaces::UpdatedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(Namespaces::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
