//! The job API: submit Celery tasks, read results, revoke, list tasks and
//! workers over HTTP, for callers in any language (`host serve`, or
//! `host run --http` beside a worker).
//!
//! Decisions:
//!
//! - **The messages are `client::Client`'s**, the ones `host submit` sends,
//!   so Chard and Python Celery workers run what the API submits.
//! - **The OpenAPI document is generated** from the handlers' `#[utoipa::path]`
//!   attributes and the request/response types (`/openapi.json`); nothing in
//!   it is written by hand, so it cannot drift from the routes.
//! - **Input is checked before anything reaches Redis.** Bodies are parsed
//!   here rather than by axum's `Json` extractor so a bad one gets a 4xx
//!   with `{"error", "field"}` naming the field, never a half-sent task.
//! - **Access**: the listener exists only with `--listen`/`--http`; with
//!   `--auth-token-file` every route but `/healthz` wants
//!   `Authorization: Bearer <token>` (compared in constant time).
//! - **Workers and their tasks** come from the pidbox (`ping`/`stats`,
//!   `registered`), so Python Celery workers are listed too; a plugin
//!   folder given to `host serve` adds the tasks its plugins serve, loaded
//!   once at start.

mod handlers;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::client::Client;
use crate::config::HttpApiConfig;

/// What every handler shares.
pub(crate) struct ApiState {
    client: Client,
    broker: redis::Client,
    db: i64,
    config: HttpApiConfig,
    /// Tasks of the plugin folder, loaded at start: name -> plugin version.
    plugin_tasks: BTreeMap<String, String>,
}

#[derive(utoipa::OpenApi)]
#[openapi(info(title = "Chard job API", description = "Submit Celery tasks and read their results over HTTP."))]
struct ApiDoc;

/// An error reply: `{"error": "...", "field": "..."}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ApiError {
    /// What is wrong, one sentence.
    error: String,
    /// The request field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    #[serde(skip)]
    status: StatusCode,
}

impl ApiError {
    pub(crate) fn field(field: &str, error: impl Into<String>) -> Self {
        Self { error: error.into(), field: Some(field.to_string()), status: StatusCode::UNPROCESSABLE_ENTITY }
    }

    pub(crate) fn status(status: StatusCode, error: impl Into<String>) -> Self {
        Self { error: error.into(), field: None, status }
    }

    pub(crate) fn unavailable(error: &anyhow::Error) -> Self {
        Self::status(StatusCode::SERVICE_UNAVAILABLE, format!("{error:#}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        (status, Json(self)).into_response()
    }
}

/// Connects to Redis, loads the plugin folder's task list, and builds the
/// routes with their OpenAPI document.
pub async fn router(config: HttpApiConfig) -> anyhow::Result<Router> {
    let client = Client::connect(&config.client.broker_url, &config.client.result_backend_url).await?.with_routes(config.routes.clone());
    let broker = crate::client::open(&config.client.broker_url)?;
    let db = broker.get_connection_info().redis.db;
    let plugin_tasks = match config.plugins.clone() {
        Some(folder) => tokio::task::spawn_blocking(move || list_plugin_tasks(&folder)).await??,
        None => BTreeMap::new(),
    };
    let state = Arc::new(ApiState { client, broker, db, config, plugin_tasks });
    let (router, mut api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(handlers::submit))
        .routes(routes!(handlers::result))
        .routes(routes!(handlers::revoke))
        .routes(routes!(handlers::tasks))
        .routes(routes!(handlers::workers))
        .routes(routes!(handlers::healthz))
        .split_for_parts();
    if state.config.auth_token.is_some() {
        api.components.get_or_insert_with(Default::default).add_security_scheme(
            "bearer",
            utoipa::openapi::security::SecurityScheme::Http(utoipa::openapi::security::Http::new(
                utoipa::openapi::security::HttpAuthScheme::Bearer,
            )),
        );
        api.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new("bearer", Vec::<String>::new())]);
    }
    let document = Arc::new(api);
    let router = router
        .route("/openapi.json", axum::routing::get(move || async move { Json(document.as_ref().clone()) }))
        .layer(axum::middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state);
    Ok(router)
}

/// Loads every plugin of `folder` once: task name -> plugin version.
fn list_plugin_tasks(folder: &std::path::Path) -> anyhow::Result<BTreeMap<String, String>> {
    let runtime = crate::commands::small_runtime(128 << 20)?;
    let (registry, errors) = crate::runtime::Registry::load_dir(&runtime, folder)?;
    for error in errors {
        tracing::warn!("plugin not listed: {error:#}");
    }
    Ok(registry
        .plugins()
        .iter()
        .flat_map(|plugin| plugin.tasks().iter().map(|task| (task.served.clone(), plugin.fingerprint())))
        .collect())
}

/// With a token configured, every route but `/healthz` needs it.
async fn authorize(State(state): State<Arc<ApiState>>, request: Request, next: Next) -> Response {
    let Some(token) = &state.config.auth_token else { return next.run(request).await };
    if request.uri().path() == "/healthz" {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
        let mut response = ApiError::status(StatusCode::UNAUTHORIZED, "a valid bearer token is required").into_response();
        response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        return response;
    }
    next.run(request).await
}

fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len() && given.iter().zip(expected).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
}
