//! The 電子申請 module (plugins/e-application) through a real host: a form defined as data,
//! prefilled from the registry for a resident the identity provider vouched for, validated
//! submissions with attachments, the status workflow with a return and a correction, and a
//! completed 児童手当 認定請求 handed to the child-allowance module as a platform event.

use base64::Engine;
use nukisashi_e2e::{Backend, Host, HostSpec, binary, publish_plugin, subscribe};
use reqwest::Method;
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

const CHIYODA: &str = "131016";
const SAPPORO: &str = "011002";


/// A resident of `code` whose 宛名番号 the identity provider vouches for.
fn resident(host: &Host, sub: &str, code: &str, addressee: &str) -> String {
    let out = Command::new(binary())
        .args(["token", "mint", "--role", "resident", "--sub", sub, "--lg-code", code, "--addressee-number", addressee, "--data-dir"])
        .arg(&host.data_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn an_application_from_form_to_hand_off() {
    let dir = tempfile::tempdir().unwrap();
    let host = HostSpec::new(Backend::Sqlite, &dir.path().join("host"), &[]).await.unwrap().start().unwrap();
    publish_plugin(&host, dir.path(), "e-application").await;
    publish_plugin(&host, dir.path(), "child-allowance").await;
    for (code, module, grants) in [
        (CHIYODA, "e-application", vec!["kv", "resident-registry", "events"]),
        (CHIYODA, "child-allowance", vec!["kv", "resident-registry", "change-feed", "events"]),
        (SAPPORO, "e-application", vec!["kv", "events"]),
    ] {
        let r = subscribe(&host, code, module, &grants, json!({"phone": "03-0000-0000"})).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    let admin = host.token("admin", Some(CHIYODA));
    let staff = host.token("staff", Some(CHIYODA));
    let base = format!("/{CHIYODA}/e-application");

    // A parent with a young child in the demo registry.
    let csv = host.send_as(&admin, Method::GET, &format!("/api/v1/municipalities/{CHIYODA}/linkage/residents/export"), None).await.text().await.unwrap();
    let rows: Vec<Vec<String>> = csv.lines().skip(1).map(|l| l.split(',').map(str::to_string).collect()).collect();
    let cutoff = (chrono::Local::now().date_naive() - chrono::Duration::days(365 * 15)).to_string();
    let head = rows
        .iter()
        .find(|h| h[7] == "世帯主" && h[11] == "住民" && rows.iter().any(|c| c[2] == h[2] && c[7] == "子" && c[11] == "住民" && c[5] > cutoff))
        .unwrap()
        .clone();
    let parent = resident(&host, "parent", CHIYODA, &head[0]);
    let other = resident(&host, "other", CHIYODA, "9999999");

    // The procedure is data: listed, and its page is prefilled from the registry.
    let (_, forms) = host.call(None, Method::GET, &format!("{base}/forms"), None).await;
    assert_eq!(forms[0]["id"], "child-allowance-claim");
    assert_eq!(forms[0]["version"], 1);
    let page = host.client.get(host.url(&format!("{base}/forms/child-allowance-claim"))).bearer_auth(&parent).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(&format!("value=\"{}\"", head[3])) && page.contains(&format!("value=\"{}\"", head[0])), "prefilled from the registry");
    assert!(page.contains("<label for=\"pension\">"));
    // Without the registry grant the page still works, just without prefill.
    let sapporo_parent = resident(&host, "s-parent", SAPPORO, "1000000001");
    let r = host.client.get(host.url(&format!("/{SAPPORO}/e-application/forms/child-allowance-claim"))).bearer_auth(&sapporo_parent).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(!r.text().await.unwrap().contains("value=\"1000000001\""));

    // Server-side validation names every problem; a good submission gets a 受付番号.
    let (status, refused) = host.call(Some(&parent), Method::POST, &format!("{base}/forms/child-allowance-claim"), Some(json!({"name": head[3], "name_kana": "やまだ"}))).await;
    assert_eq!(status, 422);
    let detail = refused["detail"].as_str().unwrap();
    for field in ["name_kana", "birth_date", "address", "pension"] {
        assert!(detail.contains(field), "{field} missing from: {detail}");
    }
    let (status, _) = host.call(None, Method::POST, &format!("{base}/forms/child-allowance-claim"), Some(json!({}))).await;
    assert_eq!(status, 401);
    let pdf = b"%PDF-1.4 confirmation".to_vec();
    let mut submission = json!({
        "name": head[3], "name_kana": head[4], "birth_date": head[5], "postal_code": head[8], "address": head[9],
        "addressee_number": head[0], "pension": "国民年金",
        "confirmation": {"name": "確認書.pdf", "content_type": "application/pdf", "data": base64::engine::general_purpose::STANDARD.encode(&pdf)}
    });
    // The vouched 宛名番号 cannot be swapped for someone else's by a hand-made post.
    let mut someone_else = submission.clone();
    someone_else["addressee_number"] = json!("999999999");
    let (status, refused) = host.call(Some(&parent), Method::POST, &format!("{base}/forms/child-allowance-claim"), Some(someone_else)).await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused["detail"].as_str().unwrap().contains("ログインした本人の宛名番号"), "{refused}");
    let (status, app) = host.call(Some(&parent), Method::POST, &format!("{base}/forms/child-allowance-claim"), Some(submission.clone())).await;
    assert_eq!(status, 201, "{app}");
    let no = app["receipt_number"].as_str().unwrap().to_string();
    assert!(no.ends_with("-000001"));
    assert_eq!(app["status"], "submitted");
    assert_eq!(app["addressee_number"], head[0].as_str(), "the vouched 宛名番号 is recorded");
    let (status, _) = host.call(Some(&other), Method::GET, &format!("{base}/applications/{no}"), None).await;
    assert_eq!(status, 404, "other residents cannot see it");
    let (_, mine) = host.call(Some(&parent), Method::GET, &format!("{base}/applications/mine"), None).await;
    assert_eq!(mine.as_array().unwrap().len(), 1);

    // Staff work it: no skipping, a return needs a reason, the applicant corrects.
    let status_path = format!("{base}/staff/applications/{no}/status");
    let (status, _) = host.call(Some(&staff), Method::POST, &status_path, Some(json!({"status": "completed"}))).await;
    assert_eq!(status, 409);
    for to in ["received", "in-review"] {
        let (status, body) = host.call(Some(&staff), Method::POST, &status_path, Some(json!({"status": to}))).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, _) = host.call(Some(&staff), Method::POST, &status_path, Some(json!({"status": "returned"}))).await;
    assert_eq!(status, 422);
    let (status, _) = host.call(Some(&staff), Method::POST, &status_path, Some(json!({"status": "returned", "comment": "年金の種類を確認してください"}))).await;
    assert_eq!(status, 200);
    submission["pension"] = json!("厚生年金");
    let (status, corrected) = host.call(Some(&parent), Method::PUT, &format!("{base}/applications/{no}"), Some(submission.clone())).await;
    assert_eq!(status, 200, "{corrected}");
    assert_eq!(corrected["status"], "submitted");
    assert_eq!(corrected["values"]["pension"], "厚生年金");
    for to in ["received", "in-review", "completed"] {
        let (status, body) = host.call(Some(&staff), Method::POST, &status_path, Some(json!({"status": to}))).await;
        assert_eq!(status, 200, "{body}");
    }
    let (_, done) = host.call(Some(&parent), Method::GET, &format!("{base}/applications/{no}"), None).await;
    let trail: Vec<&str> = done["history"].as_array().unwrap().iter().map(|h| h["to"].as_str().unwrap()).collect();
    assert_eq!(trail, vec!["submitted", "received", "in-review", "returned", "submitted", "received", "in-review", "completed"]);
    assert_eq!(done["history"][3]["comment"], "年金の種類を確認してください");

    // The attachment comes back byte for byte, to staff only.
    let file = host.client.get(host.url(&format!("{base}/staff/applications/{no}/files/confirmation"))).bearer_auth(&staff).send().await.unwrap();
    assert_eq!(file.headers()["content-type"], "application/pdf");
    assert_eq!(file.bytes().await.unwrap().to_vec(), pdf);

    // The completed 認定請求 reaches the child-allowance module as a claim.
    let deadline = Instant::now() + Duration::from_secs(30);
    let claim = loop {
        let (_, claims) = host.call(Some(&staff), Method::GET, &format!("/{CHIYODA}/child-allowance/staff/claims"), None).await;
        if let Some(c) = claims.as_array().unwrap().iter().find(|c| c["claimant"] == head[0].as_str()) {
            break c.clone();
        }
        assert!(Instant::now() < deadline, "no claim arrived: {claims}\n{}", host.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(claim["history"][0]["what"].as_str().unwrap().contains(&no), "{claim}");
    assert!(!claim["children"].as_array().unwrap().is_empty());

    // Withdrawal by the applicant is final for staff too.
    let (_, second) = host.call(Some(&parent), Method::POST, &format!("{base}/forms/child-allowance-claim"), Some(submission)).await;
    let second_no = second["receipt_number"].as_str().unwrap();
    let (status, withdrawn) = host.call(Some(&parent), Method::POST, &format!("{base}/applications/{second_no}/withdraw"), Some(json!({"comment": "重複"}))).await;
    assert_eq!(status, 200);
    assert_eq!(withdrawn["status"], "withdrawn");
    let (status, _) = host.call(Some(&staff), Method::POST, &format!("{base}/staff/applications/{second_no}/status"), Some(json!({"status": "received"}))).await;
    assert_eq!(status, 409);

    // Staff publish a new version of the form; earlier applications keep theirs.
    let (_, mut def) = host.call(None, Method::GET, &format!("{base}/forms/child-allowance-claim/definition"), None).await;
    def["title"] = json!("児童手当 認定請求書（令和8年改訂）");
    let (status, v2) = host.call(Some(&staff), Method::POST, &format!("{base}/staff/forms"), Some(def.clone())).await;
    assert_eq!(status, 201, "{v2}");
    assert_eq!(v2["version"], 2);
    assert_eq!(done["form_version"], 1);
    def["fields"][0]["pattern"] = json!("(");
    let (status, _) = host.call(Some(&staff), Method::POST, &format!("{base}/staff/forms"), Some(def)).await;
    assert_eq!(status, 422, "a broken definition is refused");
    let (status, _) = host.call(Some(&parent), Method::POST, &format!("{base}/staff/forms"), Some(json!({}))).await;
    assert_eq!(status, 403);

    // A browser's form with a file input (multipart): the same checks as the API's JSON.
    let multipart = |file: reqwest::multipart::Part| {
        let mut form = reqwest::multipart::Form::new();
        for (name, value) in [("name", &head[3]), ("name_kana", &head[4]), ("birth_date", &head[5]), ("postal_code", &head[8]), ("address", &head[9]), ("addressee_number", &head[0])] {
            form = form.text(name, value.to_string());
        }
        form.text("pension", "国民年金").part("confirmation", file)
    };
    let wrong_type = reqwest::multipart::Part::bytes(b"PK\x03\x04".to_vec()).file_name("書類.zip").mime_str("application/zip").unwrap();
    let r = host.client.post(host.url(&format!("{base}/forms/child-allowance-claim"))).bearer_auth(&parent).multipart(multipart(wrong_type)).send().await.unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("application/zip は受け付けていません"), "the same refusal as for JSON");
    let pdf = b"%PDF-1.4 from a file input\r\n--not-a-boundary\r\n".to_vec();
    let file = reqwest::multipart::Part::bytes(pdf.clone()).file_name("確認書.pdf").mime_str("application/pdf").unwrap();
    let no_redirects = nukisashi_e2e::client_without_redirects();
    let r = no_redirects.post(host.url(&format!("{base}/forms/child-allowance-claim"))).bearer_auth(&parent).multipart(multipart(file)).send().await.unwrap();
    assert_eq!(r.status(), 303, "a browser's post is answered with a redirect to a page");
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let no = location.split("submitted=").nth(1).expect("the 受付番号 in the redirect").to_string();
    let attachment = host.client.get(host.url(&format!("{base}/staff/applications/{no}/files/confirmation"))).bearer_auth(&staff).send().await.unwrap();
    assert_eq!(attachment.status(), 200);
    assert_eq!(attachment.bytes().await.unwrap().to_vec(), pdf, "the file arrives byte for byte");

    // The same round in pages and forms: the clerk returns it with a comment from the staff
    // page's form, the resident reads it on the application's page and corrects it there
    // (the file on record stays), the clerk completes it.
    let staff_form = |to: &'static str, comment: &'static str| {
        let path = host.url(&format!("{base}/staff/applications/{no}/status"));
        let no_redirects = no_redirects.clone();
        let staff = staff.clone();
        async move { no_redirects.post(path).bearer_auth(&staff).form(&[("status", to), ("comment", comment)]).send().await.unwrap() }
    };
    for to in ["received", "in-review"] {
        assert_eq!(staff_form(to, "").await.status(), 303);
    }
    assert_eq!(staff_form("returned", "年金の種類を確認してください").await.status(), 303);
    let page = host.client.get(host.url(&format!("{base}/applications/{no}"))).bearer_auth(&parent).header("accept", "text/html").send().await.unwrap().text().await.unwrap();
    for expected in ["差し戻し：年金の種類を確認してください", "補正して再提出する", "<option selected>国民年金</option>", "添付済み：確認書.pdf"] {
        assert!(page.contains(expected), "{expected} on the application's page: {page}");
    }
    let mut correction = reqwest::multipart::Form::new();
    for (name, value) in [("name", &head[3]), ("name_kana", &head[4]), ("birth_date", &head[5]), ("postal_code", &head[8]), ("address", &head[9]), ("addressee_number", &head[0])] {
        correction = correction.text(name, value.to_string());
    }
    let correction = correction.text("pension", "厚生年金");
    let r = no_redirects.post(host.url(&format!("{base}/applications/{no}"))).bearer_auth(&parent).multipart(correction).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let (_, corrected) = host.call(Some(&parent), Method::GET, &format!("{base}/applications/{no}"), None).await;
    assert_eq!((corrected["status"].as_str(), corrected["values"]["pension"].as_str()), (Some("submitted"), Some("厚生年金")), "{corrected}");
    assert_eq!(corrected["files"]["confirmation"]["name"], "確認書.pdf", "the file on record is kept");
    for to in ["received", "in-review", "completed"] {
        assert_eq!(staff_form(to, "").await.status(), 303);
    }
    let (_, done) = host.call(Some(&parent), Method::GET, &format!("{base}/applications/{no}"), None).await;
    assert_eq!(done["status"], "completed");
}
