//! Reads of one kind that wait together run as one statement (PostgreSQL).
//!
//! On one machine shared with PostgreSQL, a single-row read costs PostgreSQL about three
//! times what the statement itself does (the round trip, `Bind`/`Execute`/`Sync`, the
//! executor's start-up, a snapshot: "Where the targets of issue 9 stand" in
//! `docs/performance.md`), and the server pays sqlx's encoding and a socket's wake-up per
//! statement. So the reads of one kind (the access token's grant behind `/userinfo` and
//! `/introspect`) that arrive while others of their kind are running are taken together,
//! up to `MAX_BATCH`, and answered by one statement over arrays of their keys
//! (`store::sql::pg_batch`), each row tagged with its read's place in the batch.
//!
//! No read waits for a batch to fill: while fewer than `max_running` batches are running,
//! a read starts one at once (it is then a batch of one, as on a quiet server); only
//! reads that arrive while all of them run wait, and the next batch to start takes every
//! read then waiting, up to `MAX_BATCH`. A batch runs in a task of its own, so a caller
//! that stops waiting (its client went away) cancels no other read; one gone before its
//! batch starts is left out of it. Each read gets the answer the statement gives for its
//! key; a failure of the whole statement is every read's of the batch, as it would have
//! been each one's alone. A read waits at most `queue_limit` for its answer, and no more
//! than `MAX_WAITING` reads wait at once: beyond either, `Unavailable` (503), as when the
//! connections are all taken.
//!
//! Only reads go through here: a write in a batch shares its commit and its failures
//! with the others, which was measured for the refresh spend and left out
//! (`docs/performance.md`, "Tenth round").

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::StoreError;

/// The most reads in one batch.
pub(super) const MAX_BATCH: usize = 32;
/// The most reads waiting for a batch at once, of one kind.
const MAX_WAITING: usize = 1024;

/// One read's answer: its row, or none.
pub(super) type Answer<V> = Result<Option<V>, StoreError>;

/// The batch's statement: the keys in, for each key in order its answer; or one failure
/// that is every read's.
pub(super) type RunBatch<K, V> = Arc<
    dyn Fn(Vec<K>) -> Pin<Box<dyn Future<Output = Result<Vec<Answer<V>>, StoreError>> + Send>>
        + Send
        + Sync,
>;

/// Reads of one kind, run in batches; see the module comment.
pub(super) struct Coalescer<K, V> {
    inner: Arc<Inner<K, V>>,
}

impl<K, V> Clone for Coalescer<K, V> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<K, V> std::fmt::Debug for Coalescer<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer")
            .field("max_running", &self.inner.max_running)
            .field("together", &self.inner.together)
            .finish_non_exhaustive()
    }
}

struct Inner<K, V> {
    state: Mutex<State<K, V>>,
    run: RunBatch<K, V>,
    max_running: usize,
    /// A read that waited this long is answered `Unavailable` (as long as a statement
    /// waits for a connection).
    queue_limit: Duration,
    /// How many reads were answered by a batch of more than one.
    together: AtomicU64,
}

struct State<K, V> {
    waiting: VecDeque<Waiting<K, V>>,
    running: usize,
}

struct Waiting<K, V> {
    key: K,
    since: Instant,
    reply: oneshot::Sender<Answer<V>>,
}

impl<K: Send + 'static, V: Send + 'static> Coalescer<K, V> {
    /// At most `max_running` batches at a time, each run by `run`.
    pub(super) fn new(max_running: usize, queue_limit: Duration, run: RunBatch<K, V>) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    waiting: VecDeque::new(),
                    running: 0,
                }),
                run,
                max_running: max_running.max(1),
                queue_limit,
                together: AtomicU64::new(0),
            }),
        }
    }

    /// Reads `key` in the next batch.
    pub(super) async fn call(&self, key: K) -> Answer<V> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut state = self.inner.lock();
            if state.waiting.len() >= MAX_WAITING {
                // Reads whose callers are gone hold no place.
                state.waiting.retain(|w| !w.reply.is_closed());
            }
            if state.waiting.len() >= MAX_WAITING {
                return Err(StoreError::Unavailable(
                    "too many reads are waiting for the database".into(),
                ));
            }
            state.waiting.push_back(Waiting {
                key,
                since: Instant::now(),
                reply,
            });
            let start = state.running < self.inner.max_running;
            if start {
                state.running += 1;
            }
            start
        };
        if start {
            // The guard is made before the task, so that a task dropped unpolled (the
            // runtime shutting down) still gives its place back.
            let turn = Turn(Some(self.inner.clone()));
            // On the caller's runtime (an HTTP worker's): a batch spawned on the system
            // runtime measured no better (`docs/performance.md`, "Tenth round").
            tokio::spawn(drain(turn));
        }
        // A read taken by a batch that then waits long (a lock, a slow disk) is given up
        // here; the batch answers no one for it.
        match tokio::time::timeout(self.inner.queue_limit, answer).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(StoreError::Unavailable(
                "a batch of reads stopped before it answered".into(),
            )),
            Err(_) => Err(StoreError::Unavailable(
                "a read waited for the database for too long".into(),
            )),
        }
    }

    /// How many calls so far were answered by a batch of more than one.
    pub(super) fn answered_together(&self) -> u64 {
        self.inner.together.load(Ordering::Relaxed)
    }
}

impl<K, V> Inner<K, V> {
    fn lock(&self) -> MutexGuard<'_, State<K, V>> {
        // A panic while the lock is held leaves a queue that is still whole.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One running batch's place among `max_running`: given back when its task ends, however
/// it ends.
struct Turn<K, V>(Option<Arc<Inner<K, V>>>);

impl<K, V> Drop for Turn<K, V> {
    fn drop(&mut self) {
        // Reached only when a batch's task ended before its queue was empty (a panic, its
        // runtime shutting down): if no other batch runs, the reads still waiting would
        // wait for the next read of their kind, so they are answered now (`Unavailable`,
        // their senders dropped).
        if let Some(inner) = self.0.take() {
            let stranded = {
                let mut state = inner.lock();
                state.running -= 1;
                if state.running == 0 {
                    std::mem::take(&mut state.waiting)
                } else {
                    VecDeque::new()
                }
            };
            drop(stranded);
        }
    }
}

/// Runs the reads that wait, a batch at a time, until none waits.
async fn drain<K: Send + 'static, V: Send + 'static>(mut turn: Turn<K, V>) {
    let Some(inner) = turn.0.clone() else {
        return;
    };
    loop {
        let batch = {
            let mut state = inner.lock();
            let take = state.waiting.len().min(MAX_BATCH);
            let batch: Vec<Waiting<K, V>> = state.waiting.drain(..take).collect();
            if batch.is_empty() {
                // Decided under the lock, so a read queued after this finds `running`
                // lowered and starts a batch itself.
                state.running -= 1;
                drop(state);
                turn.0 = None;
                return;
            }
            batch
        };
        run_batch(&inner, batch).await;
    }
}

/// Answers `batch`: the reads whose callers still wait and that have not waited too long
/// go to the statement.
async fn run_batch<K, V>(inner: &Inner<K, V>, batch: Vec<Waiting<K, V>>) {
    let mut keys = Vec::with_capacity(batch.len());
    let mut replies = Vec::with_capacity(batch.len());
    for read in batch {
        if read.reply.is_closed() {
            continue;
        }
        if read.since.elapsed() >= inner.queue_limit {
            let _ = read.reply.send(Err(StoreError::Unavailable(
                "reads waited for the database for too long".into(),
            )));
            continue;
        }
        keys.push(read.key);
        replies.push(read.reply);
    }
    if keys.is_empty() {
        return;
    }
    let asked = keys.len();
    // A statement that hangs (a connection cut without a word, a lock held for long)
    // would keep its batch's place, and with both places held every read of the kind
    // would wait: it is given up after `queue_limit` (its connection is closed, as any
    // abandoned statement's is: `store::lane`) and its reads answered `Unavailable`.
    let ran = tokio::time::timeout(inner.queue_limit, (inner.run)(keys))
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "a batch of reads took too long".into(),
            ))
        });
    match ran {
        Ok(answers) if answers.len() == asked => {
            if asked > 1 {
                inner.together.fetch_add(asked as u64, Ordering::Relaxed);
            }
            for (reply, answer) in replies.into_iter().zip(answers) {
                let _ = reply.send(answer);
            }
        }
        Ok(answers) => {
            let message = format!("a batch of {asked} reads came back with {}", answers.len());
            for reply in replies {
                let _ = reply.send(Err(StoreError::Backend(message.clone().into())));
            }
        }
        Err(e) => {
            let outage = matches!(e, StoreError::Unavailable(_));
            let message = e.to_string();
            tracing::debug!(error = %e, reads = asked, "a batch of reads failed");
            for reply in replies {
                let message = message.clone().into();
                let _ = reply.send(Err(if outage {
                    StoreError::Unavailable(message)
                } else {
                    StoreError::Backend(message)
                }));
            }
        }
    }
}

/// Places the rows of a batch's statement, each tagged with its read's place (1-based,
/// as `unnest ... WITH ORDINALITY` counts) and decoded on its own, into one answer per
/// read. A place that is out of range or comes twice is the statement's fault: an error
/// for the whole batch, never a wrong answer.
pub(super) fn place<V>(
    rows: Vec<(i64, Result<V, StoreError>)>,
    reads: usize,
) -> Result<Vec<Answer<V>>, StoreError> {
    let mut answers: Vec<Option<Answer<V>>> = std::iter::repeat_with(|| None).take(reads).collect();
    for (slot, value) in rows {
        let index = usize::try_from(slot)
            .ok()
            .and_then(|s| s.checked_sub(1))
            .filter(|&i| i < reads)
            .ok_or_else(|| StoreError::Backend(format!("a batch row has place {slot}").into()))?;
        if answers[index].replace(value.map(Some)).is_some() {
            return Err(StoreError::Backend(
                format!("two batch rows have place {slot}").into(),
            ));
        }
    }
    Ok(answers
        .into_iter()
        .map(|answer| answer.unwrap_or(Ok(None)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use tokio::sync::Notify;

    /// A statement that answers `key * 10` for even keys and nothing for odd ones, after
    /// `gate` opens; it records the batches it saw and how many ran at once.
    struct Probe {
        gate: Notify,
        open: std::sync::atomic::AtomicBool,
        batches: Mutex<Vec<Vec<u32>>>,
        running: AtomicUsize,
        most_running: AtomicUsize,
    }

    fn probe() -> Arc<Probe> {
        Arc::new(Probe {
            gate: Notify::new(),
            open: false.into(),
            batches: Mutex::new(Vec::new()),
            running: AtomicUsize::new(0),
            most_running: AtomicUsize::new(0),
        })
    }

    impl Probe {
        fn open(&self) {
            self.open.store(true, Ordering::SeqCst);
            self.gate.notify_waiters();
        }

        fn batches(&self) -> Vec<Vec<u32>> {
            self.batches.lock().map(|b| b.clone()).unwrap_or_default()
        }
    }

    fn coalescer(p: &Arc<Probe>, max_running: usize) -> Coalescer<u32, u32> {
        let p = p.clone();
        Coalescer::new(
            max_running,
            Duration::from_secs(10),
            Arc::new(move |keys: Vec<u32>| {
                let p = p.clone();
                Box::pin(async move {
                    let now = p.running.fetch_add(1, Ordering::SeqCst) + 1;
                    p.most_running.fetch_max(now, Ordering::SeqCst);
                    while !p.open.load(Ordering::SeqCst) {
                        let opened = p.gate.notified();
                        if p.open.load(Ordering::SeqCst) {
                            break;
                        }
                        opened.await;
                    }
                    if let Ok(mut b) = p.batches.lock() {
                        b.push(keys.clone());
                    }
                    p.running.fetch_sub(1, Ordering::SeqCst);
                    if keys.contains(&999) {
                        return Err(StoreError::Unavailable("down".into()));
                    }
                    assert!(!keys.contains(&998), "the statement panicked");
                    // Rows in reverse, so that answers are placed by slot, not by order;
                    // key 997's row does not decode.
                    let rows: Vec<(i64, Result<u32, StoreError>)> = keys
                        .iter()
                        .enumerate()
                        .filter(|(_, k)| *k % 2 == 0 || **k == 997)
                        .map(|(i, k)| {
                            let value = match k {
                                997 => Err(StoreError::Corrupt("997 does not decode".into())),
                                k => Ok(k * 10),
                            };
                            (i as i64 + 1, value)
                        })
                        .rev()
                        .collect();
                    place(rows, keys.len())
                }) as Pin<Box<dyn Future<Output = _> + Send>>
            }),
        )
    }

    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    /// `c.call(k)` in a task of its own.
    fn spawn_call(c: &Coalescer<u32, u32>, k: u32) -> tokio::task::JoinHandle<Answer<u32>> {
        let c = c.clone();
        tokio::spawn(async move { c.call(k).await })
    }

    /// Reads `first`, which takes `c`'s only batch and waits at the shut gate; then
    /// `keys`, which queue behind it; then opens the gate. The answers, in order.
    async fn behind_one_read(
        p: &Probe,
        c: &Coalescer<u32, u32>,
        first: u32,
        keys: &[u32],
    ) -> (Answer<u32>, Vec<Answer<u32>>) {
        let first = spawn_call(c, first);
        settle().await;
        let rest: Vec<_> = keys.iter().map(|&k| spawn_call(c, k)).collect();
        settle().await;
        p.open();
        let first = within(first).await.expect("joined");
        let mut answers = Vec::new();
        for read in rest {
            answers.push(within(read).await.expect("joined"));
        }
        (first, answers)
    }

    /// `f`, or a failed test instead of a hung one.
    /// The answer of a read refused as an outage (503 with `Retry-After` upstream).
    fn assert_unavailable<T: std::fmt::Debug>(answer: &Result<T, StoreError>) {
        assert!(
            matches!(answer, Err(StoreError::Unavailable(_))),
            "{answer:?}"
        );
    }

    async fn within<T>(f: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(5), f)
            .await
            .expect("answered within 5 s")
    }

    #[tokio::test]
    async fn a_read_alone_runs_at_once_as_a_batch_of_one() {
        let p = probe();
        p.open();
        let c = coalescer(&p, 2);
        assert_eq!(c.call(4).await.ok(), Some(Some(40)));
        assert_eq!(c.call(3).await.ok(), Some(None));
        assert_eq!(p.batches(), vec![vec![4], vec![3]]);
        assert_eq!(c.answered_together(), 0);
    }

    #[tokio::test]
    async fn reads_that_wait_run_together_and_each_gets_its_own_answer() {
        let p = probe();
        let c = coalescer(&p, 1);
        let keys: Vec<u32> = (4..10).collect();
        let (first, answers) = behind_one_read(&p, &c, 2, &keys).await;
        assert_eq!(first.ok(), Some(Some(20)));
        for (k, answer) in keys.into_iter().zip(answers) {
            let expected = (k % 2 == 0).then_some(k * 10);
            assert_eq!(answer.ok(), Some(expected), "key {k}");
        }
        assert_eq!(p.batches(), vec![vec![2], vec![4, 5, 6, 7, 8, 9]]);
        assert_eq!(c.answered_together(), 6);
        assert_eq!(p.most_running.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn no_more_than_max_running_batches_run_at_once() {
        let p = probe();
        let c = coalescer(&p, 2);
        // One read at a time, each given the time to start a batch if it may.
        let mut reads = Vec::new();
        for k in 0..40u32 {
            reads.push(spawn_call(&c, k * 2));
            settle().await;
        }
        assert_eq!(p.running.load(Ordering::SeqCst), 2, "two batches run");
        assert_eq!(c.inner.lock().waiting.len(), 38, "the rest wait");
        p.open();
        for (k, read) in reads.into_iter().enumerate() {
            let answer = within(read).await.expect("joined");
            assert_eq!(answer.ok(), Some(Some(k as u32 * 20)));
        }
        assert_eq!(p.most_running.load(Ordering::SeqCst), 2);
        let batches = p.batches();
        assert!(batches.iter().all(|b| b.len() <= MAX_BATCH), "{batches:?}");
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 40);
        assert!(batches.iter().any(|b| b.len() > 1), "{batches:?}");
    }

    #[tokio::test]
    async fn a_failed_batch_fails_its_reads_and_the_next_batch_runs() {
        let p = probe();
        let c = coalescer(&p, 1);
        let (first, answers) = behind_one_read(&p, &c, 0, &[999, 2]).await;
        assert!(first.is_ok());
        for answer in answers {
            assert_unavailable(&answer);
        }
        assert_eq!(within(c.call(6)).await.ok(), Some(Some(60)));
        assert_eq!(c.answered_together(), 0);
    }

    #[tokio::test]
    async fn a_row_that_does_not_decode_fails_its_read_alone() {
        let p = probe();
        let c = coalescer(&p, 1);
        let (first, answers) = behind_one_read(&p, &c, 0, &[997, 4]).await;
        assert!(first.is_ok());
        assert!(
            matches!(answers[0], Err(StoreError::Corrupt(_))),
            "{:?}",
            answers[0]
        );
        assert_eq!(answers[1].as_ref().ok(), Some(&Some(40)));
        assert_eq!(p.batches(), vec![vec![0], vec![997, 4]]);
    }

    #[tokio::test]
    async fn a_caller_that_stops_waiting_cancels_no_other_read_and_is_not_run() {
        let p = probe();
        let c = coalescer(&p, 1);
        // The first caller starts the batch and goes away while it runs.
        let leader = spawn_call(&c, 2);
        settle().await;
        let gone = spawn_call(&c, 4);
        let stays = spawn_call(&c, 8);
        settle().await;
        leader.abort();
        gone.abort();
        settle().await;
        p.open();
        assert_eq!(
            within(stays).await.ok().and_then(|r| r.ok()),
            Some(Some(80))
        );
        assert_eq!(p.batches(), vec![vec![2], vec![8]]);
        // Nothing is left running: a read after them starts a batch at once.
        assert_eq!(within(c.call(10)).await.ok(), Some(Some(100)));
    }

    #[tokio::test]
    async fn reads_left_waiting_by_a_batch_that_panicked_are_answered() {
        let p = probe();
        let c = coalescer(&p, 1);
        let doomed = spawn_call(&c, 998);
        settle().await;
        let waiting = spawn_call(&c, 4);
        settle().await;
        p.open();
        // The batch's task panicked: its read and the one waiting behind it are answered.
        let answer = within(doomed).await.expect("joined");
        assert_unavailable(&answer);
        let answer = within(waiting).await.expect("joined");
        assert_unavailable(&answer);
        assert_eq!(within(c.call(6)).await.ok(), Some(Some(60)));
    }

    #[tokio::test]
    async fn no_more_than_max_waiting_reads_wait() {
        let p = probe();
        let c = coalescer(&p, 1);
        let first = spawn_call(&c, 0);
        settle().await;
        assert_eq!(p.running.load(Ordering::SeqCst), 1, "one batch runs");
        let mut reads = Vec::new();
        for _ in 0..2 * MAX_WAITING {
            if c.inner.lock().waiting.len() == MAX_WAITING {
                break;
            }
            reads.push(spawn_call(&c, 2));
            tokio::task::yield_now().await;
        }
        assert_eq!(reads.len(), MAX_WAITING, "the queue filled");
        let over = within(c.call(2)).await;
        assert_unavailable(&over);
        p.open();
        assert!(within(first).await.expect("joined").is_ok());
        for read in reads {
            assert_eq!(within(read).await.expect("joined").ok(), Some(Some(20)));
        }
    }

    #[tokio::test]
    async fn a_read_that_waited_too_long_is_not_run() {
        let p = probe();
        p.open();
        let c = coalescer(&p, 1);
        let (reply, answer) = oneshot::channel();
        let stale = Waiting {
            key: 2,
            since: Instant::now() - Duration::from_secs(11),
            reply,
        };
        run_batch(&c.inner, vec![stale]).await;
        let answer = answer.await.expect("answered");
        assert_unavailable(&answer);
        assert!(p.batches().is_empty(), "the statement did not run");
    }

    #[tokio::test]
    async fn a_caller_waits_no_longer_than_the_queue_limit() {
        let p = probe();
        let run = coalescer(&p, 1).inner.run.clone();
        let c = Coalescer::new(1, Duration::from_millis(50), run);
        // The statement does not end while the gate stays shut.
        let answer = within(c.call(2)).await;
        assert_unavailable(&answer);
        // The batch is given up too, and gives its place back.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(c.inner.lock().running, 0, "the hung batch holds no place");
        p.open();
        assert_eq!(within(c.call(6)).await.ok(), Some(Some(60)));
    }

    #[test]
    fn rows_are_placed_by_their_slot_and_a_bad_slot_is_an_error() {
        let row = |slot, v: &'static str| (slot, Ok::<_, StoreError>(v));
        let placed: Option<Vec<_>> = place(vec![row(3, "c"), row(1, "a")], 3)
            .ok()
            .map(|answers| answers.into_iter().map(Result::ok).collect());
        assert_eq!(
            placed,
            Some(vec![Some(Some("a")), Some(None), Some(Some("c"))])
        );
        assert!(place(vec![row(0, "x")], 2).is_err());
        assert!(place(vec![row(3, "x")], 2).is_err());
        assert!(place(vec![row(-1, "x")], 2).is_err());
        assert!(place(vec![row(1, "x"), row(1, "y")], 2).is_err());
    }
}
