//! Demo data for `nukisashi serve --demo`: a few real municipalities and guestbook settings
//! taken from config (as every module must), and the one-stop notices accepted between
//! them, so the first run has something to try.

use crate::app::App;
use crate::lgcode::LgCode;
use crate::store::municipalities::Municipality;
use anyhow::Result;
use std::collections::BTreeMap;

/// (code, name, population, guestbook title, address, phone)
const DEMO: &[(&str, &str, i64, &str, &str, &str)] = &[
    ("131016", "千代田区", 68_000, "千代田区 みんなの掲示板", "東京都千代田区九段南1-2-1", "03-3264-2111"),
    ("011002", "札幌市", 1_960_000, "さっぽろ ゲストブック", "北海道札幌市中央区北1条西2丁目", "011-211-2111"),
    ("141003", "横浜市", 3_770_000, "よこはま 市民の声", "神奈川県横浜市中区本町6丁目50番地の10", "045-671-2121"),
    ("472018", "那覇市", 310_000, "なは ゆんたく帳", "沖縄県那覇市泉崎1丁目1番1号", "098-867-0111"),
];

/// Residents generated for each demo municipality that has no linkage data yet.
const DEMO_RESIDENTS: usize = 300;

/// Adds the demo municipalities (once), their guestbook titles, the one-stop notice kinds
/// accepted into ふるさと納税, and a synthetic resident registry with tax summaries; leaves
/// existing data alone.
pub async fn seed(app: &App) -> Result<()> {
    let with_data: Vec<String> = app.db.linkage_heads().await?.into_iter().map(|(lg, _)| lg).collect();
    for &(code, name, population, title, address, phone) in DEMO {
        let lg_code = LgCode::parse(code)?;
        let municipality = Municipality { prefecture: lg_code.prefecture().to_string(), lg_code: lg_code.clone(), name: name.to_string(), population };
        app.add_municipality(&municipality).await?;
        if app.db.module_config(&lg_code, "guestbook").await?.is_empty() {
            let settings = BTreeMap::from([("title".to_string(), title.to_string())]);
            app.set_module_config(&lg_code, "guestbook", settings).await?;
        }
        // The business modules' required settings (plugins/*/manifest.toml), from this
        // municipality's own details.
        let mayor = format!("{}長", name);
        let business: [(&str, Vec<(&str, &str)>); 3] = [
            ("furusato-tax", vec![("address", address), ("phone", phone), ("mayor", mayor.as_str())]),
            ("e-application", vec![("phone", phone)]),
            ("child-allowance", vec![("phone", phone)]),
        ];
        for (module, settings) in business {
            if app.db.module_config(&lg_code, module).await?.is_empty() {
                let settings = settings.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
                app.set_module_config(&lg_code, module, settings).await?;
            }
        }
        // Each demo municipality takes the one-stop notices of the others into its
        // ふるさと納税 module, when the demo serves it (the 5-municipality rule works across
        // them).
        let furusato_served = app.file_routes.lock().expect("file routes").contains_key("furusato-tax");
        for kind in ["onestop-notification", "onestop-ineligible"].into_iter().filter(|_| furusato_served) {
            if app.db.notice_acceptance(code, kind).await?.is_none() {
                app.db.accept_notices(code, kind, "furusato-tax", &["furusato-tax".to_string()], "demo").await?;
            }
        }
        if !with_data.iter().any(|lg| lg == code) {
            seed_linkage(app, &lg_code, &format!("{}{name}", lg_code.prefecture())).await?;
        }
    }
    Ok(())
}

pub fn codes() -> impl Iterator<Item = &'static str> {
    DEMO.iter().map(|d| d.0)
}

async fn seed_linkage(app: &App, lg_code: &LgCode, place: &str) -> Result<()> {
    use crate::linkage::generate::{Spec, generate, write_residents, write_tax};
    use crate::linkage::import::{Encoding, import};
    use crate::linkage::layout::Layout;
    let spec = Spec {
        lg_code: lg_code.to_string(),
        place: place.to_string(),
        residents: DEMO_RESIDENTS,
        seed: lg_code.as_str().parse().unwrap_or(1),
        as_of: chrono::Local::now().date_naive(),
        shift_jis_safe: false,
    };
    let generated = generate(&spec);
    let (mut residents, mut tax) = (Vec::new(), Vec::new());
    write_residents(&mut residents, &generated.residents, Encoding::Utf8)?;
    write_tax(&mut tax, &generated.tax, Encoding::Utf8)?;
    import(&app.db, lg_code.as_str(), Layout::Residents, Encoding::Utf8, std::io::Cursor::new(residents)).await?;
    import(&app.db, lg_code.as_str(), Layout::Tax, Encoding::Utf8, std::io::Cursor::new(tax)).await?;
    Ok(())
}

/// Puts the demo's module files that come with a manifest (`name.wasm` + `name.toml` in the
/// plugins directory) into the catalog too, approved, so the console's catalog has
/// something to subscribe to. Each vendor named by a manifest is registered once with a
/// demo signing key kept in the data directory; versions already in the catalog are left
/// alone.
pub async fn seed_catalog(app: &App, settings: &crate::settings::Settings) -> Result<()> {
    use crate::auth::{Principal, Role};
    use crate::plugins::{admission, signing};
    let Some(dir) = &settings.plugins_dir else { return Ok(()) };
    let mut manifests: Vec<_> = std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "toml")).collect();
    manifests.sort();
    for manifest_path in manifests {
        let component_path = manifest_path.with_extension("wasm");
        let Ok(component) = std::fs::read(&component_path) else { continue };
        let manifest_bytes = std::fs::read(&manifest_path)?;
        let manifest = crate::catalog::manifest::Manifest::parse(&manifest_bytes).map_err(|e| anyhow::anyhow!("{}: {e}", manifest_path.display()))?;
        if app.db.version(&manifest.id, &manifest.version).await?.is_some() {
            continue;
        }
        let key_path = settings.data_dir.join(format!("demo-vendor-{}.key", manifest.vendor));
        if app.db.vendor(&manifest.vendor).await?.is_none() {
            let (private, public) = signing::generate().map_err(anyhow::Error::msg)?;
            std::fs::write(&key_path, &private)?;
            let vendor = crate::store::catalog::Vendor { id: manifest.vendor.clone(), name: format!("{} (demo)", manifest.vendor), public_key: public, auto_approve: true };
            app.db.insert_vendor(&vendor).await?;
        }
        let Ok(private) = std::fs::read_to_string(&key_path) else {
            tracing::warn!(vendor = %manifest.vendor, "vendor registered without a demo key here; {} {} not put in the catalog", manifest.id, manifest.version);
            continue;
        };
        let signature = signing::sign(&private, &component, &manifest_bytes).map_err(anyhow::Error::msg)?;
        let publisher = Principal { subject: "demo".into(), role: Role::Vendor, vendor_id: Some(manifest.vendor.clone()), lg_code: None, name: None, addressee_number: None };
        admission::admit(app, &publisher, admission::Upload { manifest: manifest_bytes, component, signature: Some(signature) })
            .await
            .map_err(|e| anyhow::anyhow!("demo catalog: {} {}: {e}", manifest.id, manifest.version))?;
        tracing::info!(module = %manifest.id, version = %manifest.version, "demo module put in the catalog");
    }
    Ok(())
}
