//! `GET /v1/inventory`: JSON, or CSV with `?format=csv` or `Accept: text/csv`.

use crate::api::error::ApiError;
use crate::api::extract::{ApiQuery, HostCaller};
use crate::connections::inventory;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use latch_shared::ErrorBody;
use latch_shared::api::host::{InventoryEntry, InventoryFormat, InventoryQuery, Page};

/// Every connection with its owner, scopes and what they allow, purpose, provenance and last
/// use, filtered and paged.
#[utoipa::path(get, path = "/v1/inventory", tag = "host", security(("api_key" = [])), params(InventoryQuery),
    responses(
        (status = 200, content(
            (Page<InventoryEntry> = "application/json"),
            (String = "text/csv")
        ), headers(("Latch-Next-Cursor" = String, description = "CSV only: the cursor of the next page, when there is one"))),
        (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _caller: HostCaller,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<InventoryQuery>,
) -> Result<Response, ApiError> {
    let page = inventory::list(&state.store, &state.providers, &state.clock, &q).await?;
    let wants_csv = match q.format {
        Some(format) => format == InventoryFormat::Csv,
        None => headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/csv")),
    };
    if !wants_csv {
        return Ok(Json(page).into_response());
    }
    let csv = inventory::to_csv(&page.data).map_err(ApiError::internal)?;
    let mut response = ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response();
    if let Some(cursor) = page.next_cursor.as_deref().and_then(|c| HeaderValue::from_str(c).ok()) {
        response.headers_mut().insert("latch-next-cursor", cursor);
    }
    Ok(response)
}
