//! The pages residents see, on a phone: every page of the three business modules, the
//! guestbook and sign-in opened in headless Chromium 390 px wide, checked for horizontal
//! overflow and with axe-core (WCAG 2 A/AA rules; serious and critical violations fail),
//! each kept as a screenshot in `target/console-screenshots/phone-*.png` for review.

use nukisashi_e2e::browser::Browser;
use nukisashi_e2e::{Backend, HostSpec, business_plugin, module};
use serde_json::Value;

const CHIYODA: &str = "131016";
const PHONE_WIDTH: u32 = 390;

/// What is wrong with the page now: horizontal overflow, and axe's serious or critical
/// findings (rule id and the elements it names).
async fn problems(browser: &Browser, axe: &str) -> Vec<String> {
    let mut found = Vec::new();
    let widths = browser.client.execute("return [document.documentElement.scrollWidth, window.innerWidth];", vec![]).await.unwrap();
    let (scroll, inner) = (widths[0].as_u64().unwrap(), widths[1].as_u64().unwrap());
    if scroll > inner {
        found.push(format!("wider than the phone: {scroll} px in a {inner} px viewport"));
    }
    browser.client.execute(axe, vec![]).await.unwrap();
    let script = "const done = arguments[arguments.length - 1];
        axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })
           .then(r => done(r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
                 .map(v => v.id + ' (' + v.impact + '): ' + v.nodes.map(n => n.target.join(' ')).slice(0, 5).join(', '))))
           .catch(e => done(['axe failed: ' + e]));";
    let violations: Value = browser.client.execute_async(script, vec![]).await.unwrap();
    found.extend(violations.as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_string)));
    found
}

#[tokio::test]
async fn every_resident_page_fits_a_phone_and_passes_axe() {
    let Ok(axe_path) = std::env::var("NUKISASHI_AXE_JS") else {
        panic!("NUKISASHI_AXE_JS is not set: run the page tests through `cargo xtask test`, which fetches axe-core");
    };
    let axe = std::fs::read_to_string(axe_path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut spec = HostSpec::new(Backend::Sqlite, &dir.path().join("host"), &[]).await.unwrap();
    spec.plugins = vec![
        business_plugin(dir.path(), "furusato-tax"),
        business_plugin(dir.path(), "e-application"),
        business_plugin(dir.path(), "child-allowance"),
        module("guestbook"),
    ];
    let host = spec.start().unwrap();
    let browser = Browser::start().await.unwrap();
    browser.client.set_window_size(PHONE_WIDTH, 844).await.unwrap();
    let origin = |m: &str| host.origin(CHIYODA, m);

    // Signed in as a demo resident first (the demo provider's page is one of the pages).
    browser.client.goto(&format!("{}/donations/mine", origin("furusato-tax"))).await.unwrap();
    browser.wait_for("button[name=who][value^='resident:']").await.unwrap();
    let mut report = Vec::new();
    let mut check = async |name: &str, browser: &Browser| {
        browser.screenshot(&format!("phone-{name}")).await.unwrap();
        for problem in problems(browser, &axe).await {
            report.push(format!("{name}: {problem}"));
        }
    };
    // axe finds what it should: a field without a label on this very page.
    browser.client.execute("document.body.insertAdjacentHTML('beforeend', '<input id=\"unlabelled\">');", vec![]).await.unwrap();
    let planted = problems(&browser, &axe).await;
    assert!(planted.iter().any(|p| p.starts_with("label") && p.contains("#unlabelled")), "axe reports an unlabelled field: {planted:?}");
    browser.client.refresh().await.unwrap();
    browser.wait_for("button[name=who][value^='resident:']").await.unwrap();
    check("sign-in-demo-provider", &browser).await;
    let chosen = browser.client.find(fantoccini::Locator::Css("button[name=who][value^='resident:']")).await.unwrap();
    let addressee_number = chosen.attr("value").await.unwrap().unwrap().trim_start_matches("resident:").to_string();
    chosen.click().await.unwrap();
    browser.wait_for_text("まだ寄附はありません").await.unwrap();

    let pages = [
        ("furusato-catalogue", format!("{}/", origin("furusato-tax"))),
        ("furusato-simulator", format!("{}/simulator", origin("furusato-tax"))),
        ("furusato-my-donations", format!("{}/donations/mine", origin("furusato-tax"))),
        ("furusato-my-onestop", format!("{}/onestop/mine", origin("furusato-tax"))),
        ("e-application-home", format!("{}/", origin("e-application"))),
        ("e-application-mine", format!("{}/applications/mine", origin("e-application"))),
        ("child-allowance-home", format!("{}/", origin("child-allowance"))),
        ("guestbook", format!("{}/", origin("guestbook"))),
        ("sign-out", format!("{}/.nukisashi/signout", origin("furusato-tax"))),
        ("not-found", format!("{}/", origin("no-such-module"))),
    ];
    for (name, url) in &pages {
        browser.client.goto(url).await.unwrap();
        check(name, &browser).await;
    }
    // Every form the e-application home page offers, signed in there too: a signed-in page
    // of that module hands the municipality's session over without asking again.
    browser.client.goto(&format!("{}/applications/mine", origin("e-application"))).await.unwrap();
    browser.wait_for_text("まだ申請はありません").await.unwrap();
    browser.client.goto(&format!("{}/", origin("e-application"))).await.unwrap();
    let links = browser.client.find_all(fantoccini::Locator::Css("main a[href*='/forms/']")).await.unwrap();
    let mut forms = Vec::new();
    for link in links {
        forms.push(link.attr("href").await.unwrap().unwrap());
    }
    assert!(!forms.is_empty(), "the e-application home page lists its forms");
    let mut prefilled = 0;
    for (i, href) in forms.iter().enumerate() {
        browser.client.goto(&format!("{}{href}", origin("e-application"))).await.unwrap();
        check(&format!("e-application-form-{i}"), &browser).await;
        // The resident never types the 宛名番号 the sign-in already vouched for.
        let fixed = browser.client.find_all(fantoccini::Locator::Css(&format!("input[readonly][value='{addressee_number}']"))).await.unwrap();
        prefilled += fixed.len();
    }
    assert!(prefilled > 0, "a form asking for the 宛名番号 shows the signed-in resident's ({addressee_number}), read-only");
    assert!(report.is_empty(), "pages that fail on a phone or for accessibility:\n{}", report.join("\n"));
}

/// Fills the fields (selects included) of the form whose action ends in `action`, and
/// sends it with its own button.
async fn send_form(browser: &Browser, action: &str, fields: &[(&str, &str)]) {
    let form = format!("form[action$='{action}']");
    for (name, value) in fields {
        fill(browser, &format!("{form} [name={name}]"), value).await;
    }
    browser.client.find(fantoccini::Locator::Css(&format!("{form} button[type=submit]"))).await.unwrap().click().await.unwrap();
}

/// Waits until the table row that starts with the cell `first` has a cell `cell` (a
/// status the page shows once the change it was sent is made).
async fn wait_for_row(browser: &Browser, first: &str, cell: &str) {
    let xpath = format!("//tr[td[1][normalize-space()='{first}']]/td[normalize-space()='{cell}']");
    let found = browser.client.wait().at_most(std::time::Duration::from_secs(15)).for_element(fantoccini::Locator::XPath(&xpath)).await;
    assert!(found.is_ok(), "no row {first} showing {cell}: {}", browser.wait_for_text("").await.unwrap_or_default());
}

/// The text of `url` fetched by the page itself (same origin, with its cookies).
async fn fetch_in_page(browser: &Browser, url: &str) -> String {
    let script = "const done = arguments[arguments.length - 1];
        fetch(arguments[0], { credentials: 'same-origin' }).then(r => r.text()).then(done).catch(e => done('fetch failed: ' + e));";
    browser.client.execute_async(script, vec![Value::String(url.into())]).await.unwrap().as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_clerk_signs_in_once_and_works_the_staff_pages_in_the_browser() {
    let axe = std::fs::read_to_string(std::env::var("NUKISASHI_AXE_JS").expect("run through `cargo xtask test`, which fetches axe-core")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut spec = HostSpec::new(Backend::Sqlite, &dir.path().join("host"), &[]).await.unwrap();
    spec.plugins = vec![
        business_plugin(dir.path(), "furusato-tax"),
        business_plugin(dir.path(), "e-application"),
        business_plugin(dir.path(), "child-allowance"),
    ];
    let host = spec.start().unwrap();
    let origin = |m: &str| host.origin(CHIYODA, m);
    let mut report = Vec::new();
    let mut check = async |name: &str, browser: &Browser| {
        browser.screenshot(name).await.unwrap();
        for problem in problems(browser, &axe).await {
            report.push(format!("{name}: {problem}"));
        }
    };

    // A resident's two donations, one with a one-stop application, made by an API client.
    let resident = host.token("resident", None);
    let donation = serde_json::json!({"amount": 30000, "name": "山田 花子", "postal_code": "100-0001", "address": "東京都千代田区千代田1-1", "phone": "03-0000-0000"});
    let mut donations = Vec::new();
    for _ in 0..2 {
        let r = host.client.post(format!("{}/donations", origin("furusato-tax"))).bearer_auth(&resident).json(&donation).send().await.unwrap();
        assert_eq!(r.status(), 201);
        donations.push(r.json::<Value>().await.unwrap());
    }
    // A donor living outside the platform (港区): the 申告特例通知書 goes by post, and the
    // application waits for the clerk.
    let onestop = serde_json::json!({"donation_id": donations[0]["id"], "name": "山田 花子", "address": "東京都港区芝公園1-5-25", "individual_number": "123456789018",
        "birth_date": "1980-04-01", "phone": "03-0000-0000", "declares_no_tax_return": true, "declares_within_five": true, "municipalities_this_year": 2});
    let r = host.client.post(format!("{}/onestop", origin("furusato-tax"))).bearer_auth(&resident).json(&onestop).send().await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let onestop_id = r.json::<Value>().await.unwrap()["id"].clone();

    // A resident on a phone applies for 児童手当 online, signing in from the form page.
    let phone = Browser::start().await.unwrap();
    phone.client.set_window_size(PHONE_WIDTH, 844).await.unwrap();
    let e_app = origin("e-application");
    phone.client.goto(&format!("{e_app}/forms/child-allowance-claim")).await.unwrap();
    phone.wait_for("button[type=submit][disabled]").await.unwrap();
    phone.wait_for("p.note a").await.unwrap().click().await.unwrap();
    phone.wait_for("button[name=who][value^='resident:']").await.unwrap().click().await.unwrap();
    fill(&phone, "select[name=pension]", "国民年金").await;
    let pdf = dir.path().join("confirmation.pdf");
    std::fs::write(&pdf, b"%PDF-1.4 from the phone\n").unwrap();
    phone.client.find(fantoccini::Locator::Css("input[type=file][name=confirmation]")).await.unwrap().send_keys(pdf.to_str().unwrap()).await.unwrap();
    phone.client.find(fantoccini::Locator::Css("form[action$='/forms/child-allowance-claim'] button[type=submit]")).await.unwrap().click().await.unwrap();
    phone.wait_for("p[role=status] strong").await.unwrap();
    let landed = phone.client.current_url().await.unwrap();
    let no = landed.query_pairs().find(|(k, _)| k == "submitted").map(|(_, v)| v.into_owned()).expect("the 受付番号 in the page's address");

    // The clerk signs in once, at the furusato staff page.
    let clerk = Browser::start().await.unwrap();
    clerk.client.goto(&format!("{}/staff", origin("furusato-tax"))).await.unwrap();
    clerk.wait_for("button[name=who][value=staff]").await.unwrap().click().await.unwrap();
    clerk.wait_for_text("ふるさと納税 管理").await.unwrap();
    check("staff-furusato", &clerk).await;
    // The one-stop queue: the application is accepted from its form.
    send_form(&clerk, &format!("/staff/onestop/{onestop_id}/status"), &[("status", "accepted")]).await;
    wait_for_row(&clerk, &onestop_id.to_string(), "受理").await;
    let mine: Value = host.client.get(format!("{}/onestop/mine", origin("furusato-tax"))).bearer_auth(&resident).send().await.unwrap().json().await.unwrap();
    assert_eq!(mine[0]["status"], "accepted", "{mine}");
    // The second donation is cancelled, with the reason.
    let cancel = format!("form[action$='/staff/donations/{}/cancel']", donations[1]["id"]);
    fill(&clerk, &format!("{cancel} input[name=reason]"), "二重の申込み").await;
    clerk.client.find(fantoccini::Locator::Css(&format!("{cancel} button"))).await.unwrap().click().await.unwrap();
    wait_for_row(&clerk, donations[1]["receipt_number"].as_str().unwrap(), "取消").await;
    let mine: Value = host.client.get(format!("{}/donations/mine", origin("furusato-tax"))).bearer_auth(&resident).send().await.unwrap().json().await.unwrap();
    let cancelled = mine.as_array().unwrap().iter().find(|d| d["id"] == donations[1]["id"]).unwrap().to_string();
    assert!(cancelled.contains("\"cancelled\"") && cancelled.contains("二重の申込み"), "the cancellation is recorded with its reason: {mine}");

    // A form whose token was taken out is refused, and changes nothing (the same-origin
    // check alone would have let it through).
    let other = format!("form[action$='/staff/donations/{}/cancel']", donations[0]["id"]);
    clerk.client.execute(&format!("document.querySelector(\"{other} input[name=nukisashi_form_token]\").remove();"), vec![]).await.unwrap();
    fill(&clerk, &format!("{other} input[name=reason]"), "トークンなし").await;
    clerk.client.find(fantoccini::Locator::Css(&format!("{other} button"))).await.unwrap().click().await.unwrap();
    clerk.wait_for_text("ページを開き直して").await.unwrap();
    let mine: Value = host.client.get(format!("{}/donations/mine", origin("furusato-tax"))).bearer_auth(&resident).send().await.unwrap().json().await.unwrap();
    assert!(!mine.to_string().contains("トークンなし"), "{mine}");

    // The e-application queue, without signing in again: received, in review, returned
    // with a comment.
    let url = format!("{e_app}/staff");
    clerk.client.goto(&url).await.unwrap();
    clerk.wait_for_text("電子申請 処理一覧").await.unwrap();
    assert_eq!(clerk.client.current_url().await.unwrap().as_str(), url, "no sign-in page on the way");
    check("staff-e-application", &clerk).await;
    let status = format!("/staff/applications/{no}/status");
    for (to, label) in [("received", "受付"), ("in-review", "処理中"), ("returned", "差し戻し")] {
        let comment = if to == "returned" { "年金の種類を確認してください" } else { "" };
        send_form(&clerk, &status, &[("status", to), ("comment", comment)]).await;
        wait_for_row(&clerk, &no, label).await;
    }

    // The resident reads it on the application's page and corrects it there.
    phone.client.goto(&format!("{e_app}/applications/{no}")).await.unwrap();
    phone.wait_for_text("年金の種類を確認してください").await.unwrap();
    check("phone-e-application-returned", &phone).await;
    send_form(&phone, &format!("/applications/{no}"), &[("pension", "厚生年金")]).await;
    let resent = phone.client.wait().at_most(std::time::Duration::from_secs(15)).for_element(fantoccini::Locator::XPath("//strong[normalize-space()='送信済']")).await;
    assert!(resent.is_ok(), "the corrected application is sent again");

    // The clerk completes it.
    clerk.client.refresh().await.unwrap();
    for (to, label) in [("received", "受付"), ("in-review", "処理中"), ("completed", "処理完了")] {
        send_form(&clerk, &status, &[("status", to)]).await;
        wait_for_row(&clerk, &no, label).await;
    }
    let queue = clerk.wait_for_text("処理完了").await.unwrap();
    assert!(clerk.client.find_all(fantoccini::Locator::Css(&format!("form[action$='{status}']"))).await.unwrap().is_empty(), "a completed application has no form left: {queue}");
    phone.client.refresh().await.unwrap();
    let page = phone.wait_for_text("処理完了").await.unwrap();
    assert!(page.contains("差し戻し：年金の種類を確認してください"), "the resident sees the whole history: {page}");

    // 児童手当: a family's claim taken from the form (filed five months ago, so it is in
    // the next payment), then the payment list for a chosen month, as a file.
    let admin = host.token("admin", Some(CHIYODA));
    let csv = host.send_as(&admin, reqwest::Method::GET, &format!("/api/v1/municipalities/{CHIYODA}/linkage/residents/export"), None).await.text().await.unwrap();
    let rows: Vec<Vec<String>> = csv.lines().skip(1).map(|l| l.split(',').map(str::to_string).collect()).collect();
    let today = chrono::Local::now().date_naive();
    let young = |r: &Vec<String>| chrono::NaiveDate::parse_from_str(&r[5], "%Y-%m-%d").unwrap() > today - chrono::Duration::days(365 * 14);
    let family = rows
        .iter()
        .find(|h| h[7] == "世帯主" && h[11] == "住民" && rows.iter().any(|c| c[2] == h[2] && c[7] == "子" && c[11] == "住民" && young(c)))
        .expect("the demo registry has families");
    let child_allowance = origin("child-allowance");
    clerk.client.goto(&format!("{child_allowance}/staff")).await.unwrap();
    clerk.wait_for_text("児童手当 管理").await.unwrap();
    fill(&clerk, "#claimant", &family[0]).await;
    fill(&clerk, "#filed", &(today - chrono::Months::new(5)).to_string()).await;
    clerk.client.find(fantoccini::Locator::Css("form[action$='/staff/claims'] button[type=submit]")).await.unwrap().click().await.unwrap();
    let page = clerk.wait_for_text(&family[0]).await.unwrap();
    assert!(page.contains("支給中"), "the claim is listed: {page}");
    check("staff-child-allowance", &clerk).await;
    let listed = |page: &str| page.lines().any(|l| l.contains(&family[0]) && l.contains('円'));
    let in_two_months = today + chrono::Months::new(2);
    let month = format!("{}", if in_two_months.format("%m").to_string().parse::<u32>().unwrap() % 2 == 0 { in_two_months } else { in_two_months + chrono::Months::new(1) }.format("%Y-%m"));
    fill(&clerk, "#month", &month).await;
    clerk.client.find(fantoccini::Locator::Css("form[action$='/staff'][method=get] button")).await.unwrap().click().await.unwrap();
    let page = clerk.wait_for_text(&format!("{month}支払")).await.unwrap();
    assert!(listed(&page), "the family is paid in {month}: {page}");
    let link = clerk.wait_for("a[href*='payment-run.csv']").await.unwrap().attr("href").await.unwrap().unwrap();
    assert!(link.ends_with(&format!("month={month}")), "{link}");
    let file = fetch_in_page(&clerk, &link).await;
    // (The page's `text()` takes the file's byte-order mark off.)
    assert!(file.starts_with("認定番号,宛名番号,受給者,支払額\r\n"), "{file}");
    assert!(file.lines().any(|l| l.contains(&format!("\"{}\"", family[0]))), "the family's row in the file: {file}");
    assert!(report.is_empty(), "pages failing accessibility:\n{}", report.join("\n"));
}

/// Fills the field `css` (value set by script, as date inputs take no typing reliably; a
/// select must have an option of that value).
async fn fill(browser: &Browser, css: &str, value: &str) {
    let element = browser.wait_for(css).await.unwrap();
    let set = browser.client.execute("arguments[0].value = arguments[1]; return arguments[0].value;", vec![serde_json::to_value(&element).unwrap(), Value::String(value.into())]).await.unwrap();
    assert_eq!(set.as_str(), Some(value), "`{css}` takes {value}");
}

#[tokio::test]
async fn a_resident_donates_files_the_one_stop_application_and_signs_out_and_the_next_resident_sees_none_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = HostSpec::new(Backend::Sqlite, &dir.path().join("host"), &[]).await.unwrap();
    spec.plugins = vec![business_plugin(dir.path(), "furusato-tax")];
    let host = spec.start().unwrap();
    let origin = host.origin(CHIYODA, "furusato-tax");
    let staff = host.token("staff", Some(CHIYODA));
    let gift = serde_json::json!({"title": "江戸切子 ぐい呑み", "supplier": "千代田硝子工房", "procurement_cost": 3000, "shipping_cost": 800, "min_donation": 10000, "basis": "processed-in-area", "basis_note": "区内の工房で加工", "stock": 3});
    let r = host.client.post(format!("{origin}/staff/gifts")).bearer_auth(&staff).json(&gift).send().await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());

    let browser = Browser::start().await.unwrap();
    browser.client.set_window_size(PHONE_WIDTH, 844).await.unwrap();
    // From the catalogue, signed out: the ログイン link, the demo provider, and back.
    browser.client.goto(&format!("{origin}/")).await.unwrap();
    browser.wait_for("nav.account a").await.unwrap().click().await.unwrap();
    let residents = browser.client.find_all(fantoccini::Locator::Css("button[name=who][value^='resident:']")).await.unwrap();
    assert!(residents.len() >= 2);
    residents[0].click().await.unwrap();
    browser.wait_for_text("ログアウト").await.unwrap();
    assert_eq!(browser.client.current_url().await.unwrap().as_str(), format!("{origin}/"));

    // Donate with the gift.
    fill(&browser, "#amount", "10000").await;
    let gift_option = browser.wait_for("#gift_id option:nth-child(2)").await.unwrap();
    gift_option.click().await.unwrap();
    for (css, value) in [("#name", "山田 蓮"), ("#postal_code", "100-0001"), ("#address", "東京都千代田区千代田1-1"), ("#phone", "03-0000-0000")] {
        fill(&browser, css, value).await;
    }
    browser.client.find(fantoccini::Locator::Css("form[action$='/donations'] button[type=submit]")).await.unwrap().click().await.unwrap();
    let receipt = browser.wait_for_text("寄附金受領証明書").await.unwrap();
    assert!(receipt.contains("10,000円") && receipt.contains("山田 蓮"), "{receipt}");
    browser.screenshot("phone-furusato-receipt").await.unwrap();
    let axe = std::fs::read_to_string(std::env::var("NUKISASHI_AXE_JS").expect("run through `cargo xtask test`, which fetches axe-core")).unwrap();
    let found = problems(&browser, &axe).await;
    assert!(found.is_empty(), "the receipt with its one-stop form on a phone: {found:?}");

    // The one-stop application from the receipt page, then 「自分の申請」.
    fill(&browser, "#os-birth", "1985-04-01").await;
    fill(&browser, "#os-number", "123456789018").await;
    for checkbox in ["input[name=declares_no_tax_return]", "input[name=declares_within_five]"] {
        browser.client.find(fantoccini::Locator::Css(checkbox)).await.unwrap().click().await.unwrap();
    }
    browser.client.find(fantoccini::Locator::Css("form[action$='/onestop'] button[type=submit]")).await.unwrap().click().await.unwrap();
    let mine = browser.wait_for_text("ワンストップ特例の申請").await.unwrap();
    assert!(mine.contains("受付") && mine.contains("申請書を受け付けました"), "the application is listed with its status: {mine}");
    browser.screenshot("phone-furusato-my-onestop").await.unwrap();

    // Sign out; the next resident on the same phone sees none of it.
    browser.client.find(fantoccini::Locator::Css("form.signout button")).await.unwrap().click().await.unwrap();
    browser.wait_for_text("ログアウトしました").await.unwrap();
    browser.client.goto(&format!("{origin}/donations/mine")).await.unwrap();
    let residents = browser.client.find_all(fantoccini::Locator::Css("button[name=who][value^='resident:']")).await.unwrap();
    residents[1].click().await.unwrap();
    let page = browser.wait_for_text("自分の寄附").await.unwrap();
    assert!(page.contains("まだ寄附はありません") && !page.contains("山田 蓮"), "{page}");
    browser.client.goto(&format!("{origin}/onestop/mine")).await.unwrap();
    assert!(browser.wait_for_text("まだ申請はありません").await.is_ok());
}
