//! The ふるさと納税 module (plugins/furusato-tax) published, reviewed and subscribed like any
//! vendor's module, then used over HTTP by staff and residents of two municipalities.

use nukisashi_e2e::{Backend, Host, HostSpec, binary, publish_plugin, subscribe};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

const CHIYODA: &str = "131016";
const SAPPORO: &str = "011002";

fn ok(output: std::process::Output) -> String {
    assert!(output.status.success(), "CLI failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// A token for a resident with its own subject.
fn resident(host: &Host, sub: &str) -> String {
    let out = Command::new(binary())
        .args(["token", "mint", "--role", "resident", "--sub", sub, "--name", sub, "--data-dir"])
        .arg(&host.data_dir)
        .output()
        .unwrap();
    ok(out).trim().to_string()
}

/// Publishes the module and subscribes both municipalities with their own config.
async fn plug_in(host: &Host, dir: &Path) {
    publish_plugin(host, dir, "furusato-tax").await;
    // Required settings are asked for, not defaulted to another town's (a municipality
    // without demo settings: 中央区).
    let operator = host.token("operator", None);
    let r = host.send_as(&operator, Method::POST, "/api/v1/municipalities", Some(&json!({"lg_code": "131024", "name": "中央区"}))).await;
    assert_eq!(r.status(), 201);
    let r = subscribe(host, "131024", "furusato-tax", &["kv", "tax"], json!(null)).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("mayor"));
    for (code, address, mayor, phone) in [
        (CHIYODA, "東京都千代田区九段南1-2-1", "千代田区長 樋口高顕", "03-3264-2111"),
        (SAPPORO, "札幌市中央区北1条西2丁目", "札幌市長 秋元克広", "011-211-2111"),
    ] {
        let r = subscribe(host, code, "furusato-tax", &["kv", "tax"], json!({"address": address, "mayor": mayor, "phone": phone})).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
}


fn donor(amount: i64, gift: Option<u64>) -> Value {
    json!({"amount": amount, "gift_id": gift, "name": "山田 花子", "postal_code": "100-0001", "address": "東京都千代田区千代田1-1", "phone": "03-0000-0000", "purpose": "子育て支援"})
}

#[tokio::test]
async fn furusato_tax_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let host = HostSpec::new(Backend::Sqlite, &dir.path().join("host"), &[]).await.unwrap().start().unwrap();
    plug_in(&host, dir.path()).await;
    let staff = host.token("staff", Some(CHIYODA));
    let hanako = resident(&host, "hanako");
    let taro = resident(&host, "taro");
    let base = format!("/{CHIYODA}/furusato-tax");

    // Gifts: exactly 30 % is allowed, a yen more is not.
    let gift = json!({"title": "江戸切子 ぐい呑み", "supplier": "千代田硝子工房", "procurement_cost": 3000, "shipping_cost": 800, "min_donation": 10000, "basis": "processed-in-area", "basis_note": "区内の工房で加工", "stock": 3});
    let (status, created) = host.call(Some(&staff), Method::POST, &format!("{base}/staff/gifts"), Some(gift.clone())).await;
    assert_eq!(status, 201, "{created}");
    let gift_id = created["id"].as_u64().unwrap();
    let mut too_costly = gift.clone();
    too_costly["procurement_cost"] = json!(3001);
    let (status, refused) = host.call(Some(&staff), Method::POST, &format!("{base}/staff/gifts"), Some(too_costly)).await;
    assert_eq!(status, 422);
    assert!(refused["detail"].as_str().unwrap().contains("3割"), "{refused}");
    let (status, _) = host.call(Some(&hanako), Method::POST, &format!("{base}/staff/gifts"), Some(gift.clone())).await;
    assert_eq!(status, 403, "residents do not manage gifts");

    // The catalogue is per municipality.
    let (_, gifts) = host.call(None, Method::GET, &format!("{base}/gifts"), None).await;
    assert_eq!(gifts.as_array().unwrap().len(), 1);
    assert_eq!(gifts[0]["stock"], 3);
    let (_, sapporo_gifts) = host.call(None, Method::GET, &format!("/{SAPPORO}/furusato-tax/gifts"), None).await;
    assert_eq!(sapporo_gifts, json!([]));
    let page = host.get(&format!("{base}/")).await.text().await.unwrap();
    assert!(page.contains("江戸切子") && page.contains("03-3264-2111") && page.contains("<label for=\"amount\">"));

    // Donations: anonymous callers must sign in; below the gift's minimum is refused.
    let (status, _) = host.call(None, Method::POST, &format!("{base}/donations"), Some(donor(10000, Some(gift_id)))).await;
    assert_eq!(status, 401);
    let (status, low) = host.call(Some(&hanako), Method::POST, &format!("{base}/donations"), Some(donor(9999, Some(gift_id)))).await;
    assert_eq!(status, 422, "{low}");
    let (status, first) = host.call(Some(&hanako), Method::POST, &format!("{base}/donations"), Some(donor(10000, Some(gift_id)))).await;
    assert_eq!(status, 201, "{first}");
    let year = first["date"].as_str().unwrap()[..4].to_string();
    assert_eq!(first["receipt_number"], format!("{year}-000001"));

    // Stock is taken atomically: 2 left, 6 concurrent donations, exactly 2 succeed.
    let donations_path = format!("{base}/donations");
    let attempts = (0..6).map(|_| host.call(Some(&taro), Method::POST, &donations_path, Some(donor(12000, Some(gift_id)))));
    let results = futures::future::join_all(attempts).await;
    let statuses: Vec<u16> = results.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 2, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 4, "{statuses:?}");
    let mut numbers: Vec<String> = results.iter().filter(|(s, _)| *s == 201).map(|(_, d)| d["receipt_number"].as_str().unwrap().to_string()).collect();
    numbers.sort();
    assert_eq!(numbers, vec![format!("{year}-000002"), format!("{year}-000003")]);

    // The receipt carries this municipality's configured details, for the donor or staff only.
    let receipt_path = format!("{base}/donations/{}/receipt", first["id"]);
    let receipt = host.client.get(host.url(&receipt_path)).bearer_auth(&hanako).send().await.unwrap().text().await.unwrap();
    for expected in ["寄附金受領証明書", "東京都千代田区九段南1-2-1", "千代田区長 樋口高顕", "山田 花子", "10,000円", &format!("{year}-000001")] {
        assert!(receipt.contains(expected), "{expected} missing from the receipt");
    }
    assert!(!receipt.contains("札幌"));
    let (status, _) = host.call(Some(&taro), Method::GET, &receipt_path, None).await;
    assert_eq!(status, 404, "another resident cannot see it");
    let (status, _) = host.call(Some(&staff), Method::GET, &receipt_path, None).await;
    assert_eq!(status, 200);
    // Sapporo's receipts come from Sapporo's config: nothing is hard-coded.
    let (_, sapporo) = host.call(Some(&hanako), Method::POST, &format!("/{SAPPORO}/furusato-tax/donations"), Some(donor(5000, None))).await;
    assert_eq!(sapporo["receipt_number"], format!("{year}-000001"), "numbering is per municipality");
    let sapporo_receipt = host.client.get(host.url(&format!("/{SAPPORO}/furusato-tax/donations/{}/receipt", sapporo["id"]))).bearer_auth(&hanako).send().await.unwrap().text().await.unwrap();
    assert!(sapporo_receipt.contains("札幌市長 秋元克広") && !sapporo_receipt.contains("千代田区長"));

    // One-stop exception: complete → received; a 6th municipality is refused; missing
    // declarations → incomplete with reasons.
    let form = |donation: &Value, municipalities: u32, declares: bool| {
        json!({"donation_id": donation["id"], "name": "山田 花子", "address": "東京都千代田区千代田1-1", "individual_number": "123456789018",
               "birth_date": "1980-04-01", "phone": "03-0000-0000", "declares_no_tax_return": declares, "declares_within_five": declares,
               "municipalities_this_year": municipalities})
    };
    let (status, sixth) = host.call(Some(&hanako), Method::POST, &format!("{base}/onestop"), Some(form(&first, 6, true))).await;
    assert_eq!(status, 422);
    assert!(sixth["detail"].as_str().unwrap().contains("6団体"));
    let (status, app) = host.call(Some(&hanako), Method::POST, &format!("{base}/onestop"), Some(form(&first, 5, true))).await;
    assert_eq!(status, 201, "{app}");
    assert_eq!(app["status"], "received");
    let (status, _) = host.call(Some(&hanako), Method::POST, &format!("{base}/onestop"), Some(form(&first, 5, true))).await;
    assert_eq!(status, 409, "one application per donation");
    let taro_donation = &results.iter().find(|(s, _)| *s == 201).unwrap().1;
    let (status, incomplete) = host.call(Some(&taro), Method::POST, &format!("{base}/onestop"), Some(form(taro_donation, 2, false))).await;
    assert_eq!(status, 201);
    assert_eq!(incomplete["status"], "incomplete");
    assert!(incomplete["history"][0]["reason"].as_str().unwrap().contains("確定申告"));
    let (status, _) = host.call(Some(&taro), Method::POST, &format!("{base}/onestop"), Some(form(&first, 2, true))).await;
    assert_eq!(status, 404, "nobody applies for someone else's donation");
    // A change of address before 10 January is recorded.
    let (status, changed) = host.call(Some(&hanako), Method::POST, &format!("{base}/onestop/{}/change", app["id"]), Some(json!({"address": "東京都千代田区神田1-1"}))).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["form"]["address"], "東京都千代田区神田1-1");
    assert_eq!(changed["changes"].as_array().unwrap().len(), 1);
    // Staff accept, then void after the donor filed a tax return; the history keeps all.
    let status_path = format!("{base}/staff/onestop/{}/status", app["id"]);
    let (status, _) = host.call(Some(&staff), Method::POST, &status_path, Some(json!({"status": "accepted"}))).await;
    assert_eq!(status, 200);
    let (status, _) = host.call(Some(&staff), Method::POST, &status_path, Some(json!({"status": "received"}))).await;
    assert_eq!(status, 409);
    let (status, voided) = host.call(Some(&staff), Method::POST, &status_path, Some(json!({"status": "voided", "reason": "確定申告を提出"}))).await;
    assert_eq!(status, 200);
    let history: Vec<&str> = voided["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
    assert_eq!(history, vec!["received", "accepted", "voided"]);

    // Cancelling is recorded, not deleted, and returns the gift to stock.
    let (status, cancelled) = host.call(Some(&staff), Method::POST, &format!("{base}/staff/donations/{}/cancel", first["id"]), Some(json!({"reason": "二重申込み", "refunded": true}))).await;
    assert_eq!(status, 200);
    assert_eq!(cancelled["state"]["state"], "cancelled");
    let (_, gifts) = host.call(None, Method::GET, &format!("{base}/gifts"), None).await;
    assert_eq!(gifts[0]["stock"], 1);
    let (_, all) = host.call(Some(&staff), Method::GET, &format!("{base}/staff/donations"), None).await;
    assert_eq!(all.as_array().unwrap().len(), 3);

    // Annual report: two 12,000-yen donations with the gift; costs within 50 % until other
    // costs push them over.
    let (_, report) = host.call(Some(&staff), Method::GET, &format!("{base}/staff/report?year={year}"), None).await;
    assert_eq!((report["donation_count"].as_u64(), report["donations"].as_i64(), report["cancelled_count"].as_u64()), (Some(2), Some(24000), Some(1)));
    assert_eq!(report["gift_procurement"], 6000);
    assert_eq!(report["shipping"], 1600);
    assert_eq!(report["within_fifty_percent"], true);
    let (status, _) = host.call(Some(&staff), Method::POST, &format!("{base}/staff/costs"), Some(json!({"year": year.parse::<i64>().unwrap(), "label": "ポータル手数料", "amount": 4401}))).await;
    assert_eq!(status, 201);
    let (_, report) = host.call(Some(&staff), Method::GET, &format!("{base}/staff/report?year={year}"), None).await;
    assert_eq!(report["total_costs"], 12001);
    assert_eq!(report["within_fifty_percent"], false);

    // Simulator from household figures (public) and from the resident-tax summary (staff,
    // through the linkage `tax` capability, audited).
    let (status, sim) = host.call(None, Method::GET, &format!("{base}/simulate?total_income=4000000&social_insurance=600000&spouse=on"), None).await;
    assert_eq!(status, 200);
    assert!(sim["limit"].as_i64().unwrap() > 2000);
    let admin = host.token("admin", Some(CHIYODA));
    let tax_csv = host.send_as(&admin, Method::GET, &format!("/api/v1/municipalities/{CHIYODA}/linkage/tax/export"), None).await.text().await.unwrap();
    let row: Vec<&str> = tax_csv.lines().nth(1).unwrap().split(',').collect();
    let (status, sim) = host.call(Some(&staff), Method::GET, &format!("{base}/staff/simulate/{}?year={}", row[0], row[1]), None).await;
    assert_eq!(status, 200, "{sim}");
    let income_based: i64 = row[3].parse().unwrap();
    let rate = match income_based * 10 {
        ..=1_950_000 => 5,
        ..=3_300_000 => 10,
        ..=6_950_000 => 20,
        ..=9_000_000 => 23,
        _ => 33,
    };
    assert_eq!(sim["limit"].as_i64().unwrap(), income_based * 20_000 / (90_000 - rate * 1021) + 2_000);
    // The resident's own figures, when the identity provider vouched for the 宛名番号.
    let out = Command::new(binary())
        .args(["token", "mint", "--role", "resident", "--sub", "taxpayer", "--lg-code", CHIYODA, "--addressee-number", row[0], "--data-dir"])
        .arg(&host.data_dir)
        .output()
        .unwrap();
    let taxpayer = ok(out).trim().to_string();
    let (status, mine) = host.call(Some(&taxpayer), Method::GET, &format!("{base}/simulate/mine?year={}", row[1]), None).await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["limit"], sim["limit"]);
    let (status, _) = host.call(Some(&hanako), Method::GET, &format!("{base}/simulate/mine?year={}", row[1]), None).await;
    assert_eq!(status, 403, "without a vouched 宛名番号 there is nothing to look up");
    let audit = host.send_as(&admin, Method::GET, &format!("/api/v1/municipalities/{CHIYODA}/audit?module=furusato-tax&addressee_number={}", row[0]), None).await;
    let audit: Value = audit.json().await.unwrap();
    let roles: Vec<&str> = audit.as_array().unwrap().iter().filter(|r| r["interface"] == "tax.summary").map(|r| r["caller_role"].as_str().unwrap()).collect();
    assert_eq!(roles, vec!["staff", "resident"]);
}

/// The one-stop rule no single municipality can enforce: a donor who gives to six
/// municipalities with one-stop applications (declaring five at each) has them voided —
/// each 寄附先 sends the 申告特例通知書 to the donor's 住所地 (札幌市), which matches it to its
/// resident by 個人番号 and birth date, counts the senders and, past five, tells each one —
/// while a donor who gives to five keeps all five, and a form naming nobody who lives there
/// is not counted (and not answered: kept for 札幌市's staff). Seven municipalities on one host, the same module everywhere; one 寄附先
/// (京都市) takes no electronic ineligibility notice, and is told by post without holding
/// anyone else up.
#[tokio::test]
async fn the_one_stop_rule_holds_across_municipalities() {
    let dir = tempfile::tempdir().unwrap();
    let host = HostSpec::new(Backend::Sqlite, &dir.path().join("host"), &[]).await.unwrap().start().unwrap();
    publish_plugin(&host, dir.path(), "furusato-tax").await;
    let operator = host.token("operator", None);
    for (code, name) in [("131024", "中央区"), ("271004", "大阪市"), ("261009", "京都市")] {
        let r = host.send_as(&operator, Method::POST, "/api/v1/municipalities", Some(&json!({"lg_code": code, "name": name}))).await;
        assert_eq!(r.status(), 201);
    }
    const KYOTO: &str = "261009";
    const GIVEN_TO: [&str; 6] = [CHIYODA, "141003", "472018", "131024", "271004", KYOTO];
    for code in GIVEN_TO.iter().chain([&SAPPORO]) {
        let config = json!({"address": "（所在地）", "mayor": "首長", "phone": "00-0000-0000"});
        let r = subscribe(&host, code, "furusato-tax", &["kv", "tax", "notices", "resident-registry", "identity-numbers"], config).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        let admin = host.token("admin", Some(code));
        for kind in ["onestop-notification", "onestop-ineligible"] {
            if *code == KYOTO && kind == "onestop-ineligible" {
                continue;
            }
            let r = host.send_as(&admin, Method::PUT, &format!("/api/v1/municipalities/{code}/notices/{kind}"), Some(&json!({"module": "furusato-tax"}))).await;
            assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        }
    }

    // Two residents of 札幌市 (from its registry: 個人番号 and birth date), and a stranger
    // whose 個人番号 is valid but nobody's there.
    let admin = host.token("admin", Some(SAPPORO));
    let csv = host.send_as(&admin, Method::GET, &format!("/api/v1/municipalities/{SAPPORO}/linkage/residents/export"), None).await.text().await.unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let residents: Vec<(String, String)> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| !f[column("個人番号")].is_empty())
        .map(|f| (f[column("個人番号")].to_string(), f[column("生年月日")].to_string()))
        .take(2)
        .collect();
    let stranger = ("111222333446".to_string(), "1970-01-01".to_string());
    assert!(residents.iter().all(|(n, _)| *n != stranger.0));

    let mut applications: Vec<(&str, &str, u64)> = Vec::new();
    for (who, (number, born), given_to) in [("six", &residents[0], &GIVEN_TO[..]), ("five", &residents[1], &GIVEN_TO[..5]), ("stranger", &stranger, &GIVEN_TO[..1])] {
        let token = resident(&host, who);
        for (i, code) in given_to.iter().enumerate() {
            let base = format!("/{code}/furusato-tax");
            let (status, donation) = host.call(Some(&token), Method::POST, &format!("{base}/donations"), Some(donor(10000, None))).await;
            assert_eq!(status, 201, "{donation}");
            // However the address is written, the 住所地 is found.
            let address = if i == 1 { "〒060-0001 北海道札幌市中央区北1条西2丁目1" } else { "北海道札幌市中央区北1条西2丁目1" };
            let form = json!({"donation_id": donation["id"], "name": who, "address": address, "individual_number": number,
                "birth_date": born, "phone": "011-000-0000", "declares_no_tax_return": true, "declares_within_five": true, "municipalities_this_year": 5});
            let (status, app) = host.call(Some(&token), Method::POST, &format!("{base}/onestop"), Some(form)).await;
            assert_eq!((status, app["status"].as_str()), (201, Some("received")), "{code}: {app}");
            assert_eq!((app["residence_notice"]["to_lg_code"].as_str(), app["residence_notice"]["sent"].as_bool()), (Some(SAPPORO), Some(true)), "{app}");
            applications.push((who, code, app["id"].as_u64().unwrap()));
        }
    }

    // Until 札幌市 has taken all 12 notifications and every 寄附先 its answers.
    let staff: std::collections::HashMap<&str, String> = GIVEN_TO.iter().chain([&SAPPORO]).map(|c| (*c, host.token("staff", Some(c)))).collect();
    let queue_of = |code: &str| {
        let (host, admin, code) = (&host, host.token("admin", Some(code)), code.to_string());
        async move {
            let (_, deliveries) = host.call(Some(&admin), Method::GET, &format!("/api/v1/municipalities/{code}/linkage/deliveries"), None).await;
            deliveries.as_array().unwrap().iter().find(|d| d["feed"] == "notices").map(|d| (d["delivered"].as_i64().unwrap(), d["failures"].as_i64().unwrap())).unwrap_or((0, 0))
        }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let mut settled = queue_of(SAPPORO).await.0 == 12;
        // 5 ineligibility notices for "six" (京都市 by post).
        let mut answers = 0;
        for code in &GIVEN_TO[..5] {
            answers += queue_of(code).await.0;
        }
        settled &= answers == 5;
        if settled {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not settled: 札幌 took {:?}, the 寄附先 {answers}", queue_of(SAPPORO).await);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let mut outcome = Vec::new();
    for code in GIVEN_TO {
        let (_, all) = host.call(Some(&staff[code]), Method::GET, &format!("/{code}/furusato-tax/staff/onestop"), None).await;
        for (who, at, id) in applications.iter().filter(|(_, at, _)| *at == code) {
            let app = all.as_array().unwrap().iter().find(|o| o["id"] == *id).unwrap();
            let last = app["history"].as_array().unwrap().last().unwrap();
            outcome.push((*who, *at, app["status"].as_str().unwrap().to_string(), last["reason"].as_str().unwrap().to_string()));
        }
    }
    for (who, at, status, reason) in &outcome {
        match *who {
            "six" if *at == KYOTO => assert_eq!(status, "received", "京都市 is told by post, not electronically"),
            "six" => assert!(status == "voided" && reason.contains("寄附先が6団体") && reason.contains(SAPPORO), "{at}: {status} {reason}"),
            "five" => assert_eq!(status, "received", "{at}: five municipalities keep the exception"),
            _ => assert_eq!(status, "received", "the stranger's application is left to staff: {reason}"),
        }
    }
    let (_, counted) = host.call(Some(&staff[SAPPORO]), Method::GET, &format!("/{SAPPORO}/furusato-tax/staff/onestop/residence"), None).await;
    let donor_year = |number: &str| counted.as_array().unwrap().iter().find(|d| d["individual_number"] == number).cloned().unwrap_or_default();
    assert_eq!((donor_year(&residents[0].0)["void"].as_bool(), donor_year(&residents[0].0)["by_post"].clone()), (Some(true), json!([KYOTO])), "{counted}");
    assert_eq!((donor_year(&residents[1].0)["void"].as_bool(), donor_year(&residents[1].0)["senders"].as_object().map(|s| s.len())), (Some(false), Some(5)), "{counted}");
    assert!(donor_year(&stranger.0).is_null(), "the stranger is not counted as 札幌市's resident: {counted}");
    let (_, unmatched) = host.call(Some(&staff[SAPPORO]), Method::GET, &format!("/{SAPPORO}/furusato-tax/staff/onestop/unmatched"), None).await;
    assert_eq!(unmatched.as_array().map(|u| u.iter().map(|x| x["from_lg_code"].clone()).collect::<Vec<_>>()), Some(vec![json!(CHIYODA)]), "{unmatched}");

    // Both sides' audit trails show the notices; the registry match is on record too.
    let (_, rows) = host.call(Some(&admin), Method::GET, &format!("/api/v1/municipalities/{SAPPORO}/audit?module=furusato-tax&limit=1000"), None).await;
    let count = |interface: &str, refused: bool| rows.as_array().unwrap().iter().filter(|r| r["interface"] == interface && r["query"].as_str().unwrap().contains("refused") == refused).count();
    assert_eq!(
        (count("notice-handler.on-notice", false), count("identity-numbers.find", false), count("notices.send", false), count("notices.send", true)),
        (12, 12, 5, 1),
        "12 notifications taken and matched, 5 ineligibility notices sent, the one to 京都市 refused"
    );
    assert!(!rows.to_string().contains(&residents[0].0), "the 個人番号 itself is not written to the trail");

    // Paper applications are judged on the day they arrived, which staff record.
    let token = resident(&host, "paper");
    let (_, donation) = host.call(Some(&token), Method::POST, &format!("/{CHIYODA}/furusato-tax/donations"), Some(donor(10000, None))).await;
    let staff = host.token("staff", Some(CHIYODA));
    let mailed = |arrived: &str| {
        json!({"donation_id": donation["id"], "arrived_on": arrived, "name": "紙 申請", "address": "東京都千代田区千代田1-1", "individual_number": "111222333446",
            "birth_date": "1970-01-01", "phone": "03-0000-0000", "declares_no_tax_return": "on", "declares_within_five": "on", "municipalities_this_year": "1"})
    };
    let (status, refused) = host.call(Some(&staff), Method::POST, &format!("/{CHIYODA}/furusato-tax/staff/onestop"), Some(mailed("2099-01-01"))).await;
    assert_eq!(status, 422, "{refused}");
    // The module's own today (in Japan) is the donation's date.
    let today = donation["date"].as_str().unwrap().to_string();
    let (status, refused) = host.call(Some(&staff), Method::POST, &format!("/{CHIYODA}/furusato-tax/staff/onestop"), Some(mailed("2025-01-01"))).await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused["detail"].as_str().unwrap().contains("寄附日"), "arrived before the donation was made: {refused}");
    let (status, paper) = host.call(Some(&staff), Method::POST, &format!("/{CHIYODA}/furusato-tax/staff/onestop"), Some(mailed(&today))).await;
    assert_eq!(status, 201, "{paper}");
    assert_eq!((paper["by_mail"].as_bool(), paper["received_on"].as_str(), paper["status"].as_str()), (Some(true), Some(today.as_str()), Some("received")), "{paper}");
    let (status, changed) = host.call(Some(&staff), Method::POST, &format!("/{CHIYODA}/furusato-tax/staff/onestop/{}/change", paper["id"]), Some(json!({"arrived_on": today, "address": "東京都千代田区神田1-1"}))).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["changes"][0]["by_mail"], true);
}
