//! Data linkage end to end: a module (tests/fixtures/linkage) reads residents, households,
//! identity numbers, tax and the change feed through the WIT interfaces; grants, tenant
//! isolation (including a property test over identifiers), CSV import and export (UTF-8,
//! Shift_JIS, 外字 and IVS), pushed changes exactly once across restarts, and the audit
//! trail of every read.

use nukisashi_e2e::{Backend, Host, HostSpec, binary, linkage_plugin, problem};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const A: &str = "131016";
const B: &str = "011002";
const ALL: &[&str] = &["kv", "resident-registry", "identity-numbers", "tax", "change-feed"];

/// The linkage fixture as module `id`, requesting `capabilities`.
async fn spec(backend: Backend, dir: &Path, demo: bool) -> HostSpec {
    let mut spec = HostSpec::new(backend, dir, &[]).await.unwrap();
    spec.demo = demo;
    spec.plugins = vec![linkage_plugin(dir, "linkage", ALL), linkage_plugin(dir, "linkage-basic", &["kv", "resident-registry"])];
    spec
}

async fn json_of(response: reqwest::Response) -> Value {
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{status}: {text}");
    serde_json::from_str(&text).unwrap()
}

async fn export(host: &Host, token: &str, code: &str, layout: &str, encoding: &str) -> Vec<u8> {
    let path = format!("/api/v1/municipalities/{code}/linkage/{layout}/export?encoding={encoding}");
    let response = host.send_as(token, reqwest::Method::GET, &path, None).await;
    assert_eq!(response.status(), 200, "{}", host.log());
    response.bytes().await.unwrap().to_vec()
}

async fn import(host: &Host, token: &str, code: &str, layout: &str, encoding: &str, body: Vec<u8>) -> reqwest::Response {
    host.client
        .post(host.url(&format!("/api/v1/municipalities/{code}/linkage/{layout}/import?encoding={encoding}")))
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .expect("request reaches the host")
}

/// Residents of a UTF-8 residents export by 宛名番号 (the generated data has no quoted fields).
fn residents_by_number(csv: &[u8]) -> BTreeMap<String, Vec<String>> {
    let text = std::str::from_utf8(csv).unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<String> = line.split(',').map(str::to_string).collect();
            assert_eq!(fields.len(), 16, "{line}");
            (fields[0].clone(), fields)
        })
        .collect()
}

async fn module_get(host: &Host, path: &str) -> (u16, Value) {
    let response = host.get(path).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_module_reads_exactly_its_own_municipality_through_every_interface() {
    let dir = tempfile::tempdir().unwrap();
    let host = spec(Backend::Sqlite, dir.path(), true).await.start().unwrap();
    let admin_a = host.token("admin", Some(A));
    let residents_a = residents_by_number(&export(&host, &admin_a, A, "residents", "utf-8").await);
    let residents_b = residents_by_number(&export(&host, &host.token("admin", Some(B)), B, "residents", "utf-8").await);
    assert!(residents_a.len() >= 300);

    // The same 宛名番号 exist in both municipalities (numbering is per municipality): each
    // mount answers with its own resident.
    let mut differing = 0;
    for number in residents_a.keys().take(25) {
        let (status, a) = module_get(&host, &format!("/{A}/linkage/resident/{number}")).await;
        assert_eq!(status, 200);
        assert_eq!(a["name"], residents_a[number][3], "{number}");
        assert_eq!(a["household_number"], residents_a[number][2]);
        let (_, b) = module_get(&host, &format!("/{B}/linkage/resident/{number}")).await;
        if let Some(theirs) = residents_b.get(number) {
            assert_eq!(b["name"], theirs[3]);
            differing += usize::from(b["address"] != a["address"]);
        }
    }
    assert!(differing > 0, "A and B hold different people under the same numbers");

    // Household: exactly A's members of that household, head first.
    let (number, row) = residents_a.iter().find(|(_, r)| r[7] == "世帯主").unwrap();
    let expected: BTreeSet<&String> = residents_a.values().filter(|r| r[2] == row[2]).map(|r| &r[0]).collect();
    let (_, members) = module_get(&host, &format!("/{A}/linkage/household/{}", row[2])).await;
    let got: BTreeSet<String> = members.as_array().unwrap().iter().map(|m| m["addressee_number"].as_str().unwrap().to_string()).collect();
    assert_eq!(got.iter().collect::<BTreeSet<_>>(), expected);
    assert_eq!(members[0]["addressee_number"], number.as_str());

    // Search by kana (surname prefix, hiragana folded) and birth date.
    let kana_surname = row[4].split('\u{3000}').next().unwrap().to_string();
    let (_, found) = module_get(&host, &format!("/{A}/linkage/search?kana={kana_surname}&birth={}", row[5])).await;
    let found = found.as_array().unwrap();
    assert!(found.iter().any(|r| r["addressee_number"] == number.as_str()), "{found:?}");
    for r in found {
        let n = r["addressee_number"].as_str().unwrap();
        assert_eq!(r["name"], residents_a[n][3]);
        assert_eq!(r["birth_date"], row[5]);
    }

    // Identity numbers and tax, exactly as imported.
    let (_, numbers) = module_get(&host, &format!("/{A}/linkage/numbers/{number}")).await;
    assert_eq!(numbers["individual_number"], row[14]);
    let tax_csv = String::from_utf8(export(&host, &admin_a, A, "tax", "utf-8").await).unwrap();
    let tax_row: Vec<&str> = tax_csv.lines().nth(1).unwrap().split(',').collect();
    let (_, tax) = module_get(&host, &format!("/{A}/linkage/tax/{}/{}", tax_row[0], tax_row[1])).await;
    assert_eq!(tax["total_income"].as_i64().unwrap().to_string(), tax_row[2]);
    assert_eq!(tax["income_based_tax"].as_i64().unwrap().to_string(), tax_row[3]);

    // The change feed through the module equals the feed the admin sees.
    let (_, page) = module_get(&host, &format!("/{A}/linkage/changes?after=0")).await;
    let api_page = json_of(host.send_as(&admin_a, reqwest::Method::GET, &format!("/api/v1/municipalities/{A}/linkage/changes?limit=1000"), None).await).await;
    assert_eq!(page["changes"], api_page["changes"]);
    assert!(page["changes"].as_array().unwrap().iter().all(|c| residents_a.contains_key(c["addressee_number"].as_str().unwrap())));

    // Without a grant: refused for that interface, with a problem the module can pass on;
    // the granted interface keeps working.
    let (status, _) = module_get(&host, &format!("/{A}/linkage-basic/resident/{number}")).await;
    assert_eq!(status, 200);
    for (path, capability) in [
        (format!("/{A}/linkage-basic/tax/{number}/2026"), "tax"),
        (format!("/{A}/linkage-basic/numbers/{number}"), "identity-numbers"),
        (format!("/{A}/linkage-basic/changes"), "change-feed"),
    ] {
        let (status, body) = module_get(&host, &path).await;
        assert_eq!(status, 403, "{path}");
        assert!(body["detail"].as_str().unwrap().contains(&format!("`{capability}`")), "{body}");
    }

    // Every read above is in A's audit trail, attributed to the module and version.
    let audit = json_of(
        host.send_as(&admin_a, reqwest::Method::GET, &format!("/api/v1/municipalities/{A}/audit?module=linkage&addressee_number={number}&limit=1000"), None)
            .await,
    )
    .await;
    let interfaces: BTreeSet<&str> = audit.as_array().unwrap().iter().map(|r| r["interface"].as_str().unwrap()).collect();
    for expected in ["resident-registry.get", "resident-registry.household", "resident-registry.search", "identity-numbers.get", "changes.since"] {
        assert!(interfaces.contains(expected), "{expected} missing from {interfaces:?}");
    }
    assert!(audit.as_array().unwrap().iter().all(|r| r["module_version"] == "0.1.0" && !r["request_id"].as_str().unwrap().is_empty()));
    let tax_audit = json_of(
        host.send_as(&admin_a, reqwest::Method::GET, &format!("/api/v1/municipalities/{A}/audit?addressee_number={}&limit=1000", tax_row[0]), None).await,
    )
    .await;
    assert!(tax_audit.as_array().unwrap().iter().any(|r| r["interface"] == "tax.summary"));
    // The refused calls handed nothing over, so nothing names the resident for linkage-basic
    // except the one granted read.
    let basic = json_of(
        host.send_as(&admin_a, reqwest::Method::GET, &format!("/api/v1/municipalities/{A}/audit?module=linkage-basic&limit=1000"), None).await,
    )
    .await;
    assert_eq!(basic.as_array().unwrap().len(), 1, "{basic}");
    assert_eq!(basic[0]["interface"], "resident-registry.get");

    // Nobody alters the trail through the API, and only A's admins (and operators) read it.
    for method in [reqwest::Method::POST, reqwest::Method::PUT, reqwest::Method::DELETE, reqwest::Method::PATCH] {
        let r = host.send_as(&host.token("operator", None), method.clone(), &format!("/api/v1/municipalities/{A}/audit"), Some(&json!({}))).await;
        assert_eq!(r.status(), 405, "{method}");
    }
    let r = host.send_as(&host.token("admin", Some(B)), reqwest::Method::GET, &format!("/api/v1/municipalities/{A}/audit"), None).await;
    assert_eq!(r.status(), 403);
    let r = host.send_as(&host.token("staff", Some(A)), reqwest::Method::GET, &format!("/api/v1/municipalities/{A}/audit"), None).await;
    assert_eq!(r.status(), 403);
}

/// Whatever identifier a module of A passes, it gets A's records or nothing, never B's.
#[test]
fn no_argument_reaches_another_municipality() {
    use proptest::prelude::*;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let host = runtime.block_on(async { spec(Backend::Sqlite, dir.path(), true).await.start().unwrap() });
    let (a, b) = runtime.block_on(async {
        let a = residents_by_number(&export(&host, &host.token("admin", Some(A)), A, "residents", "utf-8").await);
        let b = residents_by_number(&export(&host, &host.token("admin", Some(B)), B, "residents", "utf-8").await);
        (a, b)
    });
    // Names and numbers as A knows them: anything else in an answer came from elsewhere.
    let a_pairs: BTreeSet<(String, String)> = a.values().map(|r| (r[0].clone(), r[3].clone())).collect();
    let a_numbers: BTreeSet<String> = a.values().filter_map(|r| (!r[14].is_empty()).then(|| r[14].clone())).collect();
    let b_ids: Vec<String> = b.values().flat_map(|r| [r[0].clone(), r[1].clone(), r[2].clone(), r[4].clone()]).collect();
    let b_kana: Vec<String> = b.values().map(|r| r[4].chars().take(2).collect()).collect();
    let identifiers = prop_oneof![
        proptest::sample::select(b_ids),
        proptest::sample::select(b_kana),
        "[0-9]{1,12}",
        "\\PC{0,20}",
        Just("' OR '1'='1".to_string()),
        Just("%".to_string()),
        Just(format!("{B}/1000000001")),
        Just("1000000001' --".to_string()),
    ];
    let ops = proptest::sample::select(vec!["get", "household", "search", "numbers", "tax"]);
    // Every answered probe made exactly one personal-data read: each must be audited.
    let answered = std::cell::Cell::new(0usize);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 300, ..ProptestConfig::default() });
    runner
        .run(&(ops, identifiers), |(op, arg)| {
            let (status, seen) = runtime.block_on(async {
                let response = host
                    .client
                    .get(host.url(&format!("/{A}/linkage/probe")))
                    .query(&[("op", op), ("arg", arg.as_str())])
                    .send()
                    .await
                    .unwrap();
                (response.status().as_u16(), response.json::<Value>().await.unwrap_or(Value::Null))
            });
            prop_assert!(status == 200 || status == 400 || status == 413, "{op} {arg:?}: {status} {seen}");
            if status != 200 {
                return Ok(());
            }
            answered.set(answered.get() + 1);
            let seen: Vec<String> = seen.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
            match op {
                "numbers" => prop_assert!(seen.iter().all(|n| n.is_empty() || a_numbers.contains(n)), "{arg:?} gave {seen:?}"),
                "tax" => prop_assert!(seen.iter().all(|n| a.contains_key(n)), "{arg:?} gave {seen:?}"),
                _ => {
                    for pair in seen.chunks(2) {
                        prop_assert!(a_pairs.contains(&(pair[0].clone(), pair[1].clone())), "{op} {arg:?} gave {pair:?}, not A's");
                    }
                }
            }
            Ok(())
        })
        .unwrap();

    let audited = runtime.block_on(async {
        let admin = host.token("admin", Some(A));
        let (mut after, mut count) = (0, 0);
        loop {
            let path = format!("/api/v1/municipalities/{A}/audit?module=linkage&after={after}&limit=1000");
            let rows = json_of(host.send_as(&admin, reqwest::Method::GET, &path, None).await).await;
            let rows = rows.as_array().unwrap().clone();
            let Some(last) = rows.last() else { return count };
            after = last["position"].as_i64().unwrap();
            // Pushed changes are audited too, under request ids of their own.
            count += rows.iter().filter(|r| !r["request_id"].as_str().unwrap().starts_with("change-")).count();
        }
    });
    assert_eq!(audited, answered.get(), "one audit row per answered read");
    assert!(answered.get() > 100, "most probes are answered");
}

const HEADER: &str = "宛名番号,団体内統合宛名番号,世帯番号,氏名,氏名カナ,生年月日,性別,続柄,郵便番号,住所,住民となった日,状態,異動日,異動事由,個人番号,住民票コード\r\n";

fn row(number: &str, household: &str, name: &str, kana: &str, status: &str, changed: &str, reason: &str) -> String {
    format!("{number},{number},{household},{name},{kana},1990-04-01,1,世帯主,1000001,東京都千代田区千代田1-1,2020-04-01,{status},{changed},{reason},,\r\n")
}

async fn import_round_trip(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let host = spec(backend, dir.path(), true).await.start().unwrap();
    let admin = host.token("admin", Some(A));
    // A fresh municipality with no demo data: 千代田区's neighbour 中央区.
    const CHUO: &str = "131024";
    let operator = host.token("operator", None);
    let r = host.send_as(&operator, reqwest::Method::POST, "/api/v1/municipalities", Some(&json!({"lg_code": CHUO, "name": "中央区"}))).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let chuo_admin = host.token("admin", Some(CHUO));

    // UTF-8 with 外字 (private use) and IVS, imported through the CLI.
    let pua = "\u{E000}田\u{3000}太郎";
    let ivs = "葛\u{E0100}西\u{3000}花子";
    let file = format!(
        "{HEADER}{}{}{}",
        row("101", "9001", pua, "ツチダ　タロウ", "住民", "", ""),
        row("102", "9002", ivs, "カサイ　ハナコ", "住民", "2020-04-01", "転入"),
        row("103", "9002", "辻\u{E0101}\u{3000}一郎", "ツジ　イチロウ", "住民", "", ""),
    );
    let path = dir.path().join("residents.csv");
    std::fs::write(&path, &file).unwrap();
    let out = Command::new(binary())
        .args(["linkage", "import", "--lg-code", CHUO, "--layout", "residents", "--server", &host.base])
        .arg(&path)
        .env("NUKISASHI_TOKEN", &chuo_admin)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("3 rows, 3 new, 0 updated, 0 unchanged, 0 rejected, 3 changes"), "{stdout}");

    // The module reads the names byte for byte, and the export gives the file back exactly.
    for (number, name) in [("101", pua), ("102", ivs)] {
        let (_, r) = module_get(&host, &format!("/{CHUO}/linkage/resident/{number}")).await;
        assert_eq!(r["name"].as_str().unwrap().as_bytes(), name.as_bytes());
    }
    assert_eq!(export(&host, &chuo_admin, CHUO, "residents", "utf-8").await, file.as_bytes());

    // The same file again changes nothing and adds nothing to the feed.
    let again = json_of(import(&host, &chuo_admin, CHUO, "residents", "utf-8", file.clone().into_bytes()).await).await;
    assert_eq!((again["inserted"].as_u64(), again["updated"].as_u64(), again["unchanged"].as_u64(), again["changes"].as_u64()), (Some(0), Some(0), Some(3), Some(0)));

    // IVS has no Shift_JIS form: the export says which record, instead of a mangled file.
    let r = host.send_as(&chuo_admin, reqwest::Method::GET, &format!("/api/v1/municipalities/{CHUO}/linkage/residents/export?encoding=shift_jis"), None).await;
    assert_eq!(r.status(), 422);
    assert!(problem(r).await["detail"].as_str().unwrap().contains("宛名番号 102"));

    // Malformed rows are reported by line; the good ones are kept.
    let mixed = format!(
        "{HEADER}{}{}{}{}{}",
        row("201", "9101", "佐藤\u{3000}一", "サトウ　ハジメ", "住民", "", ""),
        row("202", "9102", "佐藤\u{3000}二", "さとう", "住民", "", ""),
        row("203", "9103", "佐藤\u{3000}三", "サトウ　サブロウ", "転出", "", ""),
        row("201", "9101", "佐藤\u{3000}一", "サトウ　ハジメ", "住民", "", ""),
        row("204", "9104", "佐藤\u{3000}四", "サトウ　シロウ", "住民", "", ""),
    );
    let report = json_of(import(&host, &chuo_admin, CHUO, "residents", "utf-8", mixed.into_bytes()).await).await;
    assert_eq!(report["inserted"], 2);
    let rejected: Vec<(u64, String)> =
        report["rejected"].as_array().unwrap().iter().map(|r| (r["line"].as_u64().unwrap(), r["reason"].as_str().unwrap().to_string())).collect();
    assert_eq!(rejected.iter().map(|r| r.0).collect::<Vec<_>>(), vec![3, 4, 5], "{rejected:?}");
    assert!(rejected[0].1.contains("氏名カナ"));
    assert!(rejected[1].1.contains("異動日"));
    assert!(rejected[2].1.contains("line 2"));
    let after = residents_by_number(&export(&host, &chuo_admin, CHUO, "residents", "utf-8").await);
    assert!(after.contains_key("201") && after.contains_key("204") && !after.contains_key("202"));

    // An import cut off half-way leaves the data exactly as before it.
    let before = export(&host, &chuo_admin, CHUO, "residents", "utf-8").await;
    let mut big = String::from(HEADER);
    for i in 0..3000 {
        big.push_str(&row(&format!("{}", 50_000 + i), "9200", "試験\u{3000}太郎", "シケン　タロウ", "住民", "", ""));
    }
    let (head, _) = big.as_bytes().split_at(big.len() / 2);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(head.to_vec()), Err(std::io::Error::other("the line dropped"))];
    let cut = host
        .client
        .post(host.url(&format!("/api/v1/municipalities/{CHUO}/linkage/residents/import")))
        .bearer_auth(&chuo_admin)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await;
    assert!(cut.is_err() || !cut.unwrap().status().is_success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(export(&host, &chuo_admin, CHUO, "residents", "utf-8").await, before, "{}", host.log());

    // Shift_JIS (CP932) with a user-defined character (F040 → U+E000) round-trips.
    let sjis = |s: &str| encoding_rs::SHIFT_JIS.encode(s).0.into_owned();
    let mut file = sjis(HEADER);
    file.extend(sjis("301,301,9301,"));
    file.extend([0xF0, 0x40]);
    file.extend(sjis("田\u{3000}次郎,ツチダ　ジロウ,1985-04-02,1,世帯主,0600001,北海道札幌市中央区北1条西2丁目,2010-04-01,住民,,,123456789018,12345678901\r\n"));
    let report = json_of(import(&host, &admin, A, "residents", "shift_jis", file.clone()).await).await;
    assert_eq!(report["inserted"], 1, "{report}");
    let (_, r) = module_get(&host, &format!("/{A}/linkage/resident/301")).await;
    assert_eq!(r["name"], "\u{E000}田\u{3000}次郎");
    let exported = export(&host, &admin, A, "residents", "shift_jis").await;
    let line = exported.windows(file.len() - sjis(HEADER).len()).position(|w| w == &file[sjis(HEADER).len()..]);
    assert!(line.is_some(), "the Shift_JIS row comes back byte for byte");

    // A file that is not in the layout is refused whole.
    let r = import(&host, &admin, A, "tax", "utf-8", "宛名番号,年,総所得金額等,所得割額\r\n1,2025,1,1\r\n".as_bytes().to_vec()).await;
    assert_eq!(r.status(), 422);
    assert!(problem(r).await["detail"].as_str().unwrap().contains("column 2"));
}

#[tokio::test]
async fn import_round_trips_exactly_on_sqlite() {
    import_round_trip(Backend::Sqlite).await;
}

#[tokio::test]
async fn import_round_trips_exactly_on_postgres() {
    import_round_trip(Backend::Postgres).await;
}

/// Waits until `module` has been pushed every change of `code`.
async fn wait_delivered(host: &Host, admin: &str, code: &str, module: &str) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page = json_of(host.send_as(admin, reqwest::Method::GET, &format!("/api/v1/municipalities/{code}/linkage/changes?after=0&limit=1000"), None).await).await;
        let mut head = page["next"].as_i64().unwrap();
        let mut after = head;
        loop {
            let more = json_of(host.send_as(admin, reqwest::Method::GET, &format!("/api/v1/municipalities/{code}/linkage/changes?after={after}&limit=1000"), None).await).await;
            if more["changes"].as_array().unwrap().is_empty() {
                break;
            }
            after = more["next"].as_i64().unwrap();
            head = after;
        }
        let deliveries = json_of(host.send_as(admin, reqwest::Method::GET, &format!("/api/v1/municipalities/{code}/linkage/deliveries"), None).await).await;
        let delivered = deliveries.as_array().unwrap().iter().find(|d| d["module"] == module && d["feed"] == "changes").map(|d| d["delivered"].as_i64().unwrap());
        if delivered == Some(head) {
            return head;
        }
        assert!(Instant::now() < deadline, "{module} stuck at {delivered:?} of {head}: {deliveries}\n{}", host.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn received(host: &Host, code: &str) -> Value {
    let (status, body) = module_get(host, &format!("/{code}/linkage/received")).await;
    assert_eq!(status, 200);
    body
}

async fn changes_are_pushed_exactly_once_in_order(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(backend, dir.path(), true).await;
    let host = spec.start().unwrap();
    let admin = host.token("admin", Some(A));
    let head = wait_delivered(&host, &admin, A, "linkage").await;
    let got = received(&host, A).await;
    let cursors: Vec<i64> = got["changes"].as_array().unwrap().iter().map(|c| c["change"]["cursor"].as_i64().unwrap()).collect();
    assert_eq!(cursors, (1..=head).collect::<Vec<_>>());
    assert_eq!(got["duplicates"], json!([]));
    assert_eq!(got["out_of_order"], json!([]));
    // A module without the change-feed grant was pushed nothing.
    let (_, basic) = module_get(&host, &format!("/{A}/linkage-basic/kv")).await;
    assert_eq!(basic, 0);
    host.kill();

    // After a restart, a move-out reaches the module once, after everything before it.
    let host = spec.start().unwrap();
    let csv = export(&host, &admin, A, "residents", "utf-8").await;
    let text = String::from_utf8(csv).unwrap();
    let line = text.lines().nth(1).unwrap();
    let mut fields: Vec<&str> = line.split(',').collect();
    fields[11] = "転出";
    fields[12] = "2026-11-20";
    fields[13] = "転出";
    let file = format!("{HEADER}{}\r\n", fields.join(","));
    let report = json_of(import(&host, &admin, A, "residents", "utf-8", file.into_bytes()).await).await;
    assert_eq!(report["changes"], 1, "{report}");
    let new_head = wait_delivered(&host, &admin, A, "linkage").await;
    assert_eq!(new_head, head + 1);
    let got = received(&host, A).await;
    let changes = got["changes"].as_array().unwrap();
    assert_eq!(changes.len() as i64, new_head);
    let last = &changes.last().unwrap()["change"];
    assert_eq!(last["kind"], "moved-out");
    assert_eq!(last["addressee_number"], fields[0]);
    assert_eq!(last["effective_date"], "2026-11-20");
    assert_eq!(got["duplicates"], json!([]));
    assert_eq!(got["out_of_order"], json!([]));

    // Each push is in the audit trail, once.
    let mut pushes = 0;
    let mut after = 0;
    loop {
        let rows = json_of(host.send_as(&admin, reqwest::Method::GET, &format!("/api/v1/municipalities/{A}/audit?module=linkage&after={after}&limit=1000"), None).await).await;
        let rows = rows.as_array().unwrap();
        if rows.is_empty() {
            break;
        }
        pushes += rows.iter().filter(|r| r["interface"] == "change-handler.on-change").count() as i64;
        after = rows.last().unwrap()["position"].as_i64().unwrap();
    }
    assert_eq!(pushes, new_head);
}

#[tokio::test]
async fn changes_are_pushed_exactly_once_in_order_on_sqlite() {
    changes_are_pushed_exactly_once_in_order(Backend::Sqlite).await;
}

#[tokio::test]
async fn changes_are_pushed_exactly_once_in_order_on_postgres() {
    changes_are_pushed_exactly_once_in_order(Backend::Postgres).await;
}

/// Every audit row of `module` in `code`, paged by position.
async fn audit_rows(host: &Host, admin: &str, code: &str, module: &str) -> Vec<Value> {
    let (mut all, mut after) = (Vec::new(), 0);
    loop {
        let page = json_of(host.send_as(admin, reqwest::Method::GET, &format!("/api/v1/municipalities/{code}/audit?module={module}&after={after}&limit=1000"), None).await).await;
        let page = page.as_array().unwrap().clone();
        let Some(last) = page.last() else { return all };
        after = last["position"].as_i64().unwrap();
        all.extend(page);
    }
}

/// The last position of `code`'s audit trail now (0 when it is empty).
async fn audit_head(host: &Host, admin: &str, code: &str) -> i64 {
    let rows = audit_rows(host, admin, code, "linkage").await;
    rows.last().map(|r| r["position"].as_i64().unwrap()).unwrap_or(0)
}

/// Waits until the audit trail has, after `position`, a `resident-registry.get` of `number`
/// by the linkage module; returns every row after `position`.
async fn wait_audited_read(host: &Host, admin: &str, position: i64, number: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows: Vec<Value> = audit_rows(host, admin, A, "linkage").await.into_iter().filter(|r| r["position"].as_i64().unwrap() > position).collect();
        if rows.iter().any(|r| r["interface"] == "resident-registry.get" && r["query"] == format!("addressee-number={number}")) {
            return rows;
        }
        assert!(Instant::now() < deadline, "the read of {number} never reached the audit trail\n{}", host.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_read_stays_in_the_audit_trail_when_the_client_leaves_or_the_handler_traps() {
    let dir = tempfile::tempdir().unwrap();
    let host = spec(Backend::Sqlite, dir.path(), true).await.start().unwrap();
    let admin = host.token("admin", Some(A));
    wait_delivered(&host, &admin, A, "linkage").await;
    let csv = String::from_utf8(export(&host, &admin, A, "residents", "utf-8").await).unwrap();
    let mut living = csv.lines().skip(1).map(|l| l.split(',').collect::<Vec<&str>>()).filter(|f| f[11] != "転出" && f[11] != "死亡");

    // A client that gives up while the module, having read a resident, is still running.
    let first = living.next().unwrap();
    let head = audit_head(&host, &admin, A).await;
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().unwrap();
    let gave_up = impatient.get(host.url(&format!("/{A}/linkage/read-then-spin/{}", first[0]))).send().await;
    assert!(gave_up.is_err_and(|e| e.is_timeout()), "the module should still be spinning");
    let rows = wait_audited_read(&host, &admin, head, first[0]).await;
    assert_eq!(rows.len(), 1, "exactly the one read: {rows:?}");
    assert_eq!(rows[0]["records"], json!([first[0]]));

    // A change handler that reads the resident the change is about, then traps: the delivery
    // fails (and is retried), and the read is on record anyway; the hand-over is not.
    assert_eq!(host.client.post(host.url(&format!("/{A}/linkage/trap-after-reading"))).send().await.unwrap().status(), 200);
    let mut moved = living.next().unwrap();
    (moved[11], moved[12], moved[13]) = ("転出", "2026-11-20", "転出");
    let head = audit_head(&host, &admin, A).await;
    let report = json_of(import(&host, &admin, A, "residents", "utf-8", format!("{HEADER}{}\r\n", moved.join(",")).into_bytes()).await).await;
    assert_eq!(report["changes"], 1, "{report}");
    wait_audited_read(&host, &admin, head, moved[0]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let deliveries = json_of(host.send_as(&admin, reqwest::Method::GET, &format!("/api/v1/municipalities/{A}/linkage/deliveries"), None).await).await;
        let linkage = deliveries.as_array().unwrap().iter().find(|d| d["module"] == "linkage" && d["feed"] == "changes").unwrap().clone();
        if linkage["failures"].as_i64().unwrap() > 0 {
            assert!(!linkage["last_error"].as_str().unwrap_or_default().is_empty(), "the failure says why: {linkage}");
            break;
        }
        assert!(Instant::now() < deadline, "the trapping delivery was never counted: {linkage}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows: Vec<Value> = audit_rows(&host, &admin, A, "linkage").await.into_iter().filter(|r| r["position"].as_i64().unwrap() > head).collect();
    assert!(rows.iter().any(|r| r["interface"] == "resident-registry.get" && r["caller_role"] == "platform"), "{rows:?}");
    assert!(rows.iter().all(|r| r["interface"] != "change-handler.on-change"), "a failed delivery is not recorded as handed over: {rows:?}");
}

/// Two imports of the same new residents at once, through two hosts on PostgreSQL (or one
/// on SQLite): they run one after the other, so each resident is registered once and the
/// feed has one change for each.
async fn concurrent_imports_register_each_resident_once(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let first = spec(backend, dir.path(), true).await;
    let one = first.start().unwrap();
    let two = (backend == Backend::Postgres).then(|| first.replica(&dir.path().join("second")).start().unwrap());
    let other = two.as_ref().unwrap_or(&one);
    let admin = one.token("admin", Some(A));
    let file: String = std::iter::once(HEADER.to_string())
        .chain((0..200).map(|i| row(&format!("99{i:05}"), &format!("98{i:05}"), "並行\u{3000}太郎", "ヘイコウ　タロウ", "住民", "", "")))
        .collect();
    let (r1, r2) = tokio::join!(
        import(&one, &admin, A, "residents", "utf-8", file.clone().into_bytes()),
        import(other, &admin, A, "residents", "utf-8", file.clone().into_bytes()),
    );
    let (r1, r2) = (json_of(r1).await, json_of(r2).await);
    let mut inserted = [r1["inserted"].as_u64().unwrap(), r2["inserted"].as_u64().unwrap()];
    inserted.sort();
    assert_eq!(inserted, [0, 200], "one import inserted them, the other found them: {r1} {r2}");
    let registered = changes_by_resident(&one, &admin, "99").await;
    assert_eq!(registered.len(), 200);
    assert!(registered.values().all(|n| *n == 1), "a resident registered twice: {:?}", registered.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>());
}

#[tokio::test]
async fn concurrent_imports_register_each_resident_once_on_sqlite() {
    concurrent_imports_register_each_resident_once(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_imports_register_each_resident_once_on_two_postgres_hosts() {
    if std::env::var("NUKISASHI_TEST_DATABASE_URL").is_err() {
        eprintln!("skipped: needs PostgreSQL (cargo xtask test starts one)");
        return;
    }
    concurrent_imports_register_each_resident_once(Backend::Postgres).await;
}

/// A reader tailing the audit trail while two replicas write it at once (PostgreSQL)
/// misses no row: positions are gap-free per municipality and taken in commit order, so
/// paging with `after` never steps over a row that commits late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tailing_the_audit_trail_skips_no_row_while_two_replicas_write_it() {
    if std::env::var("NUKISASHI_TEST_DATABASE_URL").is_err() {
        eprintln!("skipped: needs PostgreSQL (cargo xtask test starts one)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let first = spec(Backend::Postgres, dir.path(), true).await;
    let one = first.start().unwrap();
    let two = first.replica(&dir.path().join("second")).start().unwrap();
    let admin = one.token("admin", Some(A));
    wait_delivered(&one, &admin, A, "linkage").await;
    let csv = String::from_utf8(export(&one, &admin, A, "residents", "utf-8").await).unwrap();
    let numbers: Vec<String> = csv.lines().skip(1).take(40).map(|l| l.split(',').next().unwrap().to_string()).collect();
    let page_of = |after: i64| {
        let (one, admin) = (&one, &admin);
        async move {
            let page = json_of(one.send_as(admin, reqwest::Method::GET, &format!("/api/v1/municipalities/{A}/audit?after={after}&limit=1000"), None).await).await;
            page.as_array().unwrap().iter().map(|r| r["position"].as_i64().unwrap()).collect::<Vec<i64>>()
        }
    };
    // Every position after `after`, paging to the end.
    let rest_of_trail = |after: i64| {
        let page_of = &page_of;
        async move {
            let (mut all, mut after) = (Vec::new(), after);
            loop {
                let page = page_of(after).await;
                let Some(last) = page.last() else { return all };
                after = *last;
                all.extend(page);
            }
        }
    };
    let head = rest_of_trail(0).await.last().copied().unwrap_or(0);

    // Writers: 240 reads through both replicas, 16 at a time.
    let writing = async {
        let hosts = [&one, &two];
        use futures::StreamExt as _;
        futures::stream::iter(0..240usize)
            .for_each_concurrent(16, |i| {
                let (host, number) = (hosts[i % 2], &numbers[i % numbers.len()]);
                async move {
                    let r = host.client.get(host.url(&format!("/{A}/linkage/resident/{number}"))).send().await.unwrap();
                    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
                }
            })
            .await;
    };
    // The tailer pages as fast as it can while they write, and once more after.
    let done = std::sync::atomic::AtomicBool::new(false);
    let tailing = async {
        let (mut seen, mut after) = (Vec::new(), head);
        loop {
            let finished = done.load(std::sync::atomic::Ordering::SeqCst);
            let page = page_of(after).await;
            if let Some(last) = page.last() {
                after = *last;
            }
            seen.extend(page);
            if finished {
                return seen;
            }
        }
    };
    let (_, seen) = tokio::join!(
        async {
            writing.await;
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        },
        tailing
    );
    let expected: Vec<i64> = (head + 1..=head + seen.len() as i64).collect();
    assert_eq!(seen, expected, "the tail skipped or repeated a position");
    assert!(seen.len() >= 240, "every read is on record: {} rows", seen.len());
    // And the trail as read afterwards is exactly what the tail saw.
    assert_eq!(rest_of_trail(head).await, seen);
}

/// How many changes municipality A's feed has for each resident whose 宛名番号 starts
/// with `prefix`.
async fn changes_by_resident(host: &Host, admin: &str, prefix: &str) -> BTreeMap<String, u32> {
    let (mut registered, mut after) = (BTreeMap::<String, u32>::new(), 0);
    loop {
        let page = json_of(host.send_as(admin, reqwest::Method::GET, &format!("/api/v1/municipalities/{A}/linkage/changes?after={after}&limit=1000"), None).await).await;
        let changes = page["changes"].as_array().unwrap();
        if changes.is_empty() {
            return registered;
        }
        for c in changes.iter().filter(|c| c["addressee_number"].as_str().unwrap().starts_with(prefix)) {
            *registered.entry(c["addressee_number"].as_str().unwrap().to_string()).or_default() += 1;
        }
        after = page["next"].as_i64().unwrap();
    }
}

/// Residents of municipality A whose 宛名番号 starts with `prefix`, and their changes.
async fn crash_rows(host: &Host, admin: &str, prefix: &str) -> (usize, BTreeMap<String, u32>) {
    let csv = String::from_utf8(export(host, admin, A, "residents", "utf-8").await).unwrap();
    let residents = csv.lines().skip(1).filter(|l| l.starts_with(prefix)).count();
    (residents, changes_by_resident(host, admin, prefix).await)
}

/// kill -9 while an import runs: after the restart the registry has all of the file or
/// none of it, with exactly one change per resident it has; the import then completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_an_import_leaves_all_of_it_or_none() {
    const ROWS: usize = 3000;
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(Backend::Sqlite, dir.path(), true).await;
    let mut host = spec.start().unwrap();
    let admin = host.token("admin", Some(A));
    // Each round imports residents of its own (numbers `9{round}…`), so a round that
    // committed does not make the next one a no-op.
    let file = |round: usize| -> String {
        std::iter::once(HEADER.to_string())
            .chain((0..ROWS).map(|i| row(&format!("9{round}{i:05}"), &format!("8{round}{i:05}"), "停電\u{3000}花子", "テイデン　ハナコ", "住民", "", "")))
            .collect()
    };
    let mut cut_short = 0;
    // Where the fault lands: from before the upload is read to after the commit.
    for (round, delay_ms) in [2, 15, 40, 90, 200].into_iter().enumerate() {
        let request = host
            .client
            .post(host.url(&format!("/api/v1/municipalities/{A}/linkage/residents/import?encoding=utf-8")))
            .bearer_auth(&admin)
            .body(file(round))
            .send();
        let importing = tokio::spawn(request);
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        host.kill();
        let acknowledged = matches!(importing.await.unwrap(), Ok(r) if r.status() == 200);
        host = spec.start().unwrap();
        let (residents, registered) = crash_rows(&host, &admin, &format!("9{round}")).await;
        assert!(residents == 0 || residents == ROWS, "killed after {delay_ms} ms: {residents} of {ROWS} residents are visible");
        assert!(!acknowledged || residents == ROWS, "an acknowledged import is lost");
        assert_eq!(registered.len(), residents, "killed after {delay_ms} ms: changes and registry disagree");
        assert!(registered.values().all(|n| *n == 1), "a resident registered twice");
        cut_short += usize::from(residents == 0);
    }
    assert!(cut_short > 0, "every import finished before its kill: the test did not test a crash");
    let report = json_of(import(&host, &admin, A, "residents", "utf-8", file(0).into_bytes()).await).await;
    assert!(report["inserted"].as_u64().is_some(), "{report}");
    let (residents, registered) = crash_rows(&host, &admin, "90").await;
    assert_eq!((residents, registered.len()), (ROWS, ROWS));
    assert!(registered.values().all(|n| *n == 1));
}
