//! Metering and the monthly cost allocation: requests into modules are counted per
//! municipality, module and day; the operator's cost report honours the weights and adds
//! up to the yen; a municipality with no usage still pays its fixed share.

use nukisashi_e2e::{Backend, HostSpec, binary};
use reqwest::Method;
use serde_json::Value;
use std::process::Command;

const CHIYODA: &str = "131016";
const SAPPORO: &str = "011002";
const NAHA: &str = "472018";

#[tokio::test]
async fn usage_is_metered_and_costs_split_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let host = HostSpec::new(Backend::Sqlite, dir.path(), &["guestbook"]).await.unwrap().start().unwrap();
    for _ in 0..30 {
        assert_eq!(host.get(&format!("/{CHIYODA}/guestbook/entries")).await.status(), 200);
    }
    for _ in 0..10 {
        assert_eq!(host.get(&format!("/{SAPPORO}/guestbook/entries")).await.status(), 200);
    }
    // A stored entry: module storage is metered too.
    let stored = host.post_json(&format!("/{CHIYODA}/guestbook/entries"), &serde_json::json!({ "name": "佐藤", "message": "保存" })).await;
    assert!(stored.status().is_success());
    let operator = host.token("operator", None);

    // Usage per municipality, module and day.
    let (status, usage) = host.call(Some(&operator), Method::GET, "/api/v1/usage", None).await;
    assert_eq!(status, 200, "{usage}");
    let requests = |code: &str| -> i64 {
        usage["rows"].as_array().unwrap().iter().filter(|r| r["lg_code"] == code && r["module_id"] == "guestbook").map(|r| r["requests"].as_i64().unwrap()).sum()
    };
    assert_eq!((requests(CHIYODA), requests(SAPPORO), requests(NAHA)), (31, 10, 0));
    let row = usage["rows"].as_array().unwrap().iter().find(|r| r["lg_code"] == CHIYODA).unwrap();
    assert!(row["peak_memory_bytes"].as_i64().unwrap() > 0, "{row}");
    assert!(row["cpu_ms"].as_i64().is_some(), "{row}");
    // The day's storage: the entry and the id counter, in Chiyoda only.
    assert!(row["storage_bytes"].as_i64().unwrap() > "保存".len() as i64, "{row}");
    let sapporo_row = usage["rows"].as_array().unwrap().iter().find(|r| r["lg_code"] == SAPPORO).unwrap();
    assert_eq!(sapporo_row["storage_bytes"], 0, "{sapporo_row}");
    assert_eq!(row["errors"], 0);
    // An admin sees their own municipality only; the cost report is the operator's.
    let admin = host.token("admin", Some(SAPPORO));
    let (_, own) = host.call(Some(&admin), Method::GET, &format!("/api/v1/municipalities/{SAPPORO}/usage"), None).await;
    assert!(own["rows"].as_array().unwrap().iter().all(|r| r["lg_code"] == SAPPORO));
    let (status, _) = host.call(Some(&admin), Method::GET, &format!("/api/v1/municipalities/{CHIYODA}/usage"), None).await;
    assert_eq!(status, 403);
    let (status, _) = host.call(Some(&admin), Method::GET, "/api/v1/reports/cost?total=1000", None).await;
    assert_eq!(status, 403);

    // The report: weights honoured, amounts add up, no usage still pays the fixed share.
    let (status, report) = host.call(Some(&operator), Method::GET, "/api/v1/reports/cost?total=1000001&fixed=40&population=30&usage=30", None).await;
    assert_eq!(status, 200, "{report}");
    let shares = report["shares"].as_array().unwrap();
    let sum = |k: &str| shares.iter().map(|s| s[k].as_i64().unwrap()).sum::<i64>();
    assert_eq!(sum("amount"), 1_000_001);
    // 40/30/30 of 1,000,001: the odd yen goes to the largest remainder (the fixed pool).
    assert_eq!((sum("fixed"), sum("by_population"), sum("by_usage")), (400_001, 300_000, 300_000));
    let share = |code: &str| shares.iter().find(|s| s["lg_code"] == code).unwrap().clone();
    let naha = share(NAHA);
    assert_eq!(naha["by_usage"], 0);
    assert_eq!(naha["fixed"], 100_000, "the fixed share is split evenly among the four");
    assert!(naha["amount"].as_i64().unwrap() >= 100_000);
    let (chiyoda, sapporo) = (share(CHIYODA), share(SAPPORO));
    assert_eq!(chiyoda["by_usage"].as_i64().unwrap() + sapporo["by_usage"].as_i64().unwrap(), 300_000);
    assert_eq!(chiyoda["by_usage"].as_i64().unwrap(), 226_829, "31 of 41 requests");
    assert!(sapporo["by_population"].as_i64().unwrap() > chiyoda["by_population"].as_i64().unwrap());

    // The same as CSV, through the CLI.
    let out = Command::new(binary())
        .args(["report", "cost", "--total", "1000001", "--fixed", "40", "--population", "30", "--usage", "30", "--csv", "--server", &host.base])
        .env("NUKISASHI_TOKEN", &operator)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let csv = String::from_utf8(out.stdout).unwrap();
    let amounts: i64 = csv.lines().skip(1).map(|l| l.rsplit(',').next().unwrap().parse::<i64>().unwrap()).sum();
    assert_eq!(amounts, 1_000_001);
    assert!(csv.starts_with("団体コード,団体名"));
    // `--publish` stores the policy: Naha's admin then sees the same amount as in the CSV.
    let out = Command::new(binary())
        .args(["report", "cost", "--total", "1000001", "--fixed", "40", "--population", "30", "--usage", "30", "--publish", "--server", &host.base])
        .env("NUKISASHI_TOKEN", &operator)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (status, mine) = host.call(Some(&host.token("admin", Some(NAHA))), Method::GET, &format!("/api/v1/municipalities/{NAHA}/cost"), None).await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["share"]["amount"], naha["amount"], "{mine}");

    // Refusals say what is wrong.
    let (status, problem): (u16, Value) = host.call(Some(&operator), Method::GET, "/api/v1/reports/cost?total=1000", None).await;
    assert_eq!(status, 422);
    assert!(problem["detail"].as_str().unwrap().contains("weights"));
    let (status, _) = host.call(Some(&operator), Method::GET, "/api/v1/reports/cost?total=1000&fixed=1&month=2026-13", None).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_municipality_sees_its_own_share_under_the_published_policy() {
    let dir = tempfile::tempdir().unwrap();
    let host = HostSpec::new(Backend::Sqlite, dir.path(), &["guestbook"]).await.unwrap().start().unwrap();
    for _ in 0..20 {
        assert_eq!(host.get(&format!("/{CHIYODA}/guestbook/entries")).await.status(), 200);
    }
    let operator = host.token("operator", None);
    let chiyoda_admin = host.token("admin", Some(CHIYODA));
    let own_cost = format!("/api/v1/municipalities/{CHIYODA}/cost");

    // Nothing published yet: the admin is told so.
    let (status, problem) = host.call(Some(&chiyoda_admin), Method::GET, &own_cost, None).await;
    assert_eq!(status, 404, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("has not published"), "{problem}");

    // Only operators publish, and a policy without weights is refused and stores nothing.
    let policy = serde_json::json!({ "total": 500_000, "fixed": 1, "usage": 3, "measure": "requests" });
    let (status, _) = host.call(Some(&chiyoda_admin), Method::PUT, "/api/v1/cost-policies/2026-01", Some(policy.clone())).await;
    assert_eq!(status, 403);
    let (status, problem) = host.call(Some(&operator), Method::PUT, "/api/v1/cost-policies/2026-01", Some(serde_json::json!({ "total": 500_000 }))).await;
    assert_eq!(status, 422, "{problem}");
    let (status, problem) = host.call(Some(&operator), Method::PUT, "/api/v1/cost-policies/2026-01", Some(serde_json::json!({ "total": "lots", "fixed": 1 }))).await;
    assert_eq!(status, 422, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("lots"), "the refusal names the bad value: {problem}");
    let (status, _) = host.call(Some(&chiyoda_admin), Method::PUT, "/api/v1/cost-policies/2026-01", Some(serde_json::json!({ "total": "lots" }))).await;
    assert_eq!(status, 403, "who may publish is checked before the body");
    let (status, _) = host.call(Some(&chiyoda_admin), Method::GET, &format!("{own_cost}?month=2026-01"), None).await;
    assert_eq!(status, 404);

    // Published for this month: the admin's share is exactly their row of the operator's report.
    let (status, report) = host.call(Some(&operator), Method::GET, "/api/v1/reports/cost?total=500000&fixed=1&usage=3", None).await;
    assert_eq!(status, 200, "{report}");
    let month = report["month"].as_str().unwrap();
    let (status, published) = host.call(Some(&operator), Method::PUT, &format!("/api/v1/cost-policies/{month}"), Some(policy)).await;
    assert_eq!(status, 200, "{published}");
    assert_eq!((published["total"].as_i64(), published["usage_weight"].as_i64()), (Some(500_000), Some(3)));
    let (status, mine) = host.call(Some(&chiyoda_admin), Method::GET, &own_cost, None).await;
    assert_eq!(status, 200, "{mine}");
    let expected = report["shares"].as_array().unwrap().iter().find(|s| s["lg_code"] == CHIYODA).unwrap();
    assert_eq!(&mine["share"], expected);
    // All the usage share is Chiyoda's: the only municipality that used anything.
    assert_eq!(mine["share"]["by_usage"], 375_000, "{mine}");
    assert_eq!(mine["policy"]["month"], month);

    // Another municipality's admin cannot read Chiyoda's share.
    let sapporo_admin = host.token("admin", Some(SAPPORO));
    let (status, _) = host.call(Some(&sapporo_admin), Method::GET, &own_cost, None).await;
    assert_eq!(status, 403);
}
