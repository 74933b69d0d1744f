//! HTTP: the platform REST API under `/api/v1`, the console, health, and the gateway into
//! modules (behind the edge).

mod auth;
mod backup;
mod catalog;
mod console;
pub(crate) mod gateway;
mod linkage;
mod links;
mod subscriptions;
mod transfers;
pub mod module_config;
pub(crate) mod municipalities;
mod usage;
pub mod problem;
mod openapi;

use crate::app::App;
use axum::Router;
use axum::routing::get;
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

/// Every route of the host. Requests meet the edge first (`edge::entry`): a module origin
/// goes straight to its module; everything else is the platform origin, routed here, with
/// the path form of modules as the fallback.
pub fn router(app: Arc<App>) -> Router {
    let (platform, _document) = platform_routes().split_for_parts();
    platform
        .route("/console", get(console::redirect))
        .route("/console/", get(console::index))
        .route("/console/sign-in.json", get(console::sign_in_providers))
        .route("/console/{file}", get(console::file))
        .merge(crate::signin::routes())
        .fallback(crate::edge::path_form)
        .layer(axum::middleware::from_fn_with_state(app.clone(), crate::edge::entry))
        .with_state(app)
}

/// The routes the OpenAPI document describes, each registered from its handler's
/// `#[utoipa::path]` (the console's files are not part of the API; the path form of modules,
/// the fallback, is described in `openapi::Skeleton`).
fn platform_routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::with_openapi(openapi::Skeleton::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .nest("/api/v1", api_v1())
}

fn api_v1() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(municipalities::list, municipalities::create))
        .routes(routes!(municipalities::show))
        .routes(routes!(transfers::create_export))
        .routes(routes!(transfers::download_export))
        .routes(routes!(transfers::create_upload))
        .routes(routes!(transfers::show_upload, transfers::append))
        .routes(routes!(transfers::import))
        .routes(routes!(module_config::show, module_config::replace))
        .merge(
            // Uploads carry a component of up to 32 MiB; every other body keeps axum's 2 MB cap.
            // The transport cap is twice admission's limit so that a somewhat oversized upload
            // is read whole and refused with a 413 naming the limit, instead of the connection
            // being cut while the client is still sending.
            OpenApiRouter::new()
                .routes(routes!(module_config::list_modules, catalog::publish))
                .layer(axum::extract::DefaultBodyLimit::max(2 * crate::plugins::admission::MAX_COMPONENT_BYTES)),
        )
        .routes(routes!(catalog::versions))
        .routes(routes!(catalog::approve))
        .routes(routes!(catalog::reject))
        .routes(routes!(subscriptions::swap))
        .routes(routes!(subscriptions::rollback))
        .routes(routes!(subscriptions::suspend))
        .routes(routes!(subscriptions::resume))
        .routes(routes!(catalog::register_vendor))
        .routes(routes!(catalog::vendor_modules))
        .routes(routes!(catalog::all_modules))
        .routes(routes!(catalog::pending))
        .routes(routes!(catalog::catalog))
        .routes(routes!(subscriptions::list))
        .routes(routes!(subscriptions::subscribe, subscriptions::unplug))
        .routes(routes!(subscriptions::export))
        .routes(routes!(links::providers))
        .routes(routes!(links::choose_provider))
        .routes(routes!(links::notices))
        .routes(routes!(links::accept, links::refuse))
        .routes(routes!(links::skip))
        .merge(
            // Import files stream through; their size is not capped by the 2 MB body limit.
            OpenApiRouter::new().routes(routes!(linkage::import_file)).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .routes(routes!(linkage::export_file))
        .routes(routes!(linkage::changes))
        .routes(routes!(linkage::deliveries))
        .routes(routes!(linkage::audit_trail))
        .routes(routes!(usage::of_municipality))
        .routes(routes!(usage::all))
        .routes(routes!(usage::of_municipality_cost))
        .routes(routes!(usage::cost_report))
        .routes(routes!(usage::publish_policy))
        .routes(routes!(backup::backup))
        .routes(routes!(openapi::serve))
        .routes(routes!(catalog::manifest_schema))
        .routes(routes!(catalog::logs))
}

/// `GET /healthz`: the process answers (also while it compiles its modules at start-up).
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "`ok`", content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok"
}

/// `GET /metrics`: Prometheus text exposition. Labels carry municipality codes and module
/// ids, never personal data; keep the path on the operators' network like `/readyz`.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain; version=0.0.4")))]
async fn metrics(axum::extract::State(app): axum::extract::State<Arc<App>>) -> axum::response::Response {
    use axum::response::IntoResponse;
    match app.metrics.prometheus_text() {
        Ok(text) => ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response(),
        Err(e) => problem::Problem::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "metrics-unavailable",
            "Metrics unavailable",
            format!("the metrics could not be encoded: {e}"),
        )
        .into_response(),
    }
}

/// Ready once every admitted version is compiled and the routes are built, while the
/// database answers. (`/healthz` answers as soon as the port is open, also while the host
/// compiles at start-up.)
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "`ready`", content_type = "text/plain"), (status = 503, description = "compiling, or the database does not answer", body = problem::Problem, content_type = "application/problem+json")))]
async fn readyz(axum::extract::State(app): axum::extract::State<Arc<App>>) -> axum::response::Response {
    use axum::response::IntoResponse;
    if !app.is_ready() {
        return problem::Problem::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, "not-ready", "Not ready", "the host is compiling its modules").into_response();
    }
    if !app.db.ping().await {
        return problem::Problem::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, "not-ready", "Not ready", "the database does not answer").into_response();
    }
    "ready".into_response()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// Every operation of the generated document, with its path.
    fn operations(document: &serde_json::Value) -> Vec<(String, String, serde_json::Value)> {
        let mut out = Vec::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                out.push((method.to_uppercase(), path.clone(), operation.clone()));
            }
        }
        out
    }

    fn collect_references(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::String(reference)) = map.get("$ref") {
                    out.push(reference.clone());
                }
                map.values().for_each(|v| collect_references(v, out));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| collect_references(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_route_is_documented_with_its_parameters_and_refusals() {
        let document = serde_json::to_value(super::openapi::document()).unwrap();
        let operations = operations(&document);
        let routes: BTreeSet<_> = operations.iter().map(|(method, path, _)| format!("{method} {path}")).collect();
        for expected in ["GET /healthz", "GET /metrics", "PATCH /api/v1/transfers/{id}", "GET /api/v1/openapi.json", "POST /{lg_code}/{module}/{rest}"] {
            assert!(routes.contains(expected), "{expected} is missing from {routes:?}");
        }
        assert!(operations.len() > 40, "only {routes:?}");
        for (method, path, operation) in &operations {
            let parameters = operation["parameters"].as_array().cloned().unwrap_or_default();
            let mut seen = BTreeSet::new();
            for parameter in &parameters {
                let key = (parameter["in"].as_str().unwrap().to_string(), parameter["name"].as_str().unwrap().to_string());
                assert!(seen.insert(key.clone()), "{method} {path} declares {key:?} twice");
            }
            let in_path: BTreeSet<_> = path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')).map(str::to_string).collect();
            let declared: BTreeSet<_> = seen.iter().filter(|(place, _)| place == "path").map(|(_, name)| name.clone()).collect();
            assert_eq!(in_path, declared, "{method} {path}: path parameters");
            assert!(operation["summary"].as_str().is_some_and(|s| !s.is_empty()), "{method} {path} has no summary");
            assert!(operation["responses"]["default"].is_object(), "{method} {path} does not say how it refuses");
        }
        let mut references = Vec::new();
        collect_references(&document, &mut references);
        for reference in references {
            let pointer = reference.strip_prefix('#').unwrap();
            assert!(document.pointer(pointer).is_some(), "{reference} does not resolve");
        }
        let problem = &document["components"]["schemas"]["Problem"];
        let required: BTreeSet<_> = problem["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(required, BTreeSet::from(["type", "title", "status", "detail"]), "{problem}");
    }

    /// A JSON body the handler refuses unknown fields of says so, so a client generated from
    /// the document cannot send one.
    #[test]
    fn json_bodies_are_closed_and_constrained_as_the_handlers_check_them() {
        let document = serde_json::to_value(super::openapi::document()).unwrap();
        let schemas = &document["components"]["schemas"];
        for name in ["NewMunicipality", "NewVendor", "SubscribeRequest", "SwapRequest", "SuspendRequest", "NewUpload", "Decision"] {
            assert_eq!(schemas[name]["additionalProperties"], serde_json::json!(false), "{name}: {}", schemas[name]);
        }
        assert_eq!(schemas["NewVendor"]["properties"]["public_key"]["pattern"], "^[A-Za-z0-9+/]{43}=$");
        assert_eq!(schemas["NewUpload"]["properties"]["length"]["minimum"], 1);
        let subscribe = &schemas["SubscribeRequest"]["properties"]["version"];
        assert!(subscribe.to_string().contains("null"), "version may be null to follow: {subscribe}");
    }
}
