//! Which account did the user connect? Asks the provider's identity endpoint with the new access
//! token and reads the account id (and a label) with the provider's JSONPath expressions.
//!
//! The account id must be stable (`sub`, GitHub's numeric `id`, Slack's team id); labels such as
//! an email are for people and may change without creating a new connection.

use super::http::read_capped;
use super::token::describe_transport;
use crate::providers::Identity;
use crate::vault::Secret;
use serde_json::Value;
use serde_json_path::JsonPath;

/// The connected account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Stable id at the provider.
    pub id: String,
    /// Readable label.
    pub label: Option<String>,
}

/// Why the account could not be determined.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IdentityError {
    /// The endpoint failed or answered something that is not a JSON object.
    #[error("identity endpoint answered {0}")]
    BadResponse(String),
    /// The JSONPath found no usable id in the answer.
    #[error("no account identifier at {0}")]
    NotFound(String),
}

/// The identity endpoint's request for this token: bearer, JSON, the provider's own headers.
pub fn request(http: &reqwest::Client, identity: &Identity, access_token: &Secret) -> reqwest::RequestBuilder {
    let mut request =
        http.get(identity.url.clone()).bearer_auth(access_token.expose()).header("Accept", "application/json");
    for (name, value) in &identity.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    request
}

/// Calls the identity endpoint and extracts the account.
pub async fn fetch(
    http: &reqwest::Client,
    identity: &Identity,
    access_token: &Secret,
) -> Result<Account, IdentityError> {
    let response = request(http, identity, access_token)
        .send()
        .await
        .map_err(|e| IdentityError::BadResponse(describe_transport(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(IdentityError::BadResponse(format!("HTTP {}", status.as_u16())));
    }
    let body = read_capped(response).await.map_err(|e| IdentityError::BadResponse(describe_transport(&e)))?;
    let json: Value =
        serde_json::from_slice(&body).map_err(|_| IdentityError::BadResponse("a body that is not JSON".into()))?;
    if !json.is_object() {
        return Err(IdentityError::BadResponse("JSON that is not an object".into()));
    }
    extract(identity, &json)
}

/// Reads the account from an identity answer.
pub fn extract(identity: &Identity, json: &Value) -> Result<Account, IdentityError> {
    let not_found = || IdentityError::NotFound(identity.account_identifier.clone());
    let id = query(&identity.account_identifier, json).ok_or_else(not_found)?;
    let label = identity.account_label.as_deref().and_then(|path| query(path, json));
    Ok(Account { id, label })
}

/// The first match of a JSONPath, as a short string (numbers are written out).
fn query(path: &str, json: &Value) -> Option<String> {
    let path = JsonPath::parse(path).ok()?;
    let value = path.query(json).first()?;
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!text.is_empty() && text.len() <= 256 && !text.chars().any(char::is_control)).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn identity(id: &str, label: Option<&str>) -> Identity {
        Identity {
            url: "https://example.com/me".parse().unwrap(),
            account_identifier: id.into(),
            account_label: label.map(str::to_owned),
            headers: Default::default(),
        }
    }

    #[test]
    fn strings_and_numbers() {
        let gh = json!({"id": 583231, "login": "octocat"});
        let a = extract(&identity("$.id", Some("$.login")), &gh).unwrap();
        assert_eq!(a, Account { id: "583231".into(), label: Some("octocat".into()) });
        let nested = json!({"user": {"email": "a@b.c"}});
        assert_eq!(extract(&identity("$.user.email", None), &nested).unwrap().id, "a@b.c");
    }

    #[test]
    fn missing_or_unusable_ids() {
        for doc in [json!({}), json!({"id": null}), json!({"id": ""}), json!({"id": {"x": 1}}), json!({"id": [1]})] {
            assert!(matches!(extract(&identity("$.id", None), &doc), Err(IdentityError::NotFound(_))), "{doc}");
        }
        assert!(extract(&identity("$[", None), &json!({})).is_err());
    }
}
