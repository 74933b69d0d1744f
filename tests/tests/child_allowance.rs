//! The 児童手当 module (plugins/child-allowance) through a real host: claims built from the
//! resident registry, the payment run, and a move-out in the registry ending the
//! entitlement through the pushed change feed.

use chrono::{Datelike, Months, NaiveDate};
use nukisashi_e2e::{Backend, HostSpec, publish_plugin, subscribe};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const CHIYODA: &str = "131016";
const HEADER: &str = "宛名番号,団体内統合宛名番号,世帯番号,氏名,氏名カナ,生年月日,性別,続柄,郵便番号,住所,住民となった日,状態,異動日,異動事由,個人番号,住民票コード";


/// `YYYY-MM` of the even month that pays for `month`.
fn paid_in(month: NaiveDate) -> String {
    let next = month + Months::new(1);
    let pay = if next.month() % 2 == 0 { next } else { next + Months::new(1) };
    format!("{:04}-{:02}", pay.year(), pay.month())
}

fn in_run(run: &Value, claim: &Value) -> Option<i64> {
    run["rows"].as_array().unwrap().iter().find(|r| r["claim_id"] == claim["id"]).map(|r| r["amount"].as_i64().unwrap())
}

#[tokio::test]
async fn claims_payments_and_move_out() {
    let dir = tempfile::tempdir().unwrap();
    let host = HostSpec::new(Backend::Sqlite, &dir.path().join("host"), &[]).await.unwrap().start().unwrap();
    publish_plugin(&host, dir.path(), "child-allowance").await;
    let r = subscribe(&host, CHIYODA, "child-allowance", &["kv", "resident-registry", "change-feed"], json!({"phone": "03-3264-2111"})).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let staff = host.token("staff", Some(CHIYODA));
    let admin = host.token("admin", Some(CHIYODA));
    let base = format!("/{CHIYODA}/child-allowance");

    // A resident household with a child of 高校生年代 or younger, and a one-person household.
    let csv = host.send_as(&admin, Method::GET, &format!("/api/v1/municipalities/{CHIYODA}/linkage/residents/export"), None).await.text().await.unwrap();
    let rows: Vec<Vec<String>> = csv.lines().skip(1).map(|l| l.split(',').map(str::to_string).collect()).collect();
    let today = chrono::Local::now().date_naive();
    let young = |r: &Vec<String>| NaiveDate::parse_from_str(&r[5], "%Y-%m-%d").unwrap() > today - chrono::Duration::days(365 * 15);
    let head = rows
        .iter()
        .find(|h| {
            let member = |relation: &[&str], also: &dyn Fn(&Vec<String>) -> bool| rows.iter().any(|m| m[2] == h[2] && relation.contains(&m[7].as_str()) && m[11] == "住民" && also(m));
            h[7] == "世帯主" && h[11] == "住民" && member(&["子"], &young) && member(&["妻", "夫"], &|_| true)
        })
        .expect("the demo registry has families with two parents")
        .clone();
    let spouse = rows.iter().find(|m| m[2] == head[2] && (m[7] == "妻" || m[7] == "夫")).unwrap().clone();
    let single = rows.iter().find(|h| h[11] == "住民" && rows.iter().filter(|r| r[2] == h[2]).count() == 1).unwrap().clone();
    let children: Vec<&Vec<String>> = rows.iter().filter(|c| c[2] == head[2] && c[7] == "子" && c[11] == "住民").collect();

    // A claim filed five months ago (its payments have started).
    let filed = (today - Months::new(5)).with_day(10).unwrap();
    let (status, claim) = host.call(Some(&staff), Method::POST, &format!("{base}/staff/claims"), Some(json!({"claimant": head[0], "filed": filed.to_string()}))).await;
    assert_eq!(status, 201, "{claim}");
    let first = filed + Months::new(1);
    assert_eq!(claim["first_month"], json!({"year": first.year(), "month": first.month()}));
    let claimed: Vec<&str> = claim["children"].as_array().unwrap().iter().map(|c| c["addressee_number"].as_str().unwrap()).collect();
    for c in children.iter().filter(|c| young(c)) {
        assert!(claimed.contains(&c[0].as_str()), "child {} from the registry is in the claim", c[0]);
    }
    let (status, _) = host.call(Some(&staff), Method::POST, &format!("{base}/staff/claims"), Some(json!({"claimant": head[0]}))).await;
    assert_eq!(status, 409, "one claim per claimant");
    // The other parent cannot be paid for the same children as well.
    let (status, twice) = host.call(Some(&staff), Method::POST, &format!("{base}/staff/claims"), Some(json!({"claimant": spouse[0]}))).await;
    assert_eq!(status, 409, "{twice}");
    assert!(twice["detail"].as_str().unwrap().contains(&format!("認定番号 {}", claim["id"])), "{twice}");
    let (status, none) = host.call(Some(&staff), Method::POST, &format!("{base}/staff/claims"), Some(json!({"claimant": single[0]}))).await;
    assert_eq!(status, 422, "{none}");
    let (status, _) = host.call(Some(&host.token("resident", None)), Method::GET, &format!("{base}/staff/claims"), None).await;
    assert_eq!(status, 403);

    // The same from the staff page's form: another family's claim is taken and listed; a
    // duplicate is refused with a Japanese page, not JSON.
    let other = rows
        .iter()
        .find(|h| h[0] != head[0] && h[7] == "世帯主" && h[11] == "住民" && rows.iter().any(|c| c[2] == h[2] && c[7] == "子" && c[11] == "住民" && young(c)))
        .expect("the demo registry has two families");
    let no_redirects = nukisashi_e2e::client_without_redirects();
    let claims = host.url(&format!("{base}/staff/claims"));
    let r = no_redirects.post(&claims).bearer_auth(&staff).form(&[("claimant", other[0].as_str()), ("filed", "")]).send().await.unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let page = host.client.get(host.url(&format!("{base}/staff"))).bearer_auth(&staff).header("accept", "text/html").send().await.unwrap().text().await.unwrap();
    assert!(page.contains(&format!("<td>{}</td>", other[0])) && page.contains("認定請求を受け付ける"), "the new claim is on the staff page: {page}");
    let r = no_redirects.post(&claims).bearer_auth(&staff).header("accept", "text/html").form(&[("claimant", other[0].as_str())]).send().await.unwrap();
    assert_eq!(r.status(), 409);
    let refused = r.text().await.unwrap();
    assert!(refused.contains("lang=\"ja\"") && refused.contains("認定は既にあります"), "{refused}");

    // The payment runs: this month's payment and a later one both pay the claim.
    let now_payment = paid_in(today);
    let later_payment = paid_in(today + Months::new(2));
    let (_, run_now) = host.call(Some(&staff), Method::GET, &format!("{base}/staff/payment-run?month={now_payment}"), None).await;
    let (_, run_later) = host.call(Some(&staff), Method::GET, &format!("{base}/staff/payment-run?month={later_payment}"), None).await;
    assert!(in_run(&run_now, &claim).unwrap() >= 20_000, "{run_now}");
    assert!(in_run(&run_later, &claim).unwrap() >= 20_000);
    let sum: i64 = run_now["rows"].as_array().unwrap().iter().map(|r| r["amount"].as_i64().unwrap()).sum();
    assert_eq!(run_now["total"].as_i64().unwrap(), sum);
    let (status, _) = host.call(Some(&staff), Method::GET, &format!("{base}/staff/payment-run?month=2026-03"), None).await;
    assert_eq!(status, 400, "odd months are not payment months");
    let page = host.client.get(host.url(&format!("{base}/staff"))).bearer_auth(&staff).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(&head[3]) && page.contains("<tfoot>"));
    // The same run as a file for the payment system: every row, the total matching.
    let file = host.client.get(host.url(&format!("{base}/staff/payment-run.csv?month={now_payment}"))).bearer_auth(&staff).send().await.unwrap();
    assert_eq!(file.status(), 200);
    assert!(file.headers()["content-disposition"].to_str().unwrap().contains(&format!("payment-run-{now_payment}.csv")));
    let bytes = file.bytes().await.unwrap();
    assert!(bytes.starts_with("\u{feff}認定番号,宛名番号,受給者,支払額\r\n".as_bytes()), "UTF-8 with a BOM and a header row");
    let lines: Vec<&str> = std::str::from_utf8(&bytes).unwrap().lines().skip(1).collect();
    assert_eq!(lines.len(), run_now["rows"].as_array().unwrap().len());
    let file_sum: i64 = lines.iter().map(|l| l.rsplit(',').next().unwrap().parse::<i64>().unwrap()).sum();
    assert_eq!(file_sum, sum);
    let (status, _) = host.call(Some(&host.token("resident", None)), Method::GET, &format!("{base}/staff/payment-run.csv"), None).await;
    assert_eq!(status, 403, "the payment file is for staff");

    // The public calculator gives the published example.
    let (_, calc) = host.call(None, Method::GET, &format!("{base}/calculate?births=2009-01-10,2013-01-10,2016-01-10&supported=2006-01-10&month=2026-06"), None).await;
    assert_eq!(calc["monthly_total"], 70_000, "{calc}");

    // The claimant moves out today: the registry import pushes the change, the claim ends
    // this month; this month is still paid, later months are not.
    let mut moved = head.clone();
    moved[11] = "転出".into();
    moved[12] = today.to_string();
    moved[13] = "転出".into();
    let file = format!("{HEADER}\r\n{}\r\n", moved.join(","));
    let r = host
        .client
        .post(host.url(&format!("/api/v1/municipalities/{CHIYODA}/linkage/residents/import")))
        .bearer_auth(&admin)
        .body(file)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(60);
    let ended = loop {
        let (_, detail) = host.call(Some(&staff), Method::GET, &format!("{base}/staff/claims/{}", claim["id"]), None).await;
        if detail["claim"]["state"]["state"] == "ended" {
            break detail;
        }
        assert!(Instant::now() < deadline, "the move-out did not reach the module: {detail}\n{}", host.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(ended["claim"]["state"]["last_month"], json!({"year": today.year(), "month": today.month()}));
    assert!(ended["claim"]["history"].as_array().unwrap().iter().any(|h| h["by"] == "住民記録"));
    let (_, run_now) = host.call(Some(&staff), Method::GET, &format!("{base}/staff/payment-run?month={now_payment}"), None).await;
    let (_, run_later) = host.call(Some(&staff), Method::GET, &format!("{base}/staff/payment-run?month={later_payment}"), None).await;
    assert!(in_run(&run_now, &claim).is_some(), "the month of the move-out is paid");
    assert!(in_run(&run_later, &claim).is_none(), "nothing after it");

    // The registry reads behind the claim are in the audit trail, attributed to staff.
    let audit: Value = host
        .send_as(&admin, Method::GET, &format!("/api/v1/municipalities/{CHIYODA}/audit?module=child-allowance&addressee_number={}", head[0]), None)
        .await
        .json()
        .await
        .unwrap();
    let staff_reads: Vec<&str> = audit.as_array().unwrap().iter().filter(|r| r["caller_role"] == "staff").map(|r| r["interface"].as_str().unwrap()).collect();
    assert!(staff_reads.contains(&"resident-registry.get") && staff_reads.contains(&"resident-registry.household"), "{audit}");
}
