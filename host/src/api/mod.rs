//! HTTP: the platform REST API under `/api/v1`, the console, health, and the gateway into
//! modules (behind the edge).

mod auth;
mod backup;
mod catalog;
mod console;
pub(crate) mod gateway;
mod linkage;
mod subscriptions;
mod transfers;
mod module_config;
pub(crate) mod municipalities;
mod usage;
pub mod problem;

use crate::app::App;
use axum::Router;
use axum::routing::{get, post};
use std::sync::Arc;

/// Every route of the host. Requests meet the edge first (`edge::entry`): a module origin
/// goes straight to its module; everything else is the platform origin, routed here, with
/// the path form of modules as the fallback.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .nest("/api/v1", api_v1())
        .route("/console", get(console::redirect))
        .route("/console/", get(console::index))
        .route("/console/sign-in.json", get(console::sign_in_providers))
        .route("/console/{file}", get(console::file))
        .fallback(crate::edge::path_form)
        .layer(axum::middleware::from_fn_with_state(app.clone(), crate::edge::entry))
        .with_state(app)
}

fn api_v1() -> Router<Arc<App>> {
    Router::new()
        .route("/municipalities", get(municipalities::list).post(municipalities::create))
        .route("/municipalities/{lg_code}", get(municipalities::show))
        .route("/municipalities/{lg_code}/exports", post(transfers::create_export))
        .route("/exports/{id}", get(transfers::download_export))
        .route("/transfers", post(transfers::create_upload))
        .route("/transfers/{id}", get(transfers::show_upload).patch(transfers::append))
        .route("/transfers/{id}/import", post(transfers::import))
        .route(
            "/municipalities/{lg_code}/modules/{module}/config",
            get(module_config::show).put(module_config::replace),
        )
        .route(
            "/modules",
            // Uploads carry a component of up to 32 MiB; every other body keeps axum's 2 MB cap.
            // The transport cap is twice admission's limit so that a somewhat oversized upload
            // is read whole and refused with a 413 naming the limit, instead of the connection
            // being cut while the client is still sending.
            get(module_config::list_modules).post(catalog::publish).layer(axum::extract::DefaultBodyLimit::max(
                2 * crate::plugins::admission::MAX_COMPONENT_BYTES,
            )),
        )
        .route("/modules/{id}/versions", get(catalog::versions))
        .route("/modules/{id}/versions/{version}/approve", post(catalog::approve))
        .route("/modules/{id}/versions/{version}/reject", post(catalog::reject))
        .route("/modules/{id}/swap", post(subscriptions::swap))
        .route("/modules/{id}/rollback", post(subscriptions::rollback))
        .route("/modules/{id}/suspend", post(subscriptions::suspend))
        .route("/modules/{id}/resume", post(subscriptions::resume))
        .route("/vendors", post(catalog::register_vendor))
        .route("/vendors/{id}/modules", get(catalog::vendor_modules))
        .route("/module-versions", get(catalog::all_modules))
        .route("/reviews", get(catalog::pending))
        .route("/catalog", get(catalog::catalog))
        .route("/municipalities/{lg_code}/subscriptions", get(subscriptions::list))
        .route(
            "/municipalities/{lg_code}/subscriptions/{module}",
            axum::routing::put(subscriptions::subscribe).delete(subscriptions::unplug),
        )
        .route("/municipalities/{lg_code}/modules/{module}/export", get(subscriptions::export))
        .route(
            "/municipalities/{lg_code}/linkage/{layout}/import",
            // Import files stream through; their size is not capped by the 2 MB body limit.
            post(linkage::import_file).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/municipalities/{lg_code}/linkage/{layout}/export", get(linkage::export_file))
        .route("/municipalities/{lg_code}/linkage/changes", get(linkage::changes))
        .route("/municipalities/{lg_code}/linkage/deliveries", get(linkage::deliveries))
        .route("/municipalities/{lg_code}/audit", get(linkage::audit_trail))
        .route("/municipalities/{lg_code}/usage", get(usage::of_municipality))
        .route("/usage", get(usage::all))
        .route("/municipalities/{lg_code}/cost", get(usage::of_municipality_cost))
        .route("/reports/cost", get(usage::cost_report))
        .route("/cost-policies/{month}", axum::routing::put(usage::publish_policy))
        .route("/backup", get(backup::backup))
        .route("/openapi.json", get(|| async { ([(axum::http::header::CONTENT_TYPE, "application/json")], OPENAPI) }))
}

/// The OpenAPI 3.1 description of `/api/v1`.
const OPENAPI: &str = include_str!("openapi.json");

/// Prometheus text exposition. Labels carry municipality codes and module ids, never
/// personal data; keep the path on the operators' network like `/readyz`.
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

    /// `(METHOD, path)` of every route `api_v1` registers, read off its source: the
    /// document cannot silently miss a route someone adds.
    fn routed() -> BTreeSet<(String, String)> {
        let source = include_str!("mod.rs");
        let body = &source[source.find("fn api_v1()").unwrap()..];
        let body = &body[..body.find("\n}\n").unwrap()];
        let mut routes = BTreeSet::new();
        for route in body.split(".route(").skip(1) {
            let path = route.split('"').nth(1).unwrap().to_string();
            for method in ["get", "post", "put", "patch", "delete"] {
                if route.contains(&format!("{method}(")) {
                    routes.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        routes
    }

    #[test]
    fn the_openapi_document_describes_exactly_the_routes() {
        let document: serde_json::Value = serde_json::from_str(super::OPENAPI).unwrap();
        let mut documented = BTreeSet::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys().filter(|k| ["get", "post", "put", "patch", "delete"].contains(&k.as_str())) {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
        let routed = routed();
        assert!(routed.len() > 30, "the route scan found only {routed:?}");
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(undocumented.is_empty(), "routes missing from openapi.json: {undocumented:?}");
        assert!(unrouted.is_empty(), "openapi.json documents routes that do not exist: {unrouted:?}");
    }
}
