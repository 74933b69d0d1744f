//! The OpenAPI document, generated from the code. Each handler declares its route,
//! parameters, body and responses in `#[utoipa::path]` next to its signature, with schemas
//! derived from the very types it deserialises; `super::platform_routes` registers the routes
//! from those same declarations (`utoipa_axum::routes!`), so an API route cannot exist
//! undocumented (the path form is documented on the fallback handler itself). Shared here: the path
//! parameters, the refusal every operation can answer, and the bearer scheme.

use serde::Deserialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, RefOr, Response, Schema};
use utoipa::{IntoParams, Modify, PartialSchema, ToSchema};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Nukisashi platform API",
        version = "1.0.0",
        description = "Operators, vendors and municipalities manage modules here. Errors are RFC 7807 \
            application/problem+json with a stable `type` (urn:nukisashi:problem:<slug>). Tokens: \
            `nukisashi token mint` (local HS256) or a configured identity provider (RS256/ES256). \
            Refusals of requests that are well-formed but wrong for the platform's state or rules \
            (an unknown subscription, a check digit that does not match) are 422. Modules answer \
            under `/{lg_code}/{module}/…` (the path form) or on their own origin."
    ),
    paths(crate::edge::path_form),
    // Types named only in parameters (not in a body) are registered here.
    components(schemas(LayoutName, EncodingName, Measure, ReportFormat)),
    modifiers(&Bearer)
)]
pub struct Skeleton;

/// The document: the skeleton above with every route `super::platform_routes` registers.
/// Every operation then gets its refusal (the routes join after the skeleton's modifiers ran).
pub fn document() -> OpenApi {
    let mut document = super::platform_routes().split_for_parts().1;
    Refusals.modify(&mut document);
    document
}

/// `GET /api/v1/openapi.json`: this document.
#[utoipa::path(get, path = "/openapi.json", tag = "platform", responses((status = 200, description = "this document", content_type = "application/json")))]
pub async fn serve() -> axum::response::Response {
    use axum::response::IntoResponse;
    static JSON: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| document().to_json().expect("the OpenAPI document serialises"));
    ([(axum::http::header::CONTENT_TYPE, "application/json")], JSON.as_str()).into_response()
}

/// Every operation can be refused, always as `application/problem+json`.
struct Refusals;

impl Modify for Refusals {
    fn modify(&self, openapi: &mut OpenApi) {
        let problem = Response::builder()
            .description("refused: what was wrong and what to do")
            .content("application/problem+json", Content::new(Some(RefOr::<Schema>::Ref(utoipa::openapi::Ref::from_schema_name("Problem")))))
            .build();
        let components = openapi.components.get_or_insert_with(Default::default);
        components.schemas.insert("Problem".into(), super::problem::Problem::schema());
        components.responses.insert("Problem".into(), RefOr::T(problem));
        for item in openapi.paths.paths.values_mut() {
            for operation in [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch, &mut item.head].into_iter().flatten() {
                operation.responses.responses.entry("default".into()).or_insert_with(|| RefOr::Ref(utoipa::openapi::Ref::new("#/components/responses/Problem")));
            }
        }
    }
}

/// `Authorization: Bearer <JWT>`, named by the operations that need it.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut OpenApi) {
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        openapi.components.get_or_insert_with(Default::default).add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MunicipalityPath {
    /// 全国地方公共団体コード with its check digit
    #[param(pattern = "^[0-9]{6}$", example = "131016")]
    pub lg_code: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MunicipalityModulePath {
    /// 全国地方公共団体コード with its check digit
    #[param(pattern = "^[0-9]{6}$", example = "131016")]
    pub lg_code: String,
    /// The module's id
    #[param(example = "furusato-tax")]
    pub module: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ModulePath {
    /// The module's id
    #[param(example = "furusato-tax")]
    pub id: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ModuleVersionPath {
    /// The module's id
    #[param(example = "furusato-tax")]
    pub id: String,
    /// A version the vendor published
    #[param(example = "1.0.0")]
    pub version: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct VendorPath {
    /// The vendor's id
    #[param(example = "demo-vendor")]
    pub id: String,
}

/// An export or upload, by the id the host gave it.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TransferPath {
    #[param(format = "uuid")]
    pub id: String,
}

/// A body that is a file, taken as it comes (a CSV file, a chunk of an archive).
pub struct File;

impl PartialSchema for File {
    fn schema() -> RefOr<Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary))).into()
    }
}

impl ToSchema for File {}

// Values the handlers read as text and check themselves; these enums give the document their
// lists (a value outside one is refused: 404 for a layout, 400 or 422 for the rest).

/// A CSV layout (docs/LINKAGE.md).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LayoutName {
    Residents,
    Tax,
}

/// The text encoding of a CSV file.
#[derive(Deserialize, ToSchema)]
pub enum EncodingName {
    #[serde(rename = "utf-8")]
    Utf8,
    #[serde(rename = "shift_jis")]
    ShiftJis,
}

/// What the usage share of the cost is measured by.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Measure {
    Requests,
    CpuTime,
}

/// The cost report as JSON or as CSV.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    Json,
    Csv,
}
