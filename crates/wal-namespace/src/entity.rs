//! sea-orm entities of the two tables created by `wal-migrations`:
//! `namespaces` and `namespace_audit`. Internal to the store: callers see
//! [`Namespace`](crate::model::Namespace) and
//! [`AuditRecord`](crate::store::AuditRecord) instead.

/// `namespaces`: one row per namespace.
pub(crate) mod namespace {
    use sea_orm::entity::prelude::*;

    /// One row of `namespaces`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "namespaces")]
    pub struct Model {
        /// ULID.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// Unique name.
        #[sea_orm(unique)]
        pub name: String,
        /// `redis_streams`, `kafka` or `sqs`.
        pub backend: String,
        /// Stream / topic / queue name.
        pub topic_name: String,
        /// Free text.
        #[sea_orm(column_type = "Text", nullable)]
        pub description: Option<String>,
        /// Whether writes are accepted.
        pub enabled: bool,
        /// Largest payload, in bytes.
        pub max_message_size: i64,
        /// Default message TTL, in seconds.
        pub message_ttl_seconds: i64,
        /// The rest of the configuration, as JSON text (keys hashed).
        #[sea_orm(column_type = "Text")]
        pub config: String,
        /// Configuration version.
        pub version: i64,
        /// Creation time.
        pub created_at: ChronoDateTimeUtc,
        /// Last change.
        pub updated_at: ChronoDateTimeUtc,
        /// Admin key fingerprint of the creator.
        pub created_by: String,
        /// Admin key fingerprint of the last change.
        pub updated_by: String,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `namespace_audit`: one row per create / update / delete.
pub(crate) mod namespace_audit {
    use sea_orm::entity::prelude::*;

    /// One row of `namespace_audit`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "namespace_audit")]
    pub struct Model {
        /// Auto-increment id.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// Namespace name.
        pub namespace: String,
        /// `create`, `update` or `delete`.
        pub action: String,
        /// Admin key fingerprint.
        pub actor: String,
        /// When.
        pub at: ChronoDateTimeUtc,
        /// JSON text, e.g. `{"version": 3}`.
        #[sea_orm(column_type = "Text")]
        pub detail: String,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
