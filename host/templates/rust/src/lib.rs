//! {{name}}: a Nukisashi module.
//!
//! - `GET /`           a page with the municipality's title (from config) and the messages
//! - `GET /entries`   the messages as JSON
//! - `POST /entries`  add one: JSON `{"text": "..."}` or a form post
//!
//! Build: `cargo build --target wasm32-wasip2 --release`; serve it with `nukisashi dev`;
//! test it natively with `cargo test`.

use nukisashi_sdk::escape_html;
use nukisashi_sdk::prelude::*;

const MAX_TEXT_CHARS: usize = 500;

#[derive(Serialize, Deserialize)]
struct Message {
    id: u64,
    text: String,
}

#[derive(Deserialize)]
struct NewMessage {
    text: String,
}

fn routes() -> Router {
    Router::new().get("/", page).get("/entries", list).post("/entries", add)
}

nukisashi_sdk::module!(routes);

/// The municipality's title (each municipality configures its own).
fn title() -> String {
    config::get("title").unwrap_or_else(|| "ようこそ".to_string())
}

/// Kept in this municipality's own key-value store: other municipalities never see them.
fn messages() -> Result<Vec<Message>> {
    let mut out = Vec::new();
    for key in kv::all_keys("message/")? {
        if let Some(message) = kv::get_json::<Message>(&key)? {
            out.push(message);
        }
    }
    Ok(out)
}

fn list(_: &Request) -> Result<Response> {
    Ok(Response::json(&messages()?))
}

fn add(req: &Request) -> Result<Response> {
    let new = if req.is_form() {
        let form = req.form()?;
        NewMessage { text: form.iter().find(|(k, _)| k == "text").map(|(_, v)| v.clone()).unwrap_or_default() }
    } else {
        req.json::<NewMessage>()?
    };
    let text = new.text.trim();
    if text.is_empty() || text.chars().count() > MAX_TEXT_CHARS {
        return Err(Error::unprocessable(format!("text is required, at most {MAX_TEXT_CHARS} characters")));
    }
    // Atomic: two requests at once never get the same id.
    let id = kv::increment("last-id", 1)? as u64;
    let message = Message { id, text: text.to_string() };
    kv::set_json(&format!("message/{id:012}"), &message)?;
    log::info(&format!("message {id} added"));
    Ok(Response::after_post(req, "/", 201, &message))
}

fn page(req: &Request) -> Result<Response> {
    let town = context::municipality();
    let items: String = messages()?.iter().map(|m| format!("<li>{}</li>", escape_html(&m.text))).collect();
    let action = escape_html(&format!("{}/entries", req.base_path()));
    Ok(Response::html(format!(
        r#"<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title></head>
<body><main>
<h1>{title}</h1>
<p>{town}</p>
<form method="post" action="{action}">{token}
<p><label for="text">メッセージ</label> <input id="text" name="text" required maxlength="{MAX_TEXT_CHARS}"></p>
<p><button type="submit">送信</button></p>
</form>
<ul>{items}</ul>
</main></body></html>"#,
        title = escape_html(&title()),
        town = escape_html(&town.name),
        token = req.form_token_field(),
    )))
}

// `cargo test` runs these natively: the SDK answers every platform call from an in-memory
// platform set up per test (kv, config, identity, registry, events, logs).
#[cfg(test)]
mod tests {
    use super::routes;
    use nukisashi_sdk::testing::TestPlatform;
    use serde_json::{Value, json};

    #[test]
    fn a_message_posted_is_listed() {
        let platform = TestPlatform::new();
        let posted = platform.post_json(routes, "/entries", &json!({"text": "こんにちは"}));
        assert_eq!(posted.status, 201, "{:?}", posted.body_text());
        let listed: Vec<Value> = platform.get(routes, "/entries").body_json().unwrap();
        assert_eq!(listed, vec![json!({"id": 1, "text": "こんにちは"})]);
        assert_eq!(platform.logs(), ["info: message 1 added"]);
    }

    #[test]
    fn the_page_greets_with_the_municipalitys_setting() {
        let platform = TestPlatform::new();
        platform.municipality("011002", "札幌市", "北海道").config("title", "いらっしゃい");
        let page = platform.get(routes, "/");
        let html = page.body_text().unwrap();
        assert!(html.contains("<h1>いらっしゃい</h1>") && html.contains("札幌市"), "{html}");
    }

    #[test]
    fn an_empty_message_is_refused_and_nothing_is_stored() {
        let platform = TestPlatform::new();
        let refused = platform.post_json(routes, "/entries", &json!({"text": "  "}));
        assert_eq!(refused.status, 422);
        assert!(platform.kv_keys().is_empty());
    }
}
