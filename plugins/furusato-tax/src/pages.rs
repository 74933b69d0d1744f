//! The HTML pages: Japanese first, plain server-rendered HTML with labels, headings and
//! table headers; every municipality detail from context and config.

use crate::date::Date;
use crate::store::{self, Donation, Onestop, OnestopStatus};
use crate::{offered_gifts, purposes, report, rules, visible_donation};
use nukisashi_sdk::escape_html as h;
use nukisashi_sdk::prelude::*;

const STYLE: &str = "*{box-sizing:border-box}input,select,textarea{max-width:100%}.scroll{overflow-x:auto;max-width:100%}body{overflow-wrap:anywhere}nav.account{text-align:right;margin-bottom:.5rem}form.signout{display:inline}body{font-family:system-ui,sans-serif;max-width:60rem;margin:auto;padding:1rem;line-height:1.6;color:#1a1a1a}\
table{border-collapse:collapse;width:100%}th,td{border:1px solid #767676;padding:.3rem .5rem;text-align:left}\
label{display:block;margin-top:.5rem}input,select,button{font-size:1rem;padding:.3rem}button{background:#0b57d0;color:#fff;border:0;border-radius:4px;padding:.4rem 1rem}\
.warn{color:#a50e0e}.num{text-align:right}@media print{nav,form,.noprint{display:none}}";

fn town() -> String {
    context::municipality().name
}

fn layout(req: &Request, title: &str, body: &str) -> Response {
    Response::html(format!(
        "<!doctype html>\n<html lang=\"ja\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head><body>{account}<main>{body}</main></body></html>",
        title = h(title),
        account = identity::account_bar(req)
    ))
}

fn yen(n: i64) -> String {
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{}{out}円", if n < 0 { "-" } else { "" })
}

fn contact() -> String {
    let office = config::get_or("office", "ふるさと納税担当");
    let phone = config::get_or("phone", "");
    let email = config::get("email").map(|e| format!("　メール {}", h(&e))).unwrap_or_default();
    format!("{}　{}　電話 {}{email}", h(&town()), h(&office), h(&phone))
}

pub fn catalogue(req: &Request) -> Result<Response> {
    let token = req.form_token_field();
    let base = h(req.base_path());
    let gifts = offered_gifts()?;
    let rows: String = gifts
        .iter()
        .map(|g| {
            let stock = if g.stock > 0 { format!("{}", g.stock) } else { "<span class=\"warn\">品切れ</span>".into() };
            format!(
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{stock}</td></tr>",
                h(&g.gift.title), h(&g.gift.supplier), yen(g.gift.min_donation), h(g.basis_label)
            )
        })
        .collect();
    let options: String = gifts.iter().filter(|g| g.stock > 0).map(|g| format!("<option value=\"{}\">{}（{}以上）</option>", g.gift.id, h(&g.gift.title), yen(g.gift.min_donation))).collect();
    let gift_list = if gifts.is_empty() {
        "<p>現在、提供中の返礼品はありません。返礼品を希望しない寄附は、いつでも申し込めます。</p>".to_string()
    } else {
        format!("<div class=\"scroll\"><table><caption>提供中の返礼品</caption><thead><tr><th scope=\"col\">返礼品</th><th scope=\"col\">提供事業者</th><th scope=\"col\">必要寄附額</th><th scope=\"col\">地場産品の類型</th><th scope=\"col\">在庫</th></tr></thead><tbody>{rows}</tbody></table></div>")
    };
    let purposes: String = purposes().iter().map(|p| format!("<option>{}</option>", h(p))).collect();
    let body = format!(
        "<h1>{town} ふるさと納税</h1>\
         <p>{town}への寄附をお寄せください。寄附金は選んだ使い道に活用します。<a href=\"{base}/simulator\">控除上限額のめやすを試算する</a></p>\
         <h2>返礼品</h2>{gift_list}\
         <h2>寄附の申込み（ログインが必要です）</h2>\
         <form method=\"post\" action=\"{base}/donations\">{token}\
         <label for=\"amount\">寄附額（円）</label><input id=\"amount\" name=\"amount\" inputmode=\"numeric\" required>\
         <label for=\"gift_id\">返礼品</label><select id=\"gift_id\" name=\"gift_id\"><option value=\"\">返礼品を希望しない</option>{options}</select>\
         <label for=\"purpose\">使い道</label><select id=\"purpose\" name=\"purpose\">{purposes}</select>\
         <label for=\"name\">氏名</label><input id=\"name\" name=\"name\" autocomplete=\"name\" required>\
         <label for=\"postal_code\">郵便番号</label><input id=\"postal_code\" name=\"postal_code\" autocomplete=\"postal-code\" required>\
         <label for=\"address\">住所</label><input id=\"address\" name=\"address\" autocomplete=\"street-address\" required size=\"50\">\
         <label for=\"phone\">電話番号</label><input id=\"phone\" name=\"phone\" autocomplete=\"tel\" required>\
         <label for=\"email\">メールアドレス</label><input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"email\">\
         <p><button type=\"submit\">寄附を申し込む</button></p></form>\
         <footer><p>お問い合わせ：{contact}</p></footer>",
        town = h(&town()),
        contact = contact()
    );
    Ok(layout(req, &format!("{} ふるさと納税", town()), &body))
}

pub fn simulator(req: &Request) -> Result<Response> {
    let base = h(req.base_path());
    let q = |k: &str| h(&req.query_param(k).unwrap_or_default());
    let result = if req.query_param("total_income").is_some() {
        let (household, donation) = crate::household_from(req)?;
        let figures = rules::estimate(household);
        let limit = rules::full_deduction_limit(figures);
        let d = rules::deductions(donation.unwrap_or(limit), figures);
        format!(
            "<h2>試算結果</h2><p>全額控除される寄附額のめやす：<strong>{}</strong>（所得税率 {}%、住民税所得割額 {}）</p>\
             <div class=\"scroll\"><table><caption>寄附額 {} の場合の控除額</caption><tbody>\
             <tr><th scope=\"row\">所得税の控除</th><td class=\"num\">{}</td></tr><tr><th scope=\"row\">住民税（基本分）</th><td class=\"num\">{}</td></tr>\
             <tr><th scope=\"row\">住民税（特例分）</th><td class=\"num\">{}</td></tr><tr><th scope=\"row\">自己負担額</th><td class=\"num\">{}</td></tr></tbody></table></div>\
             <p>令和6年分の所得控除額をもとにした概算です。実際の控除額はお住まいの市区町村の課税内容によります。</p>",
            yen(limit), rules::income_tax_rate_percent(figures.taxable_income), yen(figures.income_based_tax), yen(d.donation),
            yen(d.income_tax), yen(d.resident_basic), yen(d.resident_special), yen(d.self_burden)
        )
    } else {
        String::new()
    };
    let body = format!(
        "<h1>控除上限額シミュレーション</h1><form method=\"get\" action=\"{base}/simulator\">\
         <label for=\"total_income\">総所得金額等（給与所得控除後、円）</label><input id=\"total_income\" name=\"total_income\" inputmode=\"numeric\" value=\"{}\" required>\
         <label for=\"social_insurance\">社会保険料（円）</label><input id=\"social_insurance\" name=\"social_insurance\" inputmode=\"numeric\" value=\"{}\">\
         <label><input type=\"checkbox\" name=\"spouse\" value=\"on\"> 配偶者控除あり</label>\
         <label for=\"dependents\">一般の扶養親族の人数</label><input id=\"dependents\" name=\"dependents\" inputmode=\"numeric\" value=\"{}\">\
         <label for=\"specific_dependents\">特定扶養親族（19〜22歳）の人数</label><input id=\"specific_dependents\" name=\"specific_dependents\" inputmode=\"numeric\" value=\"{}\">\
         <label for=\"elderly_dependents\">老人扶養親族の人数</label><input id=\"elderly_dependents\" name=\"elderly_dependents\" inputmode=\"numeric\" value=\"{}\">\
         <label for=\"donation\">寄附予定額（円、空欄で上限額）</label><input id=\"donation\" name=\"donation\" inputmode=\"numeric\" value=\"{}\">\
         <p><button type=\"submit\">試算する</button></p></form>{result}<p><a href=\"{base}/\">返礼品一覧へ戻る</a></p>",
        q("total_income"), q("social_insurance"), q("dependents"), q("specific_dependents"), q("elderly_dependents"), q("donation")
    );
    Ok(layout(req, "控除上限額シミュレーション", &body))
}

/// 寄附金受領証明書: donor, municipality (name from context; address, contact and issuer
/// from config), date, amount, number. Printable.
pub fn receipt(req: &Request) -> Result<Response> {
    let id: u64 = req.param("id").and_then(|s| s.parse().ok()).ok_or_else(|| Error::bad_request("id must be a whole number"))?;
    let d: Donation = visible_donation(id)?;
    let town = context::municipality();
    let issuer = config::require("mayor")?;
    let address = config::require("address")?;
    let cancelled = if d.is_active() { String::new() } else { "<p class=\"warn\"><strong>この寄附は取り消されています。証明書としては使用できません。</strong></p>".into() };
    let body = format!(
        "<h1>寄附金受領証明書</h1>{cancelled}<p>証明書番号：{number}</p>\
         <p>{donor_address}<br>{donor} 様</p>\
         <p>下記のとおり寄附金を受領したことを証明します。この証明書は、寄附金控除（所得税・住民税）の申告に必要となりますので大切に保管してください。</p>\
         <div class=\"scroll\"><table><tbody><tr><th scope=\"row\">寄附受領日</th><td>{date}（{wareki}）</td></tr>\
         <tr><th scope=\"row\">寄附金額</th><td class=\"num\">{amount}</td></tr>\
         <tr><th scope=\"row\">使い道</th><td>{purpose}</td></tr></tbody></table></div>\
         <p>{issued}<br>{pref}{town}<br>{address}<br>{issuer}</p><p>お問い合わせ：{contact}</p>\
         <p class=\"noprint\"><button type=\"button\" onclick=\"print()\">印刷する</button></p>{onestop}",
        onestop = if d.is_active() { onestop_form(req, &d) } else { String::new() },
        number = h(&d.receipt_number),
        donor_address = h(&format!("〒{} {}", d.donor.postal_code, d.donor.address)),
        donor = h(&d.donor.name),
        date = d.date,
        wareki = d.date.wareki(),
        amount = yen(d.amount),
        purpose = h(&d.purpose),
        issued = Date::today().wareki(),
        pref = h(&town.prefecture),
        town = h(&town.name),
        address = h(&address),
        issuer = h(&issuer),
        contact = contact(),
    );
    Ok(layout(req, &format!("寄附金受領証明書 {}", d.receipt_number), &body))
}

/// The ワンストップ特例 application for one donation, prefilled from the donation.
fn onestop_form(req: &Request, d: &Donation) -> String {
    let token = req.form_token_field();
    let base = h(req.base_path());
    format!(
        "<section class=\"noprint\"><h2>ワンストップ特例の申請</h2>\
         <p>確定申告をしない給与所得者等で、本年の寄附先が5団体以内なら、申請書の提出で寄附金控除を受けられます（翌年1月10日必着）。</p>\
         <form method=\"post\" action=\"{base}/onestop\">{token}<input type=\"hidden\" name=\"donation_id\" value=\"{id}\">\
         <label for=\"os-name\">氏名</label><input id=\"os-name\" name=\"name\" value=\"{name}\" autocomplete=\"name\" required>\
         <label for=\"os-address\">住所</label><input id=\"os-address\" name=\"address\" value=\"{address}\" autocomplete=\"street-address\" required>\
         <label for=\"os-birth\">生年月日</label><input id=\"os-birth\" name=\"birth_date\" type=\"date\" required>\
         <label for=\"os-phone\">電話番号</label><input id=\"os-phone\" name=\"phone\" value=\"{phone}\" autocomplete=\"tel\" required>\
         <label for=\"os-number\">個人番号（マイナンバー、12桁）</label><input id=\"os-number\" name=\"individual_number\" inputmode=\"numeric\" autocomplete=\"off\" pattern=\"[0-9]{{12}}\" required>\
         <label for=\"os-count\">本年の寄附先の団体数</label><input id=\"os-count\" name=\"municipalities_this_year\" type=\"number\" min=\"1\" max=\"5\" value=\"1\" required>\
         <label><input type=\"checkbox\" name=\"declares_no_tax_return\" value=\"true\" required> 確定申告をする必要がない給与所得者等です</label>\
         <label><input type=\"checkbox\" name=\"declares_within_five\" value=\"true\" required> 本年の寄附先は5団体以内です</label>\
         <p><button type=\"submit\">申請する</button></p></form></section>",
        id = d.id,
        name = h(&d.donor.name),
        address = h(&d.donor.address),
        phone = h(&d.donor.phone),
    )
}

pub fn staff(req: &Request) -> Result<Response> {
    let token = req.form_token_field();
    let base = h(req.base_path());
    let year = Date::today().year;
    let r = report(year)?;
    let donations: String = store::all::<Donation>("donation")?
        .iter()
        .rev()
        .take(50)
        .map(|d| {
            let state = if d.is_active() { "受領" } else { "取消" };
            let cancel = if d.is_active() {
                format!(
                    "<form method=\"post\" action=\"{base}/staff/donations/{id}/cancel\">{token}<label>取消の理由 <input name=\"reason\" required></label>\
                     <label><input type=\"checkbox\" name=\"refunded\" value=\"true\"> 返金済み</label><button type=\"submit\">取り消す</button></form>",
                    id = d.id
                )
            } else {
                String::new()
            };
            format!("<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{state}</td><td><a href=\"{base}/donations/{}/receipt\">証明書</a>{cancel}</td></tr>", h(&d.receipt_number), d.date, h(&d.donor.name), yen(d.amount), d.id)
        })
        .collect();
    let queue: String = store::onestops()?
        .iter()
        .map(|o| {
            let action = if o.status == OnestopStatus::Voided {
                String::new()
            } else {
                format!(
                    "<form method=\"post\" action=\"{base}/staff/onestop/{id}/status\">{token}<label>新しい状態 <select name=\"status\">\
                     <option value=\"accepted\">受理</option><option value=\"incomplete\">不備</option><option value=\"voided\">無効</option></select></label>\
                     <label>理由（不備・無効のとき） <input name=\"reason\"></label><button type=\"submit\">変更する</button></form>",
                    id = o.id
                )
            };
            let mailed_change = if o.status == OnestopStatus::Voided {
                String::new()
            } else {
                format!(
                    "<details><summary>郵送の変更届を登録</summary><form method=\"post\" action=\"{base}/staff/onestop/{id}/change\">{token}\
                     <label>到着日 <input type=\"date\" name=\"arrived_on\" required></label><label>変更後の氏名 <input name=\"name\"></label>\
                     <label>変更後の住所 <input name=\"address\"></label><button type=\"submit\">登録する</button></form></details>",
                    id = o.id
                )
            };
            // What happened last (e.g. the 住所地's notice that voided it), and where the
            // 申告特例通知書 went.
            let last = o.history.last().map(|c| h(&c.reason)).unwrap_or_default();
            let notice = o.residence_notice.as_ref().map(|n| h(&n.detail)).unwrap_or_else(|| "—".into());
            let arrived = if o.by_mail { format!("{}（郵送）", o.received_on) } else { o.received_on.to_string() };
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{arrived}</td><td>{}<br><small>{last}</small></td><td>{notice}</td><td>{action}{mailed_change}</td></tr>",
                o.id,
                o.donation_id,
                h(&o.form.name),
                o.status.label()
            )
        })
        .collect();
    let mailed = format!(
        "<form method=\"post\" action=\"{base}/staff/onestop\">{token}\
         <p>紙の申請書は、到着した日で期限（翌年1月10日）を判断します。</p>\
         <label>寄附番号 <input name=\"donation_id\" inputmode=\"numeric\" required></label>\
         <label>到着日 <input type=\"date\" name=\"arrived_on\" required></label>\
         <label>氏名 <input name=\"name\" autocomplete=\"off\"></label><label>住所 <input name=\"address\" autocomplete=\"off\"></label>\
         <label>個人番号 <input name=\"individual_number\" inputmode=\"numeric\" autocomplete=\"off\"></label>\
         <label>生年月日 <input type=\"date\" name=\"birth_date\"></label><label>電話番号 <input name=\"phone\" autocomplete=\"off\"></label>\
         <label>本年の寄附先団体数 <input name=\"municipalities_this_year\" inputmode=\"numeric\"></label>\
         <label><input type=\"checkbox\" name=\"declares_no_tax_return\" value=\"on\"> 確定申告を行わない見込みの申告あり</label>\
         <label><input type=\"checkbox\" name=\"declares_within_five\" value=\"on\"> 寄附先が5団体以内の申告あり</label>\
         <button type=\"submit\">郵送の申請書を登録する</button></form>"
    );
    let donations = if donations.is_empty() { "<tr><td colspan=\"6\">まだ寄附はありません。</td></tr>".to_string() } else { donations };
    let queue = if queue.is_empty() { "<tr><td colspan=\"7\">まだ申請はありません。</td></tr>".to_string() } else { queue };
    let verdict = if r.within_fifty_percent { "5割以内" } else { "<span class=\"warn\">5割を超えています</span>" };
    let body = format!(
        "<h1>{town} ふるさと納税 管理</h1>\
         <h2>{year}年の実績</h2><p>寄附 {count}件 {total}、返礼品調達費 {proc}、送料 {ship}、その他経費 {other}、経費率 {ratio}.{ratio_frac}%（{verdict}）</p>\
         <h2>寄附</h2><div class=\"scroll\"><table><thead><tr><th scope=\"col\">証明書番号</th><th scope=\"col\">受領日</th><th scope=\"col\">寄附者</th><th scope=\"col\">金額</th><th scope=\"col\">状態</th><th scope=\"col\">操作</th></tr></thead><tbody>{donations}</tbody></table></div>\
         <h2>ワンストップ特例申請</h2><div class=\"scroll\"><table><thead><tr><th scope=\"col\">申請番号</th><th scope=\"col\">寄附番号</th><th scope=\"col\">氏名</th><th scope=\"col\">到着日</th><th scope=\"col\">状態</th><th scope=\"col\">住所地への通知</th><th scope=\"col\">操作</th></tr></thead><tbody>{queue}</tbody></table></div>\
         <h2>郵送で届いた申請書</h2>{mailed}",
        town = h(&town()),
        count = r.donation_count,
        total = yen(r.donations),
        proc = yen(r.gift_procurement),
        ship = yen(r.shipping),
        other = yen(r.other_costs),
        ratio = r.cost_ratio_permille / 10,
        ratio_frac = r.cost_ratio_permille % 10,
    );
    Ok(layout(req, "ふるさと納税 管理", &body))
}

#[cfg(test)]
mod tests {
    #[test]
    fn yen_groups_thousands() {
        assert_eq!(super::yen(1_234_567), "1,234,567円");
        assert_eq!(super::yen(100), "100円");
        assert_eq!(super::yen(-2_000), "-2,000円");
    }
}

/// 「自分の寄附」: the signed-in donor's donations, each with its receipt.
pub fn my_donations(req: &Request, mine: &[Donation]) -> Result<Response> {
    let base = h(req.base_path());
    let body = if mine.is_empty() {
        format!("<h1>自分の寄附</h1><p>まだ寄附はありません。</p><p><a href=\"{base}/\">返礼品と寄附の申込みへ</a></p>")
    } else {
        let rows: String = mine
            .iter()
            .map(|d| {
                let state = if d.is_active() { "受領" } else { "取消" };
                format!(
                    "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{state}</td><td><a href=\"{base}/donations/{}/receipt\">受領証明書</a></td></tr>",
                    h(&d.receipt_number), d.date, yen(d.amount), d.id
                )
            })
            .collect();
        format!(
            "<h1>自分の寄附</h1><div class=\"scroll\"><table><thead><tr><th scope=\"col\">証明書番号</th><th scope=\"col\">寄附日</th><th scope=\"col\">金額</th><th scope=\"col\">状態</th><th scope=\"col\">証明書</th></tr></thead><tbody>{rows}</tbody></table></div>\
             <p><a href=\"{base}/onestop/mine\">ワンストップ特例の申請</a></p>"
        )
    };
    Ok(layout(req, "自分の寄附", &body))
}

/// 「自分の申請」: the signed-in donor's one-stop applications and their status.
pub fn my_onestop(req: &Request, mine: &[Onestop]) -> Result<Response> {
    let base = h(req.base_path());
    let body = if mine.is_empty() {
        format!("<h1>ワンストップ特例の申請</h1><p>まだ申請はありません。</p><p><a href=\"{base}/donations/mine\">自分の寄附へ</a></p>")
    } else {
        let rows: String = mine
            .iter()
            .map(|o| {
                let reason = o.history.last().map(|c| h(&c.reason)).unwrap_or_default();
                format!("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{reason}</td></tr>", o.id, o.donation_id, o.received_on, o.status.label())
            })
            .collect();
        format!(
            "<h1>ワンストップ特例の申請</h1><div class=\"scroll\"><table><thead><tr><th scope=\"col\">申請番号</th><th scope=\"col\">寄附番号</th><th scope=\"col\">受付日</th><th scope=\"col\">状態</th><th scope=\"col\">連絡事項</th></tr></thead><tbody>{rows}</tbody></table></div>"
        )
    };
    Ok(layout(req, "ワンストップ特例の申請", &body))
}
