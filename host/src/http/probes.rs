//! `/metrics`, `/healthz` and `/readyz` of a worker (`host run --metrics`).
//!
//! `/readyz` answers 503 with the reasons as JSON whenever the worker is
//! not ready (see `metrics::health`); `/healthz` answers 200 as long as the
//! runtime can run a handler at all. Neither touches Redis: a probe must not
//! add load to the thing it checks, and readiness already knows when Redis
//! last answered.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use crate::metrics::Metrics;

/// The OpenMetrics content type `prometheus-client` writes.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(metrics)
}

async fn scrape(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, OPENMETRICS)], metrics.render())
}

pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "alive"}))
}

async fn readyz(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    metrics.sample();
    let readiness = metrics.health.readiness();
    let status = if readiness.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(readiness))
}
