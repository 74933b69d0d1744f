//! Closed-loop load: `concurrency` workers sending requests back to back for a while,
//! spread over one or more base URLs (replicas behind a load balancer), with latencies.

use super::process::Server;
use std::time::{Duration, Instant};

#[derive(Default, Clone)]
pub struct Samples(pub Vec<Duration>);

impl Samples {
    pub fn percentile(&self, p: f64) -> Duration {
        percentile(&mut self.0.clone(), p)
    }
}

/// The `p` quantile (0–1) of `samples`, nearest rank; sorts them in place.
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples.get(((samples.len().max(1) as f64 - 1.0) * p).round() as usize).copied().unwrap_or_default()
}

/// What one round of load produced.
pub struct Run {
    /// Successful responses per second.
    pub rate: f64,
    /// Latency of each successful response.
    pub samples: Samples,
    /// Failed requests (connection errors and non-2xx answers).
    pub errors: u64,
}

/// Sends GET requests to `urls` (worker `w` starts at `urls[w % len]` and walks them in
/// turn) from `concurrency` workers for `length`.
pub async fn load(client: &reqwest::Client, urls: &[String], concurrency: usize, length: Duration) -> Run {
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let client = client.clone();
            let urls = urls.to_vec();
            tokio::spawn(async move {
                let (mut samples, mut errors) = (Vec::new(), 0u64);
                let mut i = w;
                while started.elapsed() < length {
                    let url = &urls[i % urls.len()];
                    i += 1;
                    let t = Instant::now();
                    match client.get(url).send().await {
                        Ok(response) if response.status().is_success() => match response.bytes().await {
                            Ok(_) => samples.push(t.elapsed()),
                            Err(_) => errors += 1,
                        },
                        _ => errors += 1,
                    }
                }
                (samples, errors)
            })
        })
        .collect();
    let (mut samples, mut errors) = (Samples::default(), 0);
    for w in workers {
        let (s, e) = w.await.expect("load worker");
        samples.0.extend(s);
        errors += e;
    }
    Run { rate: samples.0.len() as f64 / started.elapsed().as_secs_f64(), samples, errors }
}

/// The best of `rounds` runs (highest rate) of each target, the targets' rounds
/// interleaved so that machine noise hits them alike.
pub async fn best_interleaved(client: &reqwest::Client, targets: &[Vec<String>], concurrency: usize, rounds: usize, length: Duration) -> Vec<Run> {
    let best = best_interleaved_measured(client, targets, &vec![None; targets.len()], concurrency, rounds, length).await;
    best.into_iter().map(|(run, _)| run).collect()
}

/// [`best_interleaved`], also returning for each target the CPU time its server process
/// (when given) spent per successful request in the kept round.
pub async fn best_interleaved_measured(
    client: &reqwest::Client,
    targets: &[Vec<String>],
    servers: &[Option<&Server>],
    concurrency: usize,
    rounds: usize,
    length: Duration,
) -> Vec<(Run, Option<Duration>)> {
    let mut best: Vec<Option<(Run, Option<Duration>)>> = targets.iter().map(|_| None).collect();
    for _ in 0..rounds {
        for ((urls, server), best) in targets.iter().zip(servers).zip(best.iter_mut()) {
            let cpu_before = server.map(|s| s.cpu_time());
            let run = load(client, urls, concurrency, length).await;
            let served = run.samples.0.len().max(1) as u32;
            let cpu = server.zip(cpu_before).map(|(s, before)| s.cpu_time().saturating_sub(before) / served);
            if best.as_ref().is_none_or(|(b, _)| run.rate > b.rate) {
                *best = Some((run, cpu));
            }
        }
    }
    best.into_iter().map(|b| b.expect("at least one round")).collect()
}

pub fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}
