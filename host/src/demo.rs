//! Demo data for `nukisashi serve --demo`: a few real municipalities and guestbook settings
//! taken from config (as every module must), so the first run has something to try.

use crate::app::App;
use crate::lgcode::LgCode;
use crate::store::municipalities::Municipality;
use anyhow::Result;
use std::collections::BTreeMap;

/// (code, name, population, guestbook title)
const DEMO: &[(&str, &str, i64, &str)] = &[
    ("131016", "千代田区", 68_000, "千代田区 みんなの掲示板"),
    ("011002", "札幌市", 1_960_000, "さっぽろ ゲストブック"),
    ("141003", "横浜市", 3_770_000, "よこはま 市民の声"),
    ("472018", "那覇市", 310_000, "なは ゆんたく帳"),
];

/// Adds the demo municipalities (once) and their guestbook titles; leaves existing data alone.
pub async fn seed(app: &App) -> Result<()> {
    for &(code, name, population, title) in DEMO {
        let lg_code = LgCode::parse(code)?;
        let municipality = Municipality { prefecture: lg_code.prefecture().to_string(), lg_code: lg_code.clone(), name: name.to_string(), population };
        app.add_municipality(&municipality).await?;
        if app.db.module_config(&lg_code, "guestbook").await?.is_empty() {
            let settings = BTreeMap::from([("title".to_string(), title.to_string())]);
            app.set_module_config(&lg_code, "guestbook", settings).await?;
        }
    }
    Ok(())
}

pub fn codes() -> impl Iterator<Item = &'static str> {
    DEMO.iter().map(|d| d.0)
}
