//! The governor, tried from outside: one municipality, one module or one client cannot
//! hurt the others. Slow and flooding clients, modules that use up every resource they can
//! reach, a change handler that never returns, slowloris connections and a stalled import
//! upload — each against a real host over loopback, bounded in count and time.

use nukisashi_e2e::{Backend, Host, HostSpec, linkage_plugin, staged_plugin};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CHIYODA: &str = "131016";
const SAPPORO: &str = "011002";

/// These tests load the machine on purpose and measure time: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The guestbook with every path public (a file plugin without a manifest).
fn guestbook(dir: &Path) -> std::path::PathBuf {
    staged_plugin(
        dir,
        "guestbook",
        "guestbook",
        "id = \"guestbook\"\nversion = \"1.0.0\"\nvendor = \"local\"\ncategory = \"test\"\nname = { ja = \"記帳\", en = \"Guestbook\" }\n\
         description = \"記帳\"\ncapabilities = [\"kv\"]\nwit_major = 1\nroutes = [{ path = \"/\", auth = \"public\" }]\n",
    )
}

/// The fault fixture with kv and events, subscribed to its own `flood` events.
fn fixture(dir: &Path) -> std::path::PathBuf {
    staged_plugin(
        dir,
        "fault-fixture",
        "fault-fixture",
        "id = \"fault-fixture\"\nversion = \"1.0.0\"\nvendor = \"local\"\ncategory = \"test\"\nname = { ja = \"試験\", en = \"Fixture\" }\n\
         description = \"exhausts what it can\"\ncapabilities = [\"kv\", \"events\"]\nsubscribes = [\"fault-fixture/flood\"]\nwit_major = 1\n\
         routes = [{ path = \"/\", auth = \"public\" }]\n",
    )
}

async fn start(dir: &Path, plugins: Vec<std::path::PathBuf>, settings: &str) -> Host {
    let mut spec = HostSpec::new(Backend::Sqlite, &dir.join("host"), &[]).await.unwrap().settings(settings);
    spec.plugins = plugins;
    spec.start().unwrap()
}

/// Latencies of `count` GETs of `url` at concurrency `c`; every answer must be 200.
async fn load(host: &Host, url: &str, count: usize, c: usize) -> Vec<Duration> {
    load_with(host.client.clone(), url.to_string(), count, c).await
}

async fn load_with(client: reqwest::Client, url: String, count: usize, c: usize) -> Vec<Duration> {
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..c {
        let (client, url, next) = (client.clone(), url.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut times = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < count {
                let started = Instant::now();
                let r = client.get(&url).send().await.unwrap();
                assert_eq!(r.status(), 200, "{url}: {}", r.text().await.unwrap_or_default());
                r.bytes().await.unwrap();
                times.push(started.elapsed());
            }
            times
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    all.sort();
    all
}

/// The same, measured from a thread and runtime of its own, so that the load a test makes
/// elsewhere in this process does not delay the measuring client itself.
async fn load_apart(host: &Host, url: &str, count: usize, c: usize) -> Vec<Duration> {
    let (client, url) = (host.client.clone(), url.to_string());
    tokio::task::spawn_blocking(move || tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(load_with(client, url, count, c)))
        .await
        .unwrap()
}

fn p99(sorted: &[Duration]) -> Duration {
    sorted[(sorted.len() * 99 / 100).min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_and_floods_from_one_municipality_do_not_starve_another() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // Tight shares (one instance per core, one per municipality), so that the two
    // municipalities compete for instances and the fair queue hands them out in turn.
    let settings = "[limits.admission]\ninstances = 2\nper_municipality = 1\nper_module = 1\nqueue_per_municipality = 8\nqueue_ms = 500\n\
                    [limits.connections]\nbody_read_ms = 4000\n";
    let host = start(dir.path(), vec![guestbook(dir.path())], settings).await;
    let victim = format!("{}/entries", host.origin(SAPPORO, "guestbook"));
    load_apart(&host, &victim, 100, 2).await;
    let steady = p99(&load_apart(&host, &victim, 3000, 2).await);

    // 128 slow POSTs: headers sent, the body trickled a byte at a time.
    let mut slow = Vec::new();
    for _ in 0..128 {
        let port = host.port();
        slow.push(tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let head = format!("POST /entries HTTP/1.1\r\nhost: guestbook--{CHIYODA}.localhost:{port}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n");
            s.write_all(head.as_bytes()).await.unwrap();
            let mut answer = Vec::new();
            for _ in 0..40 {
                if s.write_all(b" ").await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer)).await;
            String::from_utf8_lossy(&answer).into_owned()
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during_slow = p99(&load_apart(&host, &victim, 3000, 2).await);
    for s in slow {
        let answer = s.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "a body that does not arrive in time is refused, not waited for: {answer}");
        assert!(answer.contains("body_read_ms"), "{answer}");
    }

    // A flood of fast requests from one municipality, 64 at once, from a runtime of its own.
    let attacker = format!("{}/entries", host.origin(CHIYODA, "guestbook"));
    let client = host.client.clone();
    let flood = tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let until = Instant::now() + Duration::from_secs(4);
            let mut clients = Vec::new();
            for _ in 0..64 {
                let (client, url) = (client.clone(), attacker.clone());
                clients.push(tokio::spawn(async move {
                    let (mut ok, mut refused, mut retry_after) = (0, 0, 0);
                    while Instant::now() < until {
                        let r = client.get(&url).send().await.unwrap();
                        match r.status().as_u16() {
                            200 => ok += 1,
                            503 => {
                                refused += 1;
                                if r.headers().get("retry-after").is_some() {
                                    retry_after += 1;
                                }
                                let p: Value = r.json().await.unwrap();
                                assert!(p["type"].as_str().unwrap().starts_with("urn:nukisashi:problem:over-capacity-"), "{p}");
                                assert!(p["detail"].as_str().unwrap().contains("[limits.admission]"), "the refusal names the limit: {p}");
                                continue;
                            }
                            other => panic!("the flood got {other}"),
                        }
                        r.bytes().await.unwrap();
                    }
                    (ok, refused, retry_after)
                }));
            }
            let mut totals = (0, 0, 0);
            for c in clients {
                let (o, r, a) = c.await.unwrap();
                totals = (totals.0 + o, totals.1 + r, totals.2 + a);
            }
            totals
        })
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during_flood = p99(&load_apart(&host, &victim, 3000, 2).await);
    let (ok, refused, retry_after) = flood.await.unwrap();
    println!("steady p99 {steady:?}; during 128 slow bodies {during_slow:?}; during a 64-client flood {during_flood:?} ({ok} served, {refused} refused)");
    assert!(ok > 0, "the flooding municipality is still served within its share");
    assert!(refused > 0 && retry_after == refused, "its excess gets 503 with Retry-After ({refused} refused, {retry_after} with the header)");
    // The two cores are shared by the host, the flood and the measurement, so the bound
    // allows for scheduling noise (a p99 of 5 ms against 1 ms steady was seen on a quiet
    // machine). Starvation would be far beyond it: a request queued behind the flood's 64
    // clients, at about a millisecond each on two cores, waits some 30 ms.
    let bound = steady * 4 + Duration::from_millis(4);
    assert!(during_slow <= bound, "slow bodies: p99 {during_slow:?} against {steady:?} steady");
    assert!(during_flood <= bound, "a flood: p99 {during_flood:?} against {steady:?} steady");
}

#[tokio::test]
async fn a_body_over_the_limit_never_reaches_the_module() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let host = start(dir.path(), vec![fixture(dir.path())], "[limits.connections]\nbody_read_ms = 1000\n").await;
    let url = format!("{}/echo-body", host.origin(CHIYODA, "fault-fixture"));
    let send_raw = |head: String, body: Vec<u8>| {
        let port = host.port();
        async move {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            s.write_all(head.as_bytes()).await.unwrap();
            // The host may answer (and close) before the body is all sent.
            let _ = s.write_all(&body).await;
            let mut answer = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer)).await;
            String::from_utf8_lossy(&answer).into_owned()
        }
    };
    let origin = format!("fault-fixture--{CHIYODA}.localhost:{}", host.port());
    // Declared too large: refused before a byte of it is read.
    let answer = send_raw(format!("POST /echo-body HTTP/1.1\r\nhost: {origin}\r\ncontent-length: {}\r\n\r\n", 64 << 20), vec![b'x'; 1 << 20]).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("request_body_bytes") && !answer.contains("x-nukisashi-version"), "the module did not answer: {answer}");
    // Not declared (chunked) and too large: refused once it gets there.
    let mut chunked = Vec::new();
    for _ in 0..17 {
        chunked.extend_from_slice(format!("{:x}\r\n", 1 << 20).as_bytes());
        chunked.extend_from_slice(&vec![b'x'; 1 << 20]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let answer = send_raw(format!("POST /echo-body HTTP/1.1\r\nhost: {origin}\r\ntransfer-encoding: chunked\r\n\r\n"), chunked).await;
    assert!(answer.starts_with("HTTP/1.1 413") && !answer.contains("x-nukisashi-version"), "{answer}");
    // Within the limit, the module gets all of it.
    let r = host.client.post(&url).body(vec![b'x'; 1 << 20]).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), (1 << 20).to_string());
    // Too slow: 408, and the connection is closed.
    let raw = format!("POST /echo-body HTTP/1.1\r\nhost: fault-fixture--{CHIYODA}.localhost:{}\r\ncontent-length: 10\r\n\r\nabc", host.port());
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", host.port())).await.unwrap();
    s.write_all(raw.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"), "{}", String::from_utf8_lossy(&answer));
}

async fn exhaust(host: &Host, what: &str) -> (u16, Value) {
    host.call(None, Method::GET, &format!("/{CHIYODA}/fault-fixture/exhaust/{what}"), None).await
}

#[tokio::test]
async fn a_module_that_uses_up_what_it_can_reach_is_stopped_and_the_host_stays_bounded() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let settings = "[limits]\nresources = 200\nlog_bytes = 65536\ndelivery_write_bytes = 1048576\n\
                    [limits.storage]\nkv_bytes = 8388608\nkv_keys = 500\nevents_per_minute = 60\nevent_burst = 20\n";
    let host = start(dir.path(), vec![fixture(dir.path()), guestbook(dir.path())], settings).await;
    host.get(&format!("/{CHIYODA}/fault-fixture/ok")).await;
    let baseline = host.rss_bytes();

    // kv values until the bytes quota; many keys until the keys quota.
    let (status, body) = exhaust(&host, "kv-bytes").await;
    assert_eq!(status, 200, "{body}");
    assert!((6..=8).contains(&body["count"].as_u64().unwrap()), "8 MiB hold 7 values of 1 MiB: {body}");
    assert!(body["refusal"].as_str().unwrap().contains("kv_bytes"), "{body}");
    let (_, again) = exhaust(&host, "kv-bytes").await;
    assert_eq!(again["count"], 0, "the quota is per (municipality, module), across requests: {again}");
    let (_, keys) = exhaust(&host, "kv-keys").await;
    assert!(keys["count"].as_u64().unwrap() < 500, "{keys}");
    assert!(keys["refusal"].as_str().unwrap().contains("kv_keys"), "{keys}");
    // Another municipality's storage of the same module is its own.
    let (_, sapporo) = host.call(None, Method::GET, &format!("/{SAPPORO}/fault-fixture/exhaust/kv-bytes"), None).await;
    assert!(sapporo["count"].as_u64().unwrap() >= 6, "{sapporo}");

    // Publishing in a loop: the burst, then the rate.
    let (_, events) = exhaust(&host, "events").await;
    assert_eq!(events["count"], 20, "{events}");
    assert!(events["refusal"].as_str().unwrap().contains("events_per_minute"), "{events}");

    // A log flood: the module is not stopped, its lines past the limit are dropped.
    let log_before = host.log().len();
    let (status, _) = exhaust(&host, "log").await;
    assert_eq!(status, 200);
    let logged = host.log().len() - log_before;
    assert!(logged < 1 << 20, "100,000 lines of 4 KiB wrote {logged} bytes of log");

    // Many wasi:http headers objects held at once, four requests at a time.
    let floods: Vec<_> = (0..4).map(|_| exhaust(&host, "headers")).collect();
    for (status, body) in futures::future::join_all(floods).await {
        assert_eq!(status, 507, "{body}");
        assert_eq!(body["type"], "urn:nukisashi:problem:resource-limit-exceeded");
        assert!(body["detail"].as_str().unwrap().contains("[limits] resources"), "{body}");
    }

    // The events it published make its own handler write kv in a loop: each delivery is
    // refused at the delivery's write limit and recorded, and nothing piles up.
    let admin = host.token("admin", Some(CHIYODA));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, deliveries) = host.call(Some(&admin), Method::GET, &format!("/api/v1/municipalities/{CHIYODA}/linkage/deliveries"), None).await;
        let failing = deliveries.as_array().unwrap().iter().find(|d| d["module"] == "fault-fixture" && d["feed"] == "events").cloned();
        if let Some(d) = failing.filter(|d| d["last_error"].as_str().is_some_and(|e| e.contains("delivery_write_bytes"))) {
            assert!(d["failures"].as_i64().unwrap() >= 1);
            break;
        }
        assert!(Instant::now() < deadline, "the event handler's writes were not refused: {deliveries}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let grown = host.rss_bytes().saturating_sub(baseline);
    println!("host RSS grew {} MiB through every exhaustion", grown >> 20);
    assert!(grown < 200 << 20, "host RSS grew {} MiB", grown >> 20);
    // The municipality's admin sees what the module keeps against its quota.
    let (_, usage) = host.call(Some(&admin), Method::GET, &format!("/api/v1/municipalities/{CHIYODA}/usage"), None).await;
    let storage = usage["storage"].as_array().unwrap().iter().find(|s| s["module"] == "fault-fixture").cloned().unwrap_or(Value::Null);
    assert_eq!(storage["kv_bytes_limit"], 8388608, "{usage}");
    assert!(storage["kv_bytes"].as_i64().unwrap() > 6 << 20, "{usage}");
    // Everyone else kept working.
    let r = host.post_json(&format!("/{CHIYODA}/guestbook/entries"), &json!({"name": "監視", "message": "平常"})).await;
    assert_eq!(r.status(), 201);
    assert!(storage["events"].as_i64().unwrap() >= 20 && storage["events_per_minute_limit"] == 60, "{usage}");
    // And the refusals are counted by limit, with every configured limit.
    let metrics = host.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("nukisashi_governor_limit{limit=\"limits.storage.kv_bytes\"} 8388608"), "configured limits are in /metrics");
    for limit in ["kv-quota", "event-rate", "resources", "log-lines", "delivery-write-bytes"] {
        assert!(metrics.contains(&format!("nukisashi_governor_refusals_total{{limit=\"{limit}\"}}")), "{limit} refusals are counted:\n{metrics}");
    }
}

#[tokio::test]
async fn a_module_that_is_slow_everywhere_cannot_take_every_instance() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // 8 instances, 4 per municipality and per (municipality, module), 4 for one module
    // across all municipalities.
    let settings = "[limits]\ndeadline_ms = 4000\n[limits.admission]\ninstances = 8\nper_municipality = 4\nper_module = 4\nper_module_everywhere = 4\nqueue_ms = 500\n";
    let host = start(dir.path(), vec![fixture(dir.path()), guestbook(dir.path())], settings).await;
    // The fixture loops until its deadline in two municipalities, four requests each.
    let mut looping = Vec::new();
    for code in [CHIYODA, "141003"] {
        for _ in 0..4 {
            let (client, url) = (host.client.clone(), format!("{}/loop", host.origin(code, "fault-fixture")));
            looping.push(tokio::spawn(async move { client.get(url).send().await.unwrap().status().as_u16() }));
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Half the host is left for everyone else: 札幌市's guestbook answers throughout.
    let answered = load_apart(&host, &format!("{}/entries", host.origin(SAPPORO, "guestbook")), 200, 2).await;
    assert_eq!(answered.len(), 200);
    let statuses: Vec<u16> = futures::future::join_all(looping).await.into_iter().map(|s| s.unwrap()).collect();
    assert_eq!(statuses.iter().filter(|&&s| s == 504).count(), 4, "four loops ran to their deadline: {statuses:?}");
    assert_eq!(statuses.iter().filter(|&&s| s == 503).count(), 4, "the module's share everywhere turned the other four away: {statuses:?}");
}

#[tokio::test]
async fn one_municipality_cannot_take_the_hosts_buffers() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let settings = "[limits.connections]\nbody_read_ms = 4000\nidle_ms = 3000\nbody_buffer_bytes = 67108864\nbody_buffer_per_municipality = 16777216\n\
                    response_buffer_bytes = 67108864\nresponse_buffer_per_municipality = 33554432\n";
    let host = start(dir.path(), vec![fixture(dir.path()), guestbook(dir.path())], settings).await;
    let baseline = host.rss_bytes();
    let port = host.port();
    // Uploads to 千代田区 that declare 4 MiB and stall after sending it all but a byte.
    let mut stalled = Vec::new();
    for _ in 0..8 {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let head = format!("POST /echo-body HTTP/1.1\r\nhost: fault-fixture--{CHIYODA}.localhost:{port}\r\ncontent-length: {}\r\n\r\n", 4 << 20);
        s.write_all(head.as_bytes()).await.unwrap();
        let _ = s.write_all(&vec![b'x'; (4 << 20) - 1]).await;
        stalled.push(s);
    }
    // Once the host holds them, 千代田区's share is spent: a further upload is refused
    // before its body is sent (asked with `Expect: 100-continue`, so the refusal can be
    // read whole); 札幌市's uploads still go through.
    let chiyoda = format!("fault-fixture--{CHIYODA}.localhost:{port}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, text) = declare_upload(port, &chiyoda, 1 << 20).await;
        if status == 503 {
            assert!(text.contains("body_buffer_per_municipality"), "{text}");
            break;
        }
        assert_eq!(status, 100, "{text}");
        assert!(Instant::now() < deadline, "千代田区's stalled uploads never spent its share");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(declare_upload(port, &format!("fault-fixture--{SAPPORO}.localhost:{port}"), 1 << 20).await.0, 100);
    let r = host.client.post(format!("{}/echo-body", host.origin(SAPPORO, "fault-fixture"))).body(vec![b'y'; 1 << 20]).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), (1 << 20).to_string());
    drop(stalled);

    // Clients that ask for 4 MiB answers and never read them, in two waves: the second
    // must not grow the host (what the first made it touch stays, answers are not kept).
    let unread_wave = |n: usize| async move {
        let mut wave = Vec::new();
        for _ in 0..n {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.set_recv_buffer_size(4096).unwrap();
            let mut s = socket.connect(std::net::SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap();
            s.write_all(format!("GET /huge HTTP/1.1\r\nhost: fault-fixture--{CHIYODA}.localhost:{port}\r\n\r\n").as_bytes()).await.unwrap();
            wave.push(s);
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        wave
    };
    let first = unread_wave(40).await;
    let after_first = host.rss_bytes();
    let second = unread_wave(40).await;
    let after_second = host.rss_bytes();
    println!("unread 4 MiB answers: host RSS +{} MiB after 40, +{} MiB more after 40 more", after_first.saturating_sub(baseline) >> 20, after_second.saturating_sub(after_first) >> 20);
    assert!(after_second.saturating_sub(after_first) < 64 << 20, "more unread answers grew the host by {} MiB", after_second.saturating_sub(after_first) >> 20);
    assert!(after_second.saturating_sub(baseline) < 512 << 20, "unread answers grew the host by {} MiB", after_second.saturating_sub(baseline) >> 20);
    let unread = (first, second);
    // Others are served, with a share of their own.
    let r = host.client.get(format!("{}/huge", host.origin(SAPPORO, "fault-fixture"))).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().len(), 4 << 20);
    let answered = load_apart(&host, &format!("{}/entries", host.origin(SAPPORO, "guestbook")), 50, 2).await;
    assert_eq!(answered.len(), 50);
    // A client that does not read is closed after the idle time; its answer's budget comes back.
    drop(unread);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = host.client.get(format!("{}/huge", host.origin(CHIYODA, "fault-fixture"))).send().await.unwrap();
        if r.status() == 200 {
            assert_eq!(r.bytes().await.unwrap().len(), 4 << 20);
            break;
        }
        assert_eq!(r.status(), 503, "only the response budget may refuse it meanwhile");
        assert!(Instant::now() < deadline, "the budget of closed clients never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Declares a `len`-byte upload to `/echo-body` with `Expect: 100-continue` and sends none
/// of it: the host asks for the body (100) or refuses at once. Returns the status and, for
/// a refusal, its answer.
async fn declare_upload(port: u16, host: &str, len: usize) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let head = format!("POST /echo-body HTTP/1.1\r\nhost: {host}\r\ncontent-length: {len}\r\nexpect: 100-continue\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let (status, body_start, length) = loop {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await.expect("the host answers").unwrap();
        assert!(n > 0, "the host closed without answering: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            let length: usize = head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
            break (status, end + 4, length);
        }
    };
    if status == 100 {
        return (100, String::new());
    }
    while got.len() < body_start + length {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await.expect("the host finishes its answer").unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    (status, String::from_utf8_lossy(&got[body_start..]).into_owned())
}

/// Rewrites the first resident of `code` as moved out, through an import; returns its 宛名番号.
async fn move_out_first_resident(host: &Host, code: &str) -> String {
    let admin = host.token("admin", Some(code));
    let csv = host.send_as(&admin, Method::GET, &format!("/api/v1/municipalities/{code}/linkage/residents/export"), None).await.text().await.unwrap();
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    let mut fields: Vec<&str> = lines.next().unwrap().split(',').collect();
    fields[11] = "転出";
    fields[12] = "2026-11-20";
    fields[13] = "転出";
    let file = format!("{header}\r\n{}\r\n", fields.join(","));
    let r = host
        .client
        .post(host.url(&format!("/api/v1/municipalities/{code}/linkage/residents/import")))
        .bearer_auth(&admin)
        .body(file)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    fields[0].to_string()
}

async fn received(host: &Host, code: &str) -> Vec<Value> {
    let (_, got) = host.call(None, Method::GET, &format!("/{code}/linkage/received"), None).await;
    got["changes"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_change_handler_that_never_returns_delays_only_its_own_queue() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let plugin = linkage_plugin(&dir.path().join("host"), "linkage", &["kv", "resident-registry", "change-feed"]);
    // The deadline is long, so "did not wait behind it" is told apart by cause, not by a
    // stopwatch: 札幌市's change must arrive while 千代田区's handler is still stuck.
    let host = start(dir.path(), vec![plugin], "[limits]\ndeadline_ms = 8000\n").await;
    // Both municipalities are caught up with the demo's residents first.
    let deadline = Instant::now() + Duration::from_secs(60);
    while received(&host, CHIYODA).await.len() < 300 || received(&host, SAPPORO).await.len() < 300 {
        assert!(Instant::now() < deadline, "the demo's changes were not delivered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // From now on 千代田区's handler loops forever.
    let r = host.client.post(host.url(&format!("/{CHIYODA}/linkage/stall"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    move_out_first_resident(&host, CHIYODA).await;
    let moved = move_out_first_resident(&host, SAPPORO).await;
    let started = Instant::now();
    let admin = host.token("admin", Some(CHIYODA));
    let chiyoda_stopped = async || -> Option<Value> {
        let (_, deliveries) = host.call(Some(&admin), Method::GET, &format!("/api/v1/municipalities/{CHIYODA}/linkage/deliveries"), None).await;
        deliveries.as_array().unwrap().iter().find(|d| d["module"] == "linkage" && d["last_error"].as_str().is_some_and(|e| e.contains("deadline"))).cloned()
    };
    loop {
        if received(&host, SAPPORO).await.iter().any(|c| c["change"]["addressee_number"] == moved.as_str() && c["change"]["kind"] == "moved-out") {
            break;
        }
        if let Some(stopped) = chiyoda_stopped().await {
            let (_, deliveries) = host.call(Some(&host.token("admin", Some(SAPPORO))), Method::GET, &format!("/api/v1/municipalities/{SAPPORO}/linkage/deliveries"), None).await;
            panic!("札幌市's change waited until 千代田区's stuck handler was stopped ({stopped}); its deliveries: {deliveries}\n{}", host.log());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(chiyoda_stopped().await.is_none(), "千代田区's handler was stopped before 札幌市's change was seen");
    println!("札幌市's change arrived {:?} after its import, while 千代田区's handler was stuck", started.elapsed());
    // The stuck one is stopped at its deadline and backs off, recorded.
    let until = Instant::now() + Duration::from_secs(30);
    while chiyoda_stopped().await.is_none() {
        assert!(Instant::now() < until, "千代田区's stuck handler was not stopped at its deadline");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn slowloris_connections_are_closed_and_healthy_requests_go_on() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let host = start(dir.path(), vec![guestbook(dir.path())], "[limits.connections]\nheader_read_ms = 1500\nper_client = 90\n").await;
    raise_open_file_limit();
    let port = host.port();
    // 1,000 connections from ten client addresses (127.0.0.2–11 are loopback too), each
    // sending half a request line and then nothing.
    let mut attackers = Vec::new();
    for i in 0..1000u32 {
        attackers.push(tokio::spawn(async move {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(std::net::SocketAddr::from(([127, 0, 0, 2 + (i % 10) as u8], 0))).unwrap();
            let Ok(mut stream) = socket.connect(std::net::SocketAddr::from(([127, 0, 0, 1], port))).await else { return (false, Duration::ZERO) };
            let opened = Instant::now();
            let _ = stream.write_all(b"GET /entries HTTP/1.1\r\nhost: guestbook--131016.loc").await;
            let mut buf = [0u8; 64];
            // Closed by the host: end of stream or a reset, within the header timeout.
            let closed = tokio::time::timeout(Duration::from_secs(6), stream.read(&mut buf)).await.is_ok();
            (closed, opened.elapsed())
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let victim = format!("{}/entries", host.origin(SAPPORO, "guestbook"));
    let answered = load(&host, &victim, 200, 4).await;
    assert_eq!(answered.len(), 200, "healthy requests are answered during the attack");
    let mut closed = 0;
    let mut slowest = Duration::ZERO;
    for a in attackers {
        let (was_closed, after) = a.await.unwrap();
        if was_closed {
            closed += 1;
            slowest = slowest.max(after);
        }
    }
    println!("{closed} of 1000 slowloris connections closed by the host, the last after {slowest:?}");
    assert_eq!(closed, 1000, "every slow connection is closed (past the per-client cap at once, the rest at the header timeout)");
    assert!(slowest < Duration::from_secs(4), "{slowest:?}");
    assert_eq!(load(&host, &victim, 50, 4).await.len(), 50);
    let metrics = host.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("nukisashi_governor_refusals_total{limit=\"client-connections\"}"), "refused connections are counted:\n{metrics}");
}

/// The test opens a thousand sockets at once; the default soft limit may be 1,024.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain syscalls on a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

#[tokio::test]
async fn a_stalled_import_upload_blocks_nobody_on_sqlite() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let plugin = linkage_plugin(&dir.path().join("host"), "linkage", &["kv", "resident-registry"]);
    let host = start(dir.path(), vec![plugin], "[limits.connections]\nbody_read_ms = 6000\n").await;
    let admin = host.token("admin", Some(CHIYODA));
    // An admin's upload stops after its first line.
    let head = format!(
        "POST /api/v1/municipalities/{CHIYODA}/linkage/residents/import HTTP/1.1\r\nhost: 127.0.0.1:{}\r\nauthorization: Bearer {admin}\r\ncontent-length: 10000000\r\n\r\n宛名番号,",
        host.port()
    );
    let mut stalled = tokio::net::TcpStream::connect(("127.0.0.1", host.port())).await.unwrap();
    stalled.write_all(head.as_bytes()).await.unwrap();
    // Meanwhile another municipality's module reads residents (each read audited: a write).
    let csv = host.send_as(&host.token("admin", Some(SAPPORO)), Method::GET, &format!("/api/v1/municipalities/{SAPPORO}/linkage/residents/export"), None).await.text().await.unwrap();
    let number = csv.lines().nth(1).unwrap().split(',').next().unwrap().to_string();
    let started = Instant::now();
    let mut reads = 0;
    while started.elapsed() < Duration::from_secs(4) {
        let (status, body) = host.call(None, Method::GET, &format!("/{SAPPORO}/linkage/resident/{number}"), None).await;
        assert_eq!(status, 200, "a read with its audit row during the stalled upload: {body}");
        reads += 1;
    }
    assert!(reads > 20, "{reads}");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stalled.read_to_end(&mut answer)).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"), "{}", String::from_utf8_lossy(&answer));
}
