//! CPU time of one future: the thread CPU clock read around every poll, so a request's
//! module time counts only while it runs, not while it waits for the database or a slot.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

/// CPU time the current thread has used.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_THREAD_CPUTIME_ID exists on Linux and macOS.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// A running total of CPU time, readable while the measured future is still out.
#[derive(Clone, Default)]
pub struct CpuClock(Arc<AtomicU64>);

impl CpuClock {
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::Relaxed))
    }
}

pin_project_lite::pin_project! {
    /// `inner`, adding the CPU time of each of its polls to `clock`.
    pub struct CpuTimed<F> {
        #[pin]
        inner: F,
        clock: CpuClock,
    }
}

impl<F: Future> Future for CpuTimed<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let before = thread_cpu_time();
        let result = this.inner.poll(cx);
        let spent = thread_cpu_time().saturating_sub(before);
        this.clock.0.fetch_add(spent.as_nanos() as u64, Ordering::Relaxed);
        result
    }
}

/// Measures `inner`'s CPU time into `clock`.
pub fn timed<F: Future>(inner: F, clock: &CpuClock) -> CpuTimed<F> {
    CpuTimed { inner, clock: clock.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_work_but_not_waiting() {
        let clock = CpuClock::default();
        timed(tokio::time::sleep(Duration::from_millis(60)), &clock).await;
        assert!(clock.elapsed() < Duration::from_millis(20), "sleeping used {:?} of CPU", clock.elapsed());
        // Work until this thread has used 40 ms of CPU, however long a busy machine makes
        // that take on the wall clock.
        let clock = CpuClock::default();
        timed(
            async {
                let start = thread_cpu_time();
                let mut x = 0u64;
                while thread_cpu_time().saturating_sub(start) < Duration::from_millis(40) {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            },
            &clock,
        )
        .await;
        assert!(clock.elapsed() >= Duration::from_millis(40), "busy work measured only {:?}", clock.elapsed());
    }
}
