//! The OpenAPI 3.1 document of the API. It is written by hand in
//! `docs/openapi.json` (where readers find it), compiled into the binary
//! and served at `/api/openapi.json`; a test holds it to the router's own
//! route table, so neither can change without the other.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

/// The document, as kept in `docs/`.
pub const DOCUMENT: &str = include_str!("../../docs/openapi.json");

pub async fn serve() -> Response {
    let mut response = DOCUMENT.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn the_document_lists_exactly_the_routes_the_router_serves() {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).expect("valid JSON");
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..4]), Some("3.1."));
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().unwrap().keys() {
                if ["get", "put", "post", "delete", "patch", "head", "options"]
                    .contains(&method.as_str())
                {
                    documented.insert((path.clone(), method.to_uppercase()));
                }
            }
        }
        let served: BTreeSet<(String, String)> = crate::routes::routes()
            .into_iter()
            .map(|(path, method, _)| (path.to_owned(), method.to_string()))
            .collect();
        assert_eq!(documented, served);
    }
}
