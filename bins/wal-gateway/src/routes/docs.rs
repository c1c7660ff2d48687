//! The OpenAPI document (`/api/docs/openapi.json`) and the Swagger UI viewer
//! (`/api/docs`), served from assets compiled into the binary (the
//! `vendored` feature: nothing is downloaded at build or run time).

use std::sync::Arc;

use axum::Router;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::state::AppState;

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "WAL service gateway", description = "Durable write-ahead log: write once, delivered later."),
    paths(
        super::write::write,
        super::write::write_batch,
        super::namespaces::create,
        super::namespaces::validate,
        super::namespaces::list,
        super::namespaces::get_one,
        super::namespaces::update,
        super::namespaces::patch,
        super::namespaces::enable,
        super::namespaces::disable,
        super::namespaces::delete,
        super::status::message_status,
        super::status::namespace_status,
        super::dlq::list,
        super::dlq::inspect,
        super::dlq::requeue_message,
        super::dlq::requeue_by_filter,
        super::dlq::purge,
        super::health::health,
        super::health::readiness,
        super::health::liveness,
        super::health::metrics,
    ),
    components(schemas(
        wal_core::request::WriteRequest,
        wal_core::request::TargetRef,
        wal_core::request::Lifecycle,
        wal_core::request::DelayUnit,
        wal_core::retry::RetryPolicyOverride,
        wal_core::retry::BackoffStrategy,
        wal_core::Durability,
        wal_core::ErrorCode,
        crate::ingest::WriteResponse,
        wal_core::delivery::MessageState,
        wal_core::delivery::TargetState,
        wal_core::delivery::TargetStatus,
        wal_core::delivery::DlqReason,
        wal_core::delivery::AttemptRecord,
        wal_core::retry::RetryPolicy,
        super::status::MessageStatusView,
        super::status::NamespaceStatusView,
        super::status::ConfigSummary,
        super::status::TargetSummary,
        super::status::DlqSettingsSummary,
        super::status::PartitionView,
        super::status::ConsumerGroupView,
        super::status::QueueTotals,
        super::status::ScheduleView,
        super::status::DlqSizeView,
        super::status::WorkerView,
        super::status::BreakerView,
        super::dlq::DlqPageView,
        super::dlq::DlqItemView,
        super::dlq::DlqMessageView,
        super::dlq::DlqEntryView,
        super::dlq::RequeueMessageView,
        super::dlq::RequeuedView,
        super::dlq::RequeueFilterRequest,
        super::dlq::RequeueFilterView,
        super::dlq::PurgeView,
    )),
    tags((name = "write"), (name = "status"), (name = "dlq"), (name = "namespaces"), (name = "health"))
)]
pub struct ApiDoc;

/// Routes of the docs.
pub fn docs_router() -> Router<Arc<AppState>> {
    SwaggerUi::new("/api/docs")
        .url("/api/docs/openapi.json", ApiDoc::openapi())
        .into()
}
