//! Admission of requests into instances: counted slots in front of the pooling allocator,
//! with limits per (municipality, module), per municipality and in all, and a bounded fair
//! queue for requests that cannot start at once.
//!
//! Fair means round robin between municipalities: when an instance frees up, the next
//! municipality in turn that has a waiting request within its own limits gets it, so a
//! municipality flooding the host waits behind its own requests, not in front of everyone
//! else's. Within a municipality requests start in arrival order (a request blocked only
//! by its module's limit lets the next module's go first). Platform work has slots of its
//! own that traffic cannot take.

use super::limits::AdmissionLimits;
use crate::lgcode::LgCode;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// Which limit kept a request out; named in its 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// All traffic instances of the host are in use.
    Host,
    /// The municipality's share is in use.
    Municipality,
    /// The (municipality, module)'s share is in use.
    Module,
    /// The module's share across all municipalities is in use (a module that is slow
    /// everywhere cannot take every instance).
    ModuleEverywhere,
    /// The queue (the host's, or the municipality's part of it) is full.
    Queue,
}

impl Limit {
    /// The setting to raise, as written in the settings file.
    pub fn setting(self) -> &'static str {
        match self {
            Limit::Host => "[limits.admission] instances",
            Limit::Municipality => "[limits.admission] per_municipality",
            Limit::Module => "[limits.admission] per_module",
            Limit::ModuleEverywhere => "[limits.admission] per_module_everywhere",
            Limit::Queue => "[limits.admission] queue_length / queue_per_municipality",
        }
    }

    /// Stable name for metrics and problem types.
    pub fn name(self) -> &'static str {
        match self {
            Limit::Host => "host-instances",
            Limit::Municipality => "municipality-instances",
            Limit::Module => "module-instances",
            Limit::ModuleEverywhere => "module-everywhere-instances",
            Limit::Queue => "queue",
        }
    }
}

/// A request that was not admitted: which limit, and whether it waited for `queue_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub limit: Limit,
    pub waited: bool,
}

struct Waiter {
    id: u64,
    module: String,
    grant: oneshot::Sender<()>,
}

#[derive(Default)]
struct State {
    in_use: u32,
    per_municipality: HashMap<LgCode, u32>,
    /// Per municipality, per module (looked up by `&str`: nothing is allocated for a
    /// request of a module that is already running).
    per_module: HashMap<LgCode, HashMap<String, u32>>,
    /// Per module, all municipalities together.
    per_module_everywhere: HashMap<String, u32>,
    waiting: HashMap<LgCode, VecDeque<Waiter>>,
    /// Municipalities with waiting requests, in turn order.
    turn: VecDeque<LgCode>,
    queued: u32,
    next_id: u64,
}

impl State {
    fn running(&self, lg: &LgCode, module: &str) -> u32 {
        self.per_module.get(lg).and_then(|m| m.get(module)).copied().unwrap_or(0)
    }

    fn blocked_by(&self, limits: &AdmissionLimits, lg: &LgCode, module: &str) -> Option<Limit> {
        if self.running(lg, module) >= limits.per_module {
            Some(Limit::Module)
        } else if self.per_module_everywhere.get(module).copied().unwrap_or(0) >= limits.per_module_everywhere {
            Some(Limit::ModuleEverywhere)
        } else if self.per_municipality.get(lg).copied().unwrap_or(0) >= limits.per_municipality {
            Some(Limit::Municipality)
        } else if self.in_use >= limits.instances {
            Some(Limit::Host)
        } else {
            None
        }
    }

    fn take(&mut self, lg: &LgCode, module: &str) {
        self.in_use += 1;
        match self.per_module_everywhere.get_mut(module) {
            Some(n) => *n += 1,
            None => {
                self.per_module_everywhere.insert(module.to_string(), 1);
            }
        }
        match self.per_municipality.get_mut(lg) {
            Some(n) => *n += 1,
            None => {
                self.per_municipality.insert(lg.clone(), 1);
            }
        }
        match self.per_module.get_mut(lg) {
            Some(modules) => match modules.get_mut(module) {
                Some(n) => *n += 1,
                None => {
                    modules.insert(module.to_string(), 1);
                }
            },
            None => {
                self.per_module.insert(lg.clone(), HashMap::from([(module.to_string(), 1)]));
            }
        }
    }

    /// Counts are kept while they are above zero, and dropped with the last request, so
    /// the maps hold only what is running.
    fn give_back(&mut self, lg: &LgCode, module: &str) {
        self.in_use -= 1;
        if let Some(n) = self.per_module_everywhere.get_mut(module) {
            *n -= 1;
            if *n == 0 {
                self.per_module_everywhere.remove(module);
            }
        }
        if let Some(n) = self.per_municipality.get_mut(lg) {
            *n -= 1;
            if *n == 0 {
                self.per_municipality.remove(lg);
            }
        }
        if let Some(modules) = self.per_module.get_mut(lg) {
            if let Some(n) = modules.get_mut(module) {
                *n -= 1;
                if *n == 0 {
                    modules.remove(module);
                }
            }
            if modules.is_empty() {
                self.per_module.remove(lg);
            }
        }
    }

    /// Hands freed instances to waiting requests, one municipality at a time in turn.
    fn dispatch(&mut self, limits: &AdmissionLimits) {
        let mut idle_turns = 0;
        while self.in_use < limits.instances && idle_turns < self.turn.len() {
            let Some(lg) = self.turn.pop_front() else { break };
            let queue = self.waiting.get_mut(&lg).expect("a municipality in turn has waiters");
            let per_municipality = self.per_municipality.get(&lg).copied().unwrap_or(0);
            let admissible = (per_municipality < limits.per_municipality)
                .then(|| {
                    let running = self.per_module.get(&lg);
                    let everywhere = &self.per_module_everywhere;
                    queue.iter().position(|w| {
                        running.and_then(|m| m.get(&w.module)).copied().unwrap_or(0) < limits.per_module
                            && everywhere.get(&w.module).copied().unwrap_or(0) < limits.per_module_everywhere
                    })
                })
                .flatten();
            let Some(index) = admissible else {
                self.turn.push_back(lg);
                idle_turns += 1;
                continue;
            };
            let waiter = queue.remove(index).expect("found above");
            let now_empty = queue.is_empty();
            self.queued -= 1;
            if now_empty {
                self.waiting.remove(&lg);
            } else {
                self.turn.push_back(lg.clone());
            }
            self.take(&lg, &waiter.module);
            if waiter.grant.send(()).is_err() {
                // The request went away while its grant was on the way.
                self.give_back(&lg, &waiter.module);
            }
            idle_turns = 0;
        }
    }

    fn withdraw(&mut self, lg: &LgCode, id: u64) -> bool {
        let Some(queue) = self.waiting.get_mut(lg) else { return false };
        let Some(index) = queue.iter().position(|w| w.id == id) else { return false };
        queue.remove(index);
        self.queued -= 1;
        if queue.is_empty() {
            self.waiting.remove(lg);
            self.turn.retain(|m| m != lg);
        }
        true
    }
}

/// The admission of one host.
pub struct Admission {
    limits: AdmissionLimits,
    state: Mutex<State>,
    platform: Arc<Semaphore>,
    linked: Arc<Semaphore>,
    /// Each municipality's share of `linked`.
    linked_by_municipality: Mutex<HashMap<LgCode, Arc<Semaphore>>>,
}

/// An admitted request's instance; giving it back lets the next request in.
pub struct Permit<'a> {
    admission: &'a Admission,
    lg_code: &'a LgCode,
    module: &'a str,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.admission.release(self.lg_code, self.module);
    }
}

/// An instance for platform work (a delivery, a health check).
pub struct PlatformPermit(#[allow(dead_code)] OwnedSemaphorePermit);

/// An instance for a call into the module that provides an interface, with the share of its
/// municipality it takes; both are given back when it is dropped.
pub struct LinkedPermit {
    _share: OwnedSemaphorePermit,
    _instance: OwnedSemaphorePermit,
}

/// Numbers for `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Occupancy {
    pub in_use: u32,
    pub queued: u32,
    pub platform_in_use: u32,
    pub linked_in_use: u32,
}

/// Takes a waiting request out of the queue if its future is dropped (the client went
/// away, or its time was up) and gives back a grant that arrived too late.
struct Waiting<'a> {
    admission: &'a Admission,
    lg_code: &'a LgCode,
    module: &'a str,
    id: u64,
    grant: Option<oneshot::Receiver<()>>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let Some(mut grant) = self.grant.take() else { return };
        let mut state = self.admission.state.lock().expect("admission lock");
        if !state.withdraw(self.lg_code, self.id) && grant.try_recv().is_ok() {
            state.give_back(self.lg_code, self.module);
            state.dispatch(&self.admission.limits);
        }
    }
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Arc<Self> {
        let platform = Arc::new(Semaphore::new(limits.platform_instances as usize));
        let linked = Arc::new(Semaphore::new(limits.linked_instances as usize));
        Arc::new(Self { limits, state: Mutex::new(State::default()), platform, linked, linked_by_municipality: Mutex::default() })
    }

    /// Instances the pooling allocator must have: traffic, platform work and calls into
    /// providing modules together.
    pub fn pool_size(limits: &AdmissionLimits) -> u32 {
        limits.instances + limits.platform_instances + limits.linked_instances
    }

    /// Waits (fairly, at most `queue_ms`) for an instance for a request of `module` at `lg_code`.
    pub async fn admit<'a>(&'a self, lg_code: &'a LgCode, module: &'a str) -> Result<Permit<'a>, Refused> {
        let queued = {
            let mut state = self.state.lock().expect("admission lock");
            let blocked = state.blocked_by(&self.limits, lg_code, module);
            // Nobody of this municipality waits ahead of it (they would be first in line).
            let ahead = state.waiting.contains_key(lg_code);
            let queued_here = state.waiting.get(lg_code).map_or(0, |q| q.len() as u32);
            if blocked.is_none() && !ahead {
                state.take(lg_code, module);
                return Ok(self.permit(lg_code, module));
            } else if state.queued >= self.limits.queue_length || queued_here >= self.limits.queue_per_municipality {
                None
            } else {
                let (grant, receiver) = oneshot::channel();
                state.next_id += 1;
                let id = state.next_id;
                state.queued += 1;
                let queue = state.waiting.entry(lg_code.clone()).or_default();
                queue.push_back(Waiter { id, module: module.to_string(), grant });
                if queue.len() == 1 {
                    state.turn.push_back(lg_code.clone());
                }
                // Free instances may already be there for someone else in the queue.
                state.dispatch(&self.limits);
                Some((id, receiver))
            }
        };
        let Some((id, receiver)) = queued else {
            // No room in the queue: the refusal takes as long as a wait in it would have, so a
            // client that floods (and ignores Retry-After) gets its answers no faster than a
            // patient one, instead of taking the host's time with a storm of quick refusals.
            // It costs a timer; connections are bounded by `[limits.connections]`.
            tokio::time::sleep(Duration::from_millis(self.limits.queue_ms)).await;
            return Err(Refused { limit: Limit::Queue, waited: true });
        };
        let mut waiting = Waiting { admission: self, lg_code, module, id, grant: Some(receiver) };
        let grant = waiting.grant.as_mut().expect("just set");
        match tokio::time::timeout(Duration::from_millis(self.limits.queue_ms), grant).await {
            Ok(Ok(())) => {
                waiting.grant = None;
                Ok(self.permit(lg_code, module))
            }
            _ => {
                // Still queued (or granted just now: `Waiting` gives that grant back).
                let limit = {
                    let state = self.state.lock().expect("admission lock");
                    state.blocked_by(&self.limits, lg_code, module).unwrap_or(Limit::Host)
                };
                drop(waiting);
                Err(Refused { limit, waited: true })
            }
        }
    }

    /// An instance for platform work; waits as long as it takes (platform work has its own
    /// slots, and nothing a client does holds them).
    pub async fn admit_platform(&self) -> PlatformPermit {
        PlatformPermit(self.platform.clone().acquire_owned().await.expect("the semaphore is never closed"))
    }

    /// An instance for a call into the module that provides an interface at `lg_code`,
    /// waiting at most until `deadline` (the caller's own). These are instances of their
    /// own, so a consumer holding a traffic instance never waits for another traffic
    /// instance (which could wait for it in turn); a municipality holds at most its share
    /// (`linked_per_municipality`) at once, so one municipality's slow providers cannot
    /// hold every other municipality's calls. `Err` names the limit it waited on.
    pub async fn admit_linked(&self, lg_code: &LgCode, deadline: tokio::time::Instant) -> Result<LinkedPermit, &'static str> {
        let share = {
            let mut by = self.linked_by_municipality.lock().expect("linked lock");
            by.entry(lg_code.clone()).or_insert_with(|| Arc::new(Semaphore::new(self.limits.linked_per_municipality as usize))).clone()
        };
        let share = tokio::time::timeout_at(deadline, share.acquire_owned()).await.map_err(|_| "[limits.admission] linked_per_municipality")?;
        let instance = tokio::time::timeout_at(deadline, self.linked.clone().acquire_owned()).await.map_err(|_| "[limits.admission] linked_instances")?;
        Ok(LinkedPermit { _share: share.expect("the semaphore is never closed"), _instance: instance.expect("the semaphore is never closed") })
    }

    pub fn occupancy(&self) -> Occupancy {
        let state = self.state.lock().expect("admission lock");
        Occupancy {
            in_use: state.in_use,
            queued: state.queued,
            platform_in_use: self.limits.platform_instances - self.platform.available_permits() as u32,
            linked_in_use: self.limits.linked_instances - self.linked.available_permits() as u32,
        }
    }

    fn permit<'a>(&'a self, lg_code: &'a LgCode, module: &'a str) -> Permit<'a> {
        Permit { admission: self, lg_code, module }
    }

    fn release(&self, lg_code: &LgCode, module: &str) {
        let mut state = self.state.lock().expect("admission lock");
        state.give_back(lg_code, module);
        state.dispatch(&self.limits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(instances: u32, per_municipality: u32, per_module: u32) -> AdmissionLimits {
        AdmissionLimits { instances, requests_per_second: 0, platform_instances: 1, linked_instances: 1, linked_per_municipality: 1, per_municipality, per_module, per_module_everywhere: instances, queue_ms: 200, queue_length: 100, queue_per_municipality: 3 }
    }

    fn code(c: &str) -> LgCode {
        LgCode::parse(c).unwrap()
    }

    #[tokio::test]
    async fn each_limit_holds_and_names_itself() {
        let admission = Admission::new(limits(3, 2, 1));
        let (a, b) = (code("131016"), code("011002"));
        let first = admission.admit(&a, "x").await.unwrap();
        // The module's share (1) is taken: a second request of it waits, then is refused.
        assert_eq!(admission.admit(&a, "x").await.err(), Some(Refused { limit: Limit::Module, waited: true }));
        let _second = admission.admit(&a, "y").await.unwrap();
        assert_eq!(admission.admit(&a, "z").await.err(), Some(Refused { limit: Limit::Municipality, waited: true }));
        let _third = admission.admit(&b, "x").await.unwrap();
        assert_eq!(admission.admit(&b, "y").await.err(), Some(Refused { limit: Limit::Host, waited: true }));
        drop(first);
        assert_eq!(admission.occupancy().in_use, 2);
        let _again = admission.admit(&a, "x").await.unwrap();
        assert_eq!(admission.occupancy().queued, 0, "refused and withdrawn requests leave the queue");
    }

    #[tokio::test]
    async fn a_freed_instance_goes_to_the_next_municipality_in_turn() {
        let admission = Admission::new(limits(1, 1, 1));
        let (a, b) = (code("131016"), code("011002"));
        let running = admission.admit(&a, "x").await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for (lg, module) in [(&a, "x"), (&a, "y"), (&b, "x")] {
            let (admission, order, lg, module) = (admission.clone(), order.clone(), lg.clone(), module.to_string());
            waiting.push(tokio::spawn(async move {
                let permit = admission.admit(&lg, &module).await.unwrap();
                order.lock().unwrap().push(format!("{lg}/{module}"));
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(permit);
            }));
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(running);
        for w in waiting {
            w.await.unwrap();
        }
        // 131016 queued twice before 011002 queued once; turns alternate all the same.
        assert_eq!(*order.lock().unwrap(), vec!["131016/x", "011002/x", "131016/y"]);
    }

    #[tokio::test]
    async fn a_module_slow_everywhere_cannot_take_every_instance() {
        let admission = Admission::new(AdmissionLimits { per_module_everywhere: 2, ..limits(4, 4, 4) });
        let (a, b, c) = (code("131016"), code("011002"), code("141003"));
        let _one = admission.admit(&a, "slow").await.unwrap();
        let _two = admission.admit(&b, "slow").await.unwrap();
        assert_eq!(admission.admit(&c, "slow").await.err(), Some(Refused { limit: Limit::ModuleEverywhere, waited: true }));
        assert!(admission.admit(&c, "other").await.is_ok(), "another module still gets an instance");
    }

    #[tokio::test]
    async fn the_queue_is_bounded_and_dropped_waiters_leave_it() {
        let admission = Admission::new(limits(1, 1, 1));
        let a = code("131016");
        let _running = admission.admit(&a, "x").await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let (admission, a) = (admission.clone(), a.clone());
            tasks.push(tokio::spawn(async move { admission.admit(&a, "x").await.map(|_| ()) }));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(admission.occupancy().queued, 3);
        let started = std::time::Instant::now();
        assert_eq!(admission.admit(&a, "x").await.err(), Some(Refused { limit: Limit::Queue, waited: true }));
        assert!(started.elapsed() >= Duration::from_millis(200), "a refusal for a full queue takes the queue's time");
        for t in &tasks {
            t.abort();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(admission.occupancy().queued, 0, "a client that went away is no longer waiting");
    }

    #[tokio::test]
    async fn one_municipality_takes_at_most_its_share_of_linked_instances() {
        let mut l = limits(4, 4, 4);
        (l.linked_instances, l.linked_per_municipality) = (3, 2);
        let admission = Admission::new(l);
        let (chiyoda, sapporo) = (LgCode::parse("131016").unwrap(), LgCode::parse("011002").unwrap());
        let later = tokio::time::Instant::now() + Duration::from_secs(5);
        let soon = || tokio::time::Instant::now() + Duration::from_millis(50);
        let first = admission.admit_linked(&chiyoda, later).await.unwrap();
        let second = admission.admit_linked(&chiyoda, later).await.unwrap();
        assert_eq!(admission.admit_linked(&chiyoda, soon()).await.err(), Some("[limits.admission] linked_per_municipality"), "past its share it waits, then gives up");
        let other = admission.admit_linked(&sapporo, later).await.unwrap();
        assert_eq!(admission.occupancy().linked_in_use, 3);
        // All three in use: another municipality's call waits for a free instance.
        assert_eq!(admission.admit_linked(&sapporo, soon()).await.err(), Some("[limits.admission] linked_instances"));
        drop(first);
        let again = admission.admit_linked(&sapporo, later).await.unwrap();
        drop((second, other, again));
        assert_eq!(admission.occupancy().linked_in_use, 0);
    }
}
