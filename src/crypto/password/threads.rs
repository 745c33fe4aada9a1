//! The threads that run argon2: one per permitted concurrent hash, started with the hasher,
//! at a lower scheduling priority than the request workers.
//!
//! A sign-in costs ~15 ms of CPU and a token ~0.25 ms. On tokio's blocking pool the hashes
//! ran at the workers' priority, so during a storm of sign-ins the scheduler split each
//! core evenly between hashing and token requests, and every token request waited behind
//! a slice of argon2 (client_credentials p99 2.7-3.4x its idle value on 2 cores). At nice
//! 10 a hashing thread gets about a tenth of a core that a worker also wants (scheduler
//! weights 110 against 1024) and all of a core nobody else wants: token requests keep
//! their latency, sign-ins use what is left, and the hasher's bounded queue answers the
//! excess with 503 and `Retry-After` instead of letting it pile up.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::crypto::CryptoError;

/// How much nicer than the process the hashing threads are (Linux nice values run from
/// -20 to 19; the workers keep the process's, normally 0).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(super) const HASH_THREAD_NICENESS: i32 = 10;

/// The lowest priority Linux has.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
const NICEST: i32 = 19;

type Job = Box<dyn FnOnce() + Send>;

/// What a thread does when no job came for a while (see [`HashThreads::start`]).
pub(super) type OnIdle = Arc<dyn Fn() + Send + Sync>;

/// A fixed set of threads fed through one queue. The hasher's semaphore admits at most as
/// many jobs as there are threads (a job gives its permit back just before its thread
/// returns to the queue), so a job waits here at most for that moment.
pub(super) struct HashThreads {
    jobs: mpsc::Sender<Job>,
}

impl HashThreads {
    /// Starts `count` threads; they end when the last handle is dropped. A thread that
    /// waited `idle` for a job without one coming runs `on_idle`, again after each further
    /// `idle` without a job.
    pub(super) fn start(
        count: usize,
        idle: Duration,
        on_idle: OnIdle,
    ) -> Result<Self, CryptoError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..count {
            let queue = Arc::clone(&queue);
            let on_idle = Arc::clone(&on_idle);
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        // The lock is held only while taking one job (or waiting for
                        // one: the other threads wait for the lock meanwhile).
                        let next = match queue.lock() {
                            Ok(rx) => rx.recv_timeout(idle),
                            Err(poisoned) => poisoned.into_inner().recv_timeout(idle),
                        };
                        let job = match next {
                            Ok(job) => job,
                            Err(RecvTimeoutError::Timeout) => {
                                on_idle();
                                continue;
                            }
                            Err(RecvTimeoutError::Disconnected) => return,
                        };
                        // A panicking job drops its reply sender (the caller sees an
                        // error) and leaves the thread serving.
                        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                    }
                })
                .map_err(|e| CryptoError::TaskJoin(e.to_string()))?;
        }
        Ok(Self { jobs })
    }

    /// Runs `f` on a hashing thread and waits for its result without blocking the caller's
    /// executor.
    pub(super) async fn run<T, F>(&self, f: F) -> Result<T, CryptoError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = reply.send(f());
            }))
            .map_err(|_| CryptoError::TaskJoin("the hashing threads have stopped".into()))?;
        answer
            .await
            .map_err(|_| CryptoError::TaskJoin("a password hash failed".into()))
    }
}

/// Lowers the calling thread's priority by [`HASH_THREAD_NICENESS`] (at most to 19). On
/// Linux the nice value belongs to the thread, and `who = 0` names the calling thread
/// (setpriority(2), NOTES); lowering needs no privilege. Failure only costs the storm
/// behaviour described above, so it is logged, not fatal.
#[cfg(target_os = "linux")]
fn lower_priority() {
    let target = (current_nice() + HASH_THREAD_NICENESS).min(NICEST);
    // SAFETY: setpriority takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, target) };
    if rc != 0 {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "could not lower the priority of a password hashing thread"
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

/// The calling thread's nice value.
#[cfg(target_os = "linux")]
fn current_nice() -> i32 {
    // SAFETY: as above; errno is cleared first because -1 is also a valid nice value.
    unsafe {
        *libc::__errno_location() = 0;
        libc::getpriority(libc::PRIO_PROCESS, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashes_run_below_the_workers_priority() {
        let threads = HashThreads::start(2, Duration::from_secs(60), Arc::new(|| ())).unwrap();
        let here = current_nice();
        let there = threads.run(current_nice).await.unwrap();
        assert_eq!(there, (here + HASH_THREAD_NICENESS).min(NICEST));
        if here < NICEST {
            assert!(
                there > here,
                "hashing at nice {there}, the caller at {here}"
            );
        }
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_the_thread_keeps_serving() {
        let threads = HashThreads::start(1, Duration::from_secs(60), Arc::new(|| ())).unwrap();
        let failed = threads.run(|| -> u8 { panic!("boom") }).await;
        assert!(
            matches!(failed, Err(CryptoError::TaskJoin(_))),
            "{failed:?}"
        );
        assert_eq!(threads.run(|| 7).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn a_thread_without_jobs_runs_on_idle_and_still_serves() {
        let (idled, idle_seen) = std::sync::mpsc::channel();
        let idled = Mutex::new(idled);
        let on_idle: OnIdle = Arc::new(move || {
            let _ = idled.lock().map(|tx| tx.send(()));
        });
        let threads = HashThreads::start(1, Duration::from_millis(20), on_idle).unwrap();
        assert_eq!(threads.run(|| 1).await.unwrap(), 1);
        idle_seen
            .recv_timeout(Duration::from_secs(10))
            .expect("on_idle ran once no job came");
        assert_eq!(threads.run(|| 2).await.unwrap(), 2);
    }
}
