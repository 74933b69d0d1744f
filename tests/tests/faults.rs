//! Fault containment: each misbehaving route gets a clear problem+json naming the limit or
//! fault, and a healthy module answers correctly during and after every fault.

use nukisashi_e2e::{Backend, Host, HostSpec, problem};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const CHIYODA: &str = "131016";

/// Small limits so the faults hit them quickly.
const LIMITS: &str = "[limits]\ndeadline_ms = 1500\nmemory_bytes = 33554432\nresponse_body_bytes = 1048576\n";

async fn start() -> (tempfile::TempDir, Host) {
    let dir = tempfile::tempdir().unwrap();
    let host = HostSpec::new(Backend::Sqlite, dir.path(), &["guestbook", "fault-fixture"])
        .await
        .unwrap()
        .settings(LIMITS)
        .start()
        .unwrap();
    (dir, host)
}

/// The healthy module works and returns what was stored.
async fn healthy(host: &Host, marker: &str) {
    let r = host.post_json(&format!("/{CHIYODA}/guestbook/entries"), &json!({"name": "監視", "message": marker})).await;
    assert_eq!(r.status(), 201, "healthy module failed while {marker}");
    let id = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
    let r = host.get(&format!("/{CHIYODA}/guestbook/entries/{id}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["message"], marker);
}

/// Runs the fault request while the healthy module keeps being called, then checks both.
async fn contained(route: &str, status: u16, problem_type: &str, detail_contains: &str) {
    let (_dir, host) = start().await;
    let fault = {
        let client = host.client.clone();
        let url = host.url(&format!("/{CHIYODA}/fault-fixture/{route}"));
        tokio::spawn(async move {
            let started = Instant::now();
            (client.get(url).send().await.unwrap(), started.elapsed())
        })
    };
    // Keep calling the healthy module while the fault runs.
    let mut calls = 0;
    while !fault.is_finished() && calls < 200 {
        healthy(&host, &format!("during {route} #{calls}")).await;
        calls += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (response, elapsed) = fault.await.unwrap();
    assert_eq!(response.status(), status, "{route}: {}", host.log());
    let p = problem(response).await;
    assert_eq!(p["type"], problem_type, "{route}: {p}");
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains(detail_contains), "{route}: {detail}");
    assert!(detail.contains("fault-fixture"), "the detail names the module: {detail}");
    assert!(elapsed < Duration::from_secs(10), "{route} took {elapsed:?}");
    healthy(&host, &format!("after {route}")).await;
    // The faulty module itself still serves its healthy route: each request is a fresh instance.
    assert_eq!(host.get(&format!("/{CHIYODA}/fault-fixture/ok")).await.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn infinite_loop_hits_the_deadline() {
    contained("loop", 504, "urn:nukisashi:problem:deadline-exceeded", "deadline of 1500 ms").await;
}

#[tokio::test]
async fn memory_bomb_hits_the_memory_limit() {
    contained("bomb", 507, "urn:nukisashi:problem:memory-limit-exceeded", "memory limit of 33554432 bytes").await;
}

#[tokio::test]
async fn deep_recursion_is_a_stack_overflow() {
    contained("recurse", 500, "urn:nukisashi:problem:stack-overflow", "runaway recursion").await;
}

#[tokio::test]
async fn panic_is_reported_and_logged() {
    contained("panic", 500, "urn:nukisashi:problem:module-panic", "panicked").await;
}

#[tokio::test]
async fn huge_response_hits_the_response_limit() {
    contained("huge", 502, "urn:nukisashi:problem:response-too-large", "1048576 bytes").await;
}

#[tokio::test]
async fn panic_message_goes_to_the_log_not_the_caller() {
    let (_dir, host) = start().await;
    let p = problem(host.get(&format!("/{CHIYODA}/fault-fixture/panic")).await).await;
    assert!(!p["detail"].as_str().unwrap().contains("on purpose"));
    let request_id = p["request_id"].as_str().unwrap().to_string();
    // The log line with the panic message carries the request id.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = host.log();
        if log.lines().any(|l| l.contains(&request_id) && l.contains("this module panics on purpose")) {
            break;
        }
        assert!(Instant::now() < deadline, "panic message not logged under {request_id}:\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_trap_keeps_its_backtrace_in_the_log() {
    let (_dir, host) = start().await;
    let r = host.get(&format!("/{CHIYODA}/fault-fixture/abort")).await;
    assert_eq!(r.status(), 500);
    let p = problem(r).await;
    assert_eq!(p["type"], "urn:nukisashi:problem:module-trap");
    let detail = p["detail"].as_str().unwrap();
    // The caller learns the fault, the module and where to look; not the module's insides.
    assert!(detail.contains("the module trapped (fault-fixture") && detail.contains("request id"), "{detail}");
    for internal in ["backtrace", "wasm", "0x", "abort", "unreachable"] {
        assert!(!detail.contains(internal), "the detail reveals `{internal}`: {detail}");
    }
    let request_id = p["request_id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !host.log().lines().any(|l| l.contains(&request_id) && l.contains("wasm backtrace")) {
        assert!(Instant::now() < deadline, "the trap's backtrace is not in the log under {request_id}:\n{}", host.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
