//! HTTP endpoint of the simulator: health and the simulated PDs.
//!
//! | route | answer |
//! |---|---|
//! | `GET /healthz` | `ok` |
//! | `GET /pd` | `{"pds": [PdView...]}`: every simulated PD |
//! | `GET /pd/{key}` | one PD (`key` may contain `/`), 404 if never touched |
//! | `POST /reset` | forgets every PD |

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::pd::PdRegistry;

/// The router, serving `pd`.
pub fn router(pd: PdRegistry) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/pd", get(all_pds))
        .route("/pd/{*key}", get(one_pd))
        .route("/reset", post(reset))
        .with_state(pd)
}

async fn all_pds(State(pd): State<PdRegistry>) -> Json<serde_json::Value> {
    Json(json!({ "pds": pd.views() }))
}

async fn one_pd(State(pd): State<PdRegistry>, Path(key): Path<String>) -> Response {
    match pd.view(&key) {
        Some(view) => Json(view).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("no PD {key:?}") })),
        )
            .into_response(),
    }
}

async fn reset(State(pd): State<PdRegistry>) -> &'static str {
    pd.reset();
    "ok"
}
