//! Resident and staff pages, Japanese first, server-rendered with labels for every input.

use crate::forms::{FieldKind, Prefill};
use crate::workflow::{Actor, Status, transition};
use crate::{Application, FormDef, all_applications, latest_form, latest_forms};
use nukisashi_sdk::escape_html as h;
use nukisashi_sdk::prelude::*;
use nukisashi_sdk::registry::Resident;

const STYLE: &str = "*{box-sizing:border-box}input,select,textarea{max-width:100%}.scroll{overflow-x:auto;max-width:100%}body{overflow-wrap:anywhere}nav.account{text-align:right;margin-bottom:.5rem}form.signout{display:inline}body{font-family:system-ui,sans-serif;max-width:60rem;margin:auto;padding:1rem;line-height:1.6;color:#1a1a1a}\
table{border-collapse:collapse;width:100%}th,td{border:1px solid #767676;padding:.3rem .5rem;text-align:left}\
label{display:block;margin-top:.6rem;font-weight:600}input,select,button{font-size:1rem;padding:.3rem}.req{color:#a50e0e}\
button{background:#0b57d0;color:#fff;border:0;border-radius:4px;padding:.4rem 1rem}.note{color:#444}";

fn layout(req: &Request, title: &str, body: &str) -> Response {
    Response::html(format!(
        "<!doctype html>\n<html lang=\"ja\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body>{account}<main>{body}</main></body></html>",
        h(title),
        account = identity::account_bar(req)
    ))
}

pub fn home(req: &Request) -> Result<Response> {
    let base = h(req.base_path());
    let town = context::municipality().name;
    let items: String = latest_forms()?
        .iter()
        .map(|f| format!("<li><a href=\"{base}/forms/{}\">{}</a><br><span class=\"note\">{}</span></li>", h(&f.id), h(&f.title), h(&f.description)))
        .collect();
    let notice = req.query_param("submitted").map(|no| format!("<p role=\"status\">申請を送信しました。受付番号は <strong>{}</strong> です。</p>", h(&no))).unwrap_or_default();
    let body = format!(
        "<h1>{town} 電子申請</h1>{notice}<h2>手続一覧</h2><ul>{items}</ul><p class=\"note\">お問い合わせ：{town} {} {}</p>",
        h(&config::get_or("office", "電子申請担当")),
        h(&config::get_or("phone", "")),
        town = h(&town)
    );
    Ok(layout(req, &format!("{town} 電子申請"), &body))
}

/// What the registry says about the signed-in resident, when it may be asked (the resident
/// is vouched for here and the municipality granted `resident-registry`).
fn prefill_source() -> Option<(String, Resident)> {
    let number = identity::addressee_number()?;
    let resident = registry::get(&number).ok().flatten()?;
    Some((number, resident))
}

/// What a file field accepts, in words.
fn file_note(accept: &[String]) -> String {
    let kinds: Vec<&str> = accept
        .iter()
        .map(|t| match t.as_str() {
            "application/pdf" => "PDF",
            "image/jpeg" => "JPEG",
            "image/png" => "PNG",
            other => other,
        })
        .collect();
    if kinds.is_empty() { "ファイルを選んでください".into() } else { format!("{} のファイルを選んでください", kinds.join("・")) }
}

/// The form's fields as labelled controls: `value` fills each in, `attached` names the
/// file already on record for a file field (which then need not be chosen again), and a
/// 宛名番号 vouched for by the sign-in (`vouched`) is shown read-only.
fn fields_html(form: &FormDef, value: impl Fn(&crate::forms::Field) -> String, attached: impl Fn(&str) -> Option<String>, vouched: bool) -> String {
    let mut fields = String::new();
    for f in &form.fields {
        let id = h(&f.name);
        let on_record = if f.kind == FieldKind::File { attached(&f.name) } else { None };
        let required = if f.required && on_record.is_none() { " required" } else { "" };
        let mark = if f.required { " <span class=\"req\">（必須）</span>" } else { "" };
        let value = h(&value(f));
        let control = match f.kind {
            FieldKind::Choice => {
                let options: String = f.choices.iter().map(|c| format!("<option{}>{}</option>", if h(c) == value { " selected" } else { "" }, h(c))).collect();
                format!("<select id=\"{id}\" name=\"{id}\"{required}><option value=\"\">選択してください</option>{options}</select>")
            }
            FieldKind::Date => format!("<input id=\"{id}\" name=\"{id}\" type=\"date\" value=\"{value}\"{required}>"),
            FieldKind::File => {
                let note = match &on_record {
                    Some(name) => format!("添付済み：{}（差し替えるときだけ選んでください）", name),
                    None => file_note(&f.accept),
                };
                format!(
                    "<input id=\"{id}\" name=\"{id}\" type=\"file\" accept=\"{}\"{required} aria-describedby=\"{id}-types\"><span class=\"note\" id=\"{id}-types\">{}</span>",
                    h(&f.accept.join(",")),
                    h(&note)
                )
            }
            // The 宛名番号 the identity provider vouched for is shown, not typed.
            _ if f.prefill == Some(Prefill::AddresseeNumber) && vouched => {
                format!("<input id=\"{id}\" name=\"{id}\" value=\"{value}\" size=\"40\" readonly aria-describedby=\"{id}-from-sign-in\"><span class=\"note\" id=\"{id}-from-sign-in\">ログイン情報から入力しています</span>")
            }
            _ => format!("<input id=\"{id}\" name=\"{id}\" value=\"{value}\" size=\"40\"{required}>"),
        };
        fields.push_str(&format!("<label for=\"{id}\">{}{mark}</label>{control}", h(&f.label)));
    }
    fields
}

pub fn form_page(req: &Request) -> Result<Response> {
    let token = req.form_token_field();
    let base = h(req.base_path());
    let form = latest_form(req.param("id").unwrap_or(""))?;
    let me = prefill_source();
    let prefill = |f: &crate::forms::Field| -> String {
        let (Some(p), Some((number, r))) = (f.prefill, &me) else { return String::new() };
        match p {
            Prefill::Name => r.name.clone(),
            Prefill::NameKana => r.name_kana.clone(),
            Prefill::BirthDate => r.birth_date.clone(),
            Prefill::PostalCode => r.postal_code.clone(),
            Prefill::Address => r.address.clone(),
            Prefill::AddresseeNumber => number.clone(),
        }
    };
    let fields = fields_html(&form, prefill, |_| None, me.is_some());
    let anonymous = identity::caller().role == nukisashi_sdk::identity::Role::Anonymous;
    // Before sign-in the form cannot be sent (a form with files is not kept across
    // sign-in): sign in first, then fill it in.
    let signed_in = if anonymous {
        let here = format!("{}/forms/{}", req.base_path(), form.id);
        format!("<p class=\"note\">申請にはログインが必要です。先に<a href=\"{}\">ログイン</a>してから入力してください。</p>", h(&identity::sign_in_url(&here)))
    } else if me.is_some() {
        "<p class=\"note\">住民記録から氏名・住所などを入力済みです。内容を確認してください。</p>".to_string()
    } else {
        String::new()
    };
    let submit = if anonymous { "<button type=\"submit\" disabled>送信する（ログインが必要です）</button>" } else { "<button type=\"submit\">送信する</button>" };
    let body = format!(
        "<h1>{}</h1><p>{}</p>{signed_in}<form method=\"post\" action=\"{base}/forms/{}\" enctype=\"multipart/form-data\">{token}{fields}<p>{submit}</p></form><p><a href=\"{base}/\">手続一覧へ戻る</a></p>",
        h(&form.title),
        h(&form.description),
        h(&form.id)
    );
    Ok(layout(req, &form.title, &body))
}

pub fn staff(req: &Request) -> Result<Response> {
    let token = req.form_token_field();
    let base = h(req.base_path());
    let mut apps: Vec<Application> = all_applications()?;
    apps.sort_by(|a, b| a.receipt_number.cmp(&b.receipt_number));
    let rows: String = apps
        .iter()
        .map(|a| {
            // Only the moves staff may make from where the application is now.
            let next: String = [Status::Received, Status::InReview, Status::Completed, Status::Returned, Status::Rejected]
                .into_iter()
                .filter(|to| transition(Actor::Staff, a.status, *to).is_ok())
                .map(|to| format!("<option value=\"{}\">{}</option>", to.key(), to.label()))
                .collect();
            let action = if next.is_empty() {
                if a.status == Status::Returned { "申請者の補正待ち".to_string() } else { String::new() }
            } else {
                format!(
                    "<form method=\"post\" action=\"{base}/staff/applications/{no}/status\">{token}<label>新しい状態 <select name=\"status\">{next}</select></label>\
                     <label>申請者への連絡（差し戻し・却下のとき） <input name=\"comment\"></label><button type=\"submit\">変更する</button></form>",
                    no = h(&a.receipt_number)
                )
            };
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{action}</td></tr>",
                h(&a.receipt_number),
                h(&a.form_title),
                a.submitted_on,
                h(a.values.get("name").map(String::as_str).unwrap_or("")),
                a.status.label()
            )
        })
        .collect();
    let rows = if rows.is_empty() { "<tr><td colspan=\"6\">まだ申請はありません。</td></tr>".to_string() } else { rows };
    let open = apps.iter().filter(|a| !a.status.is_final()).count();
    let body = format!(
        "<h1>電子申請 処理一覧</h1><p>未完了 {open}件</p><div class=\"scroll\"><table><thead><tr><th scope=\"col\">受付番号</th><th scope=\"col\">手続</th><th scope=\"col\">申請日</th><th scope=\"col\">申請者</th><th scope=\"col\">状態</th><th scope=\"col\">操作</th></tr></thead><tbody>{rows}</tbody></table></div>"
    );
    Ok(layout(req, "電子申請 処理一覧", &body))
}

/// 「自分の申請」: the signed-in resident's applications, their status and what staff said.
pub fn my_applications(req: &Request, mine: &[Application]) -> Result<Response> {
    let base = h(req.base_path());
    let body = if mine.is_empty() {
        format!("<h1>自分の申請</h1><p>まだ申請はありません。</p><p><a href=\"{base}/\">手続一覧へ</a></p>")
    } else {
        let rows: String = mine
            .iter()
            .map(|a| {
                let said = a.history.last().map(|e| h(&e.comment)).unwrap_or_default();
                format!(
                    "<tr><td><a href=\"{base}/applications/{no}\">{no}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{said}</td></tr>",
                    h(&a.form_title),
                    a.submitted_on,
                    a.status.label(),
                    no = h(&a.receipt_number)
                )
            })
            .collect();
        format!(
            "<h1>自分の申請</h1><div class=\"scroll\"><table><thead><tr><th scope=\"col\">受付番号</th><th scope=\"col\">手続</th><th scope=\"col\">申請日</th><th scope=\"col\">状態</th><th scope=\"col\">連絡事項</th></tr></thead><tbody>{rows}</tbody></table></div>\
             <p><a href=\"{base}/\">手続一覧へ</a></p>"
        )
    };
    Ok(layout(req, "自分の申請", &body))
}

/// One application for its applicant: where it stands, what staff said, and, when it was
/// returned, the correction form with what was sent before.
pub fn application(req: &Request, app: &Application) -> Result<Response> {
    let token = req.form_token_field();
    let base = h(req.base_path());
    let history: String = app
        .history
        .iter()
        .map(|e| format!("<li>{} {}{}</li>", e.on, e.to.label(), if e.comment.is_empty() { String::new() } else { format!("：{}", h(&e.comment)) }))
        .collect();
    let correction = if app.status == Status::Returned && app.applicant == identity::caller().subject {
        let form: Option<FormDef> = kv::get_json(&crate::form_key(&app.form_id, app.form_version))?;
        match form {
            Some(form) => {
                let fields = fields_html(&form, |f| app.values.get(&f.name).cloned().unwrap_or_default(), |name| app.files.get(name).map(|i| i.name.clone()), app.addressee_number.is_some());
                format!(
                    "<h2>補正して再提出する</h2><p>職員からの連絡を確かめて、内容を直してください。</p>\
                     <form method=\"post\" action=\"{base}/applications/{no}\" enctype=\"multipart/form-data\">{token}{fields}<p><button type=\"submit\">再提出する</button></p></form>",
                    no = h(&app.receipt_number)
                )
            }
            None => String::new(),
        }
    } else {
        String::new()
    };
    let body = format!(
        "<h1>{title}</h1><p>受付番号 {no}　状態：<strong>{status}</strong></p><h2>経過</h2><ul>{history}</ul>{correction}<p><a href=\"{base}/applications/mine\">自分の申請へ</a></p>",
        title = h(&app.form_title),
        no = h(&app.receipt_number),
        status = app.status.label()
    );
    Ok(layout(req, &format!("申請 {}", app.receipt_number), &body))
}
