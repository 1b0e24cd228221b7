//! `PUT /_test/failpoints/{name}` (body: a `fail` action such as `sleep(60000)`, or `off`): arms
//! a named crash point of a running server, so the fault-injection tests can kill it there.
//! Compiled only with the `failpoints` feature, which release builds never have.

use axum::extract::Path;
use axum::http::StatusCode;

/// Arms (or, with `off`, disarms) one crash point.
pub async fn set(Path(name): Path<String>, actions: String) -> StatusCode {
    let result = if actions.trim() == "off" {
        fail::remove(&name);
        Ok(())
    } else {
        fail::cfg(&name, actions.trim())
    };
    match result {
        Ok(()) => StatusCode::NO_CONTENT,
        Err(_) => StatusCode::UNPROCESSABLE_ENTITY,
    }
}
