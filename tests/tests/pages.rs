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
    // A resident's donation, made by an API client.
    let resident = host.token("resident", None);
    let donation = serde_json::json!({"amount": 30000, "name": "山田 花子", "postal_code": "100-0001", "address": "東京都千代田区千代田1-1", "phone": "03-0000-0000"});
    let r = host.client.post(format!("{}/donations", origin("furusato-tax"))).bearer_auth(&resident).json(&donation).send().await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());

    let browser = Browser::start().await.unwrap();
    browser.client.goto(&format!("{}/staff", origin("furusato-tax"))).await.unwrap();
    browser.wait_for("button[name=who][value=staff]").await.unwrap().click().await.unwrap();
    browser.wait_for_text("ふるさと納税 管理").await.unwrap();
    let mut report = Vec::new();
    for problem in problems(&browser, &axe).await {
        report.push(format!("furusato-staff: {problem}"));
    }
    browser.screenshot("staff-furusato").await.unwrap();

    // The clerk cancels the donation from the page (a same-origin form post with the session).
    browser.client.find(fantoccini::Locator::Css("input[name=reason]")).await.unwrap().send_keys("二重の申込み").await.unwrap();
    browser.client.find(fantoccini::Locator::Css("form[action$='/cancel'] button")).await.unwrap().click().await.unwrap();
    let page = browser.wait_for_text("取消").await.unwrap();
    assert!(page.contains("ふるさと納税 管理"), "back on the staff page: {page}");
    let mine = host.client.get(format!("{}/donations/mine", origin("furusato-tax"))).bearer_auth(&resident).send().await.unwrap().json::<Value>().await.unwrap();
    let recorded = mine[0].to_string();
    assert!(recorded.contains("\"cancelled\"") && recorded.contains("二重の申込み"), "the cancellation is recorded with its reason: {mine}");

    // The other modules' staff pages: no second sign-in.
    for (name, module, heading) in [("e-application", "e-application", "電子申請 処理一覧"), ("child-allowance", "child-allowance", "児童手当 管理")] {
        let url = format!("{}/staff", origin(module));
        browser.client.goto(&url).await.unwrap();
        browser.wait_for_text(heading).await.unwrap();
        assert_eq!(browser.client.current_url().await.unwrap().as_str(), url, "no sign-in page on the way");
        for problem in problems(&browser, &axe).await {
            report.push(format!("{name}-staff: {problem}"));
        }
        browser.screenshot(&format!("staff-{name}")).await.unwrap();
    }
    assert!(report.is_empty(), "staff pages failing accessibility:\n{}", report.join("\n"));
}

/// Fills the field `css` (value set by script, as date inputs take no typing reliably).
async fn fill(browser: &Browser, css: &str, value: &str) {
    let element = browser.wait_for(css).await.unwrap();
    browser.client.execute("arguments[0].value = arguments[1];", vec![serde_json::to_value(&element).unwrap(), Value::String(value.into())]).await.unwrap();
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
