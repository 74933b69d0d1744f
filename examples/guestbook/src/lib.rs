//! The smallest complete Nukisashi module: a guestbook.
//!
//! - `GET /`            an HTML page with the entries and a form (title from config)
//! - `GET /entries`     the entries as JSON, newest first
//! - `POST /entries`    add an entry (JSON `{"name": "...", "message": "..."}` or a form post)
//! - `GET /entries/:id` one entry
//!
//! Entries live in the module's key-value store, which the host scopes to the municipality:
//! 千代田区's guestbook and 札幌市's never share an entry.

use nukisashi_sdk::escape_html;
use nukisashi_sdk::prelude::*;

const MAX_NAME_CHARS: usize = 100;
const MAX_MESSAGE_CHARS: usize = 2000;

#[derive(Serialize, Deserialize)]
struct Entry {
    id: u64,
    name: String,
    message: String,
}

#[derive(Deserialize)]
struct NewEntry {
    name: String,
    message: String,
}

fn routes() -> Router {
    Router::new()
        .get("/", page)
        .get("/entries", list)
        .post("/entries", add)
        .get("/entries/:id", show)
}

nukisashi_sdk::module!(routes);

fn title() -> String {
    config::get("title").unwrap_or_else(|| format!("{} ゲストブック", context::municipality().name))
}

fn entries() -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for key in kv::all_keys("entry/")? {
        if let Some(entry) = kv::get_json::<Entry>(&key)? {
            out.push(entry);
        }
    }
    out.reverse();
    Ok(out)
}

fn list(_: &Request) -> Result<Response> {
    Ok(Response::json(&entries()?))
}

fn show(req: &Request) -> Result<Response> {
    let id: u64 = req
        .param("id")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::bad_request("entry ids are whole numbers"))?;
    match kv::get_json::<Entry>(&entry_key(id))? {
        Some(entry) => Ok(Response::json(&entry)),
        None => Err(Error::not_found(format!("no entry {id}"))),
    }
}

fn add(req: &Request) -> Result<Response> {
    let new = if req.is_form() {
        let form = req.form()?;
        let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
        NewEntry { name: field("name"), message: field("message") }
    } else {
        req.json::<NewEntry>()?
    };
    validate(&new)?;
    // Atomic: concurrent posts never get the same id.
    let id = kv::increment("last-id", 1)? as u64;
    let entry = Entry { id, name: new.name, message: new.message };
    kv::set_json(&entry_key(id), &entry)?;
    log::info(&format!("guestbook entry {id} added"));
    Ok(Response::after_post(req, "/", 201, &entry))
}

fn validate(new: &NewEntry) -> Result<()> {
    let name = new.name.trim();
    if name.is_empty() || new.message.trim().is_empty() {
        return Err(Error::unprocessable("both name and message are required"));
    }
    if name.chars().count() > MAX_NAME_CHARS || new.message.chars().count() > MAX_MESSAGE_CHARS {
        return Err(Error::unprocessable(format!(
            "name is limited to {MAX_NAME_CHARS} characters and message to {MAX_MESSAGE_CHARS}"
        )));
    }
    Ok(())
}

/// Zero-padded so that keys sort in insertion order.
fn entry_key(id: u64) -> String {
    format!("entry/{id:012}")
}

fn page(req: &Request) -> Result<Response> {
    let title = escape_html(&title());
    let town = context::municipality();
    let items: String = entries()?
        .iter()
        .map(|e| format!("<li><strong>{}</strong>: {}</li>", escape_html(&e.name), escape_html(&e.message)))
        .collect();
    let action = escape_html(&format!("{}/entries", req.base_path()));
    Ok(Response::html(format!(
        r#"<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title></head>
<body><main>
<h1>{title}</h1>
<p>{town} ({code})</p>
<form method="post" action="{action}">{token}
<p><label for="name">お名前</label> <input id="name" name="name" required maxlength="{MAX_NAME_CHARS}"></p>
<p><label for="message">メッセージ</label> <textarea id="message" name="message" required maxlength="{MAX_MESSAGE_CHARS}"></textarea></p>
<p><button type="submit">記帳する</button></p>
</form>
<ul>{items}</ul>
</main></body></html>"#,
        town = escape_html(&town.name),
        code = town.lg_code,
        token = req.form_token_field(),
    )))
}

// Run natively with `cargo test -p guestbook`: the SDK answers the platform's calls from
// an in-memory platform set up per test.
#[cfg(test)]
mod tests {
    use super::routes;
    use nukisashi_sdk::testing::TestPlatform;
    use serde_json::{json, Value};

    #[test]
    fn an_entry_posted_is_listed_and_logged() {
        let platform = TestPlatform::new();
        let posted = platform.post_json(routes, "/entries", &json!({"name": "山田", "message": "こんにちは"}));
        assert_eq!(posted.status, 201, "{:?}", posted.body_text());
        let listed: Vec<Value> = platform.get(routes, "/entries").body_json().unwrap();
        assert_eq!(listed, vec![json!({"id": 1, "name": "山田", "message": "こんにちは"})]);
        assert_eq!(platform.kv_keys(), ["entry/000000000001", "last-id"]);
        assert_eq!(platform.logs(), ["info: guestbook entry 1 added"]);
    }

    #[test]
    fn the_page_uses_the_municipalitys_title() {
        let platform = TestPlatform::new();
        platform.municipality("011002", "札幌市", "北海道").config("title", "市民の声");
        let page = platform.get(routes, "/");
        let html = page.body_text().unwrap();
        assert!(html.contains("<h1>市民の声</h1>") && html.contains("札幌市 (011002)"), "{html}");
    }

    #[test]
    fn without_the_kv_grant_the_module_says_so() {
        let platform = TestPlatform::new();
        platform.grant_only(&[]);
        let refused = platform.get(routes, "/entries");
        assert_eq!(refused.status, 403);
        assert!(refused.body_text().unwrap().contains("`kv` capability"), "{:?}", refused.body_text());
    }

    #[test]
    fn an_empty_message_is_refused_and_nothing_is_stored() {
        let platform = TestPlatform::new();
        let refused = platform.post_form(routes, "/entries", &[("name", "山田"), ("message", " ")]);
        assert_eq!(refused.status, 422);
        assert!(platform.kv_keys().is_empty());
    }
}
