//! Resident and staff pages, in Japanese, server-rendered.

use crate::rules::{self, Month};
use crate::{all_claims, payment_month_param, payment_run, ClaimState};
use nukisashi_sdk::escape_html as h;
use nukisashi_sdk::prelude::*;

const STYLE: &str = "*{box-sizing:border-box}input,select,textarea{max-width:100%}.scroll{overflow-x:auto;max-width:100%}body{overflow-wrap:anywhere}nav.account{text-align:right;margin-bottom:.5rem}form.signout{display:inline}body{font-family:system-ui,sans-serif;max-width:60rem;margin:auto;padding:1rem;line-height:1.6;color:#1a1a1a}\
table{border-collapse:collapse;width:100%}th,td{border:1px solid #767676;padding:.3rem .5rem;text-align:left}.num{text-align:right}\
label{display:block;margin-top:.5rem}input,button{font-size:1rem;padding:.3rem}button{background:#0b57d0;color:#fff;border:0;border-radius:4px;padding:.4rem 1rem}";

fn layout(req: &Request, title: &str, body: &str) -> Response {
    Response::html(format!(
        "<!doctype html>\n<html lang=\"ja\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body>{account}<main>{body}</main></body></html>",
        h(title),
        account = identity::account_bar(req)
    ))
}

fn yen(n: i64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{out}円")
}

pub fn home(req: &Request) -> Result<Response> {
    let base = h(req.base_path());
    let town = context::municipality().name;
    let office = config::get_or("office", "子育て支援課");
    let phone = config::get_or("phone", "");
    let body = format!(
        "<h1>{town} 児童手当</h1>\
         <p>高校生年代まで（18歳到達後最初の3月31日まで）の児童を養育している方に支給します。所得制限はありません。</p>\
         <div class=\"scroll\"><table><caption>月額（児童1人あたり）</caption><thead><tr><th scope=\"col\">児童の年齢</th><th scope=\"col\">第1子・第2子</th><th scope=\"col\">第3子以降</th></tr></thead>\
         <tbody><tr><td>3歳未満</td><td class=\"num\">{u3}</td><td class=\"num\">{t}</td></tr><tr><td>3歳以上高校生年代まで</td><td class=\"num\">{s}</td><td class=\"num\">{t}</td></tr></tbody></table></div>\
         <p>大学生年代（22歳到達後最初の3月31日まで）の子を養育し生計費を負担している場合、その子も第1子・第2子として数えます。支給は偶数月（2・4・6・8・10・12月）に、前2か月分です。</p>\
         <h2>支給額の試算</h2><form method=\"get\" action=\"{base}/calculate\">\
         <label for=\"births\">高校生年代までの子の生年月日（カンマ区切り、例: 2016-05-01,2020-01-10）</label><input id=\"births\" name=\"births\" size=\"40\" required>\
         <label for=\"supported\">養育・生計費を負担している大学生年代の子の生年月日（任意）</label><input id=\"supported\" name=\"supported\" size=\"40\">\
         <p><button type=\"submit\">試算する</button></p></form>\
         <p>認定請求は、出生・転入の翌日から15日以内に行うと、その月の翌月分から支給されます。お問い合わせ：{town} {office} {phone}</p>",
        town = h(&town),
        office = h(&office),
        phone = h(&phone),
        u3 = yen(rules::UNDER_THREE),
        s = yen(rules::STANDARD),
        t = yen(rules::THIRD_OR_LATER),
    );
    Ok(layout(req, &format!("{town} 児童手当"), &body))
}

pub fn staff(req: &Request) -> Result<Response> {
    let token = req.form_token_field();
    let town = context::municipality().name;
    // The next payment, or the one the clerk chose.
    let payment: Month = payment_month_param(req)?;
    let run = payment_run(payment)?;
    let claims = all_claims()?;
    let claim_rows: String = claims
        .iter()
        .map(|c| {
            let state = match &c.state {
                ClaimState::Active => "支給中".to_string(),
                ClaimState::Ended { last_month, reason } => format!("消滅（{last_month}分まで、{}）", h(reason)),
            };
            format!("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{state}</td></tr>", c.id, h(&c.claimant), h(&c.claimant_name), c.children.len(), c.first_month)
        })
        .collect();
    let claim_rows = if claim_rows.is_empty() { "<tr><td colspan=\"6\">まだ認定はありません。</td></tr>".to_string() } else { claim_rows };
    let run_rows: String = run.rows.iter().map(|r| format!("<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>", r.claim_id, h(&r.claimant), h(&r.claimant_name), yen(r.amount))).collect();
    let run_rows = if run_rows.is_empty() { "<tr><td colspan=\"4\">今回の支払対象はありません。</td></tr>".to_string() } else { run_rows };
    let body = format!(
        "<h1>{town} 児童手当 管理</h1>\
         <h2>支払一覧（{payment}支払、{a}・{b}分）</h2>\
         <form method=\"get\" action=\"{base}/staff\"><label for=\"month\">支払月（偶数月）</label><input id=\"month\" name=\"month\" type=\"month\" value=\"{payment}\" required> <button type=\"submit\">表示する</button></form>\
         <p><a href=\"{base}/staff/payment-run.csv?month={payment}\" download>この支払一覧をCSVでダウンロードする</a></p><div class=\"scroll\"><table><thead><tr><th scope=\"col\">認定番号</th><th scope=\"col\">宛名番号</th><th scope=\"col\">受給者</th><th scope=\"col\">支払額</th></tr></thead><tbody>{run_rows}</tbody>\
         <tfoot><tr><th scope=\"row\" colspan=\"3\">合計（{n}人）</th><td class=\"num\">{total}</td></tr></tfoot></table></div>\
         <h2>認定請求を受け付ける</h2><form method=\"post\" action=\"{base}/staff/claims\">{token}\
         <label for=\"claimant\">請求者の宛名番号</label><input id=\"claimant\" name=\"claimant\" inputmode=\"numeric\" required>\
         <label for=\"filed\">請求日</label><input id=\"filed\" name=\"filed\" type=\"date\">\
         <label for=\"event\">出生・転入日（あれば）</label><input id=\"event\" name=\"event\" type=\"date\">\
         <label for=\"supported\">養育している大学生年代の子の宛名番号（カンマ区切り）</label><input id=\"supported\" name=\"supported\">\
         <p><button type=\"submit\">認定する</button></p></form>\
         <h2>認定</h2><div class=\"scroll\"><table><thead><tr><th scope=\"col\">認定番号</th><th scope=\"col\">宛名番号</th><th scope=\"col\">請求者</th><th scope=\"col\">児童数</th><th scope=\"col\">支給開始</th><th scope=\"col\">状態</th></tr></thead><tbody>{claim_rows}</tbody></table></div>",
        town = h(&town),
        base = h(req.base_path()),
        a = run.covers[0],
        b = run.covers[1],
        n = run.recipients,
        total = yen(run.total),
    );
    Ok(layout(req, "児童手当 管理", &body))
}
