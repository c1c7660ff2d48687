//! `database` targets: PostgreSQL through a [`deadpool_postgres`] pool, one
//! pool per DSN shared by every target that uses it.
//!
//! ## Operations
//!
//! * `insert`, `upsert`, `delete`: the payload must be a JSON object whose
//!   top-level fields are columns of `table` (looked up once in
//!   `pg_attribute` and cached; looked up again before refusing an unknown
//!   field); see `sql` for the statements. `upsert` and `delete` need every
//!   `key` column in the payload. Deleting a row that is not there is fine.
//! * `statement`: the configured SQL with `:name` parameters taken from the
//!   payload's fields (a missing one is permanent); see `params` for how
//!   values are typed.
//!
//! ## Exactly once
//!
//! Each attempt is one transaction: `SET LOCAL statement_timeout` (the
//! target's timeout, so the server gives up too), then
//! `INSERT INTO wal_delivery_ledger (message_id, target) … ON CONFLICT DO
//! NOTHING`, then the mutation, then `COMMIT`. If the ledger row already
//! exists the message was applied before (or is being applied by a
//! concurrent attempt, which the insert waits for): the transaction is rolled
//! back and the answer is `Delivered`. `target` is `<namespace>/<identifier>`.
//! The ledger table ([`LEDGER_TABLE`]) is created with `CREATE TABLE IF NOT
//! EXISTS` in the target database (first schema of the `search_path`), once
//! per pool, under an advisory lock so concurrent workers do not race.
//!
//! ## Timeouts
//!
//! The whole attempt (getting a connection included) is bounded by the
//! target's `timeoutMs`; a connection abandoned mid-attempt is closed, not
//! returned to the pool. TLS to PostgreSQL is not supported yet: a DSN with
//! `sslmode=require` is refused when the target is built.

mod classify;
mod params;
mod sql;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use serde_json::value::RawValue;
use tokio::sync::OnceCell;
use tokio::time::{timeout_at, Instant};
use tokio_postgres::config::SslMode;
use tokio_postgres::types::ToSql;
use tokio_postgres::NoTls;
use wal_namespace::targets::{DatabaseOperation, DatabaseTargetConfig};

use self::params::{NamedStatement, TextParam};
use self::sql::TableOp;
use crate::{payload, Delivery, DeliveryOutcome, Target, TargetBuildError};

/// Name of the table that records applied messages, in each target database.
pub const LEDGER_TABLE: &str = "wal_delivery_ledger";

const LEDGER_DDL: &str = "SELECT pg_advisory_xact_lock(7234017283807667300);
CREATE TABLE IF NOT EXISTS wal_delivery_ledger (
    message_id text NOT NULL,
    target text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, target)
)";

const LEDGER_INSERT: &str =
    "INSERT INTO wal_delivery_ledger (message_id, target) VALUES ($1, $2) ON CONFLICT DO NOTHING";

const COLUMNS_QUERY: &str = "SELECT attname::text FROM pg_catalog.pg_attribute \
     WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped";

/// Connections per pool (per DSN).
const POOL_SIZE: usize = 16;

/// Connect timeout when the DSN sets none.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One database: its pool and whether its ledger table is known to exist.
pub(crate) struct PgDatabase {
    pool: Pool,
    ledger_ready: OnceCell<()>,
}

impl PgDatabase {
    /// A pool for `dsn` that connects on first use. The error never
    /// contains the DSN.
    pub(crate) fn new(dsn: &str) -> Result<Self, String> {
        let mut pg: tokio_postgres::Config = dsn
            .parse()
            .map_err(|_| "not a valid PostgreSQL connection string".to_string())?;
        if pg.get_ssl_mode() == SslMode::Require {
            return Err("sslmode=require: TLS to PostgreSQL is not supported yet".into());
        }
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(CONNECT_TIMEOUT);
        }
        if pg.get_application_name().is_none() {
            pg.application_name("wal-worker");
        }
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| format!("cannot build the connection pool: {e}"))?;
        Ok(Self {
            pool,
            ledger_ready: OnceCell::new(),
        })
    }

    /// Closes the pool: idle connections are dropped, later attempts retry.
    pub(crate) fn close(&self) {
        self.pool.close();
    }

    /// Creates the ledger table unless this pool already did.
    async fn ensure_ledger(&self, client: &mut Object) -> Result<(), tokio_postgres::Error> {
        self.ledger_ready
            .get_or_try_init(|| async move {
                let tx = client.transaction().await?;
                tx.batch_execute(LEDGER_DDL).await?;
                tx.commit().await
            })
            .await
            .map(|_| ())
    }
}

/// What a target does, prepared when it is built.
enum Operation {
    Table {
        op: TableOp,
        /// As configured, for messages.
        name: String,
        /// Quoted for SQL.
        quoted: String,
        key: Vec<String>,
        /// The table's columns, once looked up.
        columns: Mutex<Option<Arc<HashSet<String>>>>,
    },
    Statement(NamedStatement),
}

/// The payload, read according to the operation.
enum Input<'a> {
    Table(BTreeMap<String, &'a RawValue>),
    Statement(Vec<&'a RawValue>),
}

/// Why an attempt failed.
enum Failure {
    Pg(tokio_postgres::Error),
    Refused(String),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Pg(e)
    }
}

/// A PostgreSQL target.
pub(crate) struct PostgresTarget {
    db: Arc<PgDatabase>,
    /// Value of the ledger's `target` column: `<namespace>/<identifier>`.
    ledger_target: String,
    operation: Operation,
    timeout: Duration,
}

impl PostgresTarget {
    /// Builds target `identifier` of `namespace` on database `db`.
    pub(crate) fn new(
        namespace: &str,
        identifier: &str,
        db: Arc<PgDatabase>,
        config: &DatabaseTargetConfig,
    ) -> Result<Self, TargetBuildError> {
        let invalid = |reason: &str| TargetBuildError::InvalidConfig {
            target: identifier.to_string(),
            reason: reason.to_string(),
        };
        let table = |op| {
            let name = config
                .table
                .clone()
                .ok_or_else(|| invalid("a table is required"))?;
            if op != TableOp::Insert && config.key.is_empty() {
                return Err(invalid("key columns are required for upsert and delete"));
            }
            Ok(Operation::Table {
                op,
                quoted: sql::quote_table(&name),
                name,
                key: config.key.clone(),
                columns: Mutex::new(None),
            })
        };
        let operation = match config.operation {
            DatabaseOperation::Insert => table(TableOp::Insert)?,
            DatabaseOperation::Upsert => table(TableOp::Upsert)?,
            DatabaseOperation::Delete => table(TableOp::Delete)?,
            DatabaseOperation::Statement => {
                let statement = config
                    .statement
                    .as_deref()
                    .ok_or_else(|| invalid("a statement is required"))?;
                Operation::Statement(params::rewrite_named(statement))
            }
        };
        Ok(Self {
            db,
            ledger_target: format!("{namespace}/{identifier}"),
            operation,
            timeout: Duration::from_millis(config.timeout_ms),
        })
    }

    /// Reads the payload for this operation (no database needed).
    fn input<'a>(&self, payload: &'a RawValue) -> Result<Input<'a>, String> {
        let fields = payload::fields(payload)?;
        match &self.operation {
            Operation::Table { .. } => Ok(Input::Table(fields)),
            Operation::Statement(named) => named
                .names
                .iter()
                .map(|n| {
                    fields
                        .get(n)
                        .copied()
                        .ok_or_else(|| format!("payload lacks statement parameter :{n}"))
                })
                .collect::<Result<_, _>>()
                .map(Input::Statement),
        }
    }

    /// The table's columns: cached, or looked up with `client` (also when
    /// `refresh`).
    async fn columns(
        &self,
        client: &impl deadpool_postgres::GenericClient,
        refresh: bool,
    ) -> Result<Arc<HashSet<String>>, Failure> {
        let Operation::Table {
            name,
            quoted,
            columns,
            ..
        } = &self.operation
        else {
            unreachable!("only table operations have columns");
        };
        if !refresh {
            if let Some(c) = columns.lock().expect("columns lock").clone() {
                return Ok(c);
            }
        }
        let stmt = client.prepare_cached(COLUMNS_QUERY).await?;
        let rows = client
            .query(&stmt, &[&TextParam(Some(quoted.clone()))])
            .await?;
        if rows.is_empty() {
            return Err(Failure::Refused(format!("table `{name}` does not exist")));
        }
        let found: Arc<HashSet<String>> = Arc::new(rows.iter().map(|r| r.get(0)).collect());
        *columns.lock().expect("columns lock") = Some(found.clone());
        Ok(found)
    }

    /// Forgets the cached columns (after an undefined table or column error).
    fn forget_columns(&self) {
        if let Operation::Table { columns, .. } = &self.operation {
            *columns.lock().expect("columns lock") = None;
        }
    }

    /// One transaction: ledger row, then the mutation, then commit.
    async fn apply(
        &self,
        client: &mut Object,
        id: &str,
        payload: &RawValue,
        input: &Input<'_>,
    ) -> Result<(), Failure> {
        let tx = client.transaction().await?;
        tx.batch_execute(&format!(
            "SET LOCAL statement_timeout = {}",
            self.timeout.as_millis().max(1)
        ))
        .await?;
        let ledger = tx.prepare_cached(LEDGER_INSERT).await?;
        let ledger_params = [
            TextParam(Some(id.to_string())),
            TextParam(Some(self.ledger_target.clone())),
        ];
        if tx.execute(&ledger, &refs(&ledger_params)).await? == 0 {
            tracing::debug!("already applied; skipped");
            return Ok(()); // dropping `tx` rolls back
        }
        match (&self.operation, input) {
            (
                Operation::Table {
                    op,
                    name,
                    quoted,
                    key,
                    ..
                },
                Input::Table(fields),
            ) => {
                let names: Vec<&str> = fields.keys().map(String::as_str).collect();
                let mut columns = self.columns(&tx, false).await?;
                if sql::check_fields(*op, name, names.iter().copied(), &columns, key).is_err() {
                    columns = self.columns(&tx, true).await?;
                    sql::check_fields(*op, name, names.iter().copied(), &columns, key)
                        .map_err(Failure::Refused)?;
                }
                let stmt = tx
                    .prepare_cached(&sql::table_sql(*op, quoted, &names, key))
                    .await?;
                tx.execute(&stmt, &refs(&[TextParam(Some(payload.get().to_string()))]))
                    .await?;
            }
            (Operation::Statement(named), Input::Statement(values)) => {
                let stmt = tx.prepare_cached(&named.sql).await?;
                if stmt.params().len() != values.len() {
                    return Err(Failure::Refused(format!(
                        "the statement has {} parameters but names {} (positional `$n` parameters are not supported)",
                        stmt.params().len(),
                        values.len()
                    )));
                }
                let args = values
                    .iter()
                    .zip(stmt.params())
                    .zip(&named.names)
                    .map(|((v, ty), n)| {
                        params::to_text(v, ty)
                            .map_err(|e| Failure::Refused(format!("parameter :{n}: {e}")))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                tx.execute(&stmt, &refs(&args)).await?;
            }
            _ => unreachable!("the input is read for this operation"),
        }
        tx.commit().await?;
        Ok(())
    }
}

fn refs(params: &[TextParam]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

#[async_trait]
impl Target for PostgresTarget {
    async fn deliver(&self, d: Delivery<'_>) -> DeliveryOutcome {
        let payload = &d.envelope.payload;
        let input = match self.input(payload) {
            Ok(i) => i,
            Err(reason) => return DeliveryOutcome::permanent(reason),
        };
        let id = d.envelope.id.to_string();
        let deadline = Instant::now() + self.timeout;
        let timed_out =
            || DeliveryOutcome::retry(format!("timed out after {} ms", self.timeout.as_millis()));
        let mut client = match timeout_at(deadline, self.db.pool.get()).await {
            Err(_) => return timed_out(),
            Ok(Err(e)) => return classify::classify_pool(&e),
            Ok(Ok(c)) => c,
        };
        let attempt = async {
            self.db.ensure_ledger(&mut client).await?;
            self.apply(&mut client, &id, payload, &input).await
        };
        match timeout_at(deadline, attempt).await {
            Ok(Ok(())) => DeliveryOutcome::Delivered,
            Ok(Err(Failure::Refused(reason))) => DeliveryOutcome::permanent(reason),
            Ok(Err(Failure::Pg(e))) => {
                if matches!(e.code().map(|c| c.code()), Some("42703" | "42P01")) {
                    self.forget_columns();
                }
                classify::classify_pg(&e)
            }
            Err(_) => {
                // The connection may still be busy with the abandoned
                // statement: close it rather than hand it to the next attempt.
                drop(Object::take(client));
                timed_out()
            }
        }
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }
}
