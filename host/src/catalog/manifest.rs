//! The module manifest a vendor publishes with each version (TOML or JSON).

use crate::auth::AccessLevel;
use crate::capabilities::Capability;
use crate::edge::path::ModulePath;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// WIT majors of `nukisashi:platform` this host can run.
pub const SUPPORTED_WIT_MAJORS: &[u32] = &[1];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// URL name of the module, e.g. `furusato-tax`: 1–55 lower-case letters, digits and
    /// hyphens, not starting with `-` or `xn--`. It names the module's origin
    /// (`{id}--{lg_code}.…`) and belongs to the vendor that first publishes it.
    #[schemars(regex(pattern = r"^(?!xn--)[a-z0-9][a-z0-9-]{0,54}$"))]
    pub id: String,
    /// Semantic version, e.g. `1.2.0`; each published version is immutable.
    #[schemars(regex(pattern = r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$"))]
    pub version: String,
    /// Vendor id, as registered by the operator.
    pub vendor: String,
    /// e.g. `ふるさと納税`, `電子申請`, `福祉`.
    pub category: String,
    /// The module's name as the catalog and the console show it.
    pub name: Names,
    /// One or two sentences for the catalog: what the module does, for whom.
    pub description: String,
    /// Capabilities the module asks for; it gets these ∩ what the municipality grants.
    #[serde(default)]
    #[schemars(extend("uniqueItems" = true))]
    pub capabilities: Vec<Capability>,
    /// Auth level per path prefix; the longest matching prefix decides. A path no route
    /// covers is refused by the host.
    #[schemars(length(min = 1))]
    pub routes: Vec<Route>,
    /// Per-municipality settings the module reads through `config`.
    #[serde(default)]
    pub config: BTreeMap<String, ConfigField>,
    /// Major version of `nukisashi:platform` the module targets (this host runs 1).
    #[schemars(range(min = 1, max = 1))]
    pub wit_major: u32,
    /// Events of other modules this module wants pushed (`<module>/<topic>`, e.g.
    /// `e-application/child-allowance-claim`); needs the `events` capability.
    #[serde(default)]
    pub subscribes: Vec<String>,
    /// Standard interfaces this module answers for the municipality's other modules, with
    /// the extension items it adds to their records, e.g.
    /// `[provides.receipts] extension_items = [{ name = "督促状発送日", type = "date", description = "…" }]`.
    /// The component must export each; the administrator chooses which module provides an
    /// interface.
    #[serde(default)]
    pub provides: BTreeMap<ProvidedInterface, Provision>,
    /// Kinds of notice this module sends to, and takes from, other municipalities.
    #[serde(default)]
    pub notices: NoticeKinds,
}

/// A standard interface a module can provide to the municipality's other modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ProvidedInterface {
    /// `nukisashi:platform/receipts`: 収納 and 滞納 per 宛名番号 and 税目.
    Receipts,
    /// `nukisashi:platform/resident-registry`: a 住民記録 unit instead of the platform's
    /// copy of the registry.
    ResidentRegistry,
}

impl ProvidedInterface {
    pub const ALL: [ProvidedInterface; 2] = [ProvidedInterface::Receipts, ProvidedInterface::ResidentRegistry];

    pub fn name(self) -> &'static str {
        match self {
            ProvidedInterface::Receipts => "receipts",
            ProvidedInterface::ResidentRegistry => "resident-registry",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.name() == name)
    }

    /// The capability a consumer needs to call it.
    pub fn capability(self) -> Capability {
        match self {
            ProvidedInterface::Receipts => Capability::Receipts,
            ProvidedInterface::ResidentRegistry => Capability::ResidentRegistry,
        }
    }

    /// Whether the platform answers it itself when no module is chosen.
    pub fn platform_has_default(self) -> bool {
        matches!(self, ProvidedInterface::ResidentRegistry)
    }

    /// In Japanese, for the console.
    pub fn label(self) -> &'static str {
        match self {
            ProvidedInterface::Receipts => "収納",
            ProvidedInterface::ResidentRegistry => "住民記録",
        }
    }
}

/// What a module declares about an interface it provides.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Provision {
    /// Items it adds beyond the standard record. The host hands consumers only declared
    /// items of the declared type; anything else is the provider's fault.
    #[serde(default)]
    pub extension_items: Vec<ExtensionItemSpec>,
}

/// One extension item a provider adds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtensionItemSpec {
    /// The name consumers read it by, e.g. `督促状発送日`.
    #[schemars(length(min = 1, max = 64))]
    pub name: String,
    /// `text`, `integer`, `date` (ISO 8601) or `boolean`.
    #[serde(rename = "type")]
    pub value_type: ExtensionType,
    /// What it means, for the consumers' vendors and the municipality (shown in the console).
    pub description: String,
}

/// The type of an extension item's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ExtensionType {
    Text,
    Integer,
    Date,
    Boolean,
}

impl ExtensionType {
    /// As written in a manifest.
    pub fn name(self) -> &'static str {
        match self {
            ExtensionType::Text => "text",
            ExtensionType::Integer => "integer",
            ExtensionType::Date => "date",
            ExtensionType::Boolean => "boolean",
        }
    }
}

/// Notice kinds (`a-z`, `0-9`, `-`), e.g. `onestop-notification`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoticeKinds {
    /// Kinds this module may send to other municipalities (needs the `notices` capability).
    #[serde(default)]
    pub sends: Vec<String>,
    /// Kinds this module can take; a municipality's administrator accepts each kind into one
    /// module. The component must export `notice-handler`.
    #[serde(default)]
    pub receives: Vec<String>,
}

/// Whether `kind` is a valid notice kind: 1–64 of `a-z`, `0-9` and `-`.
pub fn is_valid_notice_kind(kind: &str) -> bool {
    !kind.is_empty() && kind.len() <= 64 && kind.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Names {
    /// In Japanese, e.g. `ふるさと納税`.
    pub ja: String,
    /// In English, e.g. `Hometown tax donations`.
    pub en: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// A path prefix inside the module, e.g. `/` or `/staff`; it covers itself and every
    /// path below it, segment by segment.
    pub path: String,
    /// Who may call paths under it: `public`, `resident`, `staff` or `admin` (of the
    /// municipality); the host refuses everyone else before the module runs.
    pub auth: AccessLevel,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigField {
    /// What the municipality's admin is asked for, shown in the console.
    #[serde(default)]
    pub description: String,
    /// The value when the municipality sets none.
    #[serde(default)]
    pub default: Option<String>,
    /// A subscription without this setting (and without a default) is refused.
    #[serde(default)]
    pub required: bool,
}

impl Manifest {
    /// The manifest of a module loaded from a file without one: every path public, every
    /// capability requested, version 0.0.0.
    pub fn development(id: &str) -> Self {
        Self {
            id: id.to_string(),
            version: "0.0.0".into(),
            vendor: "local".into(),
            category: "development".into(),
            name: Names { ja: id.to_string(), en: id.to_string() },
            description: "loaded from a file at start-up".into(),
            capabilities: vec![Capability::Kv],
            routes: vec![Route { path: "/".into(), auth: AccessLevel::Public }],
            config: BTreeMap::new(),
            wit_major: SUPPORTED_WIT_MAJORS[0],
            subscribes: Vec::new(),
            provides: BTreeMap::new(),
            notices: NoticeKinds::default(),
        }
    }

    /// The JSON Schema of a manifest (served at `/api/v1/schemas/manifest.json`, printed by
    /// `nukisashi module schema`): every field with its description and every valid value
    /// of `capabilities` and `routes[].auth`. Editors validate TOML manifests against it too.
    pub fn json_schema() -> serde_json::Value {
        let mut schema = serde_json::to_value(schemars::schema_for!(Manifest)).expect("a schema is JSON");
        schema["$id"] = "urn:nukisashi:schema:manifest".into();
        schema["title"] = "Nukisashi module manifest".into();
        schema
    }

    /// Parses JSON (if it starts with `{`) or TOML, then checks every field.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "the manifest is not UTF-8".to_string())?;
        let manifest: Manifest = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| format!("the manifest is not valid JSON for a module manifest: {e}"))?
        } else {
            toml::from_str(text).map_err(|e| format!("the manifest is not valid TOML for a module manifest: {e}"))?
        };
        manifest.validate()?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<(), String> {
        if !crate::is_valid_module_id(&self.id) {
            return Err(format!("module id `{}` must be 1–55 lower-case letters, digits and hyphens (not starting with `-` or `xn--`)", self.id));
        }
        semver::Version::parse(&self.version).map_err(|e| format!("version `{}` is not a semantic version: {e}", self.version))?;
        if !SUPPORTED_WIT_MAJORS.contains(&self.wit_major) {
            return Err(format!("wit_major {} is not supported by this host (supported: {SUPPORTED_WIT_MAJORS:?})", self.wit_major));
        }
        if self.routes.is_empty() {
            return Err("the manifest declares no routes; declare each path prefix with its auth level".into());
        }
        for route in &self.routes {
            crate::edge::path::declared_segments(&route.path)?;
        }
        for s in &self.subscribes {
            let valid = s.split_once('/').is_some_and(|(m, t)| crate::is_valid_module_id(m) && crate::is_valid_module_id(t));
            if !valid {
                return Err(format!("subscription `{s}` must be `<module id>/<topic>`, e.g. `e-application/child-allowance-claim`"));
            }
        }
        for (interface, provision) in &self.provides {
            let mut seen = std::collections::BTreeSet::new();
            for item in &provision.extension_items {
                if item.name.trim().is_empty() || item.name.chars().count() > 64 {
                    return Err(format!("[provides.{}] extension item names must be 1–64 characters", interface.name()));
                }
                if !seen.insert(item.name.as_str()) {
                    return Err(format!("[provides.{}] declares the extension item `{}` twice", interface.name(), item.name));
                }
            }
        }
        for kind in self.notices.sends.iter().chain(&self.notices.receives) {
            if !is_valid_notice_kind(kind) {
                return Err(format!("notice kind `{kind}` must be 1–64 of a-z, 0-9 and `-`, e.g. `onestop-notification`"));
            }
        }
        if !self.notices.sends.is_empty() && !self.capabilities.contains(&Capability::Notices) {
            return Err("[notices] sends needs the `notices` capability in `capabilities`".into());
        }
        for (name, value) in [("category", &self.category), ("name.ja", &self.name.ja), ("name.en", &self.name.en)] {
            if value.trim().is_empty() {
                return Err(format!("`{name}` must not be empty"));
            }
        }
        Ok(())
    }

    /// The declared route (its path prefix) that `path` falls under, with its access level:
    /// the longest prefix wins, compared segment by segment on the checked path (`/admin`
    /// covers `/admin` and `/admin/x`, not `/administrator`).
    pub fn matched_route(&self, path: &ModulePath) -> Option<(&str, AccessLevel)> {
        self.routes
            .iter()
            .filter_map(|r| {
                let prefix: Vec<&str> = r.path.split('/').filter(|s| !s.is_empty()).collect();
                path.starts_with(&prefix).then_some((r, prefix.len()))
            })
            .max_by_key(|(_, depth)| *depth)
            .map(|(r, _)| (r.path.as_str(), r.auth))
    }

    /// The extension items this manifest declares for `interface` (none if it does not
    /// provide it).
    pub fn extension_items(&self, interface: ProvidedInterface) -> &[ExtensionItemSpec] {
        self.provides.get(&interface).map_or(&[], |p| p.extension_items.as_slice())
    }

    /// Config with the manifest's defaults filled in under the municipality's settings.
    pub fn effective_config(&self, settings: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> =
            self.config.iter().filter_map(|(k, f)| f.default.clone().map(|d| (k.clone(), d))).collect();
        out.extend(settings.iter().map(|(k, v)| (k.clone(), v.clone())));
        out
    }

    /// Required settings the municipality has not given (and that have no default).
    pub fn missing_config(&self, settings: &BTreeMap<String, String>) -> Vec<String> {
        self.config
            .iter()
            .filter(|(k, f)| f.required && f.default.is_none() && !settings.contains_key(*k))
            .map(|(k, _)| k.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_lists_every_valid_value_the_parser_accepts() {
        let schema = Manifest::json_schema().to_string();
        for capability in Capability::ALL {
            assert!(schema.contains(&format!("\"{}\"", capability.name())), "{capability:?} missing from the schema");
        }
        for auth in ["public", "resident", "staff", "admin"] {
            assert!(schema.contains(&format!("\"{auth}\"")), "{auth} missing");
        }
        let schema = Manifest::json_schema();
        let wit = &schema["properties"]["wit_major"];
        assert_eq!((wit["minimum"].as_u64(), wit["maximum"].as_u64()), (SUPPORTED_WIT_MAJORS.first().map(|&m| m as u64), SUPPORTED_WIT_MAJORS.last().map(|&m| m as u64)));
        let required: Vec<&str> = schema["required"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
        assert_eq!(required, ["id", "version", "vendor", "category", "name", "description", "routes", "wit_major"]);
        assert_eq!(schema["additionalProperties"], false);
    }

    const TOML: &str = r#"
id = "guestbook"
version = "1.2.0"
vendor = "acme"
category = "電子申請"
name = { ja = "ゲストブック", en = "Guestbook" }
description = "記帳"
capabilities = ["kv"]
wit_major = 1
routes = [{ path = "/", auth = "public" }, { path = "/admin", auth = "staff" }]
[config.title]
description = "ページの題名"
default = "ゲストブック"
[config.contact]
required = true
"#;

    #[test]
    fn parses_toml_and_json_alike() {
        let m = Manifest::parse(TOML.as_bytes()).unwrap();
        let json = serde_json::to_vec(&m).unwrap();
        assert_eq!(Manifest::parse(&json).unwrap(), m);
        assert_eq!(m.capabilities, vec![Capability::Kv]);
    }

    #[test]
    fn longest_prefix_decides_access() {
        let m = Manifest::parse(TOML.as_bytes()).unwrap();
        let level = |path: &str| m.matched_route(&ModulePath::parse(path).unwrap()).map(|(_, level)| level);
        assert_eq!(level("/"), Some(AccessLevel::Public));
        assert_eq!(level("/entries"), Some(AccessLevel::Public));
        assert_eq!(level("/admin"), Some(AccessLevel::Staff));
        assert_eq!(level("/admin/"), Some(AccessLevel::Staff));
        assert_eq!(level("/%61dmin/queue"), Some(AccessLevel::Staff));
        assert_eq!(level("/administrator"), Some(AccessLevel::Public));
    }

    #[test]
    fn config_defaults_and_required() {
        let m = Manifest::parse(TOML.as_bytes()).unwrap();
        let given = BTreeMap::from([("contact".to_string(), "03-0000-0000".to_string())]);
        assert_eq!(m.effective_config(&given)["title"], "ゲストブック");
        assert_eq!(m.missing_config(&BTreeMap::new()), vec!["contact".to_string()]);
    }

    #[test]
    fn provided_interfaces_and_notice_kinds_are_read_and_checked() {
        let with = |extra: &str| Manifest::parse(format!("{TOML}\n{extra}\n").as_bytes());
        let m = with("[provides.receipts]\nextension_items = [{ name = \"督促状発送日\", type = \"date\", description = \"督促状を発送した日\" }]\n[provides.resident-registry]\n[notices]\nreceives = [\"onestop-notification\"]")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.extension_items(ProvidedInterface::Receipts)[0].value_type, ExtensionType::Date);
        assert!(m.provides.contains_key(&ProvidedInterface::ResidentRegistry));
        assert!(m.extension_items(ProvidedInterface::ResidentRegistry).is_empty());
        assert_eq!(m.notices.receives, ["onestop-notification"]);

        assert!(with("[provides.tax-collection]").unwrap_err().contains("tax-collection"));
        assert!(with("[provides.receipts]\nextension_items = [{ name = \"x\", type = \"money\", description = \"\" }]").unwrap_err().contains("money"));
        let twice = "[provides.receipts]\nextension_items = [{ name = \"x\", type = \"text\", description = \"\" }, { name = \"x\", type = \"date\", description = \"\" }]";
        assert!(with(twice).unwrap_err().contains("twice"));
        assert!(with("[notices]\nreceives = [\"Bad Kind\"]").unwrap_err().contains("Bad Kind"));
        assert!(with("[notices]\nsends = [\"x\"]").unwrap_err().contains("`notices` capability"), "sending needs the capability");
    }

    #[test]
    fn refuses_bad_fields_with_reasons() {
        let bad = |from: &str, to: &str| Manifest::parse(TOML.replace(from, to).as_bytes()).unwrap_err();
        assert!(bad("version = \"1.2.0\"", "version = \"1.2\"").contains("semantic version"));
        assert!(bad("capabilities = [\"kv\"]", "capabilities = [\"teleport\"]").contains("teleport"));
        assert!(bad("wit_major = 1", "wit_major = 9").contains("wit_major 9"));
        assert!(bad("id = \"guestbook\"", "id = \"Guest Book\"").contains("module id"));
        assert!(Manifest::parse(b"not = [valid").unwrap_err().contains("TOML"));
        assert!(bad("path = \"/admin\"", "path = \"//admin\"").contains("empty segment"));
        assert!(bad("path = \"/admin\"", "path = \"admin\"").contains("must start with"));
    }
}
